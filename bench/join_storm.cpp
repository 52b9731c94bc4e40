#include "bench/join_storm.hpp"

#include "bench/fanout.hpp"

#include <algorithm>

namespace chat::bench {
namespace {

using namespace std::chrono_literals;

constexpr auto round_quiet = 3s;
constexpr auto round_patience = 30s;

}  // namespace

DeliveryChecker::Report message_round(Swarm& swarm, Traffic& traffic, std::size_t senders, double& round_ms) {
  std::vector<std::size_t> sender_clients;
  for (std::size_t i = 0; i < swarm.size() && sender_clients.size() < senders; ++i) {
    if (swarm.client(i).state == Swarm::State::joined) sender_clients.push_back(i);
  }
  traffic.begin(sender_clients, swarm.options().protocol == Protocol::chat);
  auto& checker = traffic.checker();
  for (std::size_t k = 0; k < sender_clients.size(); ++k) traffic.send_message(k);
  const std::uint64_t expected =
      sender_clients.size() * (swarm.dialect().echoes() ? swarm.size() : swarm.size() - 1);
  const auto start = Clock::now();
  auto last_count = checker.deliveries();
  auto last_progress = start;
  while (checker.deliveries() < expected) {
    const auto now = Clock::now();
    if (checker.deliveries() != last_count) {
      last_count = checker.deliveries();
      last_progress = now;
    }
    if (now - last_progress >= round_quiet || now - start >= round_patience) break;
    swarm.run_once(now + 100ms);
  }
  for (std::size_t i = 0; i < swarm.size(); ++i) {
    if (swarm.client(i).state != Swarm::State::joined) checker.receiver_gone(i);
  }
  round_ms = traffic.last_delivery() > start ? millis_between(traffic.first_send(), traffic.last_delivery()) : 0;
  return checker.report();
}

JoinStormResult run_join_storm(const JoinStormOptions& o, const TargetOptions& target_options, std::ostream& progress) {
  JoinStormResult r;
  r.options = o;
  r.protocol = target_options.protocol;
  r.web_share = target_options.web_share;
  r.tls = target_options.tls;
  const auto clients = static_cast<std::size_t>(o.clients);
  Target target(target_options, clients);
  r.label = target.label();
  r.endpoint = target.host() + ":" + std::to_string(target.port());

  Swarm swarm(target.swarm_options(0));  // everyone at once
  swarm.add_clients(clients);
  Traffic traffic(swarm, static_cast<std::size_t>(o.size));

  progress << "join: " << r.label << ": " << clients << " clients connect and join at once ...\n";
  const double cpu0 = Swarm::cpu_seconds();
  const auto server0 = target.sample();
  const auto t0 = Clock::now();
  r.join = join_all(swarm, t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.patience)),
                    progress);
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  r.generator_cpu = 100 * (Swarm::cpu_seconds() - cpu0) / wall;
  const auto server1 = target.sample();
  if (server0 && server1) r.server_cpu = 100 * (server1->cpu_seconds - server0->cpu_seconds) / wall;

  if (swarm.joined() == 0) {
    r.error = "nobody joined";
  } else {
    progress << "join: " << std::min<int>(o.round_senders, static_cast<int>(swarm.joined()))
             << " members send one message each ...\n";
    r.round = message_round(swarm, traffic, static_cast<std::size_t>(o.round_senders), r.round_ms);
    r.round_senders = traffic.checker().senders();
    for (std::size_t i = 0; i < clients; ++i) {
      if (swarm.client(i).state == Swarm::State::joined) {
        r.stats = traffic.fetch_stats(i, Clock::now() + 5s);
        break;
      }
    }
  }
  if (const auto p = traffic.problems(); !p.empty() && r.error.empty()) r.error = p;
  r.server_after = target.sample();
  if (auto e = target.stop(); !e.empty() && r.error.empty()) r.error = e;
  progress << "join: done\n";
  return r;
}

void print_join_storm(const JoinStormResult& r, std::ostream& out) {
  const auto& j = r.join;
  out << "Join storm: " << r.label << " (" << describe_protocol(r.protocol, r.web_share) << " protocol" << (r.tls ? " over TLS" : "") << ", " << r.endpoint << "), "
      << r.options.clients << " clients connect and join at once\n";
  out << "  in the room: " << j.joined << " of " << j.clients << "; last one after " << format_ms(j.last_join_ms)
      << " ms; join chatter over after " << format_ms(j.chatter_end_ms) << " ms";
  if (j.chatter_expected > 0) {
    out << " (" << format_count(static_cast<double>(j.chatter_seen)) << " of "
        << format_count(static_cast<double>(j.chatter_expected)) << " announcements read)";
  }
  out << "\n";
  if (j.timed_out) out << "  FAILED: not over within " << format_ms(r.options.patience * 1000) << " ms\n";
  if (j.refused > 0) out << "  FAILED: " << j.refused << " clients never got in\n";
  if (j.dropped > 0) out << "  FAILED: " << j.dropped << " clients were dropped after joining\n";
  if (!j.reasons.empty()) out << "  why: " << describe_reasons(j.reasons) << "\n";
  out << "  then " << r.round_senders << " members send one message each: " << format_count(static_cast<double>(r.round.delivered)) << " of "
      << format_count(static_cast<double>(r.round.expected)) << " deliveries in " << format_ms(r.round_ms) << " ms\n";
  print_check(r.round, out, j.clients);
  out << "  CPU during the storm: chatbench " << format_count(r.generator_cpu) << "% of one core";
  if (r.server_cpu) out << ", server " << format_count(*r.server_cpu) << "%";
  out << "\n";
  if (r.server_after) {
    out << "  server: " << format_ms(r.server_after->rss_mib) << " MiB resident, " << r.server_after->threads
        << " threads\n";
  }
  if (!r.stats.empty()) out << "  server " << r.stats << "\n";
  if (!r.error.empty()) out << "  FAILED: " << r.error << "\n";
}

void json_join_storm(const JoinStormResult& r, Json& json) {
  const auto& j = r.join;
  json.begin_object("join");
  json.field("server", r.label);
  json.field("protocol", protocol_name(r.protocol, r.web_share));
  json.field("web_share", r.web_share);
  json.field("tls", r.tls);
  json.field("clients", r.options.clients);
  json_join(j, json);
  json.field("chatter_seen", static_cast<long long>(j.chatter_seen));
  json.field("chatter_expected", static_cast<long long>(j.chatter_expected));
  json.field("round_ms", r.round_ms);
  json_check(r.round, json);
  json.field("generator_cpu_percent", r.generator_cpu);
  if (r.server_cpu) json.field("server_cpu_percent", *r.server_cpu);
  json_sample("server_after", r.server_after, json);
  if (!r.stats.empty()) json.field("stats", r.stats);
  if (!r.error.empty()) json.field("error", r.error);
  json.field("ok", r.ok());
  json.end_object();
}

}  // namespace chat::bench
