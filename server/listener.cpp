#include "server/listener.hpp"

#include "common/log.hpp"
#include "server/registry.hpp"
#include "server/session.hpp"
#include "server/stats.hpp"
#include "server/writer.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <array>

namespace chat {

Listener::Listener(asio::io_context& io, const ServerConfig& config, Room& room, SessionRegistry& sessions,
                   WriterPool& writers, ServerStats& stats)
    : io_(io), config_(config), room_(room), sessions_(sessions), writers_(writers), stats_(stats), acceptor_(io) {
  const std::string where = config.bind + ":" + std::to_string(config.port);
  std::error_code ec;
  const auto address = asio::ip::make_address(config.bind, ec);
  if (ec) throw std::system_error(ec, "cannot listen on " + where + ": bad address");
  const asio::ip::tcp::endpoint endpoint(address, config.port);
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  // Non-blocking: accept only after poll(2) said a connection waits, and a connection that
  // vanished in between (EAGAIN) must not block the thread that stop() needs to wake.
  if (!ec) acceptor_.non_blocking(true, ec);
  if (ec) throw std::system_error(ec, "cannot listen on " + where);
  endpoint_ = acceptor_.local_endpoint();
}

Listener::~Listener() { stop(); }

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
  if (ec) {
    // EMFILE and friends: wait a little (interruptibly) instead of spinning on a full table.
    log_warn("accept failed: ", ec.message());
    pollfd wake{wakeup_.fd(), POLLIN, 0};
    ::poll(&wake, 1, 100);
    return;
  }
  socket.non_blocking(false, ec);  // the reader blocks in recv(2); writers pass MSG_DONTWAIT
  if (sessions_.live() >= config_.max_clients) {
    refuse_full(socket);
    return;
  }
  if (auto kec = apply_keepalive(socket, config_.keepalive)) log_warn("cannot set keepalive: ", kec.message());
  // Chat lines are small and wanted now: without this, Nagle holds a line back until the
  // previous one is acknowledged, up to a delayed-ACK time (40 ms or more) per line.
  socket.set_option(asio::ip::tcp::no_delay(true), ec);
  const ClientId id{next_id_++};
  auto session = std::make_shared<Session>(id, std::move(socket), config_, room_, stats_);
  log_info("accepted ", session->peer(), " as ", to_string(id));
  sessions_.add(session);
  ++stats_.connected;
  ++stats_.accepted;
  writers_.adopt(session);
  session->start();  // on failure it has ended itself; the poller reaps it
}

void Listener::refuse_full(asio::ip::tcp::socket& socket) {
  static constexpr std::string_view bye = "BYE server-full\n";
  std::error_code ec;
  const auto peer = socket.remote_endpoint(ec);
  log_warn("refused ", peer.address().to_string(), ":", peer.port(), ": ", config_.max_clients,
           " clients already connected");
  // MSG_DONTWAIT: a fresh socket's send buffer is empty, but the listener must never block.
  ::send(socket.native_handle(), bye.data(), bye.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  ::shutdown(socket.native_handle(), SHUT_WR);
  socket.close(ec);
}

}  // namespace chat
