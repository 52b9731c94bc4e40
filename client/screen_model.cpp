#include "client/screen_model.hpp"

#include "common/render.hpp"
#include "common/text.hpp"
#include "common/wording.hpp"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <limits>

namespace chat {
namespace {

std::tm local_tm(std::chrono::system_clock::time_point when) {
  const std::time_t t = std::chrono::system_clock::to_time_t(when);
  std::tm local{};
  localtime_r(&t, &local);
  return local;
}

std::string date_text(const std::tm& local) {
  char buf[64];
  std::strftime(buf, sizeof buf, "%A %d %B %Y", &local);
  return std::string("--- ") + buf + " ---";
}

bool starts_with_word(std::string_view line, std::string_view word) {
  if (line.size() < word.size()) return false;
  for (std::size_t i = 0; i < word.size(); ++i) {
    const char c = line[i];
    const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if (lower != word[i]) return false;
  }
  return line.size() == word.size() || line[word.size()] == ' ';
}

// "no-pong: no reply to PING ..." (ScreenLine::detail).
std::string detail_of(const Event& e) { return e.code + (e.text.empty() ? "" : ": " + e.text); }

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

int day_of(std::chrono::system_clock::time_point when) {
  const std::tm local = local_tm(when);
  return local.tm_year * 400 + local.tm_yday;
}

// When a history event happened: its tag's time (Unix milliseconds), or `fallback` without one.
std::chrono::system_clock::time_point event_time(const Event& e, std::chrono::system_clock::time_point fallback) {
  if (e.time_ms <= 0) return fallback;
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(e.time_ms));
}

std::size_t count_of(std::string_view text) {
  std::size_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  return ec == std::errc() && end == text.data() + text.size() ? n : 0;
}

}  // namespace

std::string_view to_string(Category category) {
  switch (category) {
    case Category::message: return "message";
    case Category::own: return "own";
    case Category::join: return "join";
    case Category::leave: return "leave";
    case Category::error: return "error";
    case Category::priv_in: return "priv_in";
    case Category::priv_out: return "priv_out";
    case Category::info: return "info";
    case Category::date: return "date";
    case Category::separator: return "separator";
  }
  return "?";
}

std::optional<ParseResult> parse_earlier(std::string_view line) {
  std::size_t word = 0;
  if (starts_with_word(line, "/more")) word = 5;
  if (starts_with_word(line, "/history")) word = 8;
  if (word == 0) return std::nullopt;
  const std::string rest = trim(line.substr(word));
  Command cmd{Verb::history, {}, {}};
  cmd.count = history_page;
  if (!rest.empty()) {
    std::size_t n = 0;
    const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), n);
    if (ec != std::errc() || end != rest.data() + rest.size() || n == 0 || n > max_history_page) {
      return ParseResult{Refusal{ErrorCode::bad_args, "usage: " + std::string(line.substr(0, word)) + " [n] (n: 1 to " +
                                                          std::to_string(max_history_page) + ")"}};
    }
    cmd.count = n;
  }
  return ParseResult{cmd};
}

std::string ScreenLine::rendered() const { return stamp.empty() ? text : "[" + stamp + "] " + text; }

InputAction interpret_input(std::string_view line) {
  InputAction action;
  if (line.empty()) return action;
  if (starts_with_word(line, "/save")) {
    const std::string file = trim(line.substr(5));
    if (file.empty()) {
      action.kind = InputAction::Kind::error;
      action.arg = "usage: /save FILE";
    } else {
      action.kind = InputAction::Kind::save;
      action.arg = file;
    }
    return action;
  }
  if (starts_with_word(line, "/clear")) {
    action.kind = InputAction::Kind::clear;
    return action;
  }
  const auto earlier = parse_earlier(line);
  const ParseResult parsed = earlier ? *earlier : parse_text_input(line);
  if (const auto* refusal = std::get_if<Refusal>(&parsed)) {
    action.kind = InputAction::Kind::error;
    action.arg = wording::refusal(to_string(refusal->code), refusal->detail);
    return action;
  }
  action.command = std::get<Command>(parsed);
  switch (action.command.verb) {
    case Verb::help: action.kind = InputAction::Kind::help; break;
    case Verb::quit: action.kind = InputAction::Kind::quit; break;
    case Verb::history: action.kind = InputAction::Kind::earlier; break;
    default: action.kind = InputAction::Kind::send; break;
  }
  return action;
}

ScreenModel::ScreenModel(std::string server, std::string nick, std::size_t max_lines)
    : server_(std::move(server)), nick_(std::move(nick)), max_lines_(std::max<std::size_t>(max_lines, 1)) {}

void ScreenModel::add(std::string text, Category category, const Moment& at, std::string detail) {
  append(ScreenLine{clock_stamp(at.wall), std::move(text), category, std::move(detail)}, at.wall);
}

void ScreenModel::separator(std::string text) { append(ScreenLine{{}, std::move(text), Category::separator}, std::nullopt); }

void ScreenModel::append(ScreenLine line, std::optional<std::chrono::system_clock::time_point> when) {
  std::vector<ScreenLine> fresh;
  if (when) {
    const std::tm local = local_tm(*when);
    const int day = local.tm_year * 400 + local.tm_yday;
    if (!last_day_ || *last_day_ != day) {
      last_day_ = day;
      fresh.push_back(ScreenLine{{}, date_text(local), Category::date});
    }
  }
  fresh.push_back(std::move(line));
  for (auto& line : fresh) {
    transcript_.push_back(line.rendered());
    lines_.push_back(std::move(line));
    ++lines_added_;
    // A reader who scrolled back keeps looking at the same lines while new ones arrive.
    if (scroll_ > 0) ++scroll_;
  }
  while (lines_.size() > max_lines_) lines_.pop_front();
  scroll_ = std::min(scroll_, lines_.empty() ? 0 : lines_.size() - 1);
}

void ScreenModel::notice(std::string text, Category category, const Moment& at) {
  add(std::move(text), category, at);
}

void ScreenModel::note_id(std::uint64_t id) {
  if (id != 0 && (oldest_id_ == 0 || id < oldest_id_)) oldest_id_ = id;
}

std::optional<Command> ScreenModel::request_earlier(std::size_t count, const Moment& at, bool explain) {
  const auto say = [&](std::string text) {
    if (explain) add("*** " + std::move(text), Category::info, at);
  };
  if (state_ != LinkState::joined) {
    say("not connected: earlier messages come from the server");
    return std::nullopt;
  }
  if (earlier_pending_) {
    say("still waiting for the earlier messages asked for");
    return std::nullopt;
  }
  if (at_start_) {
    say("nothing earlier: the top is the start of what the server keeps");
    return std::nullopt;
  }
  earlier_pending_ = true;
  earlier_asked_ = std::clamp<std::size_t>(count, 1, max_history_page);
  Command cmd{Verb::history, {}, {}};
  // Before the oldest event held; holding none yet (an empty or quiet room), before any id
  // there can be (the largest a signed 64-bit number holds, as databases store them).
  cmd.id = oldest_id_ != 0 ? oldest_id_ : static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  cmd.count = earlier_asked_;
  return cmd;
}

void ScreenModel::clear() {
  lines_.clear();
  scroll_ = 0;
}

void ScreenModel::scroll_up(std::size_t n) {
  if (lines_.empty()) return;
  scroll_ = std::min(scroll_ + n, lines_.size() - 1);
}

void ScreenModel::scroll_down(std::size_t n) { scroll_ = n >= scroll_ ? 0 : scroll_ - n; }

std::vector<std::string> ScreenModel::users() const {
  std::vector<std::string> out;
  out.reserve(users_.size());
  for (const auto& [folded, nick] : users_) out.push_back(nick);
  return out;
}

void ScreenModel::apply(const LinkEvent& ev, const Moment& at) {
  using K = LinkEvent::Kind;
  switch (ev.kind) {
    case K::connecting:  // the status line says it; the pane has the retry's line already
      state_ = LinkState::connecting;
      tls_.clear();
      attempt_ = ev.attempt;
      if (!ev.text.empty()) server_ = ev.text;  // with several servers: the one tried now
      return;
    case K::joined: {
      const bool renamed = !ev.text.empty() && fold_nick(ev.text) != fold_nick(ev.nick);
      nick_ = ev.nick;
      state_ = LinkState::joined;
      attempt_ = 0;
      lost_reason_.clear();
      away_ms_.clear();
      if (ev.rejoin) {
        add("*** reconnected to " + server_ + ", rejoined as " + ev.nick +
                (renamed ? " (" + ev.text + " is still taken, probably by our old connection)" : ""),
            Category::info, at);
      } else {
        add("*** welcome, " + ev.nick + " (type /help for commands)", Category::info, at);
      }
      return;
    }
    case K::resumed:
      // Our seat was kept: the same nickname, and the missed block follows (its separator is
      // the marker "--- away 41 s, 12 messages you missed ---").
      nick_ = ev.nick;
      state_ = LinkState::joined;
      attempt_ = 0;
      lost_reason_.clear();
      away_ms_ = ev.event.arg;
      add("*** reconnected to " + server_ + ", back in the room as " + ev.nick, Category::info, at);
      return;
    case K::server:
      if (ev.history != History::none || ev.event.kind == Event::Kind::history ||
          ev.event.kind == Event::Kind::history_end) {
        history_event(ev, at);
      } else {
        server_event(ev.event, at);
      }
      return;
    case K::notice:
    case K::unreachable: add("*** " + ev.text, ev.error ? Category::error : Category::info, at); return;
    case K::refused:
      state_ = LinkState::choosing_nick;
      add(*render_event(ev.event, {}, details_), Category::error, at, detail_of(ev.event));
      add("*** type /nick <name> to try another nickname, or /quit", Category::info, at);
      return;
    case K::lost:
      state_ = LinkState::offline;
      rtt_.reset();
      // A block cut off by the loss, or a scroll-back question left unanswered, is dropped.
      block_ = History::none;
      earlier_start_.reset();
      earlier_.clear();
      earlier_times_.clear();
      earlier_pending_ = false;
      users_.clear();  // stale: the rejoin's USERS brings the room back
      lost_reason_ = lost_words(ev, false);
      add("*** disconnected: " + lost_words(ev, details_), Category::error, at, detail_of(ev.event));
      return;
    case K::retry:
      state_ = LinkState::waiting_retry;
      attempt_ = ev.attempt;
      retry_at_ = at.steady + ev.delay;
      // One line per failed attempt; the status line counts them.
      if (ev.text.empty()) {
        add("*** " + reconnecting_words(ev), Category::info, at);
      } else {
        add("*** " + ev.text + trying_again_words(ev), Category::error, at);
      }
      return;
    case K::rtt: rtt_ = ev.delay; return;
    case K::secured:
      tls_ = ev.tls.substr(0, ev.tls.find(' '));  // "TLSv1.3" of "TLSv1.3 TLS_AES_256_GCM_SHA384"
      add("*** " + secured_words(ev), Category::info, at);
      return;
    case K::certificate:
      for (const auto& line : ev.lines) add("*** " + line, ev.error ? Category::error : Category::info, at);
      return;
    case K::ended:
      state_ = LinkState::offline;
      users_.clear();
      if (ev.error) add("*** not reconnecting; /save FILE keeps the transcript, /quit leaves", Category::info, at);
      return;
  }
}

std::optional<ScreenLine> ScreenModel::line_for(const Event& e) const {
  using K = Event::Kind;
  const auto mine = [this](const std::string& nick) { return fold_nick(nick) == fold_nick(nick_); };
  const auto line = [&](std::string text, Category category, std::string detail = {}) {
    return ScreenLine{{}, std::move(text), category, std::move(detail), e.id};
  };
  switch (e.kind) {
    case K::users: return line(*render_event(e), Category::info);
    case K::join: return line(e.nick + " joined", Category::join);
    case K::back: return line(e.nick + " is back (away " + away_time(e.arg) + ")", Category::join);
    case K::leave: {
      std::string text = wording::leave(e.nick, e.code, e.text);
      if (details_) text += wording::details(e.code, e.text);
      return line(std::move(text), Category::leave, detail_of(e));
    }
    case K::nick: return line(*render_event(e), Category::info);
    case K::msg:
    case K::me: return line(*render_event(e), mine(e.nick) ? Category::own : Category::message);
    case K::priv: return line(*render_event(e), mine(e.nick) ? Category::priv_out : Category::priv_in);
    case K::error:
    case K::bye: return line(*render_event(e, {}, details_), Category::error, detail_of(e));
    case K::comment:  // a room notice (tagged); the greeting and untagged remarks are not shown
      if (e.id == 0) return std::nullopt;
      return line(*render_event(e), Category::info);
    case K::resumed: return line(*render_event(e), Category::info);  // one we did not ask for
    case K::welcome:  // the Link reports these as `joined`
    case K::token:    // the Link keeps it
    case K::history:  // history_event()
    case K::history_end:
    case K::ping:
    case K::pong: return std::nullopt;
  }
  return std::nullopt;
}

void ScreenModel::server_event(const Event& e, const Moment& at) {
  using K = Event::Kind;
  // The room's state first (the user list, our nickname), then the line.
  switch (e.kind) {
    case K::users:
      users_.clear();
      for (const auto& u : e.users) users_[fold_nick(u)] = u;
      break;
    case K::join:
    case K::back: users_[fold_nick(e.nick)] = e.nick; break;
    case K::leave: users_.erase(fold_nick(e.nick)); break;
    case K::nick:
      if (users_.erase(fold_nick(e.nick)) > 0) users_[fold_nick(e.arg)] = e.arg;
      break;
    case K::error:
      // An answer that will not come: the scroll-back question was refused.
      if (earlier_pending_ && (e.code == to_string(ErrorCode::no_history) || e.code == to_string(ErrorCode::bad_args) ||
                               e.code == to_string(ErrorCode::not_joined) ||
                               e.code == to_string(ErrorCode::unknown_command))) {
        earlier_pending_ = false;
      }
      break;
    default: break;
  }
  auto line = line_for(e);
  // Our own rename: the line was worded with the old nickname, the status takes the new one.
  if (e.kind == K::nick && fold_nick(e.nick) == fold_nick(nick_)) nick_ = e.arg;
  if (!line) return;
  note_id(e.id);
  line->stamp = clock_stamp(at.wall);
  append(std::move(*line), at.wall);
}

void ScreenModel::history_event(const LinkEvent& ev, const Moment& at) {
  using K = Event::Kind;
  const Event& e = ev.event;
  if (e.kind == K::history) {
    block_ = ev.history;
    block_lines_ = 0;
    switch (block_) {
      case History::before:  // held until its end, then put above everything
        earlier_start_ = e;
        earlier_.clear();
        earlier_times_.clear();
        return;
      case History::missed: separator(history_start_line(e, away_ms_)); return;  // the marker, even for 0
      case History::recent:
        if (count_of(e.arg) > 0) separator(history_start_line(e));  // an empty room says nothing
        return;
      case History::search:
      case History::none: separator(history_start_line(e)); return;
    }
    return;
  }
  if (e.kind == K::history_end) {
    if (ev.history == History::before) {
      insert_earlier(at);
    } else if (ev.history == History::search || block_lines_ > 0) {
      separator(history_end_line(e));  // "--- now ---", "--- end of search ---"
    }
    block_ = History::none;
    block_lines_ = 0;
    return;
  }
  // A line of the block: as a live one would read, but with its own time, marked as history,
  // and changing nothing (the user list is the room now, from USERS).
  auto line = line_for(e);
  if (!line) return;
  const auto when = event_time(e, at.wall);
  line->stamp = clock_stamp(when);
  line->history = true;
  if (ev.history == History::before) {
    if (earlier_.size() < max_block_lines) {
      earlier_.push_back(std::move(*line));
      earlier_times_.push_back(when);
    }
    return;
  }
  ++block_lines_;
  if (ev.history != History::search) note_id(e.id);  // search results are not the room's order
  append(std::move(*line), when);
}

void ScreenModel::insert_earlier(const Moment& at) {
  earlier_pending_ = false;
  const Event start = earlier_start_.value_or(Event{Event::Kind::history, {}, "0", "before", {}, {}});
  earlier_start_.reset();
  // Fewer than asked: the server keeps nothing older. (An answer nobody here asked for, from
  // another front end's /history, counts by what it holds.)
  if (count_of(start.arg) < earlier_asked_ || earlier_.empty()) at_start_ = true;

  std::vector<ScreenLine> block;
  if (earlier_.empty()) {
    block.push_back(ScreenLine{{}, "--- nothing earlier: this is the start of what the server keeps ---", Category::separator});
  } else {
    if (at_start_) {
      block.push_back(ScreenLine{{}, "--- the start of what the server keeps ---", Category::separator});
    }
    block.push_back(ScreenLine{{}, history_start_line(start), Category::separator});
    // Date lines inside the block: before its first line when that was another day than
    // today, and wherever the day changes.
    std::optional<int> day;
    for (std::size_t i = 0; i < earlier_.size(); ++i) {
      const int d = day_of(earlier_times_[i]);
      if ((!day && d != day_of(at.wall)) || (day && *day != d)) {
        block.push_back(ScreenLine{{}, date_text(local_tm(earlier_times_[i])), Category::date});
      }
      day = d;
      note_id(earlier_[i].id);
      block.push_back(std::move(earlier_[i]));
    }
  }
  earlier_.clear();
  earlier_times_.clear();

  // Above everything held, within the pane's limit: a full pane takes the newest of the block.
  const std::size_t room = max_lines_ - std::min(lines_.size(), max_lines_);
  const std::size_t keep = std::min(block.size(), room);
  for (std::size_t i = 0; i < keep; ++i) {
    auto& line = block[block.size() - 1 - i];
    transcript_.push_front(line.rendered());
    lines_.push_front(std::move(line));
  }
  lines_above_ += keep;
  // scroll_ counts lines hidden below the bottom: what the reader was looking at stays put.
}

std::string ScreenModel::status(std::chrono::steady_clock::time_point now) const {
  std::string s = server_ + " | " + nick_ + " | ";
  switch (state_) {
    case LinkState::connecting: s += attempt_ > 0 ? "reconnecting (attempt " + std::to_string(attempt_) + ")" : "connecting"; break;
    case LinkState::joined:
      s += "connected";
      if (!tls_.empty()) s += " over " + tls_;
      s += rtt_ ? " | rtt " + std::to_string(rtt_->count()) + " ms" : " | rtt ?";
      break;
    case LinkState::waiting_retry: {
      const auto left = std::chrono::ceil<std::chrono::seconds>(retry_at_ - now).count();
      s += "reconnecting in " + std::to_string(std::max<long long>(left, 0)) + " s (attempt " +
           std::to_string(attempt_) + ")";
      break;
    }
    case LinkState::choosing_nick: s += "nickname refused: /nick <name>"; break;
    case LinkState::offline: s += "disconnected"; break;
  }
  if (earlier_pending_) s += " | loading earlier messages";
  if (scroll_ > 0) s += " | " + std::to_string(scroll_) + " more below (Page Down)";
  // Last: a narrow terminal cuts the end of the status line.
  if (state_ != LinkState::joined && !lost_reason_.empty()) s += " | lost: " + lost_reason_;
  return s;
}

std::optional<std::chrono::steady_clock::time_point> ScreenModel::next_status_change(
    std::chrono::steady_clock::time_point now) const {
  if (state_ != LinkState::waiting_retry || retry_at_ <= now) return std::nullopt;
  // The countdown shows whole seconds rounded up: it changes when the time left crosses one.
  const auto left = retry_at_ - now;
  const auto whole = std::chrono::floor<std::chrono::seconds>(left);
  const auto until = left - whole;
  return now + (until > decltype(until)::zero() ? until : std::chrono::seconds(1));
}

std::string ScreenModel::transcript() const {
  std::string out;
  for (const auto& line : transcript_) out += line + "\n";
  return out;
}

}  // namespace chat
