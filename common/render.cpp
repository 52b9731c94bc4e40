#include "common/render.hpp"

#include "common/wording.hpp"

#include <charconv>
#include <ctime>

namespace chat {

std::string clock_stamp(std::chrono::system_clock::time_point when) {
  const std::time_t t = std::chrono::system_clock::to_time_t(when);
  std::tm local{};
  localtime_r(&t, &local);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &local);
  return buf;
}

std::optional<std::string> render_event(const Event& e, std::optional<std::size_t> online, bool verbose) {
  using K = Event::Kind;
  auto count = [&] { return online ? " (" + std::to_string(*online) + " online)" : std::string(); };
  auto more = [&] { return verbose ? wording::details(e.code, e.text) : std::string(); };
  switch (e.kind) {
    case K::welcome: return "*** welcome, " + e.nick + " (type /help for commands)";
    case K::users: {
      std::string out = "*** online (" + std::to_string(e.users.size()) + "):";
      for (const auto& u : e.users) out += ' ' + u;
      return out;
    }
    case K::join: return "*** " + e.nick + " joined" + count();
    case K::leave: return "*** " + wording::leave(e.nick, e.code, e.text) + count() + more();
    case K::msg: return "<" + e.nick + "> " + e.text;
    case K::me: return "* " + e.nick + " " + e.text;
    case K::priv: return "[private] " + e.nick + " -> " + e.arg + ": " + e.text;
    case K::nick: return "*** " + e.nick + " is now known as " + e.arg;
    case K::error: return "*** " + wording::refusal(e.code, e.text) + (verbose ? " [" + e.code + "]" : "");
    case K::bye: return "*** " + wording::bye(e.code, e.text) + more();
    case K::comment: return "# " + e.text;
    case K::back: return "*** " + e.nick + " is back (away " + away_time(e.arg) + ")" + count();
    case K::resumed: {
      std::string out = "*** welcome back, " + e.nick + " (away " + away_time(e.arg);
      if (!e.text.empty()) out += ", " + missed_words(e.text);
      return out + ")";
    }
    case K::history: {
      const auto what = e.code == "missed" ? std::string("what you missed")
                        : e.code == "search" ? std::string("found")
                                             : std::string("earlier messages");
      return "--- " + what + " (" + e.arg + (e.text.empty() ? "" : ", older ones are no longer kept") + ") ---";
    }
    case K::history_end: return "--- " + std::string(e.code == "search" ? "end of search" : "now") + " ---";
    case K::token:
    case K::ping:
    case K::pong: return std::nullopt;
  }
  return std::nullopt;
}

std::string away_time(std::string_view milliseconds) {
  std::uint64_t ms = 0;
  const auto [end, ec] = std::from_chars(milliseconds.data(), milliseconds.data() + milliseconds.size(), ms);
  if (ec != std::errc() || end != milliseconds.data() + milliseconds.size()) return "a while";
  const std::uint64_t s = (ms + 500) / 1000;
  if (s < 60) return std::to_string(s) + " s";
  if (s < 3600) return std::to_string(s / 60) + " min" + (s % 60 ? " " + std::to_string(s % 60) + " s" : "");
  return std::to_string(s / 3600) + " h" + (s % 3600 / 60 ? " " + std::to_string(s % 3600 / 60) + " min" : "");
}

std::string missed_words(std::string_view count) {
  if (count == "0") return "nothing you missed";
  if (count == "1") return "1 message you missed";
  return std::string(count) + " messages you missed";
}

std::optional<std::string> render_line(const Event& e, std::chrono::system_clock::time_point when,
                                       std::optional<std::size_t> online, bool verbose) {
  auto body = render_event(e, online, verbose);
  if (!body) return std::nullopt;
  return "[" + clock_stamp(when) + "] " + *body;
}

const std::vector<std::string>& help_lines() {
  static const std::vector<std::string> lines{
      "*** commands:",
      "***   <text>               say something to everyone",
      "***   /me <action>         * you do something",
      "***   /msg <nick> <text>   private message (also: @nick <text>)",
      "***   /nick <new>          change your nickname",
      "***   /who                 who is online",
      "***   /search <words>      find earlier messages",
      "***   /quit [reason]       leave",
      "***   /oper <password>     become an operator (a server with operators)",
      "***   /kick <nick> [why]   operators: remove someone from the room",
      "***   /ban <nick> <time>   operators: remove and keep out, a reason may follow (10m, 2h, 1d)",
      "***   /unban <nick|addr>   operators: lift a ban (a nickname or an address)",
      "***   /bans                operators: list the bans",
      "***   //text               say a line that starts with /",
  };
  return lines;
}

}  // namespace chat
