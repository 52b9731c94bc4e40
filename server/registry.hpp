// SessionRegistry: every connected session, joined or not. It owns them.
//
// Thread safe. The listener thread adds, the poller thread takes snapshots and reaps, the
// main thread takes everything at shutdown. Sessions are destroyed outside the lock.
#pragma once

#include <asio/ip/address.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace chat {

class Session;

class SessionRegistry {
 public:
  void add(std::shared_ptr<Session> session);
  std::vector<std::shared_ptr<Session>> snapshot() const;
  // Refreshes `copy` to the current sessions if they changed since `version` (which it
  // updates); true if it did. The poller's sweep keeps its copy while nobody comes or goes.
  bool refresh(std::vector<std::shared_ptr<Session>>& copy, std::uint64_t& version) const;
  std::size_t live() const;  // sessions not yet ended
  // Sessions not yet ended: all of them, and those from `address` (one pass, for the listener).
  struct Live {
    std::size_t all = 0;
    std::size_t from_address = 0;
  };
  Live live(const asio::ip::address& address) const;
  // Drops the sessions whose reader and writer have both returned (so destroying them joins
  // nothing that still runs) and hands them over: the caller lets go of them after it has
  // forgotten them (the poller takes them out of its epoll set first).
  std::vector<std::shared_ptr<Session>> reap();
  std::vector<std::shared_ptr<Session>> take_all();

 private:
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<Session>> sessions_;  // guarded by mutex_
  std::uint64_t version_ = 1;                       // guarded by mutex_: bumped on every change
};

}  // namespace chat
