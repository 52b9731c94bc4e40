// FakeServer: a scripted stand-in for chatserver, so chatclient can be tested before (and
// independently of) the real server.
//
// Threads: the test thread creates it, drives it and destroys it; nothing runs in the
// background. The script is the test body itself: accept() waits (poll with a deadline) for the
// client's connection, which the kernel has queued on the listen backlog in the meantime, and
// the returned LineClient sends and expects lines. Keeping the script on the test thread lets
// it use Catch2's REQUIRE, which is not thread safe.
#pragma once

#include "tests/support/line_client.hpp"

#include <asio.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace chat::test {

// "@<id>/<time_ms> <line>": a line with the tag a server with ids puts before room events.
std::string tagged(std::uint64_t id, const std::string& line, std::int64_t time_ms = 1'700'000'000'000);

// A resume token of the server's shape (32 lowercase hex digits), different for each `n`.
std::string test_token(int n);

class FakeServer {
 public:
  // Listens on 127.0.0.1, port 0 (the kernel picks one; see port()).
  FakeServer();

  std::uint16_t port() const { return port_; }

  // The next connection, or nullptr if none arrived within `timeout`.
  std::unique_ptr<LineClient> accept(std::chrono::milliseconds timeout);

  // accept(), the greeting, then expects "HELLO <nick> ids" (chatclient always asks for ids)
  // and answers WELCOME and "USERS <nick> <others...>", as a server that ignores ids would:
  // no TOKEN, no history. nullptr if any step did not happen in time.
  std::unique_ptr<LineClient> accept_and_join(const std::string& nick, const std::vector<std::string>& others,
                                              std::chrono::milliseconds timeout);

  // The same as a server with ids answers (docs/protocol.md, "Ids, resume and history"):
  // WELCOME, "TOKEN <token> 120" (none when `token` is empty), USERS, then the recent block
  // "HISTORY recent <n>", the lines of `recent` as given (tag them with tagged()), "HISTORY END
  // recent".
  std::unique_ptr<LineClient> accept_and_join_ids(const std::string& nick, const std::vector<std::string>& others,
                                                  const std::string& token, const std::vector<std::string>& recent,
                                                  std::chrono::milliseconds timeout);

 private:
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
};

}  // namespace chat::test
