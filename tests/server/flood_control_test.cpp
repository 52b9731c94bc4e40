// FloodControl (server/flood_control.hpp) on its own: the token bucket's arithmetic, with the
// times given by the test, so nothing here waits.
#include "server/flood_control.hpp"

#include <catch2/catch.hpp>

#include <chrono>

using chat::FloodControl;
using namespace std::chrono_literals;

namespace {

// Lines sent back to back at `at`: how many may go without waiting (the first that must wait
// has taken its token too, as the reader's next line would).
int free_lines(FloodControl& f, FloodControl::Clock::time_point at, int tries,
               FloodControl::Verdict* first_slowed = nullptr) {
  int n = 0;
  for (int i = 0; i < tries; ++i) {
    const auto v = f.take(at);
    if (v.wait != FloodControl::Clock::duration::zero()) {
      if (first_slowed) *first_slowed = v;
      break;
    }
    ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("flood control: a burst goes at once, then the rate, and a pause refills it", "[flood]") {
  const auto t0 = FloodControl::Clock::time_point{} + 1h;
  FloodControl f(20, 50, 10s, t0);
  FloodControl::Verdict v;
  CHECK(free_lines(f, t0, 100, &v) == 50);
  // The 51st line waits for its token: 1/20 s.
  CHECK_FALSE(v.flood);
  CHECK(v.wait > 40ms);
  CHECK(v.wait <= 50ms);
  CHECK(f.slowed_since() == t0);
  // Having waited, the next line at exactly the rate waits again: still slowed.
  v = f.take(t0 + 50ms);
  CHECK(v.wait > 40ms);
  CHECK(f.slowed_since() == t0);
  // A pause of 2.6 s refills the whole burst (and no more), and the first line ends the slowing.
  const auto later = t0 + 50ms + 2600ms;
  CHECK(f.take(later).wait == FloodControl::Clock::duration::zero());
  CHECK_FALSE(f.slowed_since());
  CHECK(free_lines(f, later, 100) == 49);
}

TEST_CASE("flood control: slowed without a break for longer than the grace is a flood", "[flood]") {
  const auto t0 = FloodControl::Clock::time_point{} + 1h;
  FloodControl f(10, 5, 2s, t0);
  REQUIRE(free_lines(f, t0, 5) == 5);
  // Twice the rate: one line every 50 ms, each waiting; the reader sleeps the wait, so the next
  // take comes after it. The verdict turns to flood once 2 s have passed since the first wait.
  auto now = t0;
  bool flood = false;
  int lines = 0;
  while (!flood && lines < 1000) {
    const auto v = f.take(now);
    flood = v.flood;
    now += std::max<FloodControl::Clock::duration>(v.wait, 50ms);
    ++lines;
  }
  REQUIRE(flood);
  CHECK(now - t0 > 2s);
  CHECK(now - t0 < 2500ms);
}

TEST_CASE("flood control: a sender within the rate is never slowed", "[flood]") {
  const auto t0 = FloodControl::Clock::time_point{} + 1h;
  FloodControl f(20, 1, 1s, t0);
  for (int i = 1; i <= 200; ++i) {
    const auto v = f.take(t0 + i * 51ms);
    REQUIRE(v.wait == FloodControl::Clock::duration::zero());
    REQUIRE_FALSE(v.flood);
  }
}

TEST_CASE("flood control: a paste of burst + rate x grace lines passes", "[flood]") {
  // The defaults' promise in docs/protocol.md: 250 lines at once with 20/s, burst 50, grace
  // 10 s are slowed but never a flood; the reader handles each as soon as its token allows.
  const auto t0 = FloodControl::Clock::time_point{} + 1h;
  FloodControl f(20, 50, 10s, t0);
  auto now = t0;
  for (int i = 0; i < 250; ++i) {
    const auto v = f.take(now);
    REQUIRE_FALSE(v.flood);
    now += v.wait;
  }
  CHECK(now - t0 >= 9900ms);
  CHECK(now - t0 <= 10s);
}
