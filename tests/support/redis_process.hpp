// RedisProcess: Debian's redis-server (/usr/bin/redis-server, package redis-server) started for
// one test in a directory of its own, on a unix socket there and, if asked, on a 127.0.0.1 TCP
// port; nothing saved to disk. Stopped by its pid (SIGTERM, then SIGKILL by Subprocess), never
// by name. start() again after stop() brings it back on the same socket and port, empty (what
// a Redis restart without persistence looks like to the backplane).
//
// Its log goes to <dir>/redis.log (not to a pipe nobody reads). Readiness is a PING answered
// on the unix socket, within 10 s.
//
// Not thread safe: the test thread creates, uses and destroys it.
#pragma once

#include "tests/support/process.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace chat::test {

// A 127.0.0.1 TCP port nobody listens on now (the kernel's pick for port 0), for a redis-server
// that must have a TCP port. Another process could take it before redis-server binds it; the
// tests that use it are few and the window is short.
inline std::uint16_t free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("no free TCP port on 127.0.0.1");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

class RedisProcess {
 public:
  static constexpr const char* binary = "/usr/bin/redis-server";

  // `tcp_port` 0: unix socket only. `password` empty: no requirepass.
  explicit RedisProcess(std::filesystem::path dir, std::uint16_t tcp_port = 0, std::string password = {})
      : dir_(std::move(dir)), tcp_port_(tcp_port), password_(std::move(password)) {
    start();
  }
  ~RedisProcess() { stop(); }
  RedisProcess(const RedisProcess&) = delete;
  RedisProcess& operator=(const RedisProcess&) = delete;

  static bool available() { return ::access(binary, X_OK) == 0; }

  void start() {
    if (process_) return;
    std::filesystem::remove(socket_path());
    std::vector<std::string> argv{binary,
                                  "--port", std::to_string(tcp_port_),
                                  "--bind", "127.0.0.1",
                                  "--unixsocket", socket_path().string(),
                                  "--unixsocketperm", "700",
                                  "--save", "",
                                  "--appendonly", "no",
                                  "--dir", dir_.string(),
                                  "--logfile", (dir_ / "redis.log").string(),
                                  "--daemonize", "no"};
    if (!password_.empty()) {
      argv.push_back("--requirepass");
      argv.push_back(password_);
    }
    process_ = std::make_unique<Subprocess>(argv);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!answers_ping()) {
      if (std::chrono::steady_clock::now() > deadline || process_->wait_exit(std::chrono::milliseconds(0))) {
        process_.reset();
        throw std::runtime_error("redis-server did not start (see " + (dir_ / "redis.log").string() + ")");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // SIGTERM by pid and wait (at most 10 s; then the Subprocess kills it).
  void stop() {
    if (!process_) return;
    process_->signal(SIGTERM);
    process_->wait_exit(std::chrono::seconds(10));
    process_.reset();
  }
  // kill -9 by pid: a Redis that vanishes without closing anything cleanly.
  void kill() {
    if (!process_) return;
    process_->signal(SIGKILL);
    process_->wait_exit(std::chrono::seconds(10));
    process_.reset();
  }
  // SIGSTOP / SIGCONT: a Redis that hangs with its sockets open.
  void pause() { process_->signal(SIGSTOP); }
  void resume() { process_->signal(SIGCONT); }

  bool running() const { return process_ != nullptr; }
  pid_t pid() const { return process_ ? process_->pid() : -1; }
  std::filesystem::path socket_path() const { return dir_ / "redis.sock"; }
  // For --redis: unix:///.../redis.sock (with the password as a parameter when there is one).
  std::string unix_url() const {
    return "unix://" + socket_path().string() + (password_.empty() ? "" : "?password=" + password_);
  }
  std::string tcp_url() const {
    return "redis://" + (password_.empty() ? "" : ":" + password_ + "@") + "127.0.0.1:" + std::to_string(tcp_port_);
  }

 private:
  // One PING on the unix socket: +PONG, or -NOAUTH when a password is required (it is up).
  bool answers_ping() const {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string path = socket_path().string();
    if (path.size() >= sizeof addr.sun_path) {
      ::close(fd);
      throw std::runtime_error("redis socket path too long: " + path);
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    bool up = false;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      timeval tv{1, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      const char ping[] = "PING\r\n";
      char reply[64] = {};
      if (::write(fd, ping, sizeof ping - 1) == static_cast<ssize_t>(sizeof ping - 1)) {
        const ssize_t n = ::read(fd, reply, sizeof reply - 1);
        up = n > 0 && (reply[0] == '+' || std::strncmp(reply, "-NOAUTH", 7) == 0);
      }
    }
    ::close(fd);
    return up;
  }

  std::filesystem::path dir_;
  std::uint16_t tcp_port_;
  std::string password_;
  std::unique_ptr<Subprocess> process_;
};

}  // namespace chat::test
