#include "server/tls_transport.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

namespace chat {
namespace {

// Plaintext the reader takes out per receive(): what 4 KiB of records can hold, and more.
constexpr std::size_t max_plain = 1 << 20;
// A writer's batch is encrypted in pieces of this size (a record each), so that what waits
// unsent is one batch at most and OpenSSL's buffers stay small.
constexpr std::size_t record = 16 * 1024;

}  // namespace

std::unique_ptr<TlsServer> TlsServer::load(std::string cert_file, std::string key_file, std::string& error) {
  auto context = tls::server_context(cert_file, key_file, error);
  if (!context) return nullptr;
  return std::unique_ptr<TlsServer>(new TlsServer(std::move(cert_file), std::move(key_file), std::move(context)));
}

tls::Context TlsServer::context() const {
  std::lock_guard lock(mutex_);
  return context_;
}

bool TlsServer::reload(std::string& error) {
  auto context = tls::server_context(cert_file_, key_file_, error);
  if (!context) return false;
  std::lock_guard lock(mutex_);
  context_ = std::move(context);
  return true;
}

std::string TlsServer::describe() const {
  const auto cert = tls::describe_certificate_file(cert_file_);
  const auto print = tls::file_fingerprint(cert_file_);
  return cert_file_ + " (" + cert.value_or("?") + ", " + print.value_or("?") + ")";
}

TlsTransport::Read TlsTransport::receive(std::string_view cipher, std::string& plain, bool& output_left,
                                         const std::function<bool()>& give_up) {
  bool handshaking = false;
  tls::Engine::Status status;
  {
    std::lock_guard lock(mutex_);
    handshaking = !engine_.established();
    engine_.put_input(cipher);
    status = engine_.read(plain, max_plain);
    established_ = engine_.established();
    waiting_.store(engine_.output_size(), std::memory_order_relaxed);
    if (status == tls::Engine::Status::failed) {
      (void)flush_locked();  // the alert that says why, if the socket takes it now
      return Read::failed;
    }
  }
  if (handshaking) {
    // The handshake's replies: the reader sends them itself (no writer sends before the
    // handshake is done), waiting for room in the socket without the lock. Also when the
    // client's Finished came with its close_notify (openssl s_client with nothing to say): the
    // session tickets made on the Finished still go out, as the client may wait for them.
    while (true) {
      Sent sent;
      {
        std::lock_guard lock(mutex_);
        sent = flush_locked();
      }
      if (sent.error != 0) {
        if (status == tls::Engine::Status::closed) break;  // it has gone: its close_notify says how
        send_errno_ = sent.error;
        return Read::send_failed;
      }
      if (!sent.blocked) break;
      if (give_up()) return status == tls::Engine::Status::closed ? Read::closed : Read::ok;
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, 100);
    }
  }
  if (status == tls::Engine::Status::closed) return Read::closed;
  output_left = waiting_.load(std::memory_order_relaxed) > 0;
  return Read::ok;
}

std::string TlsTransport::error() const {
  std::lock_guard lock(mutex_);
  return engine_.error();
}

std::string TlsTransport::describe() const {
  std::lock_guard lock(mutex_);
  return engine_.describe();
}

TlsTransport::Sent TlsTransport::flush_locked() {
  Sent sent;
  while (engine_.output_size() > 0) {
    const auto out = engine_.output();
    const ssize_t n = ::send(fd_, out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        sent.blocked = true;
      } else {
        sent.error = errno;
      }
      break;
    }
    engine_.consume_output(static_cast<std::size_t>(n));
    sent.bytes += static_cast<std::size_t>(n);
  }
  waiting_.store(engine_.output_size(), std::memory_order_relaxed);
  return sent;
}

void TlsTransport::idle() {
  std::lock_guard lock(mutex_);
  engine_.trim_output();
}

TlsTransport::Sent TlsTransport::flush() {
  std::lock_guard lock(mutex_);
  return flush_locked();
}

TlsTransport::Sent TlsTransport::send(const iovec* iovs, std::size_t count, std::size_t total, bool last) {
  std::lock_guard lock(mutex_);
  Sent sent = flush_locked();
  if (sent.error != 0 || sent.blocked) return sent;  // the socket is still full: nothing more waits here
  // The batch, copied into one buffer so that it becomes full records of 16 KiB (SSL_write
  // takes one buffer; encrypting each piece where it lies, measured, made more and smaller
  // records and cost more than the copy).
  thread_local std::string plain;
  plain.clear();
  plain.reserve(total);
  for (std::size_t i = 0; i < count; ++i) plain.append(static_cast<const char*>(iovs[i].iov_base), iovs[i].iov_len);
  engine_.reserve_output(total + (total / record + 2) * 64);  // a record adds 22 bytes; an alert 24
  for (std::size_t at = 0; at < plain.size(); at += record) {
    if (!engine_.write(std::string_view(plain).substr(at, record))) {
      sent.error = EPROTO;
      return sent;
    }
  }
  if (last) engine_.close_notify();
  sent.encrypted = true;
  if (plain.capacity() > 1 << 20) std::string().swap(plain);
  const std::size_t before = sent.bytes;
  sent = flush_locked();
  sent.bytes += before;
  sent.encrypted = true;
  return sent;
}

}  // namespace chat
