// Redis: one connection to a redis-server, for the backplane that lets several chatservers
// serve one room (docs/scale-out.md). A thin layer over Debian's hiredis 0.14: hiredis writes
// and parses the protocol (RESP); this file adds what the backplane needs around it:
//
//   - the URL of --redis: redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N]
//     (Debian's hiredis 0.14 is built without TLS: there is no rediss://);
//   - connecting with a deadline, AUTH and SELECT, TCP keepalive and TCP_USER_TIMEOUT (the same
//     detectors chatserver sets on its clients), and one clear line when any of it fails;
//   - replies copied into a plain value tree (RedisValue), so no hiredis pointer outlives a call;
//   - non-blocking use from a poll loop: append() queues commands, flush() writes what the
//     socket takes, read_some() reads what has arrived, next_reply() hands out whole replies.
//     command() is the same thing with a deadline, for a caller that can wait.
//
// Threads: a RedisConnection is used by one thread at a time (the backplane thread owns its
// connections; a test may use one from its own thread). Nothing in it is shared.
//
// Every wait has a deadline, and every buffer a limit: a reply larger than max_reply_bytes (or
// a Redis that stops answering mid-reply) breaks the connection with a clear error instead of
// growing without bound.
#pragma once

#include "common/units.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

struct redisContext;

namespace chat {

// Where the backplane's Redis is (--redis).
struct RedisUrl {
  std::string host;            // empty for a unix socket
  std::uint16_t port = 6379;
  std::string unix_path;       // empty for TCP
  std::string user;            // Redis 6 ACL user; empty: AUTH with the password alone
  std::string password;        // empty: no AUTH
  int db = 0;                  // SELECTed when not 0

  // The URL as it may be printed: the password is never shown ("redis://:***@host:6379/0").
  std::string display() const;
};

// Parses --redis. Throws std::invalid_argument with the reason ("redis URL: port 99999 is out
// of range (1-65535)"). Percent-escapes (%40) in the user and password are decoded.
RedisUrl parse_redis_url(std::string_view url);

// A connection that cannot be made or used: one line with the URL (without its password) and
// what went wrong ("redis://127.0.0.1:6390/0: Connection refused").
class RedisError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One Redis reply, owned. An error reply is a value too (type error, its message in str): the
// caller decides what a refused command means.
struct RedisValue {
  enum class Type { nil, integer, string, status, error, array };
  Type type = Type::nil;
  long long integer = 0;
  std::string str;                   // string, status or error
  std::vector<RedisValue> elements;  // array

  bool is_error() const { return type == Type::error; }
  bool is_nil() const { return type == Type::nil; }
  // "OK" for +OK, "(nil)", "(error) ERR ...", "[1, \"a\"]": for messages and tests.
  std::string describe() const;
};

class RedisConnection {
 public:
  static constexpr std::size_t max_reply_bytes = 64 * 1024 * 1024;

  // Connects (within `timeout`), enables keepalive and TCP_USER_TIMEOUT on TCP, sends AUTH and
  // SELECT when the URL asks for them, and names the connection (CLIENT SETNAME `name`, shown
  // in CLIENT LIST; empty: not named). Throws RedisError.
  RedisConnection(const RedisUrl& url, Millis timeout, std::string_view name = {});
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Sends one command and waits at most `timeout` for its reply (any replies to commands
  // appended before it are read and dropped first: use this on a connection with nothing in
  // flight). Throws RedisError if the connection breaks or the time runs out.
  RedisValue command(const std::vector<std::string>& argv, Millis timeout);

  // The poll loop's side. append() queues a command; flush() writes what the socket takes now
  // (true: nothing left to write); read_some() reads what has arrived (call it when fd() is
  // readable; false: the connection was closed or broke, see error()); next_reply() returns a
  // whole reply if one has arrived, in the order the commands were appended.
  void append(const std::vector<std::string>& argv);
  bool flush();
  bool read_some();
  std::optional<RedisValue> next_reply();
  // Commands appended whose replies have not been taken yet.
  std::size_t in_flight() const { return in_flight_; }

  int fd() const;
  bool broken() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& where() const { return where_; }  // the URL without its password

 private:
  void fail(const std::string& what);  // records the first error: the connection is unusable

  redisContext* context_ = nullptr;
  std::string where_;
  std::string error_;
  std::size_t in_flight_ = 0;
};

}  // namespace chat
