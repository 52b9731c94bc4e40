// Session: one connected client, its reader thread, and its Outbox.
//
//   reader thread  - reads the socket (session.cpp: read_loop), blocking recv(2), one per
//                    client as in PoshChat; its Framing turns the bytes into lines (plain lines,
//                    or WebSocket frames after web.cpp upgraded the connection), and Commands
//                    acts on each line (commands.cpp)
//   its Outbox     - what the client is still to be sent; one of the --writers threads
//                    (writer.cpp) writes it, never blocking on this client's socket
//   its TLS        - when its first bytes were a ClientHello (--tls-cert): a TlsTransport under
//                    the framing, which the reader and the writer share (tls_transport.hpp)
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

#include "common/net.hpp"
#include "common/protocol.hpp"
#include "common/thread.hpp"
#include "server/commands.hpp"
#include "server/config.hpp"
#include "server/flood_control.hpp"
#include "server/framing.hpp"
#include "server/outbox.hpp"
#include "server/poller.hpp"
#include "server/tls_transport.hpp"
#include "server/web.hpp"
#include "server/writer.hpp"

#include <asio.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chat {

class Room;
class ServerStats;

// A client's number, in logs and before it has a nickname: "#7".
enum class ClientId : std::uint64_t {};
std::string to_string(ClientId id);

class Session : public std::enable_shared_from_this<Session> {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Mode { undecided, protocol, text };

  // The poller's and the writer's own bookkeeping for this session (poller.hpp, writer.hpp).
  // Only they can read or change it; it is kept here, first, so that a sweep over 10,000
  // sessions touches as few cache lines per session as possible.
  ProbeSlot probe_slot;
  WriterSlot writer_slot;

 private:
  std::atomic<bool> ended_{false};
  std::atomic<bool> joined_{false};
  std::atomic<bool> reader_paused_{false};
  std::atomic<bool> reader_throttled_{false};
  std::atomic<Mode> mode_{Mode::undecided};     // written by the reader before it joins
  std::atomic<bool> ids_{false};                // HELLO <nick> ids or RESUME: written by the reader before it joins
  const int fd_;                                // socket_'s descriptor, for sendmsg(2), shutdown(2) and poll(2)
  std::atomic<Clock::rep> last_received_;       // reader writes, poller reads
  std::atomic<Clock::rep> write_stalled_{0};    // writer writes (0: not stalled), poller reads
  Outbox outbox_;                               // its counters first (outbox.hpp)
  // The framings (after the fields a sweep reads): lines until the reader upgrades the
  // connection to a WebSocket (web.cpp). Their reading side is the reader's; the writer reads
  // the current one through outbox_, which is given lines_ before lines_ is constructed (it only
  // keeps the address).
  LineFraming lines_;
  // The framings the reader switched to (web.cpp: HTTP, then a WebSocket), kept until the
  // session goes: a writer may still hold the one before. The last is the current one.
  std::vector<std::unique_ptr<Framing>> upgrades_;

 public:
  // `web`: the page and the WebSocket upgrade, when --web is on (else nullptr); `tls`: the
  // certificate, when TLS is on (else nullptr).
  Session(ClientId id, asio::ip::tcp::socket socket, const ServerConfig& config, Room& room, ServerStats& stats,
          WebSite* web = nullptr, TlsServer* tls = nullptr);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Listener thread, once, after WriterPool::adopt(): starts the reader thread, and queues the
  // greeting unless --web is on (then the reader greets once it knows this is not HTTP).
  // Throws std::system_error if the thread cannot be created (the session has then ended
  // itself).
  void start();

  // ---- thread safe ------------------------------------------------------------------------
  ClientId id() const { return id_; }
  const std::string& peer() const { return peer_; }  // "127.0.0.1:53712"; immutable
  const asio::ip::address& address() const { return address_; }  // the peer's; immutable
  std::string label() const;                         // the nickname once joined, else "#7"
  Mode mode() const { return mode_.load(); }
  bool joined() const { return joined_.load(); }
  // The client asked for ids (docs/protocol.md): tagged room events, a seat, a token.
  bool ids() const { return ids_.load(); }

  // Ends the session (first call wins, later calls do nothing). With a `bye` reason the
  // client is sent "BYE <bye>" after what is already due to it and then a FIN; without, its
  // output is dropped and the socket shut down at once (the peer is gone or hopeless).
  void end(LeaveCause cause, std::string detail, std::string_view bye = {});
  // Ends the session politely with `last_bytes` exactly as they are (an HTTP response, a
  // WebSocket close frame) after what is already due, then a FIN.
  void end_with(LeaveCause cause, std::string detail, std::string last_bytes);
  bool ended() const { return ended_.load(); }
  std::optional<Departure> departure() const;

  // A line for this client alone (LF added), stamped with the history head `after` (see
  // Outbox). If it does not fit (over --send-queue) the session ends too-slow, naming `via`.
  void send_own(std::string line, std::uint64_t after, std::string_view via);
  // Queues an Outbox item (join_room, users) the same way.
  void send_item(Outbox::Item item, std::string_view via);
  Outbox& outbox() { return outbox_; }
  std::string_view framing_name() const { return outbox_.framing().name(); }
  // The writer this session belongs to; set once by WriterPool::adopt before start().
  void set_writer(Writer* writer) { writer_ = writer; }

  // ---- its reader thread (Commands, the web side) ---------------------------------------------
  void choose_mode(Mode mode);                // the first line decided it
  void use_ids(bool on);                      // before joining: HELLO <nick> ids, RESUME
  void reply(const Event& event);             // an event for this client, in its mode
  void reply_line(std::string line);          // a line as is (no LF), stamped with the current head
  void refuse(const Refusal& refusal);        // ERROR <code> <detail>
  // Bytes exactly as they are (an HTTP response, a WebSocket control frame), in order.
  void send_raw(std::string bytes);
  // From now on lines go out through `framing` (web.cpp: HTTP; a WebSocket after the 101).
  // At most a few times in a session's life: each framing is kept until the session goes.
  void upgrade(std::unique_ptr<Framing> framing);
  void greet();                                // the greeting line
  // Received bytes: through the door (--web) until it is open, then through the framing.
  void receive(std::string_view bytes);
  const ServerConfig& config() const { return config_; }
  // Does this client speak TLS? (Set by its reader before anything is written.)
  bool tls() const { return tls_on_.load(); }
  // A TLS client whose handshake is not done yet (tls_ is set before tls_on_).
  bool tls_handshaking() const { return tls_on_.load() && !tls_->established(); }
  // Waits until the socket has something to read (or is closed), or TLS holds plaintext not
  // yet read; false after `timeout`.
  bool wait_readable(std::chrono::milliseconds timeout);

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
  // "2.1 s after last traffic": for the details of a departure.
  std::string time_since_traffic() const;

 private:
  class Reading;  // the reader's Framing::Sink (session.cpp)
  void read_loop();
  Framing& reading_framing() { return upgrades_.empty() ? lines_ : *upgrades_.back(); }
  void apply_backpressure();
  // --tls-cert: is this a TLS client? Runs its handshake if it is, refuses clear text with
  // --tls-only. False if the session has ended.
  bool tls_door();
  bool tls_handshake();
  void refuse_clear_text();
  // The client's close_notify: its last word, then the polite end.
  void tls_closed();
  // The plaintext of `cipher` (the TLS reader's part): false if the session has ended.
  bool decrypt(std::string_view cipher);
  // Flood control before each line; false if the client has just been ended for flooding.
  bool apply_flood_control();
  // The first call for this session records the departure and returns true; later ones false.
  bool decide(LeaveCause cause, std::string detail);
  void close_politely(std::string last_bytes);
  static std::string greeting();
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
  Commands commands_;             // reader thread only
  std::optional<WebDoor> door_;   // reader thread only; --web on: HTTP or lines? (web.hpp)
  std::optional<FloodControl> flood_;  // reader thread only; nullopt: --max-rate 0
  TlsServer* const tls_server_;   // nullptr: no TLS on this server
  // Made by the reader for a TLS client before anything is written; the writer reaches it
  // through outbox_. Kept until the session goes.
  std::unique_ptr<TlsTransport> tls_;
  std::atomic<bool> tls_on_{false};
  std::string plain_;             // reader thread only: decrypted, not yet given to the framing
  bool tls_peer_closed_ = false;  // reader thread only: a close_notify came with the handshake's end

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
