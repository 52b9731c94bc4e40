// `chatbench detect`: how long the server takes to notice each kind of departure, and whether
// it names the right cause. Every run is a fresh scenario on a fresh chatserver (127.0.0.1,
// port 0): an observer joins in protocol mode (and answers PINGs, so it is never the one
// dropped), a victim joins, the failure is injected, and the time from the injection to the
// observer reading `LEAVE victim <cause> <detail>` is one sample.
//
// Threads: main thread only (each ServerProcess owns its stderr drain thread).
#pragma once

#include "bench/report.hpp"

#include <ostream>
#include <string>
#include <vector>

namespace chat::bench {

struct DetectOptions {
  std::string server_path;  // chatserver
  std::string self_path;    // this executable, started again as `chatbench victim`
  int runs = 5;             // per case; the no-pong case with the server's defaults runs once
};

// One row of the table: one kind of failure under one server setting.
struct DetectRow {
  std::string name;      // "closed (SIGKILL)"
  std::string settings;  // the server options that matter, or "defaults"
  std::string expected;  // the cause token the LEAVE must carry
  std::string start;     // what the clock starts at
  std::vector<double> ms;            // one per run that saw a LEAVE
  std::vector<std::string> causes;   // the cause seen, per run that saw a LEAVE
  std::vector<std::string> details;  // the LEAVE's detail, per run that saw a LEAVE
  std::vector<double> sent_mib;      // too-slow cases: what the observer sent until the LEAVE
  std::vector<std::string> errors;   // why a run saw no LEAVE
  std::vector<std::string> oddities; // anything else worth a look (server exit status, ...)

  // Every run saw a LEAVE with the expected cause.
  bool ok() const;
};

// Runs every case. Progress (one line per run) goes to `progress`. Throws Interrupted.
std::vector<DetectRow> run_detect(const DetectOptions& options, std::ostream& progress);

void print_detect(const std::vector<DetectRow>& rows, std::ostream& out);
void json_detect(const std::vector<DetectRow>& rows, Json& json);

}  // namespace chat::bench
