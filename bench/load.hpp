// `chatbench load`: N joined clients, a few of them senders. Each message carries its send
// time (steady clock, nanoseconds) in its text; every receiver (all N, the sender included:
// the room echoes a message to its sender too) takes the difference on reading it. Reported:
// delivery latency p50 / p99 / max across all receivers, and delivered lines per second.
//
// Two phases, each sending --messages messages:
//   paced: the senders together send --rate messages per second (an open loop: latency under
//          a steady load the server can carry);
//   flood: as fast as the server takes them, with at most --window messages in flight (sent
//          but not yet read by every receiver), so throughput is the server's, and no queue
//          grows toward --send-queue.
//
// Threads: main thread only; every client is a LineConn in one poll(2) loop.
#pragma once

#include "bench/report.hpp"

#include <ostream>
#include <string>
#include <vector>

namespace chat::bench {

struct LoadOptions {
  std::string server_path;
  int clients = 50;
  int messages = 2000;  // per phase
  int size = 100;       // bytes of message text
  int senders = 2;
  int rate = 1000;      // messages per second, all senders together, in the paced phase
  int window = 100;     // messages in flight in the flood phase
};

struct LoadPhase {
  std::string name;          // "paced" or "flood"
  std::string offered;       // "1000 msg/s", "window 100"
  long long sent = 0;
  long long expected = 0;    // sent x receivers
  long long delivered = 0;
  Summary latency;           // ms, over every delivery
  double seconds = 0;        // first send -> last delivery
  double lines_per_second = 0;
  std::string error;
};

struct LoadResult {
  LoadOptions options;
  double join_ms = 0;
  std::vector<LoadPhase> phases;
  std::vector<std::string> dropped;  // LEAVE lines for our clients (nobody should leave)
  std::string error;
  bool ok() const;
};

LoadResult run_load(const LoadOptions& options, std::ostream& progress);
void print_load(const LoadResult& result, std::ostream& out);
void json_load(const LoadResult& result, Json& json);

}  // namespace chat::bench
