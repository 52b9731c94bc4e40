// Listener: the thread that accepts clients (PoshChat's listener runspace).
//
// It never reads from a client: a client that connects and says nothing cannot delay anyone
// else. Each accepted socket gets its keepalive options and a new Session with its own reader
// thread, handed to one of the writer threads; clients over --max-clients get
// "BYE server-full" and are closed.
//
// Threads: constructed and stopped by the main thread; run() is the listener thread.
#pragma once

#include "common/net.hpp"
#include "server/config.hpp"

#include <asio.hpp>

#include <atomic>
#include <cstdint>
#include <thread>

namespace chat {

class Room;
class ServerStats;
class SessionRegistry;
class WriterPool;

class Listener {
 public:
  // Opens, binds and listens. Throws std::system_error ("cannot listen on 0.0.0.0:15600:
  // Address already in use") on failure.
  Listener(asio::io_context& io, const ServerConfig& config, Room& room, SessionRegistry& sessions,
           WriterPool& writers, ServerStats& stats);
  ~Listener();

  asio::ip::tcp::endpoint local_endpoint() const { return endpoint_; }
  void start();  // main thread: starts the listener thread
  void stop();   // main thread: wakes and joins it; idempotent

 private:
  void run(std::stop_token stop);
  void accept_one();
  void refuse_full(asio::ip::tcp::socket& socket);

  asio::io_context& io_;
  const ServerConfig& config_;
  Room& room_;
  SessionRegistry& sessions_;
  WriterPool& writers_;
  ServerStats& stats_;
  asio::ip::tcp::acceptor acceptor_;  // listener thread only, once started
  asio::ip::tcp::endpoint endpoint_;  // immutable after construction
  Wakeup wakeup_;                     // stop() signals it to interrupt poll(2)
  std::uint64_t next_id_ = 1;         // listener thread only
  std::jthread thread_;
};

}  // namespace chat
