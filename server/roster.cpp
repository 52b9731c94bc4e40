#include "server/roster.hpp"

#include <functional>

namespace chat {
namespace {

std::uint32_t priority_of(const std::string& key) {
  // A fixed hash: the tree's shape depends only on who is in it, and stays balanced (expected
  // depth O(log N)) for any set of names.
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : key) h = (h ^ c) * 1099511628211ull;
  h ^= h >> 29;
  return static_cast<std::uint32_t>(h * 0xbf58476d1ce4e5b9ull >> 32);
}

}  // namespace

Roster::Ptr Roster::make(const Node& like, Ptr left, Ptr right) {
  const std::size_t size = 1 + (left ? left->size : 0) + (right ? right->size : 0);
  return std::make_shared<const Node>(Node{like.key, like.nick, like.priority, size, std::move(left), std::move(right)});
}

void Roster::split(const Ptr& node, const std::string& key, Ptr& less, Ptr& rest) {
  if (!node) {
    less = rest = nullptr;
    return;
  }
  if (node->key < key) {
    Ptr l, r;
    split(node->right, key, l, r);
    less = make(*node, node->left, l);
    rest = r;
  } else {
    Ptr l, r;
    split(node->left, key, l, r);
    less = l;
    rest = make(*node, r, node->right);
  }
}

Roster::Ptr Roster::merge(const Ptr& a, const Ptr& b) {
  if (!a) return b;
  if (!b) return a;
  if (a->priority > b->priority) return make(*a, a->left, merge(a->right, b));
  return make(*b, merge(a, b->left), b->right);
}

Roster::Ptr Roster::erase(const Ptr& node, const std::string& key) {
  if (!node) return nullptr;
  if (key < node->key) {
    auto left = erase(node->left, key);
    return left == node->left ? node : make(*node, left, node->right);
  }
  if (node->key < key) {
    auto right = erase(node->right, key);
    return right == node->right ? node : make(*node, node->left, right);
  }
  return merge(node->left, node->right);
}

Roster Roster::with(const std::string& key, const std::string& nick) const {
  Ptr less, rest;
  split(erase(root_, key), key, less, rest);
  auto single = std::make_shared<const Node>(Node{key, nick, priority_of(key), 1, nullptr, nullptr});
  return Roster(merge(merge(less, single), rest));
}

Roster Roster::without(const std::string& key) const { return Roster(erase(root_, key)); }

std::vector<std::string> Roster::names() const {
  std::vector<std::string> out;
  out.reserve(size());
  // In-order walk with an explicit stack: the depth is O(log N) but a recursion is not needed.
  std::vector<const Node*> stack;
  const Node* n = root_.get();
  while (n || !stack.empty()) {
    while (n) {
      stack.push_back(n);
      n = n->left.get();
    }
    n = stack.back();
    stack.pop_back();
    out.push_back(n->nick);
    n = n->right.get();
  }
  return out;
}

const std::string* Roster::find(const std::string& key) const {
  const Node* n = root_.get();
  while (n != nullptr) {
    if (key == n->key) return &n->nick;
    n = key < n->key ? n->left.get() : n->right.get();
  }
  return nullptr;
}

}  // namespace chat
