// TLS under the framing: the server's certificate (TlsServer) and one connection's TLS
// (TlsTransport). docs/threads.md, "TLS under the framing", tells why it is built this way.
//
// A connection whose first byte is a TLS handshake record (0x16) gets a TlsTransport from its
// reader thread (session.cpp). The framings above it (lines, HTTP, WebSocket) do not change: the
// reader gives them plaintext, and the writer's batch is plaintext until the transport encrypts
// it. OpenSSL does no I/O here (tls::Engine, memory BIOs): the threads move the ciphertext with
// their own recv(2) and sendmsg(2), so the transport's lock is held for the crypto and for a
// send that never blocks (MSG_DONTWAIT), and never while anyone waits.
//
//   the reader  recv(2)s ciphertext on the blocking socket without the lock, as for clear text;
//               then, under the lock, feeds it to the engine and takes the plaintext out. It
//               runs the handshake the same way, and sends the handshake's replies itself
//               (the writer sends nothing before the handshake is done).
//   a writer    under the lock: sends what ciphertext is left from its last turn; if the
//               socket took it all, encrypts its new batch (records of up to 16 KiB) and sends
//               as much as the socket takes. What the socket does not take (at most one batch)
//               waits in the transport, and the writer parks the session on EPOLLOUT as for
//               clear text. The last item (the BYE) is followed by a close_notify.
//   any thread  ending a session does not touch the transport (shutdown(2), as for clear text).
//
// Ciphertext the reader's engine makes after the handshake (TLS 1.3 session tickets, an alert)
// joins the same waiting buffer, in order, and the writer is woken to send it.
#pragma once

#include "common/tls.hpp"

#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace chat {

// The server's TLS context: the certificate and key, read again by reload() (SIGHUP). A
// connection keeps the context it started with; new ones get the reloaded one.
// Threads: made and reloaded by the main thread; context() from any reader.
class TlsServer {
 public:
  // nullptr if the files cannot be read (`error` says why).
  static std::unique_ptr<TlsServer> load(std::string cert_file, std::string key_file, std::string& error);
  tls::Context context() const;
  // Reads the files again; on failure the old certificate stays (`error` says why).
  bool reload(std::string& error);
  // "CN=chat.lan, expires 2029-03-04, SHA256:...": for the log.
  std::string describe() const;

 private:
  TlsServer(std::string cert_file, std::string key_file, tls::Context context)
      : cert_file_(std::move(cert_file)), key_file_(std::move(key_file)), context_(std::move(context)) {}
  const std::string cert_file_;
  const std::string key_file_;
  mutable std::mutex mutex_;
  tls::Context context_;  // guarded by mutex_
};

class TlsTransport {
 public:
  TlsTransport(const tls::Context& context, int fd) : fd_(fd), engine_(context, tls::Engine::Role::server) {}

  // ---- the reader thread ---------------------------------------------------------------------
  enum class Read {
    ok,        // go on (`plain` may be empty: a record is not complete yet)
    closed,    // the client sent close_notify
    failed,    // bad records, or a failed handshake: error()
    send_failed,  // the handshake's reply could not be sent: send_error()
  };
  // `cipher` was received: runs the handshake as far as it goes (sending its replies, waiting
  // for the socket to take them without the lock, until `give_up` says stop), and appends the
  // plaintext to `plain`. `output_left`: ciphertext now waits for a writer to send it.
  Read receive(std::string_view cipher, std::string& plain, bool& output_left, const std::function<bool()>& give_up);
  bool established() const { return established_.load(); }
  std::string error() const;
  int send_error() const { return send_errno_; }
  std::string describe() const;

  // ---- a writer thread -----------------------------------------------------------------------
  struct Sent {
    int error = 0;          // errno of a failed send (not EAGAIN)
    bool blocked = false;   // ciphertext still waits: park until EPOLLOUT
    std::size_t bytes = 0;  // ciphertext the socket took (progress, for the stall timer)
    bool encrypted = false; // send(): the batch was taken (false: blocked before it)
  };
  // Sends what waits from an earlier call.
  Sent flush();
  // Encrypts `iovs` (`total` plaintext bytes; all of them are taken unless `error` or
  // `blocked`: what an earlier call left still waits, and nothing new is encrypted), then a
  // close_notify if `last`, and sends what the socket takes.
  Sent send(const iovec* iovs, std::size_t count, std::size_t total, bool last);
  // Nothing is left to send for now: the buffers of a busy spell are given back.
  void idle();
  // Ciphertext waiting to be sent (for the backlog's count).
  std::size_t waiting() const { return waiting_.load(std::memory_order_relaxed); }

 private:
  Sent flush_locked();  // with mutex_ held: a send(2) that never blocks

  const int fd_;
  std::atomic<bool> established_{false};
  std::atomic<std::size_t> waiting_{0};  // engine_.output_size(), for readers without the lock
  int send_errno_ = 0;                   // the reader's, during the handshake
  mutable std::mutex mutex_;
  tls::Engine engine_;  // guarded by mutex_ (its output is the ciphertext waiting to be sent)
};

}  // namespace chat
