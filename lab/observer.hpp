// Observer: the client that stays. It joins the room as "observer" before the victim, answers
// the server's PINGs (so it is never the one dropped), and reads what "the others" receive:
// the victim's JOIN, and the LEAVE with its cause, which is the end of every scenario. It can
// also talk (say), to give the server something to send the victim.
//
// With ids (`HELLO observer ids`, docs/protocol.md "Ids, resume and history") it keeps every
// tagged line it reads, "@<id>/<ms> <line>", in order (tagged()): what a resuming victim's
// replay must equal. The JOIN and LEAVE it waits for are then read without their tags, and its
// own MSG lines and a BACK go on the timeline too, with their tags.
//
// Over TLS (chatlab --tls) it runs the handshake in its constructor and then reads and writes
// through a tls::Engine, moving the ciphertext itself (lab/tls_client.hpp: nothing is verified,
// the server is the lab's own).
//
// Threads: the constructor connects on the calling thread (the main thread) and starts the
// observer's reader thread, which reads every line and answers PINGs; the destructor stops and
// joins it. say() and the wait_*() calls are for the main thread; the state they share with
// the reader thread is guarded by mutex_, and sending by send_mutex_. Over TLS both threads use
// the one engine: tls_mutex_ is held for each engine call (microseconds), never while a thread
// waits; ciphertext is taken out of the engine only with send_mutex_ held, so it goes on the
// wire in the engine's order.
#pragma once

#include "common/tls.hpp"
#include "lab/timeline.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace chat::lab {

// A blocking TCP connection to `address`:`port` (IPv4), made from inside the network namespace
// `netns` when it is not empty (/run/netns/<netns>; the calling thread enters it for the
// connect and comes back; a socket stays in the namespace it was made in). Waits at most
// `timeout`. Returns the descriptor; throws std::system_error / std::runtime_error.
int connect_tcp(const std::string& address, std::uint16_t port, const std::string& netns,
                std::chrono::milliseconds timeout);

// Sends all of `data` on a blocking socket (MSG_NOSIGNAL); false when the connection is gone.
bool send_all(int fd, std::string_view data);

// The local port of a connected socket.
std::uint16_t local_port(int fd);

struct LeaveSeen {
  WallClock::time_point at;
  std::string cause;
  std::string detail;
};

// A line read with its tag: "@<id>/<unix ms> <rest>".
struct TaggedLine {
  WallClock::time_point at;  // when it was read
  std::uint64_t id = 0;
  std::string line;          // the whole line as the server sent it, tag included
  std::string rest;          // the line after the tag ("MSG observer hi")
};
// Splits a tagged line; nullopt for a line without a well-formed tag.
std::optional<TaggedLine> parse_tagged(const std::string& line, WallClock::time_point at = {});

class Observer {
 public:
  struct Options {
    bool ids = false;           // join with ids (HELLO observer ids) and keep the tagged lines
    bool tls = false;           // speak TLS (the lab's own server: nothing verified)
    bool show_victim = false;   // put the victim's MSG lines on the timeline (what the others read)
  };
  Observer(const std::string& address, std::uint16_t port, const std::string& netns, Timeline& timeline,
           Options options);
  ~Observer();
  Observer(const Observer&) = delete;
  Observer& operator=(const Observer&) = delete;

  std::uint16_t port() const { return port_; }
  // Sends "SAY <text>". False if the connection is gone.
  bool say(const std::string& text);
  // Waits until the room says `nick` joined (JOIN), or until `deadline`.
  bool wait_join(const std::string& nick, std::chrono::steady_clock::time_point deadline);
  // Waits for "LEAVE <nick> ...", until `deadline`.
  std::optional<LeaveSeen> wait_leave(const std::string& nick, std::chrono::steady_clock::time_point deadline);
  // The LEAVE of `nick` if it has come (does not wait).
  std::optional<LeaveSeen> leave_of(const std::string& nick) const;
  // With ids: every tagged line read so far, in the order read.
  std::vector<TaggedLine> tagged() const;
  // With ids: the first tagged line whose text after the tag starts with `prefix`, waiting for
  // it until `deadline` if none has been read yet.
  std::optional<TaggedLine> wait_tagged(const std::string& prefix, std::chrono::steady_clock::time_point deadline);

 private:
  void read_loop(std::stop_token stop, std::string early);
  bool send_line(const std::string& line);
  // Over TLS: the received ciphertext's plaintext, appended to `plain`; false when the stream
  // is over (close_notify, bad records: said on the timeline).
  bool open(std::string_view cipher, std::string& plain);
  // Over TLS: sends what the engine has made meanwhile (with send_mutex_ held).
  bool send_engine_output();
  std::optional<LeaveSeen> find_leave(const std::string& nick) const;  // with mutex_ held

  Timeline& timeline_;
  const Options options_;
  std::mutex send_mutex_;  // one line at a time: the main thread's SAYs, the reader's PONGs
  std::mutex tls_mutex_;   // held for each call on tls_
  // Guarded by tls_mutex_; null in clear text. Made before fd_ (ready_client: its ClientHello
  // goes right after the connect).
  std::unique_ptr<tls::Engine> tls_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> joined_;  // guarded by mutex_
  std::vector<std::pair<std::string, LeaveSeen>> left_;  // guarded by mutex_
  bool welcomed_ = false;            // guarded by mutex_: the server said WELCOME
  bool gone_ = false;                // guarded by mutex_: the server closed the connection
  std::vector<TaggedLine> tagged_;   // guarded by mutex_: with ids, bounded by max_tagged
  static constexpr std::size_t max_tagged = 100'000;
  std::jthread reader_;              // last: stopped and joined before the rest goes
};

}  // namespace chat::lab
