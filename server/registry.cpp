#include "server/registry.hpp"

#include "server/session.hpp"

#include <algorithm>

namespace chat {

void SessionRegistry::add(std::shared_ptr<Session> session) {
  std::lock_guard lock(mutex_);
  sessions_.push_back(std::move(session));
  ++version_;
}

bool SessionRegistry::refresh(std::vector<std::shared_ptr<Session>>& copy, std::uint64_t& version) const {
  std::vector<std::shared_ptr<Session>> old;  // the last references to reaped sessions, maybe
  {
    std::lock_guard lock(mutex_);
    if (version == version_) return false;
    old.swap(copy);
    copy = sessions_;
    version = version_;
  }
  return true;  // `old` is destroyed here, outside the lock
}

std::vector<std::shared_ptr<Session>> SessionRegistry::snapshot() const {
  std::lock_guard lock(mutex_);
  return sessions_;
}

std::size_t SessionRegistry::live() const {
  std::lock_guard lock(mutex_);
  return static_cast<std::size_t>(
      std::count_if(sessions_.begin(), sessions_.end(), [](const auto& s) { return !s->ended(); }));
}

SessionRegistry::Live SessionRegistry::live(const asio::ip::address& address) const {
  Live out;
  std::lock_guard lock(mutex_);
  for (const auto& s : sessions_) {
    if (s->ended()) continue;
    ++out.all;
    if (s->address() == address) ++out.from_address;
  }
  return out;
}

std::vector<std::shared_ptr<Session>> SessionRegistry::reap() {
  std::vector<std::shared_ptr<Session>> finished;
  {
    std::lock_guard lock(mutex_);
    auto keep = std::partition(sessions_.begin(), sessions_.end(), [](const auto& s) { return !s->finished(); });
    finished.assign(std::make_move_iterator(keep), std::make_move_iterator(sessions_.end()));
    sessions_.erase(keep, sessions_.end());
    if (!finished.empty()) ++version_;
  }
  return finished;  // the caller destroys them, outside the lock
}

std::vector<std::shared_ptr<Session>> SessionRegistry::take_all() {
  std::lock_guard lock(mutex_);
  ++version_;
  return std::exchange(sessions_, {});
}

}  // namespace chat
