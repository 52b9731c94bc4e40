#include "server/bans.hpp"

#include "common/text.hpp"

#include <algorithm>
#include <ctime>

namespace chat {
namespace {

std::int64_t unix_ms(Bans::WallClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

}  // namespace

Bans::Bans(Archive& archive) : archive_(archive) {
  const auto now_ms = unix_ms(WallClock::now());
  std::lock_guard lock(mutex_);
  for (const auto& ban : archive.bans_at_start()) {
    if (ban.until_ms <= now_ms || by_nick_.size() >= max_bans) {
      archive_.ban_lifted(ban.nick);
      continue;
    }
    const auto key = fold_nick(ban.nick);
    by_nick_.emplace(key, ban);
    if (!ban.address.empty()) by_address_.emplace(ban.address, key);
    soonest_ms_ = std::min(soonest_ms_, ban.until_ms);
  }
}

void Bans::erase_locked(const std::string& key) {
  const auto it = by_nick_.find(key);
  if (it == by_nick_.end()) return;
  if (!it->second.address.empty()) {
    auto [from, to] = by_address_.equal_range(it->second.address);
    for (auto a = from; a != to; ++a) {
      if (a->second == key) {
        by_address_.erase(a);
        break;
      }
    }
  }
  archive_.ban_lifted(it->second.nick);
  by_nick_.erase(it);
}

void Bans::expire_locked(std::int64_t now_ms) {
  if (now_ms < soonest_ms_) return;
  soonest_ms_ = INT64_MAX;
  for (auto it = by_nick_.begin(); it != by_nick_.end();) {
    const auto next = std::next(it);
    if (it->second.until_ms <= now_ms) {
      erase_locked(it->first);
    } else {
      soonest_ms_ = std::min(soonest_ms_, it->second.until_ms);
    }
    it = next;
  }
}

Bans::Added Bans::add(BanRecord ban, WallClock::time_point now) {
  const auto key = fold_nick(ban.nick);
  std::lock_guard lock(mutex_);
  expire_locked(unix_ms(now));
  const bool replacing = by_nick_.contains(key);
  if (!replacing && by_nick_.size() >= max_bans) return Added::full;
  if (replacing) erase_locked(key);
  archive_.ban_set(ban);
  if (!ban.address.empty()) by_address_.emplace(ban.address, key);
  soonest_ms_ = std::min(soonest_ms_, ban.until_ms);
  by_nick_.emplace(key, std::move(ban));
  return replacing ? Added::replaced : Added::added;
}

std::vector<BanRecord> Bans::lift_nick(std::string_view nick, WallClock::time_point now) {
  const auto key = fold_nick(nick);
  std::lock_guard lock(mutex_);
  expire_locked(unix_ms(now));
  const auto it = by_nick_.find(key);
  if (it == by_nick_.end()) return {};
  std::vector<BanRecord> lifted{it->second};
  erase_locked(key);
  return lifted;
}

std::vector<BanRecord> Bans::lift_address(const asio::ip::address& address, WallClock::time_point now) {
  const auto text = address_text(address);
  std::lock_guard lock(mutex_);
  expire_locked(unix_ms(now));
  std::vector<std::string> keys;
  auto [from, to] = by_address_.equal_range(text);
  for (auto a = from; a != to; ++a) keys.push_back(a->second);
  std::sort(keys.begin(), keys.end());
  std::vector<BanRecord> lifted;
  for (const auto& key : keys) {
    lifted.push_back(by_nick_.at(key));
    erase_locked(key);
  }
  return lifted;
}

std::optional<BanRecord> Bans::for_nick(std::string_view nick, WallClock::time_point now) {
  const auto key = fold_nick(nick);
  std::lock_guard lock(mutex_);
  expire_locked(unix_ms(now));
  const auto it = by_nick_.find(key);
  if (it == by_nick_.end()) return std::nullopt;
  return it->second;
}

std::optional<BanRecord> Bans::for_address(const asio::ip::address& address, WallClock::time_point now) {
  const auto text = address_text(address);
  std::lock_guard lock(mutex_);
  expire_locked(unix_ms(now));
  auto [from, to] = by_address_.equal_range(text);
  const BanRecord* last = nullptr;
  for (auto a = from; a != to; ++a) {
    const BanRecord& ban = by_nick_.at(a->second);
    if (last == nullptr || ban.until_ms > last->until_ms) last = &ban;
  }
  if (last == nullptr) return std::nullopt;
  return *last;
}

std::vector<BanRecord> Bans::list(WallClock::time_point now) {
  std::lock_guard lock(mutex_);
  expire_locked(unix_ms(now));
  std::vector<BanRecord> out;
  out.reserve(by_nick_.size());
  for (const auto& [key, ban] : by_nick_) out.push_back(ban);
  return out;
}

std::size_t Bans::size(WallClock::time_point now) {
  std::lock_guard lock(mutex_);
  expire_locked(unix_ms(now));
  return by_nick_.size();
}

std::string Bans::address_text(const asio::ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).to_string();
  }
  return address.to_string();
}

std::string Bans::until_text(std::int64_t until_ms, WallClock::time_point now) {
  // Rounded up to the minute: "until 14:05" is never a minute that has passed while the ban holds.
  constexpr std::int64_t minute_ms = 60'000;
  const std::int64_t rounded_ms = until_ms <= 0 ? 0 : (until_ms + minute_ms - 1) / minute_ms * minute_ms;
  const std::time_t until = static_cast<std::time_t>(rounded_ms / 1000);
  const std::time_t today = WallClock::to_time_t(now);
  std::tm until_local{};
  std::tm now_local{};
  localtime_r(&until, &until_local);
  localtime_r(&today, &now_local);
  const bool same_day = until_local.tm_year == now_local.tm_year && until_local.tm_yday == now_local.tm_yday;
  char buf[32];
  std::strftime(buf, sizeof buf, same_day ? "%H:%M" : "%Y-%m-%d %H:%M", &until_local);
  return buf;
}

std::string Bans::describe(const BanRecord& ban, WallClock::time_point now, std::string_view no_address) {
  std::string out = ban.nick + " " + (ban.address.empty() ? std::string(no_address) : ban.address) + " until " +
                    until_text(ban.until_ms, now) + " by " + ban.by;
  if (!ban.reason.empty()) out += ": " + ban.reason;
  return out;
}

}  // namespace chat
