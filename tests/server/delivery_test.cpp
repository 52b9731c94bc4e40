// The delivery path (issue 8): one global order for 200 members and 8 concurrent senders with
// any number of writer threads, backpressure instead of a self-inflicted too-slow for a client
// that sends faster than it reads, a slow reader among 200 members dropped without delaying the
// others, and the STATS line. A real chat::Server on 127.0.0.1:0, clients on real sockets.
//
// Threads: the test thread drives every client and makes every assertion; sender threads (each
// owning its client or a raw descriptor) only send, and report failures through atomics; the
// backpressure tests' RoomObserver reads its client on a thread of its own and reports after
// it is joined.
#include "tests/server/test_server.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <latch>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace chat::test;
using Clock = std::chrono::steady_clock;

namespace {

// "STATS clients=3 joined=2 ..." -> {clients: 3, joined: 2, ...}
std::map<std::string, long long> parse_stats(const std::string& line) {
  std::map<std::string, long long> out;
  std::size_t pos = line.find(' ');
  while (pos != std::string::npos) {
    const auto next = line.find(' ', pos + 1);
    const auto word = line.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1);
    const auto eq = word.find('=');
    if (eq != std::string::npos) out[word.substr(0, eq)] = std::stoll(word.substr(eq + 1));
    pos = next;
  }
  return out;
}

std::map<std::string, long long> stats_of(LineClient& c) {
  REQUIRE(c.send_line("STATS"));
  return parse_stats(expect_prefix(c, "STATS "));
}

// Joins `count` protocol clients named prefix0, prefix1, ... and reads every JOIN each one is
// sent, so all of them start with nothing unread.
std::vector<std::unique_ptr<LineClient>> join_many(std::uint16_t port, const std::string& prefix, int count) {
  std::vector<std::unique_ptr<LineClient>> clients;
  for (int i = 0; i < count; ++i) clients.push_back(connect_and_join(port, prefix + std::to_string(i)));
  for (int i = 0; i < count; ++i) {
    for (int later = i + 1; later < count; ++later) {
      const auto line = next_line(*clients[static_cast<std::size_t>(i)]);
      INFO("client " << i << " expected the JOIN of " << later);
      REQUIRE(line == "JOIN " + prefix + std::to_string(later));
    }
  }
  return clients;
}

// The observer of the backpressure tests, read on a thread of its own so that it never becomes
// too slow itself, whatever the test thread is busy with (it was dropped too-slow on machines
// where the test thread read the flooder for longer than the kernel's buffers last). It counts
// `MSG <from> <i> ...` in order; a LEAVE, a BYE, a gap or the end of the connection is kept as a
// problem for the test thread to check after stop(). With poll_stats it asks STATS every 50 ms
// and keeps the last paused_now. Threads: the test thread constructs, waits on and stops it, the
// flooder's thread waits on it; only its own thread touches the LineClient until stop() returns.
// Whoever waits is woken through changed_ whenever it saw a line, a STATS answer or a problem.
class RoomObserver {
 public:
  RoomObserver(LineClient& c, std::string from, bool poll_stats)
      : client_(c), prefix_("MSG " + std::move(from) + " "), poll_stats_(poll_stats),
        thread_([this](std::stop_token st) { run(st); }) {}
  ~RoomObserver() { stop(); }
  RoomObserver(const RoomObserver&) = delete;
  RoomObserver& operator=(const RoomObserver&) = delete;

  int seen() const { return seen_.load(); }
  long long paused_now() const { return paused_now_.load(); }

  // Waits until `done()` holds, the observer has stopped on a problem, `st` asks to stop or the
  // deadline passes; returns done(). done() is checked each time the observer saw something
  // (with poll_stats, a STATS answer at least every 50 ms).
  template <typename Done>
  bool wait(Done done, Clock::time_point deadline, std::stop_token st = {}) const {
    std::unique_lock lock(mutex_);
    changed_.wait_until(lock, st, deadline, [&] { return done() || finished_; });
    return done();
  }

  // Waits (at most 60 s) until `n` lines have been seen; false if they were not.
  bool wait_for(int n) const {
    return wait([&] { return seen_ >= n; }, Clock::now() + std::chrono::seconds(60));
  }

  // Joins the thread; returns the problems seen, empty if none. The LineClient is the test
  // thread's again afterwards.
  std::string stop() {
    if (thread_.joinable()) {
      thread_.request_stop();
      thread_.join();
    }
    return problems_;
  }

 private:
  void run(std::stop_token st) {
    auto next_stats = Clock::now();
    while (!st.stop_requested()) {
      if (poll_stats_ && Clock::now() >= next_stats) {
        if (!client_.send_line("STATS")) return fail("STATS could not be sent");
        next_stats = Clock::now() + std::chrono::milliseconds(50);
      }
      auto line = client_.read_line(std::chrono::milliseconds(20));
      if (!line) {
        if (client_.closed()) return fail("the connection ended: " + client_.read_error().message());
        continue;
      }
      if (line->starts_with(prefix_)) {
        const auto number = line->substr(prefix_.size(), line->find(' ', prefix_.size()) - prefix_.size());
        if (number != std::to_string(seen_.load())) return fail("expected line " + std::to_string(seen_) + ", got " + number);
        notify([&] { ++seen_; });
      } else if (line->starts_with("STATS ")) {
        const auto paused = parse_stats(*line)["paused_now"];
        notify([&] { paused_now_ = paused; });
      } else if (line->starts_with("LEAVE") || line->starts_with("BYE") || line->starts_with("ERROR")) {
        return fail("unexpected: " + line->substr(0, 100));
      }  // PING and the like: the server's heartbeat, answered by nobody here (the test is short)
    }
  }
  void fail(std::string what) {
    problems_ = "observer, after " + std::to_string(seen_) + " lines: " + std::move(what);
    notify([&] { finished_ = true; });
  }
  // Changes what waiters look at under mutex_, so none can miss it between its check and its wait.
  template <typename Change>
  void notify(Change change) {
    {
      std::lock_guard lock(mutex_);
      change();
    }
    changed_.notify_all();
  }

  LineClient& client_;
  const std::string prefix_;
  const bool poll_stats_;
  std::atomic<int> seen_{0};
  std::atomic<long long> paused_now_{0};
  std::atomic<bool> finished_{false};
  mutable std::mutex mutex_;                   // taken to change seen_, paused_now_, finished_
  mutable std::condition_variable_any changed_;  // notified after each change
  std::string problems_;  // written by thread_, read after it is joined
  std::jthread thread_;   // last: starts after everything it uses
};

// The flooder's echo of its line `i` ("MSG flooder <i> ..."): the next MSG it reads, with no
// LEAVE or BYE before it. Test thread only.
void read_echo(LineClient& flooder, int i) {
  auto line = flooder.expect_line(
      [](const std::string& l) { return l.starts_with("MSG ") || l.starts_with("LEAVE") || l.starts_with("BYE"); },
      io_timeout);
  INFO("the flooder's echo " << i << (line ? ": " + line->substr(0, 80) : std::string(" did not come")));
  REQUIRE(line);
  REQUIRE(line->starts_with("MSG flooder " + std::to_string(i) + " "));
}

// Sends up to `lines` lines "SAY <i> <880 x f>" on a raw descriptor as fast as the observer
// takes them: at most `window` lines ahead of it, so that only the flooder, which reads nothing
// or reads late, falls behind. A send that blocks (the server stopped reading) is backpressure.
class Flooder {
 public:
  Flooder(int fd, int lines, const RoomObserver& observer, int window = 64)
      : fd_(fd), thread_([this, lines, &observer, window](std::stop_token st) { run(st, fd_, lines, observer, window); }) {}
  // A test that failed may leave the thread blocked in send(): shutting down the sending side
  // wakes it (EPIPE), so the destructor never hangs.
  ~Flooder() {
    stop();
    if (!done_) ::shutdown(fd_, SHUT_WR);
    join();
  }
  Flooder(const Flooder&) = delete;
  Flooder& operator=(const Flooder&) = delete;

  int sent() const { return sent_.load(); }
  bool done() const { return done_.load(); }
  bool failed() const { return failed_.load(); }
  void stop() { thread_.request_stop(); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run(std::stop_token st, int fd, int lines, const RoomObserver& observer, int window) {
    const std::string filler(880, 'f');
    const auto deadline = Clock::now() + std::chrono::seconds(120);
    for (int i = 0; i < lines && !st.stop_requested() && Clock::now() < deadline; ++i) {
      if (!observer.wait([&] { return i - observer.seen() <= window; }, deadline, st)) break;
      const std::string line = "SAY " + std::to_string(i) + " " + filler + "\n";
      if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
        failed_ = true;
        break;
      }
      ++sent_;
    }
    done_ = true;
  }

  const int fd_;
  std::atomic<int> sent_{0};
  std::atomic<bool> done_{false};
  std::atomic<bool> failed_{false};
  std::jthread thread_;  // last
};

}  // namespace

TEST_CASE("8 senders, 200 members: every member gets every message in one global order", "[delivery][order]") {
  const auto writers = GENERATE(1, 2, 4);
  INFO(writers << " writer threads");
  constexpr int members = 200;
  constexpr int senders = 8;
  const int per_sender = sanitized ? 25 : 100;
  const int total = senders * per_sender;

  auto config = TestServer::config();
  config.writers = static_cast<std::size_t>(writers);
  config.max_per_ip = 0;  // 200 members from 127.0.0.1
  config.max_rate = 0;    // senders as fast as they can
  TestServer server(config);
  auto clients = join_many(server.port(), "m", members);

  std::atomic<int> send_failures{0};
  std::latch start(senders);
  {
    std::vector<std::jthread> threads;
    for (int s = 0; s < senders; ++s) {
      // Raw sends on the client's descriptor: the test thread keeps the LineClient for reading.
      const int fd = clients[static_cast<std::size_t>(s)]->socket().native_handle();
      threads.emplace_back([fd, s, per_sender, &send_failures, &start] {
        start.arrive_and_wait();
        for (int i = 0; i < per_sender; ++i) {
          const std::string line = "SAY " + std::to_string(s) + ":" + std::to_string(i) + "\n";
          if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) ++send_failures;
        }
      });
    }
  }
  CHECK(send_failures == 0);

  std::vector<std::string> reference;
  for (int m = 0; m < members; ++m) {
    std::vector<std::string> seen;
    seen.reserve(static_cast<std::size_t>(total));
    auto& c = *clients[static_cast<std::size_t>(m)];
    while (seen.size() < static_cast<std::size_t>(total)) {
      const auto line = next_line(c);
      INFO("member " << m << " after " << seen.size() << " messages");
      REQUIRE(line.starts_with("MSG m"));
      seen.push_back(line);
    }
    if (m == 0) {
      // Each sender's messages in its own order, each once.
      std::vector<int> next(senders, 0);
      for (const auto& line : seen) {
        // "MSG m3 3:17"
        const auto colon = line.find(':');
        const int s = std::stoi(line.substr(line.rfind(' ', colon) + 1, colon));
        REQUIRE(s >= 0);
        REQUIRE(s < senders);
        CHECK(line.substr(colon + 1) == std::to_string(next[static_cast<std::size_t>(s)]));
        ++next[static_cast<std::size_t>(s)];
      }
      reference = std::move(seen);
    } else {
      INFO("member " << m << " saw another order than member 0");
      REQUIRE(seen == reference);
    }
  }
}

TEST_CASE("a client that sends faster than it reads is slowed by backpressure, never dropped", "[delivery][backpressure]") {
  // The case from the issue: 1,000 lines of 900 bytes sent as fast as the observer takes them
  // while the client reads with a 64 KiB receive buffer, --send-queue 256KiB. Before the
  // rebuild the sender was dropped too-slow by its own echoes, and the observer too.
  auto config = TestServer::config();
  config.send_queue = 256 * 1024;
  config.max_rate = 0;  // the flooder floods: backpressure, not flood control, is under test
  TestServer server(config);
  auto observer = connect_and_join(server.port(), "observer");
  auto flooder = connect_and_join(server.port(), "flooder");
  flooder->socket().set_option(asio::socket_base::receive_buffer_size(64 * 1024));
  REQUIRE(observer->expect_line("JOIN flooder", io_timeout));

  constexpr int lines = 1000;
  RoomObserver watch(*observer, "flooder", false);
  Flooder sender(flooder->socket().native_handle(), lines, watch);
  // The test thread reads the flooder: every echo, in order, and nobody leaves.
  for (int i = 0; i < lines; ++i) read_echo(*flooder, i);
  sender.join();
  CHECK_FALSE(sender.failed());
  REQUIRE(watch.wait_for(lines));
  const auto problems = watch.stop();
  INFO(problems);
  CHECK(problems.empty());
  const auto stats = stats_of(*observer);
  WARN("the server stopped reading the flooder " << stats.at("pauses") << " times");
  CHECK(stats.at("leave_too_slow") == 0);
  CHECK(stats.at("joined") == 2);
}

TEST_CASE("backpressure: the server stops reading a client that does not read, and resumes when it does",
          "[delivery][backpressure]") {
  // The mechanism on its own, deterministically: the flooder reads nothing until the server has
  // stopped reading from it. No keepalive (its TCP_USER_TIMEOUT would end a zero window that
  // lasts 16 s, which a sanitizer build may reach) and no send timeout get in the way.
  auto config = TestServer::config();
  config.send_queue = 256 * 1024;
  config.keepalive.enabled = false;
  config.send_timeout = std::chrono::minutes(10);
  config.max_rate = 0;  // the flooder floods: backpressure, not flood control, is under test
  TestServer server(config);
  auto observer = connect_and_join(server.port(), "observer");
  auto flooder = connect_and_join(server.port(), "flooder");
  // The flooder keeps the kernel's receive buffer. With a small SO_RCVBUF (64 KiB, as in the
  // test above) that nothing reads, Linux 6.18 drops the server's segments once the buffer is
  // full (TcpExtTCPRcvQDrop), the ACKs they carry with them: the flooder's own data is then
  // retransmitted with exponential backoff, and after a few hundred lines the connection
  // stalls in both directions before the server has anything to pause for.
  REQUIRE(observer->expect_line("JOIN flooder", io_timeout));

  // Sends until told to stop (at most 20,000 lines of 900 bytes): the kernel's buffers take a
  // few MB before anything waits in the server. The observer asks STATS until the flooder's
  // reader is paused.
  RoomObserver watch(*observer, "flooder", true);
  Flooder sender(flooder->socket().native_handle(), 20'000, watch);
  watch.wait([&] { return watch.paused_now() != 0 || sender.done(); }, Clock::now() + std::chrono::seconds(120));
  if (watch.paused_now() != 1) {
    sender.stop();
    FAIL("the server did not stop reading the flooder: it sent " << sender.sent() << " lines"
         << (sender.failed() ? " (a send failed)" : "") << ", the observer saw " << watch.seen() << "; "
         << watch.stop());
  }
  // The reader is paused, so the flooder's sends stop making progress.
  sender.stop();
  WARN("the server stopped reading the flooder after " << sender.sent() << " lines");

  // Now the flooder reads: the server resumes reading it, and everything arrives, in order.
  int flooder_next = 0;
  bool sender_done = false;
  while (!sender_done || flooder_next < sender.sent()) {
    read_echo(*flooder, flooder_next);
    ++flooder_next;
    if (!sender_done && flooder_next >= sender.sent()) {
      sender.join();  // it stops after its current send, which the server now reads
      sender_done = true;
    }
  }
  CHECK_FALSE(sender.failed());
  REQUIRE(watch.wait_for(sender.sent()));
  const auto problems = watch.stop();
  INFO(problems);
  CHECK(problems.empty());
  const auto stats = stats_of(*observer);
  CHECK(stats.at("leave_too_slow") == 0);
  CHECK(stats.at("pauses") >= 1);
  CHECK(stats.at("paused_now") == 0);
  CHECK(stats.at("joined") == 2);
}

TEST_CASE("a slow reader among 200 members leaves too-slow, the others are not delayed", "[delivery][too-slow]") {
  // Loopback on Linux 6 gives the server's socket a send buffer of about 4 MB, and a client that
  // never reads fills it before anything waits in the server: the slow one leaves after about
  // 2 MB of 3 KB lines, and every other member must take all of that.
  const int members = sanitized ? 50 : 200;
  auto config = TestServer::config();
  config.send_queue = 64 * 1024;
  config.max_per_ip = 0;  // 200 members from 127.0.0.1
  config.max_rate = 0;    // the sender sends as fast as the observer reads
  TestServer server(config);
  auto clients = join_many(server.port(), "m", members - 1);
  auto slow = connect_and_join(server.port(), "slow");  // never reads again
  slow->socket().set_option(asio::socket_base::receive_buffer_size(4096));
  for (auto& c : clients) REQUIRE(c->expect_line("JOIN slow", io_timeout));

  auto& sender = *clients[0];
  auto& observer = *clients[1];
  const std::string filler(3000, 'x');
  Clock::duration worst{};
  std::string leave;
  int sent = 0;
  // Bounded: at most 3000 lines of 3 KB, or 120 s.
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (leave.empty() && sent < 3000 && Clock::now() < deadline) {
    const auto t0 = Clock::now();
    REQUIRE(sender.send_line("SAY " + std::to_string(sent) + " " + filler));
    auto got = observer.expect_line(
        [&](const std::string& l) {
          if (l.starts_with("LEAVE slow")) leave = l;
          return l.starts_with("MSG m0 " + std::to_string(sent) + " ");
        },
        io_timeout);
    REQUIRE(got);
    worst = std::max(worst, Clock::now() - t0);
    ++sent;
    // Everybody else reads too (every 20 lines), so the slow one is the only one behind.
    if (sent % 20 == 0 || !leave.empty()) {
      for (std::size_t i = 0; i < clients.size(); ++i) {
        if (i == 1) continue;
        auto line = clients[i]->expect_line("MSG m0 " + std::to_string(sent - 1) + " ", io_timeout);
        INFO("member " << i << " did not get line " << sent - 1);
        REQUIRE(line);
      }
    }
  }
  if (leave.empty()) {
    auto l = observer.expect_line("LEAVE slow", io_timeout);
    REQUIRE(l);
    leave = *l;
  }
  const auto worst_ms = std::chrono::duration_cast<std::chrono::milliseconds>(worst).count();
  WARN("slow left after " << sent << " lines of 3 KB; worst delivery to the observer " << worst_ms << " ms: " << leave);
  CHECK(leave.starts_with("LEAVE slow too-slow send queue over 65536 bytes"));
  CHECK(worst < std::chrono::seconds(2));  // generous: a busy CI core; chatbench reports figures
  // Nobody else left, and the room goes on.
  const auto stats = stats_of(observer);
  CHECK(stats.at("leave_too_slow") == 1);
  CHECK(stats.at("joined") == members - 1);
  REQUIRE(sender.send_line("SAY after"));
  CHECK(observer.expect_line("MSG m0 after", io_timeout));
}

namespace {

// The descriptor in this process (the in-process server's side) whose peer is `local`: the
// server's socket to a test client, found through /proc/self/fd and getpeername.
int server_socket_to(const sockaddr_in& local) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    int fd = -1;
    try {
      fd = std::stoi(entry.path().filename().string());
    } catch (const std::exception&) {
      continue;
    }
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0 || peer.sin_family != AF_INET) continue;
    if (peer.sin_port == local.sin_port && peer.sin_addr.s_addr == local.sin_addr.s_addr) return fd;
  }
  return -1;
}

// A client with a 4 KiB receive buffer, set before it connects so that its window is small from
// the start: it says HELLO `nick` and never reads a byte. Returns its descriptor.
int connect_non_reader(std::uint16_t port, const std::string& nick) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  const int rcvbuf = 4096;
  REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) == 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);
  const std::string hello = "HELLO " + nick + "\n";
  REQUIRE(::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(hello.size()));
  return fd;
}

}  // namespace

TEST_CASE("a client that never reads, 4 KiB receive buffer: too-slow within --send-timeout, the kernel holds little",
          "[delivery][too-slow][not-reading]") {
  // Issue 21's measurement: before TCP_NOTSENT_LOWAT and the kernel's bytes in the backlog, the
  // server's socket took all 900 KB of this (its send buffer autotuned to 3.9 MB), the writer's
  // queue stayed empty, no write stalled, and the client was only removed 25 s later (no-pong).
  auto config = TestServer::config();
  config.send_queue = 256 * 1024;
  config.send_timeout = chat::Millis{2000};
  config.max_rate = 0;  // the talker sends as fast as it can
  TestServer server(config);
  auto observer = connect_and_join(server.port(), "observer");
  auto talker = connect_and_join(server.port(), "talker");
  expect_prefix(*observer, "JOIN talker");

  const int fd = connect_non_reader(server.port(), "nonreader");
  expect_prefix(*observer, "JOIN nonreader");
  expect_prefix(*talker, "JOIN nonreader");
  sockaddr_in local{};
  socklen_t len = sizeof local;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0);
  const int server_fd = server_socket_to(local);
  REQUIRE(server_fd >= 0);

  // 1,000 lines of 900 bytes. The talker and the observer read every line, in order, as it comes.
  const std::string filler(880, 'x');
  std::size_t kernel_peak = 0;
  std::string leave;
  Clock::duration worst{};
  const auto started = Clock::now();
  Clock::time_point left_at{};
  for (int i = 0; i < 1000; ++i) {
    const auto t0 = Clock::now();
    const std::string text = std::to_string(i) + " " + filler;
    REQUIRE(talker->send_line("SAY " + text));
    const std::string want = "MSG talker " + text;
    for (;;) {
      const auto line = observer->read_line(io_timeout);
      INFO("the observer waited for line " << i);
      REQUIRE(line);
      if (line->starts_with("LEAVE nonreader")) {
        CHECK(leave.empty());  // once
        leave = *line;
        left_at = Clock::now();
        continue;
      }
      REQUIRE(*line == want);  // every line, once, in order: nothing else comes in between
      break;
    }
    worst = std::max(worst, Clock::now() - t0);
    auto echo = talker->expect_line([&](const std::string& l) { return l == want; }, io_timeout);
    REQUIRE(echo);
    int queued = 0;
    if (leave.empty() && ::ioctl(server_fd, SIOCOUTQ, &queued) == 0) {
      kernel_peak = std::max(kernel_peak, static_cast<std::size_t>(queued));
    }
  }
  if (leave.empty()) {
    // Not over --send-queue yet: the stalled write rule, --send-timeout after the socket filled.
    auto line = observer->expect_line("LEAVE nonreader", std::chrono::milliseconds(2000) + io_timeout);
    REQUIRE(line);
    leave = *line;
    left_at = Clock::now();
  }
  ::close(fd);
  const auto ms = [](Clock::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  WARN("the non-reader left after " << ms(left_at - started) << " ms: " << leave << "; the kernel held at most "
                                    << kernel_peak << " bytes for it; worst line to the observer " << ms(worst)
                                    << " ms");
  CHECK(leave.starts_with("LEAVE nonreader too-slow"));
  // Generous (a busy CI core): the rule's own time is --send-timeout + one sweep; chatbench and
  // chatlab report the figure.
  CHECK(left_at - started < std::chrono::seconds(10));
  // The kernel's share is capped (a quarter of --send-queue unsent, plus a segment and the 4 KiB
  // window): before, it was 900 KB and growing.
  CHECK(kernel_peak <= config.send_queue / 2);
  CHECK(worst < std::chrono::seconds(2));
  const auto stats = stats_of(*observer);
  CHECK(stats.at("leave_too_slow") == 1);
  CHECK(stats.at("joined") == 2);
}

TEST_CASE("a non-reader is too-slow once its queue and the kernel's unsent bytes together pass --send-queue",
          "[delivery][too-slow][not-reading]") {
  // 150 KB to a client that never reads, --send-queue 128 KiB and no --send-timeout to speak of:
  // the kernel takes at least its cap (32 KiB unsent, a quarter of the queue) before a write
  // finds the socket full, so the queue in the server alone stays under 128 KiB (150 - 32 - the
  // client's window). Only counting the kernel's bytes takes it over.
  auto config = TestServer::config();
  config.send_queue = 128 * 1024;
  config.send_timeout = chat::Millis{3'600'000};
  config.max_rate = 0;
  TestServer server(config);
  auto observer = connect_and_join(server.port(), "observer");
  auto talker = connect_and_join(server.port(), "talker");
  expect_prefix(*observer, "JOIN talker");
  const int fd = connect_non_reader(server.port(), "nonreader");
  expect_prefix(*observer, "JOIN nonreader");
  expect_prefix(*talker, "JOIN nonreader");

  const std::string filler(880, 'k');
  std::string leave;
  for (int i = 0; i < 167; ++i) {  // 167 lines of 900 bytes: about 150 KB
    const std::string want = "MSG talker " + std::to_string(i) + " " + filler;
    REQUIRE(talker->send_line("SAY " + std::to_string(i) + " " + filler));
    auto got = observer->expect_line(
        [&](const std::string& l) {
          if (l.starts_with("LEAVE nonreader")) leave = l;
          return l == want;
        },
        io_timeout);
    REQUIRE(got);
    REQUIRE(talker->expect_line([&](const std::string& l) { return l == want; }, io_timeout));
  }
  if (leave.empty()) {
    auto line = observer->expect_line("LEAVE nonreader", io_timeout);
    INFO("no LEAVE: the queue alone never passed --send-queue, and the kernel's bytes were not counted");
    REQUIRE(line);
    leave = *line;
  }
  ::close(fd);
  CHECK(leave.starts_with("LEAVE nonreader too-slow send queue over 131072 bytes"));
}

TEST_CASE("STATS answers one line of counters, before and after joining, text mode has no STATS", "[delivery][stats]") {
  TestServer server;
  auto before = connect_client(server.port());
  REQUIRE(before->send_line("HELLO x"));  // protocol mode
  expect_prefix(*before, "USERS");
  auto a = connect_and_join(server.port(), "a");
  const auto stats = stats_of(*a);
  for (const char* key : {"clients", "joined", "threads", "writers", "events", "deliveries", "bytes_out",
                          "leave_quit", "leave_closed", "leave_reset", "leave_timeout", "leave_no_pong",
                          "leave_too_slow", "leave_error", "sweep_p50_us", "sweep_max_us", "backlog_now",
                          "backlog_peak", "paused_now", "pauses"}) {
    INFO("key " << key);
    CHECK(stats.contains(key));
  }
  CHECK(stats.at("clients") == 2);
  CHECK(stats.at("joined") == 2);
  CHECK(stats.at("writers") == 2);
  CHECK(stats.at("events") >= 2);  // two JOINs
  CHECK(stats.at("threads") >= 2 + 2 + 3);  // readers, writers, listener/poller/main

  // Before joining, in protocol mode, STATS works too (a monitor need not take a nickname): a
  // refused HELLO puts the connection in protocol mode without joining.
  auto monitor = connect_client(server.port());
  REQUIRE(monitor->send_line("HELLO b@d"));
  expect_prefix(*monitor, "ERROR bad-nick");
  REQUIRE(monitor->send_line("STATS"));
  CHECK(expect_prefix(*monitor, "STATS ").starts_with("STATS clients=3 "));

  auto text = connect_text(server.port(), "t");
  REQUIRE(text->send_line("/stats"));
  CHECK(next_text(*text).starts_with("*** unknown command: /stats"));
}
