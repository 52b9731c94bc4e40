// Script mode (stdout is not a terminal) and a server that goes away: by default chatclient
// says so and exits 1; with --reconnect it says so, reconnects with backoff once a chatserver
// listens on the same port again, rejoins, and carries on. A real chatserver
// (tests/process/server_process.hpp), restarted on the port the first one was given.
//
// Waits are for lines, connections and exits, each with a deadline (kWait, generous: CI has two
// busy cores and the backoff starts at 1 s doubling); nothing sleeps.
#include "tests/process/server_process.hpp"
#include "tests/support/chatclient_args.hpp"
#include "tests/support/line_client.hpp"
#include "tests/support/process.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <memory>

using namespace std::chrono_literals;
using chat::test::chatclient_args;
using chat::test::LineClient;
using chat::test::ServerProcess;
using chat::test::Stream;
using chat::test::Subprocess;

namespace {

constexpr auto kWait = 10000ms;

// Stops `server` politely (SIGTERM, by pid) and waits for its exit.
void stop(std::unique_ptr<ServerProcess>& server) {
  REQUIRE(server->process().signal(SIGTERM));
  REQUIRE(server->process().wait_exit(kWait) == 0);
  server.reset();
}

}  // namespace

TEST_CASE("chatclient script mode without --reconnect exits 1 when the server goes", "[chatclient][reconnect]") {
  auto server = std::make_unique<ServerProcess>();
  Subprocess client(chatclient_args(server->port(), "alice"));
  std::string seen;
  REQUIRE(client.wait_for_line(Stream::out, "*** welcome, alice", kWait, &seen));
  stop(server);
  CHECK(client.wait_for_line(Stream::out, "*** disconnected: the server has stopped", kWait,
                             &seen));
  INFO("chatclient said:\n" << seen);
  CHECK(client.wait_exit(kWait) == 1);
}

TEST_CASE("chatclient script mode with --reconnect rejoins a server restarted on the same port",
          "[chatclient][reconnect]") {
  auto server = std::make_unique<ServerProcess>();
  const std::uint16_t port = server->port();
  Subprocess client(chatclient_args(port, "alice", {"--reconnect"}));
  std::string seen;
  REQUIRE(client.wait_for_line(Stream::out, "*** welcome, alice", kWait, &seen));

  stop(server);
  REQUIRE(client.wait_for_line(Stream::out, "*** disconnected: the server has stopped", kWait,
                               &seen));
  REQUIRE(client.wait_for_line(Stream::out, "*** reconnecting in ", kWait, &seen));
  CHECK_FALSE(client.wait_exit(0ms));  // still running, waiting to try again
  // A line typed during the outage is held and sent after the rejoin.
  REQUIRE(client.write("typed while away\n"));

  Subprocess again({CHATSERVER_PATH, "--bind", "127.0.0.1", "--port", std::to_string(port), "--db", "none"});
  REQUIRE(again.wait_for_line(Stream::err, "chatserver listening on", kWait));
  // 1 s doubling: at most about 1 + 2 + 4 s after the loss.
  const bool rejoined = client.wait_for_line(
      Stream::out, "*** reconnected to 127.0.0.1:" + std::to_string(port) + ", rejoined as alice", kWait, &seen);
  INFO("chatclient said:\n" << seen);
  REQUIRE(rejoined);
  REQUIRE(client.wait_for_line(Stream::out, "*** online (1): alice", kWait, &seen));

  // Typed lines flow again, and events come back.
  REQUIRE(client.wait_for_line(Stream::out, "<alice> typed while away", kWait, &seen));
  LineClient bob(port);
  REQUIRE(bob.send_line("HELLO bob"));
  REQUIRE(bob.expect_line("USERS alice bob", kWait));
  CHECK(client.wait_for_line(Stream::out, "*** bob joined (2 online)", kWait, &seen));
  REQUIRE(client.write("hello again\n"));
  CHECK(bob.expect_line("MSG alice hello again", kWait));
  REQUIRE(bob.send_line("SAY welcome back"));
  CHECK(client.wait_for_line(Stream::out, "<bob> welcome back", kWait, &seen));

  // stdin EOF still ends it politely with 0.
  client.close_stdin();
  CHECK(client.wait_exit(kWait) == 0);
  CHECK(bob.expect_line("LEAVE alice quit", kWait));
  again.signal(SIGTERM);
  again.wait_exit(kWait);
}

TEST_CASE("chatclient script mode with --reconnect exits 0 when stdin ends during an outage",
          "[chatclient][reconnect]") {
  auto server = std::make_unique<ServerProcess>();
  Subprocess client(chatclient_args(server->port(), "alice", {"--reconnect"}));
  std::string seen;
  REQUIRE(client.wait_for_line(Stream::out, "*** welcome, alice", kWait, &seen));
  stop(server);
  REQUIRE(client.wait_for_line(Stream::out, "*** reconnecting in ", kWait, &seen));
  // No server will come back; the script is done: chatclient must not retry forever.
  client.close_stdin();
  const auto code = client.wait_exit(kWait);
  INFO("chatclient said:\n" << seen);
  CHECK(code == 0);
}
