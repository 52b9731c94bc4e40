#include "common/protocol.hpp"

#include "common/text.hpp"
#include "common/units.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <utility>

namespace chat {
namespace {

// Splits at the first space: ("SAY", "hello world"). The rest keeps its inner spacing.
std::pair<std::string_view, std::string_view> split_word(std::string_view s) {
  const auto sp = s.find(' ');
  if (sp == std::string_view::npos) return {s, {}};
  return {s.substr(0, sp), s.substr(sp + 1)};
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'a' && x <= 'z') x = static_cast<char>(x - 'a' + 'A');
    if (y >= 'a' && y <= 'z') y = static_cast<char>(y - 'a' + 'A');
    if (x != y) return false;
  }
  return true;
}

Refusal refuse(ErrorCode code, std::string detail) { return Refusal{code, std::move(detail)}; }

std::optional<Refusal> check_line_text(std::string_view line) {
  switch (check_text(line)) {
    case TextProblem::bad_utf8: return refuse(ErrorCode::bad_utf8, "line is not valid UTF-8");
    case TextProblem::bad_char: return refuse(ErrorCode::bad_char, "line contains a control character");
    case TextProblem::none: break;
  }
  return std::nullopt;
}

ParseResult nick_command(Verb verb, std::string_view nick) {
  if (auto problem = nick_problem(nick)) {
    return refuse(ErrorCode::bad_nick, std::string(nick.empty() ? "(empty)" : nick) + ": " + *problem);
  }
  return Command{verb, std::string(nick), {}};
}

ParseResult text_command(Verb verb, std::string_view text, std::string_view usage) {
  if (text.empty()) return refuse(ErrorCode::bad_args, "usage: " + std::string(usage));
  return Command{verb, {}, std::string(text)};
}

ParseResult priv_command(std::string_view rest, std::string_view usage) {
  auto [to, text] = split_word(rest);
  if (to.empty() || text.empty()) return refuse(ErrorCode::bad_args, "usage: " + std::string(usage));
  if (nick_problem(to)) return refuse(ErrorCode::no_such_nick, std::string(to));
  return Command{Verb::priv, std::string(to), std::string(text)};
}

// A decimal number that fits in 64 bits, nothing else ("007" is fine, "+7", "7x", "" are not).
std::optional<std::uint64_t> parse_number(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

bool is_token(std::string_view s) {
  if (s.size() < 32 || s.size() > 128) return false;
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

ParseResult hello_command(std::string_view rest) {
  // HELLO <nick> [ids]: the second word is new; a nickname never has a space, so a line with
  // one was refused before and means nothing else now.
  auto [nick, option] = split_word(rest);
  if (!nick.empty() && iequals(option, "ids")) {
    auto parsed = nick_command(Verb::hello, nick);
    if (auto* cmd = std::get_if<Command>(&parsed)) cmd->text = "ids";
    return parsed;
  }
  return nick_command(Verb::hello, rest);  // a space in it is a bad nickname, as it always was
}

// KICK <nick> [reason]: the reason is the rest of the line, spaces and all.
ParseResult kick_command(std::string_view rest, std::string_view usage) {
  auto [nick, reason] = split_word(rest);
  if (nick.empty()) return refuse(ErrorCode::bad_args, "usage: " + std::string(usage));
  if (nick_problem(nick)) return refuse(ErrorCode::no_such_nick, std::string(nick));
  return Command{Verb::kick, std::string(nick), std::string(reason)};
}

// BAN <nick> <duration> [reason]: a duration as common/units reads it (30s, 10m, 2h, 1d), from
// min_ban to max_ban; the reason is the rest of the line.
ParseResult ban_command(std::string_view rest, std::string_view usage) {
  auto [nick, more] = split_word(rest);
  auto [length, reason] = split_word(more);
  if (nick.empty() || length.empty()) {
    return refuse(ErrorCode::bad_args, "usage: " + std::string(usage) + " (duration: 30s, 10m, 2h or 1d; at most 30d)");
  }
  if (auto problem = nick_problem(nick)) return refuse(ErrorCode::bad_nick, std::string(nick) + ": " + *problem);
  const auto duration = parse_duration(length);
  if (!duration) {
    return refuse(ErrorCode::bad_args,
                  "'" + std::string(length) + "' is not a duration: use 30s, 10m, 2h or 1d (at most 30d)");
  }
  if (*duration < min_ban || *duration > max_ban) {
    return refuse(ErrorCode::bad_args, "a ban lasts from 1s to 30d, not " + std::string(length));
  }
  Command cmd{Verb::ban, std::string(nick), std::string(reason)};
  cmd.duration = *duration;
  return cmd;
}

// UNBAN <nick or address>: one word; whether it is a nickname or an address is the server's to
// tell (it knows addresses).
ParseResult unban_command(std::string_view rest, std::string_view usage) {
  if (rest.empty() || rest.find(' ') != std::string_view::npos) {
    return refuse(ErrorCode::bad_args, "usage: " + std::string(usage));
  }
  return Command{Verb::unban, std::string(rest), {}};
}

// "1d", "2h", "10m", "30s", or "1500ms": the largest unit that says `d` exactly.
std::string duration_word(std::chrono::milliseconds d) {
  const auto ms = d.count();
  for (const auto& [unit, size] : {std::pair{"d", 86'400'000LL}, {"h", 3'600'000LL}, {"m", 60'000LL}, {"s", 1'000LL}}) {
    if (ms != 0 && ms % size == 0) return std::to_string(ms / size) + unit;
  }
  return std::to_string(ms) + "ms";
}

ParseResult resume_command(std::string_view rest) {
  auto [token, last] = split_word(rest);
  const auto id = parse_number(last);
  if (!is_token(token) || !id) return refuse(ErrorCode::bad_args, "usage: RESUME <token> <last id seen>");
  Command cmd{Verb::resume, std::string(token), {}};
  cmd.id = *id;
  return cmd;
}

ParseResult history_command(std::string_view rest) {
  auto [word, more] = split_word(rest);
  auto [id_text, n_text] = split_word(more);
  const auto id = parse_number(id_text);
  const auto n = parse_number(n_text);
  if (!iequals(word, "BEFORE") || !id || !n || *n == 0) {
    return refuse(ErrorCode::bad_args, "usage: HISTORY BEFORE <id> <n> (n: 1 to " +
                                           std::to_string(max_history_page) + ")");
  }
  Command cmd{Verb::history, {}, {}};
  cmd.id = *id;
  cmd.count = static_cast<std::size_t>(std::min<std::uint64_t>(*n, max_history_page));
  return cmd;
}

}  // namespace

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::bad_nick: return "bad-nick";
    case ErrorCode::nick_in_use: return "nick-in-use";
    case ErrorCode::no_such_nick: return "no-such-nick";
    case ErrorCode::too_long: return "too-long";
    case ErrorCode::bad_utf8: return "bad-utf8";
    case ErrorCode::bad_char: return "bad-char";
    case ErrorCode::unknown_command: return "unknown-command";
    case ErrorCode::bad_args: return "bad-args";
    case ErrorCode::not_joined: return "not-joined";
    case ErrorCode::nick_held: return "nick-held";
    case ErrorCode::bad_token: return "bad-token";
    case ErrorCode::no_history: return "no-history";
    case ErrorCode::room_split: return "room-split";
    case ErrorCode::bad_password: return "bad-password";
    case ErrorCode::not_operator: return "not-operator";
    case ErrorCode::banned: return "banned";
  }
  return "unknown";
}

ParseResult parse_protocol_line(std::string_view line) {
  if (auto bad = check_line_text(line)) return *bad;
  auto [verb, rest] = split_word(line);
  if (iequals(verb, "HELLO")) return hello_command(rest);
  if (iequals(verb, "SAY")) return text_command(Verb::say, rest, "SAY <text>");
  if (iequals(verb, "ME")) return text_command(Verb::me, rest, "ME <text>");
  if (iequals(verb, "PRIV")) return priv_command(rest, "PRIV <nick> <text>");
  if (iequals(verb, "NICK")) return nick_command(Verb::nick, rest);
  if (iequals(verb, "WHO")) return Command{Verb::who, {}, {}};
  if (iequals(verb, "PING")) return Command{Verb::ping, std::string(rest), {}};
  if (iequals(verb, "PONG")) return Command{Verb::pong, std::string(rest), {}};
  if (iequals(verb, "QUIT")) return Command{Verb::quit, {}, std::string(rest)};
  if (iequals(verb, "HELP")) return Command{Verb::help, {}, {}};
  if (iequals(verb, "STATS")) return Command{Verb::stats, {}, {}};
  if (iequals(verb, "RESUME")) return resume_command(rest);
  if (iequals(verb, "HISTORY")) return history_command(rest);
  if (iequals(verb, "SEARCH")) return text_command(Verb::search, rest, "SEARCH <words>");
  if (iequals(verb, "PASS")) return text_command(Verb::pass, rest, "PASS <password>");
  if (iequals(verb, "OPER")) return text_command(Verb::oper, rest, "OPER <password>");
  if (iequals(verb, "KICK")) return kick_command(rest, "KICK <nick> [reason]");
  if (iequals(verb, "BAN")) return ban_command(rest, "BAN <nick> <duration> [reason]");
  if (iequals(verb, "UNBAN")) return unban_command(rest, "UNBAN <nick or address>");
  if (iequals(verb, "BANS")) return Command{Verb::bans, {}, {}};
  if (!verb.empty()) return refuse(ErrorCode::unknown_command, std::string(verb));
  const bool blank = line.find_first_not_of(" \t") == std::string_view::npos;
  return refuse(ErrorCode::unknown_command, blank ? "(empty line)" : "(line starts with a space)");
}

ParseResult parse_text_input(std::string_view line) {
  if (auto bad = check_line_text(line)) return *bad;
  if (line.empty()) return refuse(ErrorCode::bad_args, "nothing to say");
  if (line.starts_with("//")) return Command{Verb::say, {}, std::string(line.substr(1))};
  if (line.front() == '@') return priv_command(line.substr(1), "@<nick> <text>");
  if (line.front() != '/') return Command{Verb::say, {}, std::string(line)};
  auto [word, rest] = split_word(line.substr(1));
  if (iequals(word, "me")) return text_command(Verb::me, rest, "/me <action>");
  if (iequals(word, "msg")) return priv_command(rest, "/msg <nick> <text>");
  if (iequals(word, "nick")) return nick_command(Verb::nick, rest);
  if (iequals(word, "who") || iequals(word, "names")) return Command{Verb::who, {}, {}};
  if (iequals(word, "quit")) return Command{Verb::quit, {}, std::string(rest)};
  if (iequals(word, "help")) return Command{Verb::help, {}, {}};
  if (iequals(word, "search")) return text_command(Verb::search, rest, "/search <words>");
  if (iequals(word, "oper")) return text_command(Verb::oper, rest, "/oper <password>");
  if (iequals(word, "kick")) return kick_command(rest, "/kick <nick> [reason]");
  if (iequals(word, "ban")) return ban_command(rest, "/ban <nick> <duration> [reason]");
  if (iequals(word, "unban")) return unban_command(rest, "/unban <nick or address>");
  if (iequals(word, "bans")) return Command{Verb::bans, {}, {}};
  return refuse(ErrorCode::unknown_command, "/" + std::string(word) + " (type /help for the commands)");
}

std::string format_command(const Command& cmd) {
  auto join = [](std::string_view verb, std::string_view rest) {
    std::string out(verb);
    if (!rest.empty()) {
      out += ' ';
      out += rest;
    }
    return out;
  };
  switch (cmd.verb) {
    case Verb::hello: return join("HELLO", cmd.text.empty() ? cmd.arg : cmd.arg + " " + cmd.text);
    case Verb::say: return join("SAY", cmd.text);
    case Verb::me: return join("ME", cmd.text);
    case Verb::priv: return "PRIV " + cmd.arg + " " + cmd.text;
    case Verb::nick: return join("NICK", cmd.arg);
    case Verb::who: return "WHO";
    case Verb::ping: return join("PING", cmd.arg);
    case Verb::pong: return join("PONG", cmd.arg);
    case Verb::quit: return join("QUIT", cmd.text);
    case Verb::help: return "HELP";
    case Verb::stats: return "STATS";
    case Verb::resume: return "RESUME " + cmd.arg + " " + std::to_string(cmd.id);
    case Verb::history: return "HISTORY BEFORE " + std::to_string(cmd.id) + " " + std::to_string(cmd.count);
    case Verb::search: return join("SEARCH", cmd.text);
    case Verb::pass: return join("PASS", cmd.text);
    case Verb::oper: return join("OPER", cmd.text);
    case Verb::kick: return join("KICK", cmd.text.empty() ? cmd.arg : cmd.arg + " " + cmd.text);
    case Verb::ban: {
      const std::string head = cmd.arg + " " + duration_word(cmd.duration);
      return join("BAN", cmd.text.empty() ? head : head + " " + cmd.text);
    }
    case Verb::unban: return join("UNBAN", cmd.arg);
    case Verb::bans: return "BANS";
  }
  return {};
}

namespace {
constexpr std::array<std::pair<LeaveCause, std::string_view>, 12> cause_tokens{{
    {LeaveCause::quit, "quit"},         {LeaveCause::closed, "closed"},
    {LeaveCause::reset, "reset"},       {LeaveCause::timeout, "timeout"},
    {LeaveCause::no_pong, "no-pong"},   {LeaveCause::too_slow, "too-slow"},
    {LeaveCause::flood, "flood"},       {LeaveCause::error, "error"},
    {LeaveCause::shutdown, "shutdown"}, {LeaveCause::instance_lost, "instance-lost"},
    {LeaveCause::kicked, "kicked"},     {LeaveCause::banned, "banned"},
}};
}  // namespace

std::string_view to_string(LeaveCause cause) {
  for (const auto& [c, token] : cause_tokens) {
    if (c == cause) return token;
  }
  return "error";
}

std::optional<LeaveCause> leave_cause_from(std::string_view token) {
  for (const auto& [c, t] : cause_tokens) {
    if (t == token) return c;
  }
  return std::nullopt;
}

std::string format_event(const Event& e) {
  auto words = [](std::initializer_list<std::string_view> parts) {
    std::string out;
    for (auto p : parts) {
      if (p.empty()) continue;
      if (!out.empty()) out += ' ';
      out += p;
    }
    return out;
  };
  using K = Event::Kind;
  switch (e.kind) {
    case K::welcome: return words({"WELCOME", e.nick});
    case K::users: {
      std::string out = "USERS";
      for (const auto& u : e.users) out += ' ' + u;
      return out;
    }
    case K::join: return words({"JOIN", e.nick});
    case K::leave: return words({"LEAVE", e.nick, e.code, e.text});
    case K::msg: return "MSG " + e.nick + " " + e.text;
    case K::me: return "ME " + e.nick + " " + e.text;
    case K::priv: return "PRIV " + e.nick + " " + e.arg + " " + e.text;
    case K::nick: return words({"NICK", e.nick, e.arg});
    case K::error: return words({"ERROR", e.code, e.text});
    case K::bye: return words({"BYE", e.code, e.text});
    case K::ping: return words({"PING", e.arg});
    case K::pong: return words({"PONG", e.arg});
    case K::comment: return "# " + e.text;
    case K::back: return words({"BACK", e.nick, e.arg});
    case K::token: return words({"TOKEN", e.arg, e.text});
    case K::resumed: return words({"RESUMED", e.nick, e.arg, e.text});
    case K::history: return words({"HISTORY", e.code, e.arg, e.text});
    case K::history_end: return words({"HISTORY", "END", e.code});
  }
  return {};
}

std::string format_tagged(const Event& e) {
  if (e.id == 0) return format_event(e);
  return "@" + std::to_string(e.id) + "/" + std::to_string(e.time_ms) + " " + format_event(e);
}

namespace {
constexpr std::array<std::pair<Event::Kind, std::string_view>, 7> room_kinds{{
    {Event::Kind::join, "join"}, {Event::Kind::leave, "leave"}, {Event::Kind::msg, "msg"},
    {Event::Kind::me, "me"},     {Event::Kind::nick, "nick"},   {Event::Kind::back, "back"},
    {Event::Kind::comment, "comment"},
}};
}  // namespace

bool is_room_event(Event::Kind kind) {
  for (const auto& [k, token] : room_kinds) {
    if (k == kind) return true;
  }
  return false;
}

std::string_view kind_token(Event::Kind kind) {
  for (const auto& [k, token] : room_kinds) {
    if (k == kind) return token;
  }
  return kind == Event::Kind::priv ? "priv" : "other";
}

std::optional<Event::Kind> kind_from_token(std::string_view token) {
  for (const auto& [k, t] : room_kinds) {
    if (t == token) return k;
  }
  return std::nullopt;
}

std::optional<Event> parse_event(std::string_view line) {
  using K = Event::Kind;
  if (line.starts_with('@')) {
    // "@<id>/<unix ms> <line>"
    auto [tag, rest] = split_word(line.substr(1));
    const auto slash = tag.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    const auto id = parse_number(tag.substr(0, slash));
    const auto ms = parse_number(tag.substr(slash + 1));
    if (!id || *id == 0 || !ms || *ms > (std::uint64_t{1} << 62)) return std::nullopt;
    auto event = parse_event(rest);
    if (!event || rest.starts_with('@')) return std::nullopt;
    event->id = *id;
    event->time_ms = static_cast<std::int64_t>(*ms);
    return event;
  }
  if (line.starts_with('#')) {
    line.remove_prefix(1);
    if (line.starts_with(' ')) line.remove_prefix(1);
    return Event{K::comment, {}, {}, {}, std::string(line), {}};
  }
  auto [verb, rest] = split_word(line);
  auto [first, after_first] = split_word(rest);
  auto [second, after_second] = split_word(after_first);
  Event e{K::comment, {}, {}, {}, {}, {}};
  if (verb == "WELCOME" && !rest.empty()) {
    e.kind = K::welcome, e.nick = rest;
  } else if (verb == "USERS") {
    e.kind = K::users;
    std::string_view r = rest;
    while (!r.empty()) {
      auto [u, more] = split_word(r);
      if (!u.empty()) e.users.emplace_back(u);
      r = more;
    }
  } else if (verb == "JOIN" && !rest.empty()) {
    e.kind = K::join, e.nick = rest;
  } else if (verb == "LEAVE" && !first.empty() && !second.empty()) {
    e.kind = K::leave, e.nick = first, e.code = second, e.text = after_second;
  } else if (verb == "MSG" && !first.empty()) {
    e.kind = K::msg, e.nick = first, e.text = after_first;
  } else if (verb == "ME" && !first.empty()) {
    e.kind = K::me, e.nick = first, e.text = after_first;
  } else if (verb == "PRIV" && !first.empty() && !second.empty()) {
    e.kind = K::priv, e.nick = first, e.arg = second, e.text = after_second;
  } else if (verb == "NICK" && !first.empty() && !second.empty()) {
    e.kind = K::nick, e.nick = first, e.arg = second;
  } else if (verb == "ERROR" && !first.empty()) {
    e.kind = K::error, e.code = first, e.text = after_first;
  } else if (verb == "BYE" && !first.empty()) {
    e.kind = K::bye, e.code = first, e.text = after_first;
  } else if (verb == "PING") {
    e.kind = K::ping, e.arg = rest;
  } else if (verb == "PONG") {
    e.kind = K::pong, e.arg = rest;
  } else if (verb == "BACK" && !first.empty() && parse_number(after_first)) {
    e.kind = K::back, e.nick = first, e.arg = after_first;
  } else if (verb == "TOKEN" && !first.empty()) {
    e.kind = K::token, e.arg = first, e.text = after_first;
  } else if (verb == "RESUMED" && !first.empty() && parse_number(second)) {
    e.kind = K::resumed, e.nick = first, e.arg = second, e.text = after_second;
  } else if (verb == "HISTORY" && first == "END" && !second.empty()) {
    e.kind = K::history_end, e.code = second;
  } else if (verb == "HISTORY" && !first.empty() && parse_number(second)) {
    e.kind = K::history, e.code = first, e.arg = second, e.text = after_second;
  } else {
    return std::nullopt;
  }
  return e;
}

}  // namespace chat
