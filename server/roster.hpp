// Roster: who is in the room, as an immutable sorted set of nicknames (by their lower-case
// form, the order USERS lists them in). Adding or removing a name makes a new Roster that
// shares all but O(log N) nodes with the old one (a persistent treap), so the room can hand
// a newcomer "the members as of your JOIN" in O(log N) under its lock, and the newcomer's
// writer turns that snapshot into the USERS line, O(N), outside every lock.
//
// Threads: a Roster is immutable; copies may be used from any thread at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace chat {

class Roster {
 public:
  Roster() = default;

  std::size_t size() const { return root_ ? root_->size : 0; }
  // A roster with `nick` under `key` (its fold_nick form) added; replaces an entry with the same key.
  Roster with(const std::string& key, const std::string& nick) const;
  // A roster without `key`.
  Roster without(const std::string& key) const;
  // The nicknames in key order.
  std::vector<std::string> names() const;
  // The nickname under `key`, or null. O(log N).
  const std::string* find(const std::string& key) const;

 private:
  struct Node;
  using Ptr = std::shared_ptr<const Node>;
  struct Node {
    std::string key;
    std::string nick;
    std::uint32_t priority;
    std::size_t size;
    Ptr left, right;
  };
  explicit Roster(Ptr root) : root_(std::move(root)) {}
  static Ptr make(const Node& like, Ptr left, Ptr right);
  static void split(const Ptr& node, const std::string& key, Ptr& less, Ptr& rest);  // rest: >= key
  static Ptr merge(const Ptr& a, const Ptr& b);
  static Ptr erase(const Ptr& node, const std::string& key);

  Ptr root_;
};

}  // namespace chat
