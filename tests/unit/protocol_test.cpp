#include "common/protocol.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <variant>
#include <vector>

using chat::Command;
using chat::ErrorCode;
using chat::Event;
using chat::LeaveCause;
using chat::Refusal;
using chat::Verb;

namespace chat {
// Readable failures: Catch prints these instead of "{?}".
std::ostream& operator<<(std::ostream& os, ErrorCode code) { return os << to_string(code); }
std::ostream& operator<<(std::ostream& os, LeaveCause cause) { return os << to_string(cause); }
std::ostream& operator<<(std::ostream& os, Verb verb) {
  return os << format_command(Command{verb, {}, {}});
}
std::ostream& operator<<(std::ostream& os, Event::Kind kind) { return os << static_cast<int>(kind); }
}  // namespace chat

namespace {

// The command a line parses to; fails the test (and returns an empty HELP) on a refusal.
Command command_of(const chat::ParseResult& r) {
  if (const auto* refusal = std::get_if<Refusal>(&r)) {
    FAIL_CHECK("refused: " << chat::to_string(refusal->code) << ": " << refusal->detail);
    return Command{Verb::help, {}, {}};
  }
  return std::get<Command>(r);
}

// The refusal a line parses to; fails the test (and returns not_joined) on a command.
Refusal refusal_of(const chat::ParseResult& r) {
  if (const auto* command = std::get_if<Command>(&r)) {
    FAIL_CHECK("accepted as: " << chat::format_command(*command));
    return Refusal{ErrorCode::not_joined, {}};
  }
  return std::get<Refusal>(r);
}

Command proto(std::string_view line) { return command_of(chat::parse_protocol_line(line)); }
ErrorCode proto_error(std::string_view line) { return refusal_of(chat::parse_protocol_line(line)).code; }
Command text(std::string_view line) { return command_of(chat::parse_text_input(line)); }
ErrorCode text_error(std::string_view line) { return refusal_of(chat::parse_text_input(line)).code; }

void check_command(const Command& c, Verb verb, std::string_view arg, std::string_view txt) {
  CHECK(c.verb == verb);
  CHECK(c.arg == arg);
  CHECK(c.text == txt);
}

}  // namespace

// ---- parse_protocol_line -----------------------------------------------------------------

TEST_CASE("parse_protocol_line parses every verb", "[protocol]") {
  check_command(proto("HELLO alice"), Verb::hello, "alice", "");
  check_command(proto("SAY hello world"), Verb::say, "", "hello world");
  check_command(proto("ME waves"), Verb::me, "", "waves");
  check_command(proto("PRIV bob psst, over here"), Verb::priv, "bob", "psst, over here");
  check_command(proto("NICK alicia"), Verb::nick, "alicia", "");
  check_command(proto("WHO"), Verb::who, "", "");
  check_command(proto("PING 12345"), Verb::ping, "12345", "");
  check_command(proto("PONG 12345"), Verb::pong, "12345", "");
  check_command(proto("QUIT"), Verb::quit, "", "");
  check_command(proto("HELP"), Verb::help, "", "");
}

TEST_CASE("parse_protocol_line: verbs are case-insensitive", "[protocol]") {
  check_command(proto("hello alice"), Verb::hello, "alice", "");
  check_command(proto("Hello alice"), Verb::hello, "alice", "");
  check_command(proto("say hi"), Verb::say, "", "hi");
  check_command(proto("sAy hi"), Verb::say, "", "hi");
  check_command(proto("me waves"), Verb::me, "", "waves");
  check_command(proto("priv bob hi"), Verb::priv, "bob", "hi");
  check_command(proto("nick Bob"), Verb::nick, "Bob", "");
  check_command(proto("who"), Verb::who, "", "");
  check_command(proto("ping x"), Verb::ping, "x", "");
  check_command(proto("Pong x"), Verb::pong, "x", "");
  check_command(proto("quit bye"), Verb::quit, "", "bye");
  check_command(proto("help"), Verb::help, "", "");
  // Arguments keep their case.
  check_command(proto("HELLO AliCE"), Verb::hello, "AliCE", "");
}

TEST_CASE("parse_protocol_line: text keeps its inner spacing", "[protocol]") {
  check_command(proto("SAY  two  spaces  "), Verb::say, "", " two  spaces  ");
  check_command(proto("SAY a\tb"), Verb::say, "", "a\tb");
  check_command(proto("ME  waves   slowly"), Verb::me, "", " waves   slowly");
  check_command(proto("PRIV bob   spaced   out "), Verb::priv, "bob", "  spaced   out ");
  check_command(proto("QUIT  see  you "), Verb::quit, "", " see  you ");
  check_command(proto("SAY h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80"), Verb::say, "",
                "h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80");
}

TEST_CASE("parse_protocol_line: QUIT with and without a reason", "[protocol]") {
  check_command(proto("QUIT"), Verb::quit, "", "");
  check_command(proto("QUIT "), Verb::quit, "", "");
  check_command(proto("QUIT gone fishing"), Verb::quit, "", "gone fishing");
}

TEST_CASE("parse_protocol_line: PING and PONG with and without a token", "[protocol]") {
  check_command(proto("PING"), Verb::ping, "", "");
  check_command(proto("PING abc-123"), Verb::ping, "abc-123", "");
  check_command(proto("PONG"), Verb::pong, "", "");
  check_command(proto("PONG abc-123"), Verb::pong, "abc-123", "");
}

TEST_CASE("parse_protocol_line: missing arguments are bad-args", "[protocol]") {
  CHECK(proto_error("SAY") == ErrorCode::bad_args);
  CHECK(proto_error("SAY ") == ErrorCode::bad_args);
  CHECK(proto_error("ME") == ErrorCode::bad_args);
  CHECK(proto_error("ME ") == ErrorCode::bad_args);
  CHECK(proto_error("PRIV") == ErrorCode::bad_args);
  CHECK(proto_error("PRIV bob") == ErrorCode::bad_args);
  CHECK(proto_error("PRIV bob ") == ErrorCode::bad_args);
  CHECK(proto_error("PRIV  bob hi") == ErrorCode::bad_args);  // empty recipient
  auto r = refusal_of(chat::parse_protocol_line("SAY"));
  CHECK_FALSE(r.detail.empty());
}

TEST_CASE("parse_protocol_line: bad nicknames are bad-nick", "[protocol]") {
  CHECK(proto_error("HELLO") == ErrorCode::bad_nick);
  CHECK(proto_error("HELLO ") == ErrorCode::bad_nick);
  CHECK(proto_error("HELLO al ice") == ErrorCode::bad_nick);
  CHECK(proto_error("HELLO al@ice") == ErrorCode::bad_nick);
  CHECK(proto_error("HELLO " + std::string(25, 'a')) == ErrorCode::bad_nick);
  CHECK(proto_error("HELLO h\xc3\xa9llo") == ErrorCode::bad_nick);
  CHECK(proto_error("NICK") == ErrorCode::bad_nick);
  CHECK(proto_error("NICK bad.nick") == ErrorCode::bad_nick);
  check_command(proto("HELLO " + std::string(24, 'a')), Verb::hello, std::string(24, 'a'), "");
  auto r = refusal_of(chat::parse_protocol_line("HELLO al@ice"));
  CHECK_FALSE(r.detail.empty());
}

TEST_CASE("parse_protocol_line: PRIV to an invalid nickname is no-such-nick", "[protocol]") {
  CHECK(proto_error("PRIV b@b hi") == ErrorCode::no_such_nick);
  CHECK(proto_error("PRIV " + std::string(25, 'b') + " hi") == ErrorCode::no_such_nick);
  CHECK(proto_error("PRIV b\xc3\xb6" "b hi") == ErrorCode::no_such_nick);
  auto r = refusal_of(chat::parse_protocol_line("PRIV b@b hi"));
  CHECK(r.detail.find("b@b") != std::string::npos);
}

TEST_CASE("parse_protocol_line: unknown verbs are unknown-command", "[protocol]") {
  CHECK(proto_error("JUMP") == ErrorCode::unknown_command);
  CHECK(proto_error("JUMP high") == ErrorCode::unknown_command);
  CHECK(proto_error("SAYY hi") == ErrorCode::unknown_command);
  CHECK(proto_error("SA") == ErrorCode::unknown_command);
  CHECK(proto_error("/me waves") == ErrorCode::unknown_command);  // text-mode syntax
  CHECK(proto_error("") == ErrorCode::unknown_command);
  CHECK(proto_error(" SAY hi") == ErrorCode::unknown_command);  // the verb is the empty word
  auto r = refusal_of(chat::parse_protocol_line("JUMP high"));
  CHECK(r.detail.find("JUMP") != std::string::npos);
  CHECK(refusal_of(chat::parse_protocol_line("")).detail == "(empty line)");
  CHECK(refusal_of(chat::parse_protocol_line("   ")).detail == "(empty line)");
  CHECK(refusal_of(chat::parse_protocol_line(" SAY hi")).detail == "(line starts with a space)");
}

TEST_CASE("parse_protocol_line: text rules give bad-utf8 and bad-char", "[protocol]") {
  CHECK(proto_error("SAY \xff") == ErrorCode::bad_utf8);
  CHECK(proto_error("SAY \xc0\xaf") == ErrorCode::bad_utf8);
  CHECK(proto_error("SAY \xed\xa0\x80") == ErrorCode::bad_utf8);
  CHECK(proto_error("HELLO \xc3") == ErrorCode::bad_utf8);
  CHECK(proto_error("JUMP \xff") == ErrorCode::bad_utf8);  // checked before the verb
  CHECK(proto_error("SAY a\x01z") == ErrorCode::bad_char);
  CHECK(proto_error("SAY a\x7fz") == ErrorCode::bad_char);
  CHECK(proto_error("SAY a\rb") == ErrorCode::bad_char);
  CHECK(proto_error("SAY \xc2\x85") == ErrorCode::bad_char);
  CHECK(proto_error(std::string("SAY a\0b", 7)) == ErrorCode::bad_char);
  CHECK(proto_error("\x1b[2J") == ErrorCode::bad_char);
}

// ---- parse_text_input --------------------------------------------------------------------

TEST_CASE("parse_text_input: a plain line is SAY", "[protocol][text-mode]") {
  check_command(text("hello everyone"), Verb::say, "", "hello everyone");
  check_command(text("  spaced  out "), Verb::say, "", "  spaced  out ");
  check_command(text("SAY not a verb here"), Verb::say, "", "SAY not a verb here");
  check_command(text("a/b"), Verb::say, "", "a/b");
  check_command(text("email me@example.org"), Verb::say, "", "email me@example.org");
}

TEST_CASE("parse_text_input: slash commands", "[protocol][text-mode]") {
  check_command(text("/me waves"), Verb::me, "", "waves");
  check_command(text("/ME waves  twice"), Verb::me, "", "waves  twice");
  check_command(text("/msg bob psst"), Verb::priv, "bob", "psst");
  check_command(text("/msg bob psst  there"), Verb::priv, "bob", "psst  there");
  check_command(text("/nick alicia"), Verb::nick, "alicia", "");
  check_command(text("/who"), Verb::who, "", "");
  check_command(text("/names"), Verb::who, "", "");
  check_command(text("/quit"), Verb::quit, "", "");
  check_command(text("/quit see you later"), Verb::quit, "", "see you later");
  check_command(text("/help"), Verb::help, "", "");
  check_command(text("/HELP"), Verb::help, "", "");
}

TEST_CASE("parse_text_input: @nick is a private message", "[protocol][text-mode]") {
  check_command(text("@bob psst"), Verb::priv, "bob", "psst");
  check_command(text("@bob psst, over  here"), Verb::priv, "bob", "psst, over  here");
  CHECK(text_error("@bob") == ErrorCode::bad_args);
  CHECK(text_error("@") == ErrorCode::bad_args);
  CHECK(text_error("@b.b hi") == ErrorCode::no_such_nick);
}

TEST_CASE("parse_text_input: // says a line that starts with /", "[protocol][text-mode]") {
  check_command(text("//text"), Verb::say, "", "/text");
  check_command(text("//me is not an action"), Verb::say, "", "/me is not an action");
  check_command(text("//"), Verb::say, "", "/");
}

TEST_CASE("parse_text_input: refusals", "[protocol][text-mode]") {
  CHECK(text_error("") == ErrorCode::bad_args);
  CHECK(text_error("/foo") == ErrorCode::unknown_command);
  CHECK(text_error("/foo bar") == ErrorCode::unknown_command);
  CHECK(text_error("/") == ErrorCode::unknown_command);
  CHECK(text_error("/me") == ErrorCode::bad_args);
  CHECK(text_error("/msg") == ErrorCode::bad_args);
  CHECK(text_error("/msg bob") == ErrorCode::bad_args);
  CHECK(text_error("/msg b@b hi") == ErrorCode::no_such_nick);
  CHECK(text_error("/nick") == ErrorCode::bad_nick);
  CHECK(text_error("/nick bad nick") == ErrorCode::bad_nick);
  CHECK(text_error("hi \xff") == ErrorCode::bad_utf8);
  CHECK(text_error("hi\x07") == ErrorCode::bad_char);
  auto r = refusal_of(chat::parse_text_input("/foo"));
  CHECK(r.detail.find("/foo") != std::string::npos);
}

// ---- format_command ----------------------------------------------------------------------

TEST_CASE("format_command gives the protocol line", "[protocol]") {
  CHECK(chat::format_command({Verb::hello, "alice", ""}) == "HELLO alice");
  CHECK(chat::format_command({Verb::say, "", "hi there"}) == "SAY hi there");
  CHECK(chat::format_command({Verb::me, "", "waves"}) == "ME waves");
  CHECK(chat::format_command({Verb::priv, "bob", "psst"}) == "PRIV bob psst");
  CHECK(chat::format_command({Verb::nick, "alicia", ""}) == "NICK alicia");
  CHECK(chat::format_command({Verb::who, "", ""}) == "WHO");
  CHECK(chat::format_command({Verb::ping, "t1", ""}) == "PING t1");
  CHECK(chat::format_command({Verb::ping, "", ""}) == "PING");
  CHECK(chat::format_command({Verb::pong, "t1", ""}) == "PONG t1");
  CHECK(chat::format_command({Verb::quit, "", ""}) == "QUIT");
  CHECK(chat::format_command({Verb::quit, "", "bye all"}) == "QUIT bye all");
  CHECK(chat::format_command({Verb::help, "", ""}) == "HELP");
}

TEST_CASE("format_command round-trips through parse_protocol_line for every verb", "[protocol]") {
  const std::vector<Command> commands{
      {Verb::hello, "alice", ""},
      {Verb::hello, "A-b_c!9", ""},
      {Verb::say, "", "hello world"},
      {Verb::say, "", "  spaced   out  "},
      {Verb::say, "", "h\xc3\xa9llo \xf0\x9f\x98\x80"},
      {Verb::say, "", "/not a command"},
      {Verb::me, "", "waves"},
      {Verb::priv, "bob", "psst"},
      {Verb::priv, "bob", " two  words "},
      {Verb::nick, "alicia", ""},
      {Verb::who, "", ""},
      {Verb::ping, "", ""},
      {Verb::ping, "12345", ""},
      {Verb::pong, "", ""},
      {Verb::pong, "12345", ""},
      {Verb::quit, "", ""},
      {Verb::quit, "", "gone  fishing"},
      {Verb::help, "", ""},
  };
  for (const auto& c : commands) {
    const std::string line = chat::format_command(c);
    INFO("line: " << line);
    check_command(proto(line), c.verb, c.arg, c.text);
  }
}

TEST_CASE("text input turned into a protocol line means the same", "[protocol][text-mode]") {
  for (std::string_view typed : {"hello", "/me waves", "/msg bob hi there", "@bob hi", "/nick alicia",
                                 "/who", "/quit", "/quit bye", "/help", "//slash"}) {
    INFO("typed: " << typed);
    const Command c = text(typed);
    const Command back = proto(chat::format_command(c));
    check_command(back, c.verb, c.arg, c.text);
  }
}

// ---- codes and causes --------------------------------------------------------------------

TEST_CASE("to_string(ErrorCode) gives the protocol tokens", "[protocol]") {
  CHECK(chat::to_string(ErrorCode::bad_nick) == "bad-nick");
  CHECK(chat::to_string(ErrorCode::nick_in_use) == "nick-in-use");
  CHECK(chat::to_string(ErrorCode::no_such_nick) == "no-such-nick");
  CHECK(chat::to_string(ErrorCode::too_long) == "too-long");
  CHECK(chat::to_string(ErrorCode::bad_utf8) == "bad-utf8");
  CHECK(chat::to_string(ErrorCode::bad_char) == "bad-char");
  CHECK(chat::to_string(ErrorCode::unknown_command) == "unknown-command");
  CHECK(chat::to_string(ErrorCode::bad_args) == "bad-args");
  CHECK(chat::to_string(ErrorCode::not_joined) == "not-joined");
}

TEST_CASE("LeaveCause tokens round-trip through to_string and leave_cause_from", "[protocol]") {
  const std::vector<std::pair<LeaveCause, std::string_view>> all{
      {LeaveCause::quit, "quit"},       {LeaveCause::closed, "closed"},     {LeaveCause::reset, "reset"},
      {LeaveCause::timeout, "timeout"}, {LeaveCause::no_pong, "no-pong"},   {LeaveCause::too_slow, "too-slow"},
      {LeaveCause::flood, "flood"},     {LeaveCause::error, "error"},       {LeaveCause::shutdown, "shutdown"},
      {LeaveCause::instance_lost, "instance-lost"}, {LeaveCause::kicked, "kicked"}, {LeaveCause::banned, "banned"},
  };
  for (const auto& [cause, token] : all) {
    INFO("token " << token);
    CHECK(chat::to_string(cause) == token);
    auto back = chat::leave_cause_from(token);
    REQUIRE(back);
    CHECK(*back == cause);
  }
  CHECK_FALSE(chat::leave_cause_from(""));
  CHECK_FALSE(chat::leave_cause_from("QUIT"));
  CHECK_FALSE(chat::leave_cause_from("no_pong"));
  CHECK_FALSE(chat::leave_cause_from("timeout "));
}

// ---- server events -----------------------------------------------------------------------

namespace {

Event ev(Event::Kind kind) { return Event{kind, {}, {}, {}, {}, {}}; }

void check_same(const Event& a, const Event& b) {
  CHECK(a.kind == b.kind);
  CHECK(a.nick == b.nick);
  CHECK(a.arg == b.arg);
  CHECK(a.code == b.code);
  CHECK(a.text == b.text);
  CHECK(a.users == b.users);
}

}  // namespace

TEST_CASE("format_event gives the protocol lines", "[protocol][event]") {
  using K = Event::Kind;
  Event e = ev(K::welcome);
  e.nick = "alice";
  CHECK(chat::format_event(e) == "WELCOME alice");
  e = ev(K::users);
  CHECK(chat::format_event(e) == "USERS");
  e.users = {"alice", "bob", "carol"};
  CHECK(chat::format_event(e) == "USERS alice bob carol");
  e = ev(K::join);
  e.nick = "bob";
  CHECK(chat::format_event(e) == "JOIN bob");
  e = ev(K::leave);
  e.nick = "bob", e.code = "quit";
  CHECK(chat::format_event(e) == "LEAVE bob quit");
  e.code = "closed", e.text = "connection closed by peer";
  CHECK(chat::format_event(e) == "LEAVE bob closed connection closed by peer");
  e = ev(K::msg);
  e.nick = "alice", e.text = "hello";
  CHECK(chat::format_event(e) == "MSG alice hello");
  e = ev(K::me);
  e.nick = "alice", e.text = "waves";
  CHECK(chat::format_event(e) == "ME alice waves");
  e = ev(K::priv);
  e.nick = "alice", e.arg = "bob", e.text = "psst";
  CHECK(chat::format_event(e) == "PRIV alice bob psst");
  e = ev(K::nick);
  e.nick = "alice", e.arg = "alicia";
  CHECK(chat::format_event(e) == "NICK alice alicia");
  e = ev(K::error);
  e.code = "bad-nick", e.text = "al@ice: only A-Z a-z 0-9 _ ! - are allowed";
  CHECK(chat::format_event(e) == "ERROR bad-nick al@ice: only A-Z a-z 0-9 _ ! - are allowed");
  e = ev(K::bye);
  e.code = "shutdown";
  CHECK(chat::format_event(e) == "BYE shutdown");
  e = ev(K::ping);
  e.arg = "42";
  CHECK(chat::format_event(e) == "PING 42");
  e = ev(K::pong);
  CHECK(chat::format_event(e) == "PONG");
  e = ev(K::comment);
  e.text = "chat server 0.1.0";
  CHECK(chat::format_event(e) == "# chat server 0.1.0");
}

TEST_CASE("format_event and parse_event round-trip every kind", "[protocol][event]") {
  using K = Event::Kind;
  std::vector<Event> events;
  auto add = [&](K kind, std::string nick, std::string arg, std::string code, std::string text,
                 std::vector<std::string> users = {}) {
    events.push_back(Event{kind, std::move(nick), std::move(arg), std::move(code), std::move(text), std::move(users)});
  };
  add(K::welcome, "alice", "", "", "");
  add(K::users, "", "", "", "");
  add(K::users, "", "", "", "", {"alice"});
  add(K::users, "", "", "", "", {"alice", "bob", "Carol_3"});
  add(K::join, "bob", "", "", "");
  add(K::leave, "bob", "", "quit", "");
  add(K::leave, "bob", "", "quit", "see you  tomorrow");
  add(K::leave, "bob", "", "closed", "connection closed by peer");
  add(K::leave, "bob", "", "no-pong", "no PONG for 16.0 s");
  add(K::msg, "alice", "", "", "hello");
  add(K::msg, "alice", "", "", " spaced  out ");
  add(K::msg, "alice", "", "", "h\xc3\xa9llo \xf0\x9f\x98\x80");
  add(K::me, "alice", "", "", "waves at bob");
  add(K::priv, "alice", "bob", "", "psst, over here");
  add(K::nick, "alice", "alicia", "", "");
  add(K::error, "", "", "unknown-command", "JUMP");
  add(K::error, "", "", "too-long", "");
  add(K::bye, "", "", "shutdown", "");
  add(K::bye, "", "", "too-slow", "output queue over 1 MiB");
  add(K::ping, "", "", "", "");
  add(K::ping, "", "7", "", "");
  add(K::pong, "", "", "", "");
  add(K::pong, "", "abc", "", "");
  add(K::comment, "", "", "", "");
  add(K::comment, "", "", "", "chat 0.1.0; type HELP");
  add(K::comment, "", "", "", "# nested");

  for (const auto& e : events) {
    const std::string line = chat::format_event(e);
    INFO("line: " << line);
    auto back = chat::parse_event(line);
    REQUIRE(back);
    check_same(*back, e);
    CHECK(chat::format_event(*back) == line);
  }
}

TEST_CASE("parse_event reads '#' comment lines", "[protocol][event]") {
  auto e = chat::parse_event("# welcome to chat");
  REQUIRE(e);
  CHECK(e->kind == Event::Kind::comment);
  CHECK(e->text == "welcome to chat");
  e = chat::parse_event("#no space");
  REQUIRE(e);
  CHECK(e->kind == Event::Kind::comment);
  CHECK(e->text == "no space");
  e = chat::parse_event("#");
  REQUIRE(e);
  CHECK(e->kind == Event::Kind::comment);
  CHECK(e->text.empty());
  e = chat::parse_event("#  two");
  REQUIRE(e);
  CHECK(e->text == " two");
}

TEST_CASE("parse_event reads the fields of each line", "[protocol][event]") {
  auto e = chat::parse_event("USERS alice bob");
  REQUIRE(e);
  CHECK(e->kind == Event::Kind::users);
  CHECK(e->users == std::vector<std::string>{"alice", "bob"});
  e = chat::parse_event("LEAVE bob timeout no keepalive reply (16.0 s)");
  REQUIRE(e);
  CHECK(e->kind == Event::Kind::leave);
  CHECK(e->nick == "bob");
  CHECK(e->code == "timeout");
  CHECK(e->text == "no keepalive reply (16.0 s)");
  e = chat::parse_event("PRIV alice bob hi there");
  REQUIRE(e);
  CHECK(e->kind == Event::Kind::priv);
  CHECK(e->nick == "alice");
  CHECK(e->arg == "bob");
  CHECK(e->text == "hi there");
}

TEST_CASE("parse_event rejects garbage", "[protocol][event]") {
  for (std::string_view bad : {"", " ", "HELLO alice", "hello", "WELCOME", "JOIN", "LEAVE", "LEAVE bob",
                               "NICK alice", "NICK", "PRIV alice", "PRIV", "MSG", "ME", "ERROR", "BYE",
                               "welcome alice", "msg alice hi", "GARBAGE in", " # not a comment"}) {
    INFO("line '" << bad << "'");
    CHECK_FALSE(chat::parse_event(bad));
  }
}

TEST_CASE("ids are opt-in: HELLO <nick> ids, and HELLO with any other second word is a bad nickname as before",
          "[protocol][ids]") {
  auto r = chat::parse_protocol_line("HELLO alice ids");
  REQUIRE(std::holds_alternative<chat::Command>(r));
  CHECK(std::get<chat::Command>(r).arg == "alice");
  CHECK(std::get<chat::Command>(r).text == "ids");
  CHECK(chat::format_command(std::get<chat::Command>(r)) == "HELLO alice ids");
  r = chat::parse_protocol_line("hello alice IDS");
  REQUIRE(std::holds_alternative<chat::Command>(r));
  CHECK(std::get<chat::Command>(r).text == "ids");
  r = chat::parse_protocol_line("HELLO alice bob");
  REQUIRE(std::holds_alternative<chat::Refusal>(r));
  CHECK(std::get<chat::Refusal>(r).code == chat::ErrorCode::bad_nick);
  r = chat::parse_protocol_line("HELLO alice");
  REQUIRE(std::holds_alternative<chat::Command>(r));
  CHECK(std::get<chat::Command>(r).text.empty());
}

TEST_CASE("RESUME, HISTORY BEFORE and SEARCH parse, refuse nonsense, and format back", "[protocol][ids]") {
  const std::string token = "0123456789abcdef0123456789abcdef";
  auto r = chat::parse_protocol_line("RESUME " + token + " 4294967301");
  REQUIRE(std::holds_alternative<chat::Command>(r));
  auto c = std::get<chat::Command>(r);
  CHECK(c.verb == chat::Verb::resume);
  CHECK(c.arg == token);
  CHECK(c.id == 4294967301u);
  CHECK(chat::format_command(c) == "RESUME " + token + " 4294967301");
  for (const std::string& bad : std::vector<std::string>{"RESUME", "RESUME " + token, "RESUME short 5", "RESUME " + token + " -1",
                          "RESUME " + token + " 5x", "RESUME " + token + " 99999999999999999999999",
                          "RESUME 0123456789ABCDEF0123456789ABCDEF 5", "RESUME " + token + " 5 6"}) {
    INFO(bad);
    r = chat::parse_protocol_line(bad);
    REQUIRE(std::holds_alternative<chat::Refusal>(r));
    CHECK(std::get<chat::Refusal>(r).code == chat::ErrorCode::bad_args);
  }
  r = chat::parse_protocol_line("HISTORY BEFORE 42 5000");
  REQUIRE(std::holds_alternative<chat::Command>(r));
  c = std::get<chat::Command>(r);
  CHECK(c.verb == chat::Verb::history);
  CHECK(c.id == 42);
  CHECK(c.count == chat::max_history_page);  // capped, not refused
  for (std::string_view bad : {"HISTORY", "HISTORY BEFORE", "HISTORY BEFORE 42", "HISTORY BEFORE 42 0",
                               "HISTORY AFTER 42 5", "HISTORY BEFORE x 5"}) {
    INFO(bad);
    CHECK(std::holds_alternative<chat::Refusal>(chat::parse_protocol_line(bad)));
  }
  r = chat::parse_protocol_line("SEARCH \"pizza\" NEAR(");
  REQUIRE(std::holds_alternative<chat::Command>(r));
  CHECK(std::get<chat::Command>(r).text == "\"pizza\" NEAR(");
  CHECK(std::holds_alternative<chat::Refusal>(chat::parse_protocol_line("SEARCH")));
  r = chat::parse_text_input("/search pizza tonight");
  REQUIRE(std::holds_alternative<chat::Command>(r));
  CHECK(std::get<chat::Command>(r).verb == chat::Verb::search);
  CHECK(std::get<chat::Command>(r).text == "pizza tonight");
}

TEST_CASE("tagged lines carry the id and the time, the new lines read back", "[protocol][ids]") {
  auto e = chat::parse_event("@4294967301/1796615000123 MSG bob hi there");
  REQUIRE(e);
  CHECK(e->kind == Event::Kind::msg);
  CHECK(e->id == 4294967301u);
  CHECK(e->time_ms == 1796615000123);
  CHECK(e->text == "hi there");
  CHECK(chat::format_tagged(*e) == "@4294967301/1796615000123 MSG bob hi there");
  CHECK(chat::format_event(*e) == "MSG bob hi there");
  for (std::string_view bad : {"@", "@1 MSG a b", "@0/5 MSG a b", "@x/5 MSG a b", "@1/5", "@1/5 GARBAGE",
                               "@1/5 @2/6 MSG a b", "@1/-5 MSG a b"}) {
    INFO(bad);
    CHECK_FALSE(chat::parse_event(bad));
  }
  e = chat::parse_event("BACK alice 41000");
  REQUIRE(e);
  CHECK(e->kind == Event::Kind::back);
  CHECK(e->arg == "41000");
  e = chat::parse_event("RESUMED alice 41000 12");
  REQUIRE(e);
  CHECK(e->kind == Event::Kind::resumed);
  CHECK(e->text == "12");
  e = chat::parse_event("HISTORY missed 12 partial");
  REQUIRE(e);
  CHECK(e->kind == Event::Kind::history);
  CHECK(e->code == "missed");
  CHECK(e->arg == "12");
  CHECK(e->text == "partial");
  e = chat::parse_event("HISTORY END missed");
  REQUIRE(e);
  CHECK(e->kind == Event::Kind::history_end);
  CHECK(e->code == "missed");
  e = chat::parse_event("TOKEN 0123456789abcdef0123456789abcdef 120");
  REQUIRE(e);
  CHECK(e->kind == Event::Kind::token);
  CHECK(e->text == "120");
  CHECK_FALSE(chat::parse_event("BACK alice soon"));
}

TEST_CASE("operators' BAN, UNBAN and BANS parse, refuse nonsense with a reason, and format back", "[protocol][operators]") {
  using namespace std::chrono_literals;
  Command c = proto("BAN bob 10m flooding  the room");
  check_command(c, Verb::ban, "bob", "flooding  the room");
  CHECK(c.duration == 10min);
  CHECK(chat::format_command(c) == "BAN bob 10m flooding  the room");
  c = proto("ban Bob 1d");
  check_command(c, Verb::ban, "Bob", "");
  CHECK(c.duration == 24h);
  CHECK(chat::format_command(c) == "BAN Bob 1d");
  CHECK(proto("BAN bob 1.5s").duration == 1500ms);
  CHECK(chat::format_command(proto("BAN bob 1.5s")) == "BAN bob 1500ms");
  CHECK(proto("BAN bob 90m").duration == 90min);
  CHECK(chat::format_command(proto("BAN bob 90m")) == "BAN bob 90m");
  CHECK(proto("BAN bob 30d").duration == chat::max_ban);
  // Text mode and chatclient: the same, typed.
  c = text("/ban bob 2h spam");
  check_command(c, Verb::ban, "bob", "spam");
  CHECK(c.duration == 2h);
  check_command(proto(chat::format_command(c)), Verb::ban, "bob", "spam");
  CHECK(proto(chat::format_command(c)).duration == 2h);

  // What is wrong is said: the usage, the nickname, the duration, its range.
  struct Bad {
    const char* line;
    ErrorCode code;
    const char* detail;
  };
  for (const Bad& b : {
           Bad{"BAN", ErrorCode::bad_args, "usage: BAN <nick> <duration> [reason] (duration: 30s, 10m, 2h or 1d; at most 30d)"},
           Bad{"BAN bob", ErrorCode::bad_args, "usage: BAN <nick> <duration> [reason] (duration: 30s, 10m, 2h or 1d; at most 30d)"},
           Bad{"BAN bob 10x", ErrorCode::bad_args, "'10x' is not a duration: use 30s, 10m, 2h or 1d (at most 30d)"},
           Bad{"BAN bob ten minutes", ErrorCode::bad_args, "'ten' is not a duration: use 30s, 10m, 2h or 1d (at most 30d)"},
           Bad{"BAN bob 10", ErrorCode::bad_args, "'10' is not a duration: use 30s, 10m, 2h or 1d (at most 30d)"},
           Bad{"BAN bob 31d", ErrorCode::bad_args, "a ban lasts from 1s to 30d, not 31d"},
           Bad{"BAN bob 0s", ErrorCode::bad_args, "a ban lasts from 1s to 30d, not 0s"},
           Bad{"BAN bob 500ms", ErrorCode::bad_args, "a ban lasts from 1s to 30d, not 500ms"},
           Bad{"BAN b.o.b 10m", ErrorCode::bad_nick, "b.o.b: only A-Z a-z 0-9 _ ! - are allowed"},
       }) {
    INFO(b.line);
    const auto r = refusal_of(chat::parse_protocol_line(b.line));
    CHECK(r.code == b.code);
    CHECK(r.detail == b.detail);
  }
  CHECK(refusal_of(chat::parse_text_input("/ban bob")).detail ==
        "usage: /ban <nick> <duration> [reason] (duration: 30s, 10m, 2h or 1d; at most 30d)");

  // UNBAN takes one word, a nickname or an address (the server tells which); BANS nothing.
  check_command(proto("UNBAN bob"), Verb::unban, "bob", "");
  check_command(proto("unban 10.0.0.5"), Verb::unban, "10.0.0.5", "");
  check_command(proto("UNBAN ::ffff:10.0.0.5"), Verb::unban, "::ffff:10.0.0.5", "");
  check_command(text("/unban bob"), Verb::unban, "bob", "");
  CHECK(chat::format_command(proto("UNBAN bob")) == "UNBAN bob");
  for (std::string_view bad : {"UNBAN", "UNBAN bob carol", "UNBAN  bob"}) {
    INFO(bad);
    CHECK(refusal_of(chat::parse_protocol_line(bad)).detail == "usage: UNBAN <nick or address>");
  }
  check_command(proto("BANS"), Verb::bans, "", "");
  check_command(text("/bans"), Verb::bans, "", "");
  CHECK(chat::format_command(proto("BANS")) == "BANS");
  CHECK(chat::to_string(ErrorCode::banned) == "banned");
  CHECK(chat::to_string(LeaveCause::banned) == "banned");
  CHECK(chat::leave_cause_from("banned") == LeaveCause::banned);
}
