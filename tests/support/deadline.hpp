// Deadlines for the test helpers' poll(2) waits. Pure functions; any thread.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace chat::test {

// Milliseconds left until `deadline` as poll(2) wants them, never negative.
inline int millis_until(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}


// For a condition that no line or descriptor announces (a thread's timer fired, a file was
// written): checks `done` every millisecond until it holds or `limit` has passed.
inline bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return done();
}

}  // namespace chat::test
