// probe_sockets() (server/poller.hpp) on real loopback TCP pairs: FIN is closed, RST is reset,
// unread data is alive, and a reader consuming data concurrently never causes a false alarm.
#include "server/poller.hpp"

#include <asio.hpp>
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>

namespace {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// A connected pair on 127.0.0.1: `server` is the accepted side, the one the poller watches.
struct Pair {
  asio::io_context io;
  tcp::socket client{io};
  tcp::socket server{io};

  Pair() {
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server);
  }
  int fd() { return server.native_handle(); }
};

std::optional<std::error_code> probe_one(int fd) {
  const int fds[] = {fd};
  return chat::probe_sockets(fds)[0];
}

// Probes until it reports a departure or 5 s pass: a FIN or RST takes a moment to arrive
// even on loopback, and nothing else can be waited on here.
std::optional<std::error_code> probe_until_departure(int fd) {
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline) {
    if (auto ec = probe_one(fd)) return ec;
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("probe: an idle live connection is alive", "[probe]") {
  Pair p;
  for (int i = 0; i < 100; ++i) CHECK_FALSE(probe_one(p.fd()));
}

TEST_CASE("probe: the peer's FIN is closed", "[probe]") {
  Pair p;
  p.client.close();
  const auto ec = probe_until_departure(p.fd());
  REQUIRE(ec);
  CHECK(*ec == asio::error::eof);
}

TEST_CASE("probe: the peer's RST is reset", "[probe]") {
  Pair p;
  p.client.set_option(asio::socket_base::linger(true, 0));
  p.client.close();
  const auto ec = probe_until_departure(p.fd());
  REQUIRE(ec);
  CHECK(*ec == asio::error::connection_reset);
}

TEST_CASE("probe: unread pending data is alive, even after the peer's FIN", "[probe]") {
  Pair p;
  asio::write(p.client, asio::buffer(std::string("QUIT bye\n")));
  // Wait until the data has arrived (readable), then probe many times: still alive.
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (p.server.available() == 0 && Clock::now() < deadline) {
  }
  REQUIRE(p.server.available() > 0);
  for (int i = 0; i < 100; ++i) CHECK_FALSE(probe_one(p.fd()));
  // The peer closes after its last line: the reader must still get to read it, so as long as
  // it is unread, the probe says alive.
  p.client.shutdown(tcp::socket::shutdown_send);
  for (int i = 0; i < 100; ++i) CHECK_FALSE(probe_one(p.fd()));
  // Once the data is consumed, the FIN shows.
  std::array<char, 64> buf;
  p.server.read_some(asio::buffer(buf));
  const auto ec = probe_until_departure(p.fd());
  REQUIRE(ec);
  CHECK(*ec == asio::error::eof);
}

TEST_CASE("probe: a reader consuming data during 10,000 sweeps never causes a false closed", "[probe][race]") {
  Pair p;
  std::atomic<bool> done{false};
  // The peer keeps sending small lines; a second thread plays the session's reader and
  // consumes them as fast as it can. Between the poll saying "readable" and the probe's
  // FIONREAD, the reader often empties the socket: exactly the race the MSG_PEEK resolves.
  std::jthread sender([&] {
    const std::string line = "SAY x\n";
    std::error_code ec;
    while (!done.load()) asio::write(p.client, asio::buffer(line), ec);
    p.client.shutdown(tcp::socket::shutdown_send, ec);
  });
  std::atomic<std::uint64_t> consumed{0};
  std::jthread reader([&] {
    std::array<char, 256> buf;
    std::error_code ec;
    for (;;) {
      const auto n = p.server.read_some(asio::buffer(buf), ec);
      if (ec) break;
      consumed += n;
    }
  });
  int false_alarms = 0;
  for (int sweep = 0; sweep < 10'000; ++sweep) {
    if (auto ec = probe_one(p.fd())) {
      ++false_alarms;
      UNSCOPED_INFO("sweep " << sweep << ": " << ec->message());
    }
  }
  done = true;
  sender.join();
  reader.join();  // the sender's FIN ends it
  CHECK(false_alarms == 0);
  CHECK(consumed.load() > 0);
}

TEST_CASE("probe: many sockets in one sweep, each with its own verdict", "[probe]") {
  Pair alive, closed, reset;
  closed.client.close();
  reset.client.set_option(asio::socket_base::linger(true, 0));
  reset.client.close();
  const int fds[] = {alive.fd(), closed.fd(), reset.fd()};
  std::vector<std::optional<std::error_code>> r;
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  do {
    r = chat::probe_sockets(fds);
  } while ((!r[1] || !r[2]) && Clock::now() < deadline);
  CHECK_FALSE(r[0]);
  REQUIRE(r[1]);
  CHECK(*r[1] == asio::error::eof);
  REQUIRE(r[2]);
  CHECK(*r[2] == asio::error::connection_reset);
}
