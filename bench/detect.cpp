#include "bench/detect.hpp"

#include "bench/child_process.hpp"
#include "bench/line_conn.hpp"
#include "common/protocol.hpp"

#include <algorithm>
#include <csignal>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>

namespace chat::bench {
namespace {

using namespace std::chrono_literals;

enum class Failure { quit, killed, reset, stopped, not_reading };

// What the observer sends in a not-reading case, from the injection on: lines of `line_bytes`
// ("SAY " and text; the LF not counted), until the LEAVE or a cap, whichever comes first.
struct Traffic {
  std::size_t line_bytes = 0;
  std::size_t max_lines = 0;  // 0: no cap by count
  std::size_t max_bytes = 0;  // LFs included; 0: no cap by size
};

struct Case {
  std::string name;
  Failure failure = Failure::quit;
  std::vector<std::string> server_args{};  // `{}`: cases() leaves it out where there are none
  std::string settings;
  std::string expected;
  std::string start;
  Clock::duration patience{};  // from the injection to giving up on the LEAVE
  bool once = false;           // one run whatever --runs says
  Traffic traffic{};           // Failure::not_reading only
};

// The victim's receive buffer in the not-reading cases (the kernel doubles it): it fills at once.
constexpr int small_rcvbuf = 4096;
// The most the observer sends in one run of the 3 KB cases. The stall case must stay well under
// its --send-queue (256 MiB) or it would measure the queue limit instead; 16 MiB is still far
// more than the socket buffers between the server and the victim hold (a few MiB on Linux).
constexpr Traffic queue_case_traffic{.line_bytes = 4 + 3000, .max_bytes = 128u << 20};
constexpr Traffic stall_case_traffic{.line_bytes = 4 + 3000, .max_bytes = 16u << 20};
// The issue's scenario, as it was reported: another member sends 1,000 lines of 900 bytes. With
// --send-queue 256KiB the victim is over it after 350 or so (the limit, plus what its socket
// buffers took); a server that never drops it too-slow takes all 1,000 (880 KiB) into its kernel.
constexpr Traffic issue_traffic{.line_bytes = 900, .max_lines = 1000};

std::vector<Case> cases() {
  return {
      {.name = "quit", .failure = Failure::quit, .settings = "defaults", .expected = "quit",
       .start = "victim sends QUIT", .patience = 5s},
      {.name = "closed (SIGKILL)", .failure = Failure::killed, .settings = "defaults", .expected = "closed",
       .start = "kill(victim, SIGKILL)", .patience = 5s},
      {.name = "reset (RST)", .failure = Failure::reset, .settings = "defaults", .expected = "reset",
       .start = "close() with SO_LINGER {1,0}", .patience = 5s},
      {.name = "no-pong (SIGSTOP)", .failure = Failure::stopped, .settings = "defaults (ping 15s, timeout 10s)",
       .expected = "no-pong", .start = "kill(victim, SIGSTOP)", .patience = 40s, .once = true},
      {.name = "no-pong (SIGSTOP)", .failure = Failure::stopped,
       .server_args = {"--ping-interval", "1s", "--ping-timeout", "1s"},
       .settings = "--ping-interval 1s --ping-timeout 1s", .expected = "no-pong", .start = "kill(victim, SIGSTOP)",
       .patience = 10s},
      {.name = "too-slow queue", .failure = Failure::not_reading, .settings = "--send-queue 1MiB (default)",
       .expected = "too-slow", .start = "first 3 KB line to a victim that stopped reading", .patience = 30s,
       .traffic = queue_case_traffic},
      {.name = "too-slow stall", .failure = Failure::not_reading,
       .server_args = {"--send-timeout", "1s", "--send-queue", "256MiB"},
       .settings = "--send-timeout 1s --send-queue 256MiB", .expected = "too-slow",
       .start = "first 3 KB line to a victim that stopped reading", .patience = 20s, .traffic = stall_case_traffic},
      // The patience is the default heartbeat's (a PING after 15 s of silence, no-pong 10 s later,
      // as the no-pong case above): a server that lets the victim fall behind without limit still
      // removes it, late and with another cause, and the row then shows that (MISMATCH), not a
      // time-out. Once its 1,000 lines are sent, the observer only reads until then.
      {.name = "not reading (900 B lines)", .failure = Failure::not_reading,
       .server_args = {"--send-queue", "256KiB", "--send-timeout", "2s"},
       .settings = "--send-queue 256KiB --send-timeout 2s", .expected = "too-slow",
       .start = "first 900 B line to a victim with a 4 KiB receive buffer that stopped reading", .patience = 40s,
       .traffic = issue_traffic},
  };
}

// The observer's flood in the not-reading cases. It sends the case's lines and reads them back
// (the room echoes them to their sender), keeping at most `max_in_flight` lines sent but not yet
// read back: a sender that sends faster than it reads would fill its own send queue on the
// server and be dropped too-slow itself, before the victim. Once a cap is reached it sends no
// more; watch() goes on reading until the LEAVE or the case's patience.
struct Flood {
  static constexpr std::size_t max_in_flight = 64;  // 190 KB of 3 KB lines: below every --send-queue here

  explicit Flood(const Traffic& t) : traffic(t), line("SAY " + std::string(t.line_bytes - 4, 'x')) {}

  Traffic traffic;
  std::string line;
  std::size_t sent_bytes = 0;
  std::size_t sent = 0;
  std::size_t echoed = 0;

  bool capped() const {
    return (traffic.max_lines > 0 && sent >= traffic.max_lines) ||
           (traffic.max_bytes > 0 && sent_bytes >= traffic.max_bytes);
  }

  void feed(LineConn& observer) {
    while (observer.live() && sent - echoed < max_in_flight && !capped()) {
      observer.send_line(line);
      sent_bytes += line.size() + 1;
      ++sent;
    }
  }
};

struct RunResult {
  std::optional<double> ms;
  std::string cause;
  std::string detail;
  std::string error;
  std::string oddity;
  std::size_t sent_bytes = 0;  // the too-slow cases: what the observer sent until the LEAVE
};

// Pumps the observer until a line matches `want`, answering PINGs and, when `flood` is given,
// sending from the observer meanwhile. Returns the event and when it was read, or nullopt with
// `why` set (time out, or the observer itself was dropped).
struct Seen {
  Event event;
  Clock::time_point at;
};
std::optional<Seen> watch(LineConn& observer, const std::function<bool(const Event&)>& want,
                          Clock::time_point deadline, Flood* flood, std::string& why) {
  LineConn* const conns[] = {&observer};
  while (true) {
    if (flood) flood->feed(observer);
    pump(conns, deadline);
    while (auto line = observer.next_line()) {
      const auto at = Clock::now();
      if (answer_ping(observer, *line)) continue;
      if (flood && line->starts_with("MSG observer ")) {
        ++flood->echoed;
        continue;
      }
      auto event = parse_event(*line);
      if (!event) continue;
      if (want(*event)) return Seen{std::move(*event), at};
      if (event->kind == Event::Kind::bye) {
        why = "the observer was dropped: " + std::string(*line);
        return std::nullopt;
      }
    }
    if (!observer.live()) {
      why = "the observer's connection ended: " + (observer.error().empty() ? "closed" : observer.error());
      return std::nullopt;
    }
    if (Clock::now() >= deadline) {
      why = "no LEAVE within the time allowed";
      return std::nullopt;
    }
  }
}

// "poller" from "connection closed by peer (poller, 2.1 s after last traffic)"; "-" when the
// detail names nobody (a QUIT's reason).
std::string noticed_by(const std::string& detail) {
  const auto open = detail.rfind('(');
  if (open == std::string::npos) return "-";
  const auto end = detail.find_first_of(",)", open);
  if (end == std::string::npos) return "-";
  return detail.substr(open + 1, end - open - 1);
}

RunResult run_once(const Case& c, const DetectOptions& options) {
  RunResult result;
  ServerProcess server(options.server_path, c.server_args);
  const auto setup = Clock::now() + 10s;
  LineConn observer(server.port(), setup);
  join(observer, "observer", setup);

  std::optional<ChildProcess> victim_process;
  std::optional<LineConn> victim;
  const bool in_a_process = c.failure == Failure::killed || c.failure == Failure::stopped;
  if (in_a_process) {
    victim_process.emplace(std::vector<std::string>{options.self_path, "victim", "--port",
                                                    std::to_string(server.port()), "--nick", "victim"},
                           ChildProcess::Output::pipe, ChildProcess::Output::inherit);
    const auto said = victim_process->out().read_line(setup);
    if (!said || *said != "joined") throw std::runtime_error("victim did not join: " + said.value_or("(nothing)"));
  } else {
    // LineConn sets SO_RCVBUF before it connects, so the window the victim offers is small from
    // the SYN on.
    victim.emplace(server.port(), setup, c.failure == Failure::not_reading ? small_rcvbuf : 0);
    join(*victim, "victim", setup);
  }
  std::string why;
  const auto is_victim = [](Event::Kind kind) {
    return [kind](const Event& e) { return e.kind == kind && e.nick == "victim"; };
  };
  if (!watch(observer, is_victim(Event::Kind::join), setup, nullptr, why)) {
    throw std::runtime_error("the observer did not see the victim join: " + why);
  }

  // The injection. From here on the victim is not read from again.
  std::optional<Flood> flood;
  if (c.failure == Failure::not_reading) flood.emplace(c.traffic);
  const auto injected = Clock::now();
  switch (c.failure) {
    case Failure::quit: victim->send_line(format_command(Command{Verb::quit, {}, "bench"})); break;
    case Failure::killed: victim_process->signal(SIGKILL); break;
    case Failure::reset: victim->close_with_reset(); break;
    case Failure::stopped: victim_process->signal(SIGSTOP); break;
    case Failure::not_reading: break;  // watch() sends the first line at once
  }
  const auto seen =
      watch(observer, is_victim(Event::Kind::leave), injected + c.patience, flood ? &*flood : nullptr, why);
  if (seen) {
    result.ms = millis_between(injected, seen->at);
    result.cause = seen->event.code;
    result.detail = seen->event.text;
  } else {
    result.error = why;
    if (flood && flood->capped()) {
      result.error += " (the observer had sent all it sends: " + std::to_string(flood->sent) + " lines, " +
                      std::to_string(flood->sent_bytes) + " bytes)";
    }
  }
  if (flood) result.sent_bytes = flood->sent_bytes;

  // The end: the victim process by pid, our sockets, then the server (SIGTERM, by pid).
  if (victim_process) victim_process->kill();
  if (victim) victim->close();
  observer.close();
  const int code = server.stop();
  if (code != 0) result.oddity = "chatserver exited with status " + std::to_string(code);
  if (!seen) {
    for (const auto& line : server.stderr_tail()) result.error += "\n      server: " + line;
  }
  return result;
}

}  // namespace

bool DetectRow::ok() const {
  if (!errors.empty() || causes.empty()) return false;
  for (const auto& c : causes) {
    if (c != expected) return false;
  }
  return true;
}

std::vector<std::string> detect_case_names() {
  std::vector<std::string> names;
  for (const auto& c : cases()) {
    if (std::find(names.begin(), names.end(), c.name) == names.end()) names.push_back(c.name);
  }
  return names;
}

bool detect_case_selected(const std::string& name, const std::vector<std::string>& filters) {
  if (filters.empty()) return true;
  return std::any_of(filters.begin(), filters.end(),
                     [&](const std::string& f) { return name.find(f) != std::string::npos; });
}

std::vector<DetectRow> run_detect(const DetectOptions& options, std::ostream& progress) {
  std::vector<DetectRow> rows;
  for (const auto& c : cases()) {
    if (!detect_case_selected(c.name, options.cases)) continue;
    DetectRow row;
    row.name = c.name;
    row.settings = c.settings;
    row.expected = c.expected;
    row.start = c.start;
    row.line_bytes = c.traffic.line_bytes;
    row.max_lines = c.traffic.max_lines;
    const int runs = c.once ? 1 : options.runs;
    for (int run = 1; run <= runs; ++run) {
      progress << "detect: " << c.name << ", " << c.settings << ", run " << run << "/" << runs << ": " << std::flush;
      RunResult r;
      try {
        r = run_once(c, options);
      } catch (const Interrupted&) {
        throw;
      } catch (const std::exception& e) {
        r.error = e.what();
      }
      if (r.ms) {
        row.ms.push_back(*r.ms);
        row.causes.push_back(r.cause);
        row.details.push_back(r.detail);
        progress << format_ms(*r.ms) << " ms, LEAVE victim " << r.cause << " " << r.detail;
        if (r.sent_bytes > 0) {
          row.sent_mib.push_back(static_cast<double>(r.sent_bytes) / (1 << 20));
          progress << " (the observer sent " << format_ms(row.sent_mib.back()) << " MiB)";
        }
        progress << "\n";
      } else {
        row.errors.push_back(r.error);
        progress << "FAILED: " << r.error << "\n";
      }
      if (!r.oddity.empty()) {
        row.oddities.push_back(r.oddity);
        progress << "  note: " << r.oddity << "\n";
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

void print_detect(const std::vector<DetectRow>& rows, std::ostream& out) {
  out << "Detection latency: injection -> the observer reads LEAVE victim <cause> (ms)\n\n";
  Table table({{"case", false},
               {"server settings", false},
               {"runs", true},
               {"cause seen", false},
               {"noticed by", false},
               {"min", true},
               {"median", true},
               {"max", true}});
  for (const auto& row : rows) {
    // The cause column: the causes seen; MISMATCH when one is not the expected one, and how
    // many runs failed to see a LEAVE at all.
    std::map<std::string, int> causes;
    bool mismatch = false;
    for (const auto& c : row.causes) {
      ++causes[c];
      mismatch = mismatch || c != row.expected;
    }
    std::string cause;
    for (const auto& [name, count] : causes) {
      if (!cause.empty()) cause += ", ";
      cause += name;
      if (causes.size() > 1) cause += " x" + std::to_string(count);
    }
    if (mismatch) cause = "MISMATCH: expected " + row.expected + ", saw " + cause;
    if (!row.errors.empty()) {
      cause += (cause.empty() ? "" : ", ") + std::to_string(row.errors.size()) + " FAILED";
    }
    std::map<std::string, int> noticers;
    for (const auto& d : row.details) ++noticers[noticed_by(d)];
    std::string by;
    for (const auto& [name, count] : noticers) {
      if (!by.empty()) by += ", ";
      by += noticers.size() > 1 ? name + " x" + std::to_string(count) : name;
    }
    const auto s = summarize(row.ms);
    const bool any = s.count > 0;
    table.add_row({row.name, row.settings, std::to_string(row.ms.size() + row.errors.size()), cause,
                   by.empty() ? "-" : by, any ? format_ms(s.min) : "-", any ? format_ms(s.median) : "-",
                   any ? format_ms(s.max) : "-"});
  }
  table.print(out);
  out << "\nThe clock starts at:\n";
  std::string last;
  for (const auto& row : rows) {
    if (row.name == last) continue;
    last = row.name;
    out << "  " << row.name << ": " << row.start << "\n";
  }
  out << "A detail as seen, per case:\n";
  last.clear();
  for (const auto& row : rows) {
    if (row.details.empty()) continue;
    const std::string key = row.name + row.settings;
    if (key == last) continue;
    last = key;
    out << "  " << row.name << ", " << row.settings << ": LEAVE victim " << row.causes.front() << " "
        << row.details.front() << "\n";
    if (!row.sent_mib.empty()) {
      const auto mib = summarize(row.sent_mib);
      out << "    (the observer had sent " << format_ms(mib.min) << " to " << format_ms(mib.max) << " MiB of "
          << row.line_bytes << " B lines by then";
      if (row.max_lines > 0) out << ", of at most " << row.max_lines << " lines";
      out << ")\n";
    }
  }
  for (const auto& row : rows) {
    for (const auto& e : row.errors) out << "  FAILED " << row.name << ", " << row.settings << ": " << e << "\n";
    for (const auto& o : row.oddities) out << "  note " << row.name << ", " << row.settings << ": " << o << "\n";
  }
}

void json_detect(const std::vector<DetectRow>& rows, Json& json) {
  json.begin_array("detect");
  for (const auto& row : rows) {
    json.begin_object();
    json.field("case", row.name);
    json.field("settings", row.settings);
    json.field("expected", row.expected);
    json.field("clock_starts_at", row.start);
    json.field("ok", row.ok());
    json.field("ms", row.ms);
    json.field("causes", row.causes);
    json.field("details", row.details);
    json.field("errors", row.errors);
    if (row.line_bytes > 0) {
      json.field("line_bytes", row.line_bytes);
      if (row.max_lines > 0) json.field("max_lines", row.max_lines);
      json.field("sent_mib", row.sent_mib);
    }
    json.summary("summary", summarize(row.ms));
    json.end_object();
  }
  json.end_array();
}

}  // namespace chat::bench
