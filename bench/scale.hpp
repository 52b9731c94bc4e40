// `chatbench scale`: N clients (10,000 on a 2-core machine) connect and join, at most
// --in-progress at a time, then chat at a low rate for a while, then sit idle. Reports the
// connect/join time, the server's resident memory and thread count (from /proc/<pid>), its
// CPU while idle, the chat phase's delivery check and latency, and one final message round's
// latency to everyone (the time until the last receiver has it). With web clients in the room
// (--protocol mixed), the chat phase's and the round's deliveries and latency are also given by
// the kind of client that received them (fanout.hpp's KindFigures).
//
// Threads: main thread only (one Swarm).
#pragma once

#include "bench/checker.hpp"
#include "bench/fanout.hpp"
#include "bench/report.hpp"
#include "bench/target.hpp"
#include "bench/traffic.hpp"

#include <optional>
#include <ostream>
#include <string>

namespace chat::bench {

struct ScaleOptions {
  int clients = 10'000;
  int in_progress = 500;   // connections being set up at once
  double rate = 10;        // messages per second in the chat phase, all senders together
  double duration = 10;    // seconds of chat
  double idle = 10;        // seconds of silence, to measure the server's idle CPU
  int size = 64;
  double patience = 300;   // seconds for everybody to join
};

struct ScaleResult {
  ScaleOptions options;
  std::string label;
  Protocol protocol = Protocol::chat;
  double web_share = 0;
  bool tls = false;  // the clients spoke TLS
  std::string endpoint;
  JoinOutcome join;
  std::optional<ProcSample> at_start;    // the server before any client connected
  std::optional<ProcSample> after_join;
  std::optional<ProcSample> after_idle;  // after the chat and the idle phase
  // The server's resident memory per client in the room, KiB: (RSS now - RSS at start) / joined.
  std::optional<double> kib_per_client(const std::optional<ProcSample>& now) const;
  DeliveryChecker::Report chat;     // the chat phase
  double chat_p50_ms = 0, chat_p99_ms = 0, chat_max_ms = 0;
  std::optional<double> idle_cpu;   // percent of one core
  std::string idle_stats;           // chatserver's STATS right after the idle phase
  DeliveryChecker::Report round;    // the final message to everyone
  double round_p50_ms = 0, round_p99_ms = 0, round_max_ms = 0;
  double round_ms = 0;              // send -> the last receiver
  std::vector<KindFigures> chat_by_kind, round_by_kind;  // with web clients: per kind of receiver
  std::optional<ProcSample> at_end;
  double generator_cpu = 0;         // percent of one core, whole run
  std::string stats;
  std::string error;
  bool ok() const { return error.empty() && join.complete() && chat.ok() && round.ok(); }
};

ScaleResult run_scale(const ScaleOptions& options, const TargetOptions& target, std::ostream& progress);
void print_scale(const ScaleResult& result, std::ostream& out);
void json_scale(const ScaleResult& result, Json& json);

}  // namespace chat::bench
