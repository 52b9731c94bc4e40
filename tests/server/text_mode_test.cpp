// Text mode (issue #2): a client like nc or telnet whose first line is not HELLO types its
// nickname, gets every room event rendered "[HH:MM:SS] ...", and types plain lines and
// /commands. A real chat::Server on 127.0.0.1:0; the text clients are LineClients that send
// what a person would type. next_text() checks and strips the [HH:MM:SS] stamp.
#include "tests/server/test_server.hpp"

#include "common/render.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace chat::test;

namespace {

// The room most tests here need: alice and bob on text mode (as with nc), carol on protocol
// mode, everyone's join notices already read.
struct ThreeInRoom {
  TestServer server;
  std::unique_ptr<chat::test::LineClient> alice = connect_text(server.port(), "alice");
  std::unique_ptr<chat::test::LineClient> bob = connect_text(server.port(), "bob");
  std::unique_ptr<chat::test::LineClient> carol = connect_and_join(server.port(), "carol");

  ThreeInRoom() {
    CHECK(next_text(*alice) == "*** bob joined (2 online)");
    CHECK(next_text(*alice) == "*** carol joined (3 online)");
    CHECK(next_text(*bob) == "*** carol joined (3 online)");
  }
};

}  // namespace

TEST_CASE("text mode: the first line is the nickname, welcome and online list", "[text]") {
  TestServer server;
  auto c = connect_client(server.port());
  REQUIRE(c->send_line("alice"));
  CHECK(next_text(*c) == "*** welcome, alice (type /help for commands)");
  CHECK(next_text(*c) == "*** online (1): alice");

  auto bob = connect_client(server.port());
  REQUIRE(bob->send_line("bob"));
  CHECK(next_text(*bob) == "*** welcome, bob (type /help for commands)");
  CHECK(next_text(*bob) == "*** online (2): alice bob");
}

TEST_CASE("text mode: CR LF line endings and an empty first line are accepted", "[text]") {
  TestServer server;
  auto c = connect_client(server.port());
  REQUIRE(c->send_raw("\r\nalice\r\n"));  // telnet-style
  CHECK(next_text(*c) == "*** welcome, alice (type /help for commands)");
  CHECK(next_text(*c) == "*** online (1): alice");
  REQUIRE(c->send_raw("hi there\r\n"));
  CHECK(next_text(*c) == "<alice> hi there");
}

TEST_CASE("text mode: joins render with the room size", "[text]") {
  TestServer server;
  auto alice = connect_text(server.port(), "alice");
  auto carol = connect_and_join(server.port(), "carol");  // protocol and text clients share a room
  CHECK(next_text(*alice) == "*** carol joined (2 online)");
  auto bob = connect_text(server.port(), "bob");
  CHECK(next_text(*alice) == "*** bob joined (3 online)");
  CHECK(next_line(*carol) == "JOIN bob");
}

TEST_CASE_METHOD(ThreeInRoom, "text mode: a plain line is SAY, rendered <nick> text", "[text]") {

  REQUIRE(alice->send_line("hello"));
  CHECK(next_text(*alice) == "<alice> hello");  // the sender too
  CHECK(next_text(*bob) == "<alice> hello");
  CHECK(next_line(*carol) == "MSG alice hello");  // protocol clients get the protocol line

  REQUIRE(carol->send_line("SAY hi from the protocol side"));
  CHECK(next_text(*alice) == "<carol> hi from the protocol side");
  CHECK(next_text(*bob) == "<carol> hi from the protocol side");
}

TEST_CASE("text mode: /me renders * nick action", "[text]") {
  TestServer server;
  auto alice = connect_text(server.port(), "alice");
  auto bob = connect_text(server.port(), "bob");
  CHECK(next_text(*alice) == "*** bob joined (2 online)");

  REQUIRE(alice->send_line("/me waves"));
  CHECK(next_text(*alice) == "* alice waves");
  CHECK(next_text(*bob) == "* alice waves");
}

TEST_CASE("text mode: /msg and @nick send a private message only to the two of them", "[text]") {
  TestServer server;
  auto alice = connect_text(server.port(), "alice");
  auto bob = connect_text(server.port(), "bob");
  auto carol = connect_text(server.port(), "carol");
  CHECK(next_text(*alice) == "*** bob joined (2 online)");
  CHECK(next_text(*alice) == "*** carol joined (3 online)");
  CHECK(next_text(*bob) == "*** carol joined (3 online)");

  SECTION("/msg") {
    REQUIRE(alice->send_line("/msg bob psst"));
  }
  SECTION("@nick") {
    REQUIRE(alice->send_line("@bob psst"));
  }
  CHECK(next_text(*alice) == "[private] alice -> bob: psst");
  CHECK(next_text(*bob) == "[private] alice -> bob: psst");

  // carol's next line is the later public marker: she never got the private one.
  REQUIRE(alice->send_line("marker"));
  CHECK(next_text(*carol) == "<alice> marker");
  CHECK(next_text(*bob) == "<alice> marker");
  CHECK(next_text(*alice) == "<alice> marker");
}

TEST_CASE("text mode: a private message to an unknown nick is an error", "[text][errors]") {
  TestServer server;
  auto alice = connect_text(server.port(), "alice");
  REQUIRE(alice->send_line("/msg zed hello?"));
  CHECK(next_text(*alice).starts_with("*** nobody called zed is online"));
  REQUIRE(alice->send_line("@zed hello?"));
  CHECK(next_text(*alice).starts_with("*** nobody called zed is online"));
}

TEST_CASE_METHOD(ThreeInRoom, "text mode: /nick renders is now known as", "[text]") {

  REQUIRE(alice->send_line("/nick alicia"));
  CHECK(next_text(*alice) == "*** alice is now known as alicia");
  CHECK(next_text(*bob) == "*** alice is now known as alicia");
  CHECK(next_line(*carol) == "NICK alice alicia");

  REQUIRE(alice->send_line("now as alicia"));
  CHECK(next_text(*bob) == "<alicia> now as alicia");

  REQUIRE(bob->send_line("/nick ALICIA"));
  CHECK(next_text(*bob).starts_with("*** the nickname ALICIA is taken"));
  REQUIRE(bob->send_line("/nick b@d"));
  CHECK(next_text(*bob).starts_with("*** that nickname is not allowed: b@d"));
}

TEST_CASE("text mode: /who renders *** online (N): a b", "[text]") {
  TestServer server;
  auto alice = connect_text(server.port(), "alice");
  auto bob = connect_and_join(server.port(), "bob");
  auto zoe = connect_text(server.port(), "Zoe");
  CHECK(next_text(*alice) == "*** bob joined (2 online)");
  CHECK(next_text(*alice) == "*** Zoe joined (3 online)");

  REQUIRE(alice->send_line("/who"));
  CHECK(next_text(*alice) == "*** online (3): alice bob Zoe");
  // Only the asker: zoe's next line is the marker.
  REQUIRE(alice->send_line("marker"));
  CHECK(next_text(*zoe) == "<alice> marker");
}

TEST_CASE("text mode: /help lists the commands", "[text]") {
  TestServer server;
  auto alice = connect_text(server.port(), "alice");
  REQUIRE(alice->send_line("/help"));
  // Stamped like every other line the room shows.
  for (const auto& h : chat::help_lines()) CHECK(next_text(*alice) == h);
  REQUIRE(alice->send_line("after help"));
  CHECK(next_text(*alice) == "<alice> after help");
}

TEST_CASE_METHOD(ThreeInRoom, "text mode: /quit closes, the others see 'bob left (reason)'", "[text]") {

  REQUIRE(bob->send_line("/quit gone fishing"));
  // nc stays open after the server's FIN: the last line says how to leave it.
  CHECK(next_text(*bob) == "*** you left; press Ctrl-C");
  require_closed(*bob);
  CHECK(bob->read_error() == asio::error::eof);
  CHECK(next_text(*alice) == "*** bob left (gone fishing) (2 online)");
  CHECK(next_line(*carol) == "LEAVE bob quit gone fishing");

  REQUIRE(alice->send_line("/quit"));
  CHECK(next_text(*alice) == "*** you left; press Ctrl-C");
  require_closed(*alice);
  const auto leave = next_line(*carol);
  CHECK(leave.starts_with("LEAVE alice quit"));
}

TEST_CASE("text mode: at shutdown the last line says the server has stopped and how to close nc", "[text]") {
  TestServer server;
  auto alice = connect_text(server.port(), "alice");
  server.stop();
  CHECK(next_text(*alice) == "*** the server has stopped; press Ctrl-C");
  require_closed(*alice);
}

TEST_CASE("text mode: a peer that closes shows as 'bob's connection closed'", "[text]") {
  TestServer server;
  auto alice = connect_text(server.port(), "alice");
  auto bob = connect_text(server.port(), "bob");
  CHECK(next_text(*alice) == "*** bob joined (2 online)");

  bob->close();
  const auto left = next_text(*alice);
  INFO(left);
  // The detail (which thread noticed, when) stays in the protocol's LEAVE line.
  CHECK(left == "*** bob's connection closed (1 online)");
}

TEST_CASE("text mode: a bad or taken nickname is refused and may be retyped", "[text][errors]") {
  TestServer server;
  auto alice = connect_text(server.port(), "alice");
  auto c = connect_client(server.port());

  REQUIRE(c->send_line("b@d nick"));
  CHECK(next_text(*c).starts_with("*** that nickname is not allowed: b@d nick"));
  CHECK(next_line(*c).starts_with("# "));  // the prompt to type another one

  REQUIRE(c->send_line("ALICE"));
  CHECK(next_text(*c) == "*** the nickname ALICE is taken");
  CHECK(next_line(*c).starts_with("# "));

  REQUIRE(c->send_line("/who"));  // commands other than /help and /quit need a nickname first
  CHECK(next_text(*c).starts_with("*** not in the room yet"));

  REQUIRE(c->send_line("bob"));
  CHECK(next_text(*c) == "*** welcome, bob (type /help for commands)");
  CHECK(next_text(*c) == "*** online (2): alice bob");
  CHECK(next_text(*alice) == "*** bob joined (2 online)");  // one join, none for the failures
}

TEST_CASE("text mode: /help and /quit work before a nickname", "[text]") {
  TestServer server;
  auto c = connect_client(server.port());
  REQUIRE(c->send_line("/help"));
  for (const auto& h : chat::help_lines()) CHECK(next_text(*c) == h);
  REQUIRE(c->send_line("/quit"));
  CHECK(next_text(*c) == "*** you left; press Ctrl-C");
  require_closed(*c);
}

TEST_CASE("text mode: errors are rendered and the connection goes on", "[text][errors]") {
  TestServer server;
  auto alice = connect_text(server.port(), "alice");
  auto bob = connect_text(server.port(), "bob");
  CHECK(next_text(*alice) == "*** bob joined (2 online)");

  REQUIRE(alice->send_line("/frob"));
  CHECK(next_text(*alice).starts_with("*** unknown command: /frob"));
  REQUIRE(alice->send_line("/me"));
  CHECK(next_text(*alice).starts_with("*** usage: "));
  REQUIRE(alice->send_line("bad \xFF byte"));
  CHECK(next_text(*alice).starts_with("*** not sent: the line is not valid UTF-8"));
  REQUIRE(alice->send_line("bell \x07"));
  CHECK(next_text(*alice).starts_with("*** not sent: the line contains a control character"));
  REQUIRE(alice->send_line(""));  // pressing Enter: no error, nothing said

  REQUIRE(alice->send_line("still here"));
  CHECK(next_text(*alice) == "<alice> still here");
  CHECK(next_text(*bob) == "<alice> still here");  // bob saw none of the refused lines
}
