// Runs one chatlab scenario in-process (the victim is the chatlab executable, the server the
// chatserver built with it) and checks what a learner is promised: the others receive the
// expected cause, and the timeline names the thread that decided and what it saw.
//
// Threads: the Catch2 test thread (the scenario's objects own their threads).
#pragma once

#include "lab/scenarios.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace chat::test {

inline lab::LabOptions lab_options() {
  lab::LabOptions options;
  options.server_path = CHATSERVER_PATH;
  options.self_path = CHATLAB_PATH;
  options.wait = std::chrono::seconds(30);  // generous: the lab timings fire within 5 s
  options.watch = std::chrono::seconds(2);
  return options;
}

// The same, over TLS (chatlab --tls).
inline lab::LabOptions tls_options() {
  auto options = lab_options();
  options.tls = true;
  return options;
}

// A phase that ran over TLS shows it: the victim's handshake (its "TLS: TLSv1.x ..." line, the
// certificate chatlab made for the run), and the server's reader saying so when it joined.
inline void check_over_tls(const lab::PhaseResult& phase) {
  CHECK(phase.tls);
  CHECK(phase.tls_certificate.rfind("SHA256:", 0) == 0);
  CHECK(std::any_of(phase.events.begin(), phase.events.end(), [&](const lab::LabEvent& e) {
    return e.source == "victim" && e.text.rfind("TLS: TLSv1.", 0) == 0 &&
           e.text.find(phase.tls_certificate) != std::string::npos;
  }));
  CHECK(std::any_of(phase.events.begin(), phase.events.end(), [](const lab::LabEvent& e) {
    return e.source.find("reader victim") != std::string::npos && e.text.find(" over TLS)") != std::string::npos;
  }));
}

inline std::string timeline_text(const lab::ScenarioResult& result) {
  std::ostringstream out;
  lab::print_result(result, out);
  return out.str();
}

// What every timeline promises a learner, whatever the scenario: the victim's reader is one
// thread under one name (never `reader #2` first, `reader victim` later), and once another
// thread has decided, the reader woken by the server's own shutdown of the socket is not shown
// deciding "closed (connection closed by peer)": nobody closed anything.
inline void check_told_once(const lab::PhaseResult& phase) {
  for (const auto& e : phase.events) {
    INFO(e.source << ": " << e.text);
    CHECK(e.source.rfind("reader #", 0) != 0);
    CHECK(e.source.rfind("B reader #", 0) != 0);
    if (phase.detector != "reader" && !phase.detector.empty()) {
      CHECK(e.text.find("ends victim: closed (connection closed by peer") == std::string::npos);
    }
  }
  // The victim's reader has lines before its join (the HELLO it read), under its final name
  // (on the second chatserver, "B reader victim", when the victim is there: instance-lost).
  const auto victims_reader = [](const std::string& source) {
    return source == "reader victim" || source == "B reader victim";
  };
  const auto joined = std::find_if(phase.events.begin(), phase.events.end(), [&](const lab::LabEvent& e) {
    return victims_reader(e.source) && e.text.rfind("joined from ", 0) == 0;
  });
  REQUIRE(joined != phase.events.end());
  CHECK(std::any_of(phase.events.begin(), joined, [&](const lab::LabEvent& e) {
    return victims_reader(e.source) && e.text.rfind("recv: ", 0) == 0;
  }));
}

// Checks one phase: its cause, the detector (one of `detectors`), and that the timeline holds
// the detector's decision ("ends victim: <cause>") from that thread, and the observer's LEAVE.
inline void check_phase(const lab::PhaseResult& phase, const std::string& cause,
                        const std::vector<std::string>& detectors) {
  CHECK(phase.cause == cause);
  CHECK(std::find(detectors.begin(), detectors.end(), phase.detector) != detectors.end());
  CHECK(phase.ok);
  const auto decided = std::find_if(phase.events.begin(), phase.events.end(), [&](const lab::LabEvent& e) {
    return e.source.rfind(phase.detector, 0) == 0 && e.text.rfind("ends victim: " + cause, 0) == 0;
  });
  CHECK(decided != phase.events.end());
  CHECK_FALSE(phase.evidence.empty());
  const auto leave = std::find_if(phase.events.begin(), phase.events.end(), [&](const lab::LabEvent& e) {
    return e.source == "observer" && e.text.rfind("LEAVE victim " + cause, 0) == 0;
  });
  CHECK(leave != phase.events.end());
  // Time 0 is the fault: the decision comes after it, and the others hear of it after that.
  CHECK(phase.detected_ms >= 0);
  CHECK(phase.leave_ms >= phase.detected_ms);
  check_told_once(phase);
}

}  // namespace chat::test
