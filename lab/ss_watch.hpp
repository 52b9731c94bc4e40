// SsWatch: what the kernel shows of the server's socket to the victim, sampled with
// `ss -tnoi` every 100 ms (inside the server's network namespace when there is one): its TCP
// state, the timer running on it (keepalive with the probes sent, or "on" for retransmission
// with the retransmissions made), unacknowledged segments, the backoff, and the queues. A
// sample becomes a timeline event when any of that changes, so the keepalive probes and the
// retransmissions the kernel makes after a pulled cable appear one by one.
//
// Threads: the constructor starts the ss thread, the destructor stops and joins it. The thread
// only adds to the Timeline (which is thread safe).
#pragma once

#include "lab/timeline.hpp"

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace chat::lab {

// One `ss -tnoi` record, the fields chatlab shows. Exposed for the tests.
struct SsSample {
  std::string state;        // ESTAB, CLOSE-WAIT, ...
  long recv_q = 0, send_q = 0;
  std::string timer;        // "keepalive", "on" (retransmission), "persist", "" (none)
  std::string timer_left;   // "1.9sec" (not shown: some ss versions print it with the wrong unit)
  int timer_count = 0;      // keepalive probes sent, or retransmissions
  int unacked = 0;
  std::string retrans;      // "0/3": of the oldest segment / in all
  int backoff = 0;
  long lastack_ms = -1;     // since the last ACK came; -1 if ss did not say

  // What a person reads in the timeline.
  std::string describe() const;
  // The parts whose change is worth an event (not the counters that move every sample).
  std::string signature() const;
};

// Parses one record: its first line and, if ss printed it, its indented info line.
std::optional<SsSample> parse_ss_record(const std::string& first_line, const std::string& info_line);

class SsWatch {
 public:
  // Watches the TCP socket from local port `server_port` to remote port `peer_port`.
  SsWatch(std::string netns, std::uint16_t server_port, std::uint16_t peer_port, Timeline& timeline);
  ~SsWatch();
  SsWatch(const SsWatch&) = delete;
  SsWatch& operator=(const SsWatch&) = delete;

  // Waits (at most 5 s) until the first sample is on the timeline: the state before the fault.
  void wait_first_sample();

 private:
  void run(std::stop_token stop);
  // One `ss` run: the record, or nullopt when the kernel lists no such socket. Throws
  // std::runtime_error when ss cannot be run or fails.
  std::optional<SsSample> sample() const;

  const std::string netns_;
  const std::uint16_t server_port_, peer_port_;
  Timeline& timeline_;
  std::mutex wait_mutex_;  // for sleeping on wake_, and guards sampled_
  std::condition_variable_any wake_;
  std::condition_variable_any first_;
  bool sampled_ = false;   // guarded by wait_mutex_
  std::jthread thread_;    // last: stopped and joined first
};

}  // namespace chat::lab
