#include "bench/tls_compare.hpp"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>

namespace chat::bench {
namespace {

std::string fixed(double value, int decimals) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

// a / b with two decimals, "-" when b is not positive.
std::string ratio_text(double a, double b) { return b > 0 ? fixed(a / b, 2) : "-"; }
std::optional<double> ratio(double a, double b) { return b > 0 ? std::optional<double>(a / b) : std::nullopt; }

double median(std::vector<double> v) { return summarize(std::move(v)).median; }

// "1,234,567 (1,100,000-1,300,000)": the median, and the range when there are several.
std::string range_text(const std::vector<double>& v, const std::function<std::string(double)>& format) {
  if (v.empty()) return "-";
  const auto s = summarize(v);
  return format(s.median) + (v.size() > 1 ? " (" + format(s.min) + "-" + format(s.max) + ")" : "");
}

std::string count_text(double x) { return format_count(x); }
std::string ms_text(double x) { return format_ms(x); }

template <typename Result, typename Get>
std::vector<double> figures(const std::vector<Result>& runs, Get get) {
  std::vector<double> out;
  for (const auto& r : runs) {
    if (!r.ok()) continue;  // a failed run's figure is no result
    if (const std::optional<double> v = get(r)) out.push_back(*v);
  }
  return out;
}

std::string fanout_command(const FanoutOptions& o) {
  std::string text = "fanout " + (o.rate > 0 ? "--rate " + format_count(o.rate) : std::string("--max")) +
                     " --clients " + std::to_string(o.clients) + " --senders " + std::to_string(o.senders);
  text += o.duration > 0 ? " --duration " + format_ms(o.duration) : " --msgs " + std::to_string(o.msgs);
  text += " --size " + std::to_string(o.size);
  if (o.threads > 1) text += " --threads " + std::to_string(o.threads);
  if (o.window > 0) text += " --window " + std::to_string(o.window);
  return text;
}

std::string scale_command(const ScaleOptions& o) {
  return "scale --clients " + std::to_string(o.clients) + " --in-progress " + std::to_string(o.in_progress) +
         " --rate " + format_count(o.rate) + " --duration " + format_ms(o.duration) + " --idle " + format_ms(o.idle);
}

std::string failure_text(const std::string& error, bool ok) {
  if (ok) return "yes";
  return "FAILED" + (error.empty() ? std::string() : ": " + error.substr(0, 120));
}

// The figures of one side (clear text or TLS) of a fanout comparison, over its good runs.
struct FanoutSide {
  std::vector<double> rate, p50, p99, server_cpu, ns, generator_cpu;
  explicit FanoutSide(const std::vector<FanoutResult>& runs)
      : rate(figures(runs, [](const FanoutResult& r) { return std::optional<double>(r.deliveries_per_second); })),
        p50(figures(runs, [](const FanoutResult& r) { return std::optional<double>(r.p50_ms); })),
        p99(figures(runs, [](const FanoutResult& r) { return std::optional<double>(r.p99_ms); })),
        server_cpu(figures(runs, [](const FanoutResult& r) { return r.server_cpu; })),
        ns(figures(runs, [](const FanoutResult& r) { return r.server_ns_per_delivery; })),
        generator_cpu(figures(runs, [](const FanoutResult& r) {
          return r.generator_cpu > 0 ? std::optional<double>(r.generator_cpu) : std::nullopt;
        })) {}
};

struct ScaleSide {
  std::vector<double> after_join, after_idle, kib_join, kib_idle, threads, idle_cpu, round_ms;
  explicit ScaleSide(const std::vector<ScaleResult>& runs)
      : after_join(figures(runs, [](const ScaleResult& r) {
          return r.after_join ? std::optional<double>(r.after_join->rss_mib) : std::nullopt;
        })),
        after_idle(figures(runs, [](const ScaleResult& r) {
          return r.after_idle ? std::optional<double>(r.after_idle->rss_mib) : std::nullopt;
        })),
        kib_join(figures(runs, [](const ScaleResult& r) { return r.kib_per_client(r.after_join); })),
        kib_idle(figures(runs, [](const ScaleResult& r) { return r.kib_per_client(r.after_idle); })),
        threads(figures(runs, [](const ScaleResult& r) {
          return r.after_join ? std::optional<double>(static_cast<double>(r.after_join->threads)) : std::nullopt;
        })),
        idle_cpu(figures(runs, [](const ScaleResult& r) { return r.idle_cpu; })),
        round_ms(figures(runs, [](const ScaleResult& r) { return std::optional<double>(r.round_ms); })) {}
};

void json_ratio(Json& json, std::string_view key, const std::vector<double>& tls, const std::vector<double>& clear) {
  if (tls.empty() || clear.empty()) return;
  if (const auto r = ratio(median(tls), median(clear))) json.field(key, *r);
}

// Every round of both sides checked clean, and as many rounds of each.
template <typename Result>
bool all_ok(const std::vector<Result>& clear, const std::vector<Result>& tls) {
  const auto good = [](const std::vector<Result>& v) {
    return !v.empty() && std::all_of(v.begin(), v.end(), [](const Result& r) { return r.ok(); });
  };
  return good(clear) && good(tls) && clear.size() == tls.size();
}

// `rounds` rounds, each clear text then TLS, on a chatserver with a certificate both times.
template <typename Result, typename Run>
void run_rounds(TargetOptions target, int rounds, std::ostream& progress, std::vector<Result>& clear,
                std::vector<Result>& tls, Run run) {
  target.tls_server = true;
  for (int round = 1; round <= rounds; ++round) {
    for (const bool with_tls : {false, true}) {
      progress << "compare-tls: round " << round << " of " << rounds << ", " << (with_tls ? "TLS" : "clear text")
               << "\n";
      target.tls = with_tls;
      (with_tls ? tls : clear).push_back(run(target));
    }
  }
}

}  // namespace

// ---- fanout ------------------------------------------------------------------------------------

bool FanoutTlsCompare::ok() const { return all_ok(clear, tls); }

FanoutTlsCompare run_fanout_tls_compare(const FanoutOptions& options, TargetOptions target, int rounds,
                                        std::ostream& progress) {
  FanoutTlsCompare c;
  c.options = options;
  c.rounds = rounds;
  run_rounds(target, rounds, progress, c.clear, c.tls,
             [&](const TargetOptions& t) { return run_fanout(options, t, progress); });
  return c;
}

void print_fanout_tls_compare(const FanoutTlsCompare& c, std::ostream& out) {
  out << "TLS against clear text: " << fanout_command(c.options) << "; " << c.rounds
      << " round(s), each clear text then TLS on a chatserver started afresh (--self-signed both times)\n";
  Table t({{"round", true}, {"transport", false}, {"deliveries/s", true}, {"p50 ms", true}, {"p99 ms", true},
           {"max ms", true}, {"server CPU %", true}, {"server ns/delivery", true}, {"chatbench CPU %", true},
           {"checked", false}});
  for (std::size_t i = 0; i < c.clear.size() || i < c.tls.size(); ++i) {
    for (const bool tls : {false, true}) {
      const auto& side = tls ? c.tls : c.clear;
      if (i >= side.size()) continue;
      const auto& r = side[i];
      t.add_row({std::to_string(i + 1), tls ? "TLS" : "clear text", format_count(r.deliveries_per_second),
                 format_ms(r.p50_ms), format_ms(r.p99_ms), format_ms(r.max_ms),
                 r.server_cpu ? format_count(*r.server_cpu) : "-",
                 r.server_ns_per_delivery ? format_ms(*r.server_ns_per_delivery) : "-",
                 r.generator_cpu > 0 ? format_count(r.generator_cpu) : "-", failure_text(r.error, r.ok())});
    }
  }
  t.print(out);
  const FanoutSide clear(c.clear), tls(c.tls);
  out << "  deliveries/s: clear text " << range_text(clear.rate, count_text) << ", TLS " << range_text(tls.rate, count_text)
      << "\n";
  out << "  latency p99 ms: clear text " << range_text(clear.p99, ms_text) << ", TLS " << range_text(tls.p99, ms_text)
      << "\n";
  if (!clear.ns.empty() && !tls.ns.empty()) {
    out << "  server CPU per delivery, ns: clear text " << range_text(clear.ns, ms_text) << ", TLS "
        << range_text(tls.ns, ms_text) << "\n";
  }
  if (clear.rate.empty() || tls.rate.empty()) {
    out << "  TLS / clear text: no ratio (a side has no good run)\n";
    return;
  }
  const double rate_ratio = median(tls.rate) / median(clear.rate);
  out << "  TLS / clear text (medians): deliveries/s " << fixed(rate_ratio, 2) << " (target: at least "
      << fixed(tls_rate_target, 1) << ": " << (rate_ratio >= tls_rate_target ? "met" : "NOT met") << "), latency p50 "
      << ratio_text(median(tls.p50), median(clear.p50)) << ", p99 " << ratio_text(median(tls.p99), median(clear.p99));
  if (!clear.ns.empty() && !tls.ns.empty()) {
    out << ", server CPU per delivery " << ratio_text(median(tls.ns), median(clear.ns));
  }
  out << "\n";
  const bool generator_bound = std::any_of(c.tls.begin(), c.tls.end(), [](const FanoutResult& r) {
    return r.generator_bound();
  }) || std::any_of(c.clear.begin(), c.clear.end(), [](const FanoutResult& r) { return r.generator_bound(); });
  if (generator_bound) {
    out << "  chatbench used 90% or more of a core in some runs: it, not the server, may have set the rate "
           "(with TLS it decrypts every delivery itself); the server's CPU per delivery compares the servers\n";
  }
}

void json_fanout_tls_compare(const FanoutTlsCompare& c, Json& json) {
  json.begin_object("compare_tls");
  json.field("mode", "fanout");
  json.field("rounds", c.rounds);
  for (const bool tls : {false, true}) {
    json.begin_array(tls ? "tls" : "clear");
    for (const auto& r : tls ? c.tls : c.clear) {
      json.begin_object();
      json_fanout(r, json);
      json.end_object();
    }
    json.end_array();
  }
  const FanoutSide clear(c.clear), tls(c.tls);
  json.begin_object("tls_over_clear");
  json_ratio(json, "deliveries_per_second", tls.rate, clear.rate);
  json_ratio(json, "p50", tls.p50, clear.p50);
  json_ratio(json, "p99", tls.p99, clear.p99);
  json_ratio(json, "server_cpu_ns_per_delivery", tls.ns, clear.ns);
  json.end_object();
  json.field("rate_target", tls_rate_target);
  json.field("ok", c.ok());
  json.end_object();
}

// ---- scale -------------------------------------------------------------------------------------

bool ScaleTlsCompare::ok() const { return all_ok(clear, tls); }

ScaleTlsCompare run_scale_tls_compare(const ScaleOptions& options, TargetOptions target, int rounds,
                                      std::ostream& progress) {
  ScaleTlsCompare c;
  c.options = options;
  c.rounds = rounds;
  run_rounds(target, rounds, progress, c.clear, c.tls,
             [&](const TargetOptions& t) { return run_scale(options, t, progress); });
  return c;
}

void print_scale_tls_compare(const ScaleTlsCompare& c, std::ostream& out) {
  out << "TLS against clear text: " << scale_command(c.options) << "; " << c.rounds
      << " round(s), each clear text then TLS on a chatserver started afresh (--self-signed both times)\n";
  Table t({{"round", true}, {"transport", false}, {"joined", true}, {"join ms", true}, {"RSS at start MiB", true},
           {"after join MiB", true}, {"KiB/client", true}, {"after idle MiB", true}, {"KiB/client", true},
           {"threads", true}, {"idle CPU %", true}, {"round ms", true}, {"checked", false}});
  for (std::size_t i = 0; i < c.clear.size() || i < c.tls.size(); ++i) {
    for (const bool tls : {false, true}) {
      const auto& side = tls ? c.tls : c.clear;
      if (i >= side.size()) continue;
      const auto& r = side[i];
      const auto mib = [](const std::optional<ProcSample>& s) { return s ? format_ms(s->rss_mib) : std::string("-"); };
      const auto kib = [&](const std::optional<ProcSample>& s) {
        const auto k = r.kib_per_client(s);
        return k ? format_ms(*k) : std::string("-");
      };
      t.add_row({std::to_string(i + 1), tls ? "TLS" : "clear text", std::to_string(r.join.joined),
                 format_ms(r.join.last_join_ms), mib(r.at_start), mib(r.after_join), kib(r.after_join),
                 mib(r.after_idle), kib(r.after_idle), r.after_join ? std::to_string(r.after_join->threads) : "-",
                 r.idle_cpu ? format_ms(*r.idle_cpu) : "-", format_ms(r.round_ms), failure_text(r.error, r.ok())});
    }
  }
  t.print(out);
  const ScaleSide clear(c.clear), tls(c.tls);
  if (clear.kib_join.empty() || tls.kib_join.empty()) {
    out << "  TLS / clear text: no ratio (a side has no good run)\n";
    return;
  }
  out << "  server memory per client after the join, KiB: clear text " << range_text(clear.kib_join, ms_text) << ", TLS "
      << range_text(tls.kib_join, ms_text) << "; TLS costs " << format_ms(median(tls.kib_join) - median(clear.kib_join))
      << " KiB more per client (TLS / clear text " << ratio_text(median(tls.kib_join), median(clear.kib_join)) << ")\n";
  if (!clear.kib_idle.empty() && !tls.kib_idle.empty()) {
    out << "  after the idle phase, KiB: clear text " << range_text(clear.kib_idle, ms_text) << ", TLS "
        << range_text(tls.kib_idle, ms_text) << "; TLS / clear text "
        << ratio_text(median(tls.kib_idle), median(clear.kib_idle)) << "\n";
  }
}

void json_scale_tls_compare(const ScaleTlsCompare& c, Json& json) {
  json.begin_object("compare_tls");
  json.field("mode", "scale");
  json.field("rounds", c.rounds);
  for (const bool tls : {false, true}) {
    json.begin_array(tls ? "tls" : "clear");
    for (const auto& r : tls ? c.tls : c.clear) {
      json.begin_object();
      json_scale(r, json);
      json.end_object();
    }
    json.end_array();
  }
  const ScaleSide clear(c.clear), tls(c.tls);
  json.begin_object("tls_over_clear");
  json_ratio(json, "kib_per_client_after_join", tls.kib_join, clear.kib_join);
  json_ratio(json, "kib_per_client_after_idle", tls.kib_idle, clear.kib_idle);
  json_ratio(json, "round_ms", tls.round_ms, clear.round_ms);
  json.end_object();
  if (!clear.kib_join.empty() && !tls.kib_join.empty()) {
    json.field("tls_extra_kib_per_client_after_join", median(tls.kib_join) - median(clear.kib_join));
  }
  json.field("ok", c.ok());
  json.end_object();
}

}  // namespace chat::bench
