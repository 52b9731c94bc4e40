// Bans: the operators' BAN (docs/protocol.md, "Operators"). A ban is a nickname, and the address
// it was connected from when it was banned (none when it was not connected here), until a time.
//
//   the door     Listener (listener thread): for_address(), before anything else is spent on a
//                connection: BYE banned until 14:05
//   the handshake Commands (reader threads): for_nick() and for_address() at HELLO, RESUME,
//                a text-mode nickname and NICK: ERROR banned bob until 14:05
//   operators    Commands (reader threads): add(), lift_nick(), lift_address(), list()
//
// Expired bans are let go of lazily: every call first drops the bans whose time is up (a map
// walk, done only when the soonest one is over), so no thread keeps time for them. At most
// max_bans are held; add() refuses more (a replaced ban does not count twice).
//
// Kept in the database through the Archive (ban_set, ban_lifted: O(1), no I/O; the archive
// thread writes them with its next batch), and taken back from it at start: a restarted server
// keeps its bans. With --db none they live in memory only.
//
// Times are wall-clock (std::chrono::system_clock): a ban is shown as "until 14:05" and survives
// a restart. Every call takes `now`, so that tests need no sleeping.
//
// Threads: created by the Room's constructor (main thread); every method may be called from any
// thread. mutex_ guards every member but archive_ (set once); it is held for map work only, and
// under it only Archive::mutex_ is taken (ban_set, ban_lifted), never the room's lock: the order
// is Bans::mutex_ -> Archive::mutex_.
#pragma once

#include "server/archive.hpp"

#include <asio/ip/address.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chat {

class Bans {
 public:
  using WallClock = std::chrono::system_clock;
  static constexpr std::size_t max_bans = 10'000;

  // Takes the bans `archive` kept from the last run (those not yet over), and hands every later
  // change to it.
  explicit Bans(Archive& archive);
  Bans(const Bans&) = delete;
  Bans& operator=(const Bans&) = delete;

  // Bans `ban.nick` (and `ban.address`, unless "") until `ban.until_ms`; a nickname already
  // banned gets this ban instead. full: max_bans are held (none was over).
  enum class Added { added, replaced, full };
  Added add(BanRecord ban, WallClock::time_point now = WallClock::now());

  // UNBAN: the bans lifted, by nickname (empty: nothing matched).
  std::vector<BanRecord> lift_nick(std::string_view nick, WallClock::time_point now = WallClock::now());
  std::vector<BanRecord> lift_address(const asio::ip::address& address, WallClock::time_point now = WallClock::now());

  // The ban of this nickname (ignoring case), or of this address (the one that ends last), if
  // there is one now.
  std::optional<BanRecord> for_nick(std::string_view nick, WallClock::time_point now = WallClock::now());
  std::optional<BanRecord> for_address(const asio::ip::address& address, WallClock::time_point now = WallClock::now());

  // Every ban now, by nickname (ignoring case).
  std::vector<BanRecord> list(WallClock::time_point now = WallClock::now());
  std::size_t size(WallClock::time_point now = WallClock::now());

  // ---- words (pure; any thread) --------------------------------------------------------------
  // An address as bans keep it: an IPv4 address on a dual-stack socket (::ffff:10.0.0.5) is
  // "10.0.0.5".
  static std::string address_text(const asio::ip::address& address);
  // When a ban ends, in the server's local time, rounded up to the minute (nobody is told a
  // minute that has passed while they are still banned): "14:05" today, "2026-12-09 14:05"
  // another day.
  static std::string until_text(std::int64_t until_ms, WallClock::time_point now);
  // A ban in one line: "bob 10.0.0.5 until 14:05 by alice: flooding"; `no_address` stands
  // where the address is unknown.
  static std::string describe(const BanRecord& ban, WallClock::time_point now,
                              std::string_view no_address = "(no address)");

 private:
  // mutex_ held: lets go of the bans that are over (only when the soonest one is).
  void expire_locked(std::int64_t now_ms);
  // mutex_ held: removes the ban of `key` (fold_nick) from both maps.
  void erase_locked(const std::string& key);

  Archive& archive_;  // set once
  std::mutex mutex_;
  std::map<std::string, BanRecord> by_nick_;            // guarded by mutex_: fold_nick -> its ban
  std::multimap<std::string, std::string> by_address_;  // guarded by mutex_: address_text -> fold_nick
  std::int64_t soonest_ms_ = INT64_MAX;                 // guarded by mutex_: no ban ends before this
};

}  // namespace chat
