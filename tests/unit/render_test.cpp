#include "common/render.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

// GCC 12 warns -Wmaybe-uninitialized inside libstdc++'s <regex> at -O3 and under
// -fsanitize=address (CHAT_SANITIZE=address), a false positive in the library
// (GCC bug 105562); -Werror would turn it into a build failure. The pragma stays in effect to
// the end of this file, where the regex templates are instantiated.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <regex>

using chat::Event;
using K = Event::Kind;

namespace {
Event ev(K kind, std::string nick = {}, std::string arg = {}, std::string code = {}, std::string text = {},
         std::vector<std::string> users = {}) {
  return Event{kind, std::move(nick), std::move(arg), std::move(code), std::move(text), std::move(users)};
}

std::string rendered(const Event& e, std::optional<std::size_t> online = {}) {
  auto r = chat::render_event(e, online);
  return r ? *r : std::string("<nullopt>");
}
}  // namespace

TEST_CASE("render_event: messages", "[render]") {
  CHECK(rendered(ev(K::msg, "alice", "", "", "hello")) == "<alice> hello");
  CHECK(rendered(ev(K::msg, "alice", "", "", " two  spaces")) == "<alice>  two  spaces");
  CHECK(rendered(ev(K::me, "alice", "", "", "waves")) == "* alice waves");
  CHECK(rendered(ev(K::priv, "alice", "bob", "", "psst")) == "[private] alice -> bob: psst");
}

TEST_CASE("render_event: room changes", "[render]") {
  CHECK(rendered(ev(K::join, "bob"), 3) == "*** bob joined (3 online)");
  CHECK(rendered(ev(K::join, "bob")) == "*** bob joined");
  // Leaves, goodbyes and refusals are worded by common/wording.hpp (tests/unit/wording_test.cpp
  // has each); the count comes after the words, the detail only when asked for.
  CHECK(rendered(ev(K::leave, "bob", "", "closed", "connection closed by peer")) == "*** bob's connection closed");
  CHECK(rendered(ev(K::leave, "bob", "", "closed", "connection closed by peer"), 2) ==
        "*** bob's connection closed (2 online)");
  CHECK(chat::render_event(ev(K::leave, "bob", "", "closed", "connection closed by peer"), 2, true) ==
        "*** bob's connection closed (2 online) [closed: connection closed by peer]");
  CHECK(rendered(ev(K::leave, "bob", "", "quit")) == "*** bob left");
  CHECK(rendered(ev(K::leave, "bob", "", "quit"), 0) == "*** bob left (0 online)");
  CHECK(rendered(ev(K::nick, "alice", "alicia")) == "*** alice is now known as alicia");
  CHECK(rendered(ev(K::users, "", "", "", "", {"alice", "bob"})) == "*** online (2): alice bob");
  CHECK(rendered(ev(K::users)) == "*** online (0):");
  CHECK(rendered(ev(K::welcome, "alice")) == "*** welcome, alice (type /help for commands)");
}

TEST_CASE("render_event: errors, bye and comments", "[render]") {
  CHECK(rendered(ev(K::error, "", "", "bad-nick", "al@ice: only A-Z a-z 0-9 _ ! - are allowed")) ==
        "*** that nickname is not allowed: al@ice: only A-Z a-z 0-9 _ ! - are allowed");
  CHECK(rendered(ev(K::error, "", "", "too-long")) == "*** not sent: too long");
  CHECK(chat::render_event(ev(K::error, "", "", "too-long"), {}, true) == "*** not sent: too long [too-long]");
  CHECK(rendered(ev(K::bye, "", "", "shutdown")) == "*** the server has stopped");
  CHECK(rendered(ev(K::bye, "", "", "too-slow", "output queue full")) ==
        "*** the server disconnected you: your connection could not keep up");
  CHECK(chat::render_event(ev(K::bye, "", "", "too-slow", "output queue full"), {}, true) ==
        "*** the server disconnected you: your connection could not keep up [too-slow: output queue full]");
  CHECK(rendered(ev(K::comment, "", "", "", "chat 0.1.0")) == "# chat 0.1.0");
}

TEST_CASE("render_event: PING and PONG are not shown", "[render]") {
  CHECK_FALSE(chat::render_event(ev(K::ping, "", "1")));
  CHECK_FALSE(chat::render_event(ev(K::pong, "", "1")));
  CHECK_FALSE(chat::render_event(ev(K::ping), 3));
  const auto now = std::chrono::system_clock::now();
  CHECK_FALSE(chat::render_line(ev(K::ping), now));
  CHECK_FALSE(chat::render_line(ev(K::pong), now));
}

TEST_CASE("render_line prefixes a [HH:MM:SS] stamp", "[render]") {
  const auto when = std::chrono::system_clock::now();
  auto line = chat::render_line(ev(K::msg, "alice", "", "", "hello"), when);
  REQUIRE(line);
  CHECK(std::regex_match(*line, std::regex(R"(\[([01][0-9]|2[0-3]):[0-5][0-9]:[0-6][0-9]\] <alice> hello)")));
  CHECK(*line == "[" + chat::clock_stamp(when) + "] <alice> hello");

  auto join = chat::render_line(ev(K::join, "bob"), when, 3);
  REQUIRE(join);
  CHECK(std::regex_match(*join, std::regex(R"(\[\d\d:\d\d:\d\d\] \*\*\* bob joined \(3 online\))")));
}

TEST_CASE("clock_stamp is HH:MM:SS and moves with the seconds", "[render]") {
  using namespace std::chrono;
  const auto base = floor<hours>(system_clock::now());  // top of an hour: no minute or hour carry below
  const std::regex hms(R"(([01][0-9]|2[0-3]):[0-5][0-9]:[0-6][0-9])");
  const std::string at0 = chat::clock_stamp(base);
  const std::string at7 = chat::clock_stamp(base + seconds(7));
  const std::string at7b = chat::clock_stamp(base + seconds(7) + milliseconds(999));
  CHECK(std::regex_match(at0, hms));
  CHECK(at0.substr(6) == "00");
  CHECK(at7.substr(0, 6) == at0.substr(0, 6));
  CHECK(at7.substr(6) == "07");
  CHECK(at7b == at7);  // truncated, not rounded
}

TEST_CASE("help_lines lists the commands", "[render]") {
  const auto& lines = chat::help_lines();
  REQUIRE_FALSE(lines.empty());
  std::string all;
  for (const auto& l : lines) {
    CHECK(l.rfind("***", 0) == 0);
    all += l + "\n";
  }
  for (std::string_view cmd : {"/me", "/msg", "@nick", "/nick", "/who", "/quit", "//", "/oper", "/kick", "/ban", "/unban", "/bans"}) {
    INFO(cmd);
    CHECK(all.find(cmd) != std::string::npos);
  }
  CHECK(&chat::help_lines() == &lines);  // one shared list
}
