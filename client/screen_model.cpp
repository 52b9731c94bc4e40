#include "client/screen_model.hpp"

#include "common/render.hpp"
#include "common/text.hpp"
#include "common/wording.hpp"

#include <algorithm>
#include <ctime>

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
  }
  return "?";
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
  const ParseResult parsed = parse_text_input(line);
  if (const auto* refusal = std::get_if<Refusal>(&parsed)) {
    action.kind = InputAction::Kind::error;
    action.arg = wording::refusal(to_string(refusal->code), refusal->detail);
    return action;
  }
  action.command = std::get<Command>(parsed);
  switch (action.command.verb) {
    case Verb::help: action.kind = InputAction::Kind::help; break;
    case Verb::quit: action.kind = InputAction::Kind::quit; break;
    default: action.kind = InputAction::Kind::send; break;
  }
  return action;
}

ScreenModel::ScreenModel(std::string server, std::string nick, std::size_t max_lines)
    : server_(std::move(server)), nick_(std::move(nick)), max_lines_(std::max<std::size_t>(max_lines, 1)) {}

void ScreenModel::add(std::string text, Category category, const Moment& at, std::string detail) {
  const std::tm local = local_tm(at.wall);
  const int day = local.tm_year * 400 + local.tm_yday;
  std::vector<ScreenLine> fresh;
  if (!last_day_ || *last_day_ != day) {
    last_day_ = day;
    fresh.push_back(ScreenLine{{}, date_text(local), Category::date});
  }
  fresh.push_back(ScreenLine{clock_stamp(at.wall), std::move(text), category, std::move(detail)});
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
      attempt_ = ev.attempt;
      return;
    case K::joined: {
      const bool renamed = !ev.text.empty() && fold_nick(ev.text) != fold_nick(ev.nick);
      nick_ = ev.nick;
      state_ = LinkState::joined;
      attempt_ = 0;
      lost_reason_.clear();
      if (ev.rejoin) {
        add("*** reconnected to " + server_ + ", rejoined as " + ev.nick +
                (renamed ? " (" + ev.text + " is still taken, probably by our old connection)" : ""),
            Category::info, at);
      } else {
        add("*** welcome, " + ev.nick + " (type /help for commands)", Category::info, at);
      }
      return;
    }
    case K::server: server_event(ev.event, at); return;
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
        add("*** reconnecting in " + format_duration(ev.delay), Category::info, at);
      } else {
        add("*** " + ev.text + "; trying again in " + format_duration(ev.delay), Category::error, at);
      }
      return;
    case K::rtt: rtt_ = ev.delay; return;
    case K::ended:
      state_ = LinkState::offline;
      users_.clear();
      if (ev.error) add("*** not reconnecting; /save FILE keeps the transcript, /quit leaves", Category::info, at);
      return;
  }
}

void ScreenModel::server_event(const Event& e, const Moment& at) {
  using K = Event::Kind;
  const auto mine = [this](const std::string& nick) { return fold_nick(nick) == fold_nick(nick_); };
  switch (e.kind) {
    case K::users:
      users_.clear();
      for (const auto& u : e.users) users_[fold_nick(u)] = u;
      add(*render_event(e), Category::info, at);
      return;
    case K::join:
      users_[fold_nick(e.nick)] = e.nick;
      add(e.nick + " joined", Category::join, at);
      return;
    case K::leave: {
      users_.erase(fold_nick(e.nick));
      std::string text = wording::leave(e.nick, e.code, e.text);
      if (details_) text += wording::details(e.code, e.text);
      add(std::move(text), Category::leave, at, detail_of(e));
      return;
    }
    case K::nick: {
      if (users_.erase(fold_nick(e.nick)) > 0) users_[fold_nick(e.arg)] = e.arg;
      if (mine(e.nick)) nick_ = e.arg;
      add(*render_event(e), Category::info, at);
      return;
    }
    case K::msg:
    case K::me: add(*render_event(e), mine(e.nick) ? Category::own : Category::message, at); return;
    case K::priv: add(*render_event(e), mine(e.nick) ? Category::priv_out : Category::priv_in, at); return;
    case K::error:
    case K::bye: add(*render_event(e, {}, details_), Category::error, at, detail_of(e)); return;
    case K::welcome:  // the Link reports these as `joined`
    case K::ping:
    case K::pong:
    case K::comment: return;
  }
}

std::string ScreenModel::status(std::chrono::steady_clock::time_point now) const {
  std::string s = server_ + " | " + nick_ + " | ";
  switch (state_) {
    case LinkState::connecting: s += attempt_ > 0 ? "reconnecting (attempt " + std::to_string(attempt_) + ")" : "connecting"; break;
    case LinkState::joined:
      s += "connected";
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
