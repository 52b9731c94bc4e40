// RedisServer: Debian's redis-server (/usr/bin/redis-server, package redis-server) for
// chatbench --instances and chatlab instance-lost: on a unix socket in a folder of its own under
// $TMPDIR, no TCP port, nothing saved. Ended by pid (SIGTERM, then SIGKILL), its folder removed.
//
// Threads: one thread creates, uses and destroys it.
#pragma once

#include "bench/child_process.hpp"

#include <memory>
#include <string>

namespace chat::bench {

class RedisServer {
 public:
  // Starts it and waits (at most 10 s) until its socket takes connections. Throws
  // std::runtime_error naming the package when it does not start.
  RedisServer();
  ~RedisServer();  // stop()
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // For chatserver --redis: unix:///.../redis.sock
  std::string url() const { return "unix://" + dir_ + "/redis.sock"; }
  pid_t pid() const { return process_ ? process_->pid() : -1; }
  // SIGTERM and wait (10 s), then the folder goes. Idempotent.
  void stop();

 private:
  std::string dir_;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace chat::bench
