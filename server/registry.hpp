// SessionRegistry: every connected session, joined or not. It owns them.
//
// Thread safe. The listener thread adds, the poller thread takes snapshots and reaps, the
// main thread takes everything at shutdown. Sessions are destroyed outside the lock.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

namespace chat {

class Session;

class SessionRegistry {
 public:
  void add(std::shared_ptr<Session> session);
  std::vector<std::shared_ptr<Session>> snapshot() const;
  std::size_t live() const;  // sessions not yet ended
  // Drops the sessions whose reader and writer have both returned (so destroying them joins
  // nothing that still runs). Returns how many.
  std::size_t reap();
  std::vector<std::shared_ptr<Session>> take_all();

 private:
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<Session>> sessions_;  // guarded by mutex_
};

}  // namespace chat
