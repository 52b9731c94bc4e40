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
#pragma once

#include "common/protocol.hpp"
#include "server/config.hpp"
#include "server/history.hpp"
#include "server/roster.hpp"

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chat {

class Session;
class ServerStats;
class Transcript;
class WriterPool;

class Room {
 public:
  Room(const ServerConfig& config, Transcript& transcript, ServerStats& stats, WriterPool& writers);

  enum class JoinResult { joined, nick_in_use, closed };
  // `session`'s reader thread. On success the joiner gets WELCOME and USERS, the others JOIN.
  JoinResult join(const std::shared_ptr<Session>& session, const std::string& nick);

  // `session`'s reader thread, on its way out: if it was a member, removes it and tells the
  // others LEAVE with the session's departure. Silent once the room is closed.
  void leave(Session& session);

  void say(Session& from, std::string_view text);
  void me(Session& from, std::string_view text);
  // False if nobody has that nickname. Only sender and recipient get the PRIV line.
  bool priv(Session& from, std::string_view to, std::string_view text);

  enum class RenameResult { renamed, unchanged, nick_in_use };
  RenameResult rename(Session& session, const std::string& nick);

  // Sends `session` the USERS list, in order with JOIN and LEAVE.
  void who(Session& session);
  std::vector<std::string> users() const;  // sorted ignoring case
  std::size_t size() const;

  // The STATS line (docs/protocol.md): the server's counters plus the room's own figures.
  std::string stats_line() const;

  // Server shutdown: later joins fail and leaves are no longer broadcast.
  void close();

  // The room's events in order; the writers read it without the room's lock.
  const History& history() const { return history_; }

 private:
  struct Member {
    std::shared_ptr<Session> session;
    std::string nick;
  };
  using Members = std::map<std::string, Member>;  // key: fold_nick(nick)

  // Formats `event` for both modes, appends it to the history and the transcript. Requires
  // mutex_ held. Returns the new head (the event's sequence number + 1).
  std::uint64_t append_locked(const Event& event, std::optional<std::size_t> online = std::nullopt);
  Members::iterator find_locked(Session& session);  // Requires mutex_ held.
  // One event as `session`'s mode shows it (no LF); nullopt if not shown in that mode.
  static std::optional<std::string> line_for(const Session& session, const Event& event);
  void wake_writers();  // without mutex_: room events were appended

  const ServerConfig& config_;
  Transcript& transcript_;
  ServerStats& stats_;
  WriterPool& writers_;
  mutable std::mutex mutex_;
  History history_;     // appended under mutex_; read by writers without it
  Members members_;     // guarded by mutex_
  Roster roster_;       // guarded by mutex_: the same names as members_, shareable
  bool closed_ = false; // guarded by mutex_
};

}  // namespace chat
