// Script-mode chatclient (CHATCLIENT_PATH) against the real chatserver (CHATSERVER_PATH) with ids,
// resume and history (docs/protocol.md, "Ids, resume and history"): the recent history on
// joining, /history and /search, and above all a connection killed from outside (`ss -K`, as a
// phone changing networks would lose it) after which the client resumes by itself and shows
// what it missed, once, under the marker "--- away 1 s, 3 messages you missed ---"; and a server
// stopped politely and restarted on the same database, whose seat the client takes back.
//
// Everything runs on 127.0.0.1 with kernel-chosen ports and `--db none`. Waits are for lines and
// exits, each with a deadline (kWait, generous: CI has two busy cores and the first reconnect
// comes after about a second); nothing sleeps.
#include "tests/process/server_process.hpp"
#include "tests/support/chatclient_args.hpp"
#include "tests/support/line_client.hpp"
#include "tests/support/process.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using chat::test::chatclient_args;
using chat::test::LineClient;
using chat::test::ServerProcess;
using chat::test::Stream;
using chat::test::Subprocess;

namespace {

constexpr auto kWait = 10000ms;

// A protocol client with ids, joined and past its recent history.
std::unique_ptr<LineClient> join_with_ids(std::uint16_t port, const std::string& nick) {
  auto c = std::make_unique<LineClient>(port);
  REQUIRE(c->send_line("HELLO " + nick + " ids"));
  REQUIRE(c->expect_line("HISTORY END recent", kWait));
  return c;
}

// Reads the client's stdout up to and including the line holding `text`; all of it goes into
// `lines` (one entry per line).
bool read_until(Subprocess& client, const std::string& text, std::vector<std::string>& lines) {
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    auto line = client.read_line(Stream::out, left);
    if (!line) return false;
    lines.push_back(*line);
    if (line->find(text) != std::string::npos) return true;
  }
  return false;
}

std::size_t count_holding(const std::vector<std::string>& lines, const std::string& text) {
  return static_cast<std::size_t>(
      std::count_if(lines.begin(), lines.end(), [&](const std::string& l) { return l.find(text) != std::string::npos; }));
}

std::string joined(const std::vector<std::string>& lines) {
  std::string all;
  for (const auto& l : lines) all += l + "\n";
  return all;
}

}  // namespace

TEST_CASE("chatclient script mode resumes by itself after its connection is killed, and shows what it missed once",
          "[chatclient][resume]") {
  ServerProcess server({"--db", "none", "--log-level", "warn"});
  const auto port = server.port();
  auto bob = join_with_ids(port, "bob");
  const auto bob_port = bob->socket().local_endpoint().port();

  Subprocess alice(chatclient_args(port, "alice", {"--reconnect"}));
  std::vector<std::string> out;
  REQUIRE(read_until(alice, "*** welcome, alice", out));
  REQUIRE(bob->expect_line("JOIN alice", kWait));
  REQUIRE(bob->send_line("SAY before the drop"));
  REQUIRE(read_until(alice, "<bob> before the drop", out));

  // Kill alice's connection from outside the process: every socket to the server's port but
  // bob's (the server sees a reset and holds alice's seat for the resume window).
  Subprocess kill({"ss", "-K", "-tn", "dport = :" + std::to_string(port) + " and sport != :" + std::to_string(bob_port)});
  REQUIRE(kill.wait_exit(kWait) == 0);
  REQUIRE(bob->expect_line("LEAVE alice", kWait));
  // Said while alice is away: the first reconnect comes after about a second.
  REQUIRE(bob->send_line("SAY while you were away 1"));
  REQUIRE(bob->send_line("ME waits"));
  REQUIRE(bob->send_line("SAY while you were away 2"));

  REQUIRE(read_until(alice, " messages you missed ---", out));
  INFO("chatclient said:\n" << joined(out));
  REQUIRE(bob->expect_line("BACK alice", kWait));  // bob has ids: a resume, not a fresh JOIN
  REQUIRE(read_until(alice, "--- now ---", out));
  REQUIRE(bob->send_line("SAY live again"));
  REQUIRE(read_until(alice, "<bob> live again", out));
  alice.close_stdin();
  CHECK(alice.wait_exit(kWait) == 0);
  while (auto line = alice.read_line(Stream::out, kWait)) out.push_back(*line);
  INFO("all of it:\n" << joined(out));

  // The marker: "--- away 1 s, 4 messages you missed ---", after the resume's own line. The
  // missed block holds alice's own LEAVE (said after her last id) and bob's three lines.
  const auto marker = std::find_if(out.begin(), out.end(), [](const std::string& l) {
    return l.starts_with("--- away ") && l.ends_with(" messages you missed ---");
  });
  REQUIRE(marker != out.end());
  const auto now = std::find(marker, out.end(), "--- now ---");
  REQUIRE(now != out.end());
  const std::vector<std::string> missed(marker + 1, now);
  const std::string count = marker->substr(marker->find(", ") + 2);
  CHECK(count == std::to_string(missed.size()) + " messages you missed ---");
  CHECK(count_holding(missed, "<bob> while you were away 1") == 1);
  CHECK(count_holding(missed, "* bob waits") == 1);
  CHECK(count_holding(missed, "<bob> while you were away 2") == 1);
  CHECK(count_holding(out, "back in the room as alice") == 1);
  CHECK(std::distance(out.begin(), std::find_if(out.begin(), out.end(), [](const std::string& l) {
                        return l.find("back in the room as alice") != std::string::npos;
                      })) < std::distance(out.begin(), marker));
  // Each line exactly once in everything printed, before the drop too; the server never made
  // the client drop a repeated event; a resume, not a fresh join.
  for (const char* text : {"<bob> before the drop", "<bob> while you were away 1", "* bob waits",
                           "<bob> while you were away 2", "<bob> live again"}) {
    CHECK(count_holding(out, text) == 1);
  }
  CHECK(count_holding(out, "not shown twice") == 0);
  CHECK(count_holding(out, "rejoined as") == 0);
  CHECK(count_holding(out, "could not resume") == 0);
  CHECK(count_holding(out, "*** disconnected: ") == 1);
}

TEST_CASE("chatclient script mode shows the recent history apart, pages back with /history, and finds with /search",
          "[chatclient][resume]") {
  ServerProcess server({"--db", "none", "--history", "3", "--log-level", "warn"});
  const auto port = server.port();
  auto bob = join_with_ids(port, "bob");
  for (int i = 1; i <= 5; ++i) REQUIRE(bob->send_line("SAY old " + std::to_string(i) + (i == 2 ? " needle" : "")));
  REQUIRE(bob->expect_line("MSG bob old 5", kWait));

  Subprocess alice(chatclient_args(port, "alice"));
  std::vector<std::string> out;
  REQUIRE(read_until(alice, "--- now ---", out));
  INFO("chatclient said:\n" << joined(out));
  // The last three events before alice came, between the separators, with their own times.
  const auto recent = std::find(out.begin(), out.end(), "--- earlier messages (3) ---");
  REQUIRE(recent != out.end());
  REQUIRE(out.end() - recent == 5);
  CHECK(recent[1].ends_with("] <bob> old 3"));
  CHECK(recent[2].ends_with("] <bob> old 4"));
  CHECK(recent[3].ends_with("] <bob> old 5"));

  // /history: what came before the oldest line printed (bob's JOIN and his first two lines).
  REQUIRE(alice.write("/history 10\n"));
  REQUIRE(read_until(alice, "--- end of earlier messages ---", out));
  const auto earlier = std::find_if(std::find(out.begin(), out.end(), "--- now ---"), out.end(),
                                    [](const std::string& l) { return l.starts_with("--- earlier messages ("); });
  REQUIRE(earlier != out.end());
  CHECK(*earlier == "--- earlier messages (3) ---");
  const std::vector<std::string> page(earlier + 1, out.end() - 1);
  REQUIRE(page.size() == 3);
  CHECK(page[0].ends_with("] *** bob joined"));
  CHECK(page[1].ends_with("] <bob> old 1"));
  CHECK(page[2].ends_with("] <bob> old 2 needle"));

  // /search: the one line holding the word.
  REQUIRE(alice.write("/search needle\n"));
  REQUIRE(read_until(alice, "--- end of search ---", out));
  const auto found = std::find(out.begin(), out.end(), "--- found (1) ---");
  REQUIRE(found != out.end());
  CHECK(found[1].ends_with("] <bob> old 2 needle"));
  CHECK(found[2] == "--- end of search ---");

  alice.close_stdin();
  CHECK(alice.wait_exit(kWait) == 0);
}

TEST_CASE("chatclient script mode takes its seat back on a server restarted with the same database",
          "[chatclient][resume]") {
  char dir_template[] = "/tmp/chat-resume-db-XXXXXX";
  REQUIRE(::mkdtemp(dir_template) != nullptr);
  const std::string db = std::string(dir_template) + "/chat.db";
  auto server = std::make_unique<ServerProcess>(std::vector<std::string>{"--db", db, "--log-level", "warn"});
  const auto port = server->port();

  Subprocess alice(chatclient_args(port, "alice", {"--reconnect"}));
  std::vector<std::string> out;
  REQUIRE(read_until(alice, "*** welcome, alice", out));
  REQUIRE(alice.write("said before the restart\n"));
  REQUIRE(read_until(alice, "<alice> said before the restart", out));

  // A polite stop (BYE shutdown): the seats are kept in the database for the resume window.
  REQUIRE(server->process().signal(SIGTERM));
  REQUIRE(server->process().wait_exit(kWait) == 0);
  server.reset();
  REQUIRE(read_until(alice, "*** disconnected: the server has stopped", out));
  Subprocess again({CHATSERVER_PATH, "--bind", "127.0.0.1", "--port", std::to_string(port), "--db", db, "--log-level",
                    "warn"});
  REQUIRE(again.wait_for_line(Stream::err, "chatserver listening on", kWait));

  const bool back = read_until(alice, "back in the room as alice", out);
  INFO("chatclient said:\n" << joined(out));
  REQUIRE(back);
  REQUIRE(read_until(alice, "--- away ", out));  // the marker, whatever was missed
  CHECK(count_holding(out, "rejoined as") == 0);
  CHECK(count_holding(out, "could not resume") == 0);
  CHECK(count_holding(out, "<alice> said before the restart") == 1);  // not replayed
  alice.close_stdin();
  CHECK(alice.wait_exit(kWait) == 0);
  again.signal(SIGTERM);
  again.wait_exit(kWait);
  for (const char* suffix : {"", "-wal", "-shm"}) ::unlink((db + suffix).c_str());
  ::rmdir(dir_template);
}
