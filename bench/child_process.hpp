// The processes chatbench starts: ChildProcess (any program, spawned with posix_spawn) and
// ServerProcess (chatserver on 127.0.0.1 port 0, its port read back from its first stderr line).
//
// Both are ended by pid, never by name: SIGTERM (ServerProcess::stop) or SIGKILL, then reaped.
// A destructor kills and reaps a child that is still running, so an exception or an
// interruption never leaves a process behind.
//
// Every wait is bounded by a deadline (bench/deadline.hpp). The exit is awaited on a pidfd, so
// nothing sleeps to let time pass.
//
// Threads: a ChildProcess is not thread safe; one thread creates, uses and destroys it.
// ServerProcess is used by the benchmark's main thread and owns one drain thread that reads the
// server's stderr (see there).
#pragma once

#include "bench/deadline.hpp"

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace chat::bench {

// Reads lines from a non-blocking pipe, with a deadline. Lines are at most 64 KiB (a longer
// one arrives in pieces), so memory is bounded whatever the child writes.
class PipeLines {
 public:
  PipeLines() = default;
  explicit PipeLines(int fd) : fd_(fd) {}
  PipeLines(PipeLines&& other) noexcept;
  PipeLines& operator=(PipeLines&& other) noexcept;
  ~PipeLines();

  int fd() const { return fd_; }
  bool at_eof() const { return eof_ && buffer_.empty(); }

  // The next line without LF, waiting until `deadline`. nullopt on timeout, or at EOF with
  // nothing left. Throws Interrupted.
  std::optional<std::string> read_line(Clock::time_point deadline);

 private:
  std::optional<std::string> pop();

  int fd_ = -1;
  bool eof_ = false;
  std::string buffer_;
};

class ChildProcess {
 public:
  enum class Output { discard, inherit, pipe };

  // Spawns `argv` (argv[0] a path). Its stdin is a pipe that only we hold: the child reads EOF
  // when we close it, or when chatbench dies. stdout and stderr as asked. The child starts
  // with default signal handling and no blocked signals. Throws std::system_error.
  // The first ChildProcess sets SIGPIPE to SIG_IGN in this process (see write_stdin).
  ChildProcess(std::vector<std::string> argv, Output out, Output err);
  ~ChildProcess();  // SIGKILL by pid and reap, if still running

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // When posix_spawn was called.
  Clock::time_point spawned_at() const { return spawned_at_; }
  // Readable once the child exited; -1 once reaped (or on a kernel without pidfd_open).
  int pidfd() const { return pidfd_; }
  PipeLines& out() { return out_; }
  PipeLines& err() { return err_; }
  void close_stdin();
  // Writes all of `text` to the child's stdin, waiting until `deadline` for pipe space. False if
  // stdin is closed, the child stopped reading (EPIPE: needs SIGPIPE ignored) or time ran out.
  bool write_stdin(std::string_view text, Clock::time_point deadline);

  // Sends `sig` to the child's pid. False once reaped (so the pid can no longer be reused).
  bool signal(int sig);
  // Reaps the child if it has exited. True once reaped.
  bool try_reap();
  // Waits until `deadline` for the exit. The exit code, 128 + signal when a signal ended it,
  // nullopt while it still runs. Throws Interrupted.
  std::optional<int> wait_exit(Clock::time_point deadline);
  std::optional<int> exit_code() const { return exit_code_; }
  // SIGKILL and reap (bounded by 5 s: a SIGKILLed process exits unless the kernel is stuck).
  void kill();

 private:
  pid_t pid_ = -1;
  Clock::time_point spawned_at_{};
  int pidfd_ = -1;
  int stdin_fd_ = -1;
  PipeLines out_;
  PipeLines err_;
  std::optional<int> exit_code_;
};

// chatserver started as `PATH --bind 127.0.0.1 --port 0 --max-per-ip 0 --max-rate 0 EXTRA...`
// (for the benchmark: 127.0.0.1 and no other address; the two limits are lifted when the
// binary has them: every benchmark client comes from one address and sends as fast as it can,
// and the peers run without their limits too). chatlab starts it through Launch: inside a
// network namespace it created, bound to the address it gave that namespace, limits as set.
//
// Threads: created, used and destroyed by one thread (chatbench's or chatlab's main thread, or
// a test's). It owns a drain thread (std::jthread) that reads the server's stderr after the
// first line, so the server never blocks on a full pipe whatever its --log-level; the drain
// thread keeps the last lines for error messages (tail_mutex_) and hands each line to
// Launch::on_line. The drain thread is joined in the destructor before the process is killed
// and its pipes are closed (it is declared last).
class ServerProcess {
 public:
  // How to start it, for the callers that need more than the benchmark's defaults (chatlab).
  struct Launch {
    std::vector<std::string> prefix;  // run through this, e.g. {"ip", "netns", "exec", "ns1"}
    std::string bind = "127.0.0.1";   // the address to listen on (and to read back)
    bool lift_limits = true;          // --max-per-ip 0 --max-rate 0, when the binary has them
    // Called on the drain thread with every stderr line after the first (and may not throw).
    std::function<void(const std::string&)> on_line;
    // How long the "listening" line may take (a server opening a large --db needs longer).
    Clock::duration start_patience = std::chrono::seconds(10);
  };

  // Starts the server and reads "chatserver listening on 127.0.0.1:<port>" from its first
  // stderr line, waiting at most Launch::start_patience (10 s). Throws std::runtime_error (with
  // what the server said).
  ServerProcess(const std::string& path, const std::vector<std::string>& extra);
  ServerProcess(const std::string& path, const std::vector<std::string>& extra, Launch launch);
  ~ServerProcess();

  std::uint16_t port() const { return port_; }
  pid_t pid() const { return process_.pid(); }
  // Milliseconds from the spawn to the "listening" line: the server's start-up time.
  double start_ms() const { return start_ms_; }
  ChildProcess& process() { return process_; }

  // SIGTERM, wait at most `grace` for the exit, then SIGKILL. Returns the exit code (128 +
  // signal when killed). Idempotent. Throws Interrupted.
  int stop(Clock::duration grace = std::chrono::seconds(5));

  // The last lines the server wrote to stderr. Thread safe.
  std::vector<std::string> stderr_tail() const;

 private:
  void drain(std::stop_token stop);

  Launch launch_;
  ChildProcess process_;
  std::uint16_t port_ = 0;
  double start_ms_ = 0;
  mutable std::mutex tail_mutex_;
  std::deque<std::string> tail_;  // guarded by tail_mutex_
  std::jthread drain_;            // last: joined before process_ closes the pipe it reads
};

// The absolute path of this executable (/proc/self/exe), to start it again as a victim.
std::string self_path();

}  // namespace chat::bench
