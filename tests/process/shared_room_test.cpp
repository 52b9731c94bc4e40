// One room on several real chatserver processes through a real redis-server (--redis, issue 24,
// docs/scale-out.md): one global order for everyone on every instance, a nickname won once
// however many instances race for it, a kill -9'd instance's members leaving with
// instance-lost exactly once at every survivor, a clean stop's LEAVEs, and a Redis restart
// during which what is said is kept and delivered when the room is whole again.
//
// Every chatserver is a child process on 127.0.0.1 port 0 with --db none; Redis listens on a
// unix socket in a temporary directory; all are ended by their pids. Timing targets are not
// asserted here (chatbench and chatlab measure them); the bounds are generous. Not thread
// safe: the test thread drives everything.
#include "tests/process/server_process.hpp"
#include "tests/support/line_client.hpp"
#include "tests/support/redis_process.hpp"
#include "tests/support/tagged_lines.hpp"
#include "tests/support/deadline.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

using namespace chat::test;
using namespace std::chrono_literals;

namespace {

constexpr std::chrono::milliseconds wait_long{20'000};  // a passing test never waits this long

// One redis-server and `n` chatservers sharing room "test".
struct Cluster {
  TempDir dir{"chat_shared_room"};
  std::unique_ptr<RedisProcess> redis;
  std::vector<std::unique_ptr<ServerProcess>> servers;

  explicit Cluster(std::size_t n, std::vector<std::string> extra = {}) {
    REQUIRE(RedisProcess::available());  // the README's test command installs redis-server
    redis = std::make_unique<RedisProcess>(dir.path());
    for (std::size_t i = 0; i < n; ++i) add(extra);
  }
  // One more chatserver in the room (its index is the count before).
  void add(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{"--db", "none", "--log-level", "warn", "--redis", redis->unix_url(),
                                  "--room", "test", "--instance-timeout", "1500ms"};
    args.insert(args.end(), extra.begin(), extra.end());
    servers.push_back(std::make_unique<ServerProcess>(args));
  }
  std::uint16_t port(std::size_t i) const { return servers.at(i)->port(); }
};

// HELLO <nick> ids, read to the end of its HISTORY recent block. Returns the connection;
// `token` gets its seat's resume token, `last_id` the highest id it was shown.
std::unique_ptr<LineClient> join(std::uint16_t port, const std::string& nick, std::string* token = nullptr,
                                 std::uint64_t* last_id = nullptr) {
  auto c = std::make_unique<LineClient>(port);
  REQUIRE(c->send_line("HELLO " + nick + " ids"));
  REQUIRE(read_line_within(*c, wait_long).starts_with("#"));
  REQUIRE(read_line_within(*c, wait_long) == "WELCOME " + nick);
  const auto token_line = read_line_within(*c, wait_long);
  INFO(token_line);
  REQUIRE(token_line.starts_with("TOKEN "));  // a seat, kept in Redis: it may resume anywhere
  if (token) *token = token_line.substr(6, 32);
  REQUIRE(read_line_within(*c, wait_long).starts_with("USERS "));
  const auto recent = read_block_within(*c, "recent", wait_long);
  if (last_id) {
    *last_id = 0;
    for (const auto& l : recent.lines) *last_id = std::max(*last_id, must_tag(l).id);
  }
  return c;
}

// A new connection's answer to HELLO <nick> (the greeting skipped): WELCOME, or the ERROR.
std::string hello_answer(std::uint16_t port, const std::string& nick) {
  LineClient c(port);
  REQUIRE(read_line_within(c, wait_long).starts_with("#"));
  REQUIRE(c.send_line("HELLO " + nick));
  return read_line_within(c, wait_long);
}

// Reads until a tagged line whose body is exactly `body`.
std::string read_event(LineClient& c, const std::string& body, std::vector<std::string>* log = nullptr) {
  return read_until_within(
      c, wait_long, [&](const std::string& l) { return parse_tagged(l) && parse_tagged(l)->body == body; }, log, body);
}

// Reads every line that arrives within `quiet` of the one before (to see that nothing more
// comes: a bounded wait, not a sleep for synchronisation).
std::vector<std::string> lines_for(LineClient& c, std::chrono::milliseconds quiet) {
  std::vector<std::string> out;
  while (auto line = c.read_line(quiet)) out.push_back(*line);
  return out;
}

}  // namespace

TEST_CASE("shared room: three chatservers, every message at every client once, in one order", "[redis][shared]") {
  Cluster cluster(3);
  std::vector<std::string> nicks;
  std::vector<std::unique_ptr<LineClient>> clients;
  for (std::size_t s = 0; s < 3; ++s) {
    for (int k = 0; k < 2; ++k) {
      nicks.push_back("u" + std::to_string(s) + std::to_string(k));
      clients.push_back(join(cluster.port(s), nicks.back()));
    }
  }
  // Every JOIN is in the stream before any SAY: each client's view starts before all of them.
  constexpr int per_client = 40;
  for (int i = 0; i < per_client; ++i) {
    for (std::size_t c = 0; c < clients.size(); ++c) {
      REQUIRE(clients[c]->send_line("SAY m " + nicks[c] + " " + std::to_string(i)));
    }
  }
  const std::size_t total = per_client * clients.size();
  std::vector<std::vector<std::pair<std::uint64_t, std::string>>> seen(clients.size());
  for (std::size_t c = 0; c < clients.size(); ++c) {
    INFO("client " << nicks[c]);
    while (seen[c].size() < total) {
      const auto line = read_line_within(*clients[c], wait_long);
      const auto t = parse_tagged(line);
      if (t && t->body.starts_with("MSG ")) seen[c].emplace_back(t->id, t->body);
    }
  }
  // The same events with the same ids in the same order everywhere; ids growing; each message
  // once; each sender's messages in the order it sent them.
  for (std::size_t c = 1; c < clients.size(); ++c) {
    INFO("client " << nicks[c] << " against " << nicks[0]);
    CHECK(seen[c] == seen[0]);
  }
  std::set<std::string> bodies;
  std::map<std::string, int> next;
  for (std::size_t i = 0; i < seen[0].size(); ++i) {
    if (i > 0) CHECK(seen[0][i].first > seen[0][i - 1].first);
    CHECK(bodies.insert(seen[0][i].second).second);
    const auto& body = seen[0][i].second;  // MSG <nick> m <nick> <i>
    const auto nick = body.substr(4, body.find(' ', 4) - 4);
    CHECK(body == "MSG " + nick + " m " + nick + " " + std::to_string(next[nick]++));
  }
  CHECK(bodies.size() == total);
  // The roster is the room's, on every instance.
  REQUIRE(clients[5]->send_line("WHO"));
  CHECK(read_until_within(*clients[5], wait_long, [](const std::string& l) { return l.starts_with("USERS "); }) ==
        "USERS u00 u01 u10 u11 u20 u21");
}

TEST_CASE("shared room: a nickname raced for on three chatservers is won exactly once, whatever its case",
          "[redis][shared]") {
  Cluster cluster(3);
  auto witness = join(cluster.port(0), "witness");
  for (int round = 0; round < 5; ++round) {
    const std::string base = "racer" + std::to_string(round);
    const std::vector<std::string> spellings{base, "RACER" + std::to_string(round), "Racer" + std::to_string(round)};
    std::vector<std::unique_ptr<LineClient>> racers;
    for (std::size_t s = 0; s < 3; ++s) {
      racers.push_back(std::make_unique<LineClient>(cluster.port(s)));
      REQUIRE(read_line_within(*racers.back(), wait_long).starts_with("#"));
    }
    for (std::size_t s = 0; s < 3; ++s) REQUIRE(racers[s]->send_line("HELLO " + spellings[s] + " ids"));
    int won = 0;
    int refused = 0;
    std::string winner;
    for (std::size_t s = 0; s < 3; ++s) {
      const auto answer = read_line_within(*racers[s], wait_long);
      if (answer == "WELCOME " + spellings[s]) {
        ++won;
        winner = spellings[s];
      } else {
        INFO("answer: " << answer);
        CHECK(answer == "ERROR nick-in-use " + spellings[s]);
        ++refused;
      }
    }
    CHECK(won == 1);
    CHECK(refused == 2);
    // The room heard exactly one JOIN, the winner's; a marker said after the race ends the wait.
    REQUIRE(witness->send_line("SAY after " + base));
    std::vector<std::string> log;
    read_event(*witness, "MSG witness after " + base, &log);
    const auto joins = std::count_if(log.begin(), log.end(), [&](const std::string& l) {
      const auto t = parse_tagged(l);
      if (!t) return false;
      std::string body = t->body;
      std::transform(body.begin(), body.end(), body.begin(), [](unsigned char ch) { return std::tolower(ch); });
      return body == "join " + base;
    });
    CHECK(joins == 1);
    CHECK_FALSE(winner.empty());
  }
}

TEST_CASE("shared room: a kill -9'd chatserver's members each leave with instance-lost once, at every survivor",
          "[redis][shared]") {
  Cluster cluster(3);
  auto w0 = join(cluster.port(0), "w0");
  auto w1 = join(cluster.port(1), "w1");
  auto x1 = join(cluster.port(2), "x1");
  auto x2 = join(cluster.port(2), "x2");
  // Both witnesses have seen x2 join (so the LEAVEs below are about members they know).
  read_event(*w0, "JOIN x2");
  read_event(*w1, "JOIN x2");
  REQUIRE(cluster.servers[2]->process().signal(SIGKILL));
  REQUIRE(cluster.servers[2]->process().wait_exit(wait_long).has_value());
  for (auto* w : {w0.get(), w1.get()}) {
    std::vector<std::string> log;
    std::set<std::string> lost;
    read_until_within(
        *w, wait_long,
        [&](const std::string& l) {
          const auto t = parse_tagged(l);
          if (t && t->body.starts_with("LEAVE x")) {
            INFO("leave: " << t->body);
            CHECK(t->body.find(" instance-lost server 127.0.0.1:") != std::string::npos);
            // The silence is measured by Redis's clock: at least the heartbeat key's life (two
            // thirds of the 1.5 s timeout), and not much more than the timeout.
            const auto at = t->body.find("stopped answering (no heartbeat for ");
            REQUIRE(at != std::string::npos);
            const double silent = std::stod(t->body.substr(at + 36));
            CHECK(silent >= 0.9);
            CHECK(silent <= 10.0);
            lost.insert(t->body.substr(6, 2));
          }
          return lost.size() == 2;
        },
        &log, "LEAVE x1 and x2 instance-lost");
    // Nothing more about them: another survivor's reaper found nothing left to reap.
    const auto after = lines_for(*w, 3000ms);
    for (const auto& l : after) CHECK(l.find("LEAVE x") == std::string::npos);
  }
  // They are out of the room; their seats (and so their nicknames) are held for them to resume
  // (the next test case does).
  REQUIRE(w0->send_line("WHO"));
  CHECK(read_until_within(*w0, wait_long, [](const std::string& l) { return l.starts_with("USERS "); }) ==
        "USERS w0 w1");
  CHECK(hello_answer(cluster.port(1), "x1") == "ERROR nick-held x1");
  REQUIRE(w0->send_line("STATS"));
  const auto stats = read_until_within(*w0, wait_long, [](const std::string& l) { return l.starts_with("STATS "); });
  CHECK(stats.find(" redis_linked=1 ") != std::string::npos);
}

TEST_CASE("shared room: a chatserver stopped cleanly says its members left with shutdown", "[redis][shared]") {
  Cluster cluster(2);
  auto w = join(cluster.port(0), "w");
  std::string y_token;
  std::uint64_t y_last = 0;
  auto y = join(cluster.port(1), "y", &y_token, &y_last);
  read_event(*w, "JOIN y");
  REQUIRE(cluster.servers[1]->process().signal(SIGTERM));
  CHECK(cluster.servers[1]->process().wait_exit(wait_long) == 0);
  const auto leave = read_until_within(*w, wait_long, tagged_starting("LEAVE y "));
  CHECK(must_tag(leave).body == "LEAVE y shutdown server shutting down");
  // y's seat is held (its nickname too), and y resumes on the server left.
  CHECK(hello_answer(cluster.port(0), "Y") == "ERROR nick-held Y");
  LineClient back(cluster.port(0));
  REQUIRE(read_line_within(back, wait_long).starts_with("#"));
  REQUIRE(back.send_line("RESUME " + y_token + " " + std::to_string(y_last)));
  CHECK(read_line_within(back, wait_long).starts_with("RESUMED y "));
  read_until_within(*w, wait_long, tagged_starting("BACK y "));
}

TEST_CASE("shared room: Redis restarted empty: the split is told, local chat goes on, what was said is delivered once",
          "[redis][shared]") {
  Cluster cluster(2);
  std::string alice_token;
  auto alice = join(cluster.port(0), "alice", &alice_token);
  auto dora = join(cluster.port(0), "dora");  // on alice's server
  auto bob = join(cluster.port(1), "bob");
  read_event(*alice, "JOIN bob");
  read_event(*dora, "JOIN bob");
  REQUIRE(alice->send_line("SAY before"));
  const auto before = must_tag(read_event(*bob, "MSG alice before")).id;
  read_event(*alice, "MSG alice before");

  cluster.redis->stop();
  for (auto* c : {alice.get(), dora.get(), bob.get()}) {
    const auto notice =
        read_until_within(*c, wait_long, [](const std::string& l) { return l.starts_with("# the room is split since "); });
    CHECK(notice.find("you hear only the people on this server") != std::string::npos);
    CHECK(notice.find("up to 10000 lines") != std::string::npos);
  }
  // Local chat goes on: alice and dora, on one server, hear each other at once (no id yet).
  REQUIRE(alice->send_line("SAY during the split"));
  for (auto* c : {alice.get(), dora.get()}) {
    CHECK(read_until_within(*c, wait_long, [](const std::string& l) { return l.find("during the split") != std::string::npos; }) ==
          "MSG alice during the split");
  }
  // A HELLO cannot claim its nickname now: refused, the connection stays.
  auto carol = std::make_unique<LineClient>(cluster.port(1));
  REQUIRE(read_line_within(*carol, wait_long).starts_with("#"));
  REQUIRE(carol->send_line("HELLO carol"));
  CHECK(read_line_within(*carol, wait_long).starts_with("ERROR room-split "));

  cluster.redis->start();
  // bob, on the other server, gets it once the room is whole, with its id.
  std::uint64_t split_id = 0;
  {
    std::vector<std::string> log;
    const auto line = read_event(*bob, "MSG alice during the split", &log);
    split_id = must_tag(line).id;
    CHECK(split_id > before);
    CHECK(std::any_of(log.begin(), log.end(), [](const std::string& l) { return l.starts_with("# the room is whole again"); }));
    for (const auto& l : log) CHECK(l.find("JOIN ") == std::string::npos);  // nobody left, nobody is back
  }
  // alice and dora are told the room is whole, and do not get the line a second time. Their
  // last id moves past it: a tagged remark with the id the line got.
  REQUIRE(bob->send_line("SAY marker after the split"));
  std::uint64_t alice_last = 0;
  for (auto* c : {alice.get(), dora.get()}) {
    std::vector<std::string> log;
    read_event(*c, "MSG bob marker after the split", &log);
    CHECK(std::any_of(log.begin(), log.end(), [](const std::string& l) { return l.starts_with("# the room is whole again"); }));
    int remarks = 0;
    for (const auto& l : log) {
      INFO(l);
      CHECK(l.find("MSG alice during the split") == std::string::npos);
      CHECK(l.find("JOIN ") == std::string::npos);
      const auto t = parse_tagged(l);
      if (t && t->body == "# what was said here during the split is in the room's history now") {
        CHECK(t->id == split_id);
        if (c == alice.get()) alice_last = t->id;
        ++remarks;
      }
    }
    CHECK(remarks == 1);
  }
  // And the room works as before: a newcomer sees everyone.
  REQUIRE(carol->send_line("HELLO carol"));
  CHECK(read_line_within(*carol, wait_long) == "WELCOME carol");
  CHECK(read_line_within(*carol, wait_long) == "USERS alice bob carol dora");
  // alice drops, and resumes on the other server from that id (as if she had dropped right
  // after the remark): the replay has bob's marker, not what she heard during the split.
  alice->close_with_reset();
  read_until_within(*bob, wait_long, tagged_starting("LEAVE alice "));
  {
    LineClient back(cluster.port(1));
    REQUIRE(read_line_within(back, wait_long).starts_with("#"));
    REQUIRE(back.send_line("RESUME " + alice_token + " " + std::to_string(alice_last)));
    CHECK(read_line_within(back, wait_long).starts_with("RESUMED alice "));
    std::vector<std::string> log;
    read_until_within(back, wait_long, [](const std::string& l) { return l == "HISTORY END missed"; }, &log);
    CHECK(std::any_of(log.begin(), log.end(), [](const std::string& l) {
      return parse_tagged(l) && parse_tagged(l)->body == "MSG bob marker after the split";
    }));
    for (const auto& l : log) CHECK(l.find("during the split") == std::string::npos);
  }
}

TEST_CASE("shared room: chatclient --host a,b fails over to the next chatserver when its own is killed, and resumes",
          "[redis][shared][client]") {
  Cluster cluster(2);
  auto witness = join(cluster.port(1), "witness");
  const std::string a = "127.0.0.1:" + std::to_string(cluster.port(0));
  const std::string b = "127.0.0.1:" + std::to_string(cluster.port(1));
  Subprocess client({CHATCLIENT_PATH, "--host", a + "," + b, "--nick", "alice", "--reconnect"});
  std::string seen;
  REQUIRE(client.wait_for_line(Stream::out, "welcome", wait_long, &seen));
  read_event(*witness, "JOIN alice");
  REQUIRE(cluster.servers[0]->process().signal(SIGKILL));
  // The loss, then the next server in the list, by name.
  INFO(seen);
  REQUIRE(client.wait_for_line(Stream::out, "reconnecting to " + b + " in ", wait_long, &seen));
  // Its seat was held in Redis: it takes it back on b (RESUME), its nickname and all.
  REQUIRE(client.wait_for_line(Stream::out, "reconnected to " + b + ", back in the room as alice", wait_long, &seen));
  // In the room again, on b: what it says reaches the witness there.
  REQUIRE(client.write("back on b\n"));
  const auto line = read_until_within(*witness, wait_long, [](const std::string& l) {
    const auto t = parse_tagged(l);
    return t && t->body.starts_with("MSG alice") && t->body.ends_with(" back on b");
  });
  CHECK(!line.empty());
  client.close_stdin();
  CHECK(client.wait_exit(wait_long).has_value());
}

namespace {

// The shipped HAProxy example (packaging/haproxy-chat.cfg) with only its ports changed: the
// frontend on 127.0.0.1:`front`, the three servers on `backends`.
std::string haproxy_config(std::uint16_t front, const std::vector<std::uint16_t>& backends) {
  std::ifstream in(std::string(CHAT_SOURCE_DIR) + "/packaging/haproxy-chat.cfg");
  REQUIRE(in);
  std::stringstream text;
  text << in.rdbuf();
  std::string cfg = text.str();
  const auto swap = [&](const std::string& from, const std::string& to) {
    const auto at = cfg.find(from);
    REQUIRE(at != std::string::npos);
    cfg.replace(at, from.size(), to);
  };
  swap("bind :15600", "bind 127.0.0.1:" + std::to_string(front));
  for (std::size_t i = 0; i < backends.size(); ++i) {
    swap("127.0.0.1:" + std::to_string(15601 + i), "127.0.0.1:" + std::to_string(backends[i]));
  }
  return cfg;
}

}  // namespace

TEST_CASE("shared room: the shipped HAProxy configuration serves chat and the web page, and skips a dead chatserver",
          "[redis][shared][haproxy]") {
  constexpr const char* haproxy = "/usr/sbin/haproxy";
  REQUIRE(::access(haproxy, X_OK) == 0);  // the README's test command installs haproxy
  Cluster cluster(3, {"--max-per-ip", "0"});  // as the example says: HAProxy keeps that limit
  const auto front = free_tcp_port();
  const auto cfg = (cluster.dir.path() / "haproxy.cfg").string();
  std::ofstream(cfg) << haproxy_config(front, {cluster.port(0), cluster.port(1), cluster.port(2)});
  {
    auto [code, out] = run_program_to_exit(haproxy, {"-c", "-f", cfg});
    INFO(out);
    REQUIRE(code == 0);
  }
  Subprocess proxy({haproxy, "-db", "-f", cfg});
  // Up once a connection through it gets a chatserver's greeting.
  REQUIRE(chat::test::eventually(
      [&] {
        try {
          LineClient probe(front);
          const auto line = probe.read_line(1000ms);
          return line && line->starts_with("# chatserver");
        } catch (const std::system_error&) {
          return false;
        }
      },
      wait_long));

  // Chat through it: two clients, whichever servers they land on.
  auto alice = join(front, "alice");
  auto bob = join(front, "bob");
  REQUIRE(alice->send_line("SAY through haproxy"));
  read_event(*bob, "MSG alice through haproxy");

  // The web page and the WebSocket upgrade, on the same port.
  {
    LineClient web(front);
    REQUIRE(web.send_raw("GET / HTTP/1.1\r\nHost: chat.example\r\nConnection: close\r\n\r\n"));
    CHECK(read_line_within(web, wait_long) == "HTTP/1.1 200 OK");
    std::string seen;
    CHECK(web.expect_line("<html", wait_long, &seen));
  }
  {
    LineClient ws(front);
    REQUIRE(ws.send_raw("GET /ws HTTP/1.1\r\nHost: chat.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
    CHECK(read_line_within(ws, wait_long) == "HTTP/1.1 101 Switching Protocols");
  }

  // Two of the three killed: new clients through HAProxy land on the one left.
  REQUIRE(cluster.servers[0]->process().signal(SIGKILL));
  REQUIRE(cluster.servers[1]->process().signal(SIGKILL));
  auto dave = join(cluster.port(2), "dave");
  // Until HAProxy's checks have taken the dead out (two missed, 2 s apart), a connection may
  // still be sent to one and closed: a client tries again, as chatclient does.
  const auto join_through = [&](const std::string& nick) {
    std::unique_ptr<LineClient> c;
    REQUIRE(chat::test::eventually(
        [&] {
          c = std::make_unique<LineClient>(front);
          const auto greeting = c->read_line(2000ms);
          return greeting && greeting->starts_with("# chatserver");
        },
        wait_long));
    REQUIRE(c->send_line("HELLO " + nick));
    REQUIRE(read_line_within(*c, wait_long) == "WELCOME " + nick);
    return c;
  };
  for (int i = 0; i < 5; ++i) {
    const std::string nick = "late" + std::to_string(i);
    auto c = join_through(nick);
    REQUIRE(c->send_line("SAY hello from " + nick));
    read_event(*dave, "MSG " + nick + " hello from " + nick);
  }
  CHECK(proxy.signal(SIGTERM));
  CHECK(proxy.wait_exit(wait_long).has_value());
}

TEST_CASE("shared room: the members of a kill -9'd chatserver resume on another, with exactly what they missed",
          "[redis][shared][resume]") {
  Cluster cluster(3);
  auto w0 = join(cluster.port(0), "w0");
  std::string token;
  std::uint64_t last_id = 0;
  auto x1 = join(cluster.port(2), "x1", &token, &last_id);
  read_event(*w0, "JOIN x1");
  REQUIRE(w0->send_line("SAY seen by x1"));
  last_id = must_tag(read_event(*x1, "MSG w0 seen by x1")).id;

  REQUIRE(cluster.servers[2]->process().signal(SIGKILL));
  for (int i = 1; i <= 5; ++i) REQUIRE(w0->send_line("SAY missed " + std::to_string(i)));
  read_until_within(*w0, wait_long, tagged_starting("LEAVE x1 instance-lost "));
  // While its seat is held, its nickname is not free.
  CHECK(hello_answer(cluster.port(1), "x1") == "ERROR nick-held x1");
  REQUIRE(w0->send_line("SAY after the loss"));
  read_event(*w0, "MSG w0 after the loss");

  // x1 comes back on another chatserver with its token and the last id it saw.
  LineClient back(cluster.port(1));
  REQUIRE(read_line_within(back, wait_long).starts_with("#"));
  REQUIRE(back.send_line("RESUME " + token + " " + std::to_string(last_id)));
  const auto resumed = read_line_within(back, wait_long);
  INFO(resumed);
  REQUIRE(resumed.starts_with("RESUMED x1 "));
  CHECK(read_line_within(back, wait_long).starts_with("TOKEN "));
  CHECK(read_line_within(back, wait_long) == "USERS w0 x1");
  const auto missed = read_block_within(back, "missed", wait_long);
  CHECK_FALSE(missed.partial);
  std::vector<std::string> bodies;
  std::uint64_t previous = last_id;
  for (const auto& l : missed.lines) {
    const auto t = must_tag(l);
    CHECK(t.id > previous);  // in order, nothing it had seen
    previous = t.id;
    bodies.push_back(t.body);
  }
  // Exactly what was said while it was away, its own LEAVE among it, nothing twice.
  std::vector<std::string> said;
  for (const auto& b : bodies) {
    if (b.starts_with("MSG ")) said.push_back(b);
  }
  CHECK(said == std::vector<std::string>{"MSG w0 missed 1", "MSG w0 missed 2", "MSG w0 missed 3", "MSG w0 missed 4",
                                         "MSG w0 missed 5", "MSG w0 after the loss"});
  CHECK(std::count_if(bodies.begin(), bodies.end(), [](const std::string& b) {
          return b.starts_with("LEAVE x1 instance-lost ");
        }) == 1);
  // The room sees it come back, and it talks again.
  read_until_within(*w0, wait_long, tagged_starting("BACK x1 "));
  REQUIRE(back.send_line("SAY I am back"));
  read_event(*w0, "MSG x1 I am back");
  // The old token is spent.
  LineClient again(cluster.port(0));
  REQUIRE(read_line_within(again, wait_long).starts_with("#"));
  REQUIRE(again.send_line("RESUME " + token + " " + std::to_string(last_id)));
  CHECK(read_line_within(again, wait_long).starts_with("ERROR bad-token "));
}

namespace {

// HELLO <nick> without ids (an nc user), read to its USERS line.
std::unique_ptr<LineClient> join_plain(std::uint16_t port, const std::string& nick) {
  auto c = std::make_unique<LineClient>(port);
  REQUIRE(read_line_within(*c, wait_long).starts_with("#"));
  REQUIRE(c->send_line("HELLO " + nick));
  REQUIRE(read_line_within(*c, wait_long) == "WELCOME " + nick);
  REQUIRE(read_line_within(*c, wait_long).starts_with("USERS "));
  return c;
}

// Stops chatserver `i` (SIGSTOP) until `seen` has read every `lost` member's instance-lost LEAVE:
// the others declared it lost while it could not say otherwise.
void freeze_until_lost(Cluster& cluster, std::size_t i, LineClient& seen, std::set<std::string> lost) {
  REQUIRE(cluster.servers.at(i)->process().signal(SIGSTOP));
  read_until_within(
      seen, wait_long,
      [&](const std::string& l) {
        const auto t = parse_tagged(l);
        if (t && t->body.starts_with("LEAVE ") && t->body.find(" instance-lost ") != std::string::npos) {
          lost.erase(t->body.substr(6, t->body.find(' ', 6) - 6));
        }
        return lost.empty();
      },
      nullptr, "the frozen server's members leave with instance-lost");
}

}  // namespace

TEST_CASE("shared room: a member whose name was taken while its server was cut off goes on as name_2, and its lines "
          "are never put in the other's mouth",
          "[redis][shared]") {
  Cluster cluster(2);
  auto alice = join_plain(cluster.port(0), "alice");  // nc-style: no seat, so the reaper frees her name
  auto carl = join_plain(cluster.port(0), "carl");    // another, who will leave before coming back
  auto dora = join(cluster.port(0), "dora");          // alice's neighbour, with ids (and a seat)
  auto bob = join(cluster.port(1), "bob");
  read_event(*dora, "JOIN bob");

  freeze_until_lost(cluster, 0, *bob, {"alice", "carl", "dora"});
  // Meanwhile people on bob's server take the free names.
  auto other = join(cluster.port(1), "alice");
  read_event(*bob, "JOIN alice");
  auto other_carl = join(cluster.port(1), "carl");
  read_event(*bob, "JOIN carl");
  // The first alice says something her frozen server has not read yet; the first carl says
  // something and quits.
  REQUIRE(alice->send_line("SAY said while frozen"));
  REQUIRE(carl->send_line("SAY carl said while frozen"));
  REQUIRE(carl->send_line("QUIT"));
  REQUIRE(cluster.servers[0]->process().signal(SIGCONT));

  // Her own server tells her, then renames her: NICK, which every client follows for itself.
  {
    std::vector<std::string> log;
    read_until_within(*alice, wait_long, [](const std::string& l) { return l == "NICK alice alice_2"; }, &log);
    CHECK(std::any_of(log.begin(), log.end(), [](const std::string& l) {
      return l == "# while this server was cut off from the room, someone on another server took the name alice; "
                  "alice here is now alice_2";
    }));
  }
  read_event(*dora, "NICK alice alice_2");
  // On bob's server she is someone who joined (they saw her lost), and what she said is hers.
  for (auto* c : {bob.get(), other.get()}) {
    std::vector<std::string> log;
    read_event(*c, "MSG alice_2 said while frozen", &log);
    CHECK(std::any_of(log.begin(), log.end(), [](const std::string& l) {
      return parse_tagged(l) && parse_tagged(l)->body == "JOIN alice_2";
    }));
    for (const auto& l : log) {
      CHECK(l.find("MSG alice said") == std::string::npos);
      CHECK(l.find("MSG carl carl said") == std::string::npos);
      CHECK(l.find("LEAVE carl ") == std::string::npos);
    }
  }
  CHECK(carl->wait_closed(wait_long));
  // Both go on under their names, each heard by everyone.
  REQUIRE(alice->send_line("SAY now as alice_2"));
  std::vector<std::string> bob_saw;  // everything bob reads from here on, checked below
  read_event(*bob, "MSG alice_2 now as alice_2", &bob_saw);
  REQUIRE(other->send_line("SAY the other alice"));
  CHECK(read_until_within(*alice, wait_long, [](const std::string& l) { return l.find("the other alice") != std::string::npos; }) ==
        "MSG alice the other alice");
  read_event(*dora, "MSG alice the other alice");
  // The first carl's line and leave were never the second carl's: bob saw neither as carl's
  // (as carl_2's, if the first carl was announced again before it quit), and carl is still here.
  {
    REQUIRE(other_carl->send_line("SAY marker from the second carl"));
    read_event(*bob, "MSG carl marker from the second carl", &bob_saw);
    for (const auto& l : lines_for(*bob, 2000ms)) bob_saw.push_back(l);
    for (const auto& l : bob_saw) {
      CHECK(l.find("MSG carl carl said") == std::string::npos);
      CHECK(l.find("LEAVE carl ") == std::string::npos);
    }
  }
  for (auto* c : {bob.get(), dora.get()}) {
    REQUIRE(c->send_line("WHO"));
    CHECK(read_until_within(*c, wait_long, [](const std::string& l) { return l.starts_with("USERS "); }) ==
          "USERS alice alice_2 bob carl dora");
  }
}

TEST_CASE("shared room: a member whose seat was resumed elsewhere while its server was cut off is ended there",
          "[redis][shared]") {
  Cluster cluster(2);
  std::string token;
  std::uint64_t last = 0;
  auto dora = join(cluster.port(0), "dora", &token, &last);
  auto bob = join(cluster.port(1), "bob");
  last = must_tag(read_event(*dora, "JOIN bob")).id;

  freeze_until_lost(cluster, 0, *bob, {"dora"});
  // dora's client gave up on the frozen server and resumed on bob's.
  LineClient back(cluster.port(1));
  REQUIRE(read_line_within(back, wait_long).starts_with("#"));
  REQUIRE(back.send_line("RESUME " + token + " " + std::to_string(last)));
  REQUIRE(read_line_within(back, wait_long).starts_with("RESUMED dora "));
  read_until_within(*bob, wait_long, tagged_starting("BACK dora "));
  REQUIRE(cluster.servers[0]->process().signal(SIGCONT));

  // The stale connection on the first server is ended; nobody sees dora join or leave again.
  CHECK(dora->wait_closed(wait_long));
  const auto after = lines_for(*bob, 3000ms);
  for (const auto& l : after) {
    CHECK(l.find("JOIN dora") == std::string::npos);
    CHECK(l.find("LEAVE dora") == std::string::npos);
  }
  REQUIRE(back.send_line("SAY still here"));
  read_event(*bob, "MSG dora still here");
  REQUIRE(bob->send_line("WHO"));
  CHECK(read_until_within(*bob, wait_long, [](const std::string& l) { return l.starts_with("USERS "); }) == "USERS bob dora");
}

TEST_CASE("shared room: a chatserver started later has the room's recent past: newcomers' history, and resumes with "
          "nothing missed",
          "[redis][shared]") {
  Cluster cluster(1);
  std::string token;
  std::uint64_t last = 0;
  auto alice = join(cluster.port(0), "alice", &token, &last);
  auto bob = join(cluster.port(0), "bob");
  REQUIRE(bob->send_line("SAY seen by alice"));
  last = must_tag(read_event(*alice, "MSG bob seen by alice")).id;
  alice->close_with_reset();
  read_until_within(*bob, wait_long, tagged_starting("LEAVE alice "));
  std::vector<std::string> said;
  for (int i = 0; i < 5; ++i) {
    said.push_back("MSG bob missed " + std::to_string(i));
    REQUIRE(bob->send_line("SAY missed " + std::to_string(i)));
    read_event(*bob, said.back());
  }
  // A second chatserver joins the room only now.
  cluster.add();
  // A newcomer there gets the room's recent history, as on the first.
  {
    auto carol = std::make_unique<LineClient>(cluster.port(1));
    REQUIRE(read_line_within(*carol, wait_long).starts_with("#"));
    REQUIRE(carol->send_line("HELLO carol ids"));
    REQUIRE(read_line_within(*carol, wait_long) == "WELCOME carol");
    REQUIRE(read_line_within(*carol, wait_long).starts_with("TOKEN "));
    REQUIRE(read_line_within(*carol, wait_long) == "USERS bob carol");
    const auto recent = read_block_within(*carol, "recent", wait_long);
    std::vector<std::string> bodies;
    for (const auto& l : recent.lines) bodies.push_back(must_tag(l).body);
    for (const auto& m : said) CHECK(std::find(bodies.begin(), bodies.end(), m) != bodies.end());
  }
  // alice resumes there: exactly what she missed, in order, and not partial.
  LineClient back(cluster.port(1));
  REQUIRE(read_line_within(back, wait_long).starts_with("#"));
  REQUIRE(back.send_line("RESUME " + token + " " + std::to_string(last)));
  REQUIRE(read_line_within(back, wait_long).starts_with("RESUMED alice "));
  REQUIRE(read_line_within(back, wait_long).starts_with("TOKEN "));
  REQUIRE(read_line_within(back, wait_long).starts_with("USERS "));
  const auto missed = read_block_within(back, "missed", wait_long);
  CHECK_FALSE(missed.partial);
  std::vector<std::string> bodies;
  for (const auto& l : missed.lines) {
    const auto t = must_tag(l);
    if (!t.body.starts_with("LEAVE alice ") && t.body.find(" carol") == std::string::npos) bodies.push_back(t.body);
  }
  CHECK(bodies == said);
}
