#include "common/net.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>

#include <cerrno>
#include <chrono>
#include <thread>

using namespace std::chrono_literals;

namespace {

// A connected TCP pair on loopback, made with blocking Asio calls: `client` connected to an
// acceptor on 127.0.0.1 port 0 (the kernel picks a free port), `server` its accepted peer.
struct LoopbackPair {
  asio::io_context io;
  asio::ip::tcp::socket client{io};
  asio::ip::tcp::socket server{io};

  LoopbackPair() {
    asio::ip::tcp::acceptor acceptor(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server);
  }
};

// Polls `fd` until one of `want` shows in revents, or `limit` passes (generous: the kernel
// delivers loopback FIN/RST in microseconds; the limit only keeps a broken test from hanging).
// Returns the last revents, 0 on timeout. POLLERR and POLLHUP are always reported by poll(2).
short wait_for(int fd, short want, std::chrono::milliseconds limit = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left < 0ms) return 0;
    pollfd p{fd, static_cast<short>(want & ~(POLLERR | POLLHUP)), 0};
    const int n = ::poll(&p, 1, static_cast<int>(left.count()) + 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;
    if (p.revents & want) return p.revents;
    // Something else (e.g. POLLIN while waiting for POLLRDHUP): poll again until the deadline.
    // Only reachable while the awaited event is in flight, so this loop is short.
  }
}

// What poll(2) reports right now, without waiting.
short poll_now(int fd, short events) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, 0) > 0 ? p.revents : 0;
}

}  // namespace

// ---- cause_of / what_was_seen ------------------------------------------------------------

TEST_CASE("cause_of maps socket errors to leave causes", "[net]") {
  using chat::LeaveCause;
  CHECK(chat::cause_of(asio::error::eof) == LeaveCause::closed);
  CHECK(chat::cause_of(asio::error::connection_reset) == LeaveCause::reset);
  CHECK(chat::cause_of(asio::error::broken_pipe) == LeaveCause::reset);
  CHECK(chat::cause_of(asio::error::connection_aborted) == LeaveCause::reset);
  CHECK(chat::cause_of(asio::error::timed_out) == LeaveCause::timeout);
  // What a timeout reports after ARP or ICMP failures: the same "no reply in time".
  CHECK(chat::cause_of(asio::error::host_unreachable) == LeaveCause::timeout);
  CHECK(chat::cause_of(asio::error::network_unreachable) == LeaveCause::timeout);
  CHECK(chat::cause_of(asio::error::connection_refused) == LeaveCause::error);
  CHECK(chat::cause_of(asio::error::operation_aborted) == LeaveCause::error);
  CHECK(chat::cause_of(asio::error::no_buffer_space) == LeaveCause::error);
  // What the kernel gives through errno, as peek_for_departure builds it.
  CHECK(chat::cause_of(std::error_code(ECONNRESET, asio::error::get_system_category())) == LeaveCause::reset);
  CHECK(chat::cause_of(std::error_code(EPIPE, asio::error::get_system_category())) == LeaveCause::reset);
  CHECK(chat::cause_of(std::error_code(ETIMEDOUT, asio::error::get_system_category())) == LeaveCause::timeout);
  CHECK(chat::cause_of(std::error_code(EHOSTUNREACH, asio::error::get_system_category())) == LeaveCause::timeout);
  CHECK(chat::cause_of(std::error_code(EACCES, asio::error::get_system_category())) == LeaveCause::error);
}

TEST_CASE("what_was_seen describes socket errors", "[net]") {
  CHECK(chat::what_was_seen(asio::error::eof) == "connection closed by peer");
  CHECK(chat::what_was_seen(asio::error::connection_reset) == "connection reset by peer");
  CHECK(chat::what_was_seen(asio::error::broken_pipe) == "broken pipe");
  CHECK(chat::what_was_seen(asio::error::timed_out) == "no keepalive reply");
  CHECK(chat::what_was_seen(asio::error::host_unreachable) == "no keepalive reply (host unreachable)");
  CHECK(chat::what_was_seen(asio::error::network_unreachable) == "no keepalive reply (network unreachable)");
  const std::error_code other = asio::error::connection_refused;
  CHECK(chat::what_was_seen(other) == other.message());
  CHECK_FALSE(chat::what_was_seen(other).empty());
  CHECK(chat::what_was_seen(std::error_code(ETIMEDOUT, asio::error::get_system_category())) == "no keepalive reply");
}

// ---- peek_for_departure / pending_socket_error on real loopback pairs --------------------

TEST_CASE("peek_for_departure: an idle live connection is no departure", "[net][loopback]") {
  LoopbackPair pair;
  CHECK_FALSE(chat::peek_for_departure(pair.server.native_handle()));
  CHECK_FALSE(chat::peek_for_departure(pair.client.native_handle()));
  CHECK_FALSE(chat::pending_socket_error(pair.server.native_handle()));
}

TEST_CASE("peek_for_departure: unread data is no departure, and stays unread", "[net][loopback]") {
  LoopbackPair pair;
  asio::write(pair.client, asio::buffer(std::string_view("hi\n")));
  REQUIRE(wait_for(pair.server.native_handle(), POLLIN) & POLLIN);
  CHECK_FALSE(chat::peek_for_departure(pair.server.native_handle()));
  CHECK_FALSE(chat::peek_for_departure(pair.server.native_handle()));
  CHECK(pair.server.available() == 3);
}

TEST_CASE("peek_for_departure: a peer's FIN reads as eof (closed)", "[net][loopback]") {
  LoopbackPair pair;
  const int fd = pair.server.native_handle();
  pair.client.close();
  REQUIRE(wait_for(fd, POLLRDHUP) & POLLRDHUP);
  auto departure = chat::peek_for_departure(fd);
  REQUIRE(departure);
  CHECK(*departure == asio::error::eof);
  CHECK(chat::cause_of(*departure) == chat::LeaveCause::closed);
  CHECK(chat::what_was_seen(*departure) == "connection closed by peer");
  // Peeking consumes nothing: the same answer again.
  auto again = chat::peek_for_departure(fd);
  REQUIRE(again);
  CHECK(*again == asio::error::eof);
  CHECK_FALSE(chat::pending_socket_error(fd));  // a FIN is no socket error
}

TEST_CASE("peek_for_departure: data sent before a FIN is heard first", "[net][loopback]") {
  LoopbackPair pair;
  const int fd = pair.server.native_handle();
  asio::write(pair.client, asio::buffer(std::string_view("bye")));
  pair.client.close();
  REQUIRE(wait_for(fd, POLLRDHUP) & POLLRDHUP);
  CHECK_FALSE(chat::peek_for_departure(fd));  // data waiting: read it first
  char buf[8];
  CHECK(asio::read(pair.server, asio::buffer(buf, 3)) == 3);
  auto departure = chat::peek_for_departure(fd);
  REQUIRE(departure);
  CHECK(*departure == asio::error::eof);
}

TEST_CASE("peek_for_departure: a peer's RST reads as connection reset", "[net][loopback]") {
  LoopbackPair pair;
  const int fd = pair.server.native_handle();
  // SO_LINGER {on, 0}: close() aborts the connection with an RST instead of a FIN.
  pair.client.set_option(asio::socket_base::linger(true, 0));
  pair.client.close();
  REQUIRE(wait_for(fd, POLLERR | POLLHUP) != 0);
  auto departure = chat::peek_for_departure(fd);
  REQUIRE(departure);
  CHECK(*departure == asio::error::connection_reset);
  CHECK(chat::cause_of(*departure) == chat::LeaveCause::reset);
  CHECK(chat::what_was_seen(*departure) == "connection reset by peer");
}

TEST_CASE("pending_socket_error: reads and clears the RST's error", "[net][loopback]") {
  LoopbackPair pair;
  const int fd = pair.server.native_handle();
  CHECK_FALSE(chat::pending_socket_error(fd));
  pair.client.set_option(asio::socket_base::linger(true, 0));
  pair.client.close();
  const short revents = wait_for(fd, POLLERR | POLLHUP);
  REQUIRE(revents != 0);
  CHECK((revents & POLLHUP) != 0);
  const std::error_code ec = chat::pending_socket_error(fd);
  CHECK(ec == asio::error::connection_reset);
  CHECK(chat::cause_of(ec) == chat::LeaveCause::reset);
  CHECK_FALSE(chat::pending_socket_error(fd));  // cleared by the first read
}

TEST_CASE("peek_for_departure and pending_socket_error on a bad descriptor", "[net]") {
  auto departure = chat::peek_for_departure(-1);
  REQUIRE(departure);
  CHECK(*departure == asio::error::bad_descriptor);
  CHECK(chat::cause_of(*departure) == chat::LeaveCause::error);
  CHECK(chat::pending_socket_error(-1) == asio::error::bad_descriptor);
}

// ---- apply_keepalive ---------------------------------------------------------------------

namespace {
template <typename Option>
int read_option(asio::ip::tcp::socket& socket) {
  Option option;
  socket.get_option(option);
  return option.value();
}

bool keepalive_on(asio::ip::tcp::socket& socket) {
  asio::socket_base::keep_alive option;
  socket.get_option(option);
  return option.value();
}
}  // namespace

TEST_CASE("apply_keepalive sets keepalive and TCP_USER_TIMEOUT to the budget", "[net][keepalive]") {
  LoopbackPair pair;
  auto& s = pair.server;
  CHECK_FALSE(keepalive_on(s));

  auto config = chat::parse_keepalive("10s,2s,3");
  REQUIRE(config);
  CHECK_FALSE(chat::apply_keepalive(s, *config));
  CHECK(keepalive_on(s));
  CHECK(read_option<chat::TcpKeepIdle>(s) == 10);
  CHECK(read_option<chat::TcpKeepInterval>(s) == 2);
  CHECK(read_option<chat::TcpKeepCount>(s) == 3);
  CHECK(read_option<chat::TcpUserTimeout>(s) == 16'000);

  config = chat::parse_keepalive("30s,5s,4");
  REQUIRE(config);
  CHECK_FALSE(chat::apply_keepalive(s, *config));
  CHECK(keepalive_on(s));
  CHECK(read_option<chat::TcpKeepIdle>(s) == 30);
  CHECK(read_option<chat::TcpKeepInterval>(s) == 5);
  CHECK(read_option<chat::TcpKeepCount>(s) == 4);
  CHECK(read_option<chat::TcpUserTimeout>(s) == 50'000);
  CHECK(read_option<chat::TcpUserTimeout>(s) == config->budget().count());
}

TEST_CASE("apply_keepalive with off turns keepalive and TCP_USER_TIMEOUT off", "[net][keepalive]") {
  LoopbackPair pair;
  auto& s = pair.client;
  REQUIRE_FALSE(chat::apply_keepalive(s, chat::KeepaliveConfig{}));
  REQUIRE(keepalive_on(s));
  REQUIRE(read_option<chat::TcpUserTimeout>(s) == 16'000);

  auto off = chat::parse_keepalive("off");
  REQUIRE(off);
  CHECK_FALSE(chat::apply_keepalive(s, *off));
  CHECK_FALSE(keepalive_on(s));
  CHECK(read_option<chat::TcpUserTimeout>(s) == 0);
}

TEST_CASE("apply_keepalive reports an error on a socket that is not open", "[net][keepalive]") {
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  CHECK(chat::apply_keepalive(s, chat::KeepaliveConfig{}));
}

TEST_CASE("IntSocketOption holds a value in Asio's option shape", "[net]") {
  const chat::TcpKeepIdle idle(42);
  CHECK(idle.value() == 42);
  CHECK(idle.level(asio::ip::tcp::v4()) == IPPROTO_TCP);
  CHECK(idle.name(asio::ip::tcp::v4()) == TCP_KEEPIDLE);
  CHECK(idle.size(asio::ip::tcp::v4()) == sizeof(int));
  CHECK(*idle.data(asio::ip::tcp::v4()) == 42);
  CHECK(chat::TcpKeepIdle().value() == 0);
  CHECK(chat::TcpUserTimeout().name(asio::ip::tcp::v4()) == TCP_USER_TIMEOUT);
}

// ---- Wakeup ------------------------------------------------------------------------------

TEST_CASE("Wakeup: signal makes its fd readable, clear resets it", "[net][wakeup]") {
  chat::Wakeup w;
  REQUIRE(w.fd() >= 0);
  CHECK(poll_now(w.fd(), POLLIN) == 0);
  w.signal();
  CHECK(poll_now(w.fd(), POLLIN) == POLLIN);
  CHECK(poll_now(w.fd(), POLLIN) == POLLIN);  // polling alone does not clear it
  w.clear();
  CHECK(poll_now(w.fd(), POLLIN) == 0);
}

TEST_CASE("Wakeup: several signals are cleared by one clear", "[net][wakeup]") {
  chat::Wakeup w;
  w.signal();
  w.signal();
  w.signal();
  CHECK(poll_now(w.fd(), POLLIN) == POLLIN);
  w.clear();
  CHECK(poll_now(w.fd(), POLLIN) == 0);
}

TEST_CASE("Wakeup: clear without a signal does not block", "[net][wakeup]") {
  chat::Wakeup w;
  w.clear();  // non-blocking eventfd: returns at once
  CHECK(poll_now(w.fd(), POLLIN) == 0);
  const int flags = ::fcntl(w.fd(), F_GETFL);
  CHECK((flags & O_NONBLOCK) != 0);
  CHECK((::fcntl(w.fd(), F_GETFD) & FD_CLOEXEC) != 0);
}

TEST_CASE("Wakeup: a signal from another thread wakes a blocked poll", "[net][wakeup]") {
  chat::Wakeup w;
  pollfd p{w.fd(), POLLIN, 0};
  int n = 0;
  {
    std::jthread signaller([&w] { w.signal(); });
    // Whether the signal lands before or during the poll, poll returns with POLLIN; the 5 s
    // limit only keeps a broken Wakeup from hanging the test.
    do {
      n = ::poll(&p, 1, 5000);
    } while (n < 0 && errno == EINTR);
  }
  CHECK(n == 1);
  CHECK(p.revents == POLLIN);
  w.clear();
  CHECK(poll_now(w.fd(), POLLIN) == 0);
}

TEST_CASE("Wakeup: each Wakeup has its own fd", "[net][wakeup]") {
  chat::Wakeup a;
  chat::Wakeup b;
  CHECK(a.fd() != b.fd());
  a.signal();
  CHECK(poll_now(a.fd(), POLLIN) == POLLIN);
  CHECK(poll_now(b.fd(), POLLIN) == 0);
}

TEST_CASE("address ranges: CIDR parsing, membership, and IPv4 on a dual-stack socket", "[net][allow]") {
  using asio::ip::make_address;
  const auto range = [](const char* text) {
    std::string error;
    auto r = chat::parse_address_range(text, &error);
    INFO(text << ": " << error);
    REQUIRE(r);
    return *r;
  };
  const auto lan = range("10.0.0.0/8");
  CHECK(lan.to_string() == "10.0.0.0/8");
  CHECK(lan.contains(make_address("10.1.2.3")));
  CHECK_FALSE(lan.contains(make_address("11.0.0.1")));
  CHECK(lan.contains(make_address("::ffff:10.9.9.9")));  // IPv4 as a dual-stack socket reports it
  CHECK_FALSE(lan.contains(make_address("fd00::1")));
  // Bits past the prefix are cleared; a bare address is one host.
  CHECK(range("192.168.1.77/24").to_string() == "192.168.1.0/24");
  CHECK(range("192.168.1.77/23").to_string() == "192.168.0.0/23");
  const auto host = range("192.168.1.7");
  CHECK(host.to_string() == "192.168.1.7/32");
  CHECK(host.contains(make_address("192.168.1.7")));
  CHECK_FALSE(host.contains(make_address("192.168.1.8")));
  CHECK(range("0.0.0.0/0").contains(make_address("203.0.113.9")));
  const auto v6 = range("fd00:1234::/32");
  CHECK(v6.to_string() == "fd00:1234::/32");
  CHECK(v6.contains(make_address("fd00:1234:5::1")));
  CHECK_FALSE(v6.contains(make_address("fd00:1235::1")));
  CHECK_FALSE(v6.contains(make_address("10.0.0.1")));
  CHECK(range("::1").contains(make_address("::1")));
  CHECK(range("::ffff:10.0.0.7").to_string() == "10.0.0.7/32");
  // Not ranges: each with a reason.
  for (const char* bad : {"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/x", "10.0.0.0/8/8", "lan", "", "fd00::/129",
                          "10.0.0.0/-1", "10.0.0.0/ 8"}) {
    std::string error;
    INFO(bad);
    CHECK_FALSE(chat::parse_address_range(bad, &error));
    CHECK_FALSE(error.empty());
  }
}
