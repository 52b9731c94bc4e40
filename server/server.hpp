// Server: wires the pieces together and owns them.
//
//   Listener   (listener thread)   accepts, hands each socket to a new Session
//   Session    (reader thread)     one per client: reads lines and acts on them
//   WebSite                        the page and the WebSocket upgrade, for --web (web.hpp)
//   WriterPool (--writers threads) send every client its bytes (writer.hpp)
//   Poller     (poller thread)     dead-peer probe, handshake / heartbeat / stall timers, reaping
//   Room                           members and the single delivery path (the History)
//   Transcript (transcript thread) the --log-file
//   Archive    (archive thread)    the room's history and seats in SQLite (--db; archive.hpp)
//   ServerStats                    the counters behind STATS
//   Backplane  (backplane thread)  --redis: the room shared with other chatservers (backplane.hpp)
//
// Threads: the main thread (or a test) constructs, start()s and stop()s it; none of these
// methods may be called from the server's own threads.
#pragma once

#include "server/archive.hpp"
#include "server/backplane.hpp"
#include "server/config.hpp"
#include "server/listener.hpp"
#include "server/poller.hpp"
#include "server/registry.hpp"
#include "server/room.hpp"
#include "server/stats.hpp"
#include "server/transcript.hpp"
#include "server/tls_transport.hpp"
#include "server/web.hpp"
#include "server/writer.hpp"

#include <asio.hpp>

#include <memory>

namespace chat {

class Server {
 public:
  // Opens the database (ArchiveError: chatserver exits 2), binds the listening socket, and with
  // --redis connects to Redis (RedisError: exit 1, a service manager tries again); throws
  // std::system_error / std::runtime_error with a message fit for the user (port in use, a
  // --bind host name that no longer resolves, log file not writable).
  explicit Server(ServerConfig config);
  ~Server();  // stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  asio::ip::tcp::endpoint local_endpoint() const { return listener_->local_endpoint(); }

  // Logs "chatserver listening on <address>:<port>" (with the name, for a --bind host name),
  // then, when listening on every address (0.0.0.0, ::), the addresses people on the network
  // can join at and how to keep the chat to this machine; starts the threads.
  void start();

  // Every client gets "BYE shutdown", every thread is joined. Idempotent.
  void stop();

  // The transcript (--log-file) is closed and opened again: SIGHUP, after logrotate. Main thread.
  void reopen_log() { transcript_.reopen(); }
  // The TLS certificate and key are read again (SIGHUP: a renewed certificate): new connections
  // get them, connected clients keep theirs. On failure the old ones stay and it is logged.
  // Main thread.
  void reload_tls();

  const Room& room() const { return room_; }

 private:
  // The lines after "listening on" for a wildcard `ep`: who can join, at which addresses.
  void announce_addresses(const asio::ip::tcp::endpoint& ep) const;

  const ServerConfig config_;
  asio::io_context io_;  // never run: the sockets use Asio's synchronous calls only
  Transcript transcript_;
  ServerStats stats_;
  Archive archive_;     // before the room, which hands it every event
  Room room_;           // holds the History the writers read, so it outlives them
  WriterPool writers_;
  SessionRegistry sessions_;
  WebSite web_;
  std::unique_ptr<TlsServer> tls_;  // --tls-cert/--self-signed only; reloaded by reload_tls()
  std::unique_ptr<Listener> listener_;
  Poller poller_;
  std::unique_ptr<Backplane> backplane_;  // --redis only; its callbacks call room_
  bool stopped_ = false;  // main thread only
};

}  // namespace chat
