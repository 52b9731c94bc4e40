#include "bench/checker.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace chat::bench {
namespace {

constexpr std::size_t exact_below = 1024;  // microseconds
constexpr std::size_t per_octave = 64;
constexpr std::size_t max_examples = 12;

std::string message_name(std::size_t sender, std::uint32_t seq) {
  return "message " + std::to_string(seq) + " of sender " + std::to_string(sender);
}

}  // namespace

// ---- LatencyHistogram -------------------------------------------------------------------------

std::size_t LatencyHistogram::bucket_of(std::uint64_t us) {
  if (us < exact_below) return static_cast<std::size_t>(us);
  const auto octave = static_cast<std::size_t>(std::bit_width(us) - 1);  // 10 for 1024..2047
  const auto sub = static_cast<std::size_t>((us >> (octave - 6)) & (per_octave - 1));
  return exact_below + (octave - 10) * per_octave + sub;
}

std::uint64_t LatencyHistogram::upper_bound_of(std::size_t bucket) {
  if (bucket < exact_below) return bucket;
  const std::size_t octave = (bucket - exact_below) / per_octave + 10;
  const std::size_t sub = (bucket - exact_below) % per_octave;
  return ((per_octave + sub + 1) << (octave - 6)) - 1;
}

void LatencyHistogram::add(std::uint64_t us) {
  const auto b = bucket_of(us);
  if (b >= buckets_.size()) buckets_.resize(b + 1, 0);
  ++buckets_[b];
  ++count_;
  min_ = std::min(min_, us);
  max_ = std::max(max_, us);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  if (other.buckets_.size() > buckets_.size()) buckets_.resize(other.buckets_.size(), 0);
  for (std::size_t b = 0; b < other.buckets_.size(); ++b) buckets_[b] += other.buckets_[b];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

double LatencyHistogram::percentile_ms(double p) const {
  if (count_ == 0) return 0;
  auto rank = static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    seen += buckets_[b];
    if (seen >= rank) return static_cast<double>(std::min(upper_bound_of(b), max_)) / 1000.0;
  }
  return max_ms();
}

// ---- DeliveryChecker --------------------------------------------------------------------------

std::uint64_t SentCounts::total() const {
  std::uint64_t total = 0;
  for (const auto& n : counts_) total += n.load(std::memory_order_acquire);
  return total;
}

DeliveryChecker::DeliveryChecker(std::size_t receivers, std::vector<std::size_t> sender_clients, bool echo,
                                 bool global_order, std::shared_ptr<SentCounts> sent, std::vector<char> owned)
    : receivers_(receivers),
      senders_(sender_clients.size()),
      sender_clients_(std::move(sender_clients)),
      echo_(echo),
      global_order_(global_order),
      sent_(sent ? std::move(sent) : std::make_shared<SentCounts>(senders_)),
      owned_(std::move(owned)),
      streams_(receivers * senders_),
      gone_(receivers, 0),
      order_(global_order ? receivers : 0),
      copies_(senders_) {}

void DeliveryChecker::example(const std::string& text) {
  if (examples_.size() < max_examples) examples_.push_back(text);
}

bool DeliveryChecker::delivered(std::size_t receiver, std::size_t sender, std::uint32_t seq) {
  if (receiver >= receivers_ || sender >= senders_ || seq >= sent_->of(sender)) {
    ++corrupt_;
    example("client " + std::to_string(receiver) + " got " + message_name(sender, seq) + ", which was never sent");
    return false;
  }
  if (receiver == sender_clients_[sender] && !echo_) {
    ++corrupt_;
    example("client " + std::to_string(receiver) + " got its own " + message_name(sender, seq) +
            " back from a server that does not echo");
    return false;
  }
  Stream& s = stream(receiver, sender);
  const std::size_t word = seq / 64;
  if (word >= s.seen.size()) s.seen.resize(std::max<std::size_t>(word + 1, s.seen.size() * 2), 0);
  const std::uint64_t bit = std::uint64_t{1} << (seq % 64);
  if (s.seen[word] & bit) {
    ++duplicates_;
    example("client " + std::to_string(receiver) + " got " + message_name(sender, seq) + " twice");
    return false;
  }
  s.seen[word] |= bit;
  ++s.distinct;
  ++delivered_;
  if (seq + 1 < s.highest) {
    ++reordered_;
    example("client " + std::to_string(receiver) + " got " + message_name(sender, seq) + " after message " +
            std::to_string(s.highest - 1));
  }
  s.highest = std::max(s.highest, seq + 1);
  if (track_copies_) {
    auto& copies = copies_[sender];
    if (seq >= copies.size()) copies.resize(std::max<std::size_t>(seq + 1, copies.size() * 2), 0);
    ++copies[seq];
  }
  if (global_order_) order_[receiver].push_back(static_cast<std::uint64_t>(sender) << 32 | seq);
  return true;
}

void DeliveryChecker::reserve(std::size_t messages) {
  for (std::size_t rx = 0; rx < order_.size(); ++rx) {
    if (owns(rx)) order_[rx].reserve(messages);
  }
}

std::uint32_t DeliveryChecker::copies_of(std::size_t sender, std::uint32_t seq) const {
  const auto& copies = copies_[sender];
  return seq < copies.size() ? copies[seq] : 0;
}

void DeliveryChecker::corrupt(std::size_t receiver, const std::string& frame) {
  ++corrupt_;
  example("client " + std::to_string(receiver) + " got a corrupted line: \"" + frame.substr(0, 100) + "\"");
}

DeliveryChecker::Report DeliveryChecker::report() const { return merged_report({this}); }

DeliveryChecker::Report DeliveryChecker::merged_report(const std::vector<const DeliveryChecker*>& checkers) {
  Report r;
  if (checkers.empty()) return r;
  const DeliveryChecker& first = *checkers.front();
  const std::size_t senders = first.senders_;
  std::vector<std::uint64_t> sent(senders);
  for (std::size_t tx = 0; tx < senders; ++tx) sent[tx] = first.sent_->of(tx);
  std::size_t lost_examples = 0;
  // Each receiver's order of arrival, wherever its checker is.
  std::vector<const std::vector<std::uint64_t>*> orders(first.receivers_, nullptr);
  for (const auto* c : checkers) {
    r.duplicates += c->duplicates_;
    r.reordered += c->reordered_;
    r.corrupt += c->corrupt_;
    for (const auto& e : c->examples_) {
      if (r.examples.size() < max_examples) r.examples.push_back(e);
    }
    for (std::size_t rx = 0; rx < c->receivers_; ++rx) {
      if (!c->owns(rx)) continue;
      if (c->global_order_) orders[rx] = &c->order_[rx];
      for (std::size_t tx = 0; tx < senders; ++tx) {
        const bool own = rx == c->sender_clients_[tx];
        if (own && !c->echo_) continue;
        const Stream& s = c->stream(rx, tx);
        r.expected += sent[tx];
        r.delivered += s.distinct;
        if (!own) r.to_others += s.distinct;
        const auto missing = sent[tx] - std::min<std::uint64_t>(s.distinct, sent[tx]);
        r.lost += missing;
        if (c->gone_[rx]) r.lost_to_gone += missing;
        if (missing > 0 && lost_examples < 4 && r.examples.size() < max_examples + 4) {
          ++lost_examples;
          r.examples.push_back("client " + std::to_string(rx) + " missed " + std::to_string(missing) + " of sender " +
                               std::to_string(tx) + "'s " + std::to_string(sent[tx]) + " messages" +
                               (c->gone_[rx] ? " (its connection had ended)" : ""));
        }
      }
    }
  }
  if (!first.global_order_) return r;
  r.order_checked = true;
  // The reference order: the longest stream (a receiver that missed nothing, if any).
  std::size_t ref = 0;
  for (std::size_t rx = 0; rx < orders.size(); ++rx) {
    if (orders[rx] && (!orders[ref] || orders[rx]->size() > orders[ref]->size())) ref = rx;
  }
  if (!orders[ref]) return r;
  // position[sender][seq]: the message's place in the reference order (UINT32_MAX: missed).
  std::vector<std::vector<std::uint32_t>> position(senders);
  for (std::size_t tx = 0; tx < senders; ++tx) position[tx].assign(sent[tx], UINT32_MAX);
  for (std::size_t i = 0; i < orders[ref]->size(); ++i) {
    const auto id = (*orders[ref])[i];
    position[id >> 32][static_cast<std::uint32_t>(id)] = static_cast<std::uint32_t>(i);
  }
  for (std::size_t rx = 0; rx < orders.size(); ++rx) {
    if (!orders[rx]) continue;
    std::uint32_t last = 0;
    bool seen_one = false;
    for (const auto id : *orders[rx]) {
      const auto at = position[id >> 32][static_cast<std::uint32_t>(id)];
      if (at == UINT32_MAX) continue;  // the reference missed it: counted as lost
      if (seen_one && at < last) {
        ++r.order_violations;
        if (r.examples.size() < max_examples + 6) {
          r.examples.push_back("client " + std::to_string(rx) + " got " +
                               message_name(static_cast<std::size_t>(id >> 32), static_cast<std::uint32_t>(id)) +
                               " in another place of the global order than client " + std::to_string(ref));
        }
        break;
      }
      last = at;
      seen_one = true;
    }
  }
  return r;
}

}  // namespace chat::bench
