// Room: who is joined, under which nickname, and the one path every room event takes.
//
// Thread safe: every public method may be called from any session's reader thread (and
// close() from the main thread). One mutex guards the member list, and each room event is
// appended to the History while it is held: that is what gives all receivers the same global
// order. The work under the lock does not grow with the number of members: an event is
// formatted once and appended once (O(1)); a join or leave also updates the member map and the
// persistent Roster (O(log N)); a newcomer's USERS is a Roster snapshot, turned into a line by
// its writer outside the lock. After the lock is released the writer threads are woken
// (WriterPool::room_changed): they send each member what it has not yet had.
//
// Lines for one or two clients (WELCOME, USERS, PRIV, WHO's answer) are queued to their
// Outboxes under the same lock, stamped with the history's head, so they keep their place
// among the room events.
//
// Ids and seats (docs/protocol.md, "Ids, resume and history"): an event's id is the room's
// run number (Archive::run) times 2^32 plus its place in the History, plus one, so ids grow
// across restarts. A client that joined with ids has a seat: its token's hash and nickname. When
// such a client drops (any cause but quit, flood or shutdown) its LEAVE goes out at once as
// always, and the seat is held for --resume-window: the nickname stays reserved, private
// messages to it are kept (in memory only), and RESUME with the token gives the client its
// nickname back with exactly what it missed, replayed ahead of the live stream. Every public
// event is also handed to the Archive (O(1), no I/O under the lock): it writes them to disk on
// its own thread, and answers history and search queries from reader threads.
//
// Shared (--redis, docs/scale-out.md): several chatservers serve one room through a Backplane.
// A room event then enters the History when it comes back from the room's Redis Stream, on the
// backplane thread (enter()), in the stream's order and with the stream's id, on every instance
// alike: a reader publishes and goes on. A JOIN is published with its nickname claim and the
// joiner is admitted where its JOIN lands in the stream; a LEAVE leaves members_ at once and is
// published; a PRIV goes through the stream for its id and is shown by the instances of its
// sender and recipient. members_ is this instance's sessions; roster_ is the whole room's (kept
// by the stream's JOIN, LEAVE and NICK events). Seats live in Redis, so a client resumes on any
// instance. When Redis forgets this instance (it was declared lost while cut off, or Redis
// restarted empty) its members are announced again; one whose name someone else took meanwhile
// goes on as name_2 (a NICK here, a JOIN elsewhere).
#pragma once

#include "common/net.hpp"
#include "common/protocol.hpp"
#include "server/archive.hpp"
#include "server/bans.hpp"
#include "server/config.hpp"
#include "server/history.hpp"
#include "server/password.hpp"
#include "server/roster.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chat {

class Backplane;
class Session;
struct StreamEvent;
class ServerStats;
class Transcript;
class WriterPool;

class Room {
 public:
  // Takes the seats the archive kept from the last run (held for what is left of the window).
  Room(const ServerConfig& config, Transcript& transcript, ServerStats& stats, WriterPool& writers, Archive& archive);

  // split: shared, and Redis cannot be reached now (the nickname cannot be claimed).
  enum class JoinResult { joined, nick_in_use, nick_held, split, closed };
  // `session`'s reader thread. On success the joiner gets WELCOME and USERS, the others JOIN.
  // A client with ids (Session::ids()) also gets a seat: TOKEN, and the recent history; a
  // text-mode client gets the recent history as text lines.
  JoinResult join(const std::shared_ptr<Session>& session, const std::string& nick);

  // split: shared, and Redis cannot be reached now.
  enum class ResumeResult { resumed, unknown, used, expired, split, closed };
  // `session`'s reader thread: RESUME <token> <last_id>. On success the client gets RESUMED,
  // a new TOKEN, USERS, and the events after `last_id` it missed (HISTORY missed), then the
  // live stream; the others get BACK. The disk part of the replay is read before the lock.
  ResumeResult resume(const std::shared_ptr<Session>& session, std::string_view token, std::uint64_t last_id);

  // `session`'s reader thread, on its way out: if it was a member, removes it and tells the
  // others LEAVE with the session's departure. Silent once the room is closed.
  void leave(Session& session);

  void say(Session& from, std::string_view text);
  void me(Session& from, std::string_view text);
  // False if nobody has that nickname. Only sender and recipient get the PRIV line.
  bool priv(Session& from, std::string_view to, std::string_view text);

  // An operator's KICK: `nick` (a member of this server) is ended with cause kicked, the detail
  // naming `by` and the reason; it gets BYE kicked, the room LEAVE <nick> kicked. not_here: with
  // --redis, someone on another chatserver (kicks do not cross servers yet).
  enum class KickResult { kicked, no_such_nick, not_here };
  KickResult kick(Session& by, const std::string& nick, const std::string& reason);

  // An operator's BAN: `nick` is banned for `duration` (Bans), with the address it is connected
  // from when it is a member of this server. banned: it is, and `member` is to be ended with
  // LeaveCause::banned and `detail` ("by alice until 14:05: flooding"; BYE banned, LEAVE <nick>
  // banned): the caller does it, after it has answered the operator, so that the answer comes
  // before the LEAVE. banned_absent: nobody here has that nickname; the nickname alone is
  // banned. not_here: with --redis, someone on another chatserver (bans are this server's
  // only). full: Bans::max_bans are held. self: an operator cannot ban itself.
  enum class BanResult { banned, banned_absent, not_here, full, self };
  struct BanOutcome {
    BanResult result = BanResult::banned_absent;
    BanRecord ban;                    // what was banned (banned, banned_absent)
    std::shared_ptr<Session> member;  // banned: the member to end
    std::string detail;               // banned: its LEAVE's and BYE's detail
  };
  BanOutcome ban(Session& by, const std::string& nick, std::chrono::milliseconds duration, const std::string& reason);
  // The bans (BAN, UNBAN, BANS; the listener's door). Any thread: Bans has its own lock.
  Bans& bans() { return bans_; }
  // The nickname of the seat `token` opens (RESUME), to refuse a banned one before anything
  // else; nullopt for a token that opens none here (and always with --redis: seats live there).
  std::optional<std::string> seat_nick(std::string_view token) const;

  enum class RenameResult { renamed, unchanged, nick_in_use, nick_held, split };
  RenameResult rename(Session& session, const std::string& nick);

  // Sends `session` the USERS list, in order with JOIN and LEAVE.
  void who(Session& session);
  std::vector<std::string> users() const;  // sorted ignoring case
  std::size_t size() const;

  // The STATS line (docs/protocol.md): the server's counters plus the room's own figures.
  std::string stats_line() const;

  // Server shutdown: later joins fail and leaves are no longer broadcast. The seats of clients
  // with ids stay in the archive, held from now: after a restart they may resume.
  void close();

  // A remark for everyone ("# history is not being saved: ..."), as a room event. Any thread
  // but one that holds the room's lock (the archive thread calls it).
  void notice(const std::string& text);

  // The archive: HISTORY BEFORE and SEARCH read it from reader threads, without the room lock.
  const Archive& archive() const { return archive_; }
  // Seats held now for a client to resume (those of the last run, at start-up).
  std::size_t held_seats() const;
  // The id the next room event will get (every id below it has been handed out).
  std::uint64_t next_id() const;

  // The room's events in order; the writers read it without the room's lock.
  const History& history() const { return history_; }

  // --password-file: the room password (nullptr: none), and who has been guessing it. Reader
  // threads, without the room's lock (each has its own).
  RoomPassword* password() { return password_.get(); }
  RoomPassword* admin_password() { return admin_password_.get(); }  // (--admin-password-file)
  Guesses& guesses() { return guesses_; }
  void count_wrong_password();  // (STATS wrong_password)

  // ---- shared (--redis) ----
  // The main thread, once, before any thread starts: from now on the room lives in `backplane`'s
  // stream; `roster` is who is in it (Backplane::start_roster()), `past` the stream's last events
  // up to `start_id` (Backplane::take_start_events()): they go into the history and the archive,
  // so that newcomers here get the room's recent history and a seat resumes here with what it
  // missed before this server started (what is older than `past` and not in the archive already
  // is said to be missing: partial). Seats kept from an earlier standalone run are let go.
  void share(Backplane& backplane, const std::vector<std::string>& roster, std::vector<StreamEvent> past,
             std::uint64_t start_id);
  bool shared() const { return backplane_ != nullptr; }
  // The backplane thread: events from the stream, in its order (this instance's own included).
  void enter(std::vector<StreamEvent> events);
  // The backplane thread: the link to Redis broke (whole = false, why) or is back (whole = true,
  // with what could not be kept, if anything). Told to this instance's members.
  void link_changed(bool whole, const std::string& detail);
  // The backplane thread: Redis forgot this instance (it was declared lost); its members are
  // announced again.
  void announce_members();
  // Why the room is split now ("" when it is not): for ERROR room-split.
  std::string split_detail() const;

 private:
  struct Member {
    std::shared_ptr<Session> session;
    std::string nick;
    std::uint64_t seat = 0;  // its seat (joined with ids), else 0
    std::string seat_hash;   // shared: its seat's token hash in Redis ("" none)
  };
  using Members = std::map<std::string, Member>;  // key: fold_nick(nick)
  using Clock = std::chrono::steady_clock;

  // A client with ids: connected (a member) or held for it after a drop.
  struct Seat {
    std::string token_hash;
    std::string nick;
    bool held = false;
    std::chrono::system_clock::time_point dropped_at{};  // held: when the drop was detected
    Clock::time_point expires{};                         // held: when the seat is gone
    std::uint64_t since = 0;  // the id of its JOIN or BACK: its client's stream starts after it
  };
  enum class Gone { used, expired };  // why a token no longer works

  // A private message, kept for the resume window so a seat that drops gets it on resuming.
  struct Private {
    Event event;             // PRIV from to text, with its id and time
    std::uint64_t from_seat = 0;
    std::uint64_t to_seat = 0;
    Clock::time_point kept_until{};
  };

  // Formats `event` for every mode, appends it to the history, the archive and the transcript.
  // Requires mutex_ held. Returns the new head (the event's sequence number + 1). `from`: the
  // event as it came from the stream (shared), whose id and time it takes. `live` false: the
  // room's past, read at start (share()): not in the transcript nor the counters.
  std::uint64_t append_locked(const Event& event, std::optional<std::size_t> online = std::nullopt,
                              const StreamEvent* from = nullptr, bool live = true);
  std::uint64_t id_of(std::uint64_t seq) const { return id_base_ + seq + 1; }
  // Requires mutex_ held: the seat is gone for good (the archive forgets it too).
  void close_seat_locked(std::uint64_t seat);
  // Requires mutex_ held: a token that no longer works, and why (for the refusal).
  void forget_token_locked(const std::string& hash, Gone why);
  // Requires mutex_ held: lets go of held seats and kept private messages whose time is up.
  void expire_locked(Clock::time_point now);
  // Requires mutex_ held: a member with a seat dropped: hold the seat (or close it).
  void hold_seat_locked(std::uint64_t seat, const std::string& key, LeaveCause cause);
  // Requires mutex_ held: a nickname held for a dropped seat (not expired).
  bool held_locked(const std::string& key, Clock::time_point now);
  // Requires mutex_ held: `member` joins under `key` (a JOIN or BACK was just appended, making
  // the head `head`), and its room stream starts there.
  void admit_locked(const std::shared_ptr<Session>& session, const std::string& key, Member member, std::uint64_t head);
  // Requires mutex_ held: removes a member and tells the others LEAVE with its departure.
  void remove_member_locked(Members::iterator it, const Departure& departure);
  // Requires mutex_ held: queues the recent history for a newcomer (ids: a HISTORY recent
  // block; text mode: text lines between separators).
  void send_recent_locked(Session& session, std::uint64_t head, std::uint64_t below_id);
  Members::iterator find_locked(Session& session);  // Requires mutex_ held.
  // One event as `session`'s mode shows it (no LF); nullopt if not shown in that mode.
  static std::optional<std::string> line_for(const Session& session, const Event& event);
  void wake_writers();  // without mutex_: room events were appended
  // say() and me(): a MSG or ME from `from`.
  void speak(Session& from, Event::Kind kind, std::string_view text);

  // Shared: the reader side of a JOIN (publish with the claim, wait to be admitted).
  JoinResult join_shared(const std::shared_ptr<Session>& session, const std::string& nick);
  RenameResult rename_shared(Session& session, const std::string& nick);
  ResumeResult resume_shared(const std::shared_ptr<Session>& session, std::string_view token, std::uint64_t last_id);
  // Shared, mutex_ held: one stream event into the History (and, for this instance's own JOIN,
  // the joiner's admission).
  void enter_locked(const StreamEvent& e);
  // Shared, split, mutex_ held: `event` for this instance's members now, without an id (it is
  // published too, and kept until the link is back).
  std::uint64_t append_split_locked(const Event& event, std::optional<std::size_t> online = std::nullopt);
  // Shared, mutex_ held: this instance's own JOIN of a member announced again under a new name
  // (Backplane::Claim::announce): a rename here.
  void enter_renamed_locked(const StreamEvent& e);
  // Shared, mutex_ held: a BACK from the stream (a seat resumed here or elsewhere).
  void enter_back_locked(const StreamEvent& e);
  // Shared, mutex_ held: a line for this instance's members alone (a remark about this server's
  // link), not a room event: no id, not archived.
  void tell_members_locked(const std::string& text);
  // Shared, mutex_ held: the stamped lines a newcomer gets (WELCOME, TOKEN, USERS, history).
  void welcome_locked(const std::shared_ptr<Session>& session, const std::string& nick, std::uint64_t head,
                      std::uint64_t join_id, const std::string& token);
  // Requires mutex_ held: what a resuming client missed, as tagged lines: the public events
  // after `last_id` and below `below` (`early`, read from the disk before the lock, then the
  // memory), merged with the private messages `theirs` picks; the newest that fit in half its
  // send queue (partial set when older ones are left out or no longer kept).
  std::vector<std::string> replay_lines_locked(std::uint64_t last_id, std::uint64_t below, const Archive::Slice& early,
                                               bool& partial, const std::function<bool(const Private&)>& theirs);
  // Requires mutex_ held: RESUMED, the new TOKEN, USERS and the HISTORY missed block, stamped
  // with `head` (the BACK's place).
  void welcome_back_locked(Session& session, const std::string& nick, const std::string& away_ms,
                           const std::string& fresh, std::uint64_t head, std::vector<std::string> lines, bool partial);

  const ServerConfig& config_;
  Transcript& transcript_;
  ServerStats& stats_;
  WriterPool& writers_;
  Archive& archive_;
  const std::uint64_t id_base_;  // run * 2^32: set once
  const std::unique_ptr<RoomPassword> password_;        // set once (--password-file), or null
  const std::unique_ptr<RoomPassword> admin_password_;  // set once (--admin-password-file), or null
  Guesses guesses_;
  mutable Bans bans_;  // its own lock (mutable: every lookup lets go of the bans that are over); from the archive at start
  mutable std::mutex mutex_;
  History history_;     // appended under mutex_; read by writers without it
  Members members_;     // guarded by mutex_
  Roster roster_;       // guarded by mutex_: the same names as members_, shareable
  bool closed_ = false; // guarded by mutex_
  std::map<std::uint64_t, Seat> seats_;             // guarded by mutex_: by seat number
  std::map<std::string, std::uint64_t> held_;       // guarded by mutex_: fold_nick -> held seat
  std::map<std::string, std::uint64_t> by_token_;   // guarded by mutex_: token hash -> seat
  // Tokens no longer valid, remembered for a while so that a refusal can say why: the hash of
  // each, and the order to forget them in (oldest first; at most max_gone_tokens).
  std::map<std::string, Gone> gone_tokens_;                         // guarded by mutex_
  std::deque<std::pair<Clock::time_point, std::string>> gone_order_;  // guarded by mutex_
  std::deque<std::pair<Clock::time_point, std::uint64_t>> expiries_;  // guarded by mutex_: held seats, oldest first
  std::deque<Private> privates_;                    // guarded by mutex_: oldest first
  std::uint64_t last_seat_ = 0;                     // guarded by mutex_

  // Shared (--redis):
  Backplane* backplane_ = nullptr;  // set once by share(), before the threads start
  // A reader whose JOIN is on its way through the stream, by fold_nick. `admitted` when enter()
  // has let it in; `abandoned` when its reader stopped waiting (its JOIN, if it comes, is
  // followed by a LEAVE).
  struct Joining {
    std::shared_ptr<Session> session;
    std::string nick;
    bool admitted = false;
    bool abandoned = false;
    Clock::time_point given_up{};  // abandoned: when (forgotten a minute later)
    std::string token;             // a client with ids: its seat's token, sent once admitted
  };
  std::map<std::string, Joining> joining_;  // guarded by mutex_
  // A reader whose RESUME (a BACK with its new token's hash) is on its way through the stream,
  // by that hash: let in, with its replay, where the BACK lands.
  struct Resuming {
    std::shared_ptr<Session> session;
    std::string token;            // the new token, sent with RESUMED
    std::uint64_t last_id = 0;    // what the client had seen
    Archive::Slice early;         // the replay's part read from the disk before the lock
    bool partial = false;
    bool admitted = false;
    bool abandoned = false;
    Clock::time_point given_up{};  // abandoned: when (forgotten a minute later)
  };
  std::map<std::string, Resuming> resuming_;  // guarded by mutex_
  std::condition_variable admitted_;        // with mutex_: a Joining was admitted
  std::string split_since_;                 // guarded by mutex_: why and since when; "" when whole
  std::deque<Event> split_shown_;           // guarded by mutex_: shown during a split, not yet back
  // guarded by mutex_: fold_nick(old) -> new, members renamed while split_shown_ still held
  // what they said under the old name (it comes back from the stream under the new one)
  std::map<std::string, std::string> renamed_;
};

}  // namespace chat
