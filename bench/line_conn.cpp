#include "bench/line_conn.hpp"

#include "common/protocol.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

namespace chat::bench {
namespace {

constexpr std::size_t max_in_line = 1 << 20;
constexpr std::size_t read_chunk = 64 * 1024;
constexpr std::size_t max_read_per_round = 256 * 1024;  // then let the other connections have a go

[[noreturn]] void throw_errno(int err, const char* what) {
  throw std::system_error(err, std::generic_category(), what);
}

}  // namespace

LineConn::LineConn(std::uint16_t port, Clock::time_point deadline, int rcvbuf) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw_errno(errno, "socket");
  if (rcvbuf > 0 && ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) != 0) {
    const int err = errno;
    close();
    throw_errno(err, "setsockopt SO_RCVBUF");
  }
  // Lines go out as soon as they are queued: latency is what the benchmark measures.
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) {
      const int err = errno;
      close();
      throw_errno(err, "connect 127.0.0.1");
    }
    while (true) {
      pollfd p{fd_, POLLOUT, 0};
      const int ready = ::poll(&p, 1, poll_timeout(deadline));
      if (ready > 0) break;
      if (interrupted() || Clock::now() >= deadline) {
        close();
        check_interrupted();
        throw std::runtime_error("connect 127.0.0.1: timed out");
      }
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      close();
      throw_errno(err, "connect 127.0.0.1");
    }
  }
}

LineConn::~LineConn() { close(); }

LineConn::LineConn(LineConn&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      eof_(other.eof_),
      error_(std::move(other.error_)),
      in_(std::move(other.in_)),
      in_pos_(other.in_pos_),
      out_(std::move(other.out_)),
      out_pos_(other.out_pos_) {}

void LineConn::send_line(std::string_view line) {
  if (!live()) return;
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  }
  out_.append(line);
  out_.push_back('\n');
  flush();
}

void LineConn::flush() {
  while (live() && out_pos_ < out_.size()) {
    const ssize_t n = ::send(fd_, out_.data() + out_pos_, out_.size() - out_pos_, MSG_NOSIGNAL);
    if (n > 0) {
      out_pos_ += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    error_ = std::strerror(errno);
    return;
  }
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  } else if (out_pos_ > (1u << 20) && out_pos_ > out_.size() / 2) {
    out_.erase(0, out_pos_);
    out_pos_ = 0;
  }
}

void LineConn::fill() {
  if (in_pos_ > 0) {
    in_.erase(0, in_pos_);
    in_pos_ = 0;
  }
  std::size_t taken = 0;
  char chunk[read_chunk];
  while (live() && taken < max_read_per_round) {
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n > 0) {
      in_.append(chunk, static_cast<std::size_t>(n));
      taken += static_cast<std::size_t>(n);
      if (in_.size() > max_in_line && in_.find('\n') == std::string::npos) error_ = "line over 1 MiB";
      continue;
    }
    if (n == 0) {
      eof_ = true;
      return;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) error_ = std::strerror(errno);
    return;
  }
}

std::optional<std::string_view> LineConn::next_line() {
  const auto lf = in_.find('\n', in_pos_);
  if (lf == std::string::npos) return std::nullopt;
  std::string_view line(in_.data() + in_pos_, lf - in_pos_);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  in_pos_ = lf + 1;
  return line;
}

short LineConn::wanted_events() const {
  if (!live()) return 0;
  return static_cast<short>(POLLIN | (pending_output() > 0 ? POLLOUT : 0));
}

void LineConn::on_events(short revents) {
  if (revents & POLLOUT) flush();
  if (revents & (POLLIN | POLLHUP | POLLERR)) fill();
}

void LineConn::close_with_reset() {
  if (fd_ < 0) return;
  const linger abortive{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive);
  close();
}

void LineConn::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void pump(std::span<LineConn* const> conns, Clock::time_point deadline, std::span<pollfd> extra) {
  check_interrupted();
  std::vector<pollfd> fds;
  std::vector<LineConn*> owners;
  fds.reserve(conns.size() + extra.size());
  owners.reserve(conns.size());
  for (LineConn* c : conns) {
    if (c == nullptr) continue;
    const short events = c->wanted_events();
    if (events == 0) continue;
    fds.push_back(pollfd{c->fd(), events, 0});
    owners.push_back(c);
  }
  for (const pollfd& e : extra) fds.push_back(pollfd{e.fd, e.events, 0});
  const int ready = ::poll(fds.data(), fds.size(), poll_timeout(deadline));
  if (ready < 0 && errno != EINTR) throw_errno(errno, "poll");
  for (std::size_t i = 0; i < owners.size(); ++i) {
    if (ready > 0 && fds[i].revents != 0) owners[i]->on_events(fds[i].revents);
  }
  for (std::size_t i = 0; i < extra.size(); ++i) extra[i].revents = ready > 0 ? fds[owners.size() + i].revents : 0;
  check_interrupted();
}

bool answer_ping(LineConn& conn, std::string_view line) {
  if (!line.starts_with("PING")) return false;
  const auto event = parse_event(line);
  if (!event || event->kind != Event::Kind::ping) return false;
  conn.send_line(format_command(Command{Verb::pong, event->arg, {}}));
  return true;
}

void join(LineConn& conn, const std::string& nick, Clock::time_point deadline) {
  conn.send_line(format_command(Command{Verb::hello, nick, {}}));
  std::string seen;
  bool welcomed = false;
  LineConn* const self[] = {&conn};
  while (Clock::now() < deadline) {
    pump(self, deadline);
    while (auto line = conn.next_line()) {
      if (answer_ping(conn, *line)) continue;
      const auto event = parse_event(*line);
      if (event && event->kind == Event::Kind::welcome && event->nick == nick) welcomed = true;
      if (event && event->kind == Event::Kind::users && welcomed) return;
      if (event && (event->kind == Event::Kind::error || event->kind == Event::Kind::bye)) {
        throw std::runtime_error("join as " + nick + " refused: " + std::string(*line));
      }
      if (seen.size() < 500) seen.append(*line).append(" | ");
    }
    if (!conn.live()) {
      throw std::runtime_error("join as " + nick + ": connection ended (" +
                               (conn.error().empty() ? "closed" : conn.error()) + ") after: " + seen);
    }
  }
  throw std::runtime_error("join as " + nick + ": no WELCOME and USERS in time; seen: " + seen);
}

std::vector<LineConn> join_many(std::uint16_t port, const std::string& prefix, int count, Clock::time_point deadline) {
  const auto n = static_cast<std::size_t>(count);
  std::vector<LineConn> conns;
  conns.reserve(n);
  std::vector<LineConn*> all;
  all.reserve(n);
  std::vector<std::string> welcome;  // "WELCOME <nick>" per client
  welcome.reserve(n);
  std::vector<char> got_welcome;     // per client: WELCOME read, waiting for USERS
  got_welcome.reserve(n);
  std::size_t welcomed = 0;          // clients that read WELCOME and then USERS
  std::size_t joins = 0;  // JOIN lines read, all clients together
  const std::size_t all_joins = n * (n - (n > 0 ? 1 : 0)) / 2;  // each pair: the earlier one hears the later
  auto read_lines = [&] {
    for (std::size_t i = 0; i < conns.size(); ++i) {
      while (auto line = conns[i].next_line()) {
        if (answer_ping(conns[i], *line)) continue;
        if (line->starts_with("JOIN ")) {
          ++joins;
        } else if (*line == welcome[i]) {
          got_welcome[i] = 1;
        } else if (got_welcome[i] == 1 && (*line == "USERS" || line->starts_with("USERS "))) {
          got_welcome[i] = 2;
          ++welcomed;
        } else if (line->starts_with("ERROR") || line->starts_with("BYE")) {
          throw std::runtime_error(welcome[i].substr(8) + " could not join: " + std::string(*line));
        }
      }
      if (!conns[i].live()) throw std::runtime_error(welcome[i].substr(8) + ": connection ended while joining");
    }
  };
  for (std::size_t i = 0; i < n; ++i) {
    const std::string nick = prefix + std::to_string(i);
    welcome.push_back("WELCOME " + nick);
    got_welcome.push_back(0);
    conns.emplace_back(port, deadline);
    all.push_back(&conns.back());
    conns.back().send_line(format_command(Command{Verb::hello, nick, {}}));
    if (i % 50 == 49) {
      pump(all, Clock::now());
      read_lines();
    }
  }
  while (welcomed < n || joins < all_joins) {
    if (Clock::now() >= deadline) {
      throw std::runtime_error(std::to_string(welcomed) + " of " + std::to_string(n) + " clients joined in time (" +
                               std::to_string(joins) + " of " + std::to_string(all_joins) + " JOIN lines read)");
    }
    pump(all, deadline);
    read_lines();
  }
  return conns;
}

long raise_file_limit() {
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) != 0) return 1024;
  if (files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
    getrlimit(RLIMIT_NOFILE, &files);
  }
  return files.rlim_cur == RLIM_INFINITY ? 1L << 20 : static_cast<long>(files.rlim_cur);
}

}  // namespace chat::bench
