#include "lab/scenarios.hpp"

#include "bench/child_process.hpp"
#include "bench/redis_server.hpp"
#include "bench/report.hpp"
#include "lab/network.hpp"
#include "lab/observer.hpp"
#include "lab/ss_watch.hpp"
#include "lab/tls_client.hpp"

#include <algorithm>
#include <charconv>
#include <thread>
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

// What a resume after a drop saw (wifi-drop), step by step; judged by check_resume.
struct ResumeRecord {
  using Seen = std::optional<std::pair<WallClock::time_point, std::string>>;
  bool tried = false;
  std::string failure;             // why it stopped short ("" when every step came)
  Seen link_up;                    // chatlab's "LINK UP" line
  Seen reconnect;                  // the victim's "reconnected from port ..."
  std::uint64_t last_id = 0;       // the <last id> of its RESUME
  Seen resumed;                    // "read: RESUMED victim <ms> <n>"
  Seen history;                    // "read: HISTORY missed <n> [partial]"
  Seen history_end;                // "read: HISTORY END missed"
  std::vector<TaggedLine> replay;  // the victim's tagged lines between the two
  std::optional<TaggedLine> back;  // the observer's "BACK victim <ms>"
  Seen live;                       // the victim's first tagged line after the replay
  std::optional<TaggedLine> live_expected;  // the observer's first tagged line after the BACK
  std::vector<TaggedLine> observed;         // every tagged line the observer read, at the end
};

// What a fault needs to reach: the victim process, the observer, the network.
struct Context {
  ChildProcess& victim;
  Observer& observer;
  Timeline& timeline;
  LabNetwork* net;             // null on loopback
  LabNetwork::Host* client;    // the victim's host, with a network
  std::string fault;
  WallClock::time_point fault_at{};
  std::chrono::milliseconds wait{60'000};  // LabOptions::wait: the longest wait for the LEAVE
  ResumeRecord resume{};
  bench::ServerProcess* victim_server = nullptr;  // shared: the victim's chatserver (B)
  bool tls = false;  // the victim and the observer speak TLS

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

  // The victim's next stdout line (on the timeline too), waiting until `deadline`.
  std::optional<std::pair<WallClock::time_point, std::string>> victim_next(SteadyClock::time_point deadline) {
    auto line = victim.out().read_line(deadline);
    if (!line) return std::nullopt;
    auto seen = stamped(*line);
    timeline.add("victim", seen.second, seen.first);
    return seen;
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
  // The victim and the observer join with ids; `after` resumes the victim's seat, and the
  // phase is judged on the replay too (check_resume).
  bool resumes = false;
  // One room on two chatservers through a redis-server started for the phase (--redis): the
  // observer on the first, the victim on the second ("B"; its lines on the timeline say so).
  bool shared = false;
  bool tls = false;                     // over TLS even without LabOptions::tls (the tls-* scenarios)
  std::string tls_detail = {};          // over TLS, the LEAVE's detail must contain this instead
  std::string unexpected_detail = {};   // the LEAVE's detail must not contain this
  bool show_victim = false;             // the observer puts the victim's MSG lines on the timeline
  // A check of its own after the verdict: false fails the phase; `said` goes into the verdict.
  std::function<bool(const PhaseResult&, std::string& said)> also = {};
};

struct Scenario {
  std::string name;
  std::string summary;
  std::vector<PhaseSpec> phases;
  std::string tls_note = {};  // over TLS: what differs from clear text ("" when nothing does)
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

// wifi-drop: the link stays down at least this long (and until the others read the LEAVE),
// and the observer says a line this often meanwhile, starting half a period after the drop.
constexpr auto wifi_down = 4s;
constexpr auto away_line_every = 500ms;

// Before the drop: the observer says a line, and the victim reads it, so that the id the
// victim will resume from is a live event's.
void read_before_drop(Context& c) {
  c.observer.say("before the drop");
  const auto deadline = SteadyClock::now() + 5s;
  while (true) {
    const auto line = c.victim_next(deadline);
    if (!line) throw std::runtime_error("the victim never read the observer's line before the drop");
    if (line->second.rfind("read: @", 0) == 0 && line->second.ends_with(" MSG observer before the drop")) return;
  }
}

// The drop: the victim's link goes down; the observer talks until the link has been down for
// wifi_down and the others have read the victim's LEAVE (or until the lab's wait is over).
void drop_wifi(Context& c) {
  c.mark("the victim's wifi drops (ip link set " + c.client->host_if + " down in its namespace): its packets "
         "vanish, nobody sends a FIN or an RST; the observer goes on talking");
  c.net->link_down(*c.client);
  const auto down = SteadyClock::now();
  c.timeline.add("chatlab", "the link stays down " + std::to_string(wifi_down.count()) +
                                " s, longer if the server has not noticed by then (with the lab's timings the "
                                "heartbeat notices: a PING after 1 s of quiet, the verdict 1 s later; keepalive "
                                "2s,1s,2, 4 s, is behind it); the observer says a line every " +
                                std::to_string(away_line_every.count()) + " ms");
  for (int k = 1;; ++k) {
    const auto next = down + away_line_every / 2 + (k - 1) * away_line_every;
    if (next > down + c.wait) break;
    if (next >= down + wifi_down && c.observer.leave_of("victim")) break;
    std::this_thread::sleep_until(next);
    if (!c.observer.say("line " + std::to_string(k) + " while the victim is away")) break;
  }
  std::this_thread::sleep_until(down + wifi_down);
}

// After the LEAVE: the link comes back, the victim reconnects and sends RESUME <token> <last
// id>; what it reads (RESUMED, the replay, the first live line) and what the observer reads
// (the BACK) are kept in c.resume for check_resume.
void resume_after_drop(Context& c) {
  auto& rr = c.resume;
  rr.tried = true;
  if (!c.observer.leave_of("victim")) {
    rr.failure = "the others never read the victim's LEAVE, so its seat was never held for it: no resume was tried";
    return;
  }
  const auto up_at = WallClock::now();
  const std::string up = "LINK UP: ip link set " + c.client->host_if + " up in the victim's namespace: the wifi is back";
  c.timeline.add("chatlab", up, up_at);
  rr.link_up = std::pair{up_at, up};
  c.net->link_up(*c.client);
  c.timeline.add("chatlab", "the bridge forwards to the victim again; the victim is told to reconnect");
  c.tell_victim("reconnect");

  const auto deadline = SteadyClock::now() + 10s;
  bool in_block = false;
  std::string previous;
  while (!rr.history_end) {
    const auto line = c.victim_next(deadline);
    if (!line) {
      rr.failure = std::string("the victim's resume stopped short: no ") +
                   (!rr.reconnect ? "new connection" : !rr.resumed ? "RESUMED" : !rr.history ? "HISTORY missed"
                                                                                             : "HISTORY END missed") +
                   " within 10 s";
      return;
    }
    const auto& text = line->second;
    if (text.rfind("reconnected from port ", 0) == 0) {
      rr.reconnect = line;
      rr.last_id = std::stoull(text.substr(text.rfind(' ') + 1));
    } else if (text.rfind("gone: cannot ", 0) == 0 || (rr.reconnect && text.rfind("gone: ", 0) == 0)) {
      rr.failure = "the victim's new connection failed: " + text;
      return;
    } else if (!rr.reconnect) {
      // The old connection's last words (an RST or a FIN once the link is back): not the resume's.
    } else if (text == "its RESUME was refused") {
      rr.failure = "the server refused the RESUME: " + previous;
      return;
    } else if (text.rfind("read: RESUMED ", 0) == 0) {
      rr.resumed = line;
    } else if (text.rfind("read: HISTORY missed ", 0) == 0) {
      rr.history = line;
      in_block = true;
    } else if (text == "read: HISTORY END missed") {
      rr.history_end = line;
    } else if (in_block && text.rfind("read: @", 0) == 0) {
      if (auto t = parse_tagged(text.substr(6), line->first)) rr.replay.push_back(std::move(*t));
    }
    previous = text;
  }

  rr.back = c.observer.wait_tagged("BACK victim ", SteadyClock::now() + 10s);
  if (!rr.back) {
    rr.failure = "the observer never read BACK victim";
    return;
  }
  c.observer.say("welcome back");
  const auto live_deadline = SteadyClock::now() + 10s;
  while (!rr.live) {
    const auto line = c.victim_next(live_deadline);
    if (!line || line->second.rfind("gone: ", 0) == 0) {
      rr.failure = "the victim read no live line after the replay" + (line ? ": " + line->second : std::string());
      return;
    }
    if (line->second.rfind("read: @", 0) == 0) rr.live = line;
  }
  c.observer.wait_tagged("MSG observer welcome back", SteadyClock::now() + 5s);
  rr.observed = c.observer.tagged();
  for (const auto& t : rr.observed) {
    if (t.id > rr.back->id) {
      rr.live_expected = t;
      break;
    }
  }
}

// The number after the last space of `text` ("read: RESUMED victim 1929 9" -> 9); nullopt if none.
std::optional<std::size_t> last_number(const std::string& text, std::size_t skip_words_from_end = 0) {
  std::size_t end = text.size();
  for (std::size_t k = 0; k < skip_words_from_end; ++k) {
    const auto space = text.rfind(' ', end - 1);
    if (space == std::string::npos || space == 0) return std::nullopt;
    end = space;
  }
  const auto space = text.rfind(' ', end - 1);
  if (space == std::string::npos) return std::nullopt;
  std::size_t value = 0;
  const auto [ptr, ec] = std::from_chars(text.data() + space + 1, text.data() + end, value);
  if (ec != std::errc() || ptr != text.data() + end) return std::nullopt;
  return value;
}

// The resume's steps in ms from the link going down, and the check of its replay: the lines
// between HISTORY missed and HISTORY END missed must be exactly the tagged lines the observer
// read after the victim's <last id> and before the BACK (same ids, same lines, each once, in
// order), their count the one RESUMED and HISTORY missed announced, and the victim's first
// live line the observer's first after the BACK.
void check_resume(PhaseResult& r, const ResumeRecord& rr) {
  r.resumes = true;
  const auto step = [&](std::string name, const ResumeRecord::Seen& seen, std::string what = {}) {
    r.steps.push_back(ResumeStep{std::move(name), seen.has_value(), seen ? ms_between(r.fault_at, seen->first) : 0,
                                 what.empty() && seen ? seen->second : std::move(what)});
  };
  r.steps.push_back(ResumeStep{"link down", true, 0, r.fault});
  r.steps.push_back(ResumeStep{"detector decided", !r.decision.empty(), r.detected_ms,
                               r.decision.empty() ? std::string() : "the " + r.detector + " thread: " + r.decision});
  r.steps.push_back(ResumeStep{"LEAVE seen", r.leave_line.has_value(), r.leave_ms,
                               r.leave_line ? "observer read " + *r.leave_line : std::string()});
  step("link up", rr.link_up);
  step("reconnect", rr.reconnect);
  step("RESUMED", rr.resumed);
  std::string replay_what;
  if (rr.history && rr.history_end) {
    replay_what = std::to_string(rr.replay.size()) + " lines between " + rr.history->second.substr(6) +
                  " and HISTORY END missed";
    if (!rr.replay.empty()) {
      replay_what += ", ids " + std::to_string(rr.replay.front().id) + " to " + std::to_string(rr.replay.back().id);
    }
  }
  step("replay", rr.history_end, replay_what);
  step("BACK seen", rr.back ? ResumeRecord::Seen(std::pair{rr.back->at, "observer read " + rr.back->line})
                            : ResumeRecord::Seen());
  step("first live line", rr.live);

  r.replay_count = rr.replay.size();
  if (rr.failure.empty() && (!rr.resumed || !rr.history || !rr.history_end || !rr.back || !rr.live)) {
    r.replay_ok = false;
    r.replay_verdict = "the resume stopped short: a step is missing";
    return;
  }
  if (!rr.failure.empty()) {
    r.replay_ok = false;
    r.replay_verdict = rr.failure;
    return;
  }
  std::vector<std::string> problems;
  // What the victim should have been replayed: what the observer read meanwhile.
  std::vector<TaggedLine> expected;
  for (const auto& t : rr.observed) {
    if (t.id > rr.last_id && t.id < rr.back->id) expected.push_back(t);
  }
  const auto announced_missed = last_number(rr.history->second.ends_with(" partial")
                                                ? rr.history->second.substr(0, rr.history->second.size() - 8)
                                                : rr.history->second);
  const auto announced_resumed = last_number(rr.resumed->second);
  if (rr.history->second.ends_with(" partial")) problems.push_back("the server said the replay was partial");
  if (announced_missed != rr.replay.size()) {
    problems.push_back("HISTORY missed announced " +
                       (announced_missed ? std::to_string(*announced_missed) : std::string("?")) + " lines, " +
                       std::to_string(rr.replay.size()) + " came");
  }
  if (announced_resumed != rr.replay.size()) {
    problems.push_back("RESUMED announced " +
                       (announced_resumed ? std::to_string(*announced_resumed) : std::string("?")) + " missed, " +
                       std::to_string(rr.replay.size()) + " came");
  }
  for (std::size_t i = 0; i < rr.replay.size(); ++i) {
    const std::uint64_t before = i == 0 ? rr.last_id : rr.replay[i - 1].id;
    if (rr.replay[i].id <= before) {
      problems.push_back("replay line " + std::to_string(i + 1) + " (id " + std::to_string(rr.replay[i].id) +
                         ") is not after id " + std::to_string(before) + ": a repeat or out of order");
    }
  }
  const auto has = [](const std::vector<TaggedLine>& lines, std::uint64_t id) {
    return std::find_if(lines.begin(), lines.end(), [&](const TaggedLine& t) { return t.id == id; });
  };
  for (const auto& e : expected) {
    const auto it = has(rr.replay, e.id);
    if (it == rr.replay.end()) {
      problems.push_back("missing from the replay: " + e.line);
    } else if (it->line != e.line) {
      problems.push_back("id " + std::to_string(e.id) + " differs: the observer read \"" + e.line +
                         "\", the replay says \"" + it->line + "\"");
    }
  }
  for (const auto& t : rr.replay) {
    if (has(expected, t.id) == expected.end()) {
      problems.push_back("in the replay, but not read by the observer between id " + std::to_string(rr.last_id) +
                         " and the BACK: " + t.line);
    }
  }
  if (expected.empty()) problems.push_back("the observer read nothing between the victim's last id and the BACK");
  const auto live = parse_tagged(rr.live->second.substr(6));
  if (!live || !rr.live_expected || live->id != rr.live_expected->id || live->line != rr.live_expected->line) {
    problems.push_back("the first live line was \"" + rr.live->second.substr(6) + "\", the observer's first after the BACK \"" +
                       (rr.live_expected ? rr.live_expected->line : std::string("(none)")) + "\"");
  }
  if (!problems.empty()) {
    r.replay_ok = false;
    r.replay_verdict = "the replay did NOT match what the observer read: ";
    for (std::size_t i = 0; i < problems.size(); ++i) r.replay_verdict += (i ? "; " : "") + problems[i];
    return;
  }
  std::size_t msgs = 0, leaves = 0;
  for (const auto& t : rr.replay) {
    msgs += t.rest.rfind("MSG ", 0) == 0;
    leaves += t.rest.rfind("LEAVE victim ", 0) == 0;
  }
  r.replay_ok = true;
  r.replay_verdict = "exact: the " + std::to_string(rr.replay.size()) + " events after id " +
                     std::to_string(rr.last_id) + " (" + std::to_string(msgs) + " MSG" +
                     (leaves ? ", the victim's own LEAVE" : "") + ") are the lines the observer read between that id and "
                     "the BACK, each once and in order, no gap, no duplicate; the first live line (id " +
                     std::to_string(live->id) + ") is the observer's next event after the BACK";
}

std::vector<Scenario> make_scenarios() {
  std::vector<Scenario> all;
  auto add = [&](std::string name, std::string summary, PhaseSpec phase, std::string tls_note = {}) {
    all.push_back(Scenario{std::move(name), std::move(summary), {std::move(phase)}, std::move(tls_note)});
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
                  c.mark(c.tls ? "the victim closes its socket without a word, and without TLS's close_notify: its "
                                 "kernel sends a FIN"
                               : "the victim closes its socket without a word: its kernel sends a FIN");
                  c.tell_victim("close");
                }};
    p.tls_detail = "without close_notify";
    add("close", "A FIN with nothing unread: the reader's blocking recv() returns 0 at once.", p,
        "A FIN that comes without TLS's close_notify first is the same FIN to the reader, and still closed, but "
        "the detail says \"without close_notify\": a cut connection (or an attacker cutting it short) looks the "
        "same (tls-close is the polite end).");
  }
  {
    PhaseSpec p{"", false, lab_timings, "closed", {"reader"}, {}, [](Context& c) {
                  c.mark("kill -KILL " + std::to_string(c.victim.pid()) +
                         " (the victim's process); its kernel closes the socket with a FIN" +
                         (c.tls ? ", and no close_notify: a killed process says no goodbye" : ""));
                  c.victim.signal(SIGKILL);
                }};
    p.tls_detail = "without close_notify";
    add("kill", "A crashed process, a live host: the kernel closes the socket for it, and a FIN is a FIN.", p,
        "A killed process sends no close_notify: its kernel's FIN comes alone, and the detail says \"without "
        "close_notify\".");
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
        p,
        "The page is on https:// and its WebSocket on wss://: the close frame comes inside a TLS record, then a "
        "close_notify and the FIN. The reader decides on the frame, the first of the three, as in clear text.");
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
  // A seat resumed after a drop: the victim joins with ids, loses its link for a few seconds,
  // and takes its seat back on a new connection with RESUME.
  {
    PhaseSpec p{"", true, lab_timings, "timeout", {"poller", "reader"}, read_before_drop, drop_wifi};
    p.resumes = true;
    p.after = resume_after_drop;
    add("wifi-drop",
        "A phone's wifi drops for a few seconds: the victim joined with ids (HELLO victim ids) and kept its TOKEN "
        "and last id. The heartbeat (--ping-interval 1s --ping-timeout 1s) finds it gone, timeout: not even the "
        "PING was ACKed; the others read the LEAVE. The link comes back, the victim reconnects and sends RESUME, "
        "and gets RESUMED and the replay of exactly what the others read meanwhile, then live lines.",
        p,
        "The victim's new connection makes a new TLS session (a full handshake) before its RESUME; the seat and "
        "the replay are the chat's, not TLS's, and come back the same.");
  }
  // One room on two chatservers: the victim's chatserver is killed; the survivor's reaper says
  // the victim is gone, once.
  {
    PhaseSpec p{"", false, {"--instance-timeout", "3s"}, "instance-lost", {"backplane"}, {}, [](Context& c) {
                  c.mark("kill -KILL " + std::to_string(c.victim_server->pid()) +
                         " (the victim's chatserver, B); the victim's own process lives on");
                  c.victim_server->process().signal(SIGKILL);
                }};
    p.shared = true;
    p.expected_detail = "stopped answering (no heartbeat for ";
    add("instance-lost",
        "One room on two chatservers sharing Redis (--redis): the observer on one, the victim on the other, "
        "which is killed. Nothing on the survivor ever talked to the victim: what notices is the dead server's "
        "heartbeat key expiring in Redis (two thirds of --instance-timeout), then the survivor's backplane reaper, "
        "which turns each of its members into one LEAVE instance-lost, once for the whole room.",
        p);
  }
  // Over TLS, the two ways a client's stream can end: TLS's own goodbye, or a FIN alone. Each
  // victim first sends a line without its LF: whether the others read it tells the two apart.
  const auto last_words = [](bool delivered) {
    return [delivered](const PhaseResult& r, std::string& said) {
      const bool read = std::any_of(r.events.begin(), r.events.end(), [](const LabEvent& e) {
        return e.source == "observer" && e.text == "MSG victim my last words";
      });
      said = std::string(read ? "the others read the unfinished last line (\"my last words\")"
                              : "the unfinished last line (\"my last words\") was not delivered") +
             (delivered ? ": after a close_notify it is the client's last word"
                        : ": without a close_notify it may have been cut short");
      return read == delivered;
    };
  };
  {
    PhaseSpec p{"", false, lab_timings, "closed", {"reader"}, {}, [](Context& c) {
                  c.mark("the victim ends its TLS stream politely: after an unfinished line (\"SAY my last words\", no "
                         "LF), a close_notify alert, then a FIN");
                  c.tell_victim("close-notify");
                }};
    p.tls = true;
    p.expected_detail = "close_notify (reader";
    p.unexpected_detail = "without close_notify";
    p.show_victim = true;
    p.also = last_words(true);
    // The victim reads on until the server's end of the stream.
    p.after = [](Context& c) { c.victim_says("gone: ", SteadyClock::now() + 2s); };
    add("tls-close",
        "TLS's own goodbye: a close_notify alert, then a FIN. The reader's SSL_read sees the end "
        "of the TLS stream and ends the session closed, detail close_notify; an unfinished line before it is the "
        "client's last word, and the others read it, as after a FIN in clear text.",
        p);
  }
  {
    PhaseSpec p{"", false, lab_timings, "closed", {"reader"}, {}, [](Context& c) {
                  c.mark("the victim's TLS stream is cut: after an unfinished line (\"SAY my last words\", no LF), a "
                         "FIN without a close_notify");
                  c.tell_victim("cut");
                }};
    p.tls = true;
    p.expected_detail = "without close_notify";
    p.show_victim = true;
    p.also = last_words(false);
    add("tls-cut",
        "A TLS stream that ends with a FIN and no close_notify: the reader's recv() returns 0 as "
        "for close, cause closed, and the detail says \"without close_notify\". A cut connection and an attacker "
        "truncating it look the same, so the unfinished last line is dropped, not delivered.",
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

// What a run over TLS is, and what differs for this scenario.
std::string tls_note(const Scenario& s) {
  std::string note =
      "chatlab makes a self-signed certificate for this run (removed at the end) and starts chatserver with it; the "
      "observer and the victim speak TLS to it and verify nothing (it is the lab's own server). The detectors are "
      "the same threads with the same rules: TLS is under the framing, and the kernel's facts (a FIN, an RST, "
      "no ACK) are the same.";
  if (!s.tls_note.empty()) note += " " + s.tls_note;
  return note;
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
  const bool detail_ok =
      (r.expected_detail.empty() || (r.leave_line && r.leave_line->find(r.expected_detail) != std::string::npos)) &&
      (r.unexpected_detail.empty() || !r.leave_line || r.leave_line->find(r.unexpected_detail) == std::string::npos);
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
                          (detail_ok || r.expected_detail.empty() ? std::string()
                                                                  : ", with \"" + r.expected_detail + "\" in the detail") +
                          (detail_ok || r.unexpected_detail.empty()
                               ? std::string()
                               : ", without \"" + r.unexpected_detail + "\" in the detail") +
                          ")");
}

// `cert`: the certificate for a phase over TLS (null when the scenario runs in clear text).
PhaseResult run_phase(const PhaseSpec& spec, const LabOptions& options, std::size_t index,
                      const ScenarioProgress& progress, const LabCertificate* cert) {
  const bool tls = options.tls || spec.tls;
  if (tls && cert == nullptr) throw std::logic_error("a phase over TLS without a certificate");
  PhaseResult r;
  r.title = spec.title;
  r.tls = tls;
  r.expected_cause = spec.expected_cause;
  r.expected_detectors = spec.detectors;
  r.expected_detail = tls && !spec.tls_detail.empty() ? spec.tls_detail : spec.expected_detail;
  r.unexpected_detail = spec.unexpected_detail;
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
  r.server_args = with({"--trace"}, spec.server_args);
  if (tls) {
    r.server_args = with(r.server_args, {"--tls-cert", cert->cert_file(), "--tls-key", cert->key_file()});
    r.tls_certificate = cert->fingerprint();
  }
  r.server_args = with(r.server_args, options.extra);
  std::unique_ptr<bench::RedisServer> redis;
  if (spec.shared) {
    redis = std::make_unique<bench::RedisServer>();
    r.server_args = with(r.server_args, {"--redis", redis->url(), "--room", "lab", "--db", "none"});
  }
  if (net) r.server_netns = server_host->ns_name;
  if (progress.started) progress.started(index, r);
  bench::ServerProcess server(options.server_path, r.server_args, launch);
  std::unique_ptr<bench::ServerProcess> server_b;
  if (spec.shared) {
    bench::ServerProcess::Launch launch_b = launch;
    launch_b.on_line = [&timeline](const std::string& line) { timeline.add_server_line(line, "B "); };
    server_b = std::make_unique<bench::ServerProcess>(options.server_path, r.server_args, launch_b);
  }
  const std::uint16_t victim_port_on_server = server_b ? server_b->port() : server.port();
  const std::string netns = net ? server_host->ns_name : std::string();
  Observer observer(launch.bind, server.port(), netns, timeline, Observer::Options{spec.resumes, tls, spec.show_victim});

  std::vector<std::string> victim_argv{options.self_path, "victim", launch.bind, std::to_string(victim_port_on_server)};
  if (spec.web_victim) victim_argv.insert(victim_argv.begin() + 2, "--web");
  if (spec.resumes) victim_argv.insert(victim_argv.begin() + 2, "--ids");
  if (tls) victim_argv.insert(victim_argv.begin() + 2, "--tls");
  if (net) victim_argv = net->in_host(*client_host, victim_argv);
  ChildProcess victim(victim_argv, ChildProcess::Output::pipe, ChildProcess::Output::inherit);
  Context ctx{victim, observer, timeline, net.get(), client_host, {}, {}};
  ctx.wait = options.wait;
  ctx.victim_server = server_b.get();
  ctx.tls = tls;
  const auto joined = ctx.victim_says("joined from port ", SteadyClock::now() + 10s);
  if (!joined || !observer.wait_join("victim", SteadyClock::now() + 10s)) {
    throw std::runtime_error("the victim did not join");
  }
  const auto victim_port = static_cast<std::uint16_t>(std::stoi(joined->substr(17)));
  SsWatch ss(netns, victim_port_on_server, victim_port, timeline);
  ss.wait_first_sample();

  if (spec.prepare) spec.prepare(ctx);
  spec.fault(ctx);
  r.fault = ctx.fault;
  r.fault_at = ctx.fault_at;
  const auto wait = spec.expected_cause.empty() ? options.watch : options.wait;
  const auto leave = observer.wait_leave("victim", SteadyClock::now() + wait);
  // The reader logs "disconnected" on its way out, after the LEAVE went to the others: once
  // that line is in, the story is complete. Shared: the victim's reader died with its server,
  // and the survivor's backplane logs its decision when Redis answers the reaper, which may be
  // after the LEAVE came back through the stream.
  if (leave && !spec.shared) {
    timeline.wait_for([](const std::string& source, const std::string& text) {
      return source.rfind("reader", 0) == 0 && text.rfind("disconnected: ", 0) == 0;
    }, SteadyClock::now() + 5s);
  } else if (leave) {
    timeline.wait_for([](const std::string& source, const std::string& text) {
      return source == "backplane" && text.rfind("ends victim: ", 0) == 0;
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
  if (spec.also) {
    std::string said;
    const bool also_ok = spec.also(r, said);
    r.ok = r.ok && also_ok;
    r.verdict += "; " + said + (also_ok ? "" : " (NOT as expected)");
  }
  if (spec.resumes) {
    check_resume(r, ctx.resume);
    r.ok = r.ok && r.replay_ok;
    r.verdict += r.replay_ok ? "; resumed, and the replay of " + std::to_string(r.replay_count) + " lines matched exactly"
                             : "; the resume FAILED: " + r.replay_verdict;
  }
  victim.kill();
  server.stop();
  if (server_b) server_b->stop();
  if (redis) redis->stop();
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

bool always_tls(const std::string& name) {
  const auto& s = find_scenario(name);
  return std::any_of(s.phases.begin(), s.phases.end(), [](const PhaseSpec& p) { return p.tls; });
}

std::string scenario_summary(const std::string& name) { return find_scenario(name).summary; }

ScenarioResult run_scenario(const std::string& name, const LabOptions& options, const ScenarioProgress& progress) {
  const auto& s = find_scenario(name);
  ScenarioResult result{s.name, s.summary, options.tls || always_tls(name), {}, {}};
  // Over TLS: one certificate for the run, in a directory of its own that goes with it.
  std::unique_ptr<LabCertificate> cert;
  if (result.tls) {
    cert = std::make_unique<LabCertificate>();
    result.tls_note = tls_note(s);
  }
  for (std::size_t k = 0; k < s.phases.size(); ++k) {
    result.phases.push_back(run_phase(s.phases[k], options, k, progress, cert.get()));
    if (progress.done) progress.done(k, result.phases.back());
  }
  return result;
}

std::size_t phase_count(const std::string& name) { return find_scenario(name).phases.size(); }

void print_scenario_head(const std::string& name, std::ostream& out, bool tls) {
  out << "chatlab " << name << ": " << scenario_summary(name) << "\n";
  if (tls) out << "over TLS: " << tls_note(find_scenario(name)) << "\n";
}

void print_phase_head(const PhaseResult& phase, std::size_t index, std::size_t phases, std::ostream& out) {
  out << "\n";
  if (phases > 1) out << "phase " << index + 1 << ": " << phase.title << "\n";
  out << "chatserver";
  for (const auto& a : phase.server_args) out << " " << a;
  if (!phase.server_netns.empty()) out << " (in network namespace " << phase.server_netns << ")";
  out << "\n";
  if (phase.tls) out << "the certificate, made for this run: " << phase.tls_certificate << "\n";
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
  if (p.resumes) {
    out << "\nthe drop and the resume, step by step (ms from the link going down):\n";
    for (const auto& s : p.steps) {
      if (s.reached) {
        std::snprintf(row, sizeof row, "%10.1f  %-17s  ", s.ms, s.step.c_str());
      } else {
        std::snprintf(row, sizeof row, "%10s  %-17s  ", "-", s.step.c_str());
      }
      out << row << (s.reached ? s.what : "(did not happen)") << "\n";
    }
    out << "replay " << (p.replay_ok ? "matched: " : "MISMATCH: ") << p.replay_verdict << "\n";
  }
  out << (p.ok ? "ok: " : "UNEXPECTED: ") << p.verdict << "\n";
}

void print_result(const ScenarioResult& result, std::ostream& out) {
  print_scenario_head(result.name, out, result.tls);
  for (std::size_t k = 0; k < result.phases.size(); ++k) {
    print_phase_head(result.phases[k], k, result.phases.size(), out);
    print_phase_table(result.phases[k], out);
  }
}

std::string json_result(const ScenarioResult& result) {
  bench::Json j;
  j.begin_object();
  j.field("scenario", result.name).field("summary", result.summary).field("ok", result.ok());
  j.field("tls", result.tls);
  if (result.tls) j.field("tls_note", result.tls_note);
  j.begin_array("phases");
  for (const auto& p : result.phases) {
    j.begin_object();
    j.field("title", p.title).field("fault", p.fault).field("server_args", p.server_args);
    if (!p.server_netns.empty()) j.field("server_netns", p.server_netns);
    j.field("tls", p.tls);
    if (p.tls) j.field("tls_certificate", p.tls_certificate);
    j.field("expected_cause", p.expected_cause).field("expected_detectors", p.expected_detectors);
    if (!p.expected_detail.empty()) j.field("expected_detail", p.expected_detail);
    if (!p.unexpected_detail.empty()) j.field("unexpected_detail", p.unexpected_detail);
    j.field("cause", p.cause).field("leave", p.leave_line.value_or("")).field("leave_ms", p.leave_ms);
    j.field("detector", p.detector).field("detected_ms", p.detected_ms);
    j.field("evidence", p.evidence).field("decision", p.decision);
    j.field("ok", p.ok).field("verdict", p.verdict);
    if (p.resumes) {
      j.begin_array("steps");
      for (const auto& s : p.steps) {
        j.begin_object().field("step", s.step).field("reached", s.reached).field("ms", s.ms).field("what", s.what).end_object();
      }
      j.end_array();
      j.field("replay_count", p.replay_count).field("replay_ok", p.replay_ok).field("replay_verdict", p.replay_verdict);
    }
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
