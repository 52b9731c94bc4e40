#include "bench/scale.hpp"

#include "bench/fanout.hpp"
#include "bench/join_storm.hpp"

#include <algorithm>

namespace chat::bench {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t max_senders = 100;
constexpr auto drain_quiet = 3s;

Clock::duration seconds(double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); }

}  // namespace

ScaleResult run_scale(const ScaleOptions& o, const TargetOptions& target_options, std::ostream& progress) {
  ScaleResult r;
  r.options = o;
  r.protocol = target_options.protocol;
  r.web_share = target_options.web_share;
  r.tls = target_options.tls;
  const auto clients = static_cast<std::size_t>(o.clients);
  Target target(target_options, clients);
  r.label = target.label();
  r.endpoint = target.host() + ":" + std::to_string(target.port());

  r.at_start = target.sample();
  Swarm swarm(target.swarm_options(static_cast<std::size_t>(o.in_progress)));
  swarm.add_clients(clients);
  Traffic traffic(swarm, static_cast<std::size_t>(o.size));
  const double cpu0 = Swarm::cpu_seconds();
  const auto run_start = Clock::now();

  progress << "scale: " << r.label << ": connecting " << clients << " clients, " << o.in_progress << " at a time ...\n";
  r.join = join_all(swarm, Clock::now() + seconds(o.patience), progress);
  r.after_join = target.sample();
  if (swarm.joined() == 0) {
    r.error = "nobody joined";
  } else {
    // The chat phase: message j comes from sender j % S at t0 + j / rate.
    std::vector<std::size_t> senders;
    for (std::size_t i = 0; i < clients && senders.size() < max_senders; ++i) {
      if (swarm.client(i).state == Swarm::State::joined) senders.push_back(i);
    }
    const auto sender_count = senders.size();
    progress << "scale: " << format_count(o.rate) << " messages/s for " << format_ms(o.duration * 1000) << " ms from "
             << sender_count << " senders ...\n";
    traffic.begin(senders, target_options.protocol == Protocol::chat);
    auto& checker = traffic.checker();
    const auto total = static_cast<std::uint64_t>(o.rate * o.duration);
    const auto t0 = Clock::now();
    std::uint64_t j = 0;
    const std::size_t ended_before = swarm.ended();
    while (j < total && swarm.ended() == ended_before) {
      const auto now = Clock::now();
      while (j < total && t0 + seconds(static_cast<double>(j) / o.rate) <= now) traffic.send_message(j++ % sender_count);
      swarm.run_once(j < total ? t0 + seconds(static_cast<double>(j) / o.rate) : now);
    }
    const std::uint64_t expected = checker.sent_total() * (swarm.dialect().echoes() ? clients : clients - 1);
    auto last_count = checker.deliveries();
    auto last_progress = Clock::now();
    while (checker.deliveries() < expected) {
      const auto now = Clock::now();
      if (checker.deliveries() != last_count) {
        last_count = checker.deliveries();
        last_progress = now;
      }
      if (now - last_progress >= drain_quiet) break;
      swarm.run_once(now + 100ms);
    }
    for (std::size_t i = 0; i < clients; ++i) {
      if (swarm.client(i).state != Swarm::State::joined) checker.receiver_gone(i);
    }
    r.chat = checker.report();
    r.chat_p50_ms = traffic.latency().percentile_ms(50);
    r.chat_p99_ms = traffic.latency().percentile_ms(99);
    r.chat_max_ms = traffic.latency().max_ms();
    if (swarm.web_clients() > 0) r.chat_by_kind = kind_figures({&traffic}, {&swarm}, traffic.first_send());

    progress << "scale: idle for " << format_ms(o.idle * 1000) << " ms ...\n";
    const auto idle0 = target.sample();
    const auto i0 = Clock::now();
    swarm.run_until([] { return false; }, i0 + seconds(o.idle));  // PINGs are still answered
    const auto idle1 = target.sample();
    r.after_idle = idle1;
    if (idle0 && idle1) {
      r.idle_cpu = 100 * (idle1->cpu_seconds - idle0->cpu_seconds) /
                   std::chrono::duration<double>(Clock::now() - i0).count();
    }
    // chatserver's poller reports its sweep times over the last 100 sweeps: the idle phase.
    for (std::size_t i = 0; i < clients && r.idle_stats.empty(); ++i) {
      if (swarm.client(i).state == Swarm::State::joined) r.idle_stats = traffic.fetch_stats(i, Clock::now() + 5s);
    }

    progress << "scale: one message to everyone ...\n";
    r.round = message_round(swarm, traffic, 1, r.round_ms);
    r.round_p50_ms = traffic.latency().percentile_ms(50);
    r.round_p99_ms = traffic.latency().percentile_ms(99);
    r.round_max_ms = traffic.latency().max_ms();
    if (swarm.web_clients() > 0) r.round_by_kind = kind_figures({&traffic}, {&swarm}, traffic.first_send());
    for (std::size_t i = 0; i < clients; ++i) {
      if (swarm.client(i).state == Swarm::State::joined) {
        r.stats = traffic.fetch_stats(i, Clock::now() + 5s);
        break;
      }
    }
  }
  if (const auto p = traffic.problems(); !p.empty() && r.error.empty()) r.error = p;
  r.at_end = target.sample();
  r.generator_cpu =
      100 * (Swarm::cpu_seconds() - cpu0) / std::chrono::duration<double>(Clock::now() - run_start).count();
  if (auto e = target.stop(); !e.empty() && r.error.empty()) r.error = e;
  progress << "scale: done\n";
  return r;
}

std::optional<double> ScaleResult::kib_per_client(const std::optional<ProcSample>& now) const {
  if (!at_start || !now || join.joined == 0) return std::nullopt;
  return (now->rss_mib - at_start->rss_mib) * 1024 / static_cast<double>(join.joined);
}

void print_scale(const ScaleResult& r, std::ostream& out) {
  const auto& j = r.join;
  const auto& o = r.options;
  out << "Scale: " << r.label << " (" << describe_protocol(r.protocol, r.web_share) << " protocol" << (r.tls ? " over TLS" : "") << ", " << r.endpoint << "), " << o.clients
      << " clients, " << o.in_progress << " connecting at a time\n";
  out << "  in the room: " << j.joined << " of " << j.clients << "; last one after " << format_ms(j.last_join_ms)
      << " ms; join chatter over after " << format_ms(j.chatter_end_ms) << " ms\n";
  if (!j.reasons.empty()) out << "  FAILED: " << j.refused + j.dropped << " ended: " << describe_reasons(j.reasons) << "\n";
  if (j.timed_out) out << "  FAILED: not everybody joined within " << format_ms(o.patience * 1000) << " ms\n";
  if (r.after_join) {
    out << "  server after the join: " << format_ms(r.after_join->rss_mib) << " MiB resident, " << r.after_join->threads
        << " threads";
    if (const auto kib = r.kib_per_client(r.after_join)) {
      out << "; " << format_ms(*kib) << " KiB per client (from " << format_ms(r.at_start->rss_mib) << " MiB at start)";
    }
    out << "\n";
  }
  out << "  chat: " << format_count(o.rate) << " msg/s for " << format_ms(o.duration * 1000) << " ms: "
      << format_count(static_cast<double>(r.chat.delivered)) << " of " << format_count(static_cast<double>(r.chat.expected))
      << " deliveries; latency ms p50 " << format_ms(r.chat_p50_ms) << ", p99 " << format_ms(r.chat_p99_ms) << ", max "
      << format_ms(r.chat_max_ms) << "\n";
  if (r.chat_by_kind.size() > 1) print_kinds(r.chat_by_kind, out, "    ");
  print_check(r.chat, out, j.clients);
  if (r.after_idle) {
    out << "  server after the idle phase: " << format_ms(r.after_idle->rss_mib) << " MiB resident";
    if (const auto kib = r.kib_per_client(r.after_idle)) out << "; " << format_ms(*kib) << " KiB per client";
    out << "\n";
  }
  if (r.idle_cpu) out << "  server CPU while idle: " << format_ms(*r.idle_cpu) << "% of one core\n";
  if (!r.idle_stats.empty()) {
    const auto st = parse_stats(r.idle_stats);
    auto ms = [&](const char* key) { return st.contains(key) ? format_ms(std::stod(st.at(key)) / 1000) : "?"; };
    out << "  poller sweep while idle (server STATS, last 100 sweeps): p50 " << ms("sweep_p50_us") << " ms, p99 "
        << ms("sweep_p99_us") << " ms; on the CPU p50 " << ms("sweep_cpu_p50_us") << " ms, p99 "
        << ms("sweep_cpu_p99_us") << " ms\n";
  }
  out << "  one message to everyone: the last receiver had it after " << format_ms(r.round_ms) << " ms; latency ms p50 "
      << format_ms(r.round_p50_ms) << ", p99 " << format_ms(r.round_p99_ms) << ", max " << format_ms(r.round_max_ms)
      << "\n";
  if (r.round_by_kind.size() > 1) print_kinds(r.round_by_kind, out, "    ");
  print_check(r.round, out, j.clients);
  if (r.at_end) {
    out << "  server at the end: " << format_ms(r.at_end->rss_mib) << " MiB resident, " << r.at_end->threads
        << " threads\n";
  }
  out << "  chatbench CPU: " << format_count(r.generator_cpu) << "% of one core over the whole run\n";
  if (!r.stats.empty()) out << "  server " << r.stats << "\n";
  if (!r.error.empty()) out << "  FAILED: " << r.error << "\n";
}

void json_scale(const ScaleResult& r, Json& json) {
  json.begin_object("scale");
  json.field("server", r.label);
  json.field("protocol", protocol_name(r.protocol, r.web_share));
  json.field("web_share", r.web_share);
  json.field("tls", r.tls);
  json.field("clients", r.options.clients);
  json.field("in_progress", r.options.in_progress);
  json_join(r.join, json);
  json_sample("at_start", r.at_start, json);
  json_sample("after_join", r.after_join, json);
  json_sample("after_idle", r.after_idle, json);
  if (const auto kib = r.kib_per_client(r.after_join)) json.field("kib_per_client_after_join", *kib);
  if (const auto kib = r.kib_per_client(r.after_idle)) json.field("kib_per_client_after_idle", *kib);
  json.begin_object("chat");
  json.field("rate", r.options.rate);
  json.field("duration_s", r.options.duration);
  json.field("p50_ms", r.chat_p50_ms);
  json.field("p99_ms", r.chat_p99_ms);
  json.field("max_ms", r.chat_max_ms);
  json_kinds("by_kind", r.chat_by_kind, json);
  json_check(r.chat, json);
  json.end_object();
  if (r.idle_cpu) json.field("idle_cpu_percent", *r.idle_cpu);
  if (!r.idle_stats.empty()) {
    const auto st = parse_stats(r.idle_stats);
    for (const char* key : {"sweep_p50_us", "sweep_p99_us", "sweep_max_us", "sweep_cpu_p50_us", "sweep_cpu_p99_us"}) {
      if (st.contains(key)) json.field(std::string("idle_") + key, std::stod(st.at(key)));
    }
  }
  json.begin_object("round");
  json.field("ms_to_last", r.round_ms);
  json.field("p50_ms", r.round_p50_ms);
  json.field("p99_ms", r.round_p99_ms);
  json.field("max_ms", r.round_max_ms);
  json_kinds("by_kind", r.round_by_kind, json);
  json_check(r.round, json);
  json.end_object();
  json_sample("at_end", r.at_end, json);
  json.field("generator_cpu_percent", r.generator_cpu);
  if (!r.stats.empty()) json.field("stats", r.stats);
  if (!r.error.empty()) json.field("error", r.error);
  json.field("ok", r.ok());
  json.end_object();
}

}  // namespace chat::bench
