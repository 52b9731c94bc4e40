// Logging to stderr, one whole line at a time, each tagged with the role of the thread that
// wrote it: "02:14:07.120 [reader alice] info: joined from 127.0.0.1:53712". Under systemd, with
// stderr connected to the journal: "<6>[reader alice] info: joined from 127.0.0.1:53712".
//
// The trace level (chatserver --trace) adds one line for each decision a detector makes, with
// its inputs ("probe bob: POLLIN|POLLRDHUP, 0 bytes available, recv(MSG_PEEK): end of stream");
// at that level the time stamps carry microseconds, so that chatlab can order what the threads
// saw within a millisecond: "02:14:07.120345".
//
// Thread safe: any thread may log; each thread names its own role with set_thread_role().
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace chat {

enum class LogLevel { error = 0, warn = 1, info = 2, debug = 3, trace = 4 };

// "error", "warn", "info", "debug", "trace"; false for anything else.
bool parse_log_level(std::string_view text, LogLevel& out);

void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);

// The calling thread's tag, e.g. "listener", "reader alice". Thread-local; also the thread's
// name for the kernel (name_current_thread, cut to 15 bytes), except on the main thread, which
// keeps the process's name.
void set_thread_role(std::string role);
const std::string& thread_role();

// True when stderr is the systemd journal (JOURNAL_STREAM names stderr's device and inode):
// log lines then carry a syslog priority prefix ("<6>") and no time stamp of their own.
bool stderr_is_journal();

// Writes `line` to stderr exactly as given (plus LF), under the log lock.
void log_raw(std::string_view line);

void log_line(LogLevel level, std::string_view message);

template <typename... Args>
void log(LogLevel level, const Args&... args) {
  if (!log_enabled(level)) return;
  std::ostringstream out;
  (out << ... << args);
  log_line(level, out.str());
}

template <typename... Args> void log_error(const Args&... args) { log(LogLevel::error, args...); }
template <typename... Args> void log_warn(const Args&... args) { log(LogLevel::warn, args...); }
template <typename... Args> void log_info(const Args&... args) { log(LogLevel::info, args...); }
template <typename... Args> void log_debug(const Args&... args) { log(LogLevel::debug, args...); }
template <typename... Args> void log_trace(const Args&... args) { log(LogLevel::trace, args...); }
// Whether trace lines are wanted: for a detector that must compute its inputs' text first.
inline bool tracing() { return log_enabled(LogLevel::trace); }

}  // namespace chat
