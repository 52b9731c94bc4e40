// Poller: the one shared thread that checks every session (PoshChat's poll runspace).
//
// Every --poll-interval it
//   1. reaps sessions whose threads have returned,
//   2. probes every socket at once: one poll(2) with a 1 ms timeout over all of them (with
//      --probe auto, the default, one epoll_wait instead once there are over 1,000). A socket
//      that is readable with 0 bytes available is confirmed with recv(MSG_PEEK) before anyone
//      is told: 0 is closed, ECONNRESET reset, ETIMEDOUT timeout, EAGAIN a false alarm. The
//      session ends if the reader has not noticed by itself within a grace of 1 s (see
//      Poller::probe for why);
//   3. ends clients that have not joined within --handshake-timeout,
//   4. pings protocol clients quiet for --ping-interval, and ends those silent for
//      --ping-timeout after the PING (no-pong),
//   5. ends clients whose socket has taken nothing for --send-timeout, or that are more than
//      --send-queue bytes behind (too-slow; the writers check the second rule too), and forces
//      shut sessions whose goodbye takes longer than ServerConfig::goodbye_timeout,
//   6. records its own duration for STATS.
//
// Threads: constructed, started and stopped by the main thread; run() is the poller thread.
#pragma once

#include "server/config.hpp"

#include <sys/epoll.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <system_error>
#include <thread>
#include <vector>

namespace chat {

// The poller's probe, on its own: one poll(2) over all of `fds` with a 1 ms timeout, then for
// each socket that is readable with 0 bytes available, the recv(MSG_PEEK) confirmation.
// Returns, in the order of `fds`, the error that proves a socket's peer is gone (eof,
// connection_reset, timed_out, ...) or nullopt for a live one. Thread safe: it only reads the
// sockets' state, so it may run while other threads read from and write to them.
std::vector<std::optional<std::error_code>> probe_sockets(std::span<const int> fds);

// The two steps of probe_sockets(), for callers that must do the second under a lock:
// poll_sockets() is the one poll(2), returning each socket's revents; confirm_departure() is
// the confirmation for one socket given its revents (nullopt: alive). Careful: when the
// socket has a pending error, confirm_departure() reads it, and that clears it.
std::vector<short> poll_sockets(std::span<const int> fds);
std::optional<std::error_code> confirm_departure(int fd, short revents);

class Session;
class SessionRegistry;
class ServerStats;

// The poller's bookkeeping for one session. Each Session holds one (so that a sweep reads it
// next to the session's other hot fields), but only the poller thread can read or change it.
class ProbeSlot {
  friend class Poller;
  using Clock = std::chrono::steady_clock;
  // The PING waiting for an answer (nullopt: none).
  std::optional<Clock::time_point> ping_sent_at;
  // Since when the probe has found the peer gone, sweep after sweep.
  std::optional<Clock::time_point> suspected_gone_since;
  // --probe epoll or auto: in the poller's epoll set, and the events it reported this sweep.
  bool in_probe_set = false;
  short probe_revents = 0;
  // Not before then can the keepalive budget run out (the last ACK's age, as of the last
  // TCP_INFO, subtracted from the budget): a healthy idle client costs one getsockopt per
  // keepalive interval, not one per sweep.
  Clock::time_point ack_check_due{};
  // --trace: the backlog last reported for this client while its socket was full.
  std::uint64_t traced_backlog = 0;
};

class Poller {
 public:
  Poller(const ServerConfig& config, SessionRegistry& sessions, ServerStats& stats);
  ~Poller();

  void start();  // main thread
  void stop();   // main thread; wakes and joins the poller thread; idempotent

  // One sweep over `sessions`, exactly as the thread does it. Poller thread (or a test that
  // owns the sessions and runs no poller thread).
  void sweep(const std::vector<std::shared_ptr<Session>>& sessions);

 private:
  void run(std::stop_token stop);
  void probe(const std::vector<std::shared_ptr<Session>>& sessions);
  // The probe's first step for `probed`: each socket's revents, by --probe poll or epoll.
  std::vector<short> readiness(const std::vector<Session*>& probed);
  // Takes `session`'s socket out of the epoll set, if it is in it.
  void leave_probe_set(Session& session);
  // The timers of one session; returns its backlog (bytes behind).
  std::uint64_t check_timers(Session& session, std::chrono::steady_clock::time_point now);

  const ServerConfig& config_;
  SessionRegistry& sessions_;
  ServerStats& stats_;
  std::uint64_t next_token_ = 1;  // poller thread only
  // --trace: the probe's counts since trace_since_, logged once a second. Poller thread only.
  std::chrono::steady_clock::time_point trace_since_{};
  std::uint64_t trace_sweeps_ = 0;
  std::uint64_t trace_readable_ = 0;
  bool using_epoll_;              // this sweep probes through probe_epoll_ (poller thread only)
  int probe_epoll_ = -1;          // --probe epoll or auto: the set of probed sockets (poller thread only)
  std::vector<epoll_event> events_;  // poller thread only
  std::vector<Session*> pinged_;     // poller thread only: PINGs queued this sweep, writers to wake
  // The sessions as of the last change (SessionRegistry::refresh). Poller thread only.
  std::vector<std::shared_ptr<Session>> snapshot_;
  std::uint64_t snapshot_version_ = 0;
  std::mutex wait_mutex_;         // only for sleeping on wake_
  std::condition_variable_any wake_;
  std::jthread thread_;
};

}  // namespace chat
