// Time and interruption for chatbench: every wait in bench/ is bounded by a deadline on the
// steady clock, and sliced into steps of at most `poll_slice` so that a SIGINT/SIGTERM to the
// benchmark is noticed within that time (and the processes it started are ended by their
// destructors, not left behind).
//
// Threads: all of it is thread safe. The interruption flag is set by a signal handler and read
// by any thread.
#pragma once

#include <chrono>
#include <stdexcept>

namespace chat::bench {

using Clock = std::chrono::steady_clock;

// The longest single poll(2) anywhere in bench/: the bound on noticing an interruption.
inline constexpr std::chrono::milliseconds poll_slice{100};

// Thrown out of a wait once the benchmark was asked to stop (SIGINT / SIGTERM).
struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};

// Installs handlers for SIGINT and SIGTERM that only set the flag below. Main thread, once,
// before any other thread starts. Also ignores SIGPIPE (a write to a peer that is gone must be
// an error code, not the end of the benchmark).
void install_interrupt_handlers();

// True once SIGINT or SIGTERM arrived. Async-signal safe to set, any thread may read.
bool interrupted();

// Throws Interrupted if interrupted(). Called by every waiting loop.
void check_interrupted();

// Milliseconds from now until `deadline` as poll(2) wants them: never negative, never more than
// poll_slice.
int poll_timeout(Clock::time_point deadline);

// Milliseconds between two time points, as a double (for reports).
inline double millis_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

}  // namespace chat::bench
