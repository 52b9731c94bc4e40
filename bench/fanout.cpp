#include "bench/fanout.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <thread>

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

namespace {

// One generator thread's share of a fanout run: its swarm (clients t, t+T, t+2T, ...), its
// traffic and checker, and what it reports back.
struct Worker {
  std::unique_ptr<Swarm> swarm;
  std::unique_ptr<Traffic> traffic;
  std::size_t ended_before = 0;
  double cpu_seconds = 0;
  std::string error;
};

// What the workers share while they run. Thread safe (atomics).
struct Run {
  Clock::time_point t0;
  Clock::time_point send_until;
  Clock::time_point hard_deadline;
  bool by_time = false;
  std::uint64_t per_sender = 0;
  std::uint64_t copies_per_message = 0;
  std::shared_ptr<SentCounts> sent;
  std::vector<std::atomic<std::uint64_t>> delivered;  // per worker
  std::atomic<std::size_t> done_sending{0};
  std::atomic<bool> abort{false};
  explicit Run(std::size_t workers) : delivered(workers) {}
  std::uint64_t delivered_total() const {
    std::uint64_t sum = 0;
    for (const auto& d : delivered) sum += d.load();
    return sum;
  }
};

// The sending and draining of one worker (on its own thread, or the caller's when there is one).
void work(Worker& w, std::size_t index, Run& run, const FanoutOptions& o) {
  Swarm& swarm = *w.swarm;
  Traffic& traffic = *w.traffic;
  auto& checker = traffic.checker();
  const double cpu0 = Swarm::cpu_seconds();
  const std::size_t senders = checker.senders();
  std::vector<std::uint32_t> acked(senders, 0);  // --window: messages delivered to everyone
  auto mine_done = [&](Clock::time_point now) {
    if (run.by_time) return now >= run.send_until;
    for (std::size_t k = 0; k < senders; ++k) {
      if (traffic.sends_here(k) && checker.sent_by(k) < run.per_sender) return false;
    }
    return true;
  };
  while (!run.abort) {
    const auto now = Clock::now();
    if (mine_done(now)) break;
    if (now >= run.hard_deadline) {
      w.error = "sending did not finish in time";
      run.abort = true;
      break;
    }
    if (swarm.ended() > w.ended_before) {
      run.abort = true;
      break;
    }
    auto wake = std::min(run.hard_deadline, run.by_time ? run.send_until : run.hard_deadline);
    for (std::size_t k = 0; k < senders; ++k) {
      if (!traffic.sends_here(k) || checker.sent_by(k) >= run.per_sender) continue;
      if (o.rate > 0) {
        // Open loop: sender k's message n is due at t0 + (n + k / S) / R, whatever the server does.
        auto due = [&](std::uint64_t n) {
          return run.t0 + seconds((static_cast<double>(n) + static_cast<double>(k) / static_cast<double>(senders)) / o.rate);
        };
        while (checker.sent_by(k) < run.per_sender && due(checker.sent_by(k)) <= now) traffic.send_message(k);
        if (checker.sent_by(k) < run.per_sender) wake = std::min(wake, due(checker.sent_by(k)));
      } else {
        if (o.window > 0) {
          while (acked[k] < checker.sent_by(k) && checker.copies_of(k, acked[k]) >= run.copies_per_message) ++acked[k];
        }
        bool queued = false;
        while (checker.sent_by(k) < run.per_sender && traffic.pending(k) < low_water &&
               (o.window == 0 || checker.sent_by(k) - acked[k] < static_cast<std::uint64_t>(o.window))) {
          traffic.queue_message(k);
          queued = true;
        }
        if (queued) traffic.flush(k);
      }
    }
    swarm.run_once(wake);
    run.delivered[index] = checker.deliveries();
  }
  ++run.done_sending;
  // Draining: until every copy arrived, or nothing has arrived anywhere for a while.
  auto last_total = run.delivered_total();
  auto last_progress = Clock::now();
  while (!run.abort) {
    run.delivered[index] = checker.deliveries();
    const auto now = Clock::now();
    const auto total = run.delivered_total();
    if (run.done_sending == run.delivered.size() && total >= run.sent->total() * run.copies_per_message) break;
    if (total != last_total) {
      last_total = total;
      last_progress = now;
    }
    if ((run.done_sending == run.delivered.size() && now - last_progress >= drain_quiet) || now >= run.hard_deadline) break;
    if (swarm.ended() > w.ended_before) break;
    swarm.run_once(now + 20ms);
  }
  run.delivered[index] = checker.deliveries();
  w.cpu_seconds = Swarm::cpu_seconds() - cpu0;
}

}  // namespace

FanoutResult run_fanout(const FanoutOptions& o, const TargetOptions& target_options, std::ostream& progress) {
  FanoutResult r;
  r.options = o;
  r.protocol = target_options.protocol;
  r.web_share = target_options.web_share;
  r.tls = target_options.tls;
  const auto clients = static_cast<std::size_t>(o.clients);
  const auto senders = static_cast<std::size_t>(std::min(o.senders, o.clients));
  // With several instances: at least one generator thread per instance, each driving the
  // clients of one of them (thread t's clients go to instance t mod N).
  const auto threads = static_cast<std::size_t>(std::max({1, o.threads, target_options.instances}));
  Target target(target_options, clients);
  r.instances = target.instances();
  r.label = target.label();
  r.endpoint = target.host() + ":" + std::to_string(target.port());

  // Joining is not what this mode measures: a few at a time, so that no server's listen backlog
  // (ngircd's and ncat's is 10) overflows and no client waits for a SYN retransmission.
  std::vector<Worker> workers(threads);
  std::vector<Swarm*> swarms;
  for (std::size_t t = 0; t < threads; ++t) {
    std::vector<std::size_t> ids;
    for (std::size_t g = t; g < clients; g += threads) ids.push_back(g);
    workers[t].swarm = std::make_unique<Swarm>(
        target.swarm_options(std::max<std::size_t>(1, static_cast<std::size_t>(o.in_progress) / threads), t));
    workers[t].swarm->add_clients(ids);
    workers[t].traffic = std::make_unique<Traffic>(*workers[t].swarm, static_cast<std::size_t>(o.size));
    swarms.push_back(workers[t].swarm.get());
  }
  Swarm& first = *workers[0].swarm;  // holds client 0

  progress << "fanout: " << r.label << ": joining " << clients << " clients ...\n";
  r.join = join_all(swarms, Clock::now() + join_patience, progress);
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
  r.stats_before = workers[0].traffic->fetch_stats(0, Clock::now() + 5s);

  std::vector<std::size_t> sender_clients(senders);
  for (std::size_t k = 0; k < senders; ++k) sender_clients[k] = k;
  Run run(threads);
  run.sent = std::make_shared<SentCounts>(senders);
  const Traffic::Shared shared{clients, run.sent, std::random_device{}() & 0xffffffu};
  for (auto& w : workers) {
    w.traffic->begin(sender_clients, target_options.protocol == Protocol::chat, &shared);
    if (o.window > 0) w.traffic->checker().track_copies();
    if (o.duration == 0) w.traffic->checker().reserve(static_cast<std::size_t>(o.msgs) * senders);
    w.ended_before = w.swarm->ended();
  }
  run.copies_per_message = first.dialect().echoes() ? clients : clients - 1;
  run.by_time = o.duration > 0;
  run.per_sender = run.by_time ? UINT64_MAX : static_cast<std::uint64_t>(o.msgs);

  progress << "fanout: " << offered(o) << (threads > 1 ? " (" + std::to_string(threads) + " generator threads)" : "")
           << " ...\n";
  const auto server0 = target.sample();
  const auto redis0 = target.redis_cpu_seconds();
  run.t0 = Clock::now();
  run.send_until = run.t0 + seconds(o.duration);
  const auto planned =
      run.by_time ? seconds(o.duration) : o.rate > 0 ? seconds(static_cast<double>(o.msgs) / o.rate) : Clock::duration(0s);
  run.hard_deadline = run.t0 + planned + send_slack;
  if (threads == 1) {
    work(workers[0], 0, run, o);
  } else {
    std::vector<std::jthread> running;
    for (std::size_t t = 0; t < threads; ++t) running.emplace_back([&, t] { work(workers[t], t, run, o); });
  }  // joined here
  check_interrupted();

  r.sent = run.sent->total();
  Clock::time_point first_send = Clock::time_point::max(), last_delivery{};
  LatencyHistogram latency, same, cross;
  std::vector<const DeliveryChecker*> checkers;
  double generator_cpu = 0;
  std::map<std::string, std::size_t> reasons;
  for (auto& w : workers) {
    auto& t = *w.traffic;
    if (t.first_send() != Clock::time_point{}) first_send = std::min(first_send, t.first_send());
    last_delivery = std::max(last_delivery, t.last_delivery());
    latency.merge(t.latency());
    same.merge(t.latency_same_swarm());
    cross.merge(t.latency_other_swarm());
    checkers.push_back(&t.checker());
    generator_cpu += w.cpu_seconds;
    if (r.error.empty() && !w.error.empty()) r.error = w.error;
    r.ended_during_run += w.swarm->ended() - w.ended_before;
    for (std::size_t i = 0; i < w.swarm->size(); ++i) {
      if (w.swarm->client(i).state == Swarm::State::ended) {
        t.checker().receiver_gone(w.swarm->id(i));
        ++reasons[w.swarm->client(i).end_reason];
      }
    }
    if (const auto p = t.problems(); !p.empty() && r.error.empty()) r.error = p;
    r.stale += t.stale();
  }
  // CPU over the time the work took: from the first send to the last delivery (a wait for
  // deliveries that never came costs no CPU, and must not dilute the figure). /proc counts CPU
  // time in clock ticks (10 ms): over a run shorter than half a second the figure says nothing.
  const auto t_end = last_delivery > run.t0 ? last_delivery : Clock::now();
  const double wall = std::chrono::duration<double>(t_end - run.t0).count();
  const auto server1 = target.sample();
  const auto redis1 = target.redis_cpu_seconds();
  if (wall >= 0.5) {
    r.generator_cpu = 100 * generator_cpu / wall;
    if (server0 && server1) r.server_cpu = 100 * (server1->cpu_seconds - server0->cpu_seconds) / wall;
    if (redis0 && redis1) {
      r.redis_cpu = 100 * (*redis1 - *redis0) / wall;
      if (r.sent > 0) r.redis_us_per_message = 1e6 * (*redis1 - *redis0) / static_cast<double>(r.sent);
    }
  }
  r.server_after = server1;
  r.ended_reasons = describe_reasons(reasons);
  r.check = DeliveryChecker::merged_report(checkers);
  if (wall >= 0.5 && server0 && server1 && r.check.to_others > 0) {
    r.server_ns_per_delivery =
        1e9 * (server1->cpu_seconds - server0->cpu_seconds) / static_cast<double>(r.check.to_others);
  }
  r.p50_ms = latency.percentile_ms(50);
  r.p99_ms = latency.percentile_ms(99);
  r.max_ms = latency.max_ms();
  if (r.instances > 1) {
    r.p50_same_ms = same.percentile_ms(50);
    r.p99_same_ms = same.percentile_ms(99);
    r.p50_cross_ms = cross.percentile_ms(50);
    r.p99_cross_ms = cross.percentile_ms(99);
  }
  {
    std::vector<const Traffic*> traffic;
    std::vector<const Swarm*> swarms_seen;
    std::size_t web = 0;
    for (const auto& w : workers) {
      traffic.push_back(w.traffic.get());
      swarms_seen.push_back(w.swarm.get());
      web += w.swarm->web_clients();
    }
    if (web > 0) r.by_kind = kind_figures(traffic, swarms_seen, first_send);
  }
  if (r.check.to_others > 0 && first_send < last_delivery) {
    r.seconds = std::chrono::duration<double>(last_delivery - first_send).count();
    r.deliveries_per_second = static_cast<double>(r.check.to_others) / r.seconds;
  }
  if (first.joined() > 0) {
    for (std::size_t i = 0; i < first.size(); ++i) {
      if (first.client(i).state == Swarm::State::joined) {
        r.stats_after = workers[0].traffic->fetch_stats(i, Clock::now() + 5s);
        break;
      }
    }
  }
  if (o.before_stop) o.before_stop(target.port(), target.pid());
  if (auto e = target.stop(); !e.empty() && r.error.empty()) r.error = e;
  progress << "fanout: done\n";
  return r;
}

std::vector<KindFigures> kind_figures(const std::vector<const Traffic*>& traffic, const std::vector<const Swarm*>& swarms,
                                      Clock::time_point first_send) {
  std::vector<KindFigures> out;
  for (const bool web : {false, true}) {
    KindFigures k;
    k.kind = web ? "web" : "tcp";
    for (const auto* s : swarms) k.clients += web ? s->web_clients() : s->size() - s->web_clients();
    if (k.clients == 0) continue;
    LatencyHistogram latency;
    Clock::time_point last{};
    for (const auto* t : traffic) {
      const auto& b = t->by_kind(web);
      latency.merge(b.latency);
      k.to_others += b.to_others;
      last = std::max(last, b.last_delivery);
    }
    if (k.to_others > 0 && first_send < last) {
      k.seconds = std::chrono::duration<double>(last - first_send).count();
      k.deliveries_per_second = static_cast<double>(k.to_others) / k.seconds;
      k.per_client = k.deliveries_per_second / static_cast<double>(k.clients);
    }
    k.p50_ms = latency.percentile_ms(50);
    k.p99_ms = latency.percentile_ms(99);
    k.max_ms = latency.max_ms();
    out.push_back(std::move(k));
  }
  return out;
}

namespace {

const KindFigures* find_kind(const std::vector<KindFigures>& kinds, std::string_view kind) {
  for (const auto& k : kinds) {
    if (k.kind == kind) return &k;
  }
  return nullptr;
}

std::string ratio(double a, double b) {
  if (b <= 0) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", a / b);
  return text;
}

}  // namespace

void print_kinds(const std::vector<KindFigures>& kinds, std::ostream& out, std::string_view indent) {
  out << indent << "by the kind of client that received them:\n";
  for (const auto& k : kinds) {
    out << indent << "  " << k.kind << ": " << k.clients << " clients, " << format_count(static_cast<double>(k.to_others))
        << " deliveries to others in " << format_ms(k.seconds * 1000) << " ms: " << format_count(k.deliveries_per_second)
        << " deliveries/s (" << format_count(k.per_client) << " per client); latency ms p50 " << format_ms(k.p50_ms)
        << ", p99 " << format_ms(k.p99_ms) << ", max " << format_ms(k.max_ms) << "\n";
  }
  const auto* web = find_kind(kinds, "web");
  const auto* tcp = find_kind(kinds, "tcp");
  if (web && tcp) {
    out << indent << "  web / tcp: deliveries/s per client " << ratio(web->per_client, tcp->per_client) << ", p50 "
        << ratio(web->p50_ms, tcp->p50_ms) << ", p99 " << ratio(web->p99_ms, tcp->p99_ms) << "\n";
  }
}

void json_kinds(std::string_view key, const std::vector<KindFigures>& kinds, Json& json) {
  if (kinds.empty()) return;
  json.begin_object(key);
  for (const auto& k : kinds) {
    json.begin_object(k.kind);
    json.field("clients", k.clients);
    json.field("deliveries_to_others", static_cast<long long>(k.to_others));
    json.field("seconds", k.seconds);
    json.field("deliveries_per_second", k.deliveries_per_second);
    json.field("deliveries_per_second_per_client", k.per_client);
    json.begin_object("latency_ms");
    json.field("p50", k.p50_ms);
    json.field("p99", k.p99_ms);
    json.field("max", k.max_ms);
    json.end_object();
    json.end_object();
  }
  const auto* web = find_kind(kinds, "web");
  const auto* tcp = find_kind(kinds, "tcp");
  if (web && tcp) {
    json.begin_object("web_over_tcp");
    if (tcp->per_client > 0) json.field("per_client", web->per_client / tcp->per_client);
    if (tcp->p50_ms > 0) json.field("p50", web->p50_ms / tcp->p50_ms);
    if (tcp->p99_ms > 0) json.field("p99", web->p99_ms / tcp->p99_ms);
    json.end_object();
  }
  json.end_object();
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

void json_join(const JoinOutcome& j, Json& json) {
  json.field("joined", j.joined);
  json.field("refused", j.refused);
  json.field("dropped", j.dropped);
  json.field("timed_out", j.timed_out);
  json.field("last_join_ms", j.last_join_ms);
  json.field("chatter_end_ms", j.chatter_end_ms);
  json.field("reasons", describe_reasons(j.reasons, 10));
}

void print_fanout(const FanoutResult& r, std::ostream& out) {
  const auto& o = r.options;
  out << "Fan-out: " << r.label << " (" << describe_protocol(r.protocol, r.web_share) << " protocol" << (r.tls ? " over TLS" : "") << ", " << r.endpoint << "), " << o.clients
      << " clients, " << offered(o) << "\n";
  out << "  joined: " << r.join.joined << " of " << r.join.clients << " in " << format_ms(r.join.last_join_ms) << " ms\n";
  out << "  deliveries to others: " << format_count(static_cast<double>(r.check.to_others)) << " of "
      << format_count(static_cast<double>(r.sent * static_cast<std::uint64_t>(std::max(o.clients - 1, 0))))
      << " in " << format_ms(r.seconds * 1000) << " ms: " << format_count(r.deliveries_per_second) << " deliveries/s\n";
  out << "  latency ms: p50 " << format_ms(r.p50_ms) << ", p99 " << format_ms(r.p99_ms) << ", max " << format_ms(r.max_ms)
      << "\n";
  if (r.instances > 1) {
    out << "  latency ms, sender on the receiver's instance: p50 " << format_ms(r.p50_same_ms) << ", p99 "
        << format_ms(r.p99_same_ms) << "; on another: p50 " << format_ms(r.p50_cross_ms) << ", p99 "
        << format_ms(r.p99_cross_ms) << "\n";
  }
  if (r.by_kind.size() > 1) print_kinds(r.by_kind, out);
  print_check(r.check, out, static_cast<std::size_t>(o.clients));
  if (r.stale > 0) out << "  ignored: " << r.stale << " messages from an earlier run\n";
  if (r.generator_cpu > 0) {
    out << "  CPU over the run: chatbench " << format_count(r.generator_cpu) << "% of one core";
    if (r.generator_bound()) out << " (chatbench itself may have been the limit)";
    if (r.server_cpu) out << ", server " << format_count(*r.server_cpu) << "%";
    if (r.server_ns_per_delivery) out << " (" << format_ms(*r.server_ns_per_delivery) << " ns of server CPU per delivery)";
    if (r.redis_cpu) out << ", redis-server " << format_count(*r.redis_cpu) << "%";
    if (r.redis_us_per_message) out << " (" << format_ms(*r.redis_us_per_message) << " us of redis CPU per message)";
    out << "\n";
  }
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
  json.field("protocol", protocol_name(r.protocol, r.web_share));
  json.field("web_share", r.web_share);
  json.field("tls", r.tls);
  json.field("instances", static_cast<long long>(r.instances));
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
  if (r.instances > 1) {
    json.field("p50_same_instance", r.p50_same_ms);
    json.field("p99_same_instance", r.p99_same_ms);
    json.field("p50_other_instance", r.p50_cross_ms);
    json.field("p99_other_instance", r.p99_cross_ms);
  }
  json.end_object();
  json_kinds("by_kind", r.by_kind, json);
  json_check(r.check, json);
  json.field("stale", static_cast<long long>(r.stale));
  if (r.generator_cpu > 0) {  // measured over runs of half a second or more
    json.field("generator_cpu_percent", r.generator_cpu);
    json.field("generator_bound", r.generator_bound());
  }
  if (r.server_cpu) json.field("server_cpu_percent", *r.server_cpu);
  if (r.server_ns_per_delivery) json.field("server_cpu_ns_per_delivery", *r.server_ns_per_delivery);
  if (r.redis_cpu) json.field("redis_cpu_percent", *r.redis_cpu);
  if (r.redis_us_per_message) json.field("redis_cpu_us_per_message", *r.redis_us_per_message);
  json_sample("server_after", r.server_after, json);
  if (!r.stats_after.empty()) json.field("stats", r.stats_after);
  json.field("ended_during_run", r.ended_during_run);
  if (!r.error.empty()) json.field("error", r.error);
  json.field("ok", r.ok());
  json.end_object();
}

}  // namespace chat::bench
