// A join storm (issue 8): 2,000 clients connect and send HELLO at once. Every one must be in the
// room, nobody refused or dropped, and every member must read the JOIN of every member that came
// after it (the join chatter), then a message must reach all of them. Before the delivery path
// was rebuilt, 251 of 2,000 were dropped by the 30 s handshake timeout. Generous bounds: this is
// a behaviour test; chatbench join measures the time (docs/performance.md).
//
// Its own executable with the ctest label "storm", so it can be run alone: ctest -L storm.
//
// Threads: the test thread drives every client through one poll(2) loop over non-blocking
// sockets; the server runs in-process on 127.0.0.1:0.
#include "tests/server/test_server.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <chrono>
#include <string>
#include <vector>

using namespace chat::test;
using Clock = std::chrono::steady_clock;

namespace {

#ifdef CHAT_SANITIZED_BUILD
constexpr int storm_clients = 300;  // 2,000 reader threads under TSan take minutes
constexpr auto patience = std::chrono::seconds(300);
#else
constexpr int storm_clients = 2000;
constexpr auto patience = std::chrono::seconds(120);
#endif

struct StormClient {
  int fd = -1;
  bool connected = false;
  bool welcomed = false;
  bool joined = false;       // read WELCOME and USERS
  std::size_t roster = 0;    // names in its USERS line, itself included
  std::size_t joins = 0;     // JOIN lines read after that
  bool got_message = false;
  std::string ended;         // why it ended (ERROR / BYE line, or the socket's error)
  std::string in;
};

// Everything the storm needs: non-blocking connects, HELLO, reading lines.
class Storm {
 public:
  Storm(std::uint16_t port, int n) : clients_(static_cast<std::size_t>(n)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (auto& c : clients_) {
      c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      REQUIRE(c.fd >= 0);
      const int r = ::connect(c.fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
      REQUIRE((r == 0 || errno == EINPROGRESS));
    }
  }
  ~Storm() {
    for (auto& c : clients_) {
      if (c.fd >= 0) ::close(c.fd);
    }
  }
  Storm(const Storm&) = delete;
  Storm& operator=(const Storm&) = delete;

  std::vector<StormClient>& clients() { return clients_; }

  // One poll(2) round over every live client, waiting at most 100 ms.
  void pump() {
    std::vector<pollfd> fds;
    std::vector<std::size_t> who;
    for (std::size_t i = 0; i < clients_.size(); ++i) {
      auto& c = clients_[i];
      if (c.fd < 0 || !c.ended.empty()) continue;
      fds.push_back(pollfd{c.fd, static_cast<short>(c.connected ? POLLIN : POLLOUT), 0});
      who.push_back(i);
    }
    if (fds.empty()) return;
    const int ready = ::poll(fds.data(), fds.size(), 100);
    if (ready <= 0) return;
    for (std::size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].revents == 0) continue;
      auto& c = clients_[who[k]];
      if (!c.connected) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
          c.ended = std::string("connect: ") + std::strerror(err);
          continue;
        }
        c.connected = true;
        const std::string hello = "HELLO j" + std::to_string(who[k]) + "\n";
        if (::send(c.fd, hello.data(), hello.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(hello.size())) {
          c.ended = "could not send HELLO";
        }
        continue;
      }
      read_from(c);
    }
  }

  void send(std::size_t i, const std::string& line) {
    REQUIRE(::send(clients_[i].fd, line.data(), line.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(line.size()));
  }

 private:
  void read_from(StormClient& c) {
    char buffer[65536];
    std::string gone;  // set after the lines that came before it: a BYE says more than the EOF
    for (;;) {
      const ssize_t n = ::recv(c.fd, buffer, sizeof buffer, 0);
      if (n > 0) {
        c.in.append(buffer, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) gone = "closed by the server";
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) gone = std::strerror(errno);
      break;
    }
    std::size_t start = 0;
    for (auto lf = c.in.find('\n'); lf != std::string::npos; lf = c.in.find('\n', start)) {
      handle(c, std::string_view(c.in).substr(start, lf - start));
      start = lf + 1;
    }
    c.in.erase(0, start);
    if (!gone.empty() && c.ended.empty()) c.ended = gone;
  }

  static void handle(StormClient& c, std::string_view line) {
    if (line.starts_with("JOIN ")) {
      if (c.joined) ++c.joins;
    } else if (line.starts_with("WELCOME ")) {
      c.welcomed = true;
    } else if (line.starts_with("USERS")) {
      if (c.welcomed && !c.joined) {
        c.joined = true;
        std::size_t names = 0;
        for (char ch : line) names += ch == ' ' ? 1 : 0;
        c.roster = names;
      }
    } else if (line.starts_with("MSG j0 after the storm")) {
      c.got_message = true;
    } else if (line.starts_with("PING ")) {
      // A storm under a sanitizer can outlast the heartbeat (PING after 15 s of silence, no-pong
      // 10 s later): answered like any client would, or the slowest run drops its quiet clients.
      const std::string pong = "PONG " + std::string(line.substr(5)) + "\n";
      if (::send(c.fd, pong.data(), pong.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(pong.size())) {
        c.ended = "could not send PONG";
      }
    } else if (line.starts_with("ERROR") || line.starts_with("BYE") || line.starts_with("LEAVE")) {
      if (c.ended.empty()) c.ended = std::string(line);
    }
  }

  std::vector<StormClient> clients_;
};

void raise_file_limit() {
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
}

}  // namespace

TEST_CASE("a join storm: every client in the room, nobody dropped, every JOIN read, then a message to all",
          "[storm]") {
  raise_file_limit();
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  // Both ends of every connection are in this process.
  if (files.rlim_cur < static_cast<rlim_t>(2 * storm_clients + 100)) {
    WARN("RLIMIT_NOFILE " << files.rlim_cur << " is too low for " << storm_clients << " clients; skipped");
    return;
  }
  auto config = TestServer::config();
  config.max_clients = storm_clients + 100;
  config.max_per_ip = 0;  // every client comes from 127.0.0.1
  TestServer server(config);
  const auto n = static_cast<std::size_t>(storm_clients);

  const auto start = Clock::now();
  Storm storm(server.port(), storm_clients);
  auto& clients = storm.clients();
  auto all_joined = [&] {
    for (const auto& c : clients) {
      if (!c.joined || !c.ended.empty()) return false;
    }
    return true;
  };
  auto chatter_done = [&] {
    for (const auto& c : clients) {
      if (c.joins < n - c.roster) return false;
    }
    return true;
  };
  auto any_ended = [&] {
    for (const auto& c : clients) {
      if (!c.ended.empty()) return true;
    }
    return false;
  };
  while (!(all_joined() && chatter_done()) && !any_ended() && Clock::now() - start < patience) storm.pump();
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);

  std::size_t joined = 0, ended = 0;
  std::string first_end;
  for (const auto& c : clients) {
    joined += c.joined ? 1 : 0;
    if (!c.ended.empty()) {
      ++ended;
      if (first_end.empty()) first_end = c.ended;
    }
  }
  WARN(storm_clients << " clients joined and the join chatter was over after " << took.count() << " ms");
  INFO("joined " << joined << ", ended " << ended << " (first: " << first_end << ")");
  REQUIRE(ended == 0);
  REQUIRE(joined == n);
  REQUIRE(chatter_done());

  // The room works: one message reaches every member (its sender too).
  storm.send(0, "SAY after the storm\n");
  const auto sent = Clock::now();
  auto all_got = [&] {
    for (const auto& c : clients) {
      if (!c.got_message) return false;
    }
    return true;
  };
  while (!all_got() && !any_ended() && Clock::now() - sent < std::chrono::seconds(30)) storm.pump();
  CHECK(all_got());
  CHECK_FALSE(any_ended());
  CHECK(server.server().room().size() == n);
}
