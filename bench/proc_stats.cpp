#include "bench/proc_stats.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace chat::bench {

std::optional<ProcSample> sample_process(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  const std::string base = "/proc/" + std::to_string(pid);
  ProcSample s;
  std::ifstream status(base + "/status");
  if (!status) return std::nullopt;
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) s.rss_mib = std::stod(line.substr(6)) / 1024.0;  // kB
    if (line.rfind("Threads:", 0) == 0) s.threads = std::stol(line.substr(8));
  }
  const auto cpu = stat_cpu_seconds(base + "/stat");
  if (!cpu) return std::nullopt;
  s.cpu_seconds = *cpu;
  return s;
}

std::optional<double> stat_cpu_seconds(const std::string& stat_path) {
  std::ifstream stat_file(stat_path);
  std::string stat;
  if (!std::getline(stat_file, stat)) return std::nullopt;
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int k = 3; fields >> field; ++k) {
    if (k == 14) utime = std::stoull(field);
    if (k == 15) {
      stime = std::stoull(field);
      break;
    }
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::optional<double> thread_cpu_seconds(pid_t pid, std::string_view name) {
  if (pid <= 0) return std::nullopt;
  std::optional<double> total;
  std::error_code e;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", e)) {
    std::ifstream comm(task.path() / "comm");
    std::string line;
    if (!std::getline(comm, line) || line != name) continue;
    if (const auto cpu = stat_cpu_seconds((task.path() / "stat").string())) total = total.value_or(0) + *cpu;
  }
  return total;
}

}  // namespace chat::bench
