// Connection lifecycle (issue #2): over-long lines, how departures are reported (closed,
// reset, exactly one LEAVE per JOIN), the listener's limits (server-full, silent clients,
// handshake timeout), one global event order under concurrent senders, the transcript, and
// Server::stop(). A real chat::Server on 127.0.0.1:0, clients on real sockets.
#include "tests/server/test_server.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <latch>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace chat::test;
using Clock = std::chrono::steady_clock;

namespace {

// "LEAVE bob closed connection closed by peer (...)" -> "bob"; empty for other lines.
std::string leave_nick(const std::string& line) {
  if (!line.starts_with("LEAVE ")) return {};
  const auto rest = line.substr(6);
  return rest.substr(0, rest.find(' '));
}

std::vector<std::string> read_lines(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

TEST_CASE("an over-long line gets ERROR too-long, is discarded up to its newline, and the connection goes on",
          "[lifecycle]") {
  auto config = TestServer::config();
  config.max_line = 100;
  TestServer server(config);
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_and_join(server.port(), "bob");
  CHECK(next_line(*alice) == "JOIN bob");

  SECTION("sent in one piece") {
    REQUIRE(alice->send_line("SAY " + std::string(500, 'x')));
    CHECK(next_line(*alice).starts_with("ERROR too-long"));
  }
  SECTION("sent in pieces: the error comes before the newline, and the rest of the line is dropped") {
    REQUIRE(alice->send_raw("SAY " + std::string(150, 'x')));
    // The server knows the line is too long before its LF arrives.
    CHECK(next_line(*alice).starts_with("ERROR too-long"));
    // Still the same over-long line: if the server did not discard it, this would be said.
    REQUIRE(alice->send_raw(std::string(5000, 'y') + " SAY leaked\n"));
  }
  SECTION("a line far over the server's read size") {
    REQUIRE(alice->send_line("SAY " + std::string(200'000, 'z')));
    CHECK(next_line(*alice).starts_with("ERROR too-long"));
  }
  // The next good line on the same connection is heard, and it is the first thing anyone
  // hears after the over-long one.
  REQUIRE(alice->send_line("SAY good line"));
  CHECK(next_line(*alice) == "MSG alice good line");
  CHECK(next_line(*bob) == "MSG alice good line");
}

TEST_CASE("a client that closes without QUIT: the others get LEAVE <nick> closed", "[lifecycle]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_and_join(server.port(), "bob");
  CHECK(next_line(*alice) == "JOIN bob");

  drain(*bob);
  bob->close();
  const auto leave = next_line(*alice);
  INFO(leave);
  CHECK(leave.starts_with("LEAVE bob closed "));
  CHECK(leave.find("connection closed by peer") != std::string::npos);
}

TEST_CASE("a client whose connection is reset: the others get LEAVE <nick> reset", "[lifecycle]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_and_join(server.port(), "bob");
  CHECK(next_line(*alice) == "JOIN bob");

  bob->close_with_reset();
  const auto leave = next_line(*alice);
  INFO(leave);
  CHECK(leave.starts_with("LEAVE bob reset "));
}

// A regression test for a race found here: the poller's probe consumes the socket's pending
// ECONNRESET (getsockopt(SO_ERROR) after POLLERR, or recv(MSG_PEEK)); the reader's recv(2)
// then finds the error gone and reads 0 (end of stream). It was reported as "closed" in most
// runs with poll_interval = 1 ms, which makes the poller probe almost continuously. Now the
// poller reads and keeps the error under the session's lock (Session::confirm_gone) and the
// reader reports the kept error.
TEST_CASE("a reset is reported as reset even while the poller probes the socket", "[lifecycle][reset]") {
  auto config = TestServer::config();
  config.poll_interval = std::chrono::milliseconds(1);
  TestServer server(config);
  auto watcher = connect_and_join(server.port(), "watcher");

  constexpr int rounds = 40;
  std::map<std::string, int> causes;  // cause token -> how many
  std::string wrong;
  for (int i = 0; i < rounds; ++i) {
    const std::string nick = "r" + std::to_string(i);
    auto c = connect_and_join(server.port(), nick);
    CHECK(next_line(*watcher) == "JOIN " + nick);
    c->close_with_reset();
    const auto leave = expect_prefix(*watcher, "LEAVE " + nick + " ");
    const auto cause = leave.substr(("LEAVE " + nick + " ").size());
    ++causes[cause.substr(0, cause.find(' '))];
    if (!cause.starts_with("reset ")) wrong += leave + "\n";
  }
  INFO("LEAVE lines with another cause than reset:\n" << wrong);
  CHECK(causes["reset"] == rounds);
}

// --probe auto: poll(2) for a small room, epoll past probe_auto_threshold sockets, poll again
// below three quarters of it. Lowered to 4 here; the default (1,000) is measured in
// docs/performance.md. The question asked is the same either way: departures are still seen
// with the right cause while the poller uses epoll, and probing almost continuously (1 ms).
TEST_CASE("the probe in auto mode switches to epoll past the threshold and back, and departures keep their causes",
          "[lifecycle][probe]") {
  auto config = TestServer::config();
  config.poll_interval = std::chrono::milliseconds(1);
  config.probe_auto_threshold = 4;
  TestServer server(config);
  auto watcher = connect_and_join(server.port(), "watcher");
  // STATS probe_epoll, as the poller set it at its last sweep; waits (bounded) for `want`.
  auto probe_epoll_becomes = [&](int want) {
    const auto deadline = std::chrono::steady_clock::now() + io_timeout;
    std::string stats;
    while (std::chrono::steady_clock::now() < deadline) {
      REQUIRE(watcher->send_line("STATS"));
      stats = expect_prefix(*watcher, "STATS ");
      if (stats.find(" probe_epoll=" + std::to_string(want) + " ") != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    INFO("last STATS: " << stats);
    return false;
  };
  CHECK(probe_epoll_becomes(0));  // one client: poll(2)

  std::vector<std::unique_ptr<LineClient>> members;
  for (int i = 0; i < 5; ++i) {
    members.push_back(connect_and_join(server.port(), "m" + std::to_string(i)));
    CHECK(next_line(*watcher) == "JOIN m" + std::to_string(i));
  }
  CHECK(probe_epoll_becomes(1));  // 6 sockets > 4: epoll

  // Through epoll, a FIN is still `closed` and an RST still `reset`.
  drain(*members[4]);
  members[4]->close();
  CHECK(expect_prefix(*watcher, "LEAVE m4 ").starts_with("LEAVE m4 closed "));
  members[3]->close_with_reset();
  CHECK(expect_prefix(*watcher, "LEAVE m3 ").starts_with("LEAVE m3 reset "));
  CHECK(probe_epoll_becomes(1));  // 4 sockets: not below 3, still epoll (no flapping at the edge)

  for (int i = 0; i < 2; ++i) {
    REQUIRE(members[static_cast<std::size_t>(i)]->send_line("QUIT bye"));
    CHECK(expect_prefix(*watcher, "LEAVE m" + std::to_string(i) + " ").starts_with("LEAVE m" + std::to_string(i) + " quit"));
  }
  CHECK(probe_epoll_becomes(0));  // 2 sockets < 3: poll(2) again
  // And poll(2) sees departures as before, though the socket was in the epoll set.
  members[2]->close_with_reset();
  CHECK(expect_prefix(*watcher, "LEAVE m2 ").starts_with("LEAVE m2 reset "));
}

TEST_CASE("exactly one LEAVE per JOIN, whatever the way out", "[lifecycle]") {
  TestServer server;
  auto watcher = connect_and_join(server.port(), "watcher");

  // Joined clients, each leaving a different way; and one that never joins.
  const std::vector<std::string> nicks{"closer", "renamer", "quitter", "resetter", "quitclose", "partial"};
  std::vector<std::unique_ptr<LineClient>> clients;
  for (const auto& n : nicks) {
    clients.push_back(connect_and_join(server.port(), n));
    CHECK(next_line(*watcher) == "JOIN " + n);
  }
  auto stranger = connect_client(server.port());

  std::map<std::string, int> leaves;
  std::string seen;
  // Reads the watcher's lines until `count` more LEAVEs (or `until`) came, counting LEAVEs.
  auto watch = [&](int count, const std::string& until = {}) {
    for (int got = 0; got < count || !until.empty();) {
      const auto line = next_line(*watcher);
      seen += line + "\n";
      if (const auto n = leave_nick(line); !n.empty()) {
        ++leaves[n];
        ++got;
      }
      if (!until.empty() && line == until) break;
    }
  };

  // Orderly closes first, one at a time, each after reading all it was sent (else the close
  // is an RST): a FIN without QUIT is "closed".
  drain(*clients[0]);
  clients[0]->close();
  watch(1);
  REQUIRE(clients[1]->send_line("NICK renamed"));
  CHECK(next_line(*watcher) == "NICK renamer renamed");
  drain(*clients[1]);
  clients[1]->close();  // leaves under its new name
  watch(1);

  // Then the rest at once.
  REQUIRE(clients[2]->send_line("QUIT bye all"));  // quit
  clients[3]->close_with_reset();                 // reset (reader and poller may both notice)
  REQUIRE(clients[4]->send_line("QUIT and gone"));  // quit, then a rude reset after the BYE
  CHECK(expect_prefix(*clients[4], "BYE ") == "BYE quit");
  clients[4]->close_with_reset();
  REQUIRE(clients[5]->send_raw("SAY half a li"));  // a partial line, then reset
  clients[5]->close_with_reset();
  stranger->close();  // never joined: no LEAVE
  watch(4);

  // Then a marker: a duplicate LEAVE would have been delivered before it (each session
  // leaves once, on its reader's way out, long before the marker goes through).
  REQUIRE(watcher->send_line("SAY marker"));
  watch(0, "MSG watcher marker");

  INFO("watcher saw:\n" << seen);
  CHECK(leaves == std::map<std::string, int>{{"closer", 1}, {"renamed", 1}, {"quitter", 1},
                                              {"resetter", 1}, {"quitclose", 1}, {"partial", 1}});
  CHECK(seen.find("LEAVE closer closed ") != std::string::npos);
  CHECK(seen.find("LEAVE renamed closed ") != std::string::npos);
  CHECK(seen.find("LEAVE quitter quit bye all\n") != std::string::npos);
  CHECK(seen.find("LEAVE quitclose quit and gone\n") != std::string::npos);
  // The causes of the two resets are checked by the [reset] test: the server may still call
  // them "closed" (a known race), which is not what this test is about.
  REQUIRE(watcher->send_line("WHO"));
  CHECK(next_line(*watcher) == "USERS watcher");
}

TEST_CASE("over max_clients: BYE server-full and closed, room again once one leaves", "[lifecycle]") {
  auto config = TestServer::config();
  config.max_clients = 2;
  TestServer server(config);
  auto alice = connect_and_join(server.port(), "alice");
  auto silent = connect_client(server.port());  // connected, not joined: counts too

  {
    LineClient third(server.port());
    CHECK(next_line(third) == "BYE server-full");
    require_closed(third);
  }
  {
    LineClient fourth(server.port());
    CHECK(next_line(fourth) == "BYE server-full");
    require_closed(fourth);
  }

  // The silent client quits; once it is gone there is room for one more.
  REQUIRE(silent->send_line("/quit"));
  require_closed(*silent);
  auto bob = connect_and_join(server.port(), "bob");
  CHECK(next_line(*alice) == "JOIN bob");
}

TEST_CASE("a client that connects and says nothing does not delay anyone's join", "[lifecycle]") {
  TestServer server;
  // Neither reads nor writes a byte; another sends half a nickname and stops.
  LineClient mute(server.port());
  LineClient halfway(server.port());
  REQUIRE(halfway.send_raw("HELLO ca"));

  // With the default 30 s handshake timeout, joining within io_timeout proves nobody waited.
  const auto start = Clock::now();
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_text(server.port(), "bob");
  CHECK(next_line(*alice) == "JOIN bob");
  CHECK(Clock::now() - start < io_timeout);

  // The quiet ones are still connected and can still join.
  REQUIRE(halfway.send_line("rol"));
  CHECK(next_line(halfway).starts_with("#"));
  CHECK(next_line(halfway) == "WELCOME carol");
  CHECK(next_line(*alice) == "JOIN carol");
  CHECK(next_line(mute).starts_with("#"));
}

TEST_CASE("a client that does not join within handshake_timeout gets BYE handshake-timeout", "[lifecycle]") {
  auto config = TestServer::config();
  config.handshake_timeout = std::chrono::milliseconds(300);
  TestServer server(config);

  SECTION("silent") {
    const auto start = Clock::now();
    LineClient c(server.port());
    CHECK(next_line(c).starts_with("#"));
    expect_prefix(c, "BYE handshake-timeout");
    // Timing slop: never before the timeout (accepted after `start`); the poller's sweep period
    // (100 ms) and a loaded machine may make it later, io_timeout bounds that.
    CHECK(Clock::now() - start >= std::chrono::milliseconds(300));
    require_closed(c);
    CHECK(c.read_error() == asio::error::eof);
  }
  SECTION("protocol mode after a failed HELLO") {
    LineClient c(server.port());
    CHECK(next_line(c).starts_with("#"));
    REQUIRE(c.send_line("HELLO b@d"));  // answered by ERROR bad-nick, which does not join
    expect_prefix(c, "BYE handshake-timeout");
    require_closed(c);
  }
}

TEST_CASE("room events reach every client in one global order", "[lifecycle][order]") {
  constexpr int senders = 3;
  constexpr int per_sender = 200;
  constexpr int total = senders * per_sender;

  auto config = TestServer::config();
  config.max_rate = 0;  // 200 lines per sender as fast as it can
  TestServer server(config);
  auto r1 = connect_and_join(server.port(), "r1");
  auto r2 = connect_text(server.port(), "r2");  // one receiver of each kind: the order is shared
  std::vector<std::unique_ptr<LineClient>> clients;
  for (int s = 0; s < senders; ++s) clients.push_back(connect_and_join(server.port(), "s" + std::to_string(s)));

  std::atomic<int> send_failures{0};
  std::latch start(senders);  // all three begin together, so their lines really interleave
  {
    // Each thread owns its client; no Catch2 assertions off the test thread.
    std::vector<std::jthread> threads;
    for (int s = 0; s < senders; ++s) {
      threads.emplace_back([client = std::move(clients[static_cast<std::size_t>(s)]), s, &send_failures, &start] {
        start.arrive_and_wait();
        for (int i = 0; i < per_sender; ++i) {
          if (!client->send_line("SAY " + std::to_string(s) + ":" + std::to_string(i))) ++send_failures;
        }
        // Leave politely; the LEAVE comes after all of this sender's MSGs.
        if (!client->send_line("QUIT done")) ++send_failures;
        client->wait_closed(io_timeout);
      });
    }
  }  // joined here
  CHECK(send_failures == 0);

  // Both receivers' message sequences, each read in full; r2's text lines ("[..] <s1> 1:17")
  // are turned back into the protocol form ("MSG s1 1:17") to compare.
  auto collect = [&](LineClient& r, bool text) {
    std::vector<std::string> msgs;
    while (msgs.size() < static_cast<std::size_t>(total)) {
      auto line = r.read_line(io_timeout);
      if (!line) break;
      if (!text) {
        if (line->starts_with("MSG ")) msgs.push_back(*line);
        continue;
      }
      // "<s1> 1:17" -> "MSG s1 1:17"
      const auto body = unstamp(*line);
      if (body && starts_with_shape(*body, "<s9> ")) msgs.push_back("MSG " + body->substr(1, 2) + body->substr(4));
    }
    return msgs;
  };
  const auto seq1 = collect(*r1, false);
  const auto seq2 = collect(*r2, true);
  REQUIRE(seq1.size() == static_cast<std::size_t>(total));
  REQUIRE(seq2.size() == static_cast<std::size_t>(total));
  CHECK(seq1 == seq2);

  // Each sender's messages arrive in its sending order, all of them once.
  std::vector<int> next(senders, 0);
  bool in_order = true;
  std::string first_bad;
  for (const auto& m : seq1) {
    // "MSG s1 1:17": sender 1's message number 17.
    const bool shaped = starts_with_shape(m, "MSG s9 9:9") && m[5] == m[7];
    const int s = shaped ? m[5] - '0' : senders;
    if (s >= senders || m.substr(9) != std::to_string(next[static_cast<std::size_t>(s)])) {
      in_order = false;
      first_bad = m;
      break;
    }
    ++next[static_cast<std::size_t>(s)];
  }
  INFO("first line out of order or malformed: " << first_bad);
  CHECK(in_order);
  CHECK(next == std::vector<int>(senders, per_sender));
}

TEST_CASE("log_file: appended, dated joins, leaves with cause and public messages, never PRIV", "[lifecycle]") {
  TempDir dir("chat_server_tests");
  const auto log = dir.path() / "transcript.log";
  {
    std::ofstream out(log);
    out << "an earlier run wrote this line\n";
  }

  {
    auto config = TestServer::config();
    config.log_file = log.string();
    TestServer server(config);
    auto alice = connect_and_join(server.port(), "alice");
    auto bob = connect_and_join(server.port(), "bob");
    CHECK(next_line(*alice) == "JOIN bob");

    REQUIRE(alice->send_line("SAY hello in public"));
    CHECK(next_line(*bob) == "MSG alice hello in public");
    REQUIRE(alice->send_line("ME waves publicly"));
    CHECK(next_line(*bob) == "ME alice waves publicly");
    REQUIRE(alice->send_line("PRIV bob top-secret-whisper"));
    CHECK(next_line(*bob) == "PRIV alice bob top-secret-whisper");
    REQUIRE(bob->send_line("PRIV alice another-secret-reply"));
    CHECK(expect_prefix(*alice, "PRIV bob") == "PRIV bob alice another-secret-reply");
    drain(*bob);  // bob's copy of his PRIV is unread: read it, so the close is a FIN
    bob->close();
    const auto leave = next_line(*alice);
    INFO(leave);
    CHECK(leave.starts_with("LEAVE bob closed"));
    // A member that stays sees alice's LEAVE: only then is it surely recorded. (alice's own
    // BYE and close may reach her before her reader thread has told the room.)
    auto carol = connect_and_join(server.port(), "carol");
    REQUIRE(alice->send_line("QUIT see you"));
    CHECK(expect_prefix(*alice, "BYE ") == "BYE quit");
    require_closed(*alice);
    CHECK(next_line(*carol) == "LEAVE alice quit see you");

    server.stop();
    // The transcript has its own writer thread, joined by ~Server: destroy before reading.
    server.destroy();
  }

  const auto lines = read_lines(log);
  std::string all;
  for (const auto& l : lines) all += l + "\n";
  INFO("transcript:\n" << all);
  REQUIRE(!lines.empty());
  CHECK(lines.front() == "an earlier run wrote this line");  // appended, never truncated

  constexpr std::string_view dated = "9999-99-99 99:99:99 ";
  std::vector<std::string> bodies;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    INFO("undated line: " << lines[i]);
    CHECK(starts_with_shape(lines[i], dated));
    if (starts_with_shape(lines[i], dated)) bodies.push_back(lines[i].substr(dated.size()));
  }
  auto has = [&](const std::string& prefix) {
    for (const auto& b : bodies) {
      if (b.starts_with(prefix)) return true;
    }
    return false;
  };
  CHECK(has("*** alice joined"));
  CHECK(has("*** bob joined"));
  CHECK(has("<alice> hello in public"));
  CHECK(has("* alice waves publicly"));
  // The operator's record: the words, and the detail after them.
  CHECK(has("*** bob's connection closed (1 online) [closed: connection closed by peer"));
  CHECK(has("*** alice left (see you) (1 online) [quit: see you]"));
  CHECK(all.find("top-secret-whisper") == std::string::npos);
  CHECK(all.find("another-secret-reply") == std::string::npos);
}

TEST_CASE("Server::stop(): every client gets BYE shutdown, then EOF", "[lifecycle]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_text(server.port(), "bob");
  CHECK(next_line(*alice) == "JOIN bob");
  auto pending = connect_client(server.port());  // connected, not joined
  auto failed = connect_client(server.port());   // protocol mode, not joined
  REQUIRE(failed->send_line("HELLO b@d"));
  CHECK(next_line(*failed).starts_with("ERROR bad-nick"));

  server.stop();

  CHECK(next_line(*alice).starts_with("BYE shutdown"));
  require_closed(*alice);
  CHECK(alice->read_error() == asio::error::eof);

  const auto text_bye = next_text(*bob);  // text mode: rendered
  INFO(text_bye);
  CHECK(text_bye == "*** the server has stopped; press Ctrl-C");
  require_closed(*bob);
  CHECK(bob->read_error() == asio::error::eof);

  CHECK(next_line(*pending).starts_with("BYE shutdown"));
  require_closed(*pending);
  CHECK(pending->read_error() == asio::error::eof);

  CHECK(next_line(*failed).starts_with("BYE shutdown"));
  require_closed(*failed);
  CHECK(failed->read_error() == asio::error::eof);
}
