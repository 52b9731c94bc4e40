// Script mode (stdout is not a terminal) sanitises the network's text too: a FakeServer sends
// escape sequences and control characters; chatclient's stdout must hold none of them.
#include "tests/client/fake_server.hpp"
#include "tests/support/chatclient_args.hpp"
#include "tests/support/process.hpp"

#include <catch2/catch.hpp>

using namespace std::chrono_literals;
using chat::test::chatclient_args;
using chat::test::FakeServer;
using chat::test::Stream;
using chat::test::Subprocess;

TEST_CASE("chatclient script mode prints no escape sequence from the server", "[chatclient][sanitize]") {
  FakeServer server;
  Subprocess client(chatclient_args(server.port(), "alice"));
  auto conn = server.accept_and_join("alice", {"bob"}, 5000ms);
  REQUIRE(conn);
  REQUIRE(client.wait_for_line(Stream::out, "*** online (2): alice bob", 5000ms));
  REQUIRE(conn->send_raw("MSG bob a\x1b[2J\x1b]0;title\x07" "b\xC2\x9B" "2Jc\xE2\x80\xAE" "d\n"));
  REQUIRE(conn->send_raw("FROB \x1b[31mx\n"));
  const std::string r = "\xEF\xBF\xBD";
  auto line = client.read_line(Stream::out, 5000ms);
  REQUIRE(line);
  CHECK(line->substr(11) == "<bob> a" + r + r + "b" + r + "c" + r + "d");
  line = client.read_line(Stream::out, 5000ms);
  REQUIRE(line);
  CHECK(line->substr(11) == "*** unrecognised line from server: FROB " + r + "x");
  client.close_stdin();
  CHECK(client.wait_exit(5000ms) == 0);
}
