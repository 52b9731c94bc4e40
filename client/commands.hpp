// What interactive chatclient does with a line the user entered, for both windowed front ends:
// the full-screen terminal client (client/tui.cpp) and the Qt window (client/qt/). The model
// (client/screen_model.hpp) gets the notices: help, /save's result, input errors, "not
// connected"; the caller is told what is left for it, which touches its own state: hand a
// command to the Link (typed ones, and /more's HISTORY BEFORE from ScreenModel::request_earlier),
// start quitting, or clear its own view of the pane.
//
// Not thread safe: the UI thread calls it, with the UI thread's ScreenModel.
#pragma once

#include "client/screen_model.hpp"
#include "common/protocol.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace chat {

struct Submitted {
  enum class Kind { nothing, send, quit, cleared };
  Kind kind = Kind::nothing;
  Command command{Verb::say, {}, {}};  // send: for Link::send
  std::string reason;                  // quit: for Link::quit
};

// `line` as the user entered it; `link_ended`: the Link has ended (a send is refused with a
// notice); `more_help`: the front end's own lines for /help (its keys).
Submitted submit_line(ScreenModel& model, std::string_view line, bool link_ended,
                      const std::vector<std::string>& more_help);

}  // namespace chat
