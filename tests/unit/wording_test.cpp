// The words people read (common/wording.hpp): every leave cause, goodbye reason, lost
// connection and refusal in one table, with the protocol line that produces it. The server's
// text mode, chatclient, chatclient-qt and the web page (through /wording.js) all say these.
#include "common/protocol.hpp"
#include "common/render.hpp"
#include "common/wording.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <string>

namespace {

struct Case {
  const char* line;   // what the server sent
  const char* words;  // what a person reads
};

// A LEAVE, BYE or ERROR line as render_event() words it (no stamp, no count).
std::string words_for(std::string_view line) {
  const auto event = chat::parse_event(line);
  REQUIRE(event);
  const auto text = chat::render_event(*event);
  REQUIRE(text);
  REQUIRE(text->starts_with("*** "));
  return text->substr(4);
}

}  // namespace

TEST_CASE("wording: every leave, goodbye and refusal in words for people", "[wording]") {
  const Case cases[] = {
      // Someone else left.
      {"LEAVE eve quit", "eve left"},
      {"LEAVE eve quit see you tomorrow", "eve left (see you tomorrow)"},
      {"LEAVE eve closed connection closed by peer (reader, 521 ms after last traffic)", "eve's connection closed"},
      {"LEAVE eve reset connection reset by peer (reader, 3.0 s after last traffic)", "eve's connection was reset"},
      {"LEAVE eve timeout no keepalive reply (poller, 16.2 s after last traffic)",
       "eve's connection timed out (no reply for 16 s)"},
      {"LEAVE eve timeout connection timed out", "eve's connection timed out"},
      {"LEAVE eve no-pong no reply to PING within 10.0 s (poller, 16.2 s after last traffic)",
       "eve stopped answering (no reply for 16 s)"},
      {"LEAVE eve no-pong no reply to PING within 300 ms (poller, 612 ms after last traffic)",
       "eve stopped answering (no reply for 612 ms)"},
      {"LEAVE eve too-slow send queue over 1048576 bytes (room)", "eve could not keep up and was disconnected"},
      {"LEAVE eve flood over 20 lines/s for 10.0 s (burst 50)", "eve sent too fast for too long and was disconnected"},
      {"LEAVE eve error server out of memory", "eve was disconnected by an error"},
      {"LEAVE eve shutdown server shutting down", "eve left: the server is shutting down"},
      {"LEAVE eve frobbed", "eve left"},
      // The server ended our own session.
      {"BYE quit", "you left"},
      {"BYE shutdown server shutting down", "the server has stopped"},
      {"BYE no-pong", "the server disconnected you: your client stopped answering"},
      {"BYE flood over 20 lines/s for 10.0 s (burst 50)",
       "the server disconnected you for sending too fast: over 20 lines/s for 10.0 s (burst 50)"},
      {"BYE server-full", "the server is full; try again later"},
      {"BYE too-many", "too many connections from your address"},
      {"BYE server-busy", "the server is out of resources; try again later"},
      {"BYE handshake-timeout no nickname within 30.0 s", "you did not choose a nickname in time"},
      {"BYE frob", "the server ended your session"},
      // The server refused a line.
      {"ERROR nick-in-use alice", "the nickname alice is taken"},
      {"ERROR bad-nick al ice: a nickname is 1-24 of A-Z a-z 0-9 _ ! -",
       "that nickname is not allowed: al ice: a nickname is 1-24 of A-Z a-z 0-9 _ ! -"},
      {"ERROR no-such-nick bob", "nobody called bob is online"},
      {"ERROR too-long lines are at most 4096 bytes", "not sent: too long (lines are at most 4096 bytes)"},
      {"ERROR bad-utf8 line is not valid UTF-8", "not sent: the line is not valid UTF-8"},
      {"ERROR bad-char line contains a control character", "not sent: the line contains a control character"},
      {"ERROR unknown-command /frob (type /help for the commands)", "unknown command: /frob (type /help for the commands)"},
      {"ERROR bad-args usage: /msg <nick> <text>", "usage: /msg <nick> <text>"},
      {"ERROR bad-args", "the server refused that (bad-args)"},
      {"ERROR not-joined type a nickname first", "not in the room yet: type a nickname first"},
      {"ERROR frob something", "the server refused that (frob): something"},
  };
  for (const auto& c : cases) {
    INFO(c.line);
    CHECK(words_for(c.line) == c.words);
  }

  // Our client found the connection gone (chatclient, chatclient-qt, the web page).
  const std::pair<const char*, const char*> lost[] = {
      {"closed", "the server closed the connection"},
      {"reset", "the connection to the server was reset"},
      {"timeout", "the server stopped answering"},
      {"no-pong", "the server stopped answering"},
      {"error", "the connection to the server failed"},
      {"frob", "the connection to the server was lost"},
  };
  for (const auto& [cause, words] : lost) {
    INFO(cause);
    CHECK(chat::wording::lost(cause, "no reply to PING within 10.0 s") == words);
  }
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
                     chat::LeaveCause::error, chat::LeaveCause::shutdown}) {
    CHECK(leave.count(std::string(chat::to_string(cause))) == 1);
  }
  CHECK(leave.size() == 10);  // and the fallback
  const auto refusal = keys(chat::wording::refusal_phrases());
  using E = chat::ErrorCode;
  for (auto code : {E::bad_nick, E::nick_in_use, E::no_such_nick, E::too_long, E::bad_utf8, E::bad_char,
                    E::unknown_command, E::bad_args, E::not_joined}) {
    CHECK(refusal.count(std::string(chat::to_string(code))) == 1);
  }
  CHECK(refusal.size() == 10);
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
  CHECK(fill("{unknown}{nick", {"n", "", "", ""}) == "{nick");

  CHECK(chat::wording::quiet_time("x (poller, 16.2 s after last traffic)") == "16 s");
  CHECK(chat::wording::quiet_time("x (reader, 521 ms after last traffic)") == "521 ms");
  CHECK(chat::wording::quiet_time("x (reader, 0.4 s after last traffic)") == "0 s");
  CHECK(chat::wording::quiet_time("no reply to PING within 10.0 s") == "");
  CHECK(chat::wording::quiet_time("") == "");

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
