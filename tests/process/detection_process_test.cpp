// Dead-peer detection with real processes: a client killed (closed), a client stopped
// (no-pong), a client that stops reading (too-slow) while the others keep chatting.
#include "tests/process/server_process.hpp"
#include "tests/support/chatclient_args.hpp"
#include "tests/support/line_client.hpp"

#include <catch2/catch.hpp>

#include <poll.h>

#include <atomic>
#include <csignal>
#include <memory>
#include <thread>

using namespace chat::test;
using Clock = std::chrono::steady_clock;

namespace {

std::unique_ptr<LineClient> join(std::uint16_t port, const std::string& nick) {
  auto c = std::make_unique<LineClient>(port);
  REQUIRE(c->send_line("HELLO " + nick));
  REQUIRE(c->expect_line("USERS", patience));
  return c;
}

std::unique_ptr<Subprocess> start_chatclient(std::uint16_t port, const std::string& nick,
                                             std::vector<std::string> extra = {}) {
  auto p = std::make_unique<Subprocess>(chatclient_args(port, nick, std::move(extra)));
  REQUIRE(p->wait_for_line(Stream::out, "*** welcome, " + nick, patience));
  return p;
}

}  // namespace

TEST_CASE("a client killed with SIGKILL leaves with cause closed", "[process][detection]") {
  ServerProcess server;
  auto observer = join(server.port(), "observer");
  auto victim = start_chatclient(server.port(), "victim");
  REQUIRE(observer->expect_line("JOIN victim", patience));
  // The victim must have read everything sent to it: a process that dies with unread data
  // makes its kernel send RST instead of FIN, and that is `reset` (the next test).
  // chatclient joins with ids: after USERS ("online") comes the recent history (the observer's
  // JOIN), and its end ("--- now ---") is the last line the server sends it.
  REQUIRE(victim->wait_for_line(Stream::out, "*** online (2)", patience));
  REQUIRE(victim->wait_for_line(Stream::out, "--- now ---", patience));
  REQUIRE(victim->signal(SIGKILL));
  auto leave = observer->expect_line([](const std::string& l) { return l.rfind("LEAVE ", 0) == 0; }, patience);
  REQUIRE(leave);
  INFO(*leave);
  CHECK(leave->rfind("LEAVE victim closed connection closed by peer (", 0) == 0);
}

TEST_CASE("a client killed with unread data leaves with cause reset", "[process][detection]") {
  ServerProcess server;
  auto observer = join(server.port(), "observer");
  auto victim = join(server.port(), "victim");
  REQUIRE(observer->expect_line("JOIN victim", patience));
  // Data arrives that the victim never reads, then it dies: its kernel answers with RST.
  REQUIRE(observer->send_line("SAY unread"));
  REQUIRE(observer->expect_line("MSG observer unread", patience));
  pollfd readable{victim->socket().native_handle(), POLLIN, 0};
  REQUIRE(::poll(&readable, 1, 10'000) == 1);  // the line is in the victim's buffer, unread
  victim->close();
  auto leave = observer->expect_line([](const std::string& l) { return l.rfind("LEAVE ", 0) == 0; }, patience);
  REQUIRE(leave);
  INFO(*leave);
  CHECK(leave->rfind("LEAVE victim reset connection reset by peer (", 0) == 0);
}

TEST_CASE("a client stopped with SIGSTOP leaves with cause no-pong", "[process][detection]") {
  ServerProcess server({"--ping-interval", "300ms", "--ping-timeout", "700ms"});
  auto observer = join(server.port(), "observer");
  // The victim's own heartbeat is off so that only the server's PING can keep it alive.
  auto victim = start_chatclient(server.port(), "victim", {"--ping-interval", "0"});
  REQUIRE(observer->expect_line("JOIN victim", patience));
  // While it runs, it answers the server's PINGs and stays: several ping rounds pass.
  const auto alive_until = Clock::now() + std::chrono::milliseconds(2500);
  while (Clock::now() < alive_until) {
    REQUIRE(observer->send_line("PING keepalive"));  // the observer must answer too
    auto line = observer->read_line(std::chrono::milliseconds(200));
    if (line) CHECK(line->rfind("LEAVE", 0) != 0);
  }
  REQUIRE(victim->signal(SIGSTOP));
  const auto stopped_at = Clock::now();
  std::string leave;
  while (Clock::now() - stopped_at < patience) {
    auto line = observer->read_line(std::chrono::milliseconds(200));
    if (line && line->rfind("PING ", 0) == 0) observer->send_line("PONG " + line->substr(5));
    if (line && line->rfind("LEAVE ", 0) == 0) {
      leave = *line;
      break;
    }
  }
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - stopped_at);
  WARN("no-pong detected " << took.count() << " ms after SIGSTOP (ping interval 300 ms, timeout 700 ms)");
  CHECK(leave.rfind("LEAVE victim no-pong no reply to PING within 700 ms (poller", 0) == 0);
  victim->signal(SIGCONT);
}

namespace {

// Runs the too-slow scenario: `slow` joins and never reads; alice and bob chat with big
// lines; bob measures how long each of alice's lines takes to reach him.
void too_slow_scenario(std::vector<std::string> server_args, const std::string& expected_detail) {
  // Alice sends as fast as bob reads: far over the flood control's 20 lines/s, which is lifted.
  server_args.insert(server_args.end(), {"--max-rate", "0"});
  ServerProcess server(std::move(server_args));
  auto alice = join(server.port(), "alice");
  auto bob = join(server.port(), "bob");
  auto slow = join(server.port(), "slow");  // never reads again
  // A small receive window, so the stall comes after ~100 KB rather than after the several MB
  // that loopback autotuning would otherwise absorb.
  slow->socket().set_option(asio::socket_base::receive_buffer_size(4096));
  REQUIRE(bob->expect_line("JOIN slow", patience));

  const std::string filler(3000, 'x');
  std::string leave;
  Clock::duration worst{};
  int sent = 0;
  // Bounded: at most 5000 lines (15 MB through the server) or 30 s.
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (leave.empty() && sent < 5000 && Clock::now() < deadline) {
    const auto t0 = Clock::now();
    REQUIRE(alice->send_line("SAY " + std::to_string(sent) + " " + filler));
    // Bob receives each line promptly, however far behind `slow` is.
    std::string seen;
    auto got = bob->expect_line(
        [&](const std::string& l) {
          if (l.rfind("LEAVE slow", 0) == 0) leave = l;
          return l.rfind("MSG alice " + std::to_string(sent) + " ", 0) == 0;
        },
        patience);
    REQUIRE(got);
    worst = std::max(worst, Clock::now() - t0);
    // Alice's own copy comes back too; read it so she is never the slow one.
    REQUIRE(alice->expect_line("MSG alice " + std::to_string(sent) + " ", patience));
    ++sent;
  }
  if (leave.empty()) {
    auto l = bob->expect_line("LEAVE slow", patience);
    REQUIRE(l);
    leave = *l;
  }
  const auto worst_ms = std::chrono::duration_cast<std::chrono::milliseconds>(worst).count();
  WARN("slow client left after " << sent << " lines of 3 KB; worst delivery to bob " << worst_ms << " ms: " << leave);
  CHECK(leave.rfind("LEAVE slow too-slow " + expected_detail, 0) == 0);
  CHECK(worst < std::chrono::seconds(2));  // generous: a busy CI core; chatbench reports figures
  // And the room goes on.
  REQUIRE(alice->send_line("SAY after"));
  CHECK(bob->expect_line("MSG alice after", patience));
}

}  // namespace

TEST_CASE("a client that stops reading leaves too-slow when its queue is full, others are not delayed",
          "[process][detection]") {
  too_slow_scenario({"--send-queue", "64KiB", "--send-timeout", "1h"}, "send queue over 65536 bytes");
}

TEST_CASE("a client whose writes make no progress leaves too-slow after --send-timeout", "[process][detection]") {
  too_slow_scenario({"--send-queue", "1GiB", "--send-timeout", "500ms"}, "no write progress for");
}

TEST_CASE("a client reading at a normal pace is never dropped by a burst it can absorb", "[process][detection]") {
  ServerProcess server({"--send-queue", "1MiB", "--send-timeout", "2s", "--max-rate", "0"});  // a burst of 200
  auto alice = join(server.port(), "alice");
  auto bob = join(server.port(), "bob");
  // A burst of 200 lines of 3 KB (600 KB), sent as fast as alice can, while bob reads at
  // his own pace. Alice reads her own copies as she goes, every 20 lines: a client that sends
  // 600 KB without reading any of its echoes is itself over half of --send-queue behind (the
  // kernel's bytes count too), and its reader is paused, which is the flow control's business,
  // not this test's.
  const std::string filler(3000, 'y');
  std::atomic<bool> alice_ok{true};
  std::jthread burst([&] {
    for (int i = 0; i < 200; ++i) {
      alice->send_line("SAY " + std::to_string(i) + " " + filler);
      if (i % 20 == 19) {
        for (int k = i - 19; k <= i; ++k) {
          if (!alice->expect_line("MSG alice " + std::to_string(k) + " ", patience)) alice_ok = false;
        }
      }
    }
  });
  for (int i = 0; i < 200; ++i) {
    auto got = bob->expect_line(
        [&](const std::string& l) {
          CHECK(l.rfind("LEAVE", 0) != 0);
          return l.rfind("MSG alice " + std::to_string(i) + " ", 0) == 0;
        },
        patience);
    REQUIRE(got);
  }
  burst.join();
  CHECK(alice_ok);  // alice got every copy of her own, in order
}

TEST_CASE("a QUIT or last line sent right before closing is never lost to the poller", "[process][detection]") {
  // The poller sees "readable, 0 bytes available" as soon as the reader has taken the last
  // bytes, before it has handled them. Repeated, so the race gets its chances.
  ServerProcess server({"--poll-interval", "10ms", "--log-level", "warn"});
  auto observer = join(server.port(), "observer");
  const int rounds = sanitized ? 10 : 50;
  for (int i = 0; i < rounds; ++i) {
    const std::string nick = "v" + std::to_string(i);
    // A half-close: FIN right behind the lines, while the socket still takes what the server
    // sends (a full close would make the victim's kernel answer the greeting with RST, which
    // is `reset`, and rightly so).
    chat::test::LineClient victim(server.port());
    REQUIRE(victim.send_raw("HELLO " + nick + "\nSAY last words " + std::to_string(i) + "\n" +
                            (i % 2 ? "QUIT gone home\n" : "")));
    victim.socket().shutdown(asio::ip::tcp::socket::shutdown_send);
    REQUIRE(observer->expect_line("MSG " + nick + " last words " + std::to_string(i), patience));
    auto leave = observer->expect_line("LEAVE " + nick + " ", patience);
    REQUIRE(leave);
    INFO(*leave);
    if (i % 2) {
      CHECK(*leave == "LEAVE " + nick + " quit gone home");
    } else {
      CHECK(leave->rfind("LEAVE " + nick + " closed ", 0) == 0);
    }
  }
}

TEST_CASE("chatserver --ping-interval off: a quiet protocol client gets no PING, with an interval it does", "[process][detection]") {
  for (const std::string interval : {"off", "0", "50ms"}) {
    INFO("--ping-interval " << interval);
    // Given twice, the last one wins (chatlab adds its own timings before the user's).
    ServerProcess server({"--ping-interval", interval == "50ms" ? "off" : "50ms", "--ping-interval", interval,
                          "--ping-timeout", "10s", "--poll-interval", "10ms"});
    auto quiet = join(server.port(), "quiet");
    // Without a heartbeat, waiting is the test: 60 sweeps of silence (a PING comes after 50 ms);
    // with one, the PING ends the wait, so the bound is only generous.
    auto ping = quiet->expect_line([](const std::string& l) { return l.rfind("PING ", 0) == 0; },
                                   interval == "50ms" ? std::chrono::milliseconds(patience)
                                                      : std::chrono::milliseconds(600));
    CHECK(ping.has_value() == (interval == "50ms"));
  }
}

TEST_CASE("chatserver --trace: each detector's decision is one line, tagged with the thread that made it", "[process][detection]") {
  ServerProcess server({"--trace", "--ping-interval", "200ms", "--ping-timeout", "300ms", "--keepalive", "2s,1s,2"});
  std::string seen;
  CHECK(server.process().wait_for_line(Stream::err, "keepalive 2s,1s,2", patience, &seen));
  auto observer = join(server.port(), "observer");
  // The listener says which keepalive options the socket got; the reader what recv() returned.
  CHECK(server.process().wait_for_line(
      Stream::err, "[listener] trace: accept 127.0.0.1:", patience, &seen));
  CHECK(seen.find("TCP_KEEPIDLE 2.0 s, TCP_KEEPINTVL 1.0 s, TCP_KEEPCNT 2, TCP_USER_TIMEOUT 4.0 s") != std::string::npos);
  CHECK(server.process().wait_for_line(Stream::err, "trace: recv: 15 bytes", patience, &seen));
  // The poller's heartbeat: the PING, then (nobody answers) its verdict with TCP_INFO's view.
  CHECK(server.process().wait_for_line(Stream::err, "[poller] trace: heartbeat observer: quiet for", patience, &seen));
  CHECK(seen.find("> ping-interval 200 ms -> PING p") != std::string::npos);
  CHECK(server.process().wait_for_line(Stream::err, "[poller] trace: heartbeat observer: no line for", patience, &seen));
  CHECK(seen.find("TCP_INFO: last ACK") != std::string::npos);
  CHECK(seen.find("-> no-pong: its kernel ACKs, its process does not answer") != std::string::npos);
  // The decision, from the thread that made it; then the reader's recv() sees why it woke.
  CHECK(server.process().wait_for_line(Stream::err, "[poller] trace: ends observer: no-pong", patience, &seen));
  CHECK(server.process().wait_for_line(
      Stream::err, "trace: recv: 0 bytes: another thread ended the session and shut the socket down", patience, &seen));
  // Time stamps carry microseconds at this level: HH:MM:SS.uuuuuu.
  const auto line_start = seen.rfind('\n', seen.size() - 2);
  const auto last = seen.substr(line_start == std::string::npos ? 0 : line_start + 1);
  INFO(last);
  CHECK(last.size() > 16);
  CHECK(last[8] == '.');
  CHECK(last[15] == ' ');
}
