// Subprocess: runs a program (chatclient, chatserver) for a process test, with its stdin,
// stdout and stderr on pipes, and lets the test talk to it line by line with deadlines.
//
// Threads: not thread safe. One test thread creates, uses and destroys a Subprocess (Catch2's
// assertions are not thread safe either, so that is the thread that drives the test).
//
// Every wait is bounded: reads poll(2) with a deadline, the exit is awaited on a pidfd with a
// deadline. Nothing here sleeps to let time pass. Buffers are bounded (see LineBuffer): at most
// one 64 KiB read plus one 1 MiB line per stream; a longer line arrives in 1 MiB pieces.
//
// Side effect: the first Subprocess sets SIGPIPE to SIG_IGN in the test process, so that
// writing to the stdin of a child that has died fails with EPIPE instead of killing the test
// runner. The child gets the default SIGPIPE back (POSIX_SPAWN_SETSIGDEF).
#pragma once

#include "tests/support/line_buffer.hpp"

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chat::test {

enum class Stream { out, err };

class Subprocess {
 public:
  using LinePredicate = std::function<bool(const std::string&)>;

  // Spawns argv[0] (looked up in PATH when it has no '/') with argv. Throws std::system_error
  // when the program cannot be started.
  explicit Subprocess(std::vector<std::string> argv);
  // Kills (SIGKILL, by pid) and reaps the child if it is still running, closes the pipes.
  ~Subprocess();

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }

  // Writes all of `data` to the child's stdin, waiting at most `timeout` for pipe space.
  // False when stdin is closed, the child stopped reading, or the time ran out.
  bool write(std::string_view data, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Closes the child's stdin: it reads EOF. Idempotent.
  void close_stdin();

  // The next line the child wrote on `which` (without LF), waiting at most `timeout`.
  // nullopt on timeout, or at EOF with nothing left (see at_eof()).
  std::optional<std::string> read_line(Stream which, std::chrono::milliseconds timeout);

  // Reads lines from `which` until one satisfies `match` (or contains `substring`), for at most
  // `timeout` overall. Lines read before the match are consumed. When `seen` is given it gets
  // every line read during the wait, each followed by LF (the match last): on failure, what
  // the child did say instead.
  bool wait_for_line(Stream which, const LinePredicate& match, std::chrono::milliseconds timeout,
                     std::string* seen = nullptr);
  bool wait_for_line(Stream which, std::string_view substring, std::chrono::milliseconds timeout,
                     std::string* seen = nullptr);

  // True once `which` reached EOF and every line of it was read.
  bool at_eof(Stream which) const;

  // Sends `sig` to the child's pid (never by name). False if it was already reaped.
  bool signal(int sig);

  // Waits at most `timeout` for the child to exit and reaps it. Returns its exit code, or
  // 128 + signal number when a signal ended it; nullopt if it is still running. Once reaped,
  // returns the same value again at once.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);

 private:
  struct Pipe {
    int fd = -1;
    bool eof = false;
    LineBuffer lines;
  };
  Pipe& pipe_of(Stream which) { return which == Stream::out ? out_ : err_; }
  const Pipe& pipe_of(Stream which) const { return which == Stream::out ? out_ : err_; }
  bool try_reap();

  pid_t pid_ = -1;
  int pidfd_ = -1;  // readable when the child exits; -1 if the kernel has no pidfd_open
  int stdin_fd_ = -1;
  Pipe out_;
  Pipe err_;
  std::optional<int> exit_code_;  // set once reaped
};

}  // namespace chat::test
