#include "lab/observer.hpp"

#include "common/log.hpp"
#include "lab/tls_client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace chat::lab {
namespace {

[[noreturn]] void throw_errno(const std::string& what) { throw std::system_error(errno, std::generic_category(), what); }

// Holds the calling thread in a network namespace while it lives.
class InNamespace {
 public:
  explicit InNamespace(const std::string& netns) {
    if (netns.empty()) return;
    home_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home_ < 0) throw_errno("open /proc/thread-self/ns/net");
    const std::string path = "/run/netns/" + netns;
    const int target = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (target < 0 || ::setns(target, CLONE_NEWNET) != 0) {
      const int err = errno;
      if (target >= 0) ::close(target);
      ::close(home_);
      throw std::system_error(err, std::generic_category(), "enter network namespace " + netns);
    }
    ::close(target);
  }
  ~InNamespace() {
    if (home_ < 0) return;
    ::setns(home_, CLONE_NEWNET);  // back home; cannot fail for a namespace we came from
    ::close(home_);
  }
  InNamespace(const InNamespace&) = delete;
  InNamespace& operator=(const InNamespace&) = delete;

 private:
  int home_ = -1;
};

}  // namespace

int connect_tcp(const std::string& address, std::uint16_t port, const std::string& netns,
                std::chrono::milliseconds timeout) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  if (::inet_pton(AF_INET, address.c_str(), &to.sin_addr) != 1) throw std::runtime_error("not an IPv4 address: " + address);
  int fd;
  {
    InNamespace in(netns);
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) throw_errno("socket");
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0 && errno != EINPROGRESS) {
    const int err = errno;
    ::close(fd);
    throw std::system_error(err, std::generic_category(), "connect to " + address + ":" + std::to_string(port));
  }
  pollfd p{fd, POLLOUT, 0};
  int err = 0;
  socklen_t len = sizeof err;
  if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
      err != 0) {
    ::close(fd);
    throw std::system_error(err ? err : ETIMEDOUT, std::generic_category(),
                            "connect to " + address + ":" + std::to_string(port));
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);  // blocking from here on
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // A send that the server does not take for 10 s fails instead of hanging the lab.
  const timeval send_timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
  return fd;
}

std::uint16_t local_port(int fd) {
  sockaddr_in self{};
  socklen_t len = sizeof self;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&self), &len) != 0) return 0;
  return ntohs(self.sin_port);
}

std::optional<TaggedLine> parse_tagged(const std::string& line, WallClock::time_point at) {
  // @<id>/<ms> <rest>
  if (line.size() < 5 || line[0] != '@') return std::nullopt;
  const auto slash = line.find('/');
  const auto space = line.find(' ');
  if (slash == std::string::npos || space == std::string::npos || slash > space || slash == 1) return std::nullopt;
  TaggedLine t;
  t.at = at;
  const auto [end, ec] = std::from_chars(line.data() + 1, line.data() + slash, t.id);
  if (ec != std::errc() || end != line.data() + slash || t.id == 0) return std::nullopt;
  for (auto i = slash + 1; i < space; ++i) {
    if (line[i] < '0' || line[i] > '9') return std::nullopt;
  }
  t.line = line;
  t.rest = line.substr(space + 1);
  return t;
}

Observer::Observer(const std::string& address, std::uint16_t port, const std::string& netns, Timeline& timeline,
                   Options options)
    : timeline_(timeline), options_(options), tls_(options.tls ? ready_client(address) : nullptr),
      fd_(connect_tcp(address, port, netns, std::chrono::seconds(10))), port_(local_port(fd_)) {
  try {
    timeline_.ignore_client("observer", port_);
    // Before the reader thread starts: this thread is the engine's only user.
    const std::string early = tls_ ? client_handshake(*tls_, fd_, std::chrono::seconds(10)) : std::string();
    if (!send_line(options_.ids ? "HELLO observer ids" : "HELLO observer")) {
      throw std::runtime_error("the observer could not send HELLO");
    }
    reader_ = std::jthread([this, early = std::move(early)](std::stop_token stop) mutable {
      read_loop(stop, std::move(early));
    });
  } catch (const std::exception& e) {
    ::close(fd_);
    throw std::runtime_error(std::string("the observer could not join: ") + e.what());
  }
  // Joined before anyone else arrives: a victim that joined first would be in the observer's
  // USERS line, and no JOIN would ever come for it.
  std::unique_lock lock(mutex_);
  if (!cv_.wait_for(lock, std::chrono::seconds(10), [this] { return welcomed_ || gone_; }) || !welcomed_) {
    lock.unlock();
    reader_.request_stop();
    reader_.join();
    ::close(fd_);
    throw std::runtime_error("the observer could not join");
  }
}

Observer::~Observer() {
  reader_.request_stop();
  if (reader_.joinable()) reader_.join();
  ::close(fd_);
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

bool Observer::send_line(const std::string& line) {
  std::lock_guard lock(send_mutex_);
  if (!tls_) return send_all(fd_, line + "\n");
  {
    std::lock_guard engine(tls_mutex_);
    if (!tls_->write(line + "\n")) return false;
  }
  return send_engine_output();
}

bool Observer::send_engine_output() {
  std::string out;
  {
    std::lock_guard engine(tls_mutex_);
    out = tls_->take_output();
  }
  return out.empty() || send_all(fd_, out);
}

bool Observer::open(std::string_view cipher, std::string& plain) {
  tls::Engine::Status status;
  bool output = false;
  std::string error;
  {
    std::lock_guard engine(tls_mutex_);
    tls_->put_input(cipher);
    // A recv(2) brings at most 16 KiB of records: their plaintext is well under the limit.
    status = tls_->read(plain, 1u << 20);
    output = tls_->output_size() > 0;
    if (status == tls::Engine::Status::failed) error = tls_->error();
  }
  if (output) {
    // What the engine has to say (an alert, a key update's answer): sent by this thread, after
    // any line another thread is sending now.
    std::lock_guard lock(send_mutex_);
    send_engine_output();
  }
  if (status == tls::Engine::Status::closed) {
    timeline_.add("observer", "the server's close_notify: the TLS stream is over");
    return false;
  }
  if (status == tls::Engine::Status::failed) {
    timeline_.add("observer", "bad TLS data from the server: " + error);
    return false;
  }
  return true;
}

bool Observer::say(const std::string& text) { return send_line("SAY " + text); }

void Observer::read_loop(std::stop_token stop, std::string early) {
  set_thread_role("observer");
  std::string buffer = std::move(early);
  std::string plain;  // over TLS: what one recv(2)'s records held
  char chunk[16384];
  const auto gone = [this](const std::string& why) {
    if (!why.empty()) timeline_.add("observer", why);
    std::lock_guard lock(mutex_);
    gone_ = true;
    cv_.notify_all();
  };
  // Every whole line in `buffer`, acted on and taken out.
  const auto read_lines = [&] {
    for (auto eol = buffer.find('\n'); eol != std::string::npos; eol = buffer.find('\n')) {
      std::string line = buffer.substr(0, eol);
      buffer.erase(0, eol + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const auto now = WallClock::now();
      if (options_.ids && !line.empty() && line[0] == '@') {
        // A room event with its tag: kept whole, then read as the line after the tag.
        if (auto t = parse_tagged(line, now)) {
          const bool shown = t->rest.rfind("MSG ", 0) == 0 || t->rest.rfind("BACK ", 0) == 0;
          if (shown) timeline_.add("observer", t->line, now);
          {
            std::lock_guard lock(mutex_);
            if (tagged_.size() < max_tagged) tagged_.push_back(*t);
            cv_.notify_all();
          }
          line = t->rest;
          if (shown) continue;
        }
      }
      if (line.rfind("PING", 0) == 0) {
        send_line("PONG" + line.substr(4));
      } else if (line.rfind("WELCOME ", 0) == 0) {
        std::lock_guard lock(mutex_);
        welcomed_ = true;
        cv_.notify_all();
      } else if (line.rfind("JOIN ", 0) == 0) {
        timeline_.add("observer", line, now);
        std::lock_guard lock(mutex_);
        joined_.push_back(line.substr(5));
        cv_.notify_all();
      } else if (line.rfind("LEAVE ", 0) == 0) {
        timeline_.add("observer", line, now);
        // LEAVE <nick> <cause> [<detail>]
        const auto nick_end = line.find(' ', 6);
        const std::string nick = line.substr(6, nick_end - 6);
        LeaveSeen seen{now, {}, {}};
        if (nick_end != std::string::npos) {
          const auto cause_end = line.find(' ', nick_end + 1);
          seen.cause = line.substr(nick_end + 1, cause_end - nick_end - 1);
          if (cause_end != std::string::npos) seen.detail = line.substr(cause_end + 1);
        }
        std::lock_guard lock(mutex_);
        left_.emplace_back(nick, seen);
        cv_.notify_all();
      } else if (line.rfind("BYE", 0) == 0 || line.rfind("ERROR", 0) == 0) {
        timeline_.add("observer", line, now);
      } else if (options_.show_victim && line.rfind("MSG victim ", 0) == 0) {
        timeline_.add("observer", line, now);  // what the victim said, as the others read it
      }
      // Other MSG lines (the observer's own, in the not-reading scenario) are not events.
    }
  };
  while (!stop.stop_requested()) {
    read_lines();
    if (buffer.size() > (1u << 20)) buffer.clear();  // no line is this long; bounded anyway

    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;  // 100 ms: how soon a stop request is seen
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      gone(n == 0 ? "the server closed the connection" : std::string("recv: ") + std::strerror(errno));
      return;
    }
    if (!tls_) {
      buffer.append(chunk, static_cast<std::size_t>(n));
      continue;
    }
    plain.clear();
    const bool open_still = open(std::string_view(chunk, static_cast<std::size_t>(n)), plain);
    buffer += plain;  // what came before a close_notify is read too
    if (!open_still) {
      read_lines();  // the server's last words first
      gone("");
      return;
    }
  }
}

bool Observer::wait_join(const std::string& nick, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  return cv_.wait_until(lock, deadline, [&] {
    return gone_ || std::find(joined_.begin(), joined_.end(), nick) != joined_.end();
  }) && !gone_;
}

std::optional<LeaveSeen> Observer::find_leave(const std::string& nick) const {
  for (const auto& [who, seen] : left_) {
    if (who == nick) return seen;
  }
  return std::nullopt;
}

std::optional<LeaveSeen> Observer::leave_of(const std::string& nick) const {
  std::lock_guard lock(mutex_);
  return find_leave(nick);
}

std::vector<TaggedLine> Observer::tagged() const {
  std::lock_guard lock(mutex_);
  return tagged_;
}

std::optional<TaggedLine> Observer::wait_tagged(const std::string& prefix,
                                                std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  std::optional<TaggedLine> found;
  cv_.wait_until(lock, deadline, [&] {
    for (const auto& t : tagged_) {
      if (t.rest.rfind(prefix, 0) == 0) {
        found = t;
        return true;
      }
    }
    return gone_;
  });
  return found;
}

std::optional<LeaveSeen> Observer::wait_leave(const std::string& nick, std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  cv_.wait_until(lock, deadline, [&] { return gone_ || find_leave(nick).has_value(); });
  return find_leave(nick);
}

}  // namespace chat::lab
