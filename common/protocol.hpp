// The chat line protocol (docs/protocol.md), without sockets: parsing what clients send and
// formatting / parsing what the server sends. Pure functions; safe from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace chat {

inline constexpr std::string_view protocol_greeting_prefix = "#";

// ---- client to server -------------------------------------------------------------------

enum class Verb {
  hello, say, me, priv, nick, who, ping, pong, quit, help, stats, resume, history, search, pass, oper, kick,
  ban, unban, bans,
};

// One request from a client. Which fields are used depends on the verb:
//   hello: arg = the nickname, text = "ids" when the client asks for ids (HELLO <nick> ids)
//   nick: arg = the nickname             say, me: text
//   priv: arg = recipient, text          ping, pong: arg = token
//   quit: text = reason (may be empty)   who, help, stats: nothing
//   resume: arg = token, id = the last event id the client saw (RESUME <token> <id>)
//   history: id = before this id, count (HISTORY BEFORE <id> <n>)
//   search: text = the words (SEARCH <words>)
//   pass: text = the room password (PASS <password>, before HELLO or RESUME; --password-file)
//   oper: text = the operators' password (OPER <password>; --admin-password-file)
//   kick: arg = the nickname, text = the reason, may be empty (KICK <nick> [reason])
//   ban: arg = the nickname, duration (min_ban to max_ban), text = the reason, may be empty
//        (BAN <nick> <duration> [reason])
//   unban: arg = one word, a nickname or an address (the server tells which)
//   bans: nothing
struct Command {
  Verb verb;
  std::string arg;
  std::string text;
  std::uint64_t id = 0;
  std::size_t count = 0;
  std::chrono::milliseconds duration{0};
};

// How long a BAN may last: 1 s to 30 days (a duration as in common/units: 30s, 10m, 2h, 1d).
inline constexpr std::chrono::milliseconds min_ban{1'000};
inline constexpr std::chrono::milliseconds max_ban{30LL * 24 * 3'600'000};

// Most events one HISTORY BEFORE or SEARCH answers with.
inline constexpr std::size_t max_history_page = 500;

enum class ErrorCode {
  bad_nick, nick_in_use, no_such_nick, too_long, bad_utf8, bad_char,
  unknown_command, bad_args, not_joined,
  nick_held,   // the nickname is kept for a client that dropped and may resume (docs/protocol.md)
  bad_token,   // RESUME: the token is wrong, expired or already used; join afresh
  no_history,  // HISTORY or SEARCH: the room keeps no history, or it is not available now
  room_split,  // --redis: this server cannot reach the room's other servers now; try again soon
  bad_password,  // --password-file: no password, or a wrong one, before HELLO or RESUME
  not_operator,  // KICK from someone who has not given the operators' password (OPER)
  banned,        // HELLO, RESUME or NICK with a banned nickname, or from a banned address (BAN)
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
// instance_lost: with --redis, the member's chatserver stopped answering; the LEAVE comes from
// another instance (docs/scale-out.md).
// kicked: an operator removed the member (KICK, --admin-password-file); the detail says who.
// banned: an operator banned the member (BAN); the detail says who, until when, and why.
enum class LeaveCause {
  quit, closed, reset, timeout, no_pong, too_slow, flood, error, shutdown, instance_lost, kicked, banned,
};
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
// With ids (HELLO <nick> ids, RESUME), docs/protocol.md "Ids, resume and history":
//   back: nick, arg = milliseconds away (BACK nick ms: a seat resumed)
//   token: arg = the resume token, text = the resume window in seconds
//   resumed: nick, arg = milliseconds away, text = events missed (RESUMED nick ms n)
//   history: code = what (recent, missed, before, search), arg = how many lines follow,
//            text = "partial" when older events were no longer kept (HISTORY what n [partial])
//   history_end: code = what (HISTORY END what)
// A room event sent with ids carries them in a tag before the line: "@<id>/<unix ms> MSG ...";
// `id` and `time_ms` are 0 on a line without one.
struct Event {
  enum class Kind {
    welcome, users, join, leave, msg, me, priv, nick, error, bye, ping, pong, comment,
    back, token, resumed, history, history_end,
  };
  Kind kind;
  std::string nick;
  std::string arg;
  std::string code;
  std::string text;
  std::vector<std::string> users;
  std::uint64_t id = 0;
  std::int64_t time_ms = 0;
};

// The protocol line for `event`, without LF (and without a tag).
std::string format_event(const Event& event);
// The line with its tag when event.id is set: "@42/1796615000123 MSG alice hi".
std::string format_tagged(const Event& event);
// Events kept in the room's history (and sent with a tag to a client with ids).
bool is_room_event(Event::Kind kind);
// The kind's token as the archive stores it ("msg", "back"), and back.
std::string_view kind_token(Event::Kind kind);
std::optional<Event::Kind> kind_from_token(std::string_view token);

// Parses one server line (chatclient's side), with or without a tag. nullopt for a line it
// does not understand.
std::optional<Event> parse_event(std::string_view line);

}  // namespace chat
