// Deadlines for the test helpers' poll(2) waits. Pure functions; any thread.
#pragma once

#include <chrono>

namespace chat::test {

// Milliseconds left until `deadline` as poll(2) wants them, never negative.
inline int millis_until(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

}  // namespace chat::test
