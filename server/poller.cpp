#include "server/poller.hpp"

#include "common/log.hpp"
#include "common/net.hpp"
#include "server/registry.hpp"
#include "server/session.hpp"
#include "server/stats.hpp"

#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <utility>

namespace chat {
namespace {

// How long the reader gets to notice a departure the probe has seen (see Poller::probe).
constexpr auto reader_grace = std::chrono::seconds(1);

// A sweep reads a few cache lines of every session, and 100 ms after the last sweep they have
// left the caches: at 10,000 sessions, waiting for them one after another was most of a sweep.
// So each loop asks for the lines of the session this many places ahead while it works on this
// one, and the memory fetches overlap.
constexpr std::size_t prefetch_ahead = 8;

// The lines of `s` that check_timers() reads: the session's first ones (the poller's and
// writer's slots, its flags, its clocks) and the Outbox's counters.
void prefetch(Session& s) {
  const auto* first = reinterpret_cast<const char*>(&s);
  __builtin_prefetch(first);
  __builtin_prefetch(first + 64);
  __builtin_prefetch(first + 128);
  __builtin_prefetch(&s.outbox());
}

// This thread's CPU time: a sweep's wall time minus this is time the poller waited (the 1 ms
// probe) or was not scheduled.
std::chrono::nanoseconds thread_cpu_time() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return std::chrono::seconds(t.tv_sec) + std::chrono::nanoseconds(t.tv_nsec);
}

// "POLLIN|POLLRDHUP": a probe's revents, for trace lines.
std::string revents_text(short revents) {
  std::string text;
  for (auto [bit, name] : {std::pair{POLLIN, "POLLIN"}, std::pair{POLLRDHUP, "POLLRDHUP"}, std::pair{POLLERR, "POLLERR"},
                           std::pair{POLLHUP, "POLLHUP"}, std::pair{POLLNVAL, "POLLNVAL"}}) {
    if (revents & bit) text.append(text.empty() ? "" : "|").append(name);
  }
  return text.empty() ? "none" : text;
}

// Bytes waiting in `fd`'s receive queue (FIONREAD), for trace lines.
int bytes_available(int fd) {
  int available = 0;
  return ::ioctl(fd, FIONREAD, &available) == 0 ? available : -1;
}

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

Poller::Poller(const ServerConfig& config, SessionRegistry& sessions, ServerStats& stats)
    : config_(config), sessions_(sessions), stats_(stats), using_epoll_(config.probe == ProbeMethod::epoll) {
  if (config_.probe != ProbeMethod::poll) {
    probe_epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (probe_epoll_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  }
}

Poller::~Poller() {
  stop();
  if (probe_epoll_ >= 0) ::close(probe_epoll_);
}

void Poller::start() {
  thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

void Poller::stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();  // wakes the wait below through its stop_token
  thread_.join();
  snapshot_.clear();
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
      const auto started = Session::Clock::now();
      const auto cpu_started = thread_cpu_time();
      // Reaping scans every session, so it waits until one has finished.
      if (stats_.unreaped.load() > 0) {
        auto reaped = sessions_.reap();
        // Out of the epoll set before anyone can destroy them: a session that finished between
        // two sweeps was never seen ended by probe(), and once the poller lets go, a writer may
        // hold the last reference and destroy it while epoll_wait still reports its socket.
        for (const auto& s : reaped) leave_probe_set(*s);
        stats_.unreaped -= reaped.size();
        stats_.connected -= reaped.size();
      }
      sessions_.refresh(snapshot_, snapshot_version_);
      sweep(snapshot_);
      stats_.record_sweep(Session::Clock::now() - started, thread_cpu_time() - cpu_started);
    } catch (const std::exception& e) {
      log_error("sweep failed: ", e.what());
    }
  }
}

void Poller::sweep(const std::vector<std::shared_ptr<Session>>& sessions) {
  probe(sessions);
  std::uint64_t largest = 0;
  const auto now = Session::Clock::now();  // one clock read for all: 10,000 reads cost a millisecond
  for (std::size_t i = 0; i < sessions.size(); ++i) {
    if (i + prefetch_ahead < sessions.size()) prefetch(*sessions[i + prefetch_ahead]);
    largest = std::max(largest, check_timers(*sessions[i], now));
  }
  // The PINGs queued above, sent now: each writer wakes once, after the sweep, not on the first
  // of a few hundred PINGs, to contend with the rest of it for the machine's cores.
  for (auto* s : pinged_) s->wake_writer();
  pinged_.clear();
  stats_.backlog_now = largest;
  stats_.note_backlog(largest);
}

void Poller::leave_probe_set(Session& s) {
  if (s.probe_slot.in_probe_set) ::epoll_ctl(probe_epoll_, EPOLL_CTL_DEL, s.native_handle(), nullptr);
  s.probe_slot.in_probe_set = false;
}

std::vector<short> Poller::readiness(const std::vector<Session*>& probed) {
  if (config_.probe == ProbeMethod::auto_) {
    // The same question either way; only its cost differs. A small room is probed as PoshChat
    // did (one poll(2) over all its sockets); a large one through epoll, whose cost grows with
    // the sockets that are ready, not with all of them. Sockets stay in the epoll set while poll
    // is used (they cost little there: a callback per packet; an ended one is taken out in probe()).
    const bool was_epoll = using_epoll_;
    if (!using_epoll_ && probed.size() > config_.probe_auto_threshold) using_epoll_ = true;
    if (using_epoll_ && probed.size() < config_.probe_auto_threshold * 3 / 4) using_epoll_ = false;
    if (using_epoll_ != was_epoll) {
      log_info("poller: ", probed.size(), " sockets, probing with ", using_epoll_ ? "epoll" : "poll(2)",
               " (--probe auto switches at ", config_.probe_auto_threshold, ")");
    }
  }
  stats_.probe_epoll = using_epoll_;
  if (!using_epoll_) {
    std::vector<int> fds;
    fds.reserve(probed.size());
    for (auto* s : probed) fds.push_back(s->native_handle());
    return poll_sockets(fds);
  }
  // The same question through epoll: every probed socket is in the set (added once, on its
  // first sweep), and one epoll_wait with a 1 ms timeout returns those readable within that
  // millisecond. The kernel does work per ready socket, not per socket, which is what makes a
  // sweep over 10,000 idle clients cheap. Same flags: EPOLLIN == POLLIN, EPOLLRDHUP == POLLRDHUP.
  for (auto* s : probed) {
    if (s->probe_slot.in_probe_set) continue;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = s;
    if (::epoll_ctl(probe_epoll_, EPOLL_CTL_ADD, s->native_handle(), &ev) == 0) {
      s->probe_slot.in_probe_set = true;
    } else {
      log_error("epoll_ctl failed: ", std::strerror(errno));
    }
  }
  events_.resize(std::max<std::size_t>(probed.size(), 1));
  const int n = ::epoll_wait(probe_epoll_, events_.data(), static_cast<int>(events_.size()), 1);
  if (n < 0 && errno != EINTR) log_error("epoll_wait failed: ", std::strerror(errno));
  for (int k = 0; k < n; ++k) static_cast<Session*>(events_[k].data.ptr)->probe_slot.probe_revents = static_cast<short>(events_[k].events);
  std::vector<short> revents(probed.size(), 0);
  for (std::size_t i = 0; i < probed.size(); ++i) revents[i] = std::exchange(probed[i]->probe_slot.probe_revents, 0);
  return revents;
}

void Poller::probe(const std::vector<std::shared_ptr<Session>>& sessions) {
  if (tracing() && !sessions.empty()) {
    // Once a second, what the probe did meanwhile: a quiet socket is never mentioned otherwise,
    // and "never readable" is exactly what a pulled cable looks like to it.
    const auto now = Session::Clock::now();
    if (trace_since_ == Session::Clock::time_point{}) trace_since_ = now;
    if (now - trace_since_ >= std::chrono::seconds(1)) {
      log_trace("probe: ", trace_sweeps_, " sweeps of ", sessions.size(), " sockets in ",
                format_duration(now - trace_since_), ", ", trace_readable_, " readable");
      trace_since_ = now;
      trace_sweeps_ = 0;
      trace_readable_ = 0;
    }
    ++trace_sweeps_;
  }
  std::vector<Session*> probed;
  probed.reserve(sessions.size());
  for (std::size_t i = 0; i < sessions.size(); ++i) {
    if (i + prefetch_ahead < sessions.size()) {
      const auto* ahead = reinterpret_cast<const char*>(sessions[i + prefetch_ahead].get());
      __builtin_prefetch(ahead);
      __builtin_prefetch(ahead + 64);  // its flags and descriptor
    }
    const auto& s = sessions[i];
    if (s->ended()) {
      leave_probe_set(*s);  // before it can be reaped (closing the socket would also remove it)
      continue;
    }
    probed.push_back(s.get());
  }
  const auto revents = readiness(probed);
  for (std::size_t i = 0; i < revents.size(); ++i) {
    Session& s = *probed[i];
    const auto verdict = s.confirm_gone(revents[i]);
    if (revents[i] != 0) ++trace_readable_;
    if (revents[i] != 0 && tracing()) {
      // The probe's inputs and verdict, one line: readable within 1 ms, bytes available (FIONREAD),
      // and what recv(MSG_PEEK) (or SO_ERROR after POLLERR/POLLHUP) said.
      std::string decision;
      if (!verdict) {
        decision = "alive";
      } else if (!s.probe_slot.suspected_gone_since) {
        decision = "gone? the reader gets " + format_duration(reader_grace) + " to notice first";
      } else if (Session::Clock::now() - *s.probe_slot.suspected_gone_since >= reader_grace) {
        decision = "still gone after " + format_duration(Session::Clock::now() - *s.probe_slot.suspected_gone_since) +
                   " and the reader has not noticed: ends the session";
      } else {
        decision = "gone, waiting for the reader (" +
                   format_duration(Session::Clock::now() - *s.probe_slot.suspected_gone_since) + " of " +
                   format_duration(reader_grace) + ")";
      }
      log_trace("probe ", s.label(), ": readable (", revents_text(revents[i]), "), ",
                bytes_available(s.native_handle()), " bytes available, ",
                verdict ? "recv(MSG_PEEK): " + what_was_seen(*verdict) : std::string("peek: data or EAGAIN"), " -> ",
                decision);
    }
    // The verdict is acted on only if the reader has not ended the session itself within
    // reader_grace. The reader sits in recv(2), and the kernel wakes it at once for a FIN,
    // an RST or a timeout, so normally it reports first and this probe is the backstop. The
    // grace matters when a peer sends its last lines ("QUIT gone home") and closes: from the
    // moment the reader's recv() has taken those bytes until it has handled them, the socket
    // looks gone (readable, 0 bytes available, MSG_PEEK sees the end). Ending the session then
    // would lose the lines and say `closed` instead of `quit`. Two sweeps were not enough on
    // a loaded machine (the reader was not scheduled for over 10 ms).
    if (!verdict) {
      if (s.probe_slot.suspected_gone_since) s.probe_slot.suspected_gone_since.reset();
    } else if (!s.probe_slot.suspected_gone_since) {
      s.probe_slot.suspected_gone_since = Session::Clock::now();
    } else if (Session::Clock::now() - *s.probe_slot.suspected_gone_since >= reader_grace) {
      s.end(cause_of(*verdict), seen_by_poller(*verdict, s));
    }
  }
}

std::uint64_t Poller::check_timers(Session& s, Session::Clock::time_point now) {
  if (s.ended()) {  // an atomic: the session's lock is taken only for the few that ended
    // A leaving client gets goodbye_timeout (2 s) to take its BYE; then the socket is shut down.
    const auto ended_at = s.ended_at();
    if (ended_at && !s.finished() && now - *ended_at > config_.goodbye_timeout) s.force_close();
    return 0;
  }
  if (!s.joined()) {
    if (now - s.accepted_at() > config_.handshake_timeout) {
      const char* what = s.tls_handshaking() ? "no TLS handshake" : "no nickname";
      if (tracing()) log_trace("handshake ", s.label(), ": ", what, " within ", format_duration(now - s.accepted_at()));
      s.end(LeaveCause::timeout, std::string(what) + " within " + format_duration(config_.handshake_timeout),
            "handshake-timeout");
    }
    return 0;
  }
  if (const auto stalled = s.write_stalled_since(); stalled && now - *stalled > config_.send_timeout) {
    if (tracing()) {
      log_trace("send ", s.label(), ": the socket has taken nothing for ", format_duration(now - *stalled),
                " (send-timeout ", format_duration(config_.send_timeout), "), ", s.outbox().backlog(),
                " bytes waiting -> too-slow");
    }
    s.end(LeaveCause::too_slow, "no write progress for " + format_duration(now - *stalled) + " (poller)");
    return 0;
  }
  // The writers check this rule whenever they serve the client; this catches one they have not
  // served since it fell behind. While its socket is full, what the kernel holds unsent for it
  // is asked here (one ioctl per stalled client), in place of the writer's last sample: the
  // client may have read some. Only the writer stores the sample (a store here could land after
  // the writer's reset to 0 and outlive the stall).
  const auto full_since = s.write_stalled_since();
  const bool stalled = full_since.has_value();
  const auto sampled = s.outbox().kernel_bytes();
  const auto kernel = stalled ? unsent_bytes(s.native_handle()) : sampled;
  const auto queued = s.outbox().backlog();
  const auto backlog = queued - std::min(queued, sampled) + kernel;
  if (tracing() && stalled && backlog != s.probe_slot.traced_backlog) {
    // The bytes behind, as they grow towards --send-queue (or shrink when the client reads).
    log_trace("send ", s.label(), ": ", backlog, " bytes behind of send-queue ", config_.send_queue, " (", kernel,
              " in the kernel, ", backlog - std::min(backlog, kernel), " queued here); socket full for ",
              format_duration(now - *full_since));
  }
  s.probe_slot.traced_backlog = stalled ? backlog : 0;
  if (backlog > config_.send_queue) {
    if (tracing()) log_trace("send ", s.label(), ": ", backlog, " bytes behind > send-queue ", config_.send_queue, " -> too-slow");
    s.end(LeaveCause::too_slow, "send queue over " + std::to_string(config_.send_queue) + " bytes (poller)");
    return backlog;
  }
  const auto last = s.last_received();
  // The keepalive budget, checked here too. The kernel only sends keepalive probes while no
  // data is in flight: as soon as anything is queued to a dead peer (a PING, a message for
  // the room) it retransmits instead, and TCP_USER_TIMEOUT counts from the first
  // retransmission, so a peer gone quiet at 0 s would only time out at (time of the write) +
  // budget. Whatever the kernel is doing, "no ACK at all for the whole budget" means the
  // peer's host or the path to it is gone.
  // A quiet client whose kernel ACKs keepalive probes stays past the budget for as long as it
  // is quiet (a person on nc, a client with heartbeats off): asking TCP_INFO for each of them on
  // every sweep cost 20 ms a sweep with 10,000 of them, so each is asked again only when its
  // budget could have run out, counting from the last ACK it reported.
  if (config_.keepalive.enabled && now - last > config_.keepalive.budget() && now >= s.probe_slot.ack_check_due) {
    std::chrono::milliseconds ack_age{0};
    const auto health = tcp_health(s.native_handle());
    auto silent = no_ack_for_budget(health, config_.keepalive, &ack_age);
    if (tracing()) {
      log_trace("keepalive ", s.label(), ": quiet for ", format_duration(now - last), " > budget ",
                format_duration(config_.keepalive.budget()), " (", format_keepalive(config_.keepalive), "); ",
                describe_tcp_health(health), " -> ",
                silent ? std::string("timeout: its kernel has ACKed nothing for the whole budget")
                       : "alive: its kernel ACKs; next check in " +
                             format_duration(config_.keepalive.budget() - ack_age));
    }
    if (silent) {
      s.end(LeaveCause::timeout, *silent + " (poller, " + format_duration(now - last) + " after last traffic)");
      return backlog;
    }
    s.probe_slot.ack_check_due = now + (config_.keepalive.budget() - ack_age);
  }
  // Heartbeat, protocol clients only: a person on nc cannot answer PING (keepalive covers them).
  if (s.mode() != Session::Mode::protocol) return backlog;
  // A client whose reader stopped reading (backpressure) or waits before its next line (flood
  // control) is sending, not silent: its lines wait in its socket. Whether it reads is the
  // too-slow rules' business, how fast it sends the flood rules'.
  if (s.reader_paused() || s.reader_throttled()) {
    s.probe_slot.ping_sent_at.reset();
    return backlog;
  }
  if (s.probe_slot.ping_sent_at && last >= *s.probe_slot.ping_sent_at) {  // any line answers
    if (tracing()) log_trace("heartbeat ", s.label(), ": a line ", format_duration(last - *s.probe_slot.ping_sent_at), " after the PING: alive");
    s.probe_slot.ping_sent_at.reset();
  }
  if (config_.ping_interval == Millis{0}) return backlog;  // --ping-interval off
  if (!s.probe_slot.ping_sent_at) {
    if (now - last > config_.ping_interval) {
      const auto token = "p" + std::to_string(next_token_++);
      if (tracing()) {
        log_trace("heartbeat ", s.label(), ": quiet for ", format_duration(now - last), " > ping-interval ",
                  format_duration(config_.ping_interval), " -> PING ", token);
      }
      s.queue_ping(token);
      pinged_.push_back(&s);  // alive until the sweep ends: snapshot_ holds it
      s.probe_slot.ping_sent_at = now;
    }
  } else if (now - *s.probe_slot.ping_sent_at > config_.ping_timeout) {
    // No answer. If the peer's kernel did not even ACK the PING, the process is not the
    // problem: the host or the path is gone (as with --keepalive off and a pulled cable).
    const auto health = tcp_health(s.native_handle());
    auto unacked = ping_not_acked(health, now - *s.probe_slot.ping_sent_at);
    if (tracing()) {
      log_trace("heartbeat ", s.label(), ": no line for ", format_duration(now - *s.probe_slot.ping_sent_at),
                " after the PING > ping-timeout ", format_duration(config_.ping_timeout), "; ",
                describe_tcp_health(health), " -> ",
                unacked ? "timeout: not even its kernel ACKed the PING"
                        : "no-pong: its kernel ACKs, its process does not answer");
    }
    if (unacked) {
      s.end(LeaveCause::timeout, *unacked + " (poller, " + format_duration(now - last) + " after last traffic)");
      return backlog;
    }
    s.end(LeaveCause::no_pong, "no reply to PING within " + format_duration(config_.ping_timeout) + " (poller, " +
                                   format_duration(now - last) + " after last traffic)",
          "no-pong");
  }
  return backlog;
}

}  // namespace chat
