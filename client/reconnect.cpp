#include "client/reconnect.hpp"

#include "common/text.hpp"

#include <algorithm>
#include <random>

namespace chat {

Backoff::Backoff(BackoffConfig config, Random random) : config_(config), random_(std::move(random)) {
  if (!random_) {
    random_ = [engine = std::mt19937(std::random_device{}())]() mutable {
      return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
    };
  }
}

Millis Backoff::base() const {
  Millis base = config_.initial;
  // Doubling stops at the cap, so this never overflows however many failures there were.
  for (int i = 0; i < failures_ && base < config_.cap; ++i) base *= 2;
  return std::min(base, config_.cap);
}

Millis Backoff::next() {
  const Millis b = base();
  ++failures_;
  const double r = std::clamp(random_(), 0.0, 1.0);
  const auto cut = static_cast<Millis::rep>(static_cast<double>(b.count()) * config_.jitter * r);
  return Millis{b.count() - cut};
}

void Backoff::reset() { failures_ = 0; }

std::string ghost_nick(std::string_view nick, int n) {
  if (n <= 0) return std::string(nick);
  const std::string suffix = n == 1 ? "_" : "_" + std::to_string(n);
  const std::size_t keep = std::min(nick.size(), max_nick_length - suffix.size());
  return std::string(nick.substr(0, keep)) + suffix;
}

}  // namespace chat
