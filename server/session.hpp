// Session: one connected client, its reader thread, and its Outbox.
//
//   reader thread  - handshake, then reads lines and acts on them (session.cpp: read_loop);
//                    one per client, blocking recv(2), as in PoshChat
//   its Outbox     - what the client is still to be sent; one of the --writers threads
//                    (writer.cpp) writes it, never blocking on this client's socket
//
// Created by the listener thread (make_shared, WriterPool::adopt, then start()). Owned by the
// SessionRegistry; the writer that adopted it holds a reference too, until it has written the
// last byte (or the session was aborted). The poller thread reaps the session (drops the
// registry's reference) once the reader has returned and the writer has let go, so ~Session()
// only joins a reader thread that has already finished. Other threads hold shared_ptr copies
// for a while (the room's member list, the poller's snapshot, a writer's list of sessions that
// asked for its attention), so the last reference may go on the poller, main or a writer
// thread, never on the session's own reader.
//
// Ending: end() may be called by any thread, any number of times; the first call decides the
// departure (cause + detail) and wakes the reader with shutdown(2), never close(2): the socket
// is closed only in the destructor. The LEAVE broadcast happens in one place, on the reader
// thread's way out (Room::leave), so every JOIN gets exactly one LEAVE whichever detector fired
// first.
#pragma once

#include "common/line_framer.hpp"
#include "common/net.hpp"
#include "common/protocol.hpp"
#include "common/thread.hpp"
#include "server/config.hpp"
#include "server/flood_control.hpp"
#include "server/outbox.hpp"

#include <asio.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace chat {

class Room;
class ServerStats;
class Writer;

// A client's number, in logs and before it has a nickname: "#7".
enum class ClientId : std::uint64_t {};
std::string to_string(ClientId id);

class Session : public std::enable_shared_from_this<Session> {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Mode { undecided, protocol, text };

  // ---- the poller thread's own fields (no lock) -------------------------------------------
  // Declared first, with the private fields the poller reads on every sweep right after them:
  // a sweep over 10,000 sessions then touches as few cache lines per session as possible.
  // The PING waiting for an answer (nullopt: none).
  std::optional<Clock::time_point> ping_sent_at;
  // Since when the probe has found the peer gone, sweep after sweep.
  std::optional<Clock::time_point> suspected_gone_since;
  // --probe epoll: in the poller's epoll set, and the events it reported this sweep.
  bool in_probe_set = false;
  short probe_revents = 0;
  // Not before then can the keepalive budget run out (the last ACK's age, as of the last
  // TCP_INFO, subtracted from the budget): a healthy idle client costs one getsockopt per
  // keepalive interval, not one per sweep.
  Clock::time_point ack_check_due{};

 private:
  std::atomic<bool> ended_{false};
  std::atomic<bool> joined_{false};
  std::atomic<bool> reader_paused_{false};
  std::atomic<bool> reader_throttled_{false};
  std::atomic<Mode> mode_{Mode::undecided};     // written by the reader before it joins
  const int fd_;                                // socket_'s descriptor, for sendmsg(2), shutdown(2) and poll(2)
  std::atomic<Clock::rep> last_received_;       // reader writes, poller reads
  std::atomic<Clock::rep> write_stalled_{0};    // writer writes (0: not stalled), poller reads
  Outbox outbox_;                               // its counters first (outbox.hpp)

 public:
  Session(ClientId id, asio::ip::tcp::socket socket, const ServerConfig& config, Room& room, ServerStats& stats);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Listener thread, once, after WriterPool::adopt(): queues the greeting and starts the reader
  // thread. Throws std::system_error if the thread cannot be created (the session has then
  // ended itself).
  void start();

  // ---- thread safe ------------------------------------------------------------------------
  ClientId id() const { return id_; }
  const std::string& peer() const { return peer_; }  // "127.0.0.1:53712"; immutable
  const asio::ip::address& address() const { return address_; }  // the peer's; immutable
  std::string label() const;                         // the nickname once joined, else "#7"
  Mode mode() const { return mode_.load(); }
  bool joined() const { return joined_.load(); }

  // Ends the session (first call wins, later calls do nothing). With a `bye` reason the
  // client is sent "BYE <bye>" after what is already due to it and then a FIN; without, its
  // output is dropped and the socket shut down at once (the peer is gone or hopeless).
  void end(LeaveCause cause, std::string detail, std::string_view bye = {});
  bool ended() const { return ended_.load(); }
  std::optional<Departure> departure() const;

  // A line for this client alone (LF added), stamped with the history head `after` (see
  // Outbox). If it does not fit (over --send-queue) the session ends too-slow, naming `via`.
  void send_own(std::string line, std::uint64_t after, std::string_view via);
  // Queues an Outbox item (join_room, users) the same way.
  void send_item(Outbox::Item item, std::string_view via);
  Outbox& outbox() { return outbox_; }
  // The writer this session belongs to; set once by WriterPool::adopt before start().
  void set_writer(Writer* writer) { writer_ = writer; }

  // ---- the Room, with its lock held ---------------------------------------------------------
  std::string nick() const;
  void set_joined(std::string nick);
  void set_nick(std::string nick);

  // ---- the poller thread ------------------------------------------------------------------
  int native_handle() const { return fd_; }
  Clock::time_point accepted_at() const { return accepted_at_; }
  Clock::time_point last_received() const;       // the last time bytes arrived
  // Since when the socket has taken none of the bytes that wait for it (nullopt: not stuck).
  std::optional<Clock::time_point> write_stalled_since() const;
  std::optional<Clock::time_point> ended_at() const;
  // The reader has returned and the writer has let go: nothing runs for this session any more.
  bool finished() const { return reader_done_.load() && writer_done_.load(); }
  // The reader stopped reading because this client is far behind on its own output.
  bool reader_paused() const { return reader_paused_.load(); }
  // The reader is waiting before its next line because the client sends too fast (flood
  // control): like a paused reader, the client is sending, not silent.
  bool reader_throttled() const { return reader_throttled_.load(); }
  void force_close();                             // shut down both ways, drop the output
  // Queues a PING without waking the writer: the poller queues a sweep's PINGs (hundreds with
  // 10,000 clients), then wakes each writer once (wake_writer), instead of the writers
  // starting on the first PING and contending with the rest of the sweep.
  void queue_ping(const std::string& token);
  // Tells this session's writer it has something (new) to send.
  void wake_writer();
  // (The poller's own fields, ping_sent_at and the rest, are at the top of the class.)
  // The probe's confirmation step (confirm_departure) for this socket, given its revents.
  // Reading a socket's pending error clears it (getsockopt(SO_ERROR) and recv(MSG_PEEK) both
  // do), so after the poller has read an ECONNRESET the reader's recv() sees only the end of
  // the stream. The error is therefore read and kept in one step under mutex_, and the
  // reader, after an EOF, takes mutex_ and reports the kept error instead. Poller thread.
  std::optional<std::error_code> confirm_gone(short revents);

  // ---- its writer thread ------------------------------------------------------------------
  void set_write_stalled(std::optional<Clock::time_point> since);
  // A send failed with `error` (ECONNRESET, EPIPE, ...): kept for the reader as confirm_gone()
  // keeps the poller's (sendmsg took the socket's pending error, and the reader's recv() then
  // sees only the end of the stream), then the session ends with its cause.
  void writer_failed(std::error_code error);
  void writer_released();
  bool writer_done() const { return writer_done_.load(); }
  // Writer-thread-only state (writer.cpp): waiting for EPOLLOUT, registered with its epoll set.
  bool parked = false;
  bool in_epoll = false;
  // Set by whoever marks the session for its writer's attention; cleared by the writer.
  std::atomic<bool> marked{false};
  // "2.1 s after last traffic": for the details of a departure.
  std::string time_since_traffic() const;

 private:
  void read_loop();
  void handle_line(std::string_view line);
  void handle_handshake(std::string_view line);
  void handle_command(const Command& cmd);
  void join(std::string_view nick);
  void reply(const Event& event);
  void reply_text(std::string_view line);  // text mode: a line as is (help, prompts)
  void refuse(const Refusal& refusal);
  void reply_line(std::string line);       // own line stamped with the current head
  void apply_backpressure();
  // Flood control before each line; false if the client has just been ended for flooding.
  bool apply_flood_control();
  void part_done(std::atomic<bool>& flag);  // reader_done_ or writer_done_, counted once both are
  // send_item without the wake-up: false if it did not fit and the session ended too-slow.
  bool queue_item(Outbox::Item item, std::string_view via);

  const ClientId id_;
  const ServerConfig& config_;
  Room& room_;
  ServerStats& stats_;
  asio::ip::tcp::socket socket_;  // read by the reader; written through fd_ by a writer; closed by ~Session
  const std::string peer_;
  const asio::ip::address address_;
  const Clock::time_point accepted_at_;
  Writer* writer_ = nullptr;      // set before start(), then read-only
  LineFramer framer_;             // reader thread only
  std::optional<FloodControl> flood_;  // reader thread only; nullopt: --max-rate 0

  std::atomic<bool> reader_done_{false};
  std::atomic<bool> writer_done_{false};
  std::atomic<int> done_parts_{0};  // how many of the two have finished

  mutable std::mutex mutex_;
  std::string nick_;                      // guarded by mutex_ (written under the room's lock too)
  std::optional<Departure> departure_;    // guarded by mutex_
  std::error_code error_seen_;  // guarded by mutex_: see confirm_gone() and writer_failed()
  Clock::time_point ended_at_{};          // guarded by mutex_

  // Declared last: destroyed (joined) first, while everything it uses still exists.
  NamedThread reader_;
};

}  // namespace chat
