#include "client/commands.hpp"

#include "common/render.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>

namespace chat {

Submitted submit_line(ScreenModel& model, std::string_view line, bool link_ended,
                      const std::vector<std::string>& more_help) {
  const InputAction action = interpret_input(line);
  const auto now = Moment::now();
  using K = InputAction::Kind;
  switch (action.kind) {
    case K::none: return {};
    case K::error: model.notice("*** " + action.arg, Category::error, now); return {};
    case K::help:
      for (const auto& help : help_lines()) model.notice(help, Category::info, now);
      model.notice("***   /save FILE           write the conversation so far to FILE", Category::info, now);
      model.notice("***   /clear               clear the message pane", Category::info, now);
      for (const auto& help : more_help) model.notice(help, Category::info, now);
      return {};
    case K::clear: model.clear(); return {Submitted::Kind::cleared, {Verb::say, {}, {}}, {}};
    case K::save: {
      std::ofstream file(action.arg, std::ios::binary | std::ios::trunc);
      file << model.transcript();
      file.close();
      if (!file) {
        model.notice("*** cannot write " + action.arg + ": " + std::strerror(errno), Category::error, now);
      } else {
        model.notice("*** transcript saved to " + action.arg, Category::info, now);
      }
      return {};
    }
    case K::quit: return {Submitted::Kind::quit, {Verb::say, {}, {}}, action.command.text};
    case K::earlier: {
      // /more [n]: the messages before the oldest held, inserted at the top of the pane.
      if (link_ended) {
        model.notice("*** not connected: not sent", Category::error, now);
        return {};
      }
      auto ask = model.request_earlier(action.command.count, now, /*explain=*/true);
      if (!ask) return {};
      return {Submitted::Kind::send, *ask, {}};
    }
    case K::send:
      model.scroll_to_end();
      if (link_ended) {
        model.notice("*** not connected: not sent", Category::error, now);
        return {};
      }
      return {Submitted::Kind::send, action.command, {}};
  }
  return {};
}

}  // namespace chat
