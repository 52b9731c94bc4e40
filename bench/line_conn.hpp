// LineConn: one chat connection of the benchmark, a non-blocking TCP socket to 127.0.0.1 with
// a line buffer each way. Many of them are driven by one thread with pump(), a poll(2) round
// over all of them: that is how chatbench plays 1000 clients without 1000 threads, and how a
// sender can keep writing while it reads its own echoes.
//
// Threads: not thread safe. One thread creates, pumps, reads and destroys a LineConn.
//
// Memory is bounded: a received line is at most 1 MiB (the server sends at most --max-line plus
// a prefix); output is bounded by what the caller queues (the callers cap it).
#pragma once

#include "bench/deadline.hpp"

#include <poll.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace chat::bench {

class LineConn {
 public:
  // Connects to 127.0.0.1:`port`, waiting until `deadline`. `rcvbuf` > 0 sets SO_RCVBUF
  // before connecting (so the window scale matches a small buffer). Throws std::system_error
  // or std::runtime_error (timeout).
  LineConn(std::uint16_t port, Clock::time_point deadline, int rcvbuf = 0);
  ~LineConn();
  LineConn(LineConn&& other) noexcept;
  LineConn& operator=(LineConn&&) = delete;
  LineConn(const LineConn&) = delete;
  LineConn& operator=(const LineConn&) = delete;

  int fd() const { return fd_; }
  // True while the connection can still deliver lines (not closed, no EOF or error seen).
  bool live() const { return fd_ >= 0 && !eof_ && error_.empty(); }
  bool at_eof() const { return eof_; }
  // Why the connection ended ("connection reset by peer", ...); empty at EOF or while live.
  const std::string& error() const { return error_; }

  // Queues `line` plus LF and writes as much as the socket takes now.
  void send_line(std::string_view line);
  std::size_t pending_output() const { return out_.size() - out_pos_; }

  // The next complete line (without CR LF) already received, if any. The view is valid until
  // the next pump() (which may move the buffer).
  std::optional<std::string_view> next_line();

  // pump()'s part: the events poll(2) should wait for, and what to do when they come.
  short wanted_events() const;
  void on_events(short revents);

  // Closes with SO_LINGER {1, 0}: the kernel sends RST instead of FIN.
  void close_with_reset();
  void close();

 private:
  void flush();
  void fill();

  int fd_ = -1;
  bool eof_ = false;
  std::string error_;
  std::string in_;
  std::size_t in_pos_ = 0;   // in_[in_pos_..] is not yet returned by next_line()
  std::string out_;
  std::size_t out_pos_ = 0;  // out_[out_pos_..] is not yet written
};

// One poll(2) round over `conns` (null entries and dead connections are skipped) and `extra`
// descriptors (their revents are filled in), waiting at most until `deadline` and never more
// than poll_slice. Reads and writes whatever is ready. Returns when something happened or time
// is up. Throws Interrupted.
void pump(std::span<LineConn* const> conns, Clock::time_point deadline, std::span<pollfd> extra = {});

// The protocol chores of a well-behaved client: a PING line gets its PONG. True if `line` was
// such a chore (and is handled).
bool answer_ping(LineConn& conn, std::string_view line);

// Joins as `nick` in protocol mode: sends HELLO and reads "WELCOME <nick>" and the USERS line
// after it, answering PINGs. After that the server has nothing more queued for this client
// (unless someone else speaks), which matters when the client is then killed: Linux answers
// the close of a socket with unread data by RST, not FIN. Throws std::runtime_error with what
// the server said instead (or on timeout).
void join(LineConn& conn, const std::string& nick, Clock::time_point deadline);

// Connects `count` clients and joins them as `prefix`0, `prefix`1, ...; returns once every one
// has read its WELCOME and USERS, and every JOIN of the clients that joined after it, so the
// room is quiet.
// The clients connect in batches and are read as they join, so no buffer backs up. Throws
// std::runtime_error (a refusal, or not done by `deadline`).
std::vector<LineConn> join_many(std::uint16_t port, const std::string& prefix, int count, Clock::time_point deadline);

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force.
long raise_file_limit();

}  // namespace chat::bench
