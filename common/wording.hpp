// What people read when someone leaves, when the server ends their session, when their client
// finds the connection gone, and when the server refuses a line: one wording of each, shared
// by the server's text mode (nc, telnet), chatclient (script and full screen), chatclient-qt
// and the web page (which loads these tables as /wording.js: wording_script()).
//
// The protocol's detail field keeps what a learner looks for (which thread noticed, how long
// after the last traffic: "no reply to PING within 10 s (poller, 16.2 s after last traffic)").
// A person reads "eve stopped answering (no reply for 16 s)" and sees the detail only on
// request: chatclient --verbose, a tap or a hover on the web page, --trace and chatlab.
//
// Pure functions over constant tables; safe from any thread.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace chat::wording {

// One phrase: `key` is the protocol's token ("no-pong", "nick-in-use"), `words` a template.
// In a template, {nick}, {detail}, {quiet} and {code} are replaced by their values, and a part
// in [brackets] is left out when a placeholder inside it is empty:
//   "{nick} stopped answering[ (no reply for {quiet})]"
// A phrase with an empty placeholder outside brackets is not said at all: the table's fallback,
// the entry whose key is empty, is (as for a token the table does not know).
struct Phrase {
  std::string_view key;
  std::string_view words;
};

// Someone else left the room (LEAVE nick cause detail): "eve's connection closed".
std::span<const Phrase> leave_phrases();
// The server ended our own session (BYE reason detail): "you left", "the server has stopped".
std::span<const Phrase> bye_phrases();
// Our client found the connection to the server gone (a cause token and its detail):
// "the server closed the connection".
std::span<const Phrase> lost_phrases();
// The server refused a line (ERROR code detail): "the nickname alice is taken".
std::span<const Phrase> refusal_phrases();

// The values a template may use.
struct Values {
  std::string_view nick;
  std::string_view detail;  // only where it is meant for people: a quit's reason, an ERROR's
  std::string_view quiet;   // how long the peer had been silent: quiet_time()
  std::string_view code;    // the token itself
};

// Fills `words` with `values`; "" when a placeholder outside brackets has no value.
std::string fill(std::string_view words, const Values& values);

// The phrase for `key` in `table` (its fallback when the key is unknown), filled.
std::string say(std::span<const Phrase> table, std::string_view key, const Values& values);

// The words for a LEAVE, a BYE, a lost connection and an ERROR. For LEAVE, BYE and a lost
// connection the detail is the protocol's (for learners): only a quit's reason and the time
// of silence ({quiet}) reach the words.
std::string leave(std::string_view nick, std::string_view cause, std::string_view detail);
std::string bye(std::string_view reason, std::string_view detail);
std::string lost(std::string_view cause, std::string_view detail);
std::string refusal(std::string_view code, std::string_view detail);

// How long the peer had been silent, for people, from a detector's detail: "16 s" from
// "no reply to PING within 10 s (poller, 16.2 s after last traffic)", "521 ms" from
// "(reader, 521 ms after last traffic)". Empty when the detail does not say.
std::string quiet_time(std::string_view detail);

// What --verbose adds after the words: " [no-pong: no reply to PING ...]", or "" when there is
// no detail beyond the token.
std::string details(std::string_view code, std::string_view detail);

// The tables as a script for the web page: `const CHAT_WORDING = {...};` (JSON inside).
std::string wording_script();

}  // namespace chat::wording
