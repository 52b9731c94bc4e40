// chatlab's scenarios in network namespaces: cable-pull, host-reboot and poll-only. They need
// root and iproute2; elsewhere each passes with a WARN "skipped: <why>" (Catch2 v2 has no
// SKIP), and the chatlab program says so with exit 2.
#include "tests/lab/lab_check.hpp"
#include "tests/support/process.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <optional>

using namespace chat::lab;
using namespace chat::test;
using namespace std::chrono_literals;

namespace {

std::optional<ScenarioResult> run_or_skip(const std::string& name) {
  try {
    return run_scenario(name, lab_options());
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
