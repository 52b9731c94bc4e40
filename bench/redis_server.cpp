#include "bench/redis_server.hpp"

#include "bench/deadline.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

namespace chat::bench {
namespace {

// True once something accepts connections on the unix socket `path`.
bool unix_socket_answers(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

RedisServer::RedisServer() {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/chat-redis-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) throw std::runtime_error("cannot make a folder for redis-server: " + dir);
  dir_ = dir;
  const std::string socket = dir + "/redis.sock";
  try {
    process_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{"/usr/bin/redis-server", "--port", "0", "--unixsocket", socket, "--unixsocketperm",
                                 "700", "--save", "", "--appendonly", "no", "--dir", dir, "--logfile",
                                 dir + "/redis.log", "--daemonize", "no"},
        ChildProcess::Output::discard, ChildProcess::Output::discard);
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!unix_socket_answers(socket)) {
      if (Clock::now() > deadline || process_->try_reap()) {
        throw std::runtime_error("redis-server (/usr/bin/redis-server, Debian package redis-server) did not start");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  } catch (...) {
    stop();
    throw;
  }
}

RedisServer::~RedisServer() { stop(); }

void RedisServer::stop() {
  if (process_) {
    process_->signal(SIGTERM);
    if (!process_->wait_exit(Clock::now() + std::chrono::seconds(10))) process_->kill();
    process_.reset();
  }
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    dir_.clear();
  }
}

}  // namespace chat::bench
