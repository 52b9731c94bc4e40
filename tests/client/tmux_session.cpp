#include "tests/client/tmux_session.hpp"

#include "tests/support/process.hpp"

#include <unistd.h>

#include <atomic>
#include <iostream>
#include <stdexcept>
#include <thread>

namespace chat::test {
namespace {
constexpr auto kCommandWait = std::chrono::seconds(10);
std::atomic<int> g_sessions{0};
}  // namespace

TmuxSession::TmuxSession(const std::string& command, int width, int height)
    : socket_("chat-tui-test-" + std::to_string(::getpid()) + "-" + std::to_string(g_sessions++)) {
  // -f /dev/null: none of the user's configuration. remain-on-exit stays off, so the session
  // ends when the program does (see alive()).
  if (!tmux({"-f", "/dev/null", "new-session", "-d", "-x", std::to_string(width), "-y", std::to_string(height),
             command})) {
    throw std::runtime_error("tmux new-session failed for: " + command);
  }
}

TmuxSession::~TmuxSession() { tmux({"kill-server"}); }

std::optional<std::string> TmuxSession::tmux(std::vector<std::string> args) {
  std::vector<std::string> argv{"tmux", "-u", "-L", socket_};
  argv.insert(argv.end(), args.begin(), args.end());
  Subprocess p(argv);
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + kCommandWait;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left <= std::chrono::milliseconds::zero()) return std::nullopt;
    auto line = p.read_line(Stream::out, left);
    if (!line) break;
    out += *line + "\n";
  }
  const auto code = p.wait_exit(kCommandWait);
  if (code != 0) return std::nullopt;
  return out;
}

bool TmuxSession::type(const std::string& text) { return tmux({"send-keys", "-t", "=0:", "-l", text}).has_value(); }

bool TmuxSession::keys(const std::vector<std::string>& names) {
  std::vector<std::string> args{"send-keys", "-t", "=0:"};
  args.insert(args.end(), names.begin(), names.end());
  return tmux(args).has_value();
}

std::string TmuxSession::capture(bool escapes) {
  std::vector<std::string> args{"capture-pane", "-p", "-t", "=0:"};
  if (escapes) args.push_back("-e");
  return tmux(args).value_or("");
}

std::string TmuxSession::display(const std::string& format) {
  auto out = tmux({"display-message", "-p", "-t", "=0:", format}).value_or("");
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool TmuxSession::resize(int width, int height) {
  return tmux({"resize-window", "-t", "=0:", "-x", std::to_string(width), "-y", std::to_string(height)}).has_value();
}

bool TmuxSession::alive() { return tmux({"has-session", "-t", "=0"}).has_value(); }

bool TmuxSession::wait_gone(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(10);
  while (alive()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    // Polling, as in wait_for(): a detached tmux session cannot tell us when it ends.
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(100));
  }
  return true;
}

bool TmuxSession::wait_for(const std::function<bool(const std::string&)>& match, std::chrono::milliseconds timeout,
                           bool escapes, std::string* last) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(10);
  while (true) {
    const std::string screen = capture(escapes);
    if (last) *last = screen;
    if (match(screen)) return true;
    if (std::chrono::steady_clock::now() >= deadline) {
      // Catch2 v2 builds INFO messages eagerly, so the screen that did not match is said here.
      std::cerr << "tmux session " << socket_ << ": waited " << timeout.count()
                << " ms in vain; the last screen was:\n" << screen << std::flush;
      return false;
    }
    // Polling the screen: tmux has no "tell me when the pane changes" for a detached session.
    // The pause grows to 100 ms; the deadline, not the pause, bounds the wait.
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(100));
  }
}

bool TmuxSession::wait_for_text(std::string_view text, std::chrono::milliseconds timeout, std::string* last) {
  return wait_for([&](const std::string& s) { return s.find(text) != std::string::npos; }, timeout, false, last);
}

std::vector<std::string> screen_rows(const std::string& screen) {
  std::vector<std::string> rows;
  std::size_t start = 0;
  while (start < screen.size()) {
    const auto end = screen.find('\n', start);
    if (end == std::string::npos) {
      rows.push_back(screen.substr(start));
      break;
    }
    rows.push_back(screen.substr(start, end - start));
    start = end + 1;
  }
  return rows;
}

std::string row_with(const std::string& screen, std::string_view text) {
  for (const auto& row : screen_rows(screen)) {
    if (row.find(text) != std::string::npos) return row;
  }
  return {};
}

bool sets_colour(std::string_view row, std::string_view params) {
  std::size_t at = 0;
  while ((at = row.find("\x1b[", at)) != std::string_view::npos) {
    const auto end = row.find('m', at);
    if (end == std::string_view::npos) return false;
    const std::string_view seq = row.substr(at + 2, end - at - 2);  // "1;38;5;208"
    // `params` must appear as whole parameters.
    for (std::size_t pos = seq.find(params); pos != std::string_view::npos; pos = seq.find(params, pos + 1)) {
      const bool starts = pos == 0 || seq[pos - 1] == ';';
      const bool ends = pos + params.size() == seq.size() || seq[pos + params.size()] == ';';
      if (starts && ends) return true;
    }
    at = end;
  }
  return false;
}

}  // namespace chat::test
