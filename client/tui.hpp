// Interactive chatclient: the full-screen ncurses client used when stdin and stdout are a
// terminal. This pair is the only code that includes ncurses; what the panes hold is decided by
// ScreenModel (client/screen_model.hpp), the network by Link (client/link.hpp). History lines
// are drawn dimmed; Page Up with the first line held on screen (or /more) asks the server for
// earlier messages, which the model inserts above.
//
// Threads: everything here runs on the UI thread (the process's main thread), the only thread
// that touches the terminal, because ncurses is not thread safe. It polls stdin, the Link's
// event eventfd and a signalfd together, so network events, keys, SIGINT / SIGTERM / SIGHUP and
// SIGWINCH (through ncurses' KEY_RESIZE) all arrive on this one thread. The Link's network
// thread is started and joined inside run_interactive().
#pragma once

#include "client/link.hpp"

#include <iosfwd>
#include <optional>
#include <string>

namespace chat {

// Asks for a nickname on `in` / `out` (line mode, before the screen starts) until a valid one
// is typed. nullopt at end of input.
std::optional<std::string> ask_nick(std::istream& in, std::ostream& out);

// Runs the full-screen client until the user quits. Call from the main thread, with stdin and
// stdout on a terminal and the locale set (setlocale(LC_ALL, "")). Blocks SIGINT, SIGTERM and
// SIGHUP in the calling thread (and so in the Link's thread) and reads them from a signalfd.
// Returns the exit code: 0 after /quit, Ctrl-C, Ctrl-D or a signal; 1 if the session had
// already ended because the server was gone (--no-reconnect) or its TLS certificate was
// refused when the user left. A refused certificate's lines are written to stderr again once
// the terminal is restored, so that the warning stays on it, as ssh's does.
// `verbose`: the protocol's detail after each leave, goodbye and refusal (ScreenModel::show_details).
int run_interactive(LinkOptions options, bool verbose = false);

}  // namespace chat
