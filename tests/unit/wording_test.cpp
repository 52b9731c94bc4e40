// The words people read (common/wording.hpp): every leave cause, goodbye reason, lost
// connection and refusal in one table, with the protocol line that produces it. The server's
// text mode, chatclient, chatclient-qt and the web page (through /wording.js) all say these.
#include "common/protocol.hpp"
#include "common/render.hpp"
#include "common/wording.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace {

// A LEAVE, BYE or ERROR line as render_event() words it (no stamp, no count).
std::string words_for(std::string_view line) {
  const auto event = chat::parse_event(line);
  REQUIRE(event);
  const auto text = chat::render_event(*event);
  REQUIRE(text);
  REQUIRE(text->starts_with("*** "));
  return text->substr(4);
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  std::string::size_type from = 0;
  while (true) {
    const auto tab = line.find('\t', from);
    out.push_back(line.substr(from, tab - from));
    if (tab == std::string::npos) return out;
    from = tab + 1;
  }
}

}  // namespace

TEST_CASE("wording: every leave, goodbye, lost connection and refusal in words for people", "[wording]") {
  // The rows are shared with tests/web/browser_test.py, which holds web/app.js to them.
  std::ifstream file(WORDING_CASES);
  REQUIRE(file);
  std::string line;
  int rows = 0;
  while (std::getline(file, line)) {
    if (line.empty() || line.front() == '#') continue;
    auto cells = split_tabs(line);
    INFO(line);
    REQUIRE(cells.size() == 5);
    for (auto& c : cells) {
      if (c == "-") c.clear();
    }
    const auto& [table, key, nick, detail, words] = std::tie(cells[0], cells[1], cells[2], cells[3], cells[4]);
    if (table == "leave") {
      CHECK(chat::wording::leave(nick, key, detail) == words);
      // The same words reach text mode and chatclient through render_event.
      CHECK(words_for("LEAVE " + nick + " " + key + (detail.empty() ? "" : " " + detail)) == words);
    } else if (table == "bye") {
      CHECK(chat::wording::bye(key, detail) == words);
      CHECK(words_for("BYE " + key + (detail.empty() ? "" : " " + detail)) == words);
    } else if (table == "lost") {
      CHECK(chat::wording::lost(key, detail) == words);
    } else {
      REQUIRE(table == "refusal");
      CHECK(chat::wording::refusal(key, detail) == words);
      CHECK(words_for("ERROR " + key + (detail.empty() ? "" : " " + detail)) == words);
    }
    ++rows;
  }
  CHECK(rows >= 40);
}

TEST_CASE("wording: every token the protocol has, and nothing else, has its phrase", "[wording]") {
  const auto keys = [](std::span<const chat::wording::Phrase> table) {
    std::set<std::string> out;
    for (const auto& p : table) out.insert(std::string(p.key));
    return out;
  };
  const auto leave = keys(chat::wording::leave_phrases());
  for (auto cause : {chat::LeaveCause::quit, chat::LeaveCause::closed, chat::LeaveCause::reset, chat::LeaveCause::timeout,
                     chat::LeaveCause::no_pong, chat::LeaveCause::too_slow, chat::LeaveCause::flood,
                     chat::LeaveCause::error, chat::LeaveCause::shutdown, chat::LeaveCause::instance_lost,
                     chat::LeaveCause::kicked, chat::LeaveCause::banned}) {
    CHECK(leave.count(std::string(chat::to_string(cause))) == 1);
  }
  CHECK(leave.size() == 13);  // and the fallback
  const auto refusal = keys(chat::wording::refusal_phrases());
  using E = chat::ErrorCode;
  for (auto code : {E::bad_nick, E::nick_in_use, E::no_such_nick, E::too_long, E::bad_utf8, E::bad_char,
                    E::unknown_command, E::bad_args, E::not_joined, E::nick_held, E::bad_token, E::no_history,
                    E::room_split, E::bad_password, E::not_operator, E::banned}) {
    CHECK(refusal.count(std::string(chat::to_string(code))) == 1);
  }
  CHECK(refusal.size() == 17);
  // Each table ends with its fallback.
  for (auto table : {chat::wording::leave_phrases(), chat::wording::bye_phrases(), chat::wording::lost_phrases(),
                     chat::wording::refusal_phrases()}) {
    REQUIRE_FALSE(table.empty());
    CHECK(table.back().key.empty());
  }
}

TEST_CASE("wording: the details are for whoever asks", "[wording]") {
  const auto e = chat::parse_event("LEAVE eve no-pong no reply to PING within 10.0 s (poller, 16.2 s after last traffic)");
  REQUIRE(e);
  CHECK(*chat::render_event(*e, 2, /*verbose=*/true) ==
        "*** eve stopped answering (no reply for 16 s) (2 online)"
        " [no-pong: no reply to PING within 10.0 s (poller, 16.2 s after last traffic)]");
  CHECK(*chat::render_event(*e, 2) == "*** eve stopped answering (no reply for 16 s) (2 online)");
  CHECK(chat::wording::details("quit", "") == " [quit]");
  CHECK(chat::wording::details("", "") == "");
}

TEST_CASE("wording: templates, quiet times and the web page's copy", "[wording]") {
  using chat::wording::fill;
  CHECK(fill("{nick} left[ ({detail})]", {"eve", "", "", ""}) == "eve left");
  CHECK(fill("{nick} left[ ({detail})]", {"eve", "bye", "", ""}) == "eve left (bye)");
  CHECK(fill("[{detail}]", {}) == "");
  CHECK(fill("a [b {nick}] c [d {detail}]", {"n", "", "", ""}) == "a b n c ");
  CHECK(fill("unclosed [part {nick}", {"n", "", "", ""}) == "unclosed [part n");
  // An empty placeholder outside brackets: the phrase is not said (say() falls back).
  CHECK(fill("{unknown}{nick", {"n", "", "", ""}) == "");
  CHECK(fill("the nickname {detail} is taken", {}) == "");
  CHECK(chat::wording::refusal("nick-in-use", "") == "the server refused that (nick-in-use)");
  CHECK(chat::wording::refusal("no-such-nick", "") == "the server refused that (no-such-nick)");

  CHECK(chat::wording::quiet_time("x (poller, 16.2 s after last traffic)") == "16 s");
  CHECK(chat::wording::quiet_time("x (reader, 521 ms after last traffic)") == "521 ms");
  CHECK(chat::wording::quiet_time("x (reader, 0.4 s after last traffic)") == "0 s");
  CHECK(chat::wording::quiet_time("no reply to PING within 10.0 s") == "");
  CHECK(chat::wording::quiet_time("") == "");
  // What a hostile server might send is no time.
  CHECK(chat::wording::quiet_time("x (poller, 1e300 s after last traffic)") == "");
  CHECK(chat::wording::quiet_time("x (poller, 99999999 s after last traffic)") == "");
  CHECK(chat::wording::quiet_time("x (poller, soon after last traffic)") == "");
  CHECK(chat::wording::quiet_time("x (poller, -3 ms after last traffic)") == "");

  // The web page's copy: a script with every phrase, as JSON strings.
  const std::string script = chat::wording::wording_script();
  CHECK(script.find("const CHAT_WORDING = {") != std::string::npos);
  for (auto table : {chat::wording::leave_phrases(), chat::wording::bye_phrases(), chat::wording::lost_phrases(),
                     chat::wording::refusal_phrases()}) {
    for (const auto& p : table) {
      INFO(p.words);
      CHECK(script.find("\"" + std::string(p.key) + "\": \"" + std::string(p.words) + "\"") != std::string::npos);
    }
  }
}
