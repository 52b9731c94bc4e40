// What every side-by-side mode (fanout, join, scale) does with a Swarm: join everybody and
// wait until the join chatter is over, send benchmark messages (wire.hpp's payload), and feed
// every message that arrives to a DeliveryChecker and a latency histogram.
//
// Latency is the time from a message's send time (in its payload) to the moment its receiver's
// bytes were read, for deliveries to clients other than the sender only, so servers that echo
// and servers that do not compare fairly.
//
// Threads: not thread safe; chatbench's main thread, with the Swarm it drives.
#pragma once

#include "bench/checker.hpp"
#include "bench/swarm.hpp"

#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

namespace chat::bench {

// How the room filled up.
struct JoinOutcome {
  std::size_t clients = 0;
  std::size_t joined = 0;           // in the room at the end
  std::size_t refused = 0;          // ended before joining
  std::size_t dropped = 0;          // ended after joining
  double last_join_ms = 0;          // from the first connect to the last client in the room
  double chatter_end_ms = 0;        // ... to the last announcement of a newcomer anyone read
  std::uint64_t chatter_seen = 0;   // announcements of newcomers read, all clients together
  std::uint64_t chatter_expected = 0;
  bool timed_out = false;
  std::map<std::string, std::size_t> reasons;  // why clients ended, with how many
  bool complete() const { return !timed_out && refused == 0 && dropped == 0 && chatter_seen >= chatter_expected; }
};

// Runs `swarm` until every client is in the room (or ended) and every member has read the
// announcement of every member who joined after it (where the dialect announces joins), or
// until `deadline`. Progress lines go to `progress` every few seconds.
JoinOutcome join_all(Swarm& swarm, Clock::time_point deadline, std::ostream& progress);
// The same for the swarms of one run (one per generator thread), pumped in turn by the caller's
// thread: a member expects the arrivals announced across all of them.
JoinOutcome join_all(const std::vector<Swarm*>& swarms, Clock::time_point deadline, std::ostream& progress);
// "421 x connection closed by the server; 3 x BYE server-full": the most common reasons first.
std::string describe_reasons(const std::map<std::string, std::size_t>& reasons, std::size_t max = 4);

class Traffic {
 public:
  // Installs itself as `swarm`'s frame handler; messages carry `size` bytes of payload.
  Traffic(Swarm& swarm, std::size_t size);

  // Several generator threads: the run's size, and the sent counts all their checkers share.
  struct Shared {
    std::size_t receivers = 0;
    std::shared_ptr<SentCounts> sent;
    std::uint32_t tag = 0;  // the run's tag, the same in every thread's messages
  };
  // Starts a new batch: the clients that will send (by their number in the run, Swarm::id),
  // and whether to check the global order. Every client of the swarm is a receiver; with
  // `shared`, the run's other clients belong to the other threads' swarms.
  void begin(std::vector<std::size_t> sender_clients, bool global_order, const Shared* shared = nullptr);
  // True if sender k's client is in this swarm.
  bool sends_here(std::size_t sender) const { return local_of_sender_[sender] >= 0; }
  DeliveryChecker& checker() { return *checker_; }
  const LatencyHistogram& latency() const { return latency_; }
  // The same split by where the sender was: a client of this swarm, or of another thread's
  // (with chatbench fanout --instances, a swarm is one chatserver's clients: within one
  // instance, or across instances through Redis).
  const LatencyHistogram& latency_same_swarm() const { return same_swarm_latency_; }
  const LatencyHistogram& latency_other_swarm() const { return other_swarm_latency_; }

  // The deliveries to others by the kind of client that received them (a room with web clients,
  // SwarmOptions::web_share): TCP clients (index 0) and web clients (index 1), since begin().
  struct ByKind {
    LatencyHistogram latency;
    std::uint64_t to_others = 0;
    Clock::time_point last_delivery{};
  };
  const ByKind& by_kind(bool web) const { return kinds_[web ? 1 : 0]; }

  // Encodes sender k's next message into its client's output buffer; call Swarm::flush.
  void queue_message(std::size_t sender);
  void send_message(std::size_t sender);  // queue_message + flush
  // Sender k's client: output queued and not yet written; write what its socket takes.
  std::size_t pending(std::size_t sender) const {
    return swarm_.pending(static_cast<std::size_t>(local_of_sender_[sender]));
  }
  void flush(std::size_t sender) { swarm_.flush(static_cast<std::size_t>(local_of_sender_[sender])); }

  std::uint64_t stale() const { return stale_; }               // from an earlier run (ignored)
  // ERROR lines the server sent to joined clients (a benchmark client sends nothing wrong).
  std::uint64_t errors() const { return errors_; }
  const std::vector<std::string>& error_lines() const { return error_lines_; }
  // "the server refused 3 lines: ..." or empty.
  std::string problems() const;
  std::uint64_t to_others() const { return to_others_; }       // deliveries counted for latency
  Clock::time_point first_send() const { return first_send_; }
  Clock::time_point last_delivery() const { return last_delivery_; }

  // Asks client `i` for chatserver's STATS and waits for the answer (until `deadline`); empty
  // if the dialect has none or none came.
  std::string fetch_stats(std::size_t i, Clock::time_point deadline);

 private:
  void on_frame(std::size_t client, const Seen& seen, Clock::time_point now);
  std::uint64_t now_us(Clock::time_point t) const {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(t - base_).count());
  }

  Swarm& swarm_;
  std::size_t size_;
  std::uint32_t tag_;
  Clock::time_point base_;
  std::unique_ptr<DeliveryChecker> checker_;
  LatencyHistogram latency_;
  LatencyHistogram same_swarm_latency_;
  LatencyHistogram other_swarm_latency_;
  ByKind kinds_[2];
  std::vector<long> local_of_sender_;        // sender -> its client's index in this swarm (-1: elsewhere)
  std::vector<std::string> sender_nicks_;   // sender -> its client's nickname
  std::uint64_t stale_ = 0;
  std::uint64_t errors_ = 0;
  std::vector<std::string> error_lines_;  // the first few
  std::uint64_t to_others_ = 0;
  Clock::time_point first_send_{};
  Clock::time_point last_delivery_{};
  std::string stats_;
  bool want_stats_ = false;
  std::string scratch_;
  std::string line_;  // a web sender's line, before the Swarm frames it
};

// "k=v k=v" of a STATS line into a map (the "STATS" word skipped).
std::map<std::string, std::string> parse_stats(const std::string& line);

}  // namespace chat::bench
