// FloodControl: how fast one client may send lines (--max-rate, --max-burst, --flood-grace).
//
// A token bucket: the client may send --max-burst lines at once, then --max-rate lines per
// second. The reader thread asks before it handles each line; a line over the limit is not
// refused, it waits: the reader sleeps, the client's next bytes wait in its own socket, and
// TCP's flow control slows the sender. Nobody else is slowed, and no line is lost. A client
// that is slowed without a break for --flood-grace (it keeps sending faster than the rate,
// whatever the burst allowed) is told to leave with cause `flood`.
//
// With the defaults (20/s, burst 50, grace 10 s) a paste of 250 lines at once passes (50 at
// once, 200 over 10 s); a script at twice the rate leaves after 12.5 s (2.5 s of burst, then
// 10 s slowed), one at 1.1 times after 35 s.
//
// Pure arithmetic on the times it is given, so the unit tests need no clock.
// Threads: one client's reader thread only.
#pragma once

#include <chrono>
#include <optional>

namespace chat {

class FloodControl {
 public:
  using Clock = std::chrono::steady_clock;

  // What the reader does with the next line.
  struct Verdict {
    Clock::duration wait{};  // sleep this long first (zero: handle it now)
    bool flood = false;      // slowed without a break for longer than the grace: end the client
  };

  // rate > 0 lines/s, burst >= 1 lines.
  FloodControl(double rate, double burst, Clock::duration grace, Clock::time_point now);

  // Takes the next line's token at `now`. The token is taken even when the verdict is to wait:
  // after sleeping `wait`, the reader handles the line without asking again.
  Verdict take(Clock::time_point now);

  // Since when the client has been slowed without a break (nullopt: it is not being slowed).
  std::optional<Clock::time_point> slowed_since() const { return slowed_since_; }

 private:
  const double rate_;
  const double burst_;
  const Clock::duration grace_;
  double tokens_;            // may be negative by less than one: the token the last wait pays for
  Clock::time_point last_;   // when tokens_ was last brought up to date
  std::optional<Clock::time_point> slowed_since_;
};

}  // namespace chat
