// Transcript: the --log-file, a dated record of joins, leaves (with cause) and public
// messages; private messages are never written. The file is opened for appending: starting
// the server never wipes an earlier transcript.
//
// Threads: record() and note() are thread safe and never block (the room calls them with its
// lock held); a writer thread owned by the Transcript appends the lines to the file, so a
// slow disk cannot stall the room. If that thread falls more than 1 MiB behind, lines are
// dropped and the number dropped is logged.
#pragma once

#include "common/protocol.hpp"
#include "server/send_queue.hpp"

#include <atomic>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>

namespace chat {

class Transcript {
 public:
  // Empty path: a transcript that records nothing. Throws std::runtime_error if the file
  // cannot be opened for appending.
  explicit Transcript(const std::string& path);
  ~Transcript();  // stop()

  // Writes what is queued, then joins the writer thread; later lines are dropped. Idempotent.
  // The thread that owns the Transcript (the main thread).
  void stop();
  Transcript(const Transcript&) = delete;
  Transcript& operator=(const Transcript&) = delete;

  void record(const Event& event, std::optional<std::size_t> online);  // thread safe
  void note(const std::string& text);                                  // thread safe
  // Closes the file and opens the same path again (SIGHUP, after logrotate has renamed it).
  // Thread safe. The writer thread reopens between two batches, so every line lands whole in
  // the old file or in the new one, in order, none lost. If the path cannot be opened, the old
  // file is kept and a warning logged.
  void reopen();

 private:
  void write_loop();

  const std::string path_;     // empty: no transcript; immutable, so any thread may test it
  std::FILE* file_ = nullptr;  // the writer thread's only, once started
  std::atomic<bool> reopen_{false};  // set by reopen(), taken by the writer thread
  SendQueue queue_{1 << 20};
  std::atomic<std::uint64_t> dropped_{0};
  std::jthread writer_;        // declared last: joined before the members it uses go
};

}  // namespace chat
