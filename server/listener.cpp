#include "server/listener.hpp"

#include "common/log.hpp"
#include "server/registry.hpp"
#include "server/room.hpp"
#include "server/session.hpp"
#include "server/stats.hpp"
#include "server/writer.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <new>
#include <stdexcept>

namespace chat {

Listener::Listener(asio::io_context& io, const ServerConfig& config, Room& room, SessionRegistry& sessions,
                   WriterPool& writers, ServerStats& stats, WebSite* web, TlsServer* tls)
    : io_(io), config_(config), room_(room), sessions_(sessions), writers_(writers), stats_(stats), web_(web), tls_(tls),
      acceptor_(io) {
  const std::string where = config.bind + ":" + std::to_string(config.port);
  // A host name (--bind localhost) stands for one address or more: the first, IPv4 before
  // IPv6, is the one listened on. parse_server_args has resolved it once already, so this
  // fails only if the name has gone from /etc/hosts or DNS since, or the resolver could not be
  // asked then either.
  for (const auto& text : config.allow) {
    if (auto range = parse_address_range(text)) allow_.push_back(*range);  // (checked by parse_config)
  }
  std::string why;
  bind_addresses_ = resolve_host(config.bind, &why);
  if (bind_addresses_.empty()) throw std::runtime_error("cannot listen on " + where + ": " + why);
  std::error_code ec;
  const asio::ip::tcp::endpoint endpoint(bind_addresses_.front(), config.port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  // Non-blocking: accept only after poll(2) said a connection waits, and a connection that
  // vanished in between (EAGAIN) must not block the thread that stop() needs to wake.
  if (!ec) acceptor_.non_blocking(true, ec);
  if (ec) throw std::system_error(ec, "cannot listen on " + where);
  endpoint_ = acceptor_.local_endpoint();
  reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

Listener::~Listener() {
  stop();
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

void Listener::start() {
  thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

void Listener::stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  wakeup_.signal();
  thread_.join();
}

void Listener::run(std::stop_token stop) {
  set_thread_role("listener");
  while (!stop.stop_requested()) {
    std::array<pollfd, 2> fds{{{acceptor_.native_handle(), POLLIN, 0}, {wakeup_.fd(), POLLIN, 0}}};
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      log_error("poll failed: ", std::strerror(errno));
      break;
    }
    if (fds[1].revents) break;
    if (fds[0].revents) {
      try {
        accept_one();
      } catch (const std::exception& e) {
        log_error("accept: ", e.what());
      }
    }
  }
  log_debug("stopped");
}

void Listener::accept_one() {
  asio::ip::tcp::socket socket(io_);
  std::error_code ec;
  acceptor_.accept(socket, ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again || ec == asio::error::connection_aborted) {
    return;
  }
  // By errno value: Asio's system category does not compare equal to std::errc here.
  if (ec.value() == EMFILE || ec.value() == ENFILE) {
    refuse_out_of_descriptors(ec);
    return;
  }
  if (ec) {
    // Anything else (ENOBUFS, ENOMEM, ...): wait a little (interruptibly) instead of spinning.
    log_warn("accept failed: ", ec.message());
    pollfd wake{wakeup_.fd(), POLLIN, 0};
    ::poll(&wake, 1, 100);
    return;
  }
  if (out_of_descriptors_) {
    log_info("descriptors available again; ", refused_for_descriptors_, " clients were sent BYE server-busy meanwhile");
    out_of_descriptors_ = false;
    refused_for_descriptors_ = 0;
  }
  socket.non_blocking(false, ec);  // the reader blocks in recv(2); writers pass MSG_DONTWAIT
  const auto peer = socket.remote_endpoint(ec);
  // --allow: the door, before anything else is spent on the connection.
  if (!allow_.empty() && std::none_of(allow_.begin(), allow_.end(),
                                      [&](const AddressRange& r) { return r.contains(peer.address()); })) {
    log_info("refused ", peer.address().to_string(), ":", peer.port(), ": not in --allow");
    ++stats_.refused_not_allowed;
    refuse(socket.native_handle(), "BYE not-allowed\n");
    return;
  }
  // A banned address (BAN, server/bans.hpp): told until when, and nothing else.
  if (const auto ban = room_.bans().for_address(peer.address())) {
    const auto until = Bans::until_text(ban->until_ms, std::chrono::system_clock::now());
    log_info("refused ", peer.address().to_string(), ":", peer.port(), ": banned until ", until, " (", ban->nick,
             " by ", ban->by, ")");
    ++stats_.refused_banned;
    refuse(socket.native_handle(), "BYE banned until " + until + "\n");
    return;
  }
  const auto live = sessions_.live(peer.address());
  if (live.all >= config_.max_clients) {
    log_warn("refused ", peer.address().to_string(), ":", peer.port(), ": ", config_.max_clients,
             " clients already connected");
    ++stats_.refused_full;
    refuse(socket.native_handle(), "BYE server-full\n");
    return;
  }
  if (config_.max_per_ip != 0 && live.from_address >= config_.max_per_ip) {
    log_warn("refused ", peer.address().to_string(), ":", peer.port(), ": ", live.from_address,
             " connections from that address already (--max-per-ip ", config_.max_per_ip, ")");
    ++stats_.refused_per_ip;
    refuse(socket.native_handle(), "BYE too-many\n");
    return;
  }
  const auto kec = apply_keepalive(socket, config_.keepalive);
  if (kec) log_warn("cannot set keepalive: ", kec.message());
  if (tracing()) {
    log_trace("accept ", peer.address().to_string(), ":", peer.port(), ": ",
              kec ? "keepalive could not be set: " + kec.message()
              : config_.keepalive.enabled
                  ? "SO_KEEPALIVE on, TCP_KEEPIDLE " + format_duration(config_.keepalive.idle) + ", TCP_KEEPINTVL " +
                        format_duration(config_.keepalive.interval) + ", TCP_KEEPCNT " +
                        std::to_string(config_.keepalive.count) + ", TCP_USER_TIMEOUT " +
                        format_duration(config_.keepalive.budget())
                  : std::string("keepalive off, no TCP_USER_TIMEOUT"));
  }
  // The kernel's share of --send-queue: past it a write takes nothing more, the writer parks the
  // socket, and what waits beyond is in the Outbox, counted.
  if (const auto lec = limit_unsent(socket.native_handle(), config_.kernel_unsent_limit())) {
    log_warn("cannot set TCP_NOTSENT_LOWAT: ", lec.message());
  }
  // Chat lines are small and wanted now: without this, Nagle holds a line back until the
  // previous one is acknowledged, up to a delayed-ACK time (40 ms or more) per line.
  socket.set_option(asio::ip::tcp::no_delay(true), ec);
  const ClientId id{next_id_++};
  std::shared_ptr<Session> session;
  try {
    session = std::make_shared<Session>(id, std::move(socket), config_, room_, stats_, web_, tls_);
  } catch (const std::bad_alloc&) {
    log_error("refused ", peer.address().to_string(), ":", peer.port(), ": out of memory");
    ++stats_.refused_busy;
    if (socket.is_open()) refuse(socket.native_handle(), "BYE server-busy\n");
    return;
  }
  // (At debug: the "joined from" line names the address of everyone who joins, and the end of a
  // connection that never did says where it came from.)
  log_debug("accepted ", session->peer(), " as ", to_string(id));
  sessions_.add(session);
  ++stats_.connected;
  ++stats_.accepted;
  writers_.adopt(session);
  try {
    session->start();
  } catch (const std::system_error& e) {
    // No thread for its reader (or no memory for one): the session has ended itself with
    // BYE server-busy, which its writer sends; the poller reaps it. The server goes on.
    ++stats_.refused_busy;
    log_error("cannot serve ", session->peer(), ": ", e.what(), "; sent BYE server-busy");
  }
}

void Listener::refuse_out_of_descriptors(std::error_code why) {
  if (!out_of_descriptors_) {
    out_of_descriptors_ = true;  // logged once per episode, not once per waiting client
    log_warn("out of file descriptors (", why.message(), "): new clients get BYE server-busy until some leave");
  }
  // The reserve-descriptor trick: give up the spare descriptor, accept the waiting client on
  // it, tell it why, close it, and take the spare back. Without it the client would wait
  // unanswered in the backlog, and poll(2) would report it again at once, forever.
  if (reserve_fd_ >= 0) {
    ::close(reserve_fd_);
    reserve_fd_ = -1;
    const int fd = ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      ++refused_for_descriptors_;
      ++stats_.refused_busy;
      refuse(fd, "BYE server-busy\n");
      ::close(fd);
    }
    reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && reserve_fd_ >= 0) return;
  }
  // Not even that (the spare is gone, or the system's table is full): wait a little,
  // interruptibly, instead of spinning on a connection we cannot take.
  pollfd wake{wakeup_.fd(), POLLIN, 0};
  ::poll(&wake, 1, 100);
  if (reserve_fd_ < 0) reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void Listener::refuse(int fd, std::string_view bye) {
  // MSG_DONTWAIT: a fresh socket's send buffer is empty, but the listener must never block.
  ::send(fd, bye.data(), bye.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  ::shutdown(fd, SHUT_WR);
  // What the client already sent is read and dropped (at most 64 KiB): closing a socket with
  // unread data sends an RST instead of a FIN, and the RST may overtake the BYE.
  std::array<char, 4096> sink;
  for (int i = 0; i < 16 && ::recv(fd, sink.data(), sink.size(), MSG_DONTWAIT) > 0; ++i) {
  }
}

}  // namespace chat
