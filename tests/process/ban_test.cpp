// Operators' bans against the real chatserver (docs/protocol.md, "Operators"): BAN removes a
// member with BYE banned and one LEAVE banned, and keeps its nickname and address out (BYE banned
// at the door, ERROR banned at HELLO, RESUME, NICK and a text-mode nickname); UNBAN lets them in
// again; BANS lists them; a ban ends by itself; only an operator may; a bad duration is said;
// chatclient stops at ERROR banned; with a database (--db) a restarted server keeps its bans.
//
// Every client here connects from 127.0.0.1, so an address ban bans the test's own new
// connections too: each case lifts it (UNBAN) or ends with it. Every server is a child process
// on 127.0.0.1 port 0, ended by its pid. Not thread safe: the test thread drives everything.
#include "tests/process/server_process.hpp"
#include "tests/support/deadline.hpp"
#include "tests/support/line_client.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

using namespace chat::test;
using namespace std::chrono_literals;

namespace {

constexpr const char* admin_password = "trusted hands";

// The operators' password file (a hash from chatserver --hash-password) in `dir`; its path.
std::string admin_file(const TempDir& dir) {
  Subprocess p({CHATSERVER_PATH, "--hash-password"});
  REQUIRE(p.write(std::string(admin_password) + "\n"));
  p.close_stdin();
  REQUIRE(p.wait_exit(patience) == 0);
  const auto hash = p.read_line(Stream::out, 1s);
  REQUIRE(hash);
  const auto path = (dir.path() / "admin.pass").string();
  std::ofstream(path) << *hash << "\n";
  return path;
}

// A line from `c` within the patience, or "" (a failed check shows it).
std::string next(LineClient& c) { return c.read_line(patience).value_or(""); }

// HELLO `nick` on a new connection: the greeting, WELCOME and USERS read.
std::unique_ptr<LineClient> join(std::uint16_t port, const std::string& nick) {
  auto c = std::make_unique<LineClient>(port);
  REQUIRE(next(*c).starts_with("# chatserver"));
  REQUIRE(c->send_line("HELLO " + nick));
  REQUIRE(next(*c) == "WELCOME " + nick);
  REQUIRE(c->expect_line("USERS ", patience));
  return c;
}

// A member who gave the operators' password.
std::unique_ptr<LineClient> join_operator(std::uint16_t port, const std::string& nick) {
  auto c = join(port, nick);
  REQUIRE(c->send_line(std::string("OPER ") + admin_password));
  REQUIRE(c->expect_line("# you are an operator: ", patience));
  return c;
}

// "14:05", or "2026-12-09 14:05" near midnight: a ban's end as the server words it.
const std::string until_pattern = "((\\d{4}-\\d\\d-\\d\\d )?\\d\\d:\\d\\d)";

// `line` matches `pattern` (a regex over the whole line); `until` gets the time it names.
bool matches(const std::string& line, const std::string& pattern, std::string* until = nullptr) {
  std::smatch m;
  if (!std::regex_match(line, m, std::regex(pattern))) return false;
  if (until != nullptr && m.size() > 1) *until = m[1].str();
  return true;
}

// PING, and every line up to its PONG: what `c` was sent before it.
std::vector<std::string> drain(LineClient& c, const std::string& token) {
  REQUIRE(c.send_line("PING " + token));
  std::vector<std::string> lines;
  for (;;) {
    auto line = c.read_line(patience);
    REQUIRE(line);
    if (*line == "PONG " + token) return lines;
    lines.push_back(*line);
  }
}

std::string stats_of(LineClient& c) {
  REQUIRE(c.send_line("STATS"));
  const auto line = c.expect_line("STATS ", patience);
  REQUIRE(line);
  return *line;
}

}  // namespace

TEST_CASE("BAN a member: BYE banned, one LEAVE banned, BYE banned at the door, then UNBAN lets them in again",
          "[process][access][ban]") {
  TempDir dir("chat_ban");
  ServerProcess server({"--db", "none", "--admin-password-file", admin_file(dir)});
  auto alice = join(server.port(), "alice");
  auto bob = join(server.port(), "bob");
  auto carol = join(server.port(), "carol");
  REQUIRE(alice->expect_line("JOIN carol", patience));
  REQUIRE(bob->expect_line("JOIN carol", patience));

  // Only an operator may; a bad duration, and itself, are refused with the reason.
  REQUIRE(alice->send_line("BAN bob 10m"));
  CHECK(next(*alice) == "ERROR not-operator BAN");
  REQUIRE(alice->send_line("BANS"));
  CHECK(next(*alice) == "ERROR not-operator BANS");
  REQUIRE(alice->send_line("UNBAN bob"));
  CHECK(next(*alice) == "ERROR not-operator UNBAN");
  REQUIRE(alice->send_line(std::string("OPER ") + admin_password));
  REQUIRE(alice->expect_line("# you are an operator: ", patience));
  REQUIRE(alice->send_line("BAN bob 10x"));
  CHECK(next(*alice) == "ERROR bad-args '10x' is not a duration: use 30s, 10m, 2h or 1d (at most 30d)");
  REQUIRE(alice->send_line("BAN bob 31d"));
  CHECK(next(*alice) == "ERROR bad-args a ban lasts from 1s to 30d, not 31d");
  REQUIRE(alice->send_line("BAN bob"));
  CHECK(next(*alice) == "ERROR bad-args usage: BAN <nick> <duration> [reason] (duration: 30s, 10m, 2h or 1d; at most 30d)");
  REQUIRE(alice->send_line("BAN Alice 10m"));
  CHECK(next(*alice) == "ERROR bad-args you cannot ban yourself");
  REQUIRE(alice->send_line("BANS"));
  CHECK(next(*alice) == "# bans (0)");

  // The operator reads what was banned (the address too), then the room's LEAVE; bob is told
  // who, until when and why, and goes; carol hears it once.
  REQUIRE(alice->send_line("BAN Bob 10m flooding the room"));
  std::string until;
  const auto confirmed = next(*alice);
  CHECK(matches(confirmed, "# banned bob 127\\.0\\.0\\.1 until " + until_pattern + " by alice: flooding the room", &until));
  INFO("confirmed: " << confirmed);
  REQUIRE_FALSE(until.empty());
  const std::string detail = "by alice until " + until + ": flooding the room";
  CHECK(next(*alice) == "LEAVE bob banned " + detail);
  CHECK(bob->expect_line("BYE banned " + detail, patience));
  CHECK(bob->wait_closed(patience));
  const auto carol_saw = drain(*carol, "c1");
  CHECK(std::count(carol_saw.begin(), carol_saw.end(), "LEAVE bob banned " + detail) == 1);
  CHECK(std::count_if(carol_saw.begin(), carol_saw.end(), [](const std::string& l) { return l.starts_with("LEAVE bob"); }) == 1);

  // The address is banned: a new connection from it gets one line and a FIN, no greeting.
  {
    LineClient again(server.port());
    std::string door;
    CHECK(matches(next(again), "BYE banned until " + until_pattern, &door));
    CHECK(door == until);
    CHECK(again.wait_closed(patience));
  }
  REQUIRE(alice->send_line("BANS"));
  CHECK(next(*alice) == "# bans (1)");
  CHECK(next(*alice) == "# banned bob 127.0.0.1 until " + until + " by alice: flooding the room");
  const auto stats = stats_of(*alice);
  CHECK(stats.find(" refused_banned=1 ") != std::string::npos);
  CHECK(stats.find(" leave_banned=1 ") != std::string::npos);
  CHECK(stats.find(" bans=1") != std::string::npos);

  // UNBAN by address lifts bob's ban (nickname and address): he comes back under his name.
  REQUIRE(alice->send_line("UNBAN 10.0.0.9"));
  CHECK(next(*alice) == "ERROR bad-args 10.0.0.9 is not banned");
  REQUIRE(alice->send_line("UNBAN 10.0.0"));
  CHECK(next(*alice) == "ERROR bad-args 10.0.0 is neither a nickname nor an address");
  REQUIRE(alice->send_line("UNBAN ::ffff:127.0.0.1"));  // the same address, as a dual-stack socket shows it
  CHECK(next(*alice) == "# unbanned bob 127.0.0.1");
  auto bob_again = join(server.port(), "bob");
  REQUIRE(alice->expect_line("JOIN bob", patience));
  REQUIRE(alice->send_line("UNBAN bob"));
  CHECK(next(*alice) == "ERROR bad-args bob is not banned");

  // Text mode: /ban and /bans, the same way, in words.
  LineClient dora(server.port());
  REQUIRE(next(dora).starts_with("# chatserver"));
  REQUIRE(dora.send_line("dora"));
  REQUIRE(dora.expect_line("*** welcome, dora", patience));
  REQUIRE(dora.send_line("/ban carol 1h"));
  CHECK(dora.expect_line("only an operator may do that (/oper <password> first)", patience));
  REQUIRE(dora.send_line(std::string("/oper ") + admin_password));
  CHECK(dora.expect_line("# you are an operator: /kick <nick> [reason] removes someone from the room, "
                         "/ban <nick> <duration> [reason] keeps them out (/unban, /bans)",
                         patience));
  REQUIRE(dora.send_line("/ban carol 1h"));
  std::string carol_until;
  const auto dora_confirmed = next(dora);
  CHECK(matches(dora_confirmed, "# banned carol 127\\.0\\.0\\.1 until " + until_pattern + " by dora", &carol_until));
  INFO("dora: " << dora_confirmed);
  CHECK(carol->expect_line("BYE banned by dora until " + carol_until, patience));
  CHECK(dora.expect_line("*** carol was banned from the room by dora until " + carol_until, patience));
  REQUIRE(dora.send_line("/unban carol"));
  CHECK(dora.expect_line("# unbanned carol 127.0.0.1", patience));
  REQUIRE(dora.send_line("/bans"));
  CHECK(dora.expect_line("# bans (0)", patience));
}

TEST_CASE("BAN a nickname nobody has: ERROR banned at HELLO, RESUME, NICK and in text mode, and the connection stays",
          "[process][access][ban]") {
  TempDir dir("chat_ban");
  ServerProcess server({"--db", "none", "--admin-password-file", admin_file(dir)});
  auto alice = join_operator(server.port(), "alice");

  // frank drops with a seat held for him; his nickname is banned meanwhile.
  auto frank = std::make_unique<LineClient>(server.port());
  REQUIRE(next(*frank).starts_with("# chatserver"));
  REQUIRE(frank->send_line("HELLO frank ids"));
  REQUIRE(next(*frank) == "WELCOME frank");
  const auto token_line = next(*frank);
  REQUIRE(token_line.starts_with("TOKEN "));
  const auto token = token_line.substr(6, 32);
  REQUIRE(frank->expect_line("HISTORY END recent", patience));
  frank->close();
  REQUIRE(alice->expect_line("LEAVE frank closed", patience));

  std::string until;
  REQUIRE(alice->send_line("BAN dave 1h"));
  CHECK(matches(next(*alice), "# banned dave \\(no address: not connected here\\) until " + until_pattern + " by alice",
                &until));
  REQUIRE(alice->send_line("BAN frank 1h spam"));
  CHECK(matches(next(*alice),
                "# banned frank \\(no address: not connected here\\) until " + until_pattern + " by alice: spam"));

  // HELLO: refused, and the connection stays for another nickname.
  LineClient erin(server.port());
  REQUIRE(next(erin).starts_with("# chatserver"));
  REQUIRE(erin.send_line("HELLO Dave"));
  CHECK(next(erin) == "ERROR banned Dave until " + until);
  REQUIRE(erin.send_line("HELLO erin"));
  CHECK(next(erin) == "WELCOME erin");
  REQUIRE(erin.expect_line("USERS ", patience));
  // NICK to a banned nickname: refused the same way.
  REQUIRE(erin.send_line("NICK dave"));
  CHECK(next(erin) == "ERROR banned dave until " + until);
  // RESUME of a banned nickname's seat: refused before the seat is given back.
  LineClient back(server.port());
  REQUIRE(next(back).starts_with("# chatserver"));
  REQUIRE(back.send_line("RESUME " + token + " 0"));
  CHECK(matches(next(back), "ERROR banned frank until " + until_pattern));
  // Text mode: in words, and asked for another nickname.
  LineClient gina(server.port());
  REQUIRE(next(gina).starts_with("# chatserver"));
  REQUIRE(gina.send_line("dave"));
  CHECK(gina.expect_line("*** banned from this room: dave until " + until, patience));
  CHECK(next(gina) == "# type another nickname");
  REQUIRE(gina.send_line("gina"));
  CHECK(gina.expect_line("*** welcome, gina", patience));

  // chatclient says so in words and stops (trying again would be refused again).
  Subprocess client({CHATCLIENT_PATH, "--host", "127.0.0.1", "--port", std::to_string(server.port()), "--nick", "dave"});
  std::string said;
  CHECK(client.wait_for_line(Stream::err, "cannot join as dave: banned from this room: dave until " + until, patience,
                             &said));
  INFO(said);
  const auto client_exit = client.wait_exit(patience);
  CHECK((client_exit && *client_exit != 0));

  REQUIRE(alice->expect_line("JOIN gina", patience));  // (after erin's: her NICK to dave was refused)
  REQUIRE(alice->send_line("BANS"));
  CHECK(next(*alice) == "# bans (2)");
  CHECK(next(*alice) == "# banned dave (no address) until " + until + " by alice");
  CHECK(matches(next(*alice), "# banned frank \\(no address\\) until " + until_pattern + " by alice: spam"));
  // UNBAN by nickname: dave may join.
  REQUIRE(alice->send_line("UNBAN DAVE"));
  CHECK(next(*alice) == "# unbanned dave (no address)");
  auto dave = join(server.port(), "dave");
}

TEST_CASE("a ban ends by itself: a 1 s ban of a member lets its address and nickname in again", "[process][access][ban]") {
  TempDir dir("chat_ban");
  // Quiet (many refused tries follow) and no flood control (they come fast).
  ServerProcess server({"--db", "none", "--admin-password-file", admin_file(dir), "--log-level", "warn", "--max-rate", "0"});
  auto alice = join_operator(server.port(), "alice");
  auto bob = join(server.port(), "bob");
  REQUIRE(alice->expect_line("JOIN bob", patience));
  REQUIRE(alice->send_line("BAN bob 1s"));
  REQUIRE(alice->expect_line("LEAVE bob banned by alice until ", patience));
  CHECK(bob->expect_line("BYE banned by alice until ", patience));
  // Refused at the door until the second is over; then greeted, and bob joins under his name.
  bool refused_once = false;
  CHECK(eventually(
      [&] {
        LineClient c(server.port());
        const auto line = next(c);
        if (line.starts_with("BYE banned until ")) {
          refused_once = true;
          return false;
        }
        return line.starts_with("# chatserver");
      },
      10s));
  CHECK(refused_once);
  auto bob_again = join(server.port(), "bob");
  REQUIRE(alice->expect_line("JOIN bob", patience));
  REQUIRE(alice->send_line("BANS"));
  CHECK(next(*alice) == "# bans (0)");
}

TEST_CASE("bans survive a restart with a database: the nickname at HELLO, the address at the door",
          "[process][access][ban][persistence]") {
  TempDir dir("chat_ban");
  const auto db = (dir.path() / "chat.db").string();
  const auto admin = admin_file(dir);
  const auto start = [&] {
    return std::make_unique<ServerProcess>(std::vector<std::string>{"--db", db, "--admin-password-file", admin});
  };
  const auto stop = [](std::unique_ptr<ServerProcess>& server) {
    REQUIRE(server->process().signal(SIGTERM));
    REQUIRE(server->process().wait_exit(patience) == 0);
    server.reset();
  };
  auto server = start();
  std::string until;
  {
    auto alice = join_operator(server->port(), "alice");
    REQUIRE(alice->send_line("BAN carol 2h off-topic"));
    CHECK(matches(next(*alice), "# banned carol \\(no address: not connected here\\) until " + until_pattern +
                                    " by alice: off-topic",
                  &until));
  }
  stop(server);

  server = start();
  {
    // The nickname is still banned; the address is not.
    LineClient c(server->port());
    REQUIRE(next(c).starts_with("# chatserver"));
    REQUIRE(c.send_line("HELLO carol"));
    CHECK(next(c) == "ERROR banned carol until " + until);
    auto alice = join_operator(server->port(), "alice");
    REQUIRE(alice->send_line("BANS"));
    CHECK(next(*alice) == "# bans (1)");
    CHECK(next(*alice) == "# banned carol (no address) until " + until + " by alice: off-topic");
    // Now a member, address and all.
    auto bob = join(server->port(), "bob");
    REQUIRE(alice->send_line("BAN bob 1h"));
    REQUIRE(alice->expect_line("LEAVE bob banned by alice until ", patience));
  }
  stop(server);

  server = start();
  LineClient c(server->port());
  CHECK(matches(next(c), "BYE banned until " + until_pattern));
  CHECK(c.wait_closed(patience));
}
