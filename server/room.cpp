#include "server/room.hpp"

#include "server/archive.hpp"
#include "server/backplane.hpp"
#include "server/seat_token.hpp"

#include "common/log.hpp"
#include "common/render.hpp"
#include "common/text.hpp"
#include "server/session.hpp"
#include "server/stats.hpp"
#include "server/transcript.hpp"
#include "server/writer.hpp"

#include <algorithm>
#include <chrono>

namespace chat {
namespace {

std::string with_lf(std::string line) {
  line += '\n';
  return line;
}

std::int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// A drop the seat survives: not one the client chose (quit) or earned (flood), and not the
// server going away (close() keeps the seats for a restart on its own).
// A password from its hash (parse_server_args checked it); null for "" (none).
std::unique_ptr<RoomPassword> password_from(const std::string& hash_line) {
  if (hash_line.empty()) return nullptr;
  auto hash = parse_password_hash(hash_line);
  return hash ? std::make_unique<RoomPassword>(std::move(*hash)) : nullptr;
}

bool resumable(LeaveCause cause) {
  return cause != LeaveCause::quit && cause != LeaveCause::flood && cause != LeaveCause::shutdown &&
         cause != LeaveCause::kicked && cause != LeaveCause::banned;
}

// The most a replay may queue for one client: half its --send-queue, so that the live stream
// after it still fits.
std::size_t replay_budget(const ServerConfig& config) { return config.send_queue / 2; }

// Shared: what a member is told when the backplane's buffer for a split is full.
constexpr const char* not_kept_line = "# not sent: this server has been cut off from the room for too long and keeps no more";

constexpr std::size_t max_replay_events = 50'000;
// Shared: events shown here during a split and not yet back from the stream, at most (the
// backplane keeps 10,000 for it).
constexpr std::size_t max_split_shown = 20'000;   // read from the disk for one resume at most
constexpr std::size_t max_kept_privates = 100'000;  // private messages kept for held seats at most
// How long, and how many, tokens that no longer work are remembered (to say "expired" or
// "already used" rather than "unknown").
constexpr auto remember_gone = std::chrono::hours(1);
constexpr std::size_t max_gone_tokens = 10'000;

}  // namespace

Room::Room(const ServerConfig& config, Transcript& transcript, ServerStats& stats, WriterPool& writers,
           Archive& archive)
    : config_(config),
      transcript_(transcript),
      stats_(stats),
      writers_(writers),
      archive_(archive),
      id_base_(archive.run() << 32),
      password_(password_from(config.password_hash)),
      admin_password_(password_from(config.admin_password_hash)),
      bans_(archive),
      // The history keeps the last --send-queue bytes of events (members' cursors keep what
      // they still need on their own): the recent past, for a client that reconnects to catch
      // up on one day. Nothing reads it yet; the bound is what matters now.
      history_(config.send_queue) {
  // The seats the last run left open: held for what is left of their window, counted from the
  // drop (or from now, when the last run did not stop cleanly and never saw the drop).
  last_seat_ = archive.last_seat();
  const auto wall = std::chrono::system_clock::now();
  const auto now = Clock::now();
  for (const auto& record : archive.seats_at_start()) {
    last_seat_ = std::max(last_seat_, record.seat);
    const auto dropped = record.dropped_ms > 0
                             ? std::chrono::system_clock::time_point(std::chrono::milliseconds(record.dropped_ms))
                             : wall;
    const auto left = config.resume_window - std::chrono::duration_cast<Millis>(wall - dropped);
    const auto key = fold_nick(record.nick);
    if (config.resume_window <= Millis{0} || left <= Millis{0} || held_.contains(key)) {
      forget_token_locked(record.token_hash, Gone::expired);
      archive_.seat_closed(record.seat);
      continue;
    }
    Seat seat{record.token_hash, record.nick, true, dropped, now + left};
    seats_.emplace(record.seat, seat);
    held_.emplace(key, record.seat);
    by_token_.emplace(record.token_hash, record.seat);
    expiries_.emplace_back(seat.expires, record.seat);
    if (record.dropped_ms == 0) archive_.seat_dropped(record.seat, unix_ms(wall));
  }
  std::sort(expiries_.begin(), expiries_.end());
}

std::size_t Room::held_seats() const {
  std::lock_guard lock(mutex_);
  return held_.size();
}

std::optional<std::string> Room::line_for(const Session& session, const Event& event) {
  if (session.mode() == Session::Mode::text) return render_line(event, std::chrono::system_clock::now());
  return session.ids() ? format_tagged(event) : format_event(event);
}

std::uint64_t Room::next_id() const {
  std::lock_guard lock(mutex_);
  return id_of(history_.head());
}

std::uint64_t Room::append_locked(const Event& event, std::optional<std::size_t> online, const StreamEvent* from,
                                  bool live) {
  const auto now = from != nullptr ? std::chrono::system_clock::time_point(std::chrono::milliseconds(from->time_ms))
                                   : std::chrono::system_clock::now();
  Event tagged = event;
  tagged.id = from != nullptr ? from->id : id_of(history_.head());
  tagged.time_ms = unix_ms(now);
  auto text = render_line(event, now, online);
  // A client without ids reads a seat's return as the JOIN it has always understood.
  const std::string protocol = event.kind == Event::Kind::back
                                   ? format_event(Event{Event::Kind::join, event.nick, {}, {}, {}, {}})
                                   : format_event(event);
  history_.append(with_lf(protocol), text ? with_lf(std::move(*text)) : std::string(), with_lf(format_tagged(tagged)));
  archive_.append(ArchivedEvent{tagged.id, tagged.time_ms, event});
  if (live) {
    ++stats_.events;
    transcript_.record(event, online);
  }
  return history_.head();
}

std::uint64_t Room::append_split_locked(const Event& event, std::optional<std::size_t> online) {
  // No id yet (the stream gives it when the room is whole again): the line without a tag in
  // every mode, and not archived. split_shown_ remembers it, so that it is not shown twice here
  // when it comes back from the stream.
  const auto now = std::chrono::system_clock::now();
  auto text = render_line(event, now, online);
  const std::string protocol = format_event(event);
  history_.append(with_lf(protocol), text ? with_lf(std::move(*text)) : std::string(), with_lf(protocol));
  ++stats_.events;
  transcript_.record(event, online);
  if (split_shown_.size() < max_split_shown) split_shown_.push_back(event);
  return history_.head();
}

void Room::close_seat_locked(std::uint64_t number) {
  const auto it = seats_.find(number);
  if (it == seats_.end()) return;
  const auto key = fold_nick(it->second.nick);
  if (const auto h = held_.find(key); h != held_.end() && h->second == number) held_.erase(h);
  by_token_.erase(it->second.token_hash);
  seats_.erase(it);
  archive_.seat_closed(number);
}

void Room::forget_token_locked(const std::string& hash, Gone why) {
  if (hash.empty()) return;
  if (gone_tokens_.insert_or_assign(hash, why).second) gone_order_.emplace_back(Clock::now() + remember_gone, hash);
}

void Room::expire_locked(Clock::time_point now) {
  while (!expiries_.empty() && expiries_.front().first <= now) {
    const auto [when, number] = expiries_.front();
    expiries_.pop_front();
    const auto it = seats_.find(number);
    // A seat resumed (and maybe held again later, with a later expiry) is not this entry's.
    if (it != seats_.end() && it->second.held && it->second.expires == when) {
      log_debug("the seat of ", it->second.nick, " expired");
      forget_token_locked(it->second.token_hash, Gone::expired);
      close_seat_locked(number);
    }
  }
  // A private message is kept for the window after it was sent, and longer while a seat it
  // involves is held: one sent to a connection that was already dead (but not yet noticed) is
  // still due when its seat resumes.
  const auto held = [&](std::uint64_t seat) {
    const auto it = seats_.find(seat);
    return it != seats_.end() && it->second.held;
  };
  while (!privates_.empty() && (privates_.size() > max_kept_privates ||
                                (privates_.front().kept_until <= now && !held(privates_.front().from_seat) &&
                                 !held(privates_.front().to_seat)))) {
    privates_.pop_front();
  }

  while (!gone_order_.empty() && (gone_order_.front().first <= now || gone_order_.size() > max_gone_tokens)) {
    gone_tokens_.erase(gone_order_.front().second);
    gone_order_.pop_front();
  }
}

bool Room::held_locked(const std::string& key, Clock::time_point now) {
  expire_locked(now);
  return held_.contains(key);
}

void Room::hold_seat_locked(std::uint64_t number, const std::string& key, LeaveCause cause) {
  const auto it = seats_.find(number);
  if (it == seats_.end()) return;
  if (closed_ || !resumable(cause) || config_.resume_window <= Millis{0}) {
    close_seat_locked(number);
    return;
  }
  Seat& seat = it->second;
  seat.held = true;
  seat.dropped_at = std::chrono::system_clock::now();
  seat.expires = Clock::now() + config_.resume_window;
  held_[key] = number;
  expiries_.emplace_back(seat.expires, number);
  archive_.seat_dropped(number, unix_ms(seat.dropped_at));
}

void Room::remove_member_locked(Members::iterator it, const Departure& d) {
  const std::string nick = it->second.nick;
  const std::string key = it->first;
  const std::uint64_t seat = it->second.seat;
  roster_ = roster_.without(it->first);
  members_.erase(it);
  stats_.count_leave(d.cause);
  append_locked(Event{Event::Kind::leave, nick, {}, std::string(to_string(d.cause)), d.detail, {}}, members_.size());
  if (seat != 0) hold_seat_locked(seat, key, d.cause);
}

void Room::send_recent_locked(Session& session, std::uint64_t head, std::uint64_t below_id) {
  const bool text = session.mode() == Session::Mode::text;
  if (!session.ids() && !text) return;  // a program that did not ask: the lines it always had
  std::vector<ArchivedEvent> recent;
  if (config_.history > 0) {
    // The ring in memory: no disk under the lock. Its last entry is the newcomer's own JOIN.
    recent = archive_.recent(config_.history + 1);
    std::erase_if(recent, [&](const ArchivedEvent& e) { return e.id >= below_id; });
    if (recent.size() > config_.history) recent.erase(recent.begin(), recent.end() - static_cast<long>(config_.history));
  }
  // Fewer than asked for, and the archive has let older ones go (pruned, lost, a crash).
  const bool partial = recent.size() < config_.history && !archive_.after(0, 1, 1, true).complete;
  const auto count = std::to_string(recent.size());
  if (text) {
    if (recent.empty()) return;
    session.send_own(*render_event(Event{Event::Kind::history, {}, count, "recent", {}, {}}), head, "history");
    for (const auto& r : recent) {
      const auto when = std::chrono::system_clock::time_point(std::chrono::milliseconds(r.time_ms));
      if (auto line = render_line(r.event, when)) session.send_own(std::move(*line), head, "history");
    }
    session.send_own(*render_event(Event{Event::Kind::history_end, {}, {}, "recent", {}, {}}), head, "history");
    return;
  }
  session.send_own(format_event(Event{Event::Kind::history, {}, count, "recent", partial ? "partial" : "", {}}), head,
                   "history");
  for (const auto& r : recent) {
    Event e = r.event;
    e.id = r.id;
    e.time_ms = r.time_ms;
    session.send_own(format_tagged(e), head, "history");
  }
  session.send_own(format_event(Event{Event::Kind::history_end, {}, {}, "recent", {}, {}}), head, "history");
}

void Room::wake_writers() { writers_.room_changed(); }

Room::JoinResult Room::join(const std::shared_ptr<Session>& session, const std::string& nick) {
  if (backplane_ != nullptr) return join_shared(session, nick);
  {
    std::lock_guard lock(mutex_);
    if (closed_ || session->ended()) return JoinResult::closed;
    const auto key = fold_nick(nick);
    if (members_.contains(key)) return JoinResult::nick_in_use;
    if (held_locked(key, Clock::now())) return JoinResult::nick_held;
    // The others hear JOIN before the newcomer is a member; the newcomer's stream starts right
    // after it, with WELCOME and the list that includes itself. Everything after this is in
    // the same order for everyone.
    const auto join_id = id_of(history_.head());
    const auto head = append_locked(Event{Event::Kind::join, nick, {}, {}, {}, {}}, members_.size() + 1);
    Member member{session, nick, 0, {}};
    std::string token;
    if (session->ids()) {
      token = new_token();
      member.seat = ++last_seat_;
      Seat seat{token_hash(token), nick, false, {}, {}, join_id};
      by_token_.emplace(seat.token_hash, member.seat);
      archive_.seat_opened(SeatRecord{member.seat, seat.token_hash, nick, 0});
      seats_.emplace(member.seat, std::move(seat));
    }
    admit_locked(session, key, std::move(member), head);
    welcome_locked(session, nick, head, join_id, token);
  }
  wake_writers();
  return JoinResult::joined;
}

void Room::welcome_locked(const std::shared_ptr<Session>& session, const std::string& nick, std::uint64_t head,
                          std::uint64_t join_id, const std::string& token) {
  if (auto welcome = line_for(*session, Event{Event::Kind::welcome, nick, {}, {}, {}, {}})) {
    session->send_own(std::move(*welcome), head, "reply");
  }
  if (!token.empty()) {
    const auto window = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(config_.resume_window).count());
    session->send_own(format_event(Event{Event::Kind::token, {}, token, {}, window, {}}), head, "reply");
  }
  Outbox::Item users;
  users.kind = Outbox::Item::Kind::users;
  users.after = head;
  users.users = roster_;  // a snapshot: O(1) here, rendered by the writer
  users.when = std::chrono::system_clock::now();
  session->send_item(std::move(users), "reply");
  send_recent_locked(*session, head, join_id);
}

void Room::admit_locked(const std::shared_ptr<Session>& session, const std::string& key, Member member,
                        std::uint64_t head) {
  const std::string nick = member.nick;
  members_.emplace(key, std::move(member));
  roster_ = roster_.with(key, nick);
  session->set_joined(nick);
  // Its room stream starts at the head: everything appended from now on, after the lines for it
  // alone that are stamped with this head (WELCOME or RESUMED, USERS, the history).
  Outbox::Item start;
  start.kind = Outbox::Item::Kind::join_room;
  start.after = head;
  start.start = history_.start();
  start.start_bytes = history_.bytes_at_head(session->outbox().mode());
  session->send_item(std::move(start), "room");
}

Room::ResumeResult Room::resume(const std::shared_ptr<Session>& session, std::string_view token,
                                std::uint64_t last_id) {
  if (backplane_ != nullptr) return resume_shared(session, token, last_id);
  const auto hash = token_hash(token);
  {
    // A token that opens no seat is refused before anything is read from the disk: a stranger's
    // RESUME must cost a map lookup, not a query.
    std::lock_guard lock(mutex_);
    if (!by_token_.contains(hash)) {
      const auto gone = gone_tokens_.find(hash);
      if (gone == gone_tokens_.end()) return ResumeResult::unknown;
      return gone->second == Gone::expired ? ResumeResult::expired : ResumeResult::used;
    }
  }
  // The part of the replay that may be on disk, read before the lock (it may take a while);
  // what was appended since is taken from memory under the lock below.
  auto early = archive_.after(last_id, UINT64_MAX, max_replay_events);
  bool partial = !early.complete;
  if (early.events.size() >= max_replay_events) early.events = archive_.before(UINT64_MAX, max_replay_events);
  std::shared_ptr<Session> replaced;
  {
    std::lock_guard lock(mutex_);
    if (closed_ || session->ended()) return ResumeResult::closed;
    const auto now = Clock::now();
    expire_locked(now);
    const auto found = by_token_.find(hash);
    if (found == by_token_.end() || !same_hash(found->first, hash)) {
      const auto gone = gone_tokens_.find(hash);
      if (gone == gone_tokens_.end()) return ResumeResult::unknown;
      return gone->second == Gone::expired ? ResumeResult::expired : ResumeResult::used;
    }
    const std::uint64_t number = found->second;
    if (seats_.at(number).held && seats_.at(number).expires <= now) {  // (expire_locked took it already)
      forget_token_locked(hash, Gone::expired);
      close_seat_locked(number);
      return ResumeResult::expired;
    }
    const auto key = fold_nick(seats_.at(number).nick);
    if (!seats_.at(number).held) {
      // Its old connection is still a member: the server has not noticed it is dead yet (a phone
      // that changed networks reconnects before any detector fires). This resume is the proof.
      const auto it = members_.find(key);
      if (it != members_.end() && it->second.seat == number) {
        replaced = it->second.session;
        const Departure d{LeaveCause::closed, "replaced by a resumed connection from " + session->peer()};
        replaced->end(d.cause, d.detail);
        remove_member_locked(it, d);
      }
    }
    const auto sit = seats_.find(number);
    if (sit == seats_.end() || !sit->second.held) return ResumeResult::unknown;  // nothing to take back
    Seat& seat = sit->second;

    // The seat is the client's again: a new token (the old one is spent), the nickname back.
    const auto away_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now() -
                                                                                seat.dropped_at).count();
    const std::string nick = seat.nick;
    const std::string fresh = new_token();
    forget_token_locked(hash, Gone::used);
    by_token_.erase(hash);
    seat.token_hash = token_hash(fresh);
    by_token_.emplace(seat.token_hash, number);
    seat.held = false;
    held_.erase(key);
    archive_.seat_token(number, seat.token_hash);
    archive_.seat_back(number);

    // What it missed: public events after last_id up to now, and the private messages to or
    // from it, merged by id. The BACK below is the first event it does not need.
    const std::uint64_t below = id_of(history_.head());
    // Its stream began after its own JOIN (or BACK), which it never receives: a last id older
    // than that (nothing came after the join before the drop) must not replay the JOIN to it.
    last_id = std::max(last_id, seat.since);
    seat.since = below;  // the BACK appended below
    auto lines = replay_lines_locked(last_id, below, early, partial,
                                     [&](const Private& p) { return p.from_seat == number || p.to_seat == number; });
    const auto head = append_locked(Event{Event::Kind::back, nick, std::to_string(away_ms), {}, {}, {}},
                                    members_.size() + 1);
    admit_locked(session, key, Member{session, nick, number, {}}, head);
    welcome_back_locked(*session, nick, std::to_string(away_ms), fresh, head, std::move(lines), partial);
  }
  wake_writers();
  return ResumeResult::resumed;
}

void Room::leave(Session& session) {
  if (backplane_ != nullptr) {
    // Out of this instance's members at once (its writer stops); the room hears the LEAVE, with
    // its cause as detected, when it comes back from the stream.
    Event event;
    std::int64_t hold_ms = 0;
    bool split = false;
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;
      const auto it = find_locked(session);
      if (it == members_.end()) return;
      const auto d = session.departure().value_or(Departure{LeaveCause::error, "unknown"});
      event = Event{Event::Kind::leave, it->second.nick, {}, std::string(to_string(d.cause)), d.detail, {}};
      // A seat is held in Redis for the resume window, for a RESUME on any instance.
      if (it->second.seat != 0 && resumable(d.cause)) hold_ms = config_.resume_window.count();
      members_.erase(it);
      stats_.count_leave(d.cause);
      if (!split_since_.empty()) {
        // Split: this instance's members hear it now; the others when the link is back.
        backplane_->publish(event, Backplane::Claim::release, {}, hold_ms);
        roster_ = roster_.without(fold_nick(event.nick));
        append_split_locked(event, roster_.size());
        split = true;
      }
    }
    if (split) {
      wake_writers();
      return;
    }
    backplane_->publish(event, Backplane::Claim::release, {}, hold_ms);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    const auto it = find_locked(session);
    if (it == members_.end()) return;
    remove_member_locked(it, session.departure().value_or(Departure{LeaveCause::error, "unknown"}));
    expire_locked(Clock::now());
  }
  wake_writers();
}

void Room::notice(const std::string& text) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    if (backplane_ != nullptr) {
      tell_members_locked(text);  // about this server (its disk): its members only
    } else {
      append_locked(Event{Event::Kind::comment, {}, {}, {}, text, {}});
    }
  }
  wake_writers();
}

void Room::say(Session& from, std::string_view text) { speak(from, Event::Kind::msg, text); }

void Room::me(Session& from, std::string_view text) { speak(from, Event::Kind::me, text); }

void Room::speak(Session& from, Event::Kind kind, std::string_view text) {
  if (backplane_ != nullptr) {
    // Shared: published; every member (this one too) gets it when it comes back from the stream.
    // Split: this instance's members get it now, without an id; the others when whole again.
    Event event;
    bool shown = false;
    {
      std::lock_guard lock(mutex_);
      const auto it = find_locked(from);
      if (it == members_.end()) return;
      event = Event{kind, it->second.nick, {}, {}, std::string(text), {}};
      if (!split_since_.empty()) {
        if (backplane_->publish(event)) {
          append_split_locked(event);
          shown = true;
        } else {
          from.reply_line(not_kept_line);
          return;
        }
      }
    }
    if (shown) {
      wake_writers();
    } else if (!backplane_->publish(event)) {
      from.reply_line(not_kept_line);
    }
    return;
  }
  {
    std::lock_guard lock(mutex_);
    const auto it = find_locked(from);
    if (it == members_.end()) return;
    append_locked(Event{kind, it->second.nick, {}, {}, std::string(text), {}});
  }
  wake_writers();
}

bool Room::priv(Session& from, std::string_view to, std::string_view text) {
  if (backplane_ != nullptr) {
    // Anyone in the room, on any instance; it is shown when it comes back from the stream.
    Event event;
    {
      std::lock_guard lock(mutex_);
      const auto sender = find_locked(from);
      if (sender == members_.end()) return true;  // leaving; nothing to report
      const std::string* name = roster_.find(fold_nick(to));
      if (name == nullptr) return false;
      event = Event{Event::Kind::priv, sender->second.nick, *name, {}, std::string(text), {}};
    }
    if (!backplane_->publish(event)) {
      from.reply_line(not_kept_line);
    }
    return true;
  }
  {
    std::lock_guard lock(mutex_);
    const auto sender = find_locked(from);
    if (sender == members_.end()) return true;  // leaving; nothing to report
    const auto now = Clock::now();
    const auto recipient = members_.find(fold_nick(to));
    std::uint64_t to_seat = 0;
    std::string to_nick;
    if (recipient != members_.end()) {
      to_seat = recipient->second.seat;
      to_nick = recipient->second.nick;
    } else if (held_locked(fold_nick(to), now)) {
      // Someone whose connection dropped and whose seat is held: it gets this on resuming.
      to_seat = held_.at(fold_nick(to));
      to_nick = seats_.at(to_seat).nick;
    } else {
      return false;
    }
    // A private message takes an id in the room's order (an entry no one is shown), so that a
    // client with ids sees it tagged and can resume after it. It stays out of the archive and
    // the transcript: kept in memory for the resume window only, when a seat is involved.
    Event event{Event::Kind::priv, sender->second.nick, to_nick, {}, std::string(text), {}};
    event.id = id_of(history_.head());
    event.time_ms = unix_ms(std::chrono::system_clock::now());
    history_.append(EntryLines{});
    const auto head = history_.head();
    if (sender->second.seat != 0 || to_seat != 0) {
      privates_.push_back(Private{event, sender->second.seat, to_seat, now + config_.resume_window});
    }
    if (auto line = line_for(*sender->second.session, event)) {
      sender->second.session->send_own(std::move(*line), head, "room");
    }
    if (recipient != members_.end() && recipient != sender) {
      if (auto line = line_for(*recipient->second.session, event)) {
        recipient->second.session->send_own(std::move(*line), head, "room");
      }
    }
  }
  // The empty entry moved the head: the writers of members that are up to date move past it.
  wake_writers();
  return true;
}

Room::RenameResult Room::rename(Session& session, const std::string& nick) {
  if (backplane_ != nullptr) return rename_shared(session, nick);
  {
    std::lock_guard lock(mutex_);
    const auto it = find_locked(session);
    if (it == members_.end()) return RenameResult::unchanged;
    if (it->second.nick == nick) return RenameResult::unchanged;
    const auto key = fold_nick(nick);
    if (key != it->first && members_.contains(key)) return RenameResult::nick_in_use;
    if (key != it->first && held_locked(key, Clock::now())) return RenameResult::nick_held;
    const std::string old = it->second.nick;
    if (const auto seat = seats_.find(it->second.seat); seat != seats_.end()) {
      seat->second.nick = nick;
      archive_.seat_renamed(it->second.seat, nick);
    }
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
  // The archive's figures (docs/protocol.md, STATS): does the writer thread keep up?
  const auto a = archive_.counters();
  std::string line = stats_.line(members, writers_.size(), chunks);
  if (backplane_ != nullptr) {
    const auto b = backplane_->stats();
    line += " redis_linked=" + std::to_string(b.linked ? 1 : 0) + " redis_published=" + std::to_string(b.published) +
            " redis_received=" + std::to_string(b.received) + " redis_queued=" + std::to_string(b.queued) +
            " redis_lost=" + std::to_string(b.lost) + " redis_gaps=" + std::to_string(b.gaps) +
            " redis_reaped=" + std::to_string(b.reaped) + " redis_reconnects=" + std::to_string(b.reconnects);
  }
  line += " archived=" + std::to_string(a.written) + " archive_queue=" + std::to_string(a.queued) +
          " archive_lost=" + std::to_string(a.lost) + " archive_batches=" + std::to_string(a.batches) +
          " archive_max_batch_ms=" + std::to_string(static_cast<std::uint64_t>(a.max_batch_ms + 0.5)) +
          " held_seats=" + std::to_string(held_seats()) + " bans=" + std::to_string(bans_.size());
  return line;
}

void Room::close() {
  std::lock_guard lock(mutex_);
  if (closed_) return;
  closed_ = true;
  // The clients get "BYE shutdown" rather than a LEAVE for every other member (a LEAVE storm
  // of N x N lines saying the same thing); the transcript still records one LEAVE per JOIN.
  transcript_.note("*** server shutting down (" + std::to_string(members_.size()) + " online)");
  const auto now_ms = unix_ms(std::chrono::system_clock::now());
  if (backplane_ != nullptr) {
    // The other instances' clients hear each of this instance's members leave, and why; the
    // backplane sends these before it deregisters (Backplane::stop()).
    for (const auto& [key, member] : members_) {
      const auto d = member.session->departure().value_or(Departure{LeaveCause::shutdown, "server shutting down"});
      stats_.count_leave(d.cause);
      // A seat stays held, as at a standalone shutdown: its client may resume on another
      // instance (or this one, restarted) within the window.
      backplane_->publish(Event{Event::Kind::leave, member.nick, {}, std::string(to_string(d.cause)), d.detail, {}},
                          Backplane::Claim::release, {}, member.seat != 0 ? config_.resume_window.count() : 0);
    }
    members_.clear();
    roster_ = Roster();
    admitted_.notify_all();  // readers waiting for their JOIN: the server is closing
    return;
  }
  for (const auto& [key, member] : members_) {
    // A client with ids may resume on the restarted server: its seat stays in the archive,
    // held from now (the seats already held stay as they are).
    if (member.seat != 0) archive_.seat_dropped(member.seat, now_ms);
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

std::vector<std::string> Room::replay_lines_locked(std::uint64_t last_id, std::uint64_t below,
                                                  const Archive::Slice& early, bool& partial,
                                                  const std::function<bool(const Private&)>& theirs) {
  std::vector<Event> missed;
  std::uint64_t seen = last_id;
  auto add_public = [&](const ArchivedEvent& r) {
    if (r.id <= seen || r.id >= below) return;
    Event e = r.event;
    e.id = r.id;
    e.time_ms = r.time_ms;
    missed.push_back(std::move(e));
    seen = r.id;
  };
  for (const auto& r : early.events) add_public(r);
  // Appended since the read above (or not yet on disk): from memory, without touching the disk.
  auto late = archive_.after(seen, below, max_replay_events, true);
  if (!late.complete) partial = true;
  for (const auto& r : late.events) add_public(r);
  std::vector<Event> privates;
  for (const auto& p : privates_) {
    if (p.event.id > last_id && p.event.id < below && theirs(p)) privates.push_back(p.event);
  }
  if (!privates.empty()) {
    std::vector<Event> merged;
    merged.reserve(missed.size() + privates.size());
    std::merge(missed.begin(), missed.end(), privates.begin(), privates.end(), std::back_inserter(merged),
               [](const Event& a, const Event& b) { return a.id < b.id; });
    missed = std::move(merged);
  }
  // The newest that fit in half the send queue; older ones are said to be missing.
  std::vector<std::string> lines;
  std::size_t bytes = 0;
  std::size_t first = missed.size();
  while (first > 0) {
    auto line = format_tagged(missed[first - 1]);
    if (bytes + line.size() + 1 > replay_budget(config_)) {
      partial = true;
      break;
    }
    bytes += line.size() + 1;
    lines.push_back(std::move(line));
    --first;
  }
  std::reverse(lines.begin(), lines.end());
  return lines;
}

void Room::welcome_back_locked(Session& session, const std::string& nick, const std::string& away_ms,
                               const std::string& fresh, std::uint64_t head, std::vector<std::string> lines,
                               bool partial) {
  const auto count = std::to_string(lines.size());
  session.send_own(format_event(Event{Event::Kind::resumed, nick, away_ms, {}, count, {}}), head, "reply");
  const auto window = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(config_.resume_window).count());
  session.send_own(format_event(Event{Event::Kind::token, {}, fresh, {}, window, {}}), head, "reply");
  Outbox::Item users;
  users.kind = Outbox::Item::Kind::users;
  users.after = head;
  users.users = roster_;
  users.when = std::chrono::system_clock::now();
  session.send_item(std::move(users), "reply");
  session.send_own(format_event(Event{Event::Kind::history, {}, count, "missed", partial ? "partial" : "", {}}), head,
                   "history");
  for (auto& line : lines) session.send_own(std::move(line), head, "history");
  session.send_own(format_event(Event{Event::Kind::history_end, {}, {}, "missed", {}, {}}), head, "history");
  log_info("resumed the seat of ", nick, " after ", away_ms, " ms away: ", count, " missed event(s)",
           partial ? " (partial)" : "");
}

// ---- shared (--redis) ------------------------------------------------------------------------

namespace {

// How long a reader waits for Redis to answer its JOIN's claim, and then for the JOIN to come
// back on the stream (one round trip each on a working link).
constexpr auto shared_join_patience = std::chrono::seconds(5);

}  // namespace

void Room::share(Backplane& backplane, const std::vector<std::string>& roster, std::vector<StreamEvent> past,
                 std::uint64_t start_id) {
  std::lock_guard lock(mutex_);
  backplane_ = &backplane;
  for (const auto& nick : roster) roster_ = roster_.with(fold_nick(nick), nick);
  // The room's recent past (the roster above already counts it). What lies between the
  // archive's last event and the first of these was said while this server was not there:
  // resumes from before it are partial.
  const auto archived = archive_.last_id();
  const std::uint64_t first = past.empty() ? start_id + 1 : past.front().id;
  if (first > archived + 1) archive_.not_kept_upto(first - 1);
  for (auto& e : past) {
    if (e.id <= archived) continue;  // (in this server's own archive already)
    Event& event = e.event;
    switch (event.kind) {
      case Event::Kind::priv:
        privates_.push_back(Private{event, 0, 0, Clock::now() + 2 * config_.resume_window});
        break;
      case Event::Kind::back:
        event.code.clear();  // (the new token's hash)
        append_locked(event, std::nullopt, &e, false);
        break;
      case Event::Kind::join:
        event.arg.clear();  // (an announce under a new name: a JOIN for everyone but its own server)
        append_locked(event, std::nullopt, &e, false);
        break;
      case Event::Kind::leave:
      case Event::Kind::msg:
      case Event::Kind::me:
      case Event::Kind::nick:
      case Event::Kind::comment:
        append_locked(event, std::nullopt, &e, false);
        break;
      default:
        break;
    }
  }
  // Seats do not move between instances yet: the ones an earlier run kept are let go.
  for (const auto& [number, seat] : seats_) {
    forget_token_locked(seat.token_hash, Gone::expired);
    archive_.seat_closed(number);
  }
  seats_.clear();
  held_.clear();
  by_token_.clear();
  expiries_.clear();
}

std::string Room::split_detail() const {
  std::lock_guard lock(mutex_);
  return split_since_;
}

Room::JoinResult Room::join_shared(const std::shared_ptr<Session>& session, const std::string& nick) {
  const auto key = fold_nick(nick);
  std::string seat_hash;
  {
    std::lock_guard lock(mutex_);
    if (closed_ || session->ended()) return JoinResult::closed;
    if (const auto j = joining_.find(key);
        j != joining_.end() && j->second.abandoned && Clock::now() - j->second.given_up > std::chrono::minutes(1)) {
      joining_.erase(j);  // its JOIN never came back: it never reached the stream
    }
    if (members_.contains(key) || joining_.contains(key)) return JoinResult::nick_in_use;
    Joining joining;
    joining.session = session;
    joining.nick = nick;
    // A client with ids gets a seat, kept in Redis so that it may resume on any instance.
    if (session->ids() && config_.resume_window > Millis{0}) joining.token = new_token();
    joining_.emplace(key, std::move(joining));
    seat_hash = joining_.at(key).token.empty() ? std::string() : token_hash(joining_.at(key).token);
  }
  // The claim and the JOIN in one step in Redis; the joiner is let in where the JOIN lands in
  // the stream (enter_locked), so its view starts exactly there, as on every other instance.
  const auto result = backplane_->publish_and_wait(Event{Event::Kind::join, nick, {}, {}, {}, {}},
                                                   Backplane::Claim::take, shared_join_patience, seat_hash);
  std::unique_lock lock(mutex_);
  if (result.outcome == Backplane::Outcome::published) {
    // (By key each time: enter_locked erases the entry of a joiner that ended meanwhile.)
    admitted_.wait_for(lock, shared_join_patience, [&] {
      const auto j = joining_.find(key);
      return j == joining_.end() || j->second.admitted || closed_;
    });
  }
  const auto it = joining_.find(key);
  if (it == joining_.end()) return JoinResult::closed;  // it ended while its JOIN travelled
  if (it->second.admitted) {
    joining_.erase(it);
    return JoinResult::joined;
  }
  switch (result.outcome) {
    case Backplane::Outcome::taken:
    case Backplane::Outcome::unknown:
    case Backplane::Outcome::expired:
      joining_.erase(it);
      return JoinResult::nick_in_use;
    case Backplane::Outcome::held:
      joining_.erase(it);
      return JoinResult::nick_held;
    case Backplane::Outcome::stopped:
      joining_.erase(it);
      return JoinResult::closed;
    case Backplane::Outcome::published:
    case Backplane::Outcome::unavailable:
      break;
  }
  if (closed_ || !result.maybe_sent) {
    joining_.erase(it);
    return closed_ ? JoinResult::closed : JoinResult::split;
  }
  // No answer in time: its JOIN may still be in the stream (or arrive later). If it comes, it
  // is followed by a LEAVE, so nobody is left in the room for a client that was told no.
  it->second.abandoned = true;
  it->second.given_up = Clock::now();
  it->second.session.reset();
  return JoinResult::split;
}

Room::RenameResult Room::rename_shared(Session& session, const std::string& nick) {
  std::string old;
  const auto key = fold_nick(nick);
  {
    std::lock_guard lock(mutex_);
    const auto it = find_locked(session);
    if (it == members_.end()) return RenameResult::unchanged;
    if (it->second.nick == nick) return RenameResult::unchanged;
    if (key != it->first && (members_.contains(key) || joining_.contains(key))) return RenameResult::nick_in_use;
    old = it->second.nick;
  }
  const auto result = backplane_->publish_and_wait(Event{Event::Kind::nick, old, nick, {}, {}, {}},
                                                   Backplane::Claim::rename, shared_join_patience);
  switch (result.outcome) {
    case Backplane::Outcome::taken:
    case Backplane::Outcome::unknown:
    case Backplane::Outcome::expired: return RenameResult::nick_in_use;
    case Backplane::Outcome::held: return RenameResult::nick_held;
    case Backplane::Outcome::unavailable: return RenameResult::split;
    case Backplane::Outcome::stopped: return RenameResult::unchanged;
    case Backplane::Outcome::published: break;
  }
  // The NICK is in the stream, ahead of anything this reader publishes next: the member goes
  // under its new name now (the roster changes when the NICK comes back).
  std::lock_guard lock(mutex_);
  const auto it = members_.find(fold_nick(old));
  if (it == members_.end() || it->second.session.get() != &session) return RenameResult::renamed;
  Member member = std::move(it->second);
  members_.erase(it);
  member.nick = nick;
  member.session->set_nick(nick);
  members_.emplace(key, std::move(member));
  return RenameResult::renamed;
}

void Room::enter(std::vector<StreamEvent> events) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    for (const auto& e : events) enter_locked(e);
  }
  wake_writers();
}

void Room::enter_locked(const StreamEvent& e) {
  const Event& event = e.event;
  const bool own = e.origin == backplane_->instance();
  const auto key = fold_nick(event.nick);
  // Shown here already, during the split (append_split_locked): back in the stream's order for
  // the others, not shown twice here. Own events come back in the order they were published.
  if (own && !split_shown_.empty()) {
    // Own events come back in the order they were published, so this one is the first shown
    // line it matches; lines ahead of that one never made it into the stream (refused by Redis
    // as said under a name given away meanwhile, or not kept): they are let go. (Looked for
    // among the first 256, so that a line never shown costs little.)
    const auto same = [&](const Event& shown) {
      const auto renamed = renamed_.find(fold_nick(shown.nick));  // (announced again under a new name)
      const bool same_nick = shown.nick == event.nick || (renamed != renamed_.end() && renamed->second == event.nick);
      return shown.kind == event.kind && same_nick && shown.text == event.text && shown.code == event.code;
    };
    const auto window = split_shown_.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(split_shown_.size(), 256));
    if (const auto match = std::find_if(split_shown_.begin(), window, same); match != window) {
      split_shown_.erase(split_shown_.begin(), match + 1);
      // It was shown here without an id. The archive gets it now, with its id (HISTORY BEFORE,
      // SEARCH and a resume here find it). When the last one is back, clients with ids get a
      // tagged remark with its id: their last id moves past these lines, so a resume (here or
      // elsewhere) does not give them again. Nobody else is shown the remark.
      archive_.append(ArchivedEvent{e.id, e.time_ms, event});
      if (split_shown_.empty()) {
        renamed_.clear();
        Event note{Event::Kind::comment, {}, {}, {}, "what was said here during the split is in the room's history now", {}};
        note.id = e.id;
        note.time_ms = e.time_ms;
        history_.append(std::string(), std::string(), with_lf(format_tagged(note)));
      }
      return;
    }
  }
  switch (event.kind) {
    case Event::Kind::join: {
      if (own && !event.arg.empty()) {  // a member announced again under a new name
        enter_renamed_locked(e);
        return;
      }
      // A JOIN for someone the room already has, under that name, is no news: an instance
      // announcing its members again after Redis forgot it (restarted empty, or it was declared
      // lost while they stayed). Nor is this instance's own such JOIN here, where its members
      // never saw them go (the instance-lost LEAVE was not shown).
      const std::string* present = roster_.find(key);
      const auto member = own ? members_.find(key) : members_.end();
      const bool again = member != members_.end() && member->second.nick == event.nick && !joining_.contains(key);
      const bool news = !again && (present == nullptr || *present != event.nick);
      roster_ = roster_.with(key, event.nick);
      const auto head = news ? append_locked(event, roster_.size(), &e) : history_.head();
      const auto it = own ? joining_.find(key) : joining_.end();
      if (it == joining_.end()) return;
      if (it->second.abandoned) {
        joining_.erase(it);
        backplane_->publish(Event{Event::Kind::leave, event.nick, {}, std::string(to_string(LeaveCause::error)),
                                  "the join was given up: no answer from redis in time", {}},
                            Backplane::Claim::release);
        return;
      }
      auto session = it->second.session;
      if (session->ended()) {
        // Gone while its JOIN travelled: it leaves again at once, with the cause its reader saw.
        const auto d = session->departure().value_or(Departure{LeaveCause::error, "unknown"});
        joining_.erase(it);  // its reader finds no entry: closed
        admitted_.notify_all();
        backplane_->publish(Event{Event::Kind::leave, event.nick, {}, std::string(to_string(d.cause)), d.detail, {}},
                            Backplane::Claim::release);
        return;
      }
      admit_locked(session, key,
                   Member{session, event.nick, it->second.token.empty() ? 0u : 1u,
                          it->second.token.empty() ? std::string() : token_hash(it->second.token)},
                   head);
      welcome_locked(session, event.nick, head, e.id, it->second.token);
      it->second.admitted = true;
      admitted_.notify_all();
      return;
    }
    case Event::Kind::leave:
      // An instance-lost LEAVE for one of this instance's members: a reaper declared this
      // instance lost while it was cut off from Redis (the LEAVE carries this instance as its
      // origin). They are still here, and this instance says so again (announce_members,
      // first thing when it is back): its own clients never saw them go, so they are not shown
      // this.
      // The roster loses them all the same, as everywhere: while Redis has forgotten this
      // instance, another server may give the name to someone else, whose JOIN is news here.
      roster_ = roster_.without(key);
      if (event.code == to_string(LeaveCause::instance_lost) && members_.contains(key)) return;
      append_locked(event, roster_.size(), &e);
      return;
    case Event::Kind::nick:
      roster_ = roster_.without(key).with(fold_nick(event.arg), event.arg);
      append_locked(event, std::nullopt, &e);
      return;
    case Event::Kind::back:
      enter_back_locked(e);
      return;
    case Event::Kind::priv: {
      // An entry nobody is shown (its place in the order); the sender and the recipient, if
      // they are here, get the line. Kept for the resume window: either may be a seat that
      // resumes, here or on another instance.
      history_.append(EntryLines{});
      const auto head = history_.head();
      privates_.push_back(Private{event, 0, 0, Clock::now() + 2 * config_.resume_window});
      for (const auto& who : {key, fold_nick(event.arg)}) {
        const auto m = members_.find(who);
        if (m == members_.end()) continue;
        if (auto line = line_for(*m->second.session, event)) m->second.session->send_own(std::move(*line), head, "room");
        if (key == fold_nick(event.arg)) break;  // to oneself: once
      }
      return;
    }
    case Event::Kind::msg:
    case Event::Kind::me:
    case Event::Kind::comment:
      append_locked(event, std::nullopt, &e);
      return;
    default:
      return;  // nothing else is published
  }
}

void Room::enter_renamed_locked(const StreamEvent& e) {
  // This instance's member `arg`, announced again after Redis had forgotten the instance, came
  // back as `nick`: while this server was cut off, someone on another server took the name
  // (their JOIN came before this one in the stream). The others see `nick` join (they saw `arg`
  // lost with its server); here, where nobody saw it go, it is a rename.
  const Event& event = e.event;
  const auto key = fold_nick(event.nick);
  const auto old_key = fold_nick(event.arg);
  roster_ = roster_.with(key, event.nick);  // (the old name is someone else's now)
  const auto m = members_.find(old_key);
  if (m == members_.end() || m->second.nick != event.arg) {
    // Renamed already (announced twice: the link broke again meanwhile): no news. Else gone
    // meanwhile (its LEAVE follows, under the new name): a JOIN, as the others see it.
    const auto renamed = members_.find(key);
    if (renamed != members_.end() && renamed->second.nick == event.nick) return;
    Event join = event;
    join.arg.clear();
    append_locked(join, roster_.size(), &e);
    return;
  }
  if (members_.contains(key)) {
    // (The event script picks a name no member of this instance has; should one have it all
    // the same, the member keeps its old name here rather than be lost from members_.)
    log_warn("announced again as ", event.nick, ", a name a member here has; ", event.arg, " keeps its name here");
    return;
  }
  Member member = std::move(m->second);
  members_.erase(m);
  member.nick = event.nick;
  member.session->set_nick(event.nick);
  members_.emplace(key, std::move(member));
  if (!split_shown_.empty()) renamed_[old_key] = event.nick;  // what it said while split comes back renamed
  tell_members_locked("while this server was cut off from the room, someone on another server took the name " +
                      event.arg + "; " + event.arg + " here is now " + event.nick);
  append_locked(Event{Event::Kind::nick, event.arg, event.nick, {}, {}, {}}, std::nullopt, &e);
}

void Room::enter_back_locked(const StreamEvent& e) {
  // A seat resumed, on this instance or another. The stream event carries the new token's hash
  // in its code (to find the reader that asked); nobody is shown it, and it is not archived.
  Event event = e.event;
  const std::string new_hash = std::move(event.code);
  event.code.clear();
  StreamEvent shown = e;
  shown.event = event;
  const auto key = fold_nick(event.nick);
  const bool own = e.origin == backplane_->instance();
  const auto pending = own ? resuming_.find(new_hash) : resuming_.end();
  // Its old connection, still a member here (nothing had noticed it was dead): replaced.
  if (const auto m = members_.find(key);
      m != members_.end() && (pending == resuming_.end() || m->second.session != pending->second.session)) {
    auto old = m->second.session;
    members_.erase(m);  // no LEAVE: the BACK says it is back
    old->end(LeaveCause::closed, "replaced by a resumed connection");
  }
  roster_ = roster_.with(key, event.nick);
  const auto head = append_locked(event, roster_.size(), &shown);
  if (pending == resuming_.end()) return;
  Resuming& r = pending->second;
  if (r.abandoned || r.session == nullptr || r.session->ended()) {
    // Nobody to let in (its reader gave up, or the client went): it leaves again, its seat held.
    const auto d = r.session && r.session->departure() ? *r.session->departure()
                                                       : Departure{LeaveCause::error, "the resume was given up"};
    backplane_->publish(Event{Event::Kind::leave, event.nick, {}, std::string(to_string(d.cause)), d.detail, {}},
                        Backplane::Claim::release, {}, config_.resume_window.count());
    resuming_.erase(pending);
    admitted_.notify_all();
    return;
  }
  bool partial = r.partial;
  const std::string nick = event.nick;
  // Its own JOIN or BACK before the drop is never replayed to it; nor is this BACK.
  auto lines = replay_lines_locked(r.last_id, e.id, r.early, partial, [&](const Private& p) {
    return fold_nick(p.event.nick) == key || fold_nick(p.event.arg) == key;
  });
  std::erase_if(lines, [&](const std::string& line) {
    const auto body = line.substr(line.find(' ') + 1);
    return body == "JOIN " + nick || body.starts_with("BACK " + nick + " ");
  });
  admit_locked(r.session, key, Member{r.session, nick, 1, new_hash}, head);
  welcome_back_locked(*r.session, nick, event.arg, r.token, head, std::move(lines), partial);
  r.admitted = true;
  admitted_.notify_all();
}

Room::ResumeResult Room::resume_shared(const std::shared_ptr<Session>& session, std::string_view token,
                                       std::uint64_t last_id) {
  const std::string old_hash = token_hash(token);
  const std::string fresh = new_token();
  const std::string new_hash = token_hash(fresh);
  // The part of the replay that may be on disk, before the lock (as for a resume here).
  auto early = archive_.after(last_id, UINT64_MAX, max_replay_events);
  const bool too_many = early.events.size() >= max_replay_events;
  if (too_many) early.events = archive_.before(UINT64_MAX, max_replay_events);
  {
    std::lock_guard lock(mutex_);
    if (closed_ || session->ended()) return ResumeResult::closed;
    std::erase_if(resuming_, [](const auto& kv) {
      return kv.second.abandoned && Clock::now() - kv.second.given_up > std::chrono::minutes(1);
    });
    Resuming r;
    r.session = session;
    r.token = fresh;
    r.last_id = last_id;
    r.early = std::move(early);
    r.partial = !r.early.complete || too_many;
    resuming_.emplace(new_hash, std::move(r));
  }
  // Redis checks the token and takes the seat back with the BACK, in one step.
  const auto result = backplane_->publish_and_wait(Event{Event::Kind::back, {}, {}, new_hash, {}, {}},
                                                   Backplane::Claim::resume, shared_join_patience, old_hash);
  std::unique_lock lock(mutex_);
  if (result.outcome == Backplane::Outcome::published) {
    admitted_.wait_for(lock, shared_join_patience, [&] {
      const auto r = resuming_.find(new_hash);
      return r == resuming_.end() || r->second.admitted || closed_;
    });
  }
  const auto it = resuming_.find(new_hash);
  if (it == resuming_.end()) return ResumeResult::closed;
  if (it->second.admitted) {
    resuming_.erase(it);
    return ResumeResult::resumed;
  }
  const bool maybe_sent = result.outcome == Backplane::Outcome::published || result.maybe_sent;
  if (!maybe_sent || closed_) {
    resuming_.erase(it);
  } else {
    // Its BACK may still come: then it leaves again (enter_back_locked), its seat held.
    it->second.abandoned = true;
    it->second.given_up = Clock::now();
    it->second.session.reset();
    it->second.early = {};
  }
  switch (result.outcome) {
    case Backplane::Outcome::unknown: return ResumeResult::unknown;
    case Backplane::Outcome::expired: return ResumeResult::expired;
    case Backplane::Outcome::stopped: return ResumeResult::closed;
    default: return closed_ ? ResumeResult::closed : ResumeResult::split;
  }
}

void Room::count_wrong_password() { ++stats_.wrong_password; }

Room::KickResult Room::kick(Session& by, const std::string& nick, const std::string& reason) {
  std::shared_ptr<Session> target;
  {
    std::lock_guard lock(mutex_);
    const auto key = fold_nick(nick);
    const auto it = members_.find(key);
    if (it == members_.end()) return roster_.find(key) != nullptr ? KickResult::not_here : KickResult::no_such_nick;
    target = it->second.session;
  }
  // Its reader wakes, and its leave() tells the room, as for any other end.
  target->end(LeaveCause::kicked, "by " + by.nick() + (reason.empty() ? std::string() : ": " + reason), "kicked");
  return KickResult::kicked;
}

Room::BanOutcome Room::ban(Session& by, const std::string& nick, std::chrono::milliseconds duration,
                           const std::string& reason) {
  BanOutcome out;
  const auto key = fold_nick(nick);
  const std::string op = by.nick();
  if (key == fold_nick(op)) {
    out.result = BanResult::self;
    return out;
  }
  {
    std::lock_guard lock(mutex_);
    const auto it = members_.find(key);
    if (it == members_.end() && roster_.find(key) != nullptr) {
      out.result = BanResult::not_here;
      return out;
    }
    if (it != members_.end()) out.member = it->second.session;
  }
  const auto now = std::chrono::system_clock::now();
  out.ban.nick = out.member ? out.member->nick() : nick;
  out.ban.address = out.member ? Bans::address_text(out.member->address()) : std::string();
  out.ban.until_ms = unix_ms(now + duration);
  out.ban.by = op;
  out.ban.reason = reason;
  if (bans_.add(out.ban, now) == Bans::Added::full) {
    out.result = BanResult::full;
    out.member.reset();
    return out;
  }
  if (!out.member) return out;
  out.result = BanResult::banned;
  out.detail = "by " + op + " until " + Bans::until_text(out.ban.until_ms, now) + (reason.empty() ? "" : ": " + reason);
  return out;
}

std::optional<std::string> Room::seat_nick(std::string_view token) const {
  if (backplane_ != nullptr) return std::nullopt;
  const auto hash = token_hash(token);
  std::lock_guard lock(mutex_);
  const auto found = by_token_.find(hash);
  if (found == by_token_.end()) return std::nullopt;
  const auto seat = seats_.find(found->second);
  if (seat == seats_.end()) return std::nullopt;
  return seat->second.nick;
}

void Room::tell_members_locked(const std::string& text) {
  const Event comment{Event::Kind::comment, {}, {}, {}, text, {}};
  const auto head = history_.head();
  for (const auto& [key, member] : members_) {
    if (auto line = line_for(*member.session, comment)) member.session->send_own(std::move(*line), head, "reply");
  }
}

void Room::link_changed(bool whole, const std::string& detail) {
  std::lock_guard lock(mutex_);
  if (closed_) return;
  if (!whole) {
    split_since_ = detail + " (since " + clock_stamp(std::chrono::system_clock::now()) + ")";
    tell_members_locked("the room is split since " + clock_stamp(std::chrono::system_clock::now()) +
                        ": this server cannot reach the others (" + detail +
                        "); you hear only the people on this server, and what is said here is kept (up to " +
                        std::to_string(backplane_->buffer_max()) + " lines) for the others until the link is back");
  } else {
    split_since_.clear();
    tell_members_locked("the room is whole again" + (detail.empty() ? std::string() : ": " + detail));
  }
}

void Room::announce_members() {
  std::lock_guard lock(mutex_);
  if (closed_) return;
  // Ahead of what they said while Redis did not have them (the queue kept it), each with its
  // seat: one the reaper held for it is taken back.
  for (const auto& [key, member] : members_) {
    backplane_->publish(Event{Event::Kind::join, member.nick, {}, {}, {}, {}}, Backplane::Claim::announce,
                        member.seat_hash, 0, true);
  }
}

}  // namespace chat
