// Protocol mode, row by row (issue #2): what each client line makes the server send, to whom,
// and every ERROR code. A real chat::Server on 127.0.0.1:0, protocol clients on real sockets.
//
// Absence ("nobody else saw it") is proven without waiting for a timeout: after the event
// under test, a later marker message goes through the room, and the client that must not have
// seen the event gets the marker as its very next line. The room delivers in one order, so
// anything it had been sent would have come first.
#include "tests/server/test_server.hpp"

#include "common/render.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace chat::test;

TEST_CASE("the greeting is one line starting with #, then HELLO joins", "[protocol]") {
  TestServer server;
  chat::test::LineClient c(server.port());
  const auto greeting = next_line(c);
  CHECK(greeting.starts_with("#"));
  REQUIRE(c.send_line("HELLO alice"));
  // The very next line: no second greeting line came before the answer.
  CHECK(next_line(c) == "WELCOME alice");
  CHECK(next_line(c) == "USERS alice");
}

TEST_CASE("HELLO: WELCOME and USERS to the joiner (itself included), JOIN to the others", "[protocol]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  auto carol = connect_and_join(server.port(), "carol");
  CHECK(next_line(*alice) == "JOIN carol");

  auto bob = connect_client(server.port());
  REQUIRE(bob->send_line("HELLO Bob"));
  CHECK(next_line(*bob) == "WELCOME Bob");
  CHECK(next_line(*bob) == "USERS alice Bob carol");  // sorted ignoring case, the joiner included
  CHECK(next_line(*alice) == "JOIN Bob");
  CHECK(next_line(*carol) == "JOIN Bob");
}

TEST_CASE("verbs are case-insensitive", "[protocol]") {
  TestServer server;
  auto c = connect_client(server.port());
  REQUIRE(c->send_line("hello alice"));
  CHECK(next_line(*c) == "WELCOME alice");
  CHECK(next_line(*c) == "USERS alice");
  REQUIRE(c->send_line("say hi"));
  CHECK(next_line(*c) == "MSG alice hi");
}

TEST_CASE("SAY reaches everyone, the sender included", "[protocol]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_and_join(server.port(), "bob");
  CHECK(next_line(*alice) == "JOIN bob");

  REQUIRE(alice->send_line("SAY hello  world, with  spacing"));
  CHECK(next_line(*alice) == "MSG alice hello  world, with  spacing");
  CHECK(next_line(*bob) == "MSG alice hello  world, with  spacing");

  SECTION("UTF-8 text and TAB are allowed") {
    REQUIRE(bob->send_line("SAY gr\xC3\xBC\xC3\x9F" "e\tund \xE2\x82\xAC \xF0\x9F\x98\x80"));
    const std::string expected = "MSG bob gr\xC3\xBC\xC3\x9F" "e\tund \xE2\x82\xAC \xF0\x9F\x98\x80";
    CHECK(next_line(*alice) == expected);
    CHECK(next_line(*bob) == expected);
  }
}

TEST_CASE("ME reaches everyone as ME <nick> <text>", "[protocol]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_and_join(server.port(), "bob");
  CHECK(next_line(*alice) == "JOIN bob");

  REQUIRE(alice->send_line("ME waves"));
  CHECK(next_line(*alice) == "ME alice waves");
  CHECK(next_line(*bob) == "ME alice waves");
}

TEST_CASE("PRIV reaches only sender and recipient", "[protocol]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_and_join(server.port(), "bob");
  auto carol = connect_and_join(server.port(), "carol");
  CHECK(next_line(*alice) == "JOIN bob");
  CHECK(next_line(*alice) == "JOIN carol");
  CHECK(next_line(*bob) == "JOIN carol");

  REQUIRE(alice->send_line("PRIV bob psst, a secret"));
  CHECK(next_line(*alice) == "PRIV alice bob psst, a secret");
  CHECK(next_line(*bob) == "PRIV alice bob psst, a secret");

  // The marker goes to everyone after the PRIV: carol's next line is the marker, so she was
  // not sent the PRIV.
  REQUIRE(alice->send_line("SAY marker"));
  CHECK(next_line(*carol) == "MSG alice marker");
  CHECK(next_line(*alice) == "MSG alice marker");
  CHECK(next_line(*bob) == "MSG alice marker");
}

TEST_CASE("PRIV to an unknown nick: ERROR no-such-nick, to the sender only", "[protocol][errors]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_and_join(server.port(), "bob");
  CHECK(next_line(*alice) == "JOIN bob");

  REQUIRE(alice->send_line("PRIV zed hello?"));
  CHECK(next_line(*alice) == "ERROR no-such-nick zed");
  REQUIRE(alice->send_line("PRIV b@d hello?"));  // not even a possible nickname
  CHECK(next_line(*alice) == "ERROR no-such-nick b@d");
  REQUIRE(alice->send_line("SAY marker"));
  CHECK(next_line(*bob) == "MSG alice marker");
  CHECK(next_line(*alice) == "MSG alice marker");
}

TEST_CASE("NICK: everyone gets NICK <old> <new>, errors as for HELLO", "[protocol]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_and_join(server.port(), "bob");
  CHECK(next_line(*alice) == "JOIN bob");

  REQUIRE(alice->send_line("NICK alicia"));
  CHECK(next_line(*alice) == "NICK alice alicia");
  CHECK(next_line(*bob) == "NICK alice alicia");

  // The new name is used from then on, and the old one is free.
  REQUIRE(alice->send_line("SAY renamed"));
  CHECK(next_line(*bob) == "MSG alicia renamed");
  CHECK(next_line(*alice) == "MSG alicia renamed");
  REQUIRE(bob->send_line("WHO"));
  CHECK(next_line(*bob) == "USERS alicia bob");
  auto again = connect_and_join(server.port(), "alice");
  CHECK(next_line(*bob) == "JOIN alice");
  CHECK(next_line(*alice) == "JOIN alice");

  SECTION("taken, ignoring case: ERROR nick-in-use, name unchanged") {
    REQUIRE(bob->send_line("NICK ALICIA"));
    CHECK(next_line(*bob) == "ERROR nick-in-use ALICIA");
    REQUIRE(bob->send_line("SAY still bob"));
    CHECK(next_line(*bob) == "MSG bob still bob");
    CHECK(next_line(*alice) == "MSG bob still bob");  // and alice saw no NICK
  }
  SECTION("bad nickname: ERROR bad-nick, name unchanged") {
    REQUIRE(bob->send_line("NICK b@d"));
    CHECK(next_line(*bob).starts_with("ERROR bad-nick b@d"));
    REQUIRE(bob->send_line("NICK " + std::string(25, 'x')));
    CHECK(next_line(*bob).starts_with("ERROR bad-nick " + std::string(25, 'x')));
    REQUIRE(bob->send_line("NICK"));
    CHECK(next_line(*bob).starts_with("ERROR bad-nick"));
    REQUIRE(bob->send_line("SAY still bob"));
    CHECK(next_line(*bob) == "MSG bob still bob");
    CHECK(next_line(*alice) == "MSG bob still bob");
  }
}

TEST_CASE("WHO answers USERS with everyone, to the asker only", "[protocol]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_and_join(server.port(), "bob");
  auto zoe = connect_and_join(server.port(), "Zoe");
  CHECK(next_line(*alice) == "JOIN bob");
  CHECK(next_line(*alice) == "JOIN Zoe");
  CHECK(next_line(*bob) == "JOIN Zoe");

  REQUIRE(bob->send_line("WHO"));
  CHECK(next_line(*bob) == "USERS alice bob Zoe");
  REQUIRE(bob->send_line("SAY marker"));
  CHECK(next_line(*alice) == "MSG bob marker");
  CHECK(next_line(*zoe) == "MSG bob marker");
}

TEST_CASE("PING gets PONG with the token, PONG gets nothing", "[protocol]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");

  REQUIRE(alice->send_line("PING t-123"));
  CHECK(next_line(*alice) == "PONG t-123");
  // PONG is answered by nothing: the next line is the answer to the PING sent after it.
  REQUIRE(alice->send_line("PONG p1"));
  REQUIRE(alice->send_line("PING t-456"));
  CHECK(next_line(*alice) == "PONG t-456");
}

TEST_CASE("QUIT: BYE quit and close, the others get LEAVE <nick> quit <reason>", "[protocol]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_and_join(server.port(), "bob");
  CHECK(next_line(*alice) == "JOIN bob");

  SECTION("with a reason") {
    REQUIRE(bob->send_line("QUIT gone fishing"));
    CHECK(next_line(*bob) == "BYE quit");
    require_closed(*bob);
    CHECK(bob->read_error() == asio::error::eof);
    CHECK(next_line(*alice) == "LEAVE bob quit gone fishing");
  }
  SECTION("without a reason") {
    REQUIRE(bob->send_line("QUIT"));
    CHECK(next_line(*bob) == "BYE quit");
    require_closed(*bob);
    const auto leave = next_line(*alice);
    CHECK((leave == "LEAVE bob quit" || leave == "LEAVE bob quit "));
  }
  // bob is gone from the room.
  REQUIRE(alice->send_line("WHO"));
  CHECK(next_line(*alice) == "USERS alice");
}

TEST_CASE("HELP answers # lines", "[protocol]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  REQUIRE(alice->send_line("HELP"));
  for (const auto& h : chat::help_lines()) CHECK(next_line(*alice) == "# " + h);
  REQUIRE(alice->send_line("PING end"));
  CHECK(next_line(*alice) == "PONG end");
}

// ---- handshake failures and retries ---------------------------------------------------------

TEST_CASE("HELLO with a bad nickname: ERROR bad-nick, and the client may retry", "[protocol][errors]") {
  TestServer server;
  auto c = connect_client(server.port());

  REQUIRE(c->send_line("HELLO " + std::string(25, 'a')));  // 25 > 24 characters
  CHECK(next_line(*c).starts_with("ERROR bad-nick " + std::string(25, 'a')));
  REQUIRE(c->send_line("HELLO b@d"));
  CHECK(next_line(*c).starts_with("ERROR bad-nick b@d"));
  REQUIRE(c->send_line("HELLO caf\xC3\xA9"));  // not ASCII
  CHECK(next_line(*c).starts_with("ERROR bad-nick"));
  REQUIRE(c->send_line("HELLO"));
  CHECK(next_line(*c).starts_with("ERROR bad-nick"));

  // Every allowed character, 24 of them: accepted.
  const std::string longest = "Az09_!-abcdefghijklmnopq";
  REQUIRE(longest.size() == 24);
  REQUIRE(c->send_line("HELLO " + longest));
  CHECK(next_line(*c) == "WELCOME " + longest);
  CHECK(next_line(*c) == "USERS " + longest);
}

TEST_CASE("nicknames are unique ignoring case: ERROR nick-in-use, then a retry joins", "[protocol][errors]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  auto other = connect_client(server.port());

  REQUIRE(other->send_line("HELLO alice"));
  CHECK(next_line(*other) == "ERROR nick-in-use alice");
  REQUIRE(other->send_line("HELLO ALICE"));
  CHECK(next_line(*other) == "ERROR nick-in-use ALICE");
  REQUIRE(other->send_line("HELLO aLiCe"));
  CHECK(next_line(*other) == "ERROR nick-in-use aLiCe");

  REQUIRE(other->send_line("HELLO alice2"));
  CHECK(next_line(*other) == "WELCOME alice2");
  CHECK(next_line(*other) == "USERS alice alice2");
  // alice heard exactly one JOIN: none for the failed attempts.
  CHECK(next_line(*alice) == "JOIN alice2");
}

TEST_CASE("before joining only HELLO, PING, QUIT and HELP work: others get ERROR not-joined", "[protocol][errors]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  auto c = connect_client(server.port());
  // The first line picks protocol mode (a HELLO), but does not join.
  REQUIRE(c->send_line("HELLO b@d"));
  CHECK(next_line(*c).starts_with("ERROR bad-nick"));

  for (const char* line : {"SAY hi", "ME waves", "PRIV alice psst", "NICK bob", "WHO"}) {
    INFO(line);
    REQUIRE(c->send_line(line));
    CHECK(next_line(*c).starts_with("ERROR not-joined"));
  }
  REQUIRE(c->send_line("PING pre"));
  CHECK(next_line(*c) == "PONG pre");
  REQUIRE(c->send_line("PONG ignored"));
  REQUIRE(c->send_line("HELP"));
  for (const auto& h : chat::help_lines()) CHECK(next_line(*c) == "# " + h);

  // Nothing of that reached the room: alice's next line is the marker.
  REQUIRE(alice->send_line("SAY marker"));
  CHECK(next_line(*alice) == "MSG alice marker");

  SECTION("then HELLO joins") {
    REQUIRE(c->send_line("HELLO bob"));
    CHECK(next_line(*c) == "WELCOME bob");
    CHECK(next_line(*c) == "USERS alice bob");
    CHECK(next_line(*alice) == "JOIN bob");
  }
  SECTION("or QUIT leaves: BYE quit, close, and no LEAVE for a client that never joined") {
    REQUIRE(c->send_line("QUIT never mind"));
    CHECK(next_line(*c) == "BYE quit");
    require_closed(*c);
    REQUIRE(alice->send_line("SAY marker 2"));
    CHECK(next_line(*alice) == "MSG alice marker 2");
  }
}

// ---- errors on joined clients: the line is dropped, the connection goes on ------------------

TEST_CASE("bad text: ERROR bad-utf8 / bad-char, the line is dropped, the connection goes on", "[protocol][errors]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_and_join(server.port(), "bob");
  CHECK(next_line(*alice) == "JOIN bob");

  struct Case {
    const char* what;
    std::string line;
    const char* error;
  };
  const Case cases[] = {
      {"a byte that is never UTF-8", "SAY caf\xFF", "ERROR bad-utf8"},
      {"a truncated sequence", "SAY caf\xC3", "ERROR bad-utf8"},
      {"an overlong form", "SAY \xC0\xAF", "ERROR bad-utf8"},
      {"a surrogate", "SAY \xED\xA0\x80", "ERROR bad-utf8"},
      {"C0 control", std::string("SAY a\x01" "b"), "ERROR bad-char"},
      {"ESC", "SAY \x1B[31mred", "ERROR bad-char"},
      {"DEL", "SAY a\x7F" "b", "ERROR bad-char"},
      {"C1 control (U+0085)", "SAY a\xC2\x85" "b", "ERROR bad-char"},
      {"bad UTF-8 in ME", "ME \xFE", "ERROR bad-utf8"},
      {"control char in PRIV", "PRIV bob a\x02", "ERROR bad-char"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    REQUIRE(alice->send_line(c.line));
    CHECK(next_line(*alice).starts_with(c.error));
  }
  // Still connected and joined; bob saw none of the refused lines.
  REQUIRE(alice->send_line("SAY fine\there"));
  CHECK(next_line(*bob) == "MSG alice fine\there");
  CHECK(next_line(*alice) == "MSG alice fine\there");
}

TEST_CASE("ERROR unknown-command and bad-args", "[protocol][errors]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_and_join(server.port(), "bob");
  CHECK(next_line(*alice) == "JOIN bob");

  REQUIRE(alice->send_line("FROB x y"));
  CHECK(next_line(*alice).starts_with("ERROR unknown-command FROB"));
  REQUIRE(alice->send_line("SAY"));
  CHECK(next_line(*alice).starts_with("ERROR bad-args"));
  REQUIRE(alice->send_line("ME"));
  CHECK(next_line(*alice).starts_with("ERROR bad-args"));
  REQUIRE(alice->send_line("PRIV bob"));
  CHECK(next_line(*alice).starts_with("ERROR bad-args"));
  REQUIRE(alice->send_line("PRIV"));
  CHECK(next_line(*alice).starts_with("ERROR bad-args"));
  REQUIRE(alice->send_line("HELLO again"));  // already joined
  CHECK(next_line(*alice).starts_with("ERROR bad-args"));

  REQUIRE(alice->send_line("SAY marker"));
  CHECK(next_line(*bob) == "MSG alice marker");
  CHECK(next_line(*alice) == "MSG alice marker");
}

TEST_CASE("a line over max_line: ERROR too-long, the connection goes on", "[protocol][errors]") {
  auto config = TestServer::config();
  config.max_line = 64;
  TestServer server(config);
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_and_join(server.port(), "bob");
  CHECK(next_line(*alice) == "JOIN bob");

  const std::string at_limit = "SAY " + std::string(60, 'a');  // exactly 64 bytes: fine
  REQUIRE(alice->send_line(at_limit));
  CHECK(next_line(*alice) == "MSG alice " + std::string(60, 'a'));
  CHECK(next_line(*bob) == "MSG alice " + std::string(60, 'a'));

  REQUIRE(alice->send_line("SAY " + std::string(61, 'b')));  // 65 bytes
  CHECK(next_line(*alice).starts_with("ERROR too-long"));
  REQUIRE(alice->send_line("SAY after"));
  CHECK(next_line(*alice) == "MSG alice after");
  CHECK(next_line(*bob) == "MSG alice after");
}
