// Parsing of the command-line units: durations ("100ms", "1.5s", "2m"), sizes ("64KiB"),
// and the keepalive spec ("10s,2s,3" or "off"). Pure functions; safe from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace chat {

using Millis = std::chrono::milliseconds;

// "250ms", "1.5s", "2m", "1h", "1d"; "0" alone is zero. A unit is required otherwise.
// Returns nullopt and sets `error` (if given) for anything else, saying what is wrong:
// "'10' needs a unit (...)", "unknown unit 'x' in '10x' (use ms, s, m or h, e.g. 100ms, 1.5s, 2m)".
std::optional<Millis> parse_duration(std::string_view text, std::string* error = nullptr);

// "65536", "64KiB", "1MiB", "1GiB" (also "64K", "1M", "1G", binary). nullopt on error, with
// `error` set as for parse_duration ("unknown unit 'KB' in '64KB' (use B, KiB, MiB or GiB, ...)").
std::optional<std::size_t> parse_size(std::string_view text, std::string* error = nullptr);

// "16.0 s", "250 ms": how durations appear in LEAVE details and logs.
std::string format_duration(std::chrono::nanoseconds d);

// TCP keepalive settings for one socket (the second source article in shared/background).
struct KeepaliveConfig {
  bool enabled = true;
  Millis idle{10'000};     // TCP_KEEPIDLE: quiet time before the first probe
  Millis interval{2'000};  // TCP_KEEPINTVL: time between probes
  int count = 3;           // TCP_KEEPCNT: unanswered probes before the connection is dead

  // IDLE + INTERVAL x COUNT: the detection budget for an idle dead peer, also used as
  // TCP_USER_TIMEOUT so that unacknowledged data fails within the same budget.
  Millis budget() const { return idle + interval * count; }
};

// "IDLE,INTERVAL,COUNT" (e.g. "10s,2s,3") or "off". Keepalive works in whole seconds, so
// IDLE and INTERVAL must be at least 1s.
std::optional<KeepaliveConfig> parse_keepalive(std::string_view text, std::string* error = nullptr);
std::string format_keepalive(const KeepaliveConfig& config);

}  // namespace chat
