// chatlab's scenarios: each starts a chatserver with --trace, an observer client and a victim
// client, injects one failure into the victim (or its host, or the path to it), waits for the
// LEAVE the observer receives, and keeps everything that happened meanwhile as a Timeline.
//
//   quit          the victim says QUIT                       -> quit      (reader)
//   close         the victim closes its socket (FIN)         -> closed    (reader)
//   kill          the victim's process is SIGKILLed (FIN)    -> closed    (reader)
//   crash-unread  killed with unread data: the kernel's RST  -> reset     (reader)
//   cable-pull    its host's link goes down (netns, root)    -> timeout   (keepalive: kernel or poller)
//   host-reboot   its host crashes and boots again           -> reset     (the next write meets an RST)
//   hang          its process is stopped (SIGSTOP)           -> no-pong   (poller's heartbeat)
//   not-reading   it stops reading while the room talks      -> too-slow  (writer or poller)
//   flood         it sends as fast as it can                 -> flood     (reader's flood control)
//   poll-only     cable-pull with keepalive and heartbeat off: nothing notices; then keepalive on
//   web-tab-closed  a browser's page (the WebSocket at /ws) closes: close frame 1001, then FIN
//                                                            -> closed    (reader; the detail names 1001)
//   web-hang      a browser's page joined over the WebSocket is stopped (SIGSTOP)
//                                                            -> no-pong   (poller's heartbeat)
//   instance-lost one room on two chatservers through Redis: the victim's chatserver is killed
//                                                            -> instance-lost (the survivor's
//                 backplane reaper, once the dead server's heartbeat key expired)
//   wifi-drop     a victim with ids (HELLO victim ids) loses its link for a few seconds while
//                 the observer talks (netns, root)           -> timeout   (poller's heartbeat:
//                 not even the PING is ACKed); the link comes back, the victim reconnects and
//                 sends RESUME <token> <last id>, gets RESUMED and the replay of what it missed
//                 (checked, line by line, against what the observer read), then live lines
//   tls-close     over TLS: an unfinished line, then a close_notify, then a FIN
//                                                            -> closed    (reader; detail
//                 "close_notify (reader, ...)"; the unfinished line is delivered: its last word)
//   tls-cut       over TLS: an unfinished line, then a FIN without close_notify
//                                                            -> closed    (reader; detail
//                 "... without close_notify (reader, ...)"; the unfinished line is dropped: it
//                 may have been cut short)
//
// The web-* victims speak RFC 6455 as the page in web/ does (lab/victim.hpp): the detectors are
// the same threads and rules as for the TCP victims; only the framing of the lines differs.
//
// Over TLS (LabOptions::tls, chatlab --tls; the tls-* scenarios always): chatlab makes a
// self-signed certificate for the run in a directory of its own (removed at the end), starts
// chatserver with --tls-cert and --tls-key, and the observer and the victim speak TLS to it
// (wss:// for the web-* victims), verifying nothing: it is the lab's own server
// (lab/tls_client.hpp). Every scenario runs over TLS with the same detectors and causes; where
// the wire differs, the detail does: a FIN that comes without a close_notify first (close, kill)
// is told as "... without close_notify".
//
// Threads: run_scenario runs on the main thread; the objects it creates own the other threads
// (the server's stderr drain thread, the observer's reader thread, the ss thread).
#pragma once

#include "lab/timeline.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <iosfwd>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace chat::lab {

struct LabOptions {
  std::string server_path;  // chatserver
  std::string self_path;    // this executable, started again as `chatlab victim`
  std::vector<std::string> extra;  // more chatserver options; they come last and win
  std::chrono::milliseconds wait{60'000};   // longest wait for the LEAVE
  std::chrono::milliseconds watch{10'000};  // poll-only: how long nothing is seen to happen
  bool tls = false;  // every scenario over TLS (chatlab --tls); the tls-* scenarios always are
};

// One step of a resume after a drop (wifi-drop), for the step-by-step summary.
struct ResumeStep {
  std::string step;      // "link down", "detector decided", "LEAVE seen", "link up", "reconnect", ...
  bool reached = false;  // false: it never happened (then ms is 0)
  double ms = 0;         // from the fault (the link going down)
  std::string what;      // the line that shows it
};

// One server run: one failure, one timeline.
struct PhaseResult {
  std::string title;                     // "keepalive off, no heartbeat"
  std::string fault;                     // what was done at 0 ms
  std::vector<std::string> server_args;  // the options chatserver ran with
  std::string server_netns;              // the network namespace it ran in ("" on loopback)
  bool tls = false;                      // the observer and the victim spoke TLS to it
  std::string tls_certificate;           // over TLS: the certificate's fingerprint ("SHA256:...")
  std::vector<LabEvent> events;
  WallClock::time_point fault_at{};
  std::optional<std::string> leave_line; // what the observer read, if anything
  std::string cause;                     // from the LEAVE ("" without one)
  double leave_ms = 0;                   // from the fault to the observer reading the LEAVE
  std::string detector;                  // the thread whose decision ended the session: "reader", "poller", "writer"
  std::string decision;                  // that thread's "ends victim: ..." line
  std::string evidence;                  // that thread's line just before: the inputs it decided on
  double detected_ms = 0;                // from the fault to that decision
  std::string expected_cause;            // "" when nothing is expected to notice
  std::string expected_detail;           // the LEAVE's detail must contain this ("" for any)
  std::string unexpected_detail;         // ...and must not contain this ("" for no such rule)
  std::vector<std::string> expected_detectors;
  bool ok = false;
  std::string verdict;                   // one sentence: what happened, and whether it was expected
  // A phase whose victim resumes its seat (wifi-drop): its steps, and the replay's check.
  bool resumes = false;
  std::vector<ResumeStep> steps;         // link down ... first live line, in that order
  std::size_t replay_count = 0;          // lines between HISTORY missed and HISTORY END missed
  bool replay_ok = false;                // they equal what the observer read meanwhile, each once, in order
  std::string replay_verdict;            // one sentence saying so, or the first difference
};

struct ScenarioResult {
  std::string name;
  std::string summary;  // the failure and the lesson, a sentence or two
  bool tls = false;     // it ran over TLS
  std::string tls_note; // over TLS: what a run over TLS is, and what differs here ("" otherwise)
  std::vector<PhaseResult> phases;
  bool ok() const;
};

// The scenario names, in the order of the table above.
const std::vector<std::string>& scenario_names();
// "cable-pull" and friends need network namespaces (root, iproute2).
bool needs_netns(const std::string& name);
// The tls-* scenarios run over TLS with or without LabOptions::tls.
bool always_tls(const std::string& name);
std::string scenario_summary(const std::string& name);

// Thrown when a scenario needs what this machine cannot give (root for namespaces).
struct LabUnavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What run_scenario tells as it goes, so that a timeline can be printed while the scenario
// runs, each line once (chatlab's table): `started` when a phase's server options are known and
// before its server starts (no events yet), `done` with the phase's whole result. Both are
// called on the thread that runs the scenario, with the phase's index.
struct ScenarioProgress {
  std::function<void(std::size_t phase, const PhaseResult&)> started;
  std::function<void(std::size_t phase, const PhaseResult&)> done;
};

// Runs the scenario `name` (over TLS with options.tls, or when it always is). Throws
// LabUnavailable, std::invalid_argument for an unknown name, std::runtime_error when the lab
// itself fails (including a certificate it cannot make).
ScenarioResult run_scenario(const std::string& name, const LabOptions& options, const ScenarioProgress& progress = {});

// The timeline for people: print_result prints all of it; the three parts print it as it comes
// (the scenario's head before it runs, then a phase's head when it starts, its table when done).
void print_result(const ScenarioResult& result, std::ostream& out);
// `tls`: it runs over TLS (the head says so, and what differs).
void print_scenario_head(const std::string& name, std::ostream& out, bool tls = false);
void print_phase_head(const PhaseResult& phase, std::size_t index, std::size_t phases, std::ostream& out);
void print_phase_table(const PhaseResult& phase, std::ostream& out);
// The number of phases of the scenario `name`.
std::size_t phase_count(const std::string& name);
// The same as one JSON document.
std::string json_result(const ScenarioResult& result);

}  // namespace chat::lab
