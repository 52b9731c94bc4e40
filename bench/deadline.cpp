#include "bench/deadline.hpp"

#include <atomic>
#include <csignal>

namespace chat::bench {
namespace {

// Lock-free, so setting it is async-signal safe.
std::atomic<bool> interrupt_flag{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void on_stop_signal(int) { interrupt_flag.store(true); }

}  // namespace

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  // No SA_RESTART: a poll(2) in progress returns EINTR, and its loop checks the flag at once.
  action.sa_flags = 0;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

bool interrupted() { return interrupt_flag.load(); }

void check_interrupted() {
  if (interrupted()) throw Interrupted();
}

int poll_timeout(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
  if (left <= std::chrono::milliseconds::zero()) return 0;
  return static_cast<int>(std::min(left, poll_slice).count());
}

}  // namespace chat::bench
