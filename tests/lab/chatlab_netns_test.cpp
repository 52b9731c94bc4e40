// chatlab's scenarios in network namespaces: cable-pull, host-reboot, poll-only and wifi-drop
// (a seat resumed after the link was down, its replay checked), and wifi-drop over TLS. They need root and iproute2;
// elsewhere each passes with a WARN "skipped: <why>" (Catch2 v2 has no SKIP), and the chatlab
// program says so with exit 2.
#include "tests/lab/lab_check.hpp"
#include "tests/support/process.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

using namespace chat::lab;
using namespace chat::test;
using namespace std::chrono_literals;

namespace {

std::optional<ScenarioResult> run_or_skip(const std::string& name, const LabOptions& options = lab_options()) {
  try {
    return run_scenario(name, options);
  } catch (const LabUnavailable& e) {
    WARN("skipped: " << e.what());
    return std::nullopt;
  }
}

}  // namespace

TEST_CASE("chatlab cable-pull: keepalive probes go unanswered, then timeout", "[lab][netns]") {
  const auto result = run_or_skip("cable-pull");
  if (!result) return;
  INFO(timeline_text(*result));
  REQUIRE(result->phases.size() == 1);
  const auto& phase = result->phases[0];
  check_phase(phase, "timeout", {"reader", "poller"});
  // ss showed the kernel's keepalive probes, one by one.
  CHECK(std::any_of(phase.events.begin(), phase.events.end(), [](const LabEvent& e) {
    return e.source == "ss" && e.text.find("keepalive timer, 1 probes sent") != std::string::npos;
  }));
  // The budget is 2s + 2 x 1s, counted from the victim's last ACK (before the fault): the
  // decision says how long the line had been quiet, and that is the whole budget.
  const auto quiet_at = phase.decision.find(" s after last traffic");
  REQUIRE(quiet_at != std::string::npos);
  const auto number_at = phase.decision.rfind(' ', quiet_at - 1);
  CHECK(std::stod(phase.decision.substr(number_at + 1, quiet_at - number_at - 1)) >= 3.9);
}

TEST_CASE("chatlab host-reboot: the rebooted host answers the next segment with an RST", "[lab][netns]") {
  const auto result = run_or_skip("host-reboot");
  if (!result) return;
  INFO(timeline_text(*result));
  REQUIRE(result->phases.size() == 1);
  check_phase(result->phases[0], "reset", {"reader", "writer", "poller"});
}

TEST_CASE("chatlab poll-only: the poll never notices a pulled cable, keepalive does", "[lab][netns]") {
  const auto result = run_or_skip("poll-only");
  if (!result) return;
  INFO(timeline_text(*result));
  REQUIRE(result->phases.size() == 2);
  const auto& blind = result->phases[0];
  CHECK(blind.ok);
  CHECK_FALSE(blind.leave_line);
  CHECK(blind.detector.empty());
  // The poller swept all along and found nothing readable.
  CHECK(std::any_of(blind.events.begin(), blind.events.end(), [&](const LabEvent& e) {
    return e.at > blind.fault_at && e.source == "poller" && e.text.find("sockets in") != std::string::npos &&
           e.text.find(", 0 readable") != std::string::npos;
  }));
  CHECK(std::none_of(blind.events.begin(), blind.events.end(), [&](const LabEvent& e) {
    return e.at > blind.fault_at && e.source == "poller" && e.text.find("readable (") != std::string::npos;
  }));
  check_phase(result->phases[1], "timeout", {"reader", "poller"});
}

TEST_CASE("chatlab says when a scenario needs root, and exits 2", "[lab][netns][program]") {
  std::vector<std::string> argv{CHATLAB_PATH, "cable-pull"};
  if (::geteuid() == 0) {
    // As root, the same program run as nobody (setpriv, util-linux) must refuse.
    if (::access("/usr/bin/setpriv", X_OK) != 0) {
      WARN("skipped: no /usr/bin/setpriv to drop root with");
      return;
    }
    argv.insert(argv.begin(), {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  }
  Subprocess lab(argv);
  lab.close_stdin();
  std::string seen;
  const bool said = lab.wait_for_line(Stream::err, "needs network namespaces", 10s, &seen);
  const auto code = lab.wait_exit(10s);
  if (!said && code && (*code == 126 || *code == 127)) {
    WARN("skipped: user nobody cannot run " << CHATLAB_PATH << " here: " << seen);
    return;
  }
  INFO(seen);
  CHECK(said);
  CHECK(code == 2);
}

namespace {

const ResumeStep* step_named(const PhaseResult& phase, const std::string& name) {
  const auto it = std::find_if(phase.steps.begin(), phase.steps.end(), [&](const ResumeStep& s) { return s.step == name; });
  return it == phase.steps.end() ? nullptr : &*it;
}

}  // namespace

TEST_CASE("chatlab wifi-drop: the link drops, the server notices, the victim resumes and misses nothing",
          "[lab][netns][resume]") {
  const auto result = run_or_skip("wifi-drop");
  if (!result) return;
  INFO(timeline_text(*result));
  REQUIRE(result->phases.size() == 1);
  const auto& phase = result->phases[0];
  // The drop is found by the heartbeat (the PING not even ACKed) or keepalive: timeout.
  check_phase(phase, "timeout", {"poller", "reader"});
  REQUIRE(phase.resumes);

  // Every step happened, in an order that makes sense, the detection within the down time.
  std::map<std::string, double> at;
  for (const auto& name : {"link down", "detector decided", "LEAVE seen", "link up", "reconnect", "RESUMED", "replay",
                           "BACK seen", "first live line"}) {
    const auto* s = step_named(phase, name);
    INFO("step " << name);
    REQUIRE(s);
    CHECK(s->reached);
    CHECK_FALSE(s->what.empty());
    at[name] = s->ms;
  }
  CHECK(at["link down"] == 0);
  CHECK(at["detector decided"] <= at["LEAVE seen"]);
  CHECK(at["LEAVE seen"] < at["link up"]);
  CHECK(at["link up"] >= 4000);  // down 4 s at least
  CHECK(at["link up"] <= at["reconnect"]);
  CHECK(at["reconnect"] <= at["RESUMED"]);
  CHECK(at["RESUMED"] <= at["replay"]);
  CHECK(at["replay"] <= at["first live line"]);
  CHECK(at["reconnect"] <= at["BACK seen"]);
  CHECK(at["BACK seen"] <= at["first live line"]);
  CHECK(step_named(phase, "reconnect")->what.find("sends RESUME <its token> ") != std::string::npos);

  // The replay matched, by the lab's own check...
  CHECK(phase.replay_ok);
  CHECK(phase.replay_verdict.rfind("exact: ", 0) == 0);
  CHECK(phase.replay_count >= 2);  // the victim's LEAVE and the observer's lines

  // ...and by this one, from the timeline: the victim's lines between HISTORY missed and HISTORY
  // END missed are the observer's MSG lines after the fault (the ones it read with their tags)
  // and the victim's LEAVE, in order, each once.
  std::vector<std::string> replay, observer_msgs;
  bool in_block = false, reconnected = false;
  for (const auto& e : phase.events) {
    if (e.source == "victim" && e.text.rfind("reconnected from port ", 0) == 0) reconnected = true;
    if (e.source == "victim" && reconnected && e.text.rfind("read: HISTORY missed ", 0) == 0) {
      in_block = true;
    } else if (e.source == "victim" && e.text == "read: HISTORY END missed") {
      in_block = false;
    } else if (e.source == "victim" && in_block && e.text.rfind("read: @", 0) == 0) {
      replay.push_back(e.text.substr(6));
    }
    if (e.source == "observer" && e.at > phase.fault_at && e.text.rfind('@', 0) == 0 &&
        e.text.find(" MSG observer line ") != std::string::npos) {
      observer_msgs.push_back(e.text);
    }
  }
  CHECK(replay.size() == phase.replay_count);
  REQUIRE(!observer_msgs.empty());
  std::vector<std::string> replay_msgs;
  std::copy_if(replay.begin(), replay.end(), std::back_inserter(replay_msgs),
               [](const std::string& l) { return l.find(" MSG observer line ") != std::string::npos; });
  CHECK(replay_msgs == observer_msgs);
  CHECK(std::count_if(replay.begin(), replay.end(), [](const std::string& l) {
          return l.find(" LEAVE victim timeout ") != std::string::npos;
        }) == 1);
  CHECK(replay.size() == replay_msgs.size() + 1);
  // The first live line is the observer's welcome, after the replay.
  const auto* live = step_named(phase, "first live line");
  CHECK(live->what.find(" MSG observer welcome back") != std::string::npos);
}

TEST_CASE("chatlab --tls wifi-drop: a TLS client's link drops, and it resumes on a new TLS session",
          "[lab][netns][resume][tls]") {
  const auto result = run_or_skip("wifi-drop", tls_options());
  if (!result) return;
  INFO(timeline_text(*result));
  REQUIRE(result->phases.size() == 1);
  const auto& phase = result->phases[0];
  // Not even the PING's record was ACKed: timeout, as in clear text.
  check_phase(phase, "timeout", {"poller", "reader"});
  check_over_tls(phase);
  CHECK(phase.replay_ok);
  CHECK(phase.replay_count >= 2);
  // Two handshakes: the first connection's and the new one's, before its RESUME.
  CHECK(std::count_if(phase.events.begin(), phase.events.end(), [](const LabEvent& e) {
          return e.source == "victim" && e.text.rfind("TLS: TLSv1.", 0) == 0;
        }) == 2);
  const auto* reconnect = step_named(phase, "reconnect");
  REQUIRE(reconnect);
  CHECK(reconnect->what.find("a new TLS session") != std::string::npos);
}

TEST_CASE("chatlab wifi-drop prints each step of the resume and says the replay matched", "[lab][netns][program][resume]") {
  Subprocess lab({CHATLAB_PATH, "wifi-drop"});
  lab.close_stdin();
  std::string out;
  while (auto line = lab.read_line(Stream::out, 60s)) out += *line + "\n";
  std::string err;
  while (auto line = lab.read_line(Stream::err, 1s)) err += *line + "\n";
  const auto code = lab.wait_exit(10s);
  INFO("stdout:\n" << out << "stderr:\n" << err);
  if (code == 2 && err.find("needs network namespaces") != std::string::npos) {
    WARN("skipped: " << err);
    return;
  }
  CHECK(code == 0);
  // The summary, one row per step, in this order.
  std::size_t from = out.find("the drop and the resume, step by step (ms from the link going down):");
  REQUIRE(from != std::string::npos);
  for (const auto* step : {"link down", "detector decided", "LEAVE seen", "link up", "reconnect", "RESUMED", "replay",
                           "BACK seen", "first live line"}) {
    INFO("step " << step);
    const auto at = out.find(std::string("  ") + step + " ", from);
    REQUIRE(at != std::string::npos);
    CHECK(out.substr(at, out.find('\n', at) - at).find("(did not happen)") == std::string::npos);
    from = at;
  }
  CHECK(out.find("replay matched: exact: ") != std::string::npos);
  CHECK(out.find("read: HISTORY missed ") != std::string::npos);
  CHECK(out.find("read: HISTORY END missed") != std::string::npos);
  CHECK(out.find("ok: cause timeout") != std::string::npos);
  CHECK(out.find("replay of ") != std::string::npos);
  // The token is never printed, only that it was kept.
  CHECK(out.find("read: TOKEN <32 hex digits, kept, not shown> ") != std::string::npos);
  CHECK_FALSE(std::regex_search(out, std::regex("[0-9a-f]{32}")));
}
