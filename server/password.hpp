// The room password (--password-file, docs/protocol.md "Room password"): kept as an scrypt hash,
// never in the clear, and the slowing down of an address that keeps guessing.
//
// The hash is scrypt (RFC 7914) from OpenSSL's libcrypto, in one line:
//   $scrypt$ln=15,r=8,p=1$<salt, base64>$<key, base64>
// ln is log2 of scrypt's N. `chatserver --hash-password` writes one. Checking a password costs
// what scrypt costs (about 100 ms and 32 MiB at ln=15); so that a class of 300 joining at once,
// or 10,000 clients reconnecting after a restart, do not pay it each, the last password that
// matched is remembered as an HMAC-SHA-256 under a key made at start-up: the same password
// again is checked against that in constant time. A wrong password always costs the scrypt.
//
// Threads: hash_password() and parse_password_hash() anywhere. RoomPassword::check() and
// Guesses from any reader thread: each has one mutex, held only for a copy or a map update
// (never during scrypt).
#pragma once

#include "common/units.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace chat {

struct PasswordHash {
  unsigned log2_n = 15;  // scrypt N = 2^log2_n
  unsigned r = 8;
  unsigned p = 1;
  std::string salt;  // raw bytes
  std::string key;   // raw bytes: scrypt(password, salt)
};

// A new hash of `password`, with a random salt, in the one-line form above. Throws
// std::runtime_error if OpenSSL fails (no randomness, no memory).
std::string hash_password(std::string_view password, unsigned log2_n = 15);
// nullopt (and `error` says why) if `text` (one line, the newline trimmed) is not such a hash;
// the error for what looks like a password in the clear says so.
std::optional<PasswordHash> parse_password_hash(std::string_view text, std::string* error = nullptr);

class RoomPassword {
 public:
  explicit RoomPassword(PasswordHash hash);
  RoomPassword(const RoomPassword&) = delete;
  RoomPassword& operator=(const RoomPassword&) = delete;

  // True if `password` is the room's. Any thread; may take ~100 ms (scrypt).
  bool check(std::string_view password);

 private:
  std::array<unsigned char, 32> mac(std::string_view password) const;

  const PasswordHash hash_;
  std::array<unsigned char, 32> mac_key_{};  // random, made in the constructor; then read-only
  std::mutex mutex_;
  std::optional<std::array<unsigned char, 32>> known_;  // guarded by mutex_: mac() of the last match
};

// Wrong passwords per address: each failure from an address makes its next answer wait longer
// (1 s, 2 s, 4 s, ... at most 16 s), whichever connection it comes on; a success or 10 minutes
// without a failure forgets it. At most 4096 addresses are remembered (the oldest go first).
class Guesses {
 public:
  // How long an answer to `address` waits now (0 if it has no recent failures).
  Millis delay(const std::string& address);
  void failed(const std::string& address);
  void succeeded(const std::string& address);

 private:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    unsigned failures = 0;
    Clock::time_point last{};
  };
  static constexpr std::size_t max_addresses = 4096;
  std::mutex mutex_;
  std::map<std::string, Entry> entries_;  // guarded by mutex_
};

}  // namespace chat
