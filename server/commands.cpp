#include "server/commands.hpp"

#include "common/log.hpp"
#include "common/render.hpp"
#include "server/room.hpp"
#include "server/session.hpp"

#include <string>

namespace chat {
namespace {

bool starts_with_hello(std::string_view line) {
  if (line.size() < 5) return false;
  std::string verb(line.substr(0, 5));
  for (char& c : verb) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  return verb == "HELLO" && (line.size() == 5 || line[5] == ' ');
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

void Commands::handle_line(std::string_view line) {
  if (!session_.joined()) {
    handshake(line);
    return;
  }
  const bool text = session_.mode() == Session::Mode::text;
  // A blank line in text mode is someone pressing Enter: nothing to say, nothing to refuse.
  if (text && trim(line).empty()) return;
  const auto parsed = text ? parse_text_input(line) : parse_protocol_line(line);
  if (const auto* refusal = std::get_if<Refusal>(&parsed)) {
    session_.refuse(*refusal);
    return;
  }
  command(std::get<Command>(parsed));
}

void Commands::help() {
  for (const auto& h : help_lines()) {
    if (session_.mode() == Session::Mode::text) {
      session_.reply_line("[" + clock_stamp(std::chrono::system_clock::now()) + "] " + h);
    } else {
      session_.reply(Event{Event::Kind::comment, {}, {}, {}, h, {}});
    }
  }
}

void Commands::handshake(std::string_view line) {
  if (session_.mode() == Session::Mode::undecided) {
    if (trim(line).empty()) return;  // telnet and friends may send an empty line first
    session_.choose_mode(starts_with_hello(line) ? Session::Mode::protocol : Session::Mode::text);
  }
  if (session_.mode() == Session::Mode::protocol) {
    const auto parsed = parse_protocol_line(line);
    if (const auto* refusal = std::get_if<Refusal>(&parsed)) {
      session_.refuse(*refusal);
      return;
    }
    const auto& cmd = std::get<Command>(parsed);
    switch (cmd.verb) {
      case Verb::hello: join(cmd.arg); return;
      case Verb::ping: session_.reply(Event{Event::Kind::pong, {}, cmd.arg, {}, {}, {}}); return;
      case Verb::pong: return;
      case Verb::quit: session_.end(LeaveCause::quit, cmd.text, "quit"); return;
      case Verb::help: help(); return;
      case Verb::stats: session_.reply_line(room_.stats_line()); return;
      default: session_.refuse({ErrorCode::not_joined, "send HELLO <nick> first"}); return;
    }
  }
  // Text mode: a line is a nickname, unless it is a command.
  const auto text = trim(line);
  if (text.empty()) return;
  if (text.front() == '/') {
    const auto parsed = parse_text_input(text);
    if (const auto* cmd = std::get_if<Command>(&parsed)) {
      if (cmd->verb == Verb::quit) return session_.end(LeaveCause::quit, cmd->text, "quit");
      if (cmd->verb == Verb::help) return help();
    } else if (const auto* refusal = std::get_if<Refusal>(&parsed);
               refusal->code == ErrorCode::bad_utf8 || refusal->code == ErrorCode::bad_char) {
      session_.refuse(*refusal);  // the text rules first, as for every other line
      return;
    }
    session_.refuse({ErrorCode::not_joined, "type a nickname first"});
    return;
  }
  const auto parsed = parse_protocol_line("HELLO " + std::string(text));
  if (const auto* refusal = std::get_if<Refusal>(&parsed)) {
    session_.refuse(*refusal);
    session_.reply_line("# type a nickname to join (1-24 characters: A-Z a-z 0-9 _ ! -)");
    return;
  }
  join(std::get<Command>(parsed).arg);
}

void Commands::join(std::string_view nick) {
  switch (room_.join(session_.shared_from_this(), std::string(nick))) {
    case Room::JoinResult::joined:
      set_thread_role("reader " + std::string(nick));
      log_info("joined from ", session_.peer(), " as ", to_string(session_.id()), " (",
               session_.mode() == Session::Mode::text ? "text" : "protocol", " mode, ", session_.framing_name(), ")");
      return;
    case Room::JoinResult::nick_in_use:
      session_.refuse({ErrorCode::nick_in_use, std::string(nick)});
      if (session_.mode() == Session::Mode::text) session_.reply_line("# type another nickname");
      return;
    case Room::JoinResult::closed:
      return;  // the server is shutting down; BYE is on its way
  }
}

void Commands::command(const Command& cmd) {
  switch (cmd.verb) {
    case Verb::hello:
      session_.refuse({ErrorCode::bad_args, "already joined as " + session_.nick() + "; use NICK to change nickname"});
      return;
    case Verb::say: room_.say(session_, cmd.text); return;
    case Verb::me: room_.me(session_, cmd.text); return;
    case Verb::priv:
      if (!room_.priv(session_, cmd.arg, cmd.text)) session_.refuse({ErrorCode::no_such_nick, cmd.arg});
      return;
    case Verb::nick: {
      const auto old = session_.nick();
      switch (room_.rename(session_, cmd.arg)) {
        case Room::RenameResult::renamed:
          set_thread_role("reader " + cmd.arg);
          log_info("renamed from ", old);
          return;
        case Room::RenameResult::unchanged: return;
        case Room::RenameResult::nick_in_use: session_.refuse({ErrorCode::nick_in_use, cmd.arg}); return;
      }
      return;
    }
    case Verb::who: room_.who(session_); return;
    case Verb::stats:
      // Protocol mode only: the counters are for programs (chatbench), not a person on nc.
      if (session_.mode() == Session::Mode::protocol) {
        session_.reply_line(room_.stats_line());
      } else {
        session_.refuse({ErrorCode::unknown_command, "STATS"});
      }
      return;
    case Verb::ping: session_.reply(Event{Event::Kind::pong, {}, cmd.arg, {}, {}, {}}); return;
    case Verb::pong: return;  // the reader already counted the line as a sign of life
    case Verb::quit: session_.end(LeaveCause::quit, cmd.text, "quit"); return;
    case Verb::help: help(); return;
  }
}

}  // namespace chat
