// Who may join: --allow (the door) and the room password (--password-file, chatserver
// --hash-password), against the real chatserver: BYE not-allowed outside the ranges; a password
// kept only as an scrypt hash; ERROR bad-password before anything is said about the nickname;
// each wrong try from an address answered later than the one before; text mode asking for it.
// Not thread safe: the test thread drives everything.
#include "tests/process/server_process.hpp"
#include "tests/support/line_client.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

using namespace chat::test;
using namespace std::chrono_literals;

namespace {

// `chatserver --hash-password` with `input` on its stdin: {exit code, stdout's first line, stderr}.
struct HashRun {
  std::optional<int> code;
  std::string out;
  std::string err;
};
HashRun hash_run(const std::string& input) {
  Subprocess p({CHATSERVER_PATH, "--hash-password"});
  REQUIRE(p.write(input));
  p.close_stdin();
  HashRun r;
  r.code = p.wait_exit(patience);
  if (auto l = p.read_line(Stream::out, 1s)) r.out = *l;
  while (auto l = p.read_line(Stream::err, 100ms)) r.err += *l + "\n";
  return r;
}

// Writes `content` to `name` in `dir`; returns its path.
std::string write_file(const TempDir& dir, const std::string& name, const std::string& content) {
  const auto path = (dir.path() / name).string();
  std::ofstream(path) << content;
  return path;
}

// A line from `c` within the patience, or "" (a failed check shows it).
std::string next(LineClient& c) { return c.read_line(patience).value_or(""); }

}  // namespace

TEST_CASE("chatserver --hash-password writes an scrypt hash, never the password, and --password-file refuses anything else",
          "[process][access]") {
  const auto r = hash_run("correct horse\n");
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(r.out.starts_with("$scrypt$ln=15,r=8,p=1$"));
  CHECK(r.out.find("correct horse") == std::string::npos);
  CHECK(hash_run("correct horse\n").out != r.out);  // a new salt each time
  CHECK(hash_run("").code == 2);                     // nothing to hash

  TempDir dir("chat_access");
  for (const auto& [content, expected] : std::vector<std::pair<std::string, std::string>>{
           {"correct horse\n", "never hold the password itself"},
           {"$scrypt$ln=40,r=8,p=1$c2FsdHNhbHQ=$a2V5\n", "ln=10..20"},
           {"$scrypt$ln=15,r=8,p=1$c2FsdHNhbHQ=$a2V5\n", "32 bytes"},
           {"", "cannot read"}}) {
    auto [code, out] = run_to_exit({"--port", "0", "--db", "none", "--password-file", write_file(dir, "p", content)});
    INFO(content << " -> " << out);
    CHECK(code == 2);
    CHECK(out.find("--password-file") != std::string::npos);
    CHECK(out.find(expected) != std::string::npos);
  }
  auto [code, out] = run_to_exit({"--port", "0", "--password-file", (dir.path() / "none").string()});
  CHECK(code == 2);
}

TEST_CASE("a room password: refused before a word about the nickname, slower each wrong try, text mode asks for it",
          "[process][access]") {
  const auto hashed = hash_run("correct horse\n");
  REQUIRE(hashed.code == 0);
  TempDir dir("chat_access");
  ServerProcess server({"--db", "none", "--password-file", write_file(dir, "room.pass", hashed.out + "\n")});

  // The right one, on a program's connection.
  LineClient alice(server.port());
  REQUIRE(next(alice).starts_with("# chatserver"));
  REQUIRE(alice.send_line("PASS correct horse"));
  REQUIRE(alice.send_line("HELLO alice"));
  CHECK(next(alice) == "WELCOME alice");

  // None, then a wrong one, for a taken nickname: the answer is about the password only.
  LineClient eve(server.port());
  REQUIRE(next(eve).starts_with("# chatserver"));
  REQUIRE(eve.send_line("HELLO alice"));
  CHECK(next(eve) == "ERROR bad-password send PASS <password> before HELLO or RESUME");
  REQUIRE(eve.send_line("PASS hunter2"));
  REQUIRE(eve.send_line("HELLO alice"));
  CHECK(next(eve) == "ERROR bad-password wrong password");
  // The next wrong try from this address (another connection too) waits a second first.
  LineClient eve2(server.port());
  REQUIRE(next(eve2).starts_with("# chatserver"));
  REQUIRE(eve2.send_line("PASS hunter3"));
  const auto asked = std::chrono::steady_clock::now();
  REQUIRE(eve2.send_line("HELLO mallory"));
  CHECK(next(eve2) == "ERROR bad-password wrong password");
  CHECK(std::chrono::steady_clock::now() - asked >= 900ms);
  // The connection stays; the right password lets it in (and the address is forgiven).
  REQUIRE(eve2.send_line("PASS correct horse"));
  REQUIRE(eve2.send_line("HELLO bob"));
  CHECK(next(eve2) == "WELCOME bob");

  // Text mode: the nickname, then the password as typed.
  LineClient carol(server.port());
  REQUIRE(next(carol).starts_with("# chatserver"));
  REQUIRE(carol.send_line("carol"));
  CHECK(next(carol) == "# this room has a password: type it");
  REQUIRE(carol.send_line("wrong"));
  CHECK(next(carol).find("this room has a password: wrong password") != std::string::npos);
  CHECK(next(carol) == "# type the room's password again");
  REQUIRE(carol.send_line("correct horse"));
  CHECK(next(carol).ends_with("] *** welcome, carol (type /help for commands)"));  // after its [HH:MM:SS]

  // chatclient with --password-file (its first line) joins like a program that sent PASS.
  Subprocess dave({CHATCLIENT_PATH, "--host", "127.0.0.1", "--port", std::to_string(server.port()), "--nick", "dave",
                   "--password-file", write_file(dir, "dave.pass", "correct horse\n")});
  std::string seen;
  CHECK(dave.wait_for_line(Stream::out, "welcome", patience, &seen));
  INFO(seen);
  // A wrong one: chatclient says so in words and stops (trying again would only wait longer).
  Subprocess erin({CHATCLIENT_PATH, "--host", "127.0.0.1", "--port", std::to_string(server.port()), "--nick", "erin",
                   "--password-file", write_file(dir, "erin.pass", "correct battery\n")});
  std::string said;
  CHECK(erin.wait_for_line(Stream::err, "cannot join as erin: this room has a password: wrong password", patience, &said));
  INFO(said);
  const auto erin_exit = erin.wait_exit(patience);
  CHECK((erin_exit && *erin_exit != 0));

  REQUIRE(alice.send_line("STATS"));
  const auto stats = alice.expect_line("STATS ", patience);
  REQUIRE(stats);
  CHECK(stats->find(" wrong_password=4") != std::string::npos);
}

TEST_CASE("chatserver --allow: an address outside every range gets BYE not-allowed and nothing else", "[process][options][allow]") {
  {
    ServerProcess server({"--allow", "10.0.0.0/8", "--allow", "fd00::/8"});
    LineClient c(server.port());
    const auto line = c.read_line(patience);
    REQUIRE(line);
    CHECK(*line == "BYE not-allowed");
    CHECK(c.wait_closed(patience));
    // Counted, and said in the log with the address.
    std::string seen;
    CHECK(server.process().wait_for_line(Stream::err, "refused 127.0.0.1:", patience, &seen));
    CHECK(seen.find("not in --allow") != std::string::npos);
  }
  {
    ServerProcess server({"--allow", "10.0.0.0/8", "--allow", "127.0.0.1"});
    LineClient c(server.port());
    const auto line = c.read_line(patience);
    REQUIRE(line);
    CHECK(line->starts_with("# chatserver"));
    REQUIRE(c.send_line("HELLO alice"));
    CHECK(c.expect_line("WELCOME alice", patience));
    REQUIRE(c.send_line("STATS"));
    const auto stats = c.expect_line("STATS ", patience);
    REQUIRE(stats);
    CHECK(stats->find(" refused_not_allowed=0") != std::string::npos);
  }
  // Not a range: a usage error naming the option and the value.
  auto [code, out] = run_to_exit({"--port", "0", "--allow", "10.0.0.0/33"});
  INFO(out);
  CHECK(code == 2);
  CHECK(out.find("--allow") != std::string::npos);
  CHECK(out.find("10.0.0.0/33") != std::string::npos);
}

TEST_CASE("operators: OPER with the operators' password, then KICK removes someone, with who and why",
          "[process][access]") {
  const auto hashed = hash_run("trusted hands\n");
  REQUIRE(hashed.code == 0);
  TempDir dir("chat_access");
  ServerProcess server({"--db", "none", "--admin-password-file", write_file(dir, "admin.pass", hashed.out + "\n")});
  const auto join = [&](const std::string& nick) {
    auto c = std::make_unique<LineClient>(server.port());
    REQUIRE(next(*c).starts_with("# chatserver"));
    REQUIRE(c->send_line("HELLO " + nick));
    REQUIRE(next(*c) == "WELCOME " + nick);
    REQUIRE(c->expect_line("USERS ", patience));
    return c;
  };
  auto alice = join("alice");
  auto bob = join("bob");
  auto carol = join("carol");
  REQUIRE(alice->expect_line("JOIN carol", patience));
  // Not yet an operator: refused; a wrong password: refused, and counted.
  REQUIRE(alice->send_line("KICK bob"));
  CHECK(next(*alice) == "ERROR not-operator KICK");
  REQUIRE(alice->send_line("OPER guess"));
  CHECK(next(*alice) == "ERROR bad-password wrong operator password");
  REQUIRE(alice->send_line("OPER trusted hands"));
  CHECK(next(*alice) == "# you are an operator: KICK <nick> [reason] removes someone from the room, "
                        "BAN <nick> <duration> [reason] keeps them out (UNBAN, BANS)");
  REQUIRE(alice->send_line("KICK nobody"));
  CHECK(next(*alice) == "ERROR no-such-nick nobody");
  // bob is told who and why, and goes; everyone else hears it once.
  REQUIRE(alice->send_line("KICK Bob flooding the room"));
  CHECK(bob->expect_line("BYE kicked by alice: flooding the room", patience));
  CHECK(bob->wait_closed(patience));
  for (auto* c : {alice.get(), carol.get()}) CHECK(c->expect_line("LEAVE bob kicked by alice: flooding the room", patience));
  // A kicked member's nickname is free at once (no seat is held for it).
  auto again = join("bob");
  // Text mode: /oper and /kick, the same way.
  LineClient dora(server.port());
  REQUIRE(next(dora).starts_with("# chatserver"));
  REQUIRE(dora.send_line("dora"));
  REQUIRE(dora.expect_line("*** welcome, dora", patience));
  REQUIRE(dora.send_line("/kick carol"));
  CHECK(dora.expect_line("only an operator may do that (/oper <password> first)", patience));
  REQUIRE(dora.send_line("/oper trusted hands"));
  CHECK(dora.expect_line("# you are an operator: /kick <nick> [reason] removes someone from the room, "
                         "/ban <nick> <duration> [reason] keeps them out (/unban, /bans)",
                         patience));
  REQUIRE(dora.send_line("/kick carol"));
  CHECK(carol->expect_line("BYE kicked by dora", patience));
  CHECK(dora.expect_line("*** carol was removed from the room by dora", patience));
  REQUIRE(alice->send_line("STATS"));
  const auto stats = alice->expect_line("STATS ", patience);
  REQUIRE(stats);
  CHECK(stats->find(" leave_kicked=2") != std::string::npos);
  CHECK(stats->find(" wrong_password=1") != std::string::npos);
}
