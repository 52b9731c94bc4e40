#include "common/wording.hpp"

#include <array>
#include <charconv>
#include <cstdio>

namespace chat::wording {
namespace {

// The tables. Each ends with its fallback (key ""). web/app.js reads them through
// wording_script() and fills them the same way (its fill()).
constexpr std::array leave_table{
    Phrase{"quit", "{nick} left[ ({detail})]"},
    Phrase{"closed", "{nick}'s connection closed"},
    Phrase{"reset", "{nick}'s connection was reset"},
    Phrase{"timeout", "{nick}'s connection timed out[ (no reply for {quiet})]"},
    Phrase{"no-pong", "{nick} stopped answering[ (no reply for {quiet})]"},
    Phrase{"too-slow", "{nick} could not keep up and was disconnected"},
    Phrase{"flood", "{nick} sent too fast for too long and was disconnected"},
    Phrase{"error", "{nick} was disconnected by an error"},
    Phrase{"shutdown", "{nick} left: the server is shutting down"},
    Phrase{"instance-lost", "{nick} was lost with their server[ ({detail})]"},
    Phrase{"kicked", "{nick} was removed from the room[ {detail}]"},
    Phrase{"banned", "{nick} was banned from the room[ {detail}]"},
    Phrase{"", "{nick} left"},
};

constexpr std::array bye_table{
    Phrase{"quit", "you left"},
    Phrase{"shutdown", "the server has stopped"},
    Phrase{"kicked", "you were removed from the room[ {detail}]"},
    Phrase{"banned", "you are banned from this room[ {detail}]"},
    Phrase{"no-pong", "the server disconnected you: your client stopped answering"},
    Phrase{"timeout", "the server disconnected you: the connection timed out"},
    Phrase{"too-slow", "the server disconnected you: your connection could not keep up"},
    Phrase{"flood", "the server disconnected you for sending too fast[: {detail}]"},
    Phrase{"error", "the server ended your session after an error"},
    Phrase{"server-full", "the server is full; try again later"},
    Phrase{"too-many", "too many connections from your address"},
    Phrase{"not-allowed", "this server does not take connections from your address"},
    Phrase{"tls-required", "this server takes TLS connections only[; {detail}]"},
    Phrase{"server-busy", "the server is out of resources; try again later"},
    Phrase{"handshake-timeout", "you did not choose a nickname in time"},
    Phrase{"", "the server ended your session"},
};

constexpr std::array lost_table{
    Phrase{"closed", "the server closed the connection"},
    Phrase{"reset", "the connection to the server was reset"},
    Phrase{"timeout", "the server stopped answering[ (no reply for {quiet})]"},
    Phrase{"no-pong", "the server stopped answering[ (no reply for {quiet})]"},
    Phrase{"error", "the connection to the server failed"},
    Phrase{"", "the connection to the server was lost"},
};

constexpr std::array refusal_table{
    Phrase{"bad-nick", "that nickname is not allowed[: {detail}]"},
    Phrase{"nick-in-use", "the nickname {detail} is taken"},
    Phrase{"no-such-nick", "nobody called {detail} is online"},
    Phrase{"too-long", "not sent: too long[ ({detail})]"},
    Phrase{"bad-utf8", "not sent: the line is not valid UTF-8"},
    Phrase{"bad-char", "not sent: the line contains a control character"},
    Phrase{"unknown-command", "unknown command[: {detail}]"},
    Phrase{"bad-args", "[{detail}]"},
    Phrase{"not-joined", "not in the room yet[: {detail}]"},
    Phrase{"nick-held", "the nickname {detail} is kept for someone who dropped and may come back"},
    Phrase{"bad-token", "could not resume[: {detail}]; joining afresh"},
    Phrase{"no-history", "no history[: {detail}]"},
    Phrase{"bad-password", "this room has a password[: {detail}]"},
    Phrase{"not-operator", "only an operator may do that (/oper <password> first)"},
    Phrase{"banned", "banned from this room[: {detail}]"},
    Phrase{"room-split", "this server cannot reach the rest of the room right now[: {detail}]; try again in a moment"},
    Phrase{"", "the server refused that ({code})[: {detail}]"},
};

std::string_view value_of(std::string_view name, const Values& v) {
  if (name == "nick") return v.nick;
  if (name == "detail") return v.detail;
  if (name == "quiet") return v.quiet;
  if (name == "code") return v.code;
  return {};
}

// Fills one piece without brackets; `complete` turns false when a placeholder is empty.
std::string fill_plain(std::string_view words, const Values& v, bool& complete) {
  std::string out;
  while (!words.empty()) {
    const auto open = words.find('{');
    const auto close = open == std::string_view::npos ? open : words.find('}', open);
    if (close == std::string_view::npos) {
      out += words;
      break;
    }
    out += words.substr(0, open);
    const auto value = value_of(words.substr(open + 1, close - open - 1), v);
    if (value.empty()) complete = false;
    out += value;
    words.remove_prefix(close + 1);
  }
  return out;
}

// "16.2 s" -> "16 s"; "521 ms" stays; anything else (a hostile server's "1e300 s", "soon") is
// "". The number is read the same in every locale (from_chars), as web/app.js's quietTime reads it.
std::string for_people(std::string_view duration) {
  const auto number_of = [&](std::size_t unit) { return duration.substr(0, duration.size() - unit); };
  const auto plain = [](std::string_view n) {
    return !n.empty() && n.find_first_not_of("0123456789.") == std::string_view::npos;
  };
  if (duration.ends_with(" ms")) return plain(number_of(3)) ? std::string(duration) : std::string();
  if (!duration.ends_with(" s") || !plain(number_of(2))) return {};
  const auto number = number_of(2);
  double seconds = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), seconds);
  if (ec != std::errc() || end != number.data() + number.size() || seconds >= 1e7) return {};
  return std::to_string(static_cast<long long>(seconds + 0.5)) + " s";
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
      out += escaped;
      continue;
    }
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

void append_json_table(std::string& out, std::string_view name, std::span<const Phrase> table) {
  out += "  ";
  append_json_string(out, name);
  out += ": {";
  bool first = true;
  for (const auto& p : table) {
    out += first ? "\n    " : ",\n    ";
    first = false;
    append_json_string(out, p.key);
    out += ": ";
    append_json_string(out, p.words);
  }
  out += "\n  }";
}

}  // namespace

std::span<const Phrase> leave_phrases() { return leave_table; }
std::span<const Phrase> bye_phrases() { return bye_table; }
std::span<const Phrase> lost_phrases() { return lost_table; }
std::span<const Phrase> refusal_phrases() { return refusal_table; }

std::string fill(std::string_view words, const Values& v) {
  std::string out;
  bool complete = true;  // every placeholder outside brackets has a value
  while (!words.empty()) {
    const auto open = words.find('[');
    const auto close = open == std::string_view::npos ? open : words.find(']', open);
    if (close == std::string_view::npos) {
      out += fill_plain(words, v, complete);
      break;
    }
    out += fill_plain(words.substr(0, open), v, complete);
    bool part_complete = true;
    const std::string optional = fill_plain(words.substr(open + 1, close - open - 1), v, part_complete);
    if (part_complete) out += optional;
    words.remove_prefix(close + 1);
  }
  return complete ? out : std::string();
}

std::string say(std::span<const Phrase> table, std::string_view key, const Values& values) {
  for (const auto& p : table) {
    if (p.key == key || p.key.empty()) {
      std::string words = fill(p.words, values);
      if (!words.empty()) return words;
    }
  }
  return std::string(values.code);
}

std::string leave(std::string_view nick, std::string_view cause, std::string_view detail) {
  const std::string quiet = quiet_time(detail);
  // The detail is for people after a quit (the reason), a kick or a ban (who, until when, and
  // why) and a lost server (which one); the others' is the detector's, for --verbose.
  const bool said = cause == "quit" || cause == "kicked" || cause == "banned" || cause == "instance-lost";
  return say(leave_table, cause, Values{nick, said ? detail : std::string_view(), quiet, cause});
}

std::string bye(std::string_view reason, std::string_view detail) {
  const bool said = reason == "flood" || reason == "kicked" || reason == "banned" || reason == "tls-required";
  return say(bye_table, reason, Values{{}, said ? detail : std::string_view(), {}, reason});
}

std::string lost(std::string_view cause, std::string_view detail) {
  const std::string quiet = quiet_time(detail);
  return say(lost_table, cause, Values{{}, {}, quiet, cause});
}

std::string refusal(std::string_view code, std::string_view detail) {
  return say(refusal_table, code, Values{{}, detail, {}, code});
}

std::string quiet_time(std::string_view detail) {
  constexpr std::string_view after = " after last traffic)";
  if (!detail.ends_with(after)) return {};
  const auto end = detail.size() - after.size();
  const auto comma = detail.rfind(", ", end);
  if (comma == std::string_view::npos) return {};
  return for_people(detail.substr(comma + 2, end - comma - 2));
}

std::string details(std::string_view code, std::string_view detail) {
  if (code.empty() && detail.empty()) return {};
  std::string out = " [";
  out += code;
  if (!detail.empty()) {
    if (!code.empty()) out += ": ";
    out += detail;
  }
  return out + "]";
}

std::string wording_script() {
  std::string out =
      "// The words people read, from common/wording.cpp (served by chatserver; not a file).\n"
      "const CHAT_WORDING = {\n";
  append_json_table(out, "leave", leave_table);
  out += ",\n";
  append_json_table(out, "bye", bye_table);
  out += ",\n";
  append_json_table(out, "lost", lost_table);
  out += ",\n";
  append_json_table(out, "refusal", refusal_table);
  out += "\n};\n";
  return out;
}

}  // namespace chat::wording
