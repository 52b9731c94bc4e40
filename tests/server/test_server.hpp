// TestServer and client helpers for the chatserver integration tests: a real chat::Server
// in this process, on 127.0.0.1 port 0, and LineClients talking to it over real sockets.
//
// Threads: the test thread creates, drives and destroys all of these. Catch2 v2 assertions
// are not thread safe, so the helpers that REQUIRE/CHECK may only be called from the test
// thread; a test that needs concurrent peers gives each std::jthread its own LineClient and
// checks the results on the test thread after joining.
//
// Waiting: every helper waits for a line (or for the close) with a deadline, never by
// sleeping. io_timeout is generous because CI runs these on 2 busy cores, also under
// ThreadSanitizer and ASan; a passing test never waits for it to expire.
#pragma once

#include "common/log.hpp"
#include "common/render.hpp"
#include "server/config.hpp"
#include "server/server.hpp"
#include "tests/support/line_client.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace chat::test {

// True in the sanitizer builds (CHAT_SANITIZED_BUILD, tests/server/CMakeLists.txt): tests scale
// their client and message counts down there.
#ifdef CHAT_SANITIZED_BUILD
inline constexpr bool sanitized = true;
#else
inline constexpr bool sanitized = false;
#endif

// The most any single expected line or close may take. Only a failing test waits this long.
inline constexpr std::chrono::milliseconds io_timeout{5000};

// A started chat::Server on 127.0.0.1 with a kernel-chosen port; stop()ped and destroyed
// (every thread joined) when the fixture goes out of scope, whatever the test did.
class TestServer {
 public:
  // The defaults of ServerConfig with the test's fixed parts: loopback only, port 0, warnings
  // and errors only in the log. Tests adjust other fields and pass the result in.
  static ServerConfig config() {
    ServerConfig c;
    c.bind = "127.0.0.1";
    c.port = 0;
    c.log_level = LogLevel::warn;
    // A newcomer is not shown the recent history (--history 0): most tests compare a client's
    // stream line by line from its join; the tests of history and resume set it themselves.
    c.history = 0;
    return c;
  }

  explicit TestServer(ServerConfig c = config()) {
    c.bind = "127.0.0.1";  // never anything but loopback, never a fixed port
    c.port = 0;
    c.log_level = LogLevel::warn;
    set_log_level(LogLevel::warn);
    server_ = std::make_unique<Server>(std::move(c));
    port_ = server_->local_endpoint().port();
    server_->start();
  }
  ~TestServer() { destroy(); }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  std::uint16_t port() const { return port_; }
  Server& server() { return *server_; }

  // Server::stop(): every client gets BYE shutdown. Idempotent.
  void stop() {
    if (server_) server_->stop();
  }

  // stop() and destroy the server. Only ~Server joins the transcript's writer thread, so a
  // test reads the log file after this, not merely after stop().
  void destroy() {
    if (!server_) return;
    server_->stop();
    server_.reset();
  }

 private:
  std::unique_ptr<Server> server_;
  std::uint16_t port_ = 0;
};

// The next line from `c`; fails the test if none arrives within io_timeout.
inline std::string next_line(LineClient& c) {
  auto line = c.read_line(io_timeout);
  INFO("no line within " << io_timeout.count() << " ms"
                         << (c.closed() ? " (connection closed: " + c.read_error().message() + ")" : std::string()));
  REQUIRE(line.has_value());
  return *line;
}

// Skips lines until one starts with `prefix`; fails the test (showing what was seen) if none
// does within io_timeout.
inline std::string expect_prefix(LineClient& c, std::string_view prefix) {
  std::string seen;
  auto line = c.expect_line([prefix](const std::string& l) { return l.starts_with(prefix); }, io_timeout, &seen);
  INFO("waiting for a line starting with \"" << prefix << "\"; saw:\n" << seen);
  REQUIRE(line.has_value());
  return *line;
}

// Reads until the server closes the connection; fails the test if it does not.
inline void require_closed(LineClient& c) {
  INFO("the server did not close the connection within " << io_timeout.count() << " ms");
  REQUIRE(c.wait_closed(io_timeout));
}

// Connects and reads the greeting (one line starting with '#').
inline std::unique_ptr<LineClient> connect_client(std::uint16_t port) {
  auto c = std::make_unique<LineClient>(port);
  const auto greeting = next_line(*c);
  INFO("greeting: " << greeting);
  REQUIRE(greeting.starts_with("#"));
  return c;
}

// Connects and sends HELLO <nick> at once, as chatclient does, then reads the greeting, WELCOME
// <nick> and the USERS line (which must list `nick`). The client is then a protocol-mode member
// with nothing unread. (A client that waits for the greeting first waits WebDoor's 100 ms, the
// time a browser gets to speak first: tests that join hundreds do not wait for it.)
inline std::unique_ptr<LineClient> connect_and_join(std::uint16_t port, const std::string& nick) {
  auto c = std::make_unique<LineClient>(port);
  REQUIRE(c->send_line("HELLO " + nick));
  const auto greeting = next_line(*c);
  INFO("greeting: " << greeting);
  REQUIRE(greeting.starts_with("#"));
  CHECK(next_line(*c) == "WELCOME " + nick);
  const auto users = next_line(*c);
  INFO("USERS line: " << users);
  REQUIRE(users.starts_with("USERS "));
  CHECK((" " + users + " ").find(" " + nick + " ") != std::string::npos);
  return c;
}

// Protocol mode: sends PING and reads up to its PONG, so everything the server had queued for
// `c` before that has been read. A close() right after then sends a FIN; Linux sends an RST
// instead when a socket is closed with unread data, and the server would rightly see "reset".
inline void drain(LineClient& c) {
  static int counter = 0;
  const std::string token = "drain-" + std::to_string(++counter);
  REQUIRE(c.send_line("PING " + token));
  expect_prefix(c, "PONG " + token);
}

// ---- text mode -----------------------------------------------------------------------------

// True if `text` starts with `shape`, where each '9' in `shape` stands for one ASCII digit
// and every other character for itself: starts_with_shape(line, "[99:99:99] ").
inline bool starts_with_shape(std::string_view text, std::string_view shape) {
  if (text.size() < shape.size()) return false;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const bool ok = shape[i] == '9' ? (text[i] >= '0' && text[i] <= '9') : text[i] == shape[i];
    if (!ok) return false;
  }
  return true;
}

// "[14:02:09] <alice> hi" -> "<alice> hi"; nullopt if the line has no [HH:MM:SS] stamp.
inline std::optional<std::string> unstamp(const std::string& line) {
  constexpr std::string_view stamp = "[99:99:99] ";
  if (!starts_with_shape(line, stamp)) return std::nullopt;
  const int hh = std::stoi(line.substr(1, 2)), mm = std::stoi(line.substr(4, 2)), ss = std::stoi(line.substr(7, 2));
  if (hh > 23 || mm > 59 || ss > 60) return std::nullopt;
  return line.substr(stamp.size());
}

// The next line from a text-mode client, without its stamp; fails the test if the line is
// missing or not stamped.
inline std::string next_text(LineClient& c) {
  const auto line = next_line(c);
  const auto body = unstamp(line);
  INFO("line without a [HH:MM:SS] stamp: " << line);
  REQUIRE(body.has_value());
  return *body;
}

// Connects like nc would, reads the greeting, types `nick`, and reads the welcome and the
// online list (which must list `nick`).
inline std::unique_ptr<LineClient> connect_text(std::uint16_t port, const std::string& nick) {
  auto c = connect_client(port);
  REQUIRE(c->send_line(nick));
  CHECK(next_text(*c) == "*** welcome, " + nick + " (type /help for commands)");
  const auto online = next_text(*c);
  INFO("online line: " << online);
  REQUIRE(online.starts_with("*** online ("));
  CHECK((online + " ").find(" " + nick + " ") != std::string::npos);
  return c;
}

}  // namespace chat::test
