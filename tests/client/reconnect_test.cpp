// Unit tests of client/reconnect.hpp: the backoff schedule with an injected random source.
#include "client/reconnect.hpp"

#include <catch2/catch.hpp>

using chat::Backoff;
using chat::BackoffConfig;
using chat::ghost_nick;
using chat::Millis;

TEST_CASE("backoff without jitter doubles from 1 s to a 30 s cap", "[reconnect]") {
  Backoff b(BackoffConfig{}, [] { return 0.0; });  // r = 0: exactly the base
  const long expected[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
  for (long ms : expected) CHECK(b.next() == Millis{ms});
  CHECK(b.failures() == 8);
}

TEST_CASE("backoff jitter stays within [75%, 100%] of the base", "[reconnect]") {
  Backoff low(BackoffConfig{}, [] { return 0.999999; });
  CHECK(low.next() == Millis{751});  // 1000 - floor(1000 * 0.25 * 0.999999)
  CHECK(low.next() == Millis{1501});
  double r = 0.5;
  Backoff half(BackoffConfig{}, [&] { return r; });
  CHECK(half.next() == Millis{875});
  CHECK(half.next() == Millis{1750});
  r = 0.0;
  CHECK(half.next() == Millis{4000});
  // Never above the cap, whatever the random source says (out-of-range values are clamped).
  Backoff wild(BackoffConfig{}, [] { return -5.0; });
  for (int i = 0; i < 100; ++i) CHECK(wild.next() <= Millis{30'000});
}

TEST_CASE("backoff with the default random source is spread and bounded", "[reconnect]") {
  Backoff b;
  for (int i = 0; i < 50; ++i) {
    const Millis base = b.base();
    const Millis d = b.next();
    CHECK(d <= base);
    CHECK(d >= base * 3 / 4);
  }
}

TEST_CASE("backoff reset starts again from the initial delay", "[reconnect]") {
  Backoff b(BackoffConfig{}, [] { return 0.0; });
  b.next();
  b.next();
  b.next();
  CHECK(b.base() == Millis{8000});
  b.reset();
  CHECK(b.failures() == 0);
  CHECK(b.next() == Millis{1000});
}

TEST_CASE("backoff honours its configuration", "[reconnect]") {
  Backoff b(BackoffConfig{Millis{100}, Millis{350}, 0.0}, [] { return 0.9; });
  CHECK(b.next() == Millis{100});
  CHECK(b.next() == Millis{200});
  CHECK(b.next() == Millis{350});
  CHECK(b.next() == Millis{350});
}

TEST_CASE("ghost nicknames add a suffix and stay valid", "[reconnect]") {
  CHECK(ghost_nick("alice", 0) == "alice");
  CHECK(ghost_nick("alice", 1) == "alice_");
  CHECK(ghost_nick("alice", 2) == "alice_2");
  const std::string long_nick(24, 'x');
  CHECK(ghost_nick(long_nick, 1) == std::string(23, 'x') + "_");
  CHECK(ghost_nick(long_nick, 12) == std::string(21, 'x') + "_12");
}
