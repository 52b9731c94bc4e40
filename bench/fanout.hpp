// `chatbench fanout`: N clients join one room; S of them send M messages each (or for a
// duration), paced at R messages per second per sender or as fast as the server takes them.
// Reports deliveries per second (to clients other than the sender), delivery latency p50 / p99
// / max, and what the checker found: every receiver must get every message exactly once, in
// each sender's order, intact, and from chatserver in the same global order as everyone else.
// Any failure is printed and makes chatbench exit 1.
//
// With web clients in the room (--protocol mixed, TargetOptions::web_share), the deliveries to
// others are also reported by the kind of client that received them, web (WebSocket) and tcp
// (lines): each kind's deliveries/s over its own time (first send -> the last delivery to a
// client of that kind), per client of the kind, and its latency. Senders are of both kinds
// too (swarm.hpp spreads the web clients evenly over the numbers, senders included).
//
// Threads: main thread only (one Swarm).
#pragma once

#include "bench/checker.hpp"
#include "bench/report.hpp"
#include "bench/target.hpp"
#include "bench/traffic.hpp"

#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace chat::bench {

struct FanoutOptions {
  int clients = 100;
  int senders = 10;
  int size = 64;          // payload bytes
  double rate = 0;        // messages per second per sender; 0: as fast as possible (--max)
  int msgs = 1000;        // per sender, unless duration > 0
  double duration = 0;    // seconds of sending instead of a count
  int window = 0;         // --max: messages per sender not yet delivered to everyone; 0: no limit
  int in_progress = 8;    // clients joining at once before the run
  int threads = 1;        // generator threads, each with its own share of the clients
  // Called with the server's port and pid (0: unknown) once the run is over and its STATS are
  // read, before a server started here is stopped (chatbench history: how long until the
  // archive has it all on disk, and what its thread spent).
  std::function<void(std::uint16_t port, int pid)> before_stop;
};

// The deliveries to others received by one kind of client (web or tcp) of a run.
struct KindFigures {
  std::string kind;             // "web" or "tcp"
  std::size_t clients = 0;      // in the room, of this kind
  std::uint64_t to_others = 0;  // deliveries to them of others' messages
  double seconds = 0;           // first send -> the last delivery to one of them
  double deliveries_per_second = 0;
  double per_client = 0;        // deliveries_per_second / clients
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
};
// Figures by kind from the Traffic of each generator thread and its Swarm (only the kinds with
// clients).
std::vector<KindFigures> kind_figures(const std::vector<const Traffic*>& traffic, const std::vector<const Swarm*>& swarms,
                                      Clock::time_point first_send);
void print_kinds(const std::vector<KindFigures>& kinds, std::ostream& out, std::string_view indent = "  ");
void json_kinds(std::string_view key, const std::vector<KindFigures>& kinds, Json& json);

struct FanoutResult {
  FanoutOptions options;
  std::string label;
  Protocol protocol = Protocol::chat;
  double web_share = 0;  // the share of web clients (TargetOptions::web_share)
  bool tls = false;      // the clients spoke TLS (TargetOptions::tls)
  std::string endpoint;
  JoinOutcome join;
  DeliveryChecker::Report check;
  std::uint64_t sent = 0;
  std::uint64_t stale = 0;
  double seconds = 0;          // first send -> last delivery
  double deliveries_per_second = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  std::vector<KindFigures> by_kind;  // with web clients: per kind of receiver
  double generator_cpu = 0;    // percent of one core, over the sending and draining
  std::optional<double> server_cpu;
  // The server's CPU time per delivery to others (ns): what one delivery costs it, whoever
  // was the limit. Only where the run was long enough to measure CPU.
  std::optional<double> server_ns_per_delivery;
  std::optional<ProcSample> server_after;
  // --instances N > 1 (one room on N chatservers through Redis): latency of deliveries whose
  // sender was on the receiver's own instance, and on another (through Redis either way: an
  // event enters every instance's room when it comes back from the stream); redis-server's
  // CPU over the run and per message said.
  std::size_t instances = 1;
  double p50_same_ms = 0, p99_same_ms = 0, p50_cross_ms = 0, p99_cross_ms = 0;
  std::optional<double> redis_cpu;               // percent of one core
  std::optional<double> redis_us_per_message;    // redis-server CPU microseconds per message sent
  std::string stats_before, stats_after;  // chatserver's STATS lines
  std::size_t ended_during_run = 0;
  std::string ended_reasons;
  std::string error;
  bool ok() const;
  bool generator_bound() const { return generator_cpu >= 90; }
};

FanoutResult run_fanout(const FanoutOptions& options, const TargetOptions& target, std::ostream& progress);
void print_fanout(const FanoutResult& result, std::ostream& out);
void json_fanout(const FanoutResult& result, Json& json);

// Shared by the side-by-side reports.
void print_check(const DeliveryChecker::Report& check, std::ostream& out, std::size_t receivers);
void json_check(const DeliveryChecker::Report& check, Json& json);
void json_sample(std::string_view key, const std::optional<ProcSample>& sample, Json& json);
// How the room filled up (join and scale): joined, refused, dropped, timings, reasons.
void json_join(const JoinOutcome& join, Json& json);

}  // namespace chat::bench
