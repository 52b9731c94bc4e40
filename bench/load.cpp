#include "bench/load.hpp"

#include "bench/child_process.hpp"
#include "bench/line_conn.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>

namespace chat::bench {
namespace {

using namespace std::chrono_literals;

constexpr auto join_patience = 60s;
constexpr auto flood_patience = 60s;
constexpr auto paced_slack = 30s;  // beyond the time the paced phase takes by its rate

long long now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

// "<seq> <send time ns> xxxx...": `size` bytes of text.
std::string message_text(long long seq, long long sent_ns, std::size_t size) {
  std::string text = std::to_string(seq) + " " + std::to_string(sent_ns) + " ";
  if (text.size() < size) text.append(size - text.size(), 'x');
  return text;
}

// The send time from "MSG <nick> <seq> <ns> xxx", or nullopt for any other line.
std::optional<long long> sent_ns_of(std::string_view line) {
  if (!line.starts_with("MSG ")) return std::nullopt;
  line.remove_prefix(4);
  const auto nick_end = line.find(' ');
  if (nick_end == std::string_view::npos) return std::nullopt;
  line.remove_prefix(nick_end + 1);
  const auto seq_end = line.find(' ');
  if (seq_end == std::string_view::npos) return std::nullopt;
  line.remove_prefix(seq_end + 1);
  long long ns = 0;
  const auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), ns);
  if (ec != std::errc() || end == line.data()) return std::nullopt;
  return ns;
}

LoadPhase run_phase(bool paced, const LoadOptions& o, std::vector<LineConn>& conns, long long& next_seq,
                    std::vector<std::string>& dropped) {
  LoadPhase phase;
  phase.name = paced ? "paced" : "flood";
  phase.offered = paced ? std::to_string(o.rate) + " msg/s" : "window " + std::to_string(o.window);
  std::vector<LineConn*> all;
  for (auto& c : conns) all.push_back(&c);
  const auto receivers = conns.size();
  const auto senders = static_cast<std::size_t>(std::min<int>(o.senders, static_cast<int>(receivers)));
  const auto total = static_cast<long long>(o.messages);
  phase.expected = total * static_cast<long long>(receivers);
  std::vector<long long> received(receivers, 0);
  std::vector<double> latency_ms;
  latency_ms.reserve(static_cast<std::size_t>(phase.expected));

  const auto start = Clock::now();
  const auto deadline =
      start + (paced ? std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                           static_cast<double>(total) / o.rate)) + paced_slack
                     : Clock::duration(flood_patience));
  Clock::time_point first_send{};
  Clock::time_point last_delivery{};
  auto send_one = [&] {
    LineConn& from = conns[static_cast<std::size_t>(phase.sent) % senders];
    const long long ns = now_ns();
    if (phase.sent == 0) first_send = Clock::now();
    from.send_line("SAY " + message_text(next_seq++, ns, static_cast<std::size_t>(o.size)));
    ++phase.sent;
  };
  while (phase.delivered < phase.expected || phase.sent < total) {
    auto now = Clock::now();
    if (now >= deadline) {
      phase.error = "timed out: " + std::to_string(phase.delivered) + " of " + std::to_string(phase.expected) +
                    " deliveries";
      break;
    }
    Clock::time_point wake = now + 5ms;
    if (paced) {
      // Open loop: message k is due at start + k / rate, whatever the server does.
      const auto elapsed = std::chrono::duration<double>(now - start).count();
      const auto due = std::min(total, static_cast<long long>(elapsed * o.rate) + 1);
      while (phase.sent < due) send_one();
      if (phase.sent < total) {
        wake = start + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(static_cast<double>(phase.sent) / o.rate));
      }
    } else {
      const long long slowest = *std::min_element(received.begin(), received.end());
      while (phase.sent < total && phase.sent - slowest < o.window) send_one();
    }
    pump(all, std::min(wake, deadline));
    now = Clock::now();
    const long long read_ns = now_ns();
    for (std::size_t i = 0; i < receivers; ++i) {
      while (auto line = conns[i].next_line()) {
        if (const auto sent_ns = sent_ns_of(*line)) {
          latency_ms.push_back(static_cast<double>(read_ns - *sent_ns) / 1e6);
          ++received[i];
          ++phase.delivered;
          last_delivery = now;
        } else if (!answer_ping(conns[i], *line) && line->starts_with("LEAVE ")) {
          dropped.emplace_back(*line);
        }
      }
      if (!conns[i].live() && phase.error.empty()) {
        phase.error = "client " + std::to_string(i) + "'s connection ended";
      }
    }
    if (!phase.error.empty()) break;
  }
  phase.latency = summarize(std::move(latency_ms));
  if (phase.delivered > 0) {
    phase.seconds = std::chrono::duration<double>(last_delivery - first_send).count();
    if (phase.seconds > 0) phase.lines_per_second = static_cast<double>(phase.delivered) / phase.seconds;
  }
  return phase;
}

}  // namespace

bool LoadResult::ok() const {
  if (!error.empty() || !dropped.empty() || phases.empty()) return false;
  for (const auto& p : phases) {
    if (!p.error.empty() || p.delivered != p.expected) return false;
  }
  return true;
}

LoadResult run_load(const LoadOptions& options, std::ostream& progress) {
  LoadResult r;
  r.options = options;
  raise_file_limit();
  ServerProcess server(options.server_path,
                       {"--log-level", "warn", "--max-clients", std::to_string(std::max(options.clients, 1000))});
  progress << "load: joining " << options.clients << " clients ..." << std::flush;
  const auto join_start = Clock::now();
  std::vector<LineConn> conns;
  try {
    conns = join_many(server.port(), "c", options.clients, join_start + join_patience);
  } catch (const Interrupted&) {
    throw;
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  r.join_ms = millis_between(join_start, Clock::now());
  progress << " done in " << format_ms(r.join_ms) << " ms\n";
  if (r.error.empty()) {
    long long seq = 0;
    for (const bool paced : {true, false}) {
      progress << "load: " << (paced ? "paced" : "flood") << " phase, " << options.messages << " messages ..."
               << std::flush;
      r.phases.push_back(run_phase(paced, options, conns, seq, r.dropped));
      const auto& p = r.phases.back();
      progress << " " << format_count(static_cast<double>(p.delivered)) << " deliveries in "
               << format_ms(p.seconds * 1000) << " ms\n";
      if (!p.error.empty()) break;
    }
  }
  conns.clear();
  const int code = server.stop();
  if (code != 0 && r.error.empty()) r.error = "chatserver exited with status " + std::to_string(code);
  return r;
}

void print_load(const LoadResult& r, std::ostream& out) {
  const auto& o = r.options;
  out << "Load: " << o.clients << " joined clients, " << std::min(o.senders, o.clients) << " senders, "
      << o.messages << " messages of " << o.size << " bytes per phase; every client receives every message\n"
      << "(latency: the send time in the message text to the time a receiver read it; joined in "
      << format_ms(r.join_ms) << " ms)\n\n";
  Table table({{"phase", false},
               {"offered", false},
               {"sent", true},
               {"delivered", true},
               {"p50 ms", true},
               {"p99 ms", true},
               {"max ms", true},
               {"lines/s", true}});
  for (const auto& p : r.phases) {
    const bool any = p.latency.count > 0;
    table.add_row({p.name, p.offered, format_count(static_cast<double>(p.sent)),
                   format_count(static_cast<double>(p.delivered)) + " / " +
                       format_count(static_cast<double>(p.expected)),
                   any ? format_ms(p.latency.median) : "-", any ? format_ms(p.latency.p99) : "-",
                   any ? format_ms(p.latency.max) : "-", format_count(p.lines_per_second)});
  }
  table.print(out);
  for (const auto& p : r.phases) {
    if (!p.error.empty()) out << "FAILED " << p.name << ": " << p.error << "\n";
  }
  for (const auto& d : r.dropped) out << "dropped: " << d << "\n";
  if (!r.error.empty()) out << "FAILED: " << r.error << "\n";
}

void json_load(const LoadResult& r, Json& json) {
  json.begin_object("load");
  json.field("clients", r.options.clients);
  json.field("senders", std::min(r.options.senders, r.options.clients));
  json.field("messages", r.options.messages);
  json.field("size", r.options.size);
  json.field("join_ms", r.join_ms);
  json.begin_array("phases");
  for (const auto& p : r.phases) {
    json.begin_object();
    json.field("phase", p.name);
    json.field("offered", p.offered);
    json.field("sent", p.sent);
    json.field("expected", p.expected);
    json.field("delivered", p.delivered);
    json.begin_object("latency_ms");
    json.field("p50", p.latency.median);
    json.field("p99", p.latency.p99);
    json.field("max", p.latency.max);
    json.end_object();
    json.field("seconds", p.seconds);
    json.field("lines_per_second", p.lines_per_second);
    if (!p.error.empty()) json.field("error", p.error);
    json.end_object();
  }
  json.end_array();
  json.field("dropped", r.dropped);
  json.field("ok", r.ok());
  if (!r.error.empty()) json.field("error", r.error);
  json.end_object();
}

}  // namespace chat::bench
