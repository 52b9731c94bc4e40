// Writer: one of the --writers threads (default 2) that send every client its bytes. It
// replaces PoshChat's send-per-connection: each session belongs to one writer, chosen when the
// listener accepts it, and a writer serves all of its sessions from one loop.
//
// The loop: sleep in epoll_wait on an eventfd (work arrived) and the sockets that were full;
// then, for each session with something to send, Outbox::write_some(): one non-blocking
// sendmsg(2) that gathers every room event and own line the client has not had yet, however
// many arrived since the last turn. A socket that takes nothing more is parked (EPOLLOUT, one
// shot) and never waited on, so one slow or stalled client delays nobody. A client too far
// behind (over --send-queue) is ended too-slow here.
//
// Who wakes a writer: the room after appending events (room_changed: every writer, because
// every writer has members), a session that got a line of its own or ended (wake: its writer
// only). A writer that is awake and busy is not woken again: the `sleeping_` flag is checked
// first, so a burst of events costs a writer one wake-up, not one per event.
//
// Threads: WriterPool is created, started and stopped by the main thread; adopt() is called by
// the listener; wake() and room_changed() by any thread. Writer::run is the writer thread.
#pragma once

#include "common/net.hpp"
#include "server/config.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace chat {

class History;
class Session;
class ServerStats;

// A writer's bookkeeping for one of its sessions. Each Session holds one, but only its writer
// can read or change it (`marked` is set by whoever wakes the writer, through Writer::wake).
class WriterSlot {
  friend class Writer;
  bool parked = false;    // waiting for EPOLLOUT
  bool in_epoll = false;  // registered with the writer's epoll set
  std::atomic<bool> marked{false};  // in the writer's list of sessions that asked for attention
  std::uint64_t traced_backlog = 0;  // --trace: the backlog last reported while parked
};

class Writer {
 public:
  Writer(int index, const ServerConfig& config, const History& history, ServerStats& stats);
  ~Writer();  // stop()
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void start();  // main thread
  // Main thread, after the sessions have been ended: joins the thread and lets go of every
  // session it still holds. Idempotent.
  void stop();

  // Listener thread: from now on this writer sends `session` its bytes.
  void adopt(std::shared_ptr<Session> session);
  // Any thread: `session` (one of this writer's) has something new: an own line, or it ended.
  void wake(Session& session);
  // Any thread: the room's history has new entries.
  void room_changed();
  std::size_t load() const { return load_.load(); }  // sessions held

 private:
  void run(std::stop_token stop);
  // Writes what `session` is due, as far as its socket takes it. True if it has more than the
  // budget allowed this turn.
  bool service(const std::shared_ptr<Session>& session);
  // Ends `session` too-slow if it is more than --send-queue behind (queued and in the kernel).
  void check_backlog(Session& session);
  void park(Session& session);
  void release(const std::shared_ptr<Session>& session);
  void signal();  // wakes the thread if it sleeps

  const int index_;
  const ServerConfig& config_;
  const History& history_;
  ServerStats& stats_;
  int epoll_fd_ = -1;
  Wakeup wakeup_;                      // in the epoll set: "look at your inbox"
  std::atomic<bool> sleeping_{false};  // the thread is (about to be) in epoll_wait
  std::atomic<std::size_t> load_{0};

  std::mutex mutex_;
  std::vector<std::shared_ptr<Session>> adopted_;  // guarded by mutex_: new, not yet in owned_
  std::vector<std::shared_ptr<Session>> marked_;   // guarded by mutex_: sessions that called wake()

  // Writer thread only.
  std::vector<std::shared_ptr<Session>> owned_;
  std::uint64_t seen_head_ = 0;
  std::size_t first_ = 0;  // where the last pass over owned_ started

  std::jthread thread_;  // last: joined before the members it uses go
};

class WriterPool {
 public:
  WriterPool(const ServerConfig& config, const History& history, ServerStats& stats);
  void start();  // main thread
  void stop();   // main thread; idempotent
  // Listener thread: gives `session` to the writer with the fewest sessions.
  void adopt(const std::shared_ptr<Session>& session);
  // Any thread: wakes every writer that sleeps.
  void room_changed();
  std::size_t size() const { return writers_.size(); }

 private:
  std::vector<std::unique_ptr<Writer>> writers_;
};

}  // namespace chat
