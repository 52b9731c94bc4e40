#include "common/render.hpp"

#include "common/wording.hpp"

#include <ctime>

namespace chat {

std::string clock_stamp(std::chrono::system_clock::time_point when) {
  const std::time_t t = std::chrono::system_clock::to_time_t(when);
  std::tm local{};
  localtime_r(&t, &local);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &local);
  return buf;
}

std::optional<std::string> render_event(const Event& e, std::optional<std::size_t> online, bool verbose) {
  using K = Event::Kind;
  auto count = [&] { return online ? " (" + std::to_string(*online) + " online)" : std::string(); };
  auto more = [&] { return verbose ? wording::details(e.code, e.text) : std::string(); };
  switch (e.kind) {
    case K::welcome: return "*** welcome, " + e.nick + " (type /help for commands)";
    case K::users: {
      std::string out = "*** online (" + std::to_string(e.users.size()) + "):";
      for (const auto& u : e.users) out += ' ' + u;
      return out;
    }
    case K::join: return "*** " + e.nick + " joined" + count();
    case K::leave: return "*** " + wording::leave(e.nick, e.code, e.text) + count() + more();
    case K::msg: return "<" + e.nick + "> " + e.text;
    case K::me: return "* " + e.nick + " " + e.text;
    case K::priv: return "[private] " + e.nick + " -> " + e.arg + ": " + e.text;
    case K::nick: return "*** " + e.nick + " is now known as " + e.arg;
    case K::error: return "*** " + wording::refusal(e.code, e.text) + (verbose ? " [" + e.code + "]" : "");
    case K::bye: return "*** " + wording::bye(e.code, e.text) + more();
    case K::comment: return "# " + e.text;
    case K::ping:
    case K::pong: return std::nullopt;
  }
  return std::nullopt;
}

std::optional<std::string> render_line(const Event& e, std::chrono::system_clock::time_point when,
                                       std::optional<std::size_t> online, bool verbose) {
  auto body = render_event(e, online, verbose);
  if (!body) return std::nullopt;
  return "[" + clock_stamp(when) + "] " + *body;
}

const std::vector<std::string>& help_lines() {
  static const std::vector<std::string> lines{
      "*** commands:",
      "***   <text>               say something to everyone",
      "***   /me <action>         * you do something",
      "***   /msg <nick> <text>   private message (also: @nick <text>)",
      "***   /nick <new>          change your nickname",
      "***   /who                 who is online",
      "***   /quit [reason]       leave",
      "***   //text               say a line that starts with /",
  };
  return lines;
}

}  // namespace chat
