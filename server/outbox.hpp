// Outbox: everything the server has to send one client, in the order the client must get it.
//
// Two sources merge into one byte stream:
//   the room stream  once the client has joined, every History entry from its join on; its
//                    place in the history is a cursor, so a room event costs the room one
//                    append whatever the number of members, and nothing is copied per member;
//   its own lines    the greeting, WELCOME, USERS, ERROR, PONG, PING, PRIV, BYE: lines for this
//                    client alone, each stamped with the history head at the moment it was
//                    caused. An own line stamped h goes after every room entry below h and before
//                    every entry from h on, so USERS agrees with the JOINs and LEAVEs that follow
//                    it, and a PRIV sent after a SAY arrives after that MSG.
//
// A writer thread (writer.hpp) calls write_some(), which gathers the pending pieces into one
// sendmsg(2) (writev) without blocking and remembers how far it got. How a line goes on the
// wire is the connection's Framing (framing.hpp): as it is for nc and chatclient, as a
// WebSocket frame for a browser. The counts (backlog, --send-queue) are in lines' bytes, the
// same for every framing.
//
// Bounded: backlog() is the bytes this client is behind, wherever they wait: own lines queued,
// room bytes not yet written, over TLS the ciphertext its transport holds unsent (a batch the
// socket did not take), and what the kernel holds in the socket (counted while the
// socket is full; the listener caps the kernel's unsent part with TCP_NOTSENT_LOWAT). push()
// refuses a line that would take it over the limit, and the session ends a client that is over
// it (too-slow). Memory: own lines up to the limit, and a cursor that keeps
// alive the history chunk it is in and those after it.
//
// Threads: push(), close_with(), abort() and closed() from any thread (under mutex_); backlog()
// from any thread (atomics only); wait_below() from the client's reader; write_some() from one
// writer thread at a time.
#pragma once

#include "server/framing.hpp"
#include "server/history.hpp"
#include "server/roster.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

namespace chat {

class TlsTransport;

class Outbox {
 public:
  struct Item {
    enum class Kind {
      line,       // `line`, framed
      raw,        // `line`'s bytes exactly as they are: an HTTP response, a WebSocket control frame
      users,      // the USERS line for `users`, rendered by the writer (O(N), outside every lock)
      join_room,  // start the room stream at `start` (no bytes)
      last,       // `line`'s bytes as they are (Framing::goodbye), then nothing more: the writer
                  // shuts the sending side down (a FIN)
    };
    Kind kind = Kind::line;
    std::uint64_t after = 0;  // the history head when this was caused
    std::string line;         // with its LF (raw, last: the bytes)
    Roster users;
    std::chrono::system_clock::time_point when{};  // users: the time for the text-mode stamp
    HistoryCursor start;      // join_room
    std::uint64_t start_bytes = 0;  // join_room: the history's bytes (this client's mode) at `start`
  };

  enum class Push { ok, full, closed };

  struct Written {
    enum class State {
      idle,      // everything pending was written
      more,      // the per-call budget ran out; call again
      blocked,   // the socket takes no more now (EAGAIN): wait for EPOLLOUT
      finished,  // the last line was written: shut the sending side down
      aborted,   // abort() was called: nothing more will be written
      failed,    // sendmsg failed: error
    };
    State state = State::idle;
    std::size_t bytes = 0;         // written by this call
    std::size_t progress = 0;      // bytes the socket took (over TLS: ciphertext, also of an earlier batch)
    std::uint64_t room_entries = 0; // room events completed by this call
    std::error_code error;
  };

  // `framing`: how lines go on the wire until set_framing() says otherwise (by default as they
  // are, LF-terminated).
  Outbox(const History& history, std::size_t limit, const Framing& framing = LineFraming::on_the_wire())
      : framing_(&framing), history_(history), limit_(limit) {}

  // ---- any thread ----------------------------------------------------------------------------
  // Text or protocol lines from the room stream. Set once, by the reader, before it joins.
  void set_mode(StreamMode mode) { mode_.store(mode); }
  StreamMode mode() const { return mode_.load(); }
  // The connection's framing from now on. Set by the reader before it queues any line for the
  // new framing (a WebSocket upgrade); `framing` must outlive the Outbox.
  void set_framing(const Framing& framing) { framing_.store(&framing); }
  const Framing& framing() const { return *framing_.load(); }
  // TLS from now on (server/tls_transport.hpp): the batches are encrypted before they are sent.
  // Set once by the reader when the client's first bytes were a ClientHello, before anything is
  // written; `transport` must outlive the Outbox. Nothing is written before its handshake is done.
  void set_transport(TlsTransport& transport) { transport_.store(&transport); }
  std::size_t limit() const { return limit_; }

  // Queues an item. `full`: it would take the backlog over the limit (nothing was queued; the
  // caller ends the client too-slow); an item into an empty outbox always fits. `closed`: after close_with() or abort().
  Push push(Item item);
  // The polite end: `last` goes after what is queued and the room events caused before it;
  // nothing is queued after it. Ignored once closed.
  void close_with(Item last);
  // Drops everything; write_some() says aborted from now on.
  void abort();
  bool closed() const;

  // Bytes this client is behind: own lines queued, room bytes not yet written, and the bytes
  // the kernel still held for it when its socket was last found full (note_kernel_bytes).
  std::uint64_t backlog() const;
  // The writer, when a write did not take everything, and the poller, while the socket stays
  // full: the kernel holds `bytes` for this client, not yet sent (unsent_bytes()).
  // 0 once a write takes everything (write_some resets it): the kernel's part counts while the
  // socket is full; a socket that takes everything has at most min(--send-queue / 4, 64 KiB)
  // unsent (limit_unsent(), plus the segment being filled). Bytes in flight are not counted.
  void note_kernel_bytes(std::uint64_t bytes) {
    if (kernel_bytes_.load(std::memory_order_relaxed) != bytes) kernel_bytes_.store(bytes, std::memory_order_relaxed);
  }
  std::uint64_t kernel_bytes() const { return kernel_bytes_.load(std::memory_order_relaxed); }
  // The reader's backpressure: blocks while backlog() > `threshold`, until it drains or the
  // outbox is closed. Returns at once if not over. `stop` is checked on every wake-up.
  template <typename Stop>
  void wait_below(std::uint64_t threshold, Stop stop);

  // ---- the writer thread ----------------------------------------------------------------------
  // Writes what is pending to `fd`, at most about `budget` bytes, in one sendmsg(2) that never
  // blocks (more calls only if a write was interrupted). With TLS, the batch is encrypted and
  // sent by the transport; what the socket does not take waits there (state blocked).
  Written write_some(int fd, std::size_t budget);

 private:
  struct Piece {
    bool own;           // an own item (pending_ front) or room entries (from the cursor)
    std::size_t size;   // bytes on the wire (framed)
    std::size_t counted;  // bytes it counts for in the backlog (the lines')
    std::uint64_t entries = 0;  // room entries in it: one, or a run's (lines as they are)
  };
  void consume(std::size_t bytes, const std::vector<Piece>& pieces, StreamMode mode, Written& out);
  // The writer thread: own items wait, or the room stream is behind the history's head now.
  bool more_pending() const { return !pending_.empty() || (cursor_in_room_ && cursor_.seq() < history_.head()); }
  std::string render_users(const Item& item) const;
  void notify_reader();

  // Read by the poller for every session on every sweep (backlog()): first, together.
  std::atomic<std::uint64_t> own_bytes_{0};   // own lines queued, not yet written
  std::atomic<std::uint64_t> room_sent_{0};   // history bytes (this mode) written or skipped
  std::atomic<std::uint64_t> kernel_bytes_{0}; // in the kernel, as last sampled (note_kernel_bytes)
  std::atomic<bool> in_room_{false};          // join_room was pushed
  std::atomic<StreamMode> mode_{StreamMode::protocol};
  std::atomic<bool> reader_waiting_{false};
  std::atomic<const Framing*> framing_;
  std::atomic<TlsTransport*> transport_{nullptr};
  const History& history_;
  const std::size_t limit_;

  mutable std::mutex mutex_;
  std::condition_variable drained_;   // the reader waits on it (wait_below)
  std::vector<Item> inbox_;           // guarded by mutex_
  bool closed_ = false;               // guarded by mutex_
  bool aborted_ = false;              // guarded by mutex_

  // Writer side, one thread at a time.
  std::deque<Item> pending_;
  HistoryCursor cursor_;
  bool cursor_in_room_ = false;
  std::size_t partial_ = 0;  // bytes of the first pending piece already written
  bool partial_is_room_ = false;  // ...and that piece is the room entry at the cursor, not pending_'s front
  bool tls_finishing_ = false;  // the last item is encrypted, with its close_notify; it waits to be sent
  std::vector<Piece> pieces_;  // write_some's list of what it gathered, kept to reuse its memory
};

template <typename Stop>
void Outbox::wait_below(std::uint64_t threshold, Stop stop) {
  if (backlog() <= threshold) return;
  std::unique_lock lock(mutex_);
  reader_waiting_ = true;
  // The writer notifies after each write while reader_waiting_ is set; the timeout is only a
  // safety net for `stop`, which is not a condition this variable is told about.
  while (!closed_ && !stop() && backlog() > threshold) drained_.wait_for(lock, std::chrono::milliseconds(100));
  reader_waiting_ = false;
}

}  // namespace chat
