#include "server/room.hpp"

#include "common/log.hpp"
#include "common/render.hpp"
#include "common/text.hpp"
#include "server/session.hpp"
#include "server/transcript.hpp"

#include <chrono>

namespace chat {
namespace {

SharedLine shared(std::string text) {
  text += '\n';
  return std::make_shared<const std::string>(std::move(text));
}

Outgoing render_both(const Event& event, std::optional<std::size_t> online) {
  Outgoing out;
  out.protocol = shared(format_event(event));
  if (auto text = render_line(event, std::chrono::system_clock::now(), online)) out.text = shared(std::move(*text));
  return out;
}

}  // namespace

Room::JoinResult Room::join(const std::shared_ptr<Session>& session, const std::string& nick) {
  std::lock_guard lock(mutex_);
  if (closed_ || session->ended()) return JoinResult::closed;
  const auto key = fold_nick(nick);
  if (members_.contains(key)) return JoinResult::nick_in_use;
  // The others hear JOIN before the newcomer is a member; the newcomer hears WELCOME and the
  // list that includes itself. Everything after this is in the same order for everyone.
  deliver_locked(Event{Event::Kind::join, nick, {}, {}, {}, {}}, members_.size() + 1);
  members_.emplace(key, Member{session, nick});
  session->set_joined(nick);
  session->deliver(render_both(Event{Event::Kind::welcome, nick, {}, {}, {}, {}}, std::nullopt));
  session->deliver(render_both(Event{Event::Kind::users, {}, {}, {}, {}, users_locked()}, std::nullopt));
  return JoinResult::joined;
}

void Room::leave(Session& session) {
  std::lock_guard lock(mutex_);
  if (closed_) return;
  const auto it = find_locked(session);
  if (it == members_.end()) return;
  const std::string nick = it->second.nick;
  members_.erase(it);
  const auto d = session.departure().value_or(Departure{LeaveCause::error, "unknown"});
  deliver_locked(Event{Event::Kind::leave, nick, {}, std::string(to_string(d.cause)), d.detail, {}},
                 members_.size());
}

void Room::say(Session& from, std::string_view text) {
  std::lock_guard lock(mutex_);
  const auto it = find_locked(from);
  if (it == members_.end()) return;
  deliver_locked(Event{Event::Kind::msg, it->second.nick, {}, {}, std::string(text), {}});
}

void Room::me(Session& from, std::string_view text) {
  std::lock_guard lock(mutex_);
  const auto it = find_locked(from);
  if (it == members_.end()) return;
  deliver_locked(Event{Event::Kind::me, it->second.nick, {}, {}, std::string(text), {}});
}

bool Room::priv(Session& from, std::string_view to, std::string_view text) {
  std::lock_guard lock(mutex_);
  const auto sender = find_locked(from);
  if (sender == members_.end()) return true;  // leaving; nothing to report
  const auto recipient = members_.find(fold_nick(to));
  if (recipient == members_.end()) return false;
  const auto out = render_both(
      Event{Event::Kind::priv, sender->second.nick, recipient->second.nick, {}, std::string(text), {}}, std::nullopt);
  sender->second.session->deliver(out);
  if (recipient != sender) recipient->second.session->deliver(out);
  return true;  // private messages stay out of the transcript
}

Room::RenameResult Room::rename(Session& session, const std::string& nick) {
  std::lock_guard lock(mutex_);
  const auto it = find_locked(session);
  if (it == members_.end()) return RenameResult::unchanged;
  if (it->second.nick == nick) return RenameResult::unchanged;
  const auto key = fold_nick(nick);
  if (key != it->first && members_.contains(key)) return RenameResult::nick_in_use;
  const std::string old = it->second.nick;
  Member member = std::move(it->second);
  members_.erase(it);
  member.nick = nick;
  member.session->set_nick(nick);
  members_.emplace(key, std::move(member));
  deliver_locked(Event{Event::Kind::nick, old, nick, {}, {}, {}});
  return RenameResult::renamed;
}

void Room::who(Session& session) {
  std::lock_guard lock(mutex_);
  session.deliver(render_both(Event{Event::Kind::users, {}, {}, {}, {}, users_locked()}, std::nullopt));
}

std::vector<std::string> Room::users() const {
  std::lock_guard lock(mutex_);
  return users_locked();
}

std::size_t Room::size() const {
  std::lock_guard lock(mutex_);
  return members_.size();
}

void Room::close() {
  std::lock_guard lock(mutex_);
  if (closed_) return;
  closed_ = true;
  // The clients get "BYE shutdown" rather than a LEAVE for every other member (a LEAVE storm
  // of N x N lines saying the same thing); the transcript still records one LEAVE per JOIN.
  transcript_.note("*** server shutting down (" + std::to_string(members_.size()) + " online)");
  for (const auto& [key, member] : members_) {
    // One whose reader had not yet broadcast its own LEAVE keeps its own cause.
    const auto d = member.session->departure().value_or(Departure{LeaveCause::shutdown, "server shutting down"});
    transcript_.record(Event{Event::Kind::leave, member.nick, {}, std::string(to_string(d.cause)), d.detail, {}},
                       std::nullopt);
  }
  members_.clear();
}

void Room::deliver_locked(const Event& event, std::optional<std::size_t> online) {
  const auto out = render_both(event, online);
  for (auto& [key, member] : members_) member.session->deliver(out);
  transcript_.record(event, online);
}

Room::Members::iterator Room::find_locked(Session& session) {
  const auto it = members_.find(fold_nick(session.nick()));
  if (it == members_.end() || it->second.session.get() != &session) return members_.end();
  return it;
}

std::vector<std::string> Room::users_locked() const {
  std::vector<std::string> out;
  out.reserve(members_.size());
  for (const auto& [key, member] : members_) out.push_back(member.nick);
  return out;
}

}  // namespace chat
