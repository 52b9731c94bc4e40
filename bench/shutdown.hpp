// `chatbench shutdown`: N joined clients, then SIGTERM to chatserver. Measures the time until
// the process exits and until every client has read `BYE shutdown` (the project's target: both
// within 2 s for 1000 clients).
//
// Threads: main thread only. The clients are LineConns driven by one poll(2) loop.
#pragma once

#include "bench/report.hpp"

#include <optional>
#include <ostream>
#include <string>

namespace chat::bench {

struct ShutdownOptions {
  std::string server_path;
  int clients = 1000;
};

struct ShutdownResult {
  int clients = 0;                  // asked for
  int joined = 0;                   // read their WELCOME
  double join_ms = 0;               // connecting and joining all of them
  std::optional<double> exit_ms;    // SIGTERM -> the process exited (nullopt: not in time)
  std::optional<int> exit_code;
  int bye = 0;                      // clients that read "BYE shutdown"
  int closed_without_bye = 0;       // saw the connection end first
  int other_bye = 0;                // read a BYE with another reason
  std::optional<double> all_bye_ms; // SIGTERM -> the last client read its BYE (all of them)
  Summary bye_ms;                   // over the clients that read it
  std::string error;                // why the run could not be completed
  std::string note;                 // e.g. the file limit capped the clients
  bool ok() const;
  bool met_target() const;          // both within 2 s
};

ShutdownResult run_shutdown(const ShutdownOptions& options, std::ostream& progress);
void print_shutdown(const ShutdownResult& result, std::ostream& out);
void json_shutdown(const ShutdownResult& result, Json& json);

}  // namespace chat::bench
