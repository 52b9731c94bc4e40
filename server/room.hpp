// Room: who is joined, under which nickname, and the one path every room event takes.
//
// Thread safe: every public method may be called from any session's reader thread (and
// close() from the main thread). One mutex guards the member list, and each event is queued
// to every member while it is held: that is what gives all receivers the same global order.
// Queuing never blocks (SendQueue::push), so holding the lock costs one push per member,
// never a socket write.
#pragma once

#include "common/protocol.hpp"

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
class Transcript;

class Room {
 public:
  explicit Room(Transcript& transcript) : transcript_(transcript) {}

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

  // Sends `session` the USERS list, under the lock, so it is in order with JOIN and LEAVE.
  void who(Session& session);
  std::vector<std::string> users() const;  // sorted ignoring case
  std::size_t size() const;

  // Server shutdown: later joins fail and leaves are no longer broadcast.
  void close();

 private:
  struct Member {
    std::shared_ptr<Session> session;
    std::string nick;
  };
  using Members = std::map<std::string, Member>;  // key: fold_nick(nick)

  // Queues `event` to every member and to the transcript. Requires mutex_ held.
  void deliver_locked(const Event& event, std::optional<std::size_t> online = std::nullopt);
  Members::iterator find_locked(Session& session);  // Requires mutex_ held.
  std::vector<std::string> users_locked() const;     // Requires mutex_ held.

  Transcript& transcript_;
  mutable std::mutex mutex_;
  Members members_;     // guarded by mutex_
  bool closed_ = false; // guarded by mutex_
};

}  // namespace chat
