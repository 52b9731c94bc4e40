#include "server/room.hpp"

#include "common/log.hpp"
#include "common/render.hpp"
#include "common/text.hpp"
#include "server/session.hpp"
#include "server/stats.hpp"
#include "server/transcript.hpp"
#include "server/writer.hpp"

#include <chrono>

namespace chat {
namespace {

std::string with_lf(std::string line) {
  line += '\n';
  return line;
}

}  // namespace

Room::Room(const ServerConfig& config, Transcript& transcript, ServerStats& stats, WriterPool& writers)
    : config_(config),
      transcript_(transcript),
      stats_(stats),
      writers_(writers),
      // The history keeps the last --send-queue bytes of events (members' cursors keep what
      // they still need on their own): the recent past, for a client that reconnects to catch
      // up on one day. Nothing reads it yet; the bound is what matters now.
      history_(config.send_queue) {}

std::optional<std::string> Room::line_for(const Session& session, const Event& event) {
  if (session.mode() == Session::Mode::text) return render_line(event, std::chrono::system_clock::now());
  return format_event(event);
}

std::uint64_t Room::append_locked(const Event& event, std::optional<std::size_t> online) {
  auto text = render_line(event, std::chrono::system_clock::now(), online);
  history_.append(with_lf(format_event(event)), text ? with_lf(std::move(*text)) : std::string());
  ++stats_.events;
  transcript_.record(event, online);
  return history_.head();
}

void Room::wake_writers() { writers_.room_changed(); }

Room::JoinResult Room::join(const std::shared_ptr<Session>& session, const std::string& nick) {
  {
    std::lock_guard lock(mutex_);
    if (closed_ || session->ended()) return JoinResult::closed;
    const auto key = fold_nick(nick);
    if (members_.contains(key)) return JoinResult::nick_in_use;
    // The others hear JOIN before the newcomer is a member; the newcomer's stream starts right
    // after it, with WELCOME and the list that includes itself. Everything after this is in
    // the same order for everyone.
    const auto head = append_locked(Event{Event::Kind::join, nick, {}, {}, {}, {}}, members_.size() + 1);
    members_.emplace(key, Member{session, nick});
    roster_ = roster_.with(key, nick);
    session->set_joined(nick);

    Outbox::Item start;
    start.kind = Outbox::Item::Kind::join_room;
    start.after = head;
    start.start = history_.start();
    start.start_bytes = history_.bytes_at_head(session->outbox().mode());
    session->send_item(std::move(start), "room");
    if (auto welcome = line_for(*session, Event{Event::Kind::welcome, nick, {}, {}, {}, {}})) {
      session->send_own(std::move(*welcome), head, "reply");
    }
    Outbox::Item users;
    users.kind = Outbox::Item::Kind::users;
    users.after = head;
    users.users = roster_;  // a snapshot: O(1) here, rendered by the writer
    users.when = std::chrono::system_clock::now();
    session->send_item(std::move(users), "reply");
  }
  wake_writers();
  return JoinResult::joined;
}

void Room::leave(Session& session) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    const auto it = find_locked(session);
    if (it == members_.end()) return;
    const std::string nick = it->second.nick;
    roster_ = roster_.without(it->first);
    members_.erase(it);
    const auto d = session.departure().value_or(Departure{LeaveCause::error, "unknown"});
    stats_.count_leave(d.cause);
    append_locked(Event{Event::Kind::leave, nick, {}, std::string(to_string(d.cause)), d.detail, {}}, members_.size());
  }
  wake_writers();
}

void Room::say(Session& from, std::string_view text) {
  {
    std::lock_guard lock(mutex_);
    const auto it = find_locked(from);
    if (it == members_.end()) return;
    append_locked(Event{Event::Kind::msg, it->second.nick, {}, {}, std::string(text), {}});
  }
  wake_writers();
}

void Room::me(Session& from, std::string_view text) {
  {
    std::lock_guard lock(mutex_);
    const auto it = find_locked(from);
    if (it == members_.end()) return;
    append_locked(Event{Event::Kind::me, it->second.nick, {}, {}, std::string(text), {}});
  }
  wake_writers();
}

bool Room::priv(Session& from, std::string_view to, std::string_view text) {
  std::lock_guard lock(mutex_);
  const auto sender = find_locked(from);
  if (sender == members_.end()) return true;  // leaving; nothing to report
  const auto recipient = members_.find(fold_nick(to));
  if (recipient == members_.end()) return false;
  const Event event{Event::Kind::priv, sender->second.nick, recipient->second.nick, {}, std::string(text), {}};
  // Stamped with the head: after every room event already appended (the SAY before it), before
  // every later one. Private messages stay out of the history and the transcript.
  const auto head = history_.head();
  for (auto* member : {&sender->second, &recipient->second}) {
    if (auto line = line_for(*member->session, event)) member->session->send_own(std::move(*line), head, "room");
    if (recipient == sender) break;
  }
  return true;
}

Room::RenameResult Room::rename(Session& session, const std::string& nick) {
  {
    std::lock_guard lock(mutex_);
    const auto it = find_locked(session);
    if (it == members_.end()) return RenameResult::unchanged;
    if (it->second.nick == nick) return RenameResult::unchanged;
    const auto key = fold_nick(nick);
    if (key != it->first && members_.contains(key)) return RenameResult::nick_in_use;
    const std::string old = it->second.nick;
    Member member = std::move(it->second);
    roster_ = roster_.without(it->first).with(key, nick);
    members_.erase(it);
    member.nick = nick;
    member.session->set_nick(nick);
    members_.emplace(key, std::move(member));
    append_locked(Event{Event::Kind::nick, old, nick, {}, {}, {}});
  }
  wake_writers();
  return RenameResult::renamed;
}

void Room::who(Session& session) {
  std::lock_guard lock(mutex_);
  Outbox::Item users;
  users.kind = Outbox::Item::Kind::users;
  users.after = history_.head();
  users.users = roster_;
  users.when = std::chrono::system_clock::now();
  session.send_item(std::move(users), "reply");
}

std::vector<std::string> Room::users() const {
  Roster snapshot;
  {
    std::lock_guard lock(mutex_);
    snapshot = roster_;
  }
  return snapshot.names();
}

std::size_t Room::size() const {
  std::lock_guard lock(mutex_);
  return members_.size();
}

std::string Room::stats_line() const {
  std::size_t members = 0, chunks = 0;
  {
    std::lock_guard lock(mutex_);
    members = members_.size();
    chunks = history_.chunks();
  }
  return stats_.line(members, writers_.size(), chunks);
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
    stats_.count_leave(d.cause);
    transcript_.record(Event{Event::Kind::leave, member.nick, {}, std::string(to_string(d.cause)), d.detail, {}},
                       std::nullopt);
  }
  members_.clear();
  roster_ = Roster();
}

Room::Members::iterator Room::find_locked(Session& session) {
  const auto it = members_.find(fold_nick(session.nick()));
  if (it == members_.end() || it->second.session.get() != &session) return members_.end();
  return it;
}

}  // namespace chat
