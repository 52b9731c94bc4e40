// `chatbench fanout --compare-tls` and `chatbench scale --compare-tls`: the same load over clear
// text and over TLS, side by side in one run, and the ratio TLS / clear text.
//
// Each round runs the mode twice, clear text first, then TLS, each against a chatserver started
// afresh with the same options, `--self-signed DIR` included (TargetOptions::tls_server), so the
// one difference is whether the clients speak TLS. --rounds N interleaves N such pairs (the
// machine's noise shows as the range; the ratio compares medians). Every run is checked as the
// mode checks it alone (fanout: every delivery once and in order); any failure fails the whole.
//
//   fanout  deliveries/s, latency p50/p99/max, server CPU and its CPU per delivery, chatbench's
//           CPU. TLS costs the generator too (it decrypts every delivery and encrypts every send
//           on one thread): where chatbench is near 100% of a core, it set the rate, and the
//           server's CPU per delivery is the figure that compares the servers.
//   scale   the server's resident memory per client after the join and after the idle phase
//           (RSS minus the RSS before the first connect, over the clients), threads, idle CPU,
//           one round's latency.
//
// The ratio the issue sets (TLS deliveries/s at least 0.7 of clear text) is printed with its
// verdict; it does not fail the run (timing is not behaviour).
//
// Threads: main thread only.
#pragma once

#include "bench/fanout.hpp"
#include "bench/report.hpp"
#include "bench/scale.hpp"
#include "bench/target.hpp"

#include <ostream>
#include <vector>

namespace chat::bench {

// TLS deliveries/s against clear text that issue 25 asks for.
constexpr double tls_rate_target = 0.7;

struct FanoutTlsCompare {
  FanoutOptions options;
  int rounds = 1;
  std::vector<FanoutResult> clear, tls;  // one of each per round
  bool ok() const;
};
FanoutTlsCompare run_fanout_tls_compare(const FanoutOptions& options, TargetOptions target, int rounds,
                                        std::ostream& progress);
void print_fanout_tls_compare(const FanoutTlsCompare& result, std::ostream& out);
void json_fanout_tls_compare(const FanoutTlsCompare& result, Json& json);

struct ScaleTlsCompare {
  ScaleOptions options;
  int rounds = 1;
  std::vector<ScaleResult> clear, tls;
  bool ok() const;
};
ScaleTlsCompare run_scale_tls_compare(const ScaleOptions& options, TargetOptions target, int rounds,
                                      std::ostream& progress);
void print_scale_tls_compare(const ScaleTlsCompare& result, std::ostream& out);
void json_scale_tls_compare(const ScaleTlsCompare& result, Json& json);

}  // namespace chat::bench
