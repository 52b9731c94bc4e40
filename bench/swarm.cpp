#include "bench/swarm.hpp"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <system_error>

namespace chat::bench {
namespace {

constexpr std::size_t scratch_size = 256 * 1024;
constexpr std::size_t reads_per_event = 4;  // then the other connections get their turn
constexpr int max_events = 1024;

[[noreturn]] void throw_errno(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

// Raises the soft RLIMIT_NOFILE so that `needed` more descriptors fit. False if they cannot.
bool fit_descriptors(std::size_t needed) {
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) != 0) return false;
  if (files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
    getrlimit(RLIMIT_NOFILE, &files);
  }
  return files.rlim_cur == RLIM_INFINITY || files.rlim_cur >= needed + 64;
}

}  // namespace

Swarm::Swarm(SwarmOptions options)
    : options_(std::move(options)), dialect_(dialect_for(options_.protocol)), scratch_(options_.max_frame + scratch_size) {
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address_);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address_);
  if (::inet_pton(AF_INET, options_.host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(options_.port);
    address_size_ = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, options_.host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(options_.port);
    address_size_ = sizeof(sockaddr_in6);
  } else {
    throw std::runtime_error("--host " + options_.host + ": not a numeric IPv4 or IPv6 address");
  }
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw_errno("epoll_create1");
}

Swarm::~Swarm() {
  for (auto& c : clients_) {
    if (c.fd >= 0) ::close(c.fd);
  }
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

void Swarm::add_clients(std::size_t n) {
  std::vector<std::size_t> ids(n);
  for (std::size_t k = 0; k < n; ++k) ids[k] = clients_.size() + k;
  add_clients(ids);
}

void Swarm::add_clients(const std::vector<std::size_t>& ids) {
  if (!fit_descriptors(ids.size() + clients_.size())) {
    throw std::runtime_error("cannot open " + std::to_string(clients_.size() + ids.size()) +
                             " connections: RLIMIT_NOFILE is too low (raise the hard limit, e.g. ulimit -Hn)");
  }
  for (const auto id : ids) {
    ids_.push_back(id);
    nicks_.push_back(options_.nick_prefix + std::to_string(id));
  }
  clients_.resize(clients_.size() + ids.size());
}

double Swarm::cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

void Swarm::start_connects() {
  while (next_to_start_ < clients_.size() &&
         (options_.max_in_progress == 0 || connecting_ < options_.max_in_progress)) {
    const std::size_t i = next_to_start_++;
    Client& c = clients_[i];
    c.started = Clock::now();
    ++connecting_;
    c.fd = ::socket(address_.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) {
      end(i, std::string("socket: ") + std::strerror(errno));
      continue;
    }
    // Lines go out as soon as they are queued: latency is what the benchmark measures.
    const int one = 1;
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (const char* rb = std::getenv("CHATBENCH_RCVBUF")) {
      const int size = std::atoi(rb);
      ::setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    }
    c.state = State::connecting;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.u64 = i;
    c.watching_out = true;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
      end(i, std::string("epoll_ctl: ") + std::strerror(errno));
      continue;
    }
    if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&address_), address_size_) != 0 && errno != EINPROGRESS) {
      end(i, std::string("connect: ") + std::strerror(errno));
      continue;
    }
  }
}

void Swarm::on_connected(std::size_t i) {
  Client& c = clients_[i];
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    end(i, std::string("connect: ") + std::strerror(err));
    return;
  }
  c.state = State::handshake;
  watch_out(i, false);
  if (dialect_.joined_on_connect()) {
    set_joined(i, Clock::now());
  } else {
    send(i, dialect_.greeting(nick(i)));
  }
}

void Swarm::set_joined(std::size_t i, Clock::time_point now) {
  Client& c = clients_[i];
  if (c.state == State::joined || c.state == State::ended) return;
  c.state = State::joined;
  c.was_joined = true;
  c.joined_at = now;
  --connecting_;
  ++joined_;
  ++ever_joined_;
  last_join_ = now;
}

void Swarm::watch_out(std::size_t i, bool on) {
  Client& c = clients_[i];
  if (c.watching_out == on || c.fd < 0) return;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0u);
  ev.data.u64 = i;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
  c.watching_out = on;
}

void Swarm::send(std::size_t i, std::string_view bytes) {
  Client& c = clients_[i];
  if (c.state == State::ended || bytes.empty()) return;
  c.out.append(bytes);
  flush(i);
}

void Swarm::flush(std::size_t i) {
  Client& c = clients_[i];
  if (c.state == State::ended || c.state == State::connecting || c.state == State::waiting) return;
  while (c.out_pos < c.out.size()) {
    const ssize_t n = ::send(c.fd, c.out.data() + c.out_pos, c.out.size() - c.out_pos, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_pos += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    end(i, std::string("send: ") + std::strerror(errno));
    return;
  }
  if (c.out_pos == c.out.size()) {
    c.out.clear();
    c.out_pos = 0;
    watch_out(i, false);
  } else {
    if (c.out_pos > 64 * 1024 && c.out_pos > c.out.size() / 2) {
      c.out.erase(0, c.out_pos);
      c.out_pos = 0;
    }
    watch_out(i, true);
  }
}

void Swarm::close(std::size_t i) { end(i, "closed by chatbench"); }

void Swarm::end(std::size_t i, std::string reason) {
  Client& c = clients_[i];
  if (c.state == State::ended) return;
  if (c.state == State::joined) {
    --joined_;
    ++dropped_;
  } else {
    if (c.state != State::waiting) --connecting_;
    ++refused_;
  }
  c.state = State::ended;
  if (c.end_reason.empty()) c.end_reason = std::move(reason);
  if (c.fd >= 0) {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    c.fd = -1;
  }
  c.in.clear();
  c.in.shrink_to_fit();
  c.out.clear();
  c.out.shrink_to_fit();
  ++ended_;
  if (on_end) on_end(i);
}

void Swarm::handle_frame(std::size_t i, std::string_view frame, Clock::time_point now) {
  Client& c = clients_[i];
  const Seen seen = dialect_.classify(frame);
  switch (seen.kind) {
    case Seen::Kind::message:
    case Seen::Kind::stats:
      if (on_frame) on_frame(i, seen, now);
      return;
    case Seen::Kind::ping:
      send(i, dialect_.pong(seen.token));
      return;
    case Seen::Kind::welcomed:
      if (c.welcomed) return;
      c.welcomed = true;
      send(i, dialect_.after_welcome());
      return;
    case Seen::Kind::roster:
      if (c.state != State::handshake) return;
      c.roster += seen.count;
      if (dialect_.roster_in_one_line() && (c.welcomed || !dialect_.welcomes())) set_joined(i, now);
      return;
    case Seen::Kind::roster_end:
      if (c.state == State::handshake && c.welcomed) set_joined(i, now);
      return;
    case Seen::Kind::member_joined:
      if (c.state != State::joined) return;  // IRC: our own JOIN comes before the NAMES
      ++c.chatter;
      last_chatter_ = now;
      return;
    case Seen::Kind::member_left:
      ++c.left_seen;
      return;
    case Seen::Kind::error:
      if (c.state == State::joined) {
        if (on_frame) on_frame(i, seen, now);
        return;
      }
      [[fallthrough]];
    case Seen::Kind::refused:
      if (c.end_reason.empty()) c.end_reason = std::string(frame.substr(0, 200));
      // chatserver's ERROR nick-in-use and the like leave the connection open: a benchmark
      // client has no second nickname, so it ends here.
      end(i, {});
      return;
    case Seen::Kind::other:
      return;
  }
}

void Swarm::on_readable(std::size_t i) {
  for (std::size_t round = 0; round < reads_per_event; ++round) {
    Client& c = clients_[i];
    if (c.state == State::ended) return;
    // A frame left incomplete by the last read goes to the front of the scratch buffer and the
    // read lands right behind it: only that piece is copied, never the bulk of the data.
    const std::size_t carried = c.in.size();
    std::memcpy(scratch_.data(), c.in.data(), carried);
    const ssize_t n = ::recv(c.fd, scratch_.data() + carried, scratch_.size() - carried, 0);
    if (n == 0) {
      end(i, "connection closed by the server");
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      end(i, std::string("recv: ") + std::strerror(errno));
      return;
    }
    const auto now = Clock::now();
    const std::string_view data(scratch_.data(), carried + static_cast<std::size_t>(n));
    std::size_t used = 0;
    while (used < data.size()) {
      std::string_view frame;
      std::size_t consumed = 0;
      if (!dialect_.next_frame(data.substr(used), options_.max_frame, frame, consumed)) break;
      if (consumed == 0) {
        end(i, "a frame over " + std::to_string(options_.max_frame) + " bytes, or out of step");
        return;
      }
      used += consumed;
      handle_frame(i, frame, now);
      if (clients_[i].state == State::ended) return;
    }
    clients_[i].in.assign(data.substr(used));
    if (static_cast<std::size_t>(n) < scratch_.size() - carried) return;  // drained
  }
}

void Swarm::run_once(Clock::time_point deadline) {
  check_interrupted();
  start_connects();
  epoll_event events[max_events];
  // epoll_pwait2 takes a timeout in nanoseconds: a paced sender's next message is due in less
  // than a millisecond, which epoll_wait cannot express.
  const auto left = std::clamp<Clock::duration>(deadline - Clock::now(), Clock::duration::zero(), poll_slice);
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
  const timespec timeout{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  const int ready = ::epoll_pwait2(epoll_fd_, events, max_events, &timeout, nullptr);
  if (ready < 0 && errno != EINTR) throw_errno("epoll_pwait2");
  for (int k = 0; k < ready; ++k) {
    const auto i = static_cast<std::size_t>(events[k].data.u64);
    const auto ev = events[k].events;
    if (clients_[i].state == State::ended) continue;
    if (clients_[i].state == State::connecting) {
      on_connected(i);
      if (clients_[i].state == State::ended) continue;
    }
    if (ev & EPOLLOUT) flush(i);
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(i);
  }
  start_connects();
  check_interrupted();
}

bool Swarm::run_until(const std::function<bool()>& done, Clock::time_point deadline) {
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    run_once(deadline);
  }
  return true;
}

}  // namespace chat::bench
