// The backplane's Redis connection (server/redis.hpp): the --redis URL, and a RedisConnection
// against Debian's real redis-server, started by the test in a directory of its own (unix
// socket, and a 127.0.0.1 port where TCP matters) and stopped by pid.
#include "server/redis.hpp"
#include "tests/support/redis_process.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <poll.h>

#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using chat::parse_redis_url;
using chat::RedisConnection;
using chat::RedisError;
using chat::RedisValue;
using chat::test::RedisProcess;
using chat::test::TempDir;

namespace {

constexpr chat::Millis kTimeout{5000};

std::string parse_error(const std::string& url) {
  try {
    parse_redis_url(url);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(accepted)";
}

std::string connect_error(const chat::RedisUrl& url, chat::Millis timeout = kTimeout) {
  try {
    RedisConnection c(url, timeout);
  } catch (const RedisError& e) {
    return e.what();
  }
  return "(connected)";
}

}  // namespace

TEST_CASE("redis URL: TCP, password, user, database, IPv6, unix socket", "[redis]") {
  auto u = parse_redis_url("redis://127.0.0.1:6390/2");
  CHECK(u.host == "127.0.0.1");
  CHECK(u.port == 6390);
  CHECK(u.db == 2);
  CHECK(u.password.empty());
  CHECK(u.unix_path.empty());

  u = parse_redis_url("redis://redis.lan");
  CHECK(u.host == "redis.lan");
  CHECK(u.port == 6379);
  CHECK(u.db == 0);

  u = parse_redis_url("redis://:s%40cret@10.0.0.5:6379/0");
  CHECK(u.password == "s@cret");
  CHECK(u.user.empty());
  CHECK(u.display() == "redis://:***@10.0.0.5:6379/0");

  u = parse_redis_url("redis://chat:pw@host/");
  CHECK(u.user == "chat");
  CHECK(u.password == "pw");
  CHECK(u.display() == "redis://chat:***@host:6379/0");

  u = parse_redis_url("redis://secret@host:7000");
  CHECK(u.password == "secret");
  CHECK(u.port == 7000);

  u = parse_redis_url("redis://[::1]:6380/1");
  CHECK(u.host == "::1");
  CHECK(u.port == 6380);
  CHECK(u.display() == "redis://[::1]:6380/1");

  u = parse_redis_url("unix:///run/redis/redis.sock");
  CHECK(u.unix_path == "/run/redis/redis.sock");
  CHECK(u.host.empty());
  CHECK(u.display() == "unix:///run/redis/redis.sock");

  u = parse_redis_url("unix:///tmp/r.sock?db=3&password=p%26q");
  CHECK(u.db == 3);
  CHECK(u.password == "p&q");
  CHECK(u.display() == "unix:///tmp/r.sock?db=3&password=***");
}

TEST_CASE("redis URL: each mistake says what is wrong", "[redis]") {
  CHECK_THAT(parse_error("localhost:6379"), Catch::Contains("must start with redis:// or unix://"));
  CHECK_THAT(parse_error("rediss://host"), Catch::Contains("built without TLS"));
  CHECK_THAT(parse_error("redis://host:99999"), Catch::Contains("port '99999' is not a number from 1 to 65535"));
  CHECK_THAT(parse_error("redis://host:0"), Catch::Contains("port '0'"));
  CHECK_THAT(parse_error("redis://host:"), Catch::Contains("empty port"));
  CHECK_THAT(parse_error("redis://host/x"), Catch::Contains("database 'x'"));
  CHECK_THAT(parse_error("redis://:6379"), Catch::Contains("no host"));
  CHECK_THAT(parse_error("redis://:@host"), Catch::Contains("password before '@' is empty"));
  CHECK_THAT(parse_error("redis://:a%4@host"), Catch::Contains("two hex digits"));
  CHECK_THAT(parse_error("redis://[::1:6379"), Catch::Contains("'[' without ']'"));
  CHECK_THAT(parse_error("unix://relative.sock"), Catch::Contains("absolute path"));
  CHECK_THAT(parse_error("unix:///r.sock?color=red"), Catch::Contains("unknown parameter 'color=red'"));
}

TEST_CASE("redis: a real redis-server on a unix socket: commands, binary-safe values, error replies", "[redis]") {
  REQUIRE(RedisProcess::available());  // the README's test command installs redis-server
  TempDir dir("chat_redis");
  RedisProcess redis(dir.path());
  RedisConnection c(parse_redis_url(redis.unix_url()), kTimeout, "chat-test");

  CHECK(c.command({"PING"}, kTimeout).str == "PONG");
  const std::string value("a\0b\r\nc", 6);
  CHECK(c.command({"SET", "k", value}, kTimeout).str == "OK");
  const auto got = c.command({"GET", "k"}, kTimeout);
  CHECK(got.type == RedisValue::Type::string);
  CHECK(got.str == value);
  CHECK(c.command({"GET", "missing"}, kTimeout).is_nil());

  // A refused command is a value, and the connection goes on.
  const auto refused = c.command({"INCR", "k"}, kTimeout);
  CHECK(refused.is_error());
  CHECK_THAT(refused.str, Catch::Contains("not an integer"));
  CHECK(c.command({"INCR", "n"}, kTimeout).integer == 1);

  const auto list = c.command({"CLIENT", "LIST"}, kTimeout);
  CHECK_THAT(list.str, Catch::Contains("name=chat-test"));

  // Nested arrays (XRANGE), as the backplane reads streams.
  c.command({"XADD", "s", "*", "e", "one"}, kTimeout);
  c.command({"XADD", "s", "*", "e", "two"}, kTimeout);
  const auto range = c.command({"XRANGE", "s", "-", "+"}, kTimeout);
  REQUIRE(range.type == RedisValue::Type::array);
  REQUIRE(range.elements.size() == 2);
  CHECK(range.elements[1].elements[1].elements[1].str == "two");
}

TEST_CASE("redis: pipelined commands from a poll loop come back whole and in order", "[redis]") {
  REQUIRE(RedisProcess::available());
  TempDir dir("chat_redis");
  RedisProcess redis(dir.path());
  RedisConnection c(parse_redis_url(redis.unix_url()), kTimeout);

  constexpr int n = 20000;
  const std::string payload(200, 'x');  // 4 MB in all: more than one socket buffer each way
  for (int i = 0; i < n; ++i) c.append({"RPUSH", "list", payload + std::to_string(i)});
  CHECK(c.in_flight() == static_cast<std::size_t>(n));
  long long last = 0;
  int replies = 0;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  bool written = false;
  while (replies < n && std::chrono::steady_clock::now() < deadline) {
    if (!written) written = c.flush();
    REQUIRE_FALSE(c.broken());
    pollfd p{c.fd(), static_cast<short>(POLLIN | (written ? 0 : POLLOUT)), 0};
    ::poll(&p, 1, 1000);
    if ((p.revents & POLLIN) != 0) REQUIRE(c.read_some());
    while (auto reply = c.next_reply()) {
      REQUIRE(reply->type == RedisValue::Type::integer);
      CHECK(reply->integer == last + 1);  // each RPUSH answers the list's new length: in order
      last = reply->integer;
      ++replies;
    }
  }
  CHECK(replies == n);
  CHECK(c.in_flight() == 0);
  CHECK(c.command({"LINDEX", "list", "-1"}, kTimeout).str == payload + std::to_string(n - 1));
}

TEST_CASE("redis: TCP with a password: AUTH, SELECT, and the password never in a message", "[redis]") {
  REQUIRE(RedisProcess::available());
  TempDir dir("chat_redis");
  RedisProcess redis(dir.path(), chat::test::free_tcp_port(), "hunter2");

  auto url = parse_redis_url(redis.tcp_url() + "/3");
  {
    RedisConnection c(url, kTimeout);
    CHECK(c.command({"SET", "where", "db3"}, kTimeout).str == "OK");
  }
  url.db = 0;
  {
    RedisConnection c(url, kTimeout);
    CHECK(c.command({"GET", "where"}, kTimeout).is_nil());  // another database
  }
  url.password = "wrong-one";
  const auto wrong = connect_error(url);
  CHECK_THAT(wrong, Catch::Contains("AUTH refused"));
  CHECK_THAT(wrong, Catch::Contains("redis://:***@127.0.0.1:"));
  CHECK_THAT(wrong, !Catch::Contains("wrong-one"));

  url.password.clear();
  RedisConnection no_auth(url, kTimeout);  // connects; the first command is refused
  CHECK_THAT(no_auth.command({"PING"}, kTimeout).str, Catch::Contains("NOAUTH"));
}

TEST_CASE("redis: refused, hung and killed servers give one clear error within the deadline", "[redis]") {
  REQUIRE(RedisProcess::available());
  TempDir dir("chat_redis");

  // Nobody on that port / socket.
  const auto port = chat::test::free_tcp_port();
  CHECK_THAT(connect_error(parse_redis_url("redis://127.0.0.1:" + std::to_string(port))),
             Catch::Contains("redis://127.0.0.1:" + std::to_string(port) + "/0: Connection refused"));
  CHECK_THAT(connect_error(parse_redis_url("unix://" + (dir.path() / "none.sock").string())),
             Catch::Contains("No such file"));

  RedisProcess redis(dir.path());
  const auto url = parse_redis_url(redis.unix_url());
  {
    // SIGSTOP: the socket stays open and nothing answers. The command gives up at its deadline.
    RedisConnection c(url, kTimeout);
    redis.pause();
    const auto start = std::chrono::steady_clock::now();
    try {
      c.command({"PING"}, chat::Millis(300));
      FAIL("a stopped redis-server answered");
    } catch (const RedisError& e) {
      CHECK_THAT(e.what(), Catch::Contains("no reply within 300 ms"));
    }
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK(took >= 300ms);
    CHECK(took < 5s);
    CHECK(c.broken());
    redis.resume();
  }
  {
    RedisConnection c(url, kTimeout);
    CHECK(c.command({"PING"}, kTimeout).str == "PONG");
    redis.kill();
    try {
      c.command({"PING"}, kTimeout);
      FAIL("a killed redis-server answered");
    } catch (const RedisError& e) {
      CHECK_THAT(e.what(), Catch::Contains("unix://"));
    }
    CHECK(c.broken());
  }
  // Started again on the same socket: a new connection works (the backplane reconnects).
  redis.start();
  RedisConnection again(url, kTimeout);
  CHECK(again.command({"PING"}, kTimeout).str == "PONG");
}
