// SendQueue: lines bounded in bytes, drained by one thread. The transcript's queue (its writer
// thread appends them to the --log-file); clients' output goes through their Outbox instead.
//
// Threads: any thread pushes (the room records under its lock); exactly one thread pops.
// push() never blocks: when the queue is full it refuses, and the owner decides what that means
// (the transcript counts the dropped lines).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

namespace chat {

// A line ready to send, LF included. Shared: one broadcast is one string for all receivers.
using SharedLine = std::shared_ptr<const std::string>;

class SendQueue {
 public:
  enum class Push { ok, full, closed };
  enum class Pop { lines, drained, aborted };

  explicit SendQueue(std::size_t limit_bytes) : limit_(limit_bytes) {}

  // Thread safe. Queues `line` unless the queue is closed or would exceed its limit.
  Push push(SharedLine line);

  // Thread safe. No more pushes; `last` (if any) is queued after everything already there,
  // so the writer sends it last (a BYE). The writer drains, then pop() returns drained.
  void close(SharedLine last = nullptr);

  // Thread safe. Drops whatever is queued; the writer's pop() returns aborted at once.
  void abort();

  // Writer thread only. Waits for lines and appends up to `max_bytes` of them (at least one
  // line) to `out`. Returns lines, or drained / aborted when there is nothing more to send.
  Pop pop(std::string& out, std::size_t max_bytes);

  std::size_t limit() const { return limit_; }
  std::size_t bytes() const;  // thread safe; a snapshot

 private:
  const std::size_t limit_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;    // signalled on push, close and abort
  std::deque<SharedLine> lines_;     // guarded by mutex_
  std::size_t bytes_ = 0;            // guarded by mutex_: the sum of lines_' sizes
  bool closed_ = false;              // guarded by mutex_
  bool aborted_ = false;             // guarded by mutex_
};

}  // namespace chat
