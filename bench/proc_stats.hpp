// What /proc says about a server process: its resident memory, its threads and the CPU time it
// has used. chatbench reads it for a server it started, or for one named with --server-pid.
//
// Pure reads of /proc; thread safe.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace chat::bench {

struct ProcSample {
  double rss_mib = 0;       // VmRSS
  long threads = 0;         // Threads
  double cpu_seconds = 0;   // utime + stime
};

// nullopt when the process is gone or /proc cannot be read.
std::optional<ProcSample> sample_process(pid_t pid);

// utime + stime in seconds from a /proc .../stat file; nullopt when it cannot be read.
std::optional<double> stat_cpu_seconds(const std::string& stat_path);
// The CPU time (seconds) of the threads of `pid` named `name` (their comm, e.g. "archive"),
// summed; nullopt when there is none or the process is gone.
std::optional<double> thread_cpu_seconds(pid_t pid, std::string_view name);

}  // namespace chat::bench
