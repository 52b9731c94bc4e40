// The reconnect schedule: exponential backoff with jitter, and the nicknames to try when ours
// is still held by our own ghost (the server has not noticed the old connection is gone).
//
// Pure and deterministic given its random source: tests inject one. Not thread safe; one
// Backoff belongs to chatclient's network thread (client/link.hpp).
#pragma once

#include "common/units.hpp"

#include <functional>
#include <string>
#include <string_view>

namespace chat {

struct BackoffConfig {
  Millis initial{1'000};  // the first delay
  Millis cap{30'000};     // delays double up to this
  // Each delay is drawn uniformly from [base * (1 - jitter), base], base = min(initial * 2^n,
  // cap): never above the schedule, so a crowd of clients that lost the same server does not
  // come back in lock step, and nobody waits longer than the cap.
  double jitter = 0.25;
};

class Backoff {
 public:
  // Returns a number in [0, 1).
  using Random = std::function<double()>;

  // `random` defaults to a std::mt19937 seeded from std::random_device.
  explicit Backoff(BackoffConfig config = {}, Random random = {});

  // The delay before the next attempt; each call doubles the base (up to the cap).
  Millis next();
  // The connection worked (we joined): the next failure starts from `initial` again.
  void reset();
  // Attempts scheduled since the last reset().
  int failures() const { return failures_; }
  // The base delay (before jitter) that next() will use.
  Millis base() const;

 private:
  BackoffConfig config_;
  Random random_;
  int failures_ = 0;
};

// The nickname to try on attempt `n` (0: `nick` itself) when rejoining finds it taken:
// "alice", "alice_", "alice_2", "alice_3", ...; shortened so it stays a valid nickname
// (at most 24 characters).
std::string ghost_nick(std::string_view nick, int n);

}  // namespace chat
