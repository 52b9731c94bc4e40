#include "server/poller.hpp"

#include "common/log.hpp"
#include "common/net.hpp"
#include "server/registry.hpp"
#include "server/session.hpp"

#include <poll.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

namespace chat {
namespace {

// How long the reader gets to notice a departure the probe has seen (see Poller::probe).
constexpr auto reader_grace = std::chrono::seconds(1);

std::string seen_by_poller(const std::error_code& ec, const Session& s) {
  return what_was_seen(ec) + " (poller, " + format_duration(Session::Clock::now() - s.last_received()) +
         " after last traffic)";
}

}  // namespace

std::vector<short> poll_sockets(std::span<const int> fds) {
  std::vector<pollfd> pfds;
  pfds.reserve(fds.size());
  for (int fd : fds) pfds.push_back(pollfd{fd, POLLIN | POLLRDHUP, 0});
  std::vector<short> revents(fds.size(), 0);
  if (fds.empty()) return revents;
  // One system call for all sockets, waiting at most 1 ms: PoshChat's Poll(1ms, SelectRead),
  // without paying the millisecond once per client.
  if (::poll(pfds.data(), pfds.size(), 1) < 0) {
    if (errno != EINTR) log_error("poll failed: ", std::strerror(errno));
    return revents;
  }
  for (std::size_t i = 0; i < pfds.size(); ++i) revents[i] = pfds[i].revents;
  return revents;
}

std::optional<std::error_code> confirm_departure(int fd, short revents) {
  if (revents == 0) return std::nullopt;
  if (revents & (POLLERR | POLLHUP | POLLNVAL)) {
    // The kernel has a verdict: SO_ERROR says which (ECONNRESET, ETIMEDOUT, ...).
    auto ec = pending_socket_error(fd);
    return ec ? ec : peek_for_departure(fd).value_or(asio::error::eof);
  }
  // Readable and nothing to read means the peer is gone... or that the reader thread just
  // consumed the bytes that made the socket readable. recv(MSG_PEEK) tells the two apart:
  // it returns 0 only at end of stream, an error only for a broken connection, and EAGAIN
  // when the reader simply got there first. (FIONREAD alone cannot: it is 0 in both cases.)
  int available = 0;
  if (::ioctl(fd, FIONREAD, &available) == 0 && available > 0) return std::nullopt;
  return peek_for_departure(fd);
}

std::vector<std::optional<std::error_code>> probe_sockets(std::span<const int> fds) {
  const auto revents = poll_sockets(fds);
  std::vector<std::optional<std::error_code>> results(fds.size());
  for (std::size_t i = 0; i < fds.size(); ++i) results[i] = confirm_departure(fds[i], revents[i]);
  return results;
}

Poller::Poller(const ServerConfig& config, SessionRegistry& sessions) : config_(config), sessions_(sessions) {}

Poller::~Poller() { stop(); }

void Poller::start() {
  thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

void Poller::stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();  // wakes the wait below through its stop_token
  thread_.join();
}

void Poller::run(std::stop_token stop) {
  set_thread_role("poller");
  while (!stop.stop_requested()) {
    {
      std::unique_lock lock(wait_mutex_);
      if (wake_.wait_for(lock, stop, config_.poll_interval, [] { return false; })) break;
    }
    if (stop.stop_requested()) break;
    try {
      sessions_.reap();
      sweep(sessions_.snapshot());
    } catch (const std::exception& e) {
      log_error("sweep failed: ", e.what());
    }
  }
}

void Poller::sweep(const std::vector<std::shared_ptr<Session>>& sessions) {
  probe(sessions);
  for (const auto& s : sessions) check_timers(*s);
}

void Poller::probe(const std::vector<std::shared_ptr<Session>>& sessions) {
  std::vector<int> fds;
  std::vector<Session*> probed;
  fds.reserve(sessions.size());
  probed.reserve(sessions.size());
  for (const auto& s : sessions) {
    if (s->ended()) continue;
    fds.push_back(s->native_handle());
    probed.push_back(s.get());
  }
  const auto revents = poll_sockets(fds);
  for (std::size_t i = 0; i < revents.size(); ++i) {
    Session& s = *probed[i];
    const auto verdict = s.confirm_gone(revents[i]);
    // The verdict is acted on only if the reader has not ended the session itself within
    // reader_grace. The reader sits in recv(2), and the kernel wakes it at once for a FIN,
    // an RST or a timeout, so normally it reports first and this probe is the backstop. The
    // grace matters when a peer sends its last lines ("QUIT gone home") and closes: from the
    // moment the reader's recv() has taken those bytes until it has handled them, the socket
    // looks gone (readable, 0 bytes available, MSG_PEEK sees the end). Ending the session then
    // would lose the lines and say `closed` instead of `quit`. Two sweeps were not enough on
    // a loaded machine (the reader was not scheduled for over 10 ms).
    if (!verdict) {
      s.suspected_gone_since.reset();
    } else if (!s.suspected_gone_since) {
      s.suspected_gone_since = Session::Clock::now();
    } else if (Session::Clock::now() - *s.suspected_gone_since >= reader_grace) {
      s.end(cause_of(*verdict), seen_by_poller(*verdict, s));
    }
  }
}

void Poller::check_timers(Session& s) {
  using Clock = Session::Clock;
  const auto now = Clock::now();
  if (const auto ended_at = s.ended_at()) {
    // A leaving client gets goodbye_timeout (2 s) to take its BYE; then the socket is shut down.
    if (!s.finished() && now - *ended_at > config_.goodbye_timeout) s.force_close();
    return;
  }
  if (!s.joined()) {
    if (now - s.accepted_at() > config_.handshake_timeout) {
      s.end(LeaveCause::timeout, "no nickname within " + format_duration(config_.handshake_timeout),
            "handshake-timeout");
    }
    return;
  }
  if (const auto stalled = s.write_stalled_since(); stalled && now - *stalled > config_.send_timeout) {
    s.end(LeaveCause::too_slow, "no write progress for " + format_duration(now - *stalled) + " (poller)");
    return;
  }
  const auto last = s.last_received();
  // The keepalive budget, checked here too. The kernel only sends keepalive probes while no
  // data is in flight: as soon as anything is queued to a dead peer (a PING, a message for
  // the room) it retransmits instead, and TCP_USER_TIMEOUT counts from the first
  // retransmission, so a peer gone quiet at 0 s would only time out at (time of the write) +
  // budget. Whatever the kernel is doing, "no ACK at all for the whole budget" means the
  // peer's host or the path to it is gone.
  if (config_.keepalive.enabled && now - last > config_.keepalive.budget()) {
    if (auto silent = no_ack_for_budget(s.native_handle(), config_.keepalive)) {
      s.end(LeaveCause::timeout, *silent + " (poller, " + format_duration(now - last) + " after last traffic)");
      return;
    }
  }
  // Heartbeat, protocol clients only: a person on nc cannot answer PING (keepalive covers them).
  if (s.mode() != Session::Mode::protocol) return;
  if (s.ping_sent_at && last >= *s.ping_sent_at) s.ping_sent_at.reset();  // any line answers
  if (!s.ping_sent_at) {
    if (now - last > config_.ping_interval) {
      s.send_ping("p" + std::to_string(next_token_++));
      s.ping_sent_at = now;
    }
  } else if (now - *s.ping_sent_at > config_.ping_timeout) {
    // No answer. If the peer's kernel did not even ACK the PING, the process is not the
    // problem: the host or the path is gone (as with --keepalive off and a pulled cable).
    if (auto unacked = ping_not_acked(s.native_handle(), now - *s.ping_sent_at)) {
      s.end(LeaveCause::timeout, *unacked + " (poller, " + format_duration(now - last) + " after last traffic)");
      return;
    }
    s.end(LeaveCause::no_pong, "no reply to PING within " + format_duration(config_.ping_timeout) + " (poller, " +
                                   format_duration(now - last) + " after last traffic)",
          "no-pong");
  }
}

}  // namespace chat
