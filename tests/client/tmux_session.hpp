// TmuxSession: a program running in a detached tmux session on a private tmux server, for
// end-to-end tests of interactive chatclient: keys go in with `send-keys`, the screen comes out
// with `capture-pane`. tmux is a real terminal emulator, so what the test reads is what a person
// would see.
//
// Threads: not thread safe. One test thread creates, uses and destroys a TmuxSession. Every
// tmux command is a short child process (Subprocess) awaited with a deadline.
//
// Each TmuxSession has its own tmux server (`tmux -L <unique name>`), which the destructor kills
// (`kill-server`): tests never touch the user's own tmux.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chat::test {

class TmuxSession {
 public:
  // Runs `command` (a shell command line) in a new session of `width` x `height` cells.
  // Throws std::runtime_error if tmux cannot start it.
  TmuxSession(const std::string& command, int width = 120, int height = 40);
  ~TmuxSession();

  TmuxSession(const TmuxSession&) = delete;
  TmuxSession& operator=(const TmuxSession&) = delete;

  // Types `text` literally (send-keys -l).
  bool type(const std::string& text);
  // Sends key names: "Enter", "PageUp", "Up", "C-c", ...
  bool keys(const std::vector<std::string>& names);

  // The visible screen, one line per row; with `escapes`, with the SGR sequences (colours).
  std::string capture(bool escapes = false);
  // A tmux format evaluated for the pane, e.g. "#{cursor_x}", "#{pane_title}", "#{pane_dead}".
  std::string display(const std::string& format);
  // Resizes the window.
  bool resize(int width, int height);
  // True while the session (and so the program) is still there.
  bool alive();
  // Waits (bounded by `timeout`) until the program in the pane has exited and tmux with it.
  bool wait_gone(std::chrono::milliseconds timeout);

  // Captures repeatedly until `match` accepts the screen or `timeout` passes. Returns whether it
  // matched; `last` gets the last screen seen (for the failure message).
  bool wait_for(const std::function<bool(const std::string&)>& match, std::chrono::milliseconds timeout,
                bool escapes = false, std::string* last = nullptr);
  bool wait_for_text(std::string_view text, std::chrono::milliseconds timeout, std::string* last = nullptr);

 private:
  // Runs `tmux -u -L <socket> args...`; its stdout, or nullopt if it failed or timed out.
  std::optional<std::string> tmux(std::vector<std::string> args);

  std::string socket_;
};

// The rows of a captured screen.
std::vector<std::string> screen_rows(const std::string& screen);
// The first row holding `text`, or "" when none does.
std::string row_with(const std::string& screen, std::string_view text);
// True if `row` (captured with escapes) sets the SGR colour `params` ("32", "38;5;208", ...)
// somewhere, alone or among other parameters.
bool sets_colour(std::string_view row, std::string_view params);

}  // namespace chat::test
