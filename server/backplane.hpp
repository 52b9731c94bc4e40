// Backplane: one room shared by several chatservers through one Redis (--redis, --room;
// docs/scale-out.md). The room's events go through a Redis Stream, so every instance sees them
// in ONE order with ONE id each; nicknames are claimed atomically in Redis; each instance keeps
// a heartbeat key, and when one stops, exactly one survivor turns each of its members into a
// LEAVE <nick> instance-lost in the stream.
//
//   any thread        publish(): an event for the stream goes into a bounded queue (and the
//                     backplane thread is woken through an eventfd); a JOIN or a NICK carries a
//                     claim, and its caller may wait for the answer (ok / taken / unavailable)
//   backplane thread  ("backplane") owns both Redis connections:
//                       "cmd"  the event script (claim + INCR + XADD in one atomic step),
//                              the heartbeat and the reaper, pipelined, replies in order;
//                       "read" always one XREAD BLOCK in flight on the room's stream;
//                     and hands what it reads, in stream order, to the events callback.
//                     When Redis cannot be reached it says so once (link callback), keeps
//                     what is published (up to buffer_max events), reconnects with a backoff,
//                     then publishes what it kept, in order, and says the link is whole.
//
// Lua scripts run atomically in Redis, which is what makes the guarantees hold however many
// instances there are: the id an event gets and its place in the stream are taken together; a
// nickname is claimed and its JOIN appended together (or neither); and a dead instance is
// removed from the instance set and its members' LEAVEs appended together, by whichever
// survivor's reaper runs first (the others find nothing left to reap).
//
// Every event carries its origin (an instance id) and that instance's serial number: after a
// broken connection the backplane sends again what was in flight, and the event script returns
// the id the first attempt got instead of appending it twice (it keeps origin:serial -> id for
// ten minutes).
//
// Threads: publish(), publish_and_wait(), stats() from any thread; start()/stop() from the
// owner; the callbacks run on the backplane thread (they must not call publish_and_wait()).
#pragma once

#include "common/protocol.hpp"
#include "common/thread.hpp"
#include "common/units.hpp"
#include "server/redis.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace chat {

struct BackplaneOptions {
  RedisUrl url;
  std::string room = "main";          // --room: the keys are chat:{room}:...
  std::string instance;               // this instance's id; "": made up (host, pid, random)
  std::string label;                  // how others name it in an instance-lost LEAVE (host:port)
  Millis instance_timeout{3000};      // a silent instance is lost after at most this long
  Millis connect_timeout{2000};       // one connection attempt, and one command's reply
  std::size_t stream_max = 100'000;   // XADD MAXLEN ~ (the stream is the shared recent history)
  std::size_t buffer_max = 10'000;    // events kept while Redis is unreachable (and in flight)
  std::uint64_t id_floor = 0;         // ids handed out stay above this (the local archive's last)
  Millis resume_window{0};            // a lost instance's members' seats are held this long (reaper)
  std::size_t preload = 0;            // the stream's last events read at start (start_events())
};

// One room event as it came out of the stream.
struct StreamEvent {
  std::uint64_t id = 0;       // the room's id for it: contiguous, the same on every instance
  std::int64_t time_ms = 0;   // when its instance published it (Unix ms)
  std::string origin;         // the instance it came from
  std::uint64_t serial = 0;   // that instance's serial number for it
  Event event;                // join, leave, msg, me, priv, nick, back or comment
};

class Backplane {
 public:
  // What a publish with a claim asks Redis to do with the nickname, atomically with the event.
  enum class Claim {
    none,     // MSG, ME, PRIV, ...
    take,     // JOIN, BACK: event.nick becomes this instance's (refused if another has it)
    rename,   // NICK: event.nick is released and event.arg taken (refused if taken)
    release,  // LEAVE: event.nick is released (if it is this instance's); with `hold` > 0 and a
              // seat, the seat is held that long and the nickname kept for it
    resume,   // BACK: `seat` is the old token's hash, event.code the new one's; Redis fills in
              // the nickname and the time away (refused: unknown / expired)
    announce, // JOIN of a member Redis forgot (this instance was declared lost, or Redis
              // restarted empty): like take, but if another took the nickname meanwhile the JOIN
              // comes back as nick_2 (...) with arg = the old name, and this instance's events
              // under the old name are published under the new one; if its seat was resumed
              // elsewhere meanwhile, refused (the member here is stale: the BACK replaces it)
    register_again,  // (the backplane's own, after the announce JOINs: the instance is back in
                     // the set, and its other events are accepted again)
  };
  // taken: another has the nickname; held: it is kept for a dropped seat; unknown / expired: a
  // resume's token opens no seat (unknown or already used) / its seat's time ran out.
  enum class Outcome { published, taken, held, unknown, expired, unavailable, stopped };
  struct Result {
    Outcome outcome = Outcome::stopped;
    std::uint64_t id = 0;  // published: the event's id
    // unavailable: the event may be in the stream all the same (it was sent and no answer came);
    // false when it never left this instance.
    bool maybe_sent = false;
  };

  struct Callbacks {
    // Events in stream order (own ones included), on the backplane thread.
    std::function<void(std::vector<StreamEvent>)> events;
    // The link to Redis changed: false with why it broke (the room is split), true when whole
    // again (with what could not be kept, if anything: "12 lines said during the split were
    // not kept (more than 10000)").
    std::function<void(bool whole, std::string detail)> link;
    // Redis reaped this instance (a heartbeat gap longer than instance_timeout, or Redis lost
    // its data): its members were announced as lost. The Room announces them again.
    std::function<void()> forgotten;
  };

  struct Stats {
    std::uint64_t published = 0;   // events appended to the stream by this instance
    std::uint64_t received = 0;    // events read from the stream
    std::uint64_t lost = 0;        // events that could not be kept (buffer full)
    std::uint64_t gaps = 0;        // ids never seen (the stream was trimmed past us)
    std::uint64_t reaped = 0;      // instances this one's reaper turned into LEAVEs
    std::uint64_t reconnects = 0;
    std::size_t queued = 0;        // waiting to be published (in flight included)
    bool linked = false;
  };

  // Connects once (throws RedisError with one clear line if Redis cannot be reached or used at
  // start-up: chatserver exits 2), loads the scripts and reads where the stream ends.
  Backplane(BackplaneOptions options, Callbacks callbacks);
  ~Backplane();  // stop()
  Backplane(const Backplane&) = delete;
  Backplane& operator=(const Backplane&) = delete;

  void start();
  // Deregisters (its members' nicknames are released; the Room has published their LEAVEs
  // before) and joins the thread. Idempotent.
  void stop();
  // Test hook: the thread stops as if the process had been killed: no deregistration, no
  // last writes; the heartbeat key expires on its own.
  void crash();

  // Any thread. Queues `event` for the stream; false if the queue is full (the event is
  // counted as lost). A claim's answer comes through publish_and_wait().
  // `seat`: take: the seat's token hash ("" none; a seat held for this same hash is taken
  // back). `hold_ms`: release: how long its seat is held. `first`: ahead of what is queued
  // (the members announced again when Redis forgot this instance go before what they said).
  bool publish(const Event& event, Claim claim = Claim::none, std::string seat = {}, std::int64_t hold_ms = 0,
               bool first = false);
  // Any thread but the backplane's: publishes and waits (at most `timeout`) for Redis's answer.
  // unavailable: Redis cannot be reached now, or did not answer in time. `seat`: take: the new
  // seat's token hash; resume: the old one's.
  Result publish_and_wait(const Event& event, Claim claim, Millis timeout, std::string seat = {});

  const std::string& instance() const { return options_.instance; }
  // Events kept while Redis cannot be reached (BackplaneOptions::buffer_max).
  std::size_t buffer_max() const { return options_.buffer_max; }
  // The id of the last event in the stream when this instance started (0: an empty room).
  std::uint64_t start_id() const { return start_id_; }
  // Who was in the room (every instance's members) at that same point of the stream: read in
  // one step with it, so the events after start_id() update exactly this list.
  const std::vector<std::string>& start_roster() const { return start_roster_; }
  // The stream's last events up to start_id() (at most BackplaneOptions::preload, oldest first):
  // the room's recent past, for the history and the replays of an instance that was not there.
  // The owner, once, before start().
  std::vector<StreamEvent> take_start_events() { return std::move(start_events_); }
  Stats stats() const;

 private:
  struct Outgoing {
    std::uint64_t serial = 0;
    std::int64_t time_ms = 0;
    Event event;
    Claim claim = Claim::none;
    std::shared_ptr<std::promise<Result>> reply;  // null: nobody waits
    std::string seat;          // take / resume: a token hash
    std::int64_t hold_ms = 0;  // release
    bool sent = false;         // it went out once (it may be in the stream: its serial stays)
  };
  enum class Pending { event, heartbeat, reap, other };

  void run();
  bool connect();                          // backplane thread: both connections, scripts, register
  void disconnect(std::string why);  // (by value: `why` may be a dying connection's error) // backplane thread: the room is split from now
  void send_events();                      // backplane thread: queued events onto "cmd"
  void heartbeat();
  void forgotten();  // backplane thread: Redis forgot this instance: register again, announce
  void reap();
  void read_reply(const RedisValue& reply);  // an XREAD answer
  void cmd_reply(Pending what, const RedisValue& reply);
  void take_cmd_replies();  // the replies that have arrived on "cmd", each to cmd_reply()
  void settle_reap();       // before events read now reach the room: a reap in flight's answer
  void issue_xread();
  std::string link_error() const;  // the broken connection's URL and error
  std::vector<std::string> event_command(const Outgoing& out) const;
  std::string key(const std::string& name) const;

  const BackplaneOptions options_;
  const Callbacks callbacks_;
  std::string event_sha_;   // set in the constructor, then the backplane thread's
  std::string reap_sha_;
  std::string beat_sha_;
  std::uint64_t start_id_ = 0;  // set in the constructor
  std::vector<std::string> start_roster_;  // set in the constructor
  std::vector<StreamEvent> start_events_;  // set in the constructor, taken by the owner

  // The backplane thread's own (and the constructor's before start()):
  std::unique_ptr<RedisConnection> cmd_;
  std::unique_ptr<RedisConnection> read_;
  // What each reply on "cmd" answers, in order, and when it was sent (a Redis that stops
  // answering with the socket open is noticed after connect_timeout).
  std::deque<std::pair<Pending, std::chrono::steady_clock::time_point>> cmd_pending_;
  std::chrono::steady_clock::time_point xread_sent_{};  // the XREAD in flight on "read"
  std::deque<Outgoing> in_flight_;          // events sent on "cmd", not yet answered
  // Redis forgot this instance (a heartbeat said so) while events were in flight: nothing more
  // is sent until they are answered; those refused (FORGOTTEN) wait in refused_ and then go
  // behind the announce JOINs.
  bool holding_ = false;
  std::deque<Outgoing> refused_;
  bool rejoining_ = false;  // forgotten() queued the register, which is not answered yet
  std::string last_stream_id_ = "0-0";      // XREAD's position
  std::uint64_t last_id_ = 0;               // the highest room id seen
  bool registered_once_ = false;
  std::chrono::steady_clock::time_point next_beat_{};
  std::chrono::steady_clock::time_point next_reap_{};
  std::chrono::steady_clock::time_point next_connect_{};
  Millis backoff_{100};
  std::string split_since_;                 // why the link broke; "" while linked

  mutable std::mutex mutex_;
  std::deque<Outgoing> queue_;              // guarded by mutex_: waiting for the thread
  std::uint64_t next_serial_ = 1;           // guarded by mutex_
  std::size_t in_flight_count_ = 0;         // guarded by mutex_: in_flight_.size(), for publish()
  Stats stats_;                             // guarded by mutex_
  std::uint64_t lost_since_split_ = 0;      // guarded by mutex_
  bool split_ = false;                      // guarded by mutex_: the link broke and is not back yet
  bool stopping_ = false;                   // guarded by mutex_
  bool crash_ = false;                      // guarded by mutex_
  int wake_fd_ = -1;                        // eventfd: publish() and stop() wake the thread
  NamedThread thread_;
};

}  // namespace chat
