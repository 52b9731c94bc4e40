#include "lab/scenarios.hpp"

#include "bench/child_process.hpp"
#include "bench/report.hpp"
#include "lab/network.hpp"
#include "lab/observer.hpp"
#include "lab/ss_watch.hpp"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <functional>
#include <memory>
#include <ostream>
#include <stdexcept>

namespace chat::lab {
namespace {

using namespace std::chrono_literals;
using bench::ChildProcess;
using SteadyClock = std::chrono::steady_clock;

// The lab's timings: every detector fires within seconds instead of the defaults' 16-25 s.
const std::vector<std::string> lab_timings = {"--keepalive", "2s,1s,2", "--ping-interval", "1s", "--ping-timeout", "1s"};

std::vector<std::string> with(std::vector<std::string> base, const std::vector<std::string>& more) {
  base.insert(base.end(), more.begin(), more.end());
  return base;
}

// What a fault needs to reach: the victim process, the observer, the network.
struct Context {
  ChildProcess& victim;
  Observer& observer;
  Timeline& timeline;
  LabNetwork* net;             // null on loopback
  LabNetwork::Host* client;    // the victim's host, with a network
  std::string fault;
  WallClock::time_point fault_at{};

  // Time 0: called right before the fault is injected.
  void mark(std::string what) {
    fault = std::move(what);
    fault_at = WallClock::now();
    timeline.mark_fault(fault_at);
    timeline.add("chatlab", "FAULT: " + fault, fault_at);
  }

  // The victim's next stdout line ("<us> text") on the timeline at its own time; the line
  // must start with `prefix` (after the stamp), else it keeps reading until `deadline`.
  std::optional<std::string> victim_says(const std::string& prefix, SteadyClock::time_point deadline) {
    while (auto line = victim.out().read_line(deadline)) {
      auto [at, text] = stamped(*line);
      timeline.add("victim", text, at);
      if (text.rfind(prefix, 0) == 0) return text;
    }
    return std::nullopt;
  }

  // Whatever the victim has said meanwhile.
  void drain_victim() {
    while (auto line = victim.out().read_line(SteadyClock::now())) {
      auto [at, text] = stamped(*line);
      timeline.add("victim", text, at);
    }
  }

  static std::pair<WallClock::time_point, std::string> stamped(const std::string& line) {
    const auto space = line.find(' ');
    try {
      const long long us = std::stoll(line.substr(0, space));
      return {WallClock::time_point(std::chrono::microseconds(us)), line.substr(space + 1)};
    } catch (const std::exception&) {
      return {WallClock::now(), line};
    }
  }

  void tell_victim(const std::string& command) {
    if (!victim.write_stdin(command + "\n", SteadyClock::now() + 5s)) {
      throw std::runtime_error("cannot give the victim its command '" + command + "'");
    }
  }
};

struct PhaseSpec {
  std::string title;
  bool netns = false;
  std::vector<std::string> server_args;
  std::string expected_cause;  // "": nothing is expected to notice within --watch
  std::vector<std::string> detectors;
  std::function<void(Context&)> prepare;  // before time 0
  std::function<void(Context&)> fault;    // calls ctx.mark() right before the fault
  bool web_victim = false;                // the victim is a browser's page (`chatlab victim --web`)
  std::string expected_detail = {};       // the LEAVE's detail must contain this ("" for any)
  std::function<void(Context&)> after = {};  // after the LEAVE (or the wait): the victim's last words
};

struct Scenario {
  std::string name;
  std::string summary;
  std::vector<PhaseSpec> phases;
};

PhaseSpec cable_pull_phase(std::string title, std::vector<std::string> args, std::string expected) {
  PhaseSpec p;
  p.title = std::move(title);
  p.netns = true;
  p.server_args = std::move(args);
  p.expected_cause = std::move(expected);
  p.detectors = {"reader", "poller"};
  p.fault = [](Context& c) {
    c.mark("the victim's cable is pulled (ip link set " + c.client->host_if + " down in its namespace): "
           "its packets vanish, nobody sends a FIN or an RST");
    c.net->link_down(*c.client);
  };
  return p;
}

std::vector<Scenario> make_scenarios() {
  std::vector<Scenario> all;
  auto add = [&](std::string name, std::string summary, PhaseSpec phase) {
    all.push_back(Scenario{std::move(name), std::move(summary), {std::move(phase)}});
  };
  {
    PhaseSpec p{"", false, lab_timings, "quit", {"reader"}, {}, [](Context& c) {
                  c.mark("the victim sends QUIT lab");
                  c.tell_victim("quit");
                }};
    add("quit", "A polite goodbye: the reader reads QUIT and the server ends the session itself.", p);
  }
  {
    PhaseSpec p{"", false, lab_timings, "closed", {"reader"}, {}, [](Context& c) {
                  c.mark("the victim closes its socket without a word: its kernel sends a FIN");
                  c.tell_victim("close");
                }};
    add("close", "A FIN with nothing unread: the reader's blocking recv() returns 0 at once.", p);
  }
  {
    PhaseSpec p{"", false, lab_timings, "closed", {"reader"}, {}, [](Context& c) {
                  c.mark("kill -KILL " + std::to_string(c.victim.pid()) +
                         " (the victim's process); its kernel closes the socket with a FIN");
                  c.victim.signal(SIGKILL);
                }};
    add("kill", "A crashed process, a live host: the kernel closes the socket for it, and a FIN is a FIN.", p);
  }
  {
    PhaseSpec p{"", false, lab_timings, "reset", {"reader", "poller", "writer"},
                [](Context& c) {
                  c.tell_victim("stop-reading");
                  c.victim_says("stopped reading", SteadyClock::now() + 5s);
                  c.observer.say("are you still there?");
                  if (!c.victim_says("unread", SteadyClock::now() + 5s)) {
                    throw std::runtime_error("the observer's line never reached the victim's receive queue");
                  }
                },
                [](Context& c) {
                  c.mark("kill -KILL " + std::to_string(c.victim.pid()) +
                         " with bytes unread in its socket: its kernel answers with an RST, not a FIN");
                  c.victim.signal(SIGKILL);
                }};
    add("crash-unread", "A process that dies with unread data: the kernel resets the connection (RFC 2525), "
                        "and the reader's recv() fails with ECONNRESET.", p);
  }
  add("cable-pull",
      "A pulled cable (or a crashed host): no FIN, no RST, nothing to read. Only TCP keepalive notices: "
      "its probes go unanswered, and the kernel gives up after IDLE + INTERVAL x COUNT.",
      cable_pull_phase("", {"--keepalive", "2s,1s,2", "--ping-interval", "off"}, "timeout"));
  {
    PhaseSpec p{"", true, lab_timings, "reset", {"reader", "writer", "poller"}, {}, [](Context& c) {
                  c.mark("the victim's host loses power and boots again: its link goes down, its process dies, "
                         "its network namespace is deleted and made anew with the same address");
                  c.net->link_down(*c.client);
                  c.victim.kill();
                  c.net->crash(*c.client);
                  c.net->reboot(*c.client);
                  c.timeline.add("chatlab", "the host is back, with no socket for the old connection; the observer "
                                            "speaks, so the server writes to the victim");
                  c.observer.say("anyone there?");
                }};
    add("host-reboot", "A host that rebooted: the next segment the server sends is answered with an RST, "
                       "because the new kernel knows nothing of the connection.", p);
  }
  {
    PhaseSpec p{"", false, lab_timings, "no-pong", {"poller"}, {}, [](Context& c) {
                  c.mark("kill -STOP " + std::to_string(c.victim.pid()) +
                         " (the victim's process hangs; its kernel still ACKs)");
                  c.victim.signal(SIGSTOP);
                }};
    add("hang", "A hung process on a live host: its kernel ACKs everything, keepalive is happy. Only the "
                "heartbeat tells: a PING, then no line for --ping-timeout.", p);
  }
  {
    PhaseSpec p{"", false,
                with(lab_timings, {"--max-rate", "0", "--send-queue", "256KiB", "--send-timeout", "2s"}),
                "too-slow", {"writer", "poller", "reader"},
                [](Context& c) {
                  c.tell_victim("stop-reading");
                  c.victim_says("stopped reading", SteadyClock::now() + 5s);
                },
                [](Context& c) {
                  c.mark("the victim stopped reading; the observer talks: a 1,000-byte line every millisecond, "
                         "until the victim leaves (at most 20,000)");
                  // Paced, as a busy room is, so the timeline shows the bytes behind growing: the
                  // victim's receive buffer, then the server's socket (its unsent part capped at a
                  // quarter of --send-queue), then the queue in the server, up to --send-queue.
                  const std::string text(1000, 'x');
                  for (int i = 0; i < 20'000 && !c.observer.leave_of("victim"); ++i) {
                    if (!c.observer.say(text)) break;
                    std::this_thread::sleep_for(1ms);
                  }
                }};
    add("not-reading", "A client that does not read: its receive buffer fills, then the server's send buffer, "
                       "then its queue in the server; over --send-queue (or stuck for --send-timeout) it is dropped, "
                       "so that it never holds up the others.", p);
  }
  {
    PhaseSpec p{"", false, with(lab_timings, {"--max-rate", "10", "--max-burst", "20", "--flood-grace", "2s"}),
                "flood", {"reader"}, {}, [](Context& c) {
                  c.mark("the victim sends SAY lines as fast as the connection takes them");
                  c.tell_victim("flood");
                }};
    add("flood", "A client that sends too fast: flood control slows its reader (its lines wait in its own "
                 "socket), and after --flood-grace without a break it is dropped.", p);
  }
  {
    Scenario s{"poll-only",
               "The poll alone never notices a pulled cable: the socket is never readable, and there is nothing to "
               "read. With keepalive off and no heartbeat the victim stays a member for ever; with keepalive on, the "
               "same failure is caught.",
               {}};
    s.phases.push_back(cable_pull_phase("keepalive off, no heartbeat: only the poll",
                                        {"--keepalive", "off", "--ping-interval", "off"}, ""));
    s.phases.push_back(cable_pull_phase("the same failure with keepalive on",
                                        {"--keepalive", "2s,1s,2", "--ping-interval", "off"}, "timeout"));
    all.push_back(std::move(s));
  }
  // A browser instead of nc: the victim is the page's WebSocket at /ws, one line per text frame.
  {
    PhaseSpec p{"", false, lab_timings, "closed", {"reader"}, {}, [](Context& c) {
                  c.mark("the victim's browser tab is closed: its page sends a WebSocket close frame 1001 "
                         "(going away), then its kernel a FIN");
                  c.tell_victim("close");
                }};
    p.web_victim = true;
    p.expected_detail = "WebSocket close 1001";
    // The victim's side of the closing handshake: the server's close frame, then its FIN.
    p.after = [](Context& c) { c.victim_says("gone: ", SteadyClock::now() + 2s); };
    add("web-tab-closed", "A browser tab closed: its WebSocket sends a close frame 1001 (going away), then a FIN. "
                          "The same reader reads the frame in its recv() and ends the session closed, naming the code.",
        p);
  }
  {
    PhaseSpec p{"", false, lab_timings, "no-pong", {"poller"}, {}, [](Context& c) {
                  c.mark("kill -STOP " + std::to_string(c.victim.pid()) +
                         " (the browser's page hangs over its WebSocket; its kernel still ACKs)");
                  c.victim.signal(SIGSTOP);
                }};
    p.web_victim = true;
    add("web-hang", "A hung browser page: its kernel ACKs, keepalive is happy; the PING goes in a text frame and "
                    "no PONG comes back, so the same poller's heartbeat ends it no-pong, as for hang.",
        p);
  }
  return all;
}

const std::vector<Scenario>& scenarios() {
  static const std::vector<Scenario> all = make_scenarios();
  return all;
}

const Scenario& find_scenario(const std::string& name) {
  for (const auto& s : scenarios()) {
    if (s.name == name) return s;
  }
  throw std::invalid_argument("no scenario '" + name + "'");
}

// The thread that ended the session, from the server's "ends victim: ..." trace line.
void find_detector(PhaseResult& r) {
  for (std::size_t i = 0; i < r.events.size(); ++i) {
    const auto& e = r.events[i];
    if (e.text.rfind("ends victim: ", 0) != 0 || e.text.find("but it had already ended") != std::string::npos) continue;
    r.detector = e.source.substr(0, e.source.find(' '));  // "reader victim" -> "reader", "writer 1" -> "writer"
    r.decision = e.text;
    r.detected_ms = ms_between(r.fault_at, e.at);
    for (std::size_t j = i; j-- > 0;) {
      if (r.events[j].source == e.source) {
        r.evidence = r.events[j].text;
        break;
      }
    }
    return;
  }
}

void judge(PhaseResult& r) {
  const auto ms = [](double v) { return bench::format_ms(v) + " ms"; };
  const bool detail_ok = r.expected_detail.empty() ||
                         (r.leave_line && r.leave_line->find(r.expected_detail) != std::string::npos);
  if (r.expected_cause.empty()) {
    r.ok = !r.leave_line;
    r.verdict = r.ok ? "nothing noticed: no detector fired, and the victim is still a member for the others"
                     : "expected nothing to notice, but the others read " + *r.leave_line;
    return;
  }
  if (!r.leave_line) {
    r.ok = false;
    r.verdict = "no LEAVE within the wait: expected " + r.expected_cause;
    return;
  }
  const bool detector_ok = std::find(r.expected_detectors.begin(), r.expected_detectors.end(), r.detector) !=
                           r.expected_detectors.end();
  r.ok = r.cause == r.expected_cause && detector_ok && detail_ok;
  r.verdict = "cause " + r.cause + ", decided by the " + (r.detector.empty() ? "?" : r.detector) + " thread after " +
              ms(r.detected_ms) + "; the others read the LEAVE after " + ms(r.leave_ms) +
              (r.ok ? " (as expected)"
                    : " (expected " + r.expected_cause +
                          (detail_ok ? std::string() : ", with \"" + r.expected_detail + "\" in the detail") + ")");
}

PhaseResult run_phase(const PhaseSpec& spec, const LabOptions& options, std::size_t index,
                      const ScenarioProgress& progress) {
  PhaseResult r;
  r.title = spec.title;
  r.expected_cause = spec.expected_cause;
  r.expected_detectors = spec.detectors;
  r.expected_detail = spec.expected_detail;
  Timeline timeline;

  std::unique_ptr<LabNetwork> net;
  LabNetwork::Host* server_host = nullptr;
  LabNetwork::Host* client_host = nullptr;
  if (spec.netns) {
    try {
      net = std::make_unique<LabNetwork>();
    } catch (const NetworkUnavailable& e) {
      throw LabUnavailable(e.what());
    }
    server_host = &net->add_host("server");
    client_host = &net->add_host("client");
  }

  bench::ServerProcess::Launch launch;
  launch.lift_limits = false;  // each scenario says which limits it runs with
  launch.on_line = [&timeline](const std::string& line) { timeline.add_server_line(line); };
  if (net) {
    launch.prefix = {ip_path(), "netns", "exec", server_host->ns_name};
    launch.bind = server_host->address;
  }
  r.server_args = with(with({"--trace"}, spec.server_args), options.extra);
  if (net) r.server_netns = server_host->ns_name;
  if (progress.started) progress.started(index, r);
  bench::ServerProcess server(options.server_path, r.server_args, launch);
  const std::string netns = net ? server_host->ns_name : std::string();
  Observer observer(launch.bind, server.port(), netns, timeline);

  std::vector<std::string> victim_argv{options.self_path, "victim", launch.bind, std::to_string(server.port())};
  if (spec.web_victim) victim_argv.insert(victim_argv.begin() + 2, "--web");
  if (net) victim_argv = net->in_host(*client_host, victim_argv);
  ChildProcess victim(victim_argv, ChildProcess::Output::pipe, ChildProcess::Output::inherit);
  Context ctx{victim, observer, timeline, net.get(), client_host, {}, {}};
  const auto joined = ctx.victim_says("joined from port ", SteadyClock::now() + 10s);
  if (!joined || !observer.wait_join("victim", SteadyClock::now() + 10s)) {
    throw std::runtime_error("the victim did not join");
  }
  const auto victim_port = static_cast<std::uint16_t>(std::stoi(joined->substr(17)));
  SsWatch ss(netns, server.port(), victim_port, timeline);
  ss.wait_first_sample();

  if (spec.prepare) spec.prepare(ctx);
  spec.fault(ctx);
  r.fault = ctx.fault;
  r.fault_at = ctx.fault_at;
  const auto wait = spec.expected_cause.empty() ? options.watch : options.wait;
  const auto leave = observer.wait_leave("victim", SteadyClock::now() + wait);
  // The reader logs "disconnected" on its way out, after the LEAVE went to the others: once
  // that line is in, the story is complete.
  if (leave) {
    timeline.wait_for([](const std::string& source, const std::string& text) {
      return source.rfind("reader", 0) == 0 && text.rfind("disconnected: ", 0) == 0;
    }, SteadyClock::now() + 5s);
  }
  if (spec.after) spec.after(ctx);
  ctx.drain_victim();
  if (leave) {
    r.cause = leave->cause;
    r.leave_ms = ms_between(r.fault_at, leave->at);
    r.leave_line = "LEAVE victim " + leave->cause + (leave->detail.empty() ? "" : " " + leave->detail);
  } else {
    timeline.add("chatlab", "no LEAVE for the victim after " + bench::format_ms(static_cast<double>(wait.count())) +
                                " ms of watching");
  }
  r.events = timeline.events();
  if (const auto dropped = timeline.dropped()) {
    r.events.push_back(LabEvent{WallClock::now(), "chatlab", std::to_string(dropped) + " more events not kept"});
  }
  find_detector(r);
  judge(r);
  victim.kill();
  server.stop();
  return r;
}

}  // namespace

bool ScenarioResult::ok() const {
  return !phases.empty() && std::all_of(phases.begin(), phases.end(), [](const PhaseResult& p) { return p.ok; });
}

const std::vector<std::string>& scenario_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& s : scenarios()) n.push_back(s.name);
    return n;
  }();
  return names;
}

bool needs_netns(const std::string& name) {
  const auto& s = find_scenario(name);
  return std::any_of(s.phases.begin(), s.phases.end(), [](const PhaseSpec& p) { return p.netns; });
}

std::string scenario_summary(const std::string& name) { return find_scenario(name).summary; }

ScenarioResult run_scenario(const std::string& name, const LabOptions& options, const ScenarioProgress& progress) {
  const auto& s = find_scenario(name);
  ScenarioResult result{s.name, s.summary, {}};
  for (std::size_t k = 0; k < s.phases.size(); ++k) {
    result.phases.push_back(run_phase(s.phases[k], options, k, progress));
    if (progress.done) progress.done(k, result.phases.back());
  }
  return result;
}

std::size_t phase_count(const std::string& name) { return find_scenario(name).phases.size(); }

void print_scenario_head(const std::string& name, std::ostream& out) {
  out << "chatlab " << name << ": " << scenario_summary(name) << "\n";
}

void print_phase_head(const PhaseResult& phase, std::size_t index, std::size_t phases, std::ostream& out) {
  out << "\n";
  if (phases > 1) out << "phase " << index + 1 << ": " << phase.title << "\n";
  out << "chatserver";
  for (const auto& a : phase.server_args) out << " " << a;
  if (!phase.server_netns.empty()) out << " (in network namespace " << phase.server_netns << ")";
  out << "\n";
}

void print_phase_table(const PhaseResult& p, std::ostream& out) {
  out << "\n";
  // From the victim's arrival: the server's start and the observer's join are the same every time.
  std::size_t first = 0;
  for (std::size_t i = 0; i < p.events.size(); ++i) {
    if (p.events[i].source == "listener" && p.events[i].text.rfind("accept", 0) == 0) {
      first = i;
      break;
    }
  }
  char row[64];
  std::snprintf(row, sizeof row, "%10s  %-14s  %s\n", "ms", "who", "what");
  out << row;
  for (std::size_t i = first; i < p.events.size(); ++i) {
    const auto& e = p.events[i];
    std::snprintf(row, sizeof row, "%10.1f  %-14s  ", ms_between(p.fault_at, e.at), e.source.c_str());
    out << row << e.text << "\n";
  }
  out << "\n";
  if (!p.detector.empty()) {
    out << "detector: the " << p.detector << " thread, " << bench::format_ms(p.detected_ms) << " ms after the fault\n";
    if (!p.evidence.empty()) out << "  it saw:    " << p.evidence << "\n";
    out << "  it decided: " << p.decision << "\n";
  }
  if (p.leave_line) out << "the others read, " << bench::format_ms(p.leave_ms) << " ms after the fault: " << *p.leave_line << "\n";
  out << (p.ok ? "ok: " : "UNEXPECTED: ") << p.verdict << "\n";
}

void print_result(const ScenarioResult& result, std::ostream& out) {
  print_scenario_head(result.name, out);
  for (std::size_t k = 0; k < result.phases.size(); ++k) {
    print_phase_head(result.phases[k], k, result.phases.size(), out);
    print_phase_table(result.phases[k], out);
  }
}

std::string json_result(const ScenarioResult& result) {
  bench::Json j;
  j.begin_object();
  j.field("scenario", result.name).field("summary", result.summary).field("ok", result.ok());
  j.begin_array("phases");
  for (const auto& p : result.phases) {
    j.begin_object();
    j.field("title", p.title).field("fault", p.fault).field("server_args", p.server_args);
    if (!p.server_netns.empty()) j.field("server_netns", p.server_netns);
    j.field("expected_cause", p.expected_cause).field("expected_detectors", p.expected_detectors);
    if (!p.expected_detail.empty()) j.field("expected_detail", p.expected_detail);
    j.field("cause", p.cause).field("leave", p.leave_line.value_or("")).field("leave_ms", p.leave_ms);
    j.field("detector", p.detector).field("detected_ms", p.detected_ms);
    j.field("evidence", p.evidence).field("decision", p.decision);
    j.field("ok", p.ok).field("verdict", p.verdict);
    j.begin_array("events");
    for (const auto& e : p.events) {
      j.begin_object().field("ms", ms_between(p.fault_at, e.at)).field("who", e.source).field("what", e.text).end_object();
    }
    j.end_array();
    j.end_object();
  }
  j.end_array();
  j.end_object();
  return j.text();
}

}  // namespace chat::lab
