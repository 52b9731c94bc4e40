#include "server/stats.hpp"

#include <algorithm>
#include <fstream>
#include <vector>

namespace chat {
namespace {

long threads_of_this_process() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stol(line.substr(8));
  }
  return -1;
}

}  // namespace

void ServerStats::note_backlog(std::uint64_t bytes) {
  auto peak = backlog_peak.load(std::memory_order_relaxed);
  while (bytes > peak && !backlog_peak.compare_exchange_weak(peak, bytes, std::memory_order_relaxed)) {
  }
}

void ServerStats::record_sweep(std::chrono::steady_clock::duration took, std::chrono::nanoseconds cpu) {
  const auto us = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(took).count());
  const auto cpu_us = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(cpu).count());
  std::lock_guard lock(sweep_mutex_);
  sweeps_us_[sweeps_ % sweep_window] = static_cast<std::uint32_t>(std::min<std::uint64_t>(us, UINT32_MAX));
  sweeps_cpu_us_[sweeps_ % sweep_window] = static_cast<std::uint32_t>(std::min<std::uint64_t>(cpu_us, UINT32_MAX));
  ++sweeps_;
  sweep_max_us_ = std::max(sweep_max_us_, us);
}

std::string ServerStats::line(std::size_t joined, std::size_t writers, std::size_t history_chunks) const {
  std::vector<std::uint32_t> recent, recent_cpu;
  std::uint64_t sweep_max = 0;
  std::size_t sweeps = 0;
  {
    std::lock_guard lock(sweep_mutex_);
    sweeps = sweeps_;
    const auto n = static_cast<long>(std::min(sweeps_, sweep_window));
    recent.assign(sweeps_us_.begin(), sweeps_us_.begin() + n);
    recent_cpu.assign(sweeps_cpu_us_.begin(), sweeps_cpu_us_.begin() + n);
    sweep_max = sweep_max_us_;
  }
  std::sort(recent.begin(), recent.end());
  std::sort(recent_cpu.begin(), recent_cpu.end());
  auto pct_of = [](const std::vector<std::uint32_t>& sorted, double p) -> std::uint64_t {
    if (sorted.empty()) return 0;
    const auto rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1) + 0.5);
    return sorted[rank];
  };
  auto pct = [&](double p) { return pct_of(recent, p); };
  const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_);
  std::string out = "STATS";
  auto add = [&](std::string_view key, auto value) {
    out += ' ';
    out += key;
    out += '=';
    out += std::to_string(value);
  };
  add("clients", connected.load());
  add("joined", joined);
  add("threads", threads_of_this_process());
  add("writers", writers);
  add("accepted", accepted.load());
  add("events", events.load());
  add("deliveries", deliveries.load());
  add("bytes_out", bytes_out.load());
  add("writes", writes.load());
  for (auto cause : {LeaveCause::quit, LeaveCause::closed, LeaveCause::reset, LeaveCause::timeout, LeaveCause::no_pong,
                     LeaveCause::too_slow, LeaveCause::flood, LeaveCause::error, LeaveCause::shutdown,
                     LeaveCause::instance_lost, LeaveCause::kicked, LeaveCause::banned}) {
    std::string key = "leave_" + std::string(to_string(cause));
    std::replace(key.begin(), key.end(), '-', '_');
    add(key, leaves_[static_cast<std::size_t>(cause)].load());
  }
  add("sweeps", sweeps);
  add("sweep_p50_us", pct(50));
  add("sweep_p99_us", pct(99));
  add("sweep_max_us", sweep_max);
  add("sweep_cpu_p50_us", pct_of(recent_cpu, 50));
  add("sweep_cpu_p99_us", pct_of(recent_cpu, 99));
  add("probe_epoll", probe_epoll.load());
  add("backlog_now", backlog_now.load());
  add("backlog_peak", backlog_peak.load());
  add("paused_now", paused_now.load());
  add("pauses", pauses.load());
  add("throttled_now", throttled_now.load());
  add("throttles", throttles.load());
  add("refused_full", refused_full.load());
  add("refused_per_ip", refused_per_ip.load());
  add("refused_not_allowed", refused_not_allowed.load());
  add("refused_clear_text", refused_clear_text.load());
  add("tls_clients", tls_clients.load());
  add("tls_failed", tls_failed.load());
  add("refused_banned", refused_banned.load());
  add("wrong_password", wrong_password.load());
  add("refused_busy", refused_busy.load());
  add("history_chunks", history_chunks);
  add("uptime_s", uptime.count());
  return out;
}

}  // namespace chat
