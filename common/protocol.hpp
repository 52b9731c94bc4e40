// The chat line protocol (docs/protocol.md), without sockets: parsing what clients send and
// formatting / parsing what the server sends. Pure functions; safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace chat {

inline constexpr std::string_view protocol_greeting_prefix = "#";

// ---- client to server -------------------------------------------------------------------

enum class Verb { hello, say, me, priv, nick, who, ping, pong, quit, help, stats };

// One request from a client. Which fields are used depends on the verb:
//   hello, nick: arg = the nickname      say, me: text
//   priv: arg = recipient, text          ping, pong: arg = token
//   quit: text = reason (may be empty)   who, help, stats: nothing
struct Command {
  Verb verb;
  std::string arg;
  std::string text;
};

enum class ErrorCode {
  bad_nick, nick_in_use, no_such_nick, too_long, bad_utf8, bad_char,
  unknown_command, bad_args, not_joined,
};
std::string_view to_string(ErrorCode code);

// A line the server refuses, with a readable detail for the ERROR reply.
struct Refusal {
  ErrorCode code;
  std::string detail;
};

using ParseResult = std::variant<Command, Refusal>;

// Protocol mode: `HELLO alice`, `SAY hi`, `PRIV bob psst`, ... (verbs are case-insensitive).
// Checks the text rules (bad-utf8, bad-char) and nickname syntax (bad-nick).
ParseResult parse_protocol_line(std::string_view line);

// Text mode (nc, telnet) and chatclient's input: a plain line is SAY; `/me`, `/msg <nick>
// <text>`, `@nick <text>`, `/nick`, `/who`, `/quit [reason]`, `/help`. `//text` says "/text".
ParseResult parse_text_input(std::string_view line);

// The line a client sends for `cmd` (chatclient turns typed input into these).
std::string format_command(const Command& cmd);

// ---- server to client -------------------------------------------------------------------

// Why a member left the room. The tokens are part of the protocol.
enum class LeaveCause { quit, closed, reset, timeout, no_pong, too_slow, flood, error, shutdown };
std::string_view to_string(LeaveCause cause);
std::optional<LeaveCause> leave_cause_from(std::string_view token);
// The cause, the BYE reasons and the error codes in words for people: common/wording.hpp.

// One line from the server. Fields by kind:
//   welcome, join: nick            leave: nick, code = cause token, text = detail
//   users: users                   msg, me: nick, text
//   priv: nick = from, arg = to, text
//   nick: nick = old, arg = new    error: code, text = detail
//   bye: code = reason, text = detail
//   ping, pong: arg = token        comment: text (a '#' line, e.g. the greeting)
struct Event {
  enum class Kind { welcome, users, join, leave, msg, me, priv, nick, error, bye, ping, pong, comment };
  Kind kind;
  std::string nick;
  std::string arg;
  std::string code;
  std::string text;
  std::vector<std::string> users;
};

// The protocol line for `event`, without LF.
std::string format_event(const Event& event);

// Parses one server line (chatclient's side). nullopt for a line it does not understand.
std::optional<Event> parse_event(std::string_view line);

}  // namespace chat
