// Timeline: everything chatlab saw during one run of a scenario, from every source, in time
// order: the server's log lines (with --trace, each detector's decision and its inputs, tagged
// with the thread that made it), the `ss -tnoi` samples of the server's socket, the lines the
// observer client read, and chatlab's own steps (the fault). Times are wall-clock, because the
// server stamps its lines with the wall clock (common/log.cpp); the server and chatlab run on
// one machine, so the stamps compare.
//
// Threads: thread safe (mutex_). The server's stderr drain thread, the observer thread, the ss
// thread and the main thread add events; the main thread reads them at the end.
#pragma once

#include <chrono>
#include <cstddef>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chat::lab {

using WallClock = std::chrono::system_clock;

struct LabEvent {
  WallClock::time_point at;
  std::string source;  // the server thread's role ("reader victim", "poller"), "ss", "observer", "chatlab"
  std::string text;
};

// One chatserver log line, "HH:MM:SS.ffffff [role] level: message" (.fff without --trace),
// taken to be on the day that puts it nearest to `received`. nullopt for any other line.
struct ServerLine {
  WallClock::time_point at;
  std::string role;
  std::string level;
  std::string message;
};
std::optional<ServerLine> parse_server_line(std::string_view line, WallClock::time_point received);

class Timeline {
 public:
  // At most this many events are kept (a flood scenario logs a line per received chunk); later
  // ones are counted in dropped() instead.
  static constexpr std::size_t max_events = 20'000;

  void add(std::string source, std::string text, WallClock::time_point at = WallClock::now());
  // A line the server wrote to stderr. Debug lines and lines naming an ignored client are
  // dropped here; its lines before it had a nickname are left out by events().
  // `prefix` goes before the thread's name ("B " for a second chatserver's lines).
  void add_server_line(const std::string& line, const std::string& prefix = {});
  // Leaves out the lines about a client: its nickname, and (found through the listener's
  // "accepted <address>:<port> as #N" line) its number before it joined.
  void ignore_client(std::string nick, std::uint16_t port);
  // The moment of the fault: events() times count from it.
  void mark_fault(WallClock::time_point at);
  std::optional<WallClock::time_point> fault() const;

  // Waits until an event for which `match(source, text)` is true has been added, or until
  // `deadline`. True if one was.
  bool wait_for(const std::function<bool(const std::string&, const std::string&)>& match,
                std::chrono::steady_clock::time_point deadline) const;

  // The events kept, in time order (ties in the order they were added), told for people:
  // - one name per reader thread: the server names a client's reader `reader #2` until the
  //   client has a nickname, then `reader victim`; its earlier lines take the later name (from
  //   its "joined from <address> as #2" line, or "resumed from <address> as #3" for a seat
  //   taken back on a new connection), so that the one thread reads as one.
  std::vector<LabEvent> events() const;
  std::size_t dropped() const;

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable added_;  // notified for every event added
  std::vector<LabEvent> events_;        // guarded by mutex_
  std::vector<std::string> ignored_;    // guarded by mutex_: nicknames
  std::vector<std::uint16_t> ignored_ports_;  // guarded by mutex_
  std::optional<WallClock::time_point> fault_;  // guarded by mutex_
  std::size_t dropped_ = 0;             // guarded by mutex_
};

// Milliseconds from `from` to `to`.
double ms_between(WallClock::time_point from, WallClock::time_point to);

}  // namespace chat::lab
