// The delivery checker of chatbench's side-by-side modes, and its latency histogram.
//
// DeliveryChecker is told what every sender sent and what every receiver got, and says
// afterwards, never hiding anything: which messages were lost, duplicated, reordered (within
// one sender's stream) or corrupted, and, where the server promises one (chatserver), whether
// every receiver saw the same global order.
//
// Memory: one bit per (receiver, sender, message) for duplicates, and with the global-order
// check one 8-byte id per delivery; chatbench bounds both through its option limits.
//
// Threads: a DeliveryChecker is used by one generator thread (its receivers' and senders');
// with several threads, each has its own checker, they share the SentCounts, and
// merged_report() runs once they have all stopped.
#pragma once

#include <cstddef>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace chat::bench {

// Latencies in microseconds: exact below 1024 us, then 64 buckets per power of two (about 1.1%
// wide), so any number of samples costs a few kilobytes and a percentile is off by at most one
// bucket's width. min and max are exact.
class LatencyHistogram {
 public:
  void add(std::uint64_t us);
  void merge(const LatencyHistogram& other);
  std::uint64_t count() const { return count_; }
  // The p-th percentile (0..100) by nearest rank, in milliseconds: the upper bound of the bucket
  // that holds it (never above max). 0 without samples.
  double percentile_ms(double p) const;
  double max_ms() const { return static_cast<double>(max_) / 1000.0; }
  double min_ms() const { return count_ == 0 ? 0 : static_cast<double>(min_) / 1000.0; }

 private:
  static std::size_t bucket_of(std::uint64_t us);
  static std::uint64_t upper_bound_of(std::size_t bucket);
  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
};

// What the senders have sent so far: one count per sender, shared by the checkers of several
// generator threads (a sender's thread counts, every receiver's thread reads). Thread safe.
class SentCounts {
 public:
  explicit SentCounts(std::size_t senders) : counts_(senders) {}
  void add(std::size_t sender) { counts_[sender].fetch_add(1, std::memory_order_release); }
  std::uint64_t of(std::size_t sender) const { return counts_[sender].load(std::memory_order_acquire); }
  std::uint64_t total() const;
  std::size_t senders() const { return counts_.size(); }

 private:
  std::vector<std::atomic<std::uint64_t>> counts_;
};

class DeliveryChecker {
 public:
  // `receivers` clients (0 .. receivers-1); sender k is client sender_clients[k]. `echo`: a
  // sender receives its own messages too (and is checked for them). `global_order`: record every
  // receiver's order of arrival and compare them. `sent`: counts shared with other checkers (one
  // per generator thread; null: this checker's own). `owned`: the receivers this checker is told
  // about (empty: all); the others are another thread's business.
  DeliveryChecker(std::size_t receivers, std::vector<std::size_t> sender_clients, bool echo, bool global_order,
                  std::shared_ptr<SentCounts> sent = nullptr, std::vector<char> owned = {});
  std::size_t senders() const { return senders_; }
  std::size_t sender_client(std::size_t sender) const { return sender_clients_[sender]; }

  // `sender` sent its next message (seq 0, 1, 2, ...).
  void sent(std::size_t sender) { sent_->add(sender); }
  std::uint64_t sent_by(std::size_t sender) const { return sent_->of(sender); }
  std::uint64_t sent_total() const { return sent_->total(); }

  // `receiver` got message `seq` of `sender`. Returns true if it is a first delivery.
  bool delivered(std::size_t receiver, std::size_t sender, std::uint32_t seq);
  // `receiver` got a frame in a message's place that is not one of ours, intact.
  void corrupt(std::size_t receiver, const std::string& frame);
  // A receiver whose connection ended: its missing messages are still counted as lost, and
  // named as such.
  void receiver_gone(std::size_t receiver) { gone_[receiver] = 1; }

  struct Report {
    std::uint64_t expected = 0;      // deliveries that should have happened (sent x receivers)
    std::uint64_t delivered = 0;     // distinct deliveries, own echoes included
    std::uint64_t to_others = 0;     // distinct deliveries to a client other than the sender
    std::uint64_t lost = 0;
    std::uint64_t lost_to_gone = 0;  // of those, to receivers whose connection had ended
    std::uint64_t duplicates = 0;
    std::uint64_t reordered = 0;     // arrived after a later message of the same sender
    std::uint64_t corrupt = 0;
    std::uint64_t order_violations = 0;  // receivers whose order differs from the reference one's
    bool order_checked = false;
    std::vector<std::string> examples;   // a few of each problem, for people
    bool ok() const { return lost == 0 && duplicates == 0 && reordered == 0 && corrupt == 0 && order_violations == 0; }
  };
  // Compares what was sent with what arrived at the receivers this checker owns. May be called
  // more than once. Only while no thread feeds the checker.
  Report report() const;
  // The same over several checkers that split the receivers between them (one per generator
  // thread), the global order compared across all of them.
  static Report merged_report(const std::vector<const DeliveryChecker*>& checkers);

  // The deliveries recorded so far, own echoes included.
  std::uint64_t deliveries() const { return delivered_; }
  // Counts the distinct deliveries of every message from now on (for --window; one checker only).
  void track_copies() { track_copies_ = true; }
  std::uint32_t copies_of(std::size_t sender, std::uint32_t seq) const;
  // Makes room for `messages` arrivals per receiver in the global-order record, so that it is
  // not copied while it grows during a run.
  void reserve(std::size_t messages);

 private:
  struct Stream {                 // one receiver's view of one sender
    std::vector<std::uint64_t> seen;  // bit per seq
    std::uint32_t highest = 0;        // highest seq + 1 seen so far
    std::uint64_t distinct = 0;
  };
  Stream& stream(std::size_t receiver, std::size_t sender) { return streams_[receiver * senders_ + sender]; }
  const Stream& stream(std::size_t receiver, std::size_t sender) const {
    return streams_[receiver * senders_ + sender];
  }
  void example(const std::string& text);
  bool owns(std::size_t receiver) const { return owned_.empty() || owned_[receiver]; }

  std::size_t receivers_;
  std::size_t senders_;
  std::vector<std::size_t> sender_clients_;
  bool echo_;
  bool global_order_;
  std::shared_ptr<SentCounts> sent_;
  std::vector<char> owned_;
  std::vector<Stream> streams_;
  std::vector<char> gone_;
  std::vector<std::vector<std::uint64_t>> order_;   // per receiver: (sender << 32 | seq) in arrival order
  std::vector<std::vector<std::uint32_t>> copies_;  // per sender, per seq: distinct deliveries
  bool track_copies_ = false;
  std::uint64_t delivered_ = 0;
  std::uint64_t duplicates_ = 0;
  std::uint64_t reordered_ = 0;
  std::uint64_t corrupt_ = 0;
  std::vector<std::string> examples_;
};

}  // namespace chat::bench
