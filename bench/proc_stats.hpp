// What /proc says about a server process: its resident memory, its threads and the CPU time it
// has used. chatbench reads it for a server it started, or for one named with --server-pid.
//
// Pure reads of /proc; thread safe.
#pragma once

#include <sys/types.h>

#include <optional>

namespace chat::bench {

struct ProcSample {
  double rss_mib = 0;       // VmRSS
  long threads = 0;         // Threads
  double cpu_seconds = 0;   // utime + stime
};

// nullopt when the process is gone or /proc cannot be read.
std::optional<ProcSample> sample_process(pid_t pid);

}  // namespace chat::bench
