#include "common/log.hpp"

#include "common/thread.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>

namespace chat {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::info)};
std::mutex g_stderr_mutex;  // keeps each line whole when threads log at once
thread_local std::string t_role = "main";

constexpr std::string_view level_name(LogLevel level) {
  switch (level) {
    case LogLevel::error: return "error";
    case LogLevel::warn: return "warn";
    case LogLevel::info: return "info";
    case LogLevel::debug: return "debug";
    case LogLevel::trace: return "trace";
  }
  return "?";
}

}  // namespace

bool parse_log_level(std::string_view text, LogLevel& out) {
  for (LogLevel l : {LogLevel::error, LogLevel::warn, LogLevel::info, LogLevel::debug, LogLevel::trace}) {
    if (text == level_name(l)) {
      out = l;
      return true;
    }
  }
  return false;
}

void set_log_level(LogLevel level) { g_level.store(static_cast<int>(level), std::memory_order_relaxed); }

bool log_enabled(LogLevel level) { return static_cast<int>(level) <= g_level.load(std::memory_order_relaxed); }

void set_thread_role(std::string role) {
  // The same name for top -H, ps -L and gdb; not for the main thread, whose kernel name is the
  // process's (ps, pgrep and systemd show it: it stays "chatserver").
  if (::gettid() != ::getpid()) name_current_thread(role);
  t_role = std::move(role);
}

const std::string& thread_role() { return t_role; }

void log_raw(std::string_view line) {
  std::lock_guard lock(g_stderr_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fputc('\n', stderr);
  std::fflush(stderr);
}

bool stderr_is_journal() {
  // systemd sets JOURNAL_STREAM to "<device>:<inode>" of the stream it connected to stderr
  // (systemd.exec(5)); it is inherited by children whose stderr may be something else, so the
  // descriptor is checked too.
  static const bool journal = [] {
    const char* stream = std::getenv("JOURNAL_STREAM");
    unsigned long long device = 0, inode = 0;
    if (stream == nullptr || std::sscanf(stream, "%llu:%llu", &device, &inode) != 2) return false;
    struct stat st {};
    return ::fstat(STDERR_FILENO, &st) == 0 && st.st_dev == device && st.st_ino == inode;
  }();
  return journal;
}

void log_line(LogLevel level, std::string_view message) {
  if (stderr_is_journal()) {
    // The journal stamps each line itself and reads the priority from a "<N>" prefix
    // (sd-daemon(3)): error 3, warning 4, info 6, debug 7.
    static constexpr char priority[] = {'3', '4', '6', '7', '7'};
    std::string line;
    line.reserve(message.size() + t_role.size() + 24);
    line.append("<").append(1, priority[static_cast<int>(level)]).append(">[").append(t_role).append("] ");
    line.append(level_name(level)).append(": ").append(message);
    log_raw(line);
    return;
  }
  using namespace std::chrono;
  const auto now = system_clock::now();
  const std::time_t t = system_clock::to_time_t(now);
  std::tm local{};
  localtime_r(&t, &local);
  char stamp[32];
  const auto n = std::strftime(stamp, sizeof stamp, "%H:%M:%S", &local);
  if (log_enabled(LogLevel::trace)) {
    const auto us = duration_cast<microseconds>(now.time_since_epoch()).count() % 1'000'000;
    std::snprintf(stamp + n, sizeof stamp - n, ".%06d", static_cast<int>(us));
  } else {
    const auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
    std::snprintf(stamp + n, sizeof stamp - n, ".%03d", static_cast<int>(ms));
  }
  std::string line;
  line.reserve(message.size() + t_role.size() + 32);
  line.append(stamp).append(" [").append(t_role).append("] ").append(level_name(level)).append(": ");
  line.append(message);
  log_raw(line);
}

}  // namespace chat
