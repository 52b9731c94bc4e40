// `chatbench detect`: how long the server takes to notice each kind of departure, and whether
// it names the right cause. Every run is a fresh scenario on a fresh chatserver (127.0.0.1,
// port 0): an observer joins in protocol mode (and answers PINGs, so it is never the one
// dropped), a victim joins, the failure is injected, and the time from the injection to the
// observer reading `LEAVE victim <cause> <detail>` is one sample.
//
// In the not-reading cases the victim connects with a 4 KiB receive buffer (set before connect)
// and never reads after its join; the observer sends lines to the room, reading its own echoes,
// until the LEAVE or a cap: 3 KB lines up to a byte cap, and the scenario, at most 1,000
// lines of 900 B with --send-queue 256KiB --send-timeout 2s. What the observer sent until the
// LEAVE is reported with the time. A LEAVE with another cause (a no-pong after the lines are all
// sent, say) is a MISMATCH; none within the case's patience is a failed run.
//
// Threads: main thread only (each ServerProcess owns its stderr drain thread).
#pragma once

#include "bench/report.hpp"

#include <cstddef>
#include <ostream>
#include <string>
#include <vector>

namespace chat::bench {

struct DetectOptions {
  std::string server_path;  // chatserver
  std::string self_path;    // this executable, started again as `chatbench victim`
  int runs = 5;             // per case; the no-pong case with the server's defaults runs once
  std::vector<std::string> cases;  // --case: only the cases whose name contains one of these; empty: all
};

// One row of the table: one kind of failure under one server setting.
struct DetectRow {
  std::string name;      // "closed (SIGKILL)"
  std::string settings;  // the server options that matter, or "defaults"
  std::string expected;  // the cause token the LEAVE must carry
  std::string start;     // what the clock starts at
  std::size_t line_bytes = 0;  // not-reading cases: the observer's lines ("SAY " and text; no LF)
  std::size_t max_lines = 0;   // not-reading cases: the most lines it sends (0: bounded by bytes only)
  std::vector<double> ms;            // one per run that saw a LEAVE
  std::vector<std::string> causes;   // the cause seen, per run that saw a LEAVE
  std::vector<std::string> details;  // the LEAVE's detail, per run that saw a LEAVE
  std::vector<double> sent_mib;      // not-reading cases: what the observer sent until the LEAVE
  std::vector<std::string> errors;   // why a run saw no LEAVE
  std::vector<std::string> oddities; // anything else worth a look (server exit status, ...)

  // Every run saw a LEAVE with the expected cause.
  bool ok() const;
};

// The cases' names in the order they run, each once (two settings of a failure share a name):
// "quit", ..., "not reading (900 B lines)". What --case is matched against.
std::vector<std::string> detect_case_names();
// True when a case called `name` runs under --case `filters`: every case when there is none, else
// the cases whose name contains one of them (plain substring, case sensitive).
bool detect_case_selected(const std::string& name, const std::vector<std::string>& filters);

// Runs every case that options.cases selects (the caller has checked that each filter selects
// one). Progress (one line per run) goes to `progress`. Throws Interrupted.
std::vector<DetectRow> run_detect(const DetectOptions& options, std::ostream& progress);

void print_detect(const std::vector<DetectRow>& rows, std::ostream& out);
void json_detect(const std::vector<DetectRow>& rows, Json& json);

}  // namespace chat::bench
