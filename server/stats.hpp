// ServerStats: the counters behind the STATS command (docs/protocol.md), kept where the work
// happens: the room counts events and leaves, the writers deliveries and bytes, the poller its
// sweep times and the largest backlog, the readers their backpressure pauses and flood control,
// the listener the connections it refused.
//
// Threads: every counter is an atomic that any thread may bump; the sweep times are the poller
// thread's, guarded by sweep_mutex_ so that a reader answering STATS can read them.
#pragma once

#include "common/protocol.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>

namespace chat {

class ServerStats {
 public:
  ServerStats() : started_(std::chrono::steady_clock::now()) {}

  std::atomic<std::uint64_t> connected{0};    // sessions accepted and not yet reaped
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> unreaped{0};     // sessions finished, not yet reaped by the poller
  std::atomic<std::uint64_t> events{0};       // room events appended to the history
  std::atomic<std::uint64_t> deliveries{0};   // room events written to a member
  std::atomic<std::uint64_t> bytes_out{0};    // bytes written to clients
  std::atomic<std::uint64_t> writes{0};       // sendmsg calls that wrote something
  std::atomic<std::uint64_t> pauses{0};       // times a reader stopped reading (backpressure)
  std::atomic<std::uint64_t> paused_now{0};   // readers stopped right now
  std::atomic<std::uint64_t> throttled_now{0};  // readers waiting for flood control right now
  std::atomic<std::uint64_t> throttles{0};     // times a reader waited for flood control
  std::atomic<std::uint64_t> refused_full{0};  // connections refused: BYE server-full
  std::atomic<std::uint64_t> refused_per_ip{0};  // connections refused: BYE too-many
  std::atomic<std::uint64_t> refused_not_allowed{0};  // connections refused: BYE not-allowed (--allow)
  std::atomic<std::uint64_t> refused_clear_text{0};   // clear-text connections refused by --tls-only
  std::atomic<std::uint64_t> tls_clients{0};          // TLS handshakes completed
  std::atomic<std::uint64_t> tls_failed{0};           // TLS handshakes that failed (bad ClientHello, untrusted certificate)
  std::atomic<std::uint64_t> refused_banned{0};       // connections refused: BYE banned (BAN)
  std::atomic<std::uint64_t> wrong_password{0};       // wrong room passwords (--password-file)
  std::atomic<std::uint64_t> refused_busy{0};  // connections refused or ended: BYE server-busy
  std::atomic<std::uint64_t> backlog_peak{0}; // the largest backlog the poller or a writer saw
  std::atomic<std::uint64_t> backlog_now{0};  // the largest backlog at the last sweep
  std::atomic<std::uint64_t> probe_epoll{0};  // 1 while the poller probes through epoll, 0 with poll(2)

  void count_leave(LeaveCause cause) { ++leaves_[static_cast<std::size_t>(cause)]; }
  void note_backlog(std::uint64_t bytes);
  // Poller thread: one sweep took `took`, of which `cpu` on the CPU (the rest: the probe's 1 ms
  // wait, or waiting to be scheduled).
  void record_sweep(std::chrono::steady_clock::duration took, std::chrono::nanoseconds cpu);

  // "STATS clients=3 joined=2 threads=7 ...": one line, no LF. `joined` and `writers` come from
  // the room and the pool; the thread count from /proc/self/status.
  std::string line(std::size_t joined, std::size_t writers, std::size_t history_chunks) const;

 private:
  static constexpr std::size_t sweep_window = 100;  // the last 10 s at the default 100 ms
  const std::chrono::steady_clock::time_point started_;
  std::array<std::atomic<std::uint64_t>, 12> leaves_{};  // by LeaveCause
  mutable std::mutex sweep_mutex_;
  std::array<std::uint32_t, sweep_window> sweeps_us_{};  // guarded by sweep_mutex_: a ring
  std::array<std::uint32_t, sweep_window> sweeps_cpu_us_{};  // guarded by sweep_mutex_: the same sweeps' CPU time
  std::size_t sweeps_ = 0;                               // guarded by sweep_mutex_: recorded so far
  std::uint64_t sweep_max_us_ = 0;                       // guarded by sweep_mutex_: since start
};

}  // namespace chat
