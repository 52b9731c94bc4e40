// Session: one connected client and its two threads.
//
//   reader thread  - handshake, then reads lines and acts on them (session.cpp: read_loop)
//   writer thread  - drains the client's SendQueue to its socket (session.cpp: write_loop)
//
// Created by the listener thread (make_shared, then start()). Owned by the SessionRegistry;
// the poller thread reaps it (drops the registry's reference) once both threads have returned,
// so ~Session() only joins threads that have already finished. Other threads hold
// shared_ptr copies briefly (the room's member list, the poller's snapshot).
//
// Ending: end() may be called by any thread, any number of times; the first call decides the
// departure (cause + detail) and wakes the threads with shutdown(2), never close(2): the
// socket is closed only in the destructor. The LEAVE broadcast happens in one place, on the
// reader thread's way out (Room::leave), so every JOIN gets exactly one LEAVE whichever
// detector fired first.
#pragma once

#include "common/line_framer.hpp"
#include "common/net.hpp"
#include "common/protocol.hpp"
#include "server/config.hpp"
#include "server/send_queue.hpp"

#include <asio.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace chat {

class Room;

// A client's number, in logs and before it has a nickname: "#7".
enum class ClientId : std::uint64_t {};
std::string to_string(ClientId id);

// One room event as each kind of client receives it (LF included); null: not sent to them.
struct Outgoing {
  SharedLine protocol;
  SharedLine text;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Mode { undecided, protocol, text };

  Session(ClientId id, asio::ip::tcp::socket socket, const ServerConfig& config, Room& room);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Listener thread, once: queues the greeting and starts the reader and writer threads.
  // Throws std::system_error if a thread cannot be created (the session is then ended).
  void start();

  // ---- thread safe ------------------------------------------------------------------------
  ClientId id() const { return id_; }
  const std::string& peer() const { return peer_; }  // "127.0.0.1:53712"; immutable
  std::string label() const;                         // the nickname once joined, else "#7"
  Mode mode() const { return mode_.load(); }
  bool joined() const { return joined_.load(); }

  // Ends the session (first call wins, later calls do nothing). With a `bye` reason the
  // client is sent "BYE <bye>" after what is already queued and then a FIN; without, the
  // queue is dropped and the socket shut down at once (the peer is gone or hopeless).
  void end(LeaveCause cause, std::string detail, std::string_view bye = {});
  bool ended() const { return ended_.load(); }
  std::optional<Departure> departure() const;

  // Queues a room event for this client (called by the Room with its lock held); never
  // blocks. If the queue is full the session ends too-slow.
  void deliver(const Outgoing& out);

  // ---- the Room, with its lock held ---------------------------------------------------------
  std::string nick() const;
  void set_joined(std::string nick);
  void set_nick(std::string nick);

  // ---- the poller thread ------------------------------------------------------------------
  int native_handle() const { return fd_; }
  Clock::time_point accepted_at() const { return accepted_at_; }
  Clock::time_point last_received() const;       // the last time bytes arrived
  std::optional<Clock::time_point> write_stalled_since() const;  // a write in progress: its last progress
  std::optional<Clock::time_point> ended_at() const;
  bool finished() const { return reader_done_.load() && writer_done_.load(); }
  void force_close();                             // shut down both ways, drop the queue
  void send_ping(const std::string& token);
  // The PING waiting for an answer (nullopt: none). Poller thread only, no lock.
  std::optional<Clock::time_point> ping_sent_at;
  // Since when the probe has found the peer gone, sweep after sweep. Poller thread only.
  std::optional<Clock::time_point> suspected_gone_since;
  // The probe's confirmation step (confirm_departure) for this socket, given its revents.
  // Reading a socket's pending error clears it (getsockopt(SO_ERROR) and recv(MSG_PEEK) both
  // do), so after the poller has read an ECONNRESET the reader's recv() sees only the end of
  // the stream. The error is therefore read and kept in one step under mutex_, and the
  // reader, after an EOF, takes mutex_ and reports the kept error instead. Poller thread.
  std::optional<std::error_code> confirm_gone(short revents);

 private:
  void read_loop();
  void write_loop();
  std::error_code write_all(std::string_view bytes);
  void handle_line(std::string_view line);
  void handle_handshake(std::string_view line);
  void handle_command(const Command& cmd);
  void join(std::string_view nick);
  void reply(const Event& event);
  void reply_text(std::string_view line);  // text mode: a line as is (help, prompts)
  void refuse(const Refusal& refusal);
  void push_line(std::string line);
  // Queues `line`; a full queue ends the session too-slow, naming `via` ("room", "reply").
  void enqueue(SharedLine line, std::string_view via);
  std::string time_since_traffic() const;

  const ClientId id_;
  const ServerConfig& config_;
  Room& room_;
  asio::ip::tcp::socket socket_;  // read by the reader, written by the writer, closed by ~Session
  const int fd_;                  // socket_'s descriptor, for shutdown(2) and poll(2) from any thread
  const std::string peer_;
  const Clock::time_point accepted_at_;
  SendQueue queue_;
  LineFramer framer_;             // reader thread only

  std::atomic<Mode> mode_{Mode::undecided};  // written by the reader before it joins
  std::atomic<bool> joined_{false};
  std::atomic<bool> ended_{false};
  std::atomic<bool> reader_done_{false};
  std::atomic<bool> writer_done_{false};
  std::atomic<Clock::rep> last_received_;       // reader writes, poller reads
  std::atomic<Clock::rep> write_progress_{0};   // writer writes (0: not writing), poller reads

  mutable std::mutex mutex_;
  std::string nick_;                      // guarded by mutex_ (written under the room's lock too)
  std::optional<Departure> departure_;    // guarded by mutex_
  std::error_code error_seen_by_poller_;  // guarded by mutex_: see confirm_gone()
  Clock::time_point ended_at_{};          // guarded by mutex_

  // Declared last: destroyed (joined) first, while everything they use still exists.
  std::jthread writer_;
  std::jthread reader_;
};

}  // namespace chat
