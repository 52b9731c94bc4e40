#include "server/flood_control.hpp"

#include <algorithm>

namespace chat {

FloodControl::FloodControl(double rate, double burst, Clock::duration grace, Clock::time_point now)
    : rate_(rate), burst_(std::max(burst, 1.0)), grace_(grace), tokens_(burst_), last_(now) {}

FloodControl::Verdict FloodControl::take(Clock::time_point now) {
  if (now > last_) {
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
    last_ = now;
  }
  tokens_ -= 1;
  if (tokens_ >= 0) {
    slowed_since_.reset();  // a line that did not have to wait: the client is within the limit
    return {};
  }
  // Over the limit: the line waits until its token has been earned.
  const auto wait = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(-tokens_ / rate_));
  if (!slowed_since_) slowed_since_ = now;
  return {std::max(wait, Clock::duration(1)), now - *slowed_since_ > grace_};
}

}  // namespace chat
