#include "server/commands.hpp"

#include "common/log.hpp"
#include "common/render.hpp"
#include "common/text.hpp"
#include "server/archive.hpp"
#include "server/bans.hpp"
#include "server/room.hpp"
#include "server/session.hpp"

#include <openssl/crypto.h>

#include <chrono>
#include <string>
#include <thread>

namespace chat {
namespace {

bool starts_with(std::string_view line, std::string_view verb) {
  if (line.size() < verb.size()) return false;
  for (std::size_t i = 0; i < verb.size(); ++i) {
    const char c = line[i];
    if ((c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c) != verb[i]) return false;
  }
  return line.size() == verb.size() || line[verb.size()] == ' ';
}

// A program's first line: HELLO, RESUME to take a seat back, or PASS (the room password) before
// either (docs/protocol.md).
bool starts_protocol(std::string_view line) {
  return starts_with(line, "HELLO") || starts_with(line, "RESUME") || starts_with(line, "PASS");
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
    session_.choose_mode(starts_protocol(line) ? Session::Mode::protocol : Session::Mode::text);
  }
  if (session_.mode() == Session::Mode::protocol) {
    const auto parsed = parse_protocol_line(line);
    if (const auto* refusal = std::get_if<Refusal>(&parsed)) {
      session_.refuse(*refusal);
      return;
    }
    const auto& cmd = std::get<Command>(parsed);
    switch (cmd.verb) {
      case Verb::pass:
        pass_ = cmd.text;  // (checked at HELLO or RESUME)
        return;
      case Verb::hello:
        if (!authorized_once()) return;
        session_.use_ids(cmd.text == "ids");
        join(cmd.arg);
        return;
      case Verb::resume:
        if (!authorized_once()) return;
        resume(cmd);
        return;
      case Verb::ping: session_.reply(Event{Event::Kind::pong, {}, cmd.arg, {}, {}, {}}); return;
      case Verb::pong: return;
      case Verb::quit: session_.end(LeaveCause::quit, cmd.text, "quit"); return;
      case Verb::help: help(); return;
      case Verb::stats: session_.reply_line(room_.stats_line()); return;
      default: session_.refuse({ErrorCode::not_joined, "send HELLO <nick> first"}); return;
    }
  }
  // Text mode: a line is a nickname, unless it is a command; or, after a nickname in a room
  // with a password, the password, as typed.
  if (!waiting_nick_.empty()) {
    if (!authorized(std::string(line))) {
      session_.reply_line("# type the room's password again");
      return;
    }
    const std::string nick = std::move(waiting_nick_);
    waiting_nick_.clear();
    join(nick);
    return;
  }
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
  if (room_.password() != nullptr && !authorized_) {
    waiting_nick_ = std::get<Command>(parsed).arg;
    session_.reply_line("# this room has a password: type it");
    return;
  }
  join(std::get<Command>(parsed).arg);
}

bool Commands::authorized(const std::optional<std::string>& password) {
  RoomPassword* room_password = room_.password();
  if (room_password == nullptr || authorized_) return true;
  if (!password) {
    session_.refuse({ErrorCode::bad_password, "send PASS <password> before HELLO or RESUME"});
    return false;
  }
  if (password_matches(*room_password, *password)) {
    authorized_ = true;
    return true;
  }
  if (session_.ended()) return false;
  log_info("wrong room password from ", session_.peer());
  session_.refuse({ErrorCode::bad_password, "wrong password"});
  return false;
}

bool Commands::authorized_once() {
  const bool ok = authorized(pass_);
  // Each PASS is checked once; the password does not stay in this connection's memory.
  if (pass_) {
    OPENSSL_cleanse(pass_->data(), pass_->size());
    pass_.reset();
  }
  return ok;
}

bool Commands::password_matches(RoomPassword& expected, const std::string& password) {
  const std::string address = session_.address().to_string();
  // An address that keeps guessing waits longer for each answer, on any of its connections.
  const auto until = std::chrono::steady_clock::now() + room_.guesses().delay(address);
  while (std::chrono::steady_clock::now() < until && !session_.ended()) {
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        until - std::chrono::steady_clock::now(), std::chrono::milliseconds(100)));
  }
  if (session_.ended()) return false;
  if (expected.check(password)) {
    room_.guesses().succeeded(address);
    return true;
  }
  room_.guesses().failed(address);
  room_.count_wrong_password();
  return false;
}

void Commands::oper(const std::string& password) {
  RoomPassword* admin = room_.admin_password();
  if (admin == nullptr) {
    session_.refuse({ErrorCode::bad_args, "this server has no operators (chatserver --admin-password-file)"});
    return;
  }
  if (operator_) return;
  if (!password_matches(*admin, password)) {
    if (session_.ended()) return;
    log_info("wrong operator password from ", session_.peer());
    session_.refuse({ErrorCode::bad_password, "wrong operator password"});
    return;
  }
  operator_ = true;
  log_info("is an operator now");
  const bool text = session_.mode() == Session::Mode::text;
  session_.reply_line(text ? "# you are an operator: /kick <nick> [reason] removes someone from the room, "
                             "/ban <nick> <duration> [reason] keeps them out (/unban, /bans)"
                           : "# you are an operator: KICK <nick> [reason] removes someone from the room, "
                             "BAN <nick> <duration> [reason] keeps them out (UNBAN, BANS)");
}

bool Commands::may(std::string_view verb) {
  if (operator_) return true;
  std::string named(verb);
  if (session_.mode() == Session::Mode::text) {
    for (char& c : named) c = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    named.insert(0, "/");
  }
  session_.refuse({ErrorCode::not_operator, named});
  return false;
}

void Commands::kick(const std::string& nick, const std::string& reason) {
  if (!may("KICK")) return;
  switch (room_.kick(session_, nick, reason)) {
    case Room::KickResult::kicked: log_info("kicked ", nick, reason.empty() ? "" : ": ", reason); return;
    case Room::KickResult::no_such_nick: session_.refuse({ErrorCode::no_such_nick, nick}); return;
    case Room::KickResult::not_here:
      session_.refuse({ErrorCode::bad_args, nick + " is on another chatserver of the room (kicks do not cross servers yet)"});
      return;
  }
}

void Commands::ban(const Command& cmd) {
  if (!may("BAN")) return;
  auto outcome = room_.ban(session_, cmd.arg, cmd.duration, cmd.text);
  const auto now = std::chrono::system_clock::now();
  switch (outcome.result) {
    case Room::BanResult::banned:
      // The operator reads what was banned (the address too) before the room's LEAVE.
      log_info("banned ", Bans::describe(outcome.ban, now));
      session_.reply_line("# banned " + Bans::describe(outcome.ban, now));
      outcome.member->end(LeaveCause::banned, outcome.detail, "banned");
      return;
    case Room::BanResult::banned_absent:
      log_info("banned ", Bans::describe(outcome.ban, now), " (not connected)");
      session_.reply_line("# banned " + Bans::describe(outcome.ban, now, "(no address: not connected here)"));
      return;
    case Room::BanResult::not_here:
      session_.refuse({ErrorCode::bad_args, cmd.arg + " is on another chatserver of the room (bans do not cross servers yet)"});
      return;
    case Room::BanResult::full:
      session_.refuse({ErrorCode::bad_args, "too many bans (" + std::to_string(Bans::max_bans) +
                                                "): lift some with UNBAN first"});
      return;
    case Room::BanResult::self: session_.refuse({ErrorCode::bad_args, "you cannot ban yourself"}); return;
  }
}

void Commands::unban(const std::string& nick_or_address) {
  if (!may("UNBAN")) return;
  std::vector<BanRecord> lifted;
  if (!nick_problem(nick_or_address)) {
    lifted = room_.bans().lift_nick(nick_or_address);
  } else {
    std::error_code bad;
    const auto address = asio::ip::make_address(nick_or_address, bad);
    if (bad) {
      session_.refuse({ErrorCode::bad_args, nick_or_address + " is neither a nickname nor an address"});
      return;
    }
    lifted = room_.bans().lift_address(address);
  }
  if (lifted.empty()) {
    session_.refuse({ErrorCode::bad_args, nick_or_address + " is not banned"});
    return;
  }
  for (const auto& ban : lifted) {
    const std::string what = ban.nick + " " + (ban.address.empty() ? std::string("(no address)") : ban.address);
    log_info("unbanned ", what);
    session_.reply_line("# unbanned " + what);
  }
}

void Commands::list_bans() {
  if (!may("BANS")) return;
  // At most max_listed lines: a reply is bounded like any other (--send-queue).
  constexpr std::size_t max_listed = 500;
  const auto now = std::chrono::system_clock::now();
  const auto bans = room_.bans().list(now);
  session_.reply_line("# bans (" + std::to_string(bans.size()) + ")");
  for (std::size_t i = 0; i < bans.size() && i < max_listed; ++i) {
    session_.reply_line("# banned " + Bans::describe(bans[i], now));
  }
  if (bans.size() > max_listed) {
    session_.reply_line("# ... and " + std::to_string(bans.size() - max_listed) + " more (UNBAN <nick or address>)");
  }
}

std::optional<std::string> Commands::nick_banned(std::string_view nick) {
  const auto now = std::chrono::system_clock::now();
  const auto ban = room_.bans().for_nick(nick, now);
  if (!ban) return std::nullopt;
  return std::string(nick) + " until " + Bans::until_text(ban->until_ms, now);
}

std::optional<std::string> Commands::address_banned() {
  const auto now = std::chrono::system_clock::now();
  const auto ban = room_.bans().for_address(session_.address(), now);
  if (!ban) return std::nullopt;
  return Bans::address_text(session_.address()) + " until " + Bans::until_text(ban->until_ms, now);
}

void Commands::join(std::string_view nick) {
  // A banned nickname may try another; a banned address (banned since it came in) cannot.
  if (const auto why = nick_banned(nick)) {
    log_info("refused ", session_.peer(), " as ", nick, ": banned (", *why, ")");
    session_.refuse({ErrorCode::banned, *why});
    if (session_.mode() == Session::Mode::text) session_.reply_line("# type another nickname");
    return;
  }
  if (const auto why = address_banned()) {
    log_info("refused ", session_.peer(), " as ", nick, ": banned (", *why, ")");
    session_.refuse({ErrorCode::banned, *why});
    return;
  }
  switch (room_.join(session_.shared_from_this(), std::string(nick))) {
    case Room::JoinResult::joined:
      set_thread_role("reader " + std::string(nick));
      log_info("joined from ", session_.peer(), " as ", to_string(session_.id()), " (",
               session_.mode() == Session::Mode::text ? "text mode"
               : session_.ids()                       ? "protocol mode with ids"
                                                      : "protocol mode",
               ", ", session_.framing_name(), session_.tls() ? " over TLS" : "", ")");
      return;
    case Room::JoinResult::nick_in_use:
      session_.refuse({ErrorCode::nick_in_use, std::string(nick)});
      if (session_.mode() == Session::Mode::text) session_.reply_line("# type another nickname");
      return;
    case Room::JoinResult::nick_held:
      session_.refuse({ErrorCode::nick_held, std::string(nick)});
      if (session_.mode() == Session::Mode::text) session_.reply_line("# type another nickname");
      return;
    case Room::JoinResult::split:
      session_.refuse({ErrorCode::room_split, room_.split_detail().empty() ? "redis did not answer in time"
                                                                            : room_.split_detail()});
      if (session_.mode() == Session::Mode::text) session_.reply_line("# type your nickname again in a moment");
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
      if (const auto why = nick_banned(cmd.arg)) {
        session_.refuse({ErrorCode::banned, *why});
        return;
      }
      const auto old = session_.nick();
      switch (room_.rename(session_, cmd.arg)) {
        case Room::RenameResult::renamed:
          set_thread_role("reader " + cmd.arg);
          log_info("renamed from ", old);
          return;
        case Room::RenameResult::unchanged: return;
        case Room::RenameResult::nick_in_use: session_.refuse({ErrorCode::nick_in_use, cmd.arg}); return;
        case Room::RenameResult::nick_held: session_.refuse({ErrorCode::nick_held, cmd.arg}); return;
        case Room::RenameResult::split:
          session_.refuse({ErrorCode::room_split, room_.split_detail().empty() ? "redis did not answer in time"
                                                                                : room_.split_detail()});
          return;
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
    case Verb::resume:
      session_.refuse({ErrorCode::bad_args, "already joined as " + session_.nick()});
      return;
    case Verb::history: history(cmd); return;
    case Verb::search: search(cmd.text); return;
    case Verb::pass: return;  // (joined: the password did its work already)
    case Verb::oper: oper(cmd.text); return;
    case Verb::kick: kick(cmd.arg, cmd.text); return;
    case Verb::ban: ban(cmd); return;
    case Verb::unban: unban(cmd.arg); return;
    case Verb::bans: list_bans(); return;
  }
}

void Commands::resume(const Command& cmd) {
  // A banned nickname (or address) does not take its seat back either.
  const auto nick = room_.seat_nick(cmd.arg);
  auto why = nick ? nick_banned(*nick) : std::nullopt;
  if (!why) why = address_banned();
  if (why) {
    log_info("refused ", session_.peer(), "'s resume: banned (", *why, ")");
    session_.refuse({ErrorCode::banned, *why});
    return;
  }
  session_.use_ids(true);
  const auto result = room_.resume(session_.shared_from_this(), cmd.arg, cmd.id);
  switch (result) {
    case Room::ResumeResult::resumed:
      set_thread_role("reader " + session_.nick());
      log_info("resumed from ", session_.peer(), " as ", to_string(session_.id()), " (protocol mode with ids, ",
               session_.framing_name(), session_.tls() ? " over TLS" : "", ")");
      return;
    case Room::ResumeResult::unknown:
    case Room::ResumeResult::used:
    case Room::ResumeResult::expired:
      // The token is never logged; the refusal says which case it was.
      session_.use_ids(false);
      session_.refuse({ErrorCode::bad_token, result == Room::ResumeResult::expired ? "expired"
                                             : result == Room::ResumeResult::used  ? "already used"
                                                                                   : "unknown or already used"});
      return;
    case Room::ResumeResult::split:
      session_.use_ids(false);
      session_.refuse({ErrorCode::room_split, room_.split_detail().empty() ? "redis did not answer in time"
                                                                            : room_.split_detail()});
      return;
    case Room::ResumeResult::closed: return;  // shutting down; BYE is on its way
  }
}

void Commands::send_block(std::string_view what, const std::vector<ArchivedEvent>& events) {
  // One reply, all stamped with the same head: a room event said while the block is queued goes
  // after it, never inside it.
  const auto head = room_.history().head();
  const bool text = session_.mode() == Session::Mode::text;
  const auto count = std::to_string(events.size());
  const Event header{Event::Kind::history, {}, count, std::string(what), {}, {}};
  const Event footer{Event::Kind::history_end, {}, {}, std::string(what), {}, {}};
  session_.send_own(text ? *render_event(header) : format_event(header), head, "reply");
  for (const auto& r : events) {
    Event e = r.event;
    e.id = r.id;
    e.time_ms = r.time_ms;
    if (text) {
      const auto when = std::chrono::system_clock::time_point(std::chrono::milliseconds(r.time_ms));
      if (auto line = render_line(e, when)) session_.send_own(std::move(*line), head, "reply");
    } else {
      session_.send_own(format_tagged(e), head, "reply");
    }
  }
  session_.send_own(text ? *render_event(footer) : format_event(footer), head, "reply");
}

void Commands::history(const Command& cmd) {
  // On this reader thread, from the disk if need be: only this client waits for it.
  send_block("before", room_.archive().before(cmd.id, cmd.count));
}

void Commands::search(const std::string& words) {
  send_block("search", room_.archive().search(words, max_search_results));
}

}  // namespace chat
