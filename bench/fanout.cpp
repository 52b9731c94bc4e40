#include "bench/fanout.hpp"

#include <algorithm>
#include <cmath>

namespace chat::bench {
namespace {

using namespace std::chrono_literals;

constexpr auto join_patience = 120s;
constexpr auto drain_quiet = 5s;       // no delivery this long after the last send: the rest is lost
constexpr auto send_slack = 60s;       // beyond the time the sending should take
constexpr std::size_t low_water = 16 * 1024;  // --max: top a sender up while less is queued

Clock::duration seconds(double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); }

std::string offered(const FanoutOptions& o) {
  std::string text = std::to_string(o.senders) + " senders x ";
  text += o.duration > 0 ? format_ms(o.duration * 1000) + " ms" : format_count(o.msgs) + " messages";
  text += " of " + std::to_string(o.size) + " B, ";
  if (o.rate > 0) {
    text += format_count(o.rate) + " msg/s per sender";
  } else {
    text += "as fast as possible";
    if (o.window > 0) text += " (window " + std::to_string(o.window) + ")";
  }
  return text;
}

}  // namespace

bool FanoutResult::ok() const {
  return error.empty() && join.complete() && check.ok() && ended_during_run == 0 && sent > 0;
}

FanoutResult run_fanout(const FanoutOptions& o, const TargetOptions& target_options, std::ostream& progress) {
  FanoutResult r;
  r.options = o;
  r.protocol = target_options.protocol;
  const auto clients = static_cast<std::size_t>(o.clients);
  const auto senders = static_cast<std::size_t>(std::min(o.senders, o.clients));
  Target target(target_options, clients);
  r.label = target.label();
  r.endpoint = target.host() + ":" + std::to_string(target.port());

  SwarmOptions so;
  so.host = target.host();
  so.port = target.port();
  so.protocol = target_options.protocol;
  so.max_in_progress = 200;  // joining is not what this mode measures: no storm
  Swarm swarm(so);
  swarm.add_clients(clients);
  Traffic traffic(swarm, static_cast<std::size_t>(o.size));

  progress << "fanout: " << r.label << ": joining " << clients << " clients ...\n";
  r.join = join_all(swarm, Clock::now() + join_patience, progress);
  if (!r.join.complete()) {
    r.error = "not every client joined: " + std::to_string(r.join.joined) + " of " + std::to_string(clients) +
              (r.join.timed_out ? " in time" : "") + (r.join.reasons.empty() ? "" : " (" + describe_reasons(r.join.reasons) + ")");
    r.error += r.join.chatter_seen < r.join.chatter_expected
                   ? "; " + std::to_string(r.join.chatter_expected - r.join.chatter_seen) + " join announcements missing"
                   : "";
    r.server_after = target.sample();
    if (auto e = target.stop(); !e.empty()) r.error += "; " + e;
    return r;
  }
  r.stats_before = traffic.fetch_stats(0, Clock::now() + 5s);

  std::vector<std::size_t> sender_clients(senders);
  for (std::size_t k = 0; k < senders; ++k) sender_clients[k] = k;
  traffic.begin(sender_clients, target_options.protocol == Protocol::chat);
  auto& checker = traffic.checker();
  const std::size_t ended_before = swarm.ended();
  const std::size_t copies_per_message = swarm.dialect().echoes() ? clients : clients - 1;

  progress << "fanout: " << offered(o) << " ...\n";
  const double cpu0 = Swarm::cpu_seconds();
  const auto server0 = target.sample();
  const auto t0 = Clock::now();
  const bool by_time = o.duration > 0;
  const auto send_until = t0 + seconds(o.duration);
  const std::uint64_t per_sender = by_time ? UINT64_MAX : static_cast<std::uint64_t>(o.msgs);
  const auto planned = by_time ? seconds(o.duration) : o.rate > 0 ? seconds(static_cast<double>(o.msgs) / o.rate) : 0s;
  const auto hard_deadline = t0 + planned + send_slack;
  std::vector<std::uint32_t> acked(senders, 0);  // --window: messages delivered to everyone

  auto sending_over = [&](Clock::time_point now) {
    if (by_time) return now >= send_until;
    for (std::size_t k = 0; k < senders; ++k) {
      if (checker.sent_by(k) < per_sender) return false;
    }
    return true;
  };
  while (true) {
    const auto now = Clock::now();
    if (sending_over(now)) break;
    if (now >= hard_deadline) {
      r.error = "sending did not finish in time";
      break;
    }
    if (swarm.ended() > ended_before) break;
    auto wake = std::min(hard_deadline, by_time ? send_until : hard_deadline);
    for (std::size_t k = 0; k < senders; ++k) {
      if (checker.sent_by(k) >= per_sender) continue;
      if (o.rate > 0) {
        // Open loop: sender k's message n is due at t0 + (n + k / S) / R, whatever the server does.
        auto due = [&](std::uint64_t n) {
          return t0 + seconds((static_cast<double>(n) + static_cast<double>(k) / static_cast<double>(senders)) / o.rate);
        };
        while (checker.sent_by(k) < per_sender && due(checker.sent_by(k)) <= now) traffic.send_message(k);
        if (checker.sent_by(k) < per_sender) wake = std::min(wake, due(checker.sent_by(k)));
      } else {
        if (o.window > 0) {
          while (acked[k] < checker.sent_by(k) && checker.copies_of(k, acked[k]) >= copies_per_message) ++acked[k];
        }
        bool queued = false;
        while (checker.sent_by(k) < per_sender && swarm.pending(k) < low_water &&
               (o.window == 0 || checker.sent_by(k) - acked[k] < static_cast<std::uint64_t>(o.window))) {
          traffic.queue_message(k);
          queued = true;
        }
        if (queued) swarm.flush(k);
      }
    }
    swarm.run_once(wake);
  }
  r.sent = checker.sent_total();
  // Draining: until every copy arrived, or nothing has arrived for a while.
  const std::uint64_t expected = r.sent * copies_per_message;
  auto last_count = checker.deliveries();
  auto last_progress = Clock::now();
  while (checker.deliveries() < expected && swarm.ended() == ended_before) {
    const auto now = Clock::now();
    if (checker.deliveries() != last_count) {
      last_count = checker.deliveries();
      last_progress = now;
    }
    if (now - last_progress >= drain_quiet || now >= hard_deadline) break;
    swarm.run_once(now + 100ms);
  }
  const auto t_end = Clock::now();
  const double wall = std::chrono::duration<double>(t_end - t0).count();
  r.generator_cpu = 100 * (Swarm::cpu_seconds() - cpu0) / wall;
  const auto server1 = target.sample();
  if (server0 && server1) r.server_cpu = 100 * (server1->cpu_seconds - server0->cpu_seconds) / wall;
  r.server_after = server1;

  r.ended_during_run = swarm.ended() - ended_before;
  std::map<std::string, std::size_t> reasons;
  for (std::size_t i = 0; i < clients; ++i) {
    if (swarm.client(i).state == Swarm::State::ended) {
      checker.receiver_gone(i);
      ++reasons[swarm.client(i).end_reason];
    }
  }
  r.ended_reasons = describe_reasons(reasons);
  r.check = checker.report();
  if (const auto p = traffic.problems(); !p.empty() && r.error.empty()) r.error = p;
  r.stale = traffic.stale();
  const auto& lat = traffic.latency();
  r.p50_ms = lat.percentile_ms(50);
  r.p99_ms = lat.percentile_ms(99);
  r.max_ms = lat.max_ms();
  if (traffic.to_others() > 0) {
    r.seconds = std::chrono::duration<double>(traffic.last_delivery() - traffic.first_send()).count();
    if (r.seconds > 0) r.deliveries_per_second = static_cast<double>(traffic.to_others()) / r.seconds;
  }
  if (swarm.joined() > 0) r.stats_after = traffic.fetch_stats(std::min<std::size_t>(senders, clients - 1), Clock::now() + 5s);
  if (auto e = target.stop(); !e.empty() && r.error.empty()) r.error = e;
  progress << "fanout: done\n";
  return r;
}

void print_check(const DeliveryChecker::Report& c, std::ostream& out, std::size_t receivers) {
  out << "  checked: " << format_count(static_cast<double>(c.lost)) << " lost";
  if (c.lost_to_gone > 0) out << " (" << format_count(static_cast<double>(c.lost_to_gone)) << " to clients that were gone)";
  out << ", " << format_count(static_cast<double>(c.duplicates)) << " duplicated, "
      << format_count(static_cast<double>(c.reordered)) << " reordered, " << format_count(static_cast<double>(c.corrupt))
      << " corrupted";
  if (c.order_checked) {
    if (c.order_violations == 0) {
      out << "; global order: the same at all " << receivers << " receivers";
    } else {
      out << "; global order: " << c.order_violations << " receivers differ";
    }
  }
  out << "\n";
  for (const auto& e : c.examples) out << "  FAILED: " << e << "\n";
}

void json_check(const DeliveryChecker::Report& c, Json& json) {
  json.begin_object("check");
  json.field("expected", static_cast<long long>(c.expected));
  json.field("delivered", static_cast<long long>(c.delivered));
  json.field("lost", static_cast<long long>(c.lost));
  json.field("lost_to_gone", static_cast<long long>(c.lost_to_gone));
  json.field("duplicates", static_cast<long long>(c.duplicates));
  json.field("reordered", static_cast<long long>(c.reordered));
  json.field("corrupt", static_cast<long long>(c.corrupt));
  if (c.order_checked) json.field("order_violations", static_cast<long long>(c.order_violations));
  json.field("examples", c.examples);
  json.field("ok", c.ok());
  json.end_object();
}

void json_sample(std::string_view key, const std::optional<ProcSample>& sample, Json& json) {
  if (!sample) return;
  json.begin_object(key);
  json.field("rss_mib", sample->rss_mib);
  json.field("threads", static_cast<long long>(sample->threads));
  json.end_object();
}

void print_fanout(const FanoutResult& r, std::ostream& out) {
  const auto& o = r.options;
  out << "Fan-out: " << r.label << " (" << to_string(r.protocol) << " protocol, " << r.endpoint << "), " << o.clients
      << " clients, " << offered(o) << "\n";
  out << "  joined: " << r.join.joined << " of " << r.join.clients << " in " << format_ms(r.join.last_join_ms) << " ms\n";
  out << "  deliveries to others: " << format_count(static_cast<double>(r.check.to_others)) << " of "
      << format_count(static_cast<double>(r.sent * static_cast<std::uint64_t>(std::max(o.clients - 1, 0))))
      << " in " << format_ms(r.seconds * 1000) << " ms: " << format_count(r.deliveries_per_second) << " deliveries/s\n";
  out << "  latency ms: p50 " << format_ms(r.p50_ms) << ", p99 " << format_ms(r.p99_ms) << ", max " << format_ms(r.max_ms)
      << "\n";
  print_check(r.check, out, static_cast<std::size_t>(o.clients));
  if (r.stale > 0) out << "  ignored: " << r.stale << " messages from an earlier run\n";
  out << "  CPU over the run: chatbench " << format_count(r.generator_cpu) << "% of one core";
  if (r.generator_bound()) out << " (chatbench itself may have been the limit)";
  if (r.server_cpu) out << ", server " << format_count(*r.server_cpu) << "%";
  out << "\n";
  if (r.server_after) {
    out << "  server: " << format_ms(r.server_after->rss_mib) << " MiB resident, " << r.server_after->threads
        << " threads\n";
  }
  if (!r.stats_after.empty()) out << "  server " << r.stats_after << "\n";
  if (r.ended_during_run > 0) {
    out << "  FAILED: " << r.ended_during_run << " clients' connections ended during the run: " << r.ended_reasons << "\n";
  }
  if (!r.error.empty()) out << "  FAILED: " << r.error << "\n";
}

void json_fanout(const FanoutResult& r, Json& json) {
  const auto& o = r.options;
  json.begin_object("fanout");
  json.field("server", r.label);
  json.field("protocol", to_string(r.protocol));
  json.field("clients", o.clients);
  json.field("senders", std::min(o.senders, o.clients));
  json.field("size", o.size);
  json.field("rate", o.rate);
  json.field("msgs", o.msgs);
  json.field("duration_s", o.duration);
  json.field("window", o.window);
  json.field("join_ms", r.join.last_join_ms);
  json.field("sent", static_cast<long long>(r.sent));
  json.field("deliveries_to_others", static_cast<long long>(r.check.to_others));
  json.field("seconds", r.seconds);
  json.field("deliveries_per_second", r.deliveries_per_second);
  json.begin_object("latency_ms");
  json.field("p50", r.p50_ms);
  json.field("p99", r.p99_ms);
  json.field("max", r.max_ms);
  json.end_object();
  json_check(r.check, json);
  json.field("stale", static_cast<long long>(r.stale));
  json.field("generator_cpu_percent", r.generator_cpu);
  json.field("generator_bound", r.generator_bound());
  if (r.server_cpu) json.field("server_cpu_percent", *r.server_cpu);
  json_sample("server_after", r.server_after, json);
  if (!r.stats_after.empty()) json.field("stats", r.stats_after);
  json.field("ended_during_run", r.ended_during_run);
  if (!r.error.empty()) json.field("error", r.error);
  json.field("ok", r.ok());
  json.end_object();
}

}  // namespace chat::bench
