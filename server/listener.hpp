// Listener: the thread that accepts clients (PoshChat's listener runspace).
//
// It never reads from a client: a client that connects and says nothing cannot delay anyone
// else. Each accepted socket gets its keepalive options and a new Session with its own reader
// thread, handed to one of the writer threads. Refused at once, with one line: clients from
// outside --allow ("BYE not-allowed"), from a banned address ("BYE banned until 14:05": the
// Room's Bans, which have a lock of their own), over --max-clients ("BYE server-full"), over
// --max-per-ip from one address ("BYE too-many"), and clients that arrive while the process is
// out of descriptors, threads or memory ("BYE server-busy": one descriptor is kept in reserve to
// be able to say so).
//
// Threads: constructed and stopped by the main thread; run() is the listener thread.
#pragma once

#include "common/net.hpp"
#include "server/config.hpp"

#include <asio.hpp>

#include <atomic>
#include <cstdint>
#include <string_view>
#include <thread>
#include <vector>

namespace chat {

class Room;
class ServerStats;
class SessionRegistry;
class WriterPool;
class WebSite;
class TlsServer;

class Listener {
 public:
  // Opens, binds and listens on --bind (an address, or the first address of a host name).
  // Throws std::system_error ("cannot listen on 0.0.0.0:15600: Address already in use") or
  // std::runtime_error (a name that no longer resolves) on failure.
  // `web`: the web side each new session may turn to (nullptr: --web off); `tls`: the
  // certificate for connections that begin with a ClientHello (nullptr: no TLS).
  Listener(asio::io_context& io, const ServerConfig& config, Room& room, SessionRegistry& sessions,
           WriterPool& writers, ServerStats& stats, WebSite* web = nullptr, TlsServer* tls = nullptr);
  ~Listener();

  asio::ip::tcp::endpoint local_endpoint() const { return endpoint_; }
  // Every address --bind stood for, the one listened on first (one, for a numeric --bind).
  const std::vector<asio::ip::address>& bind_addresses() const { return bind_addresses_; }
  void start();  // main thread: starts the listener thread
  void stop();   // main thread: wakes and joins it; idempotent

 private:
  void run(std::stop_token stop);
  void accept_one();
  void refuse_out_of_descriptors(std::error_code why);
  // Sends `bye` without blocking, shuts down the sending side and drops what the client sent;
  // the caller closes the descriptor (or lets the socket object do it).
  static void refuse(int fd, std::string_view bye);

  asio::io_context& io_;
  const ServerConfig& config_;
  Room& room_;
  SessionRegistry& sessions_;
  WriterPool& writers_;
  ServerStats& stats_;
  WebSite* web_;
  TlsServer* tls_;
  asio::ip::tcp::acceptor acceptor_;  // listener thread only, once started
  asio::ip::tcp::endpoint endpoint_;  // immutable after construction
  std::vector<asio::ip::address> bind_addresses_;  // immutable after construction
  std::vector<AddressRange> allow_;                // --allow (empty: any); immutable after construction
  Wakeup wakeup_;                     // stop() signals it to interrupt poll(2)
  std::uint64_t next_id_ = 1;         // listener thread only
  int reserve_fd_ = -1;               // listener thread only: /dev/null, given up to refuse a client when out of descriptors
  bool out_of_descriptors_ = false;   // listener thread only: in an episode (logged once)
  std::uint64_t refused_for_descriptors_ = 0;  // listener thread only: in this episode
  std::jthread thread_;
};

}  // namespace chat
