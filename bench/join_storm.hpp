// `chatbench join`: N clients connect and join at once, as fast as they can. Reports the time
// until the last one is in the room and until the join chatter is over (every member has read
// the announcement of every later one), how many were refused or dropped and why, and then
// whether the room works: a few members send one message each, and every client that
// connected should get them all (a dropped client's are counted as lost to it).
//
// Threads: main thread only (one Swarm).
#pragma once

#include "bench/checker.hpp"
#include "bench/report.hpp"
#include "bench/target.hpp"
#include "bench/traffic.hpp"

#include <optional>
#include <ostream>
#include <string>

namespace chat::bench {

struct JoinStormOptions {
  int clients = 2000;
  int round_senders = 10;  // after the storm, this many members send one message each
  int size = 64;
  double patience = 120;   // seconds for the storm before it counts as timed out
};

struct JoinStormResult {
  JoinStormOptions options;
  std::string label;
  Protocol protocol = Protocol::chat;
  double web_share = 0;
  bool tls = false;  // the clients spoke TLS
  std::string endpoint;
  JoinOutcome join;
  DeliveryChecker::Report round;      // the messages after the storm
  std::size_t round_senders = 0;
  double round_ms = 0;                // first send -> last delivery
  double generator_cpu = 0;           // percent of one core during the storm
  std::optional<double> server_cpu;
  std::optional<ProcSample> server_after;
  std::string stats;
  std::string error;
  bool ok() const { return error.empty() && join.complete() && round.ok(); }
};

JoinStormResult run_join_storm(const JoinStormOptions& options, const TargetOptions& target, std::ostream& progress);
void print_join_storm(const JoinStormResult& result, std::ostream& out);
void json_join_storm(const JoinStormResult& result, Json& json);

// After a join: `senders` members send one message each, and the swarm runs until every
// client got them or nothing arrived for a few seconds. Shared with `scale`.
DeliveryChecker::Report message_round(Swarm& swarm, Traffic& traffic, std::size_t senders, double& round_ms);

}  // namespace chat::bench
