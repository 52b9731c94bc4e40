// Raw-socket peers and /proc counters for the churn and soak tests (issue 9): a descriptor that
// closes itself, a blocking line peer with deadlines that can end a connection every way a real
// client does (QUIT, FIN, RST, half a line, ...), and the figures the tests compare (open
// descriptors, threads, resident memory of a process).
//
// Threads: not thread safe. A Fd or BlockingPeer belongs to the one thread that made it (a
// churn thread owns its sockets); the /proc functions may be called from any thread. Nothing
// here asserts: callers on worker threads report failures through their own result structs,
// and only the test thread uses Catch2.
//
// Every wait is bounded: the sockets have 1 s receive and send timeouts (SO_RCVTIMEO,
// SO_SNDTIMEO, which also bounds a blocking connect), and every read loop has a deadline.
// Every send uses MSG_NOSIGNAL: a peer that the server has already reset is an error code here,
// not a SIGPIPE for the whole test process.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace chat::test::raw {

using Clock = std::chrono::steady_clock;

// Sends as much of `out` as a non-blocking socket takes now, and erases what was sent. Returns
// the error if the connection failed, else an empty string (all sent, or the rest must wait).
inline std::string write_pending(int fd, std::string& out) {
  while (!out.empty()) {
    const ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      out.erase(0, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK) return {};
    return std::strerror(errno);
  }
  return {};
}

// Appends everything a non-blocking socket holds right now to `in`. Returns why the connection
// is gone ("end of stream", or the error), or an empty string while it is still open.
inline std::string read_available(int fd, std::string& in) {
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n > 0) {
      in.append(buffer, static_cast<std::size_t>(n));
      if (n < static_cast<ssize_t>(sizeof buffer)) return {};  // drained: the next recv would say EAGAIN
      continue;
    }
    if (n == 0) return "end of stream";
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {};
    return std::strerror(errno);
  }
}

// An owned descriptor: closed (an ordinary close(2)) when it goes out of scope.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

inline sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// A new TCP socket, CLOEXEC, optionally non-blocking; -1 on failure (errno set).
inline int tcp_socket(bool nonblocking) {
  return ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
}

inline bool set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

// SO_LINGER {1, 0}: the next close(2) sends an RST instead of a FIN.
inline void arm_reset(int fd) {
  const linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

// Sends all of `bytes` (blocking, or until the socket's send timeout); false on an error.
inline bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// A blocking client connection that reads lines with deadlines. Its failures are strings
// (why()), for the worker thread's report.
class BlockingPeer {
 public:
  // Connects to 127.0.0.1:`port`. False (and why()) if it cannot within the socket timeouts.
  bool connect(std::uint16_t port) {
    fd_.reset(tcp_socket(false));
    eof_ = false;
    in_.clear();
    start_ = 0;
    if (!fd_.valid()) return fail("socket: ", errno);
    const timeval tv{1, 0};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const int one = 1;
    ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const auto addr = loopback(port);
    if (::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return true;
    if (errno != EINPROGRESS && errno != EINTR) return fail("connect: ", errno);
    // A full accept queue drops SYNs and the kernel resends them; a connect that outlasts the
    // 1 s send timeout goes on in the background. Wait for it, up to 10 s more.
    pollfd p{fd_.get(), POLLOUT, 0};
    if (::poll(&p, 1, 10'000) != 1) return fail("connect: ", ETIMEDOUT);
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err == 0) return true;
    errno = err;
    return fail("connect: ", errno);
  }

  int fd() const { return fd_.get(); }
  const std::string& why() const { return why_; }

  bool send(std::string_view bytes) {
    if (send_all(fd_.get(), bytes)) return true;
    return fail("send: ", errno);
  }

  // The next line (without LF) before `deadline`; nullopt at EOF, on an error or at the
  // deadline (why() says which).
  std::optional<std::string> line(Clock::time_point deadline) {
    for (;;) {
      const auto lf = in_.find('\n', start_);
      if (lf != std::string::npos) {
        std::string out = in_.substr(start_, lf - start_);
        start_ = lf + 1;
        if (start_ > 65536) {
          in_.erase(0, start_);
          start_ = 0;
        }
        return out;
      }
      if (eof_) {
        why_ = "end of stream";
        return std::nullopt;
      }
      if (!fill(deadline)) return std::nullopt;
    }
  }

  // Reads lines until one starts with `prefix` (or contains it, when `anywhere`), skipping the
  // others (room traffic), before `deadline`. False (and why(), with the last line skipped)
  // if none does.
  bool expect(std::string_view prefix, Clock::time_point deadline, bool anywhere = false) {
    std::string last;
    for (;;) {
      auto l = line(deadline);
      if (!l) {
        why_ = "no line " + std::string(anywhere ? "with \"" : "starting \"") + std::string(prefix) + "\" (" + why_ +
               (last.empty() ? std::string() : "; last line: " + last.substr(0, 120)) + ")";
        return false;
      }
      if (anywhere ? l->find(prefix) != std::string::npos : l->starts_with(prefix)) return true;
      last = std::move(*l);
    }
  }

  // Reads and discards until the server ends the stream (EOF, or an error such as a reset
  // when `reset_ok`) before `deadline`.
  bool expect_end(Clock::time_point deadline, bool reset_ok = false) {
    in_.clear();
    start_ = 0;
    while (!eof_) {
      if (!fill(deadline)) {
        if (reset_ok && (last_errno_ == ECONNRESET || last_errno_ == EPIPE)) return true;
        why_ = "the server did not end the stream (" + why_ + ")";
        return false;
      }
      in_.clear();
    }
    return true;
  }

  void shutdown_write() { ::shutdown(fd_.get(), SHUT_WR); }
  // close(2): a FIN, or an RST if something is left unread (that is Linux).
  void close() { fd_.reset(); }
  // SO_LINGER {1, 0} then close(2): an RST.
  void close_with_reset() {
    if (fd_.valid()) arm_reset(fd_.get());
    fd_.reset();
  }

  // Gives up the descriptor and what was read past the last line returned.
  std::pair<Fd, std::string> release() {
    std::string rest = in_.substr(start_);
    in_.clear();
    start_ = 0;
    return {std::move(fd_), std::move(rest)};
  }

 private:
  bool fail(const char* what, int err) {
    last_errno_ = err;
    why_ = std::string(what) + std::strerror(err);
    return false;
  }

  // One recv(2) into in_, retried across the 1 s socket timeouts until `deadline`.
  bool fill(Clock::time_point deadline) {
    char buffer[8192];
    for (;;) {
      const ssize_t n = ::recv(fd_.get(), buffer, sizeof buffer, 0);
      if (n > 0) {
        in_.append(buffer, static_cast<std::size_t>(n));
        return true;
      }
      if (n == 0) {
        eof_ = true;
        return true;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (Clock::now() >= deadline) {
          last_errno_ = ETIMEDOUT;
          why_ = "timed out";
          return false;
        }
        continue;
      }
      return fail("recv: ", errno);
    }
  }

  Fd fd_;
  std::string in_;
  std::size_t start_ = 0;  // in_[start_..] is not yet returned
  bool eof_ = false;
  int last_errno_ = 0;
  std::string why_;
};

// ---- /proc ----------------------------------------------------------------------------------

// Entries in a /proc directory (fd, task); 0 if it cannot be read. Counting /proc/self/fd
// includes the descriptor the count itself opens: the same one in every count, so counts
// compare.
inline std::size_t count_entries(const std::string& dir) {
  std::error_code ec;
  std::size_t n = 0;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) ++n;
  return n;
}

inline std::string proc_dir(pid_t pid) { return pid == 0 ? std::string("/proc/self") : "/proc/" + std::to_string(pid); }

// Open descriptors and threads of `pid` (0: this process).
inline std::size_t open_fds(pid_t pid = 0) { return count_entries(proc_dir(pid) + "/fd"); }
inline std::size_t thread_count(pid_t pid = 0) { return count_entries(proc_dir(pid) + "/task"); }

// VmRSS of `pid` in KiB (0: this process); 0 if it cannot be read.
inline std::size_t rss_kib(pid_t pid = 0) {
  std::ifstream status(proc_dir(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return static_cast<std::size_t>(std::stoull(line.substr(6)));
  }
  return 0;
}

}  // namespace chat::test::raw
