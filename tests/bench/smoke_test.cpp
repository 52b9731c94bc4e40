// The real chatbench executable, each side-by-side mode run small and fast against the chatserver
// chatbench starts itself (127.0.0.1, port 0): fanout --max (JSON), fanout --rate, join and scale
// exit 0 with a clean check; usage errors exit 2 (a port-less non-chat protocol among them, with
// a message naming --port); a fanout against a port where nothing listens fails fast, saying the
// clients were refused.
//
// Threads: none but the test thread; chatbench (and the chatserver it starts) are processes,
// driven through tests/support/process.hpp's Subprocess with bounded waits.
#include "tests/support/deadline.hpp"
#include "tests/support/process.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

using namespace chat::test;
using namespace std::chrono_literals;

namespace {

// Far beyond what any run here takes (well under a second each on an idle machine): only a hang
// should ever reach it.
constexpr auto bound = 120s;

struct Outcome {
  std::optional<int> code;  // nullopt: still running at the bound (it is killed)
  std::string out;          // stdout, lines joined with LF
  std::string err;          // stderr
  std::string all() const { return "--- stdout:\n" + out + "--- stderr:\n" + err; }
};

// Runs `chatbench ARGS...` to its exit, reading stdout and stderr as they come so that neither
// pipe fills up, for at most `bound` overall.
Outcome run_chatbench(std::vector<std::string> args) {
  args.insert(args.begin(), CHATBENCH_PATH);
  Subprocess p(std::move(args));
  p.close_stdin();
  Outcome o;
  const auto deadline = std::chrono::steady_clock::now() + bound;
  // Each read waits at most 20 ms for its stream, then the other stream gets its turn.
  while (!(p.at_eof(Stream::out) && p.at_eof(Stream::err)) && millis_until(deadline) > 0) {
    for (auto [which, text] : {std::pair{Stream::out, &o.out}, std::pair{Stream::err, &o.err}}) {
      while (auto line = p.read_line(which, std::chrono::milliseconds(std::min(20, millis_until(deadline))))) {
        text->append(*line).push_back('\n');
      }
    }
  }
  o.code = p.wait_exit(std::chrono::milliseconds(millis_until(deadline)));
  return o;  // ~Subprocess kills chatbench if it still runs
}

std::string without_spaces(std::string text) {
  text.erase(std::remove_if(text.begin(), text.end(), [](char c) { return c == ' ' || c == '\n' || c == '\t'; }),
             text.end());
  return text;
}

// A port on 127.0.0.1 where nothing listens: bound by the kernel's choice, then released.
std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t size = sizeof a;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &size) == 0;
  ::close(fd);
  REQUIRE(ok);
  return ntohs(a.sin_port);
}

bool contains(const std::string& text, std::string_view what) { return text.find(what) != std::string::npos; }

}  // namespace

TEST_CASE("chatbench --json fanout --max: one JSON document, ok", "[bench][smoke]") {
  const auto o = run_chatbench({"--json", "fanout", "--max", "--clients", "5", "--senders", "2", "--msgs", "50"});
  INFO(o.all());
  REQUIRE(o.code.has_value());
  CHECK(*o.code == 0);
  // stdout holds the document alone, on one line; the tables and progress went to stderr.
  const auto json = without_spaces(o.out);
  CHECK(json.starts_with("{"));
  CHECK(json.ends_with("}"));
  CHECK(std::count(o.out.begin(), o.out.end(), '\n') == 1);
  CHECK(contains(json, "\"fanout\":{"));
  CHECK(json.ends_with(",\"ok\":true}"));  // the top-level verdict, last
  CHECK(contains(json, "\"sent\":100,"));
  CHECK(contains(json, "\"deliveries_to_others\":400,"));  // 100 messages x 4 other clients
  CHECK(contains(json, "\"lost\":0,"));
  CHECK_FALSE(contains(json, "\"ok\":false"));
  CHECK(contains(o.err, "Fan-out:"));
}

TEST_CASE("chatbench fanout --rate: a table with deliveries/s and nothing lost", "[bench][smoke]") {
  const auto o = run_chatbench({"fanout", "--rate", "200", "--clients", "4", "--senders", "2", "--msgs", "20"});
  INFO(o.all());
  REQUIRE(o.code.has_value());
  CHECK(*o.code == 0);
  CHECK(contains(o.out, "deliveries/s"));
  CHECK(contains(o.out, "checked: 0 lost, 0 duplicated, 0 reordered, 0 corrupted"));
  CHECK(contains(o.out, "deliveries to others: 120 of 120"));  // 40 messages x 3 other clients
  CHECK(contains(o.out, "joined: 4 of 4"));
  CHECK_FALSE(contains(o.out, "FAILED"));
}

TEST_CASE("chatbench join: every client in the room, then a clean round", "[bench][smoke]") {
  const auto o = run_chatbench({"join", "--clients", "30", "--round-senders", "3"});
  INFO(o.all());
  REQUIRE(o.code.has_value());
  CHECK(*o.code == 0);
  CHECK(contains(o.out, "30 of 30"));
  CHECK(contains(o.out, "0 lost"));
  CHECK_FALSE(contains(o.out, "FAILED"));
}

TEST_CASE("chatbench scale: a small run completes", "[bench][smoke]") {
  const auto o = run_chatbench({"scale", "--clients", "40", "--duration", "1", "--idle", "1", "--rate", "20"});
  INFO(o.all());
  REQUIRE(o.code.has_value());
  CHECK(*o.code == 0);
  CHECK(contains(o.out, "40 of 40"));
  CHECK_FALSE(contains(o.out, "FAILED"));
}

TEST_CASE("chatbench usage errors exit 2 with a message", "[bench][smoke]") {
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases{
      {{"fanout"}, "--rate"},                                         // neither --rate nor --max
      {{"fanout", "--max", "--size", "10"}, "--size"},                // below min_payload_size
      {{"join", "--size", "401"}, "--size"},                          // above max_payload_size
      {{"--size", "10"}, "subcommand"},                               // --size belongs to a mode
      {{"fanout", "--max", "--clients", "3"}, "--senders"},           // 10 senders by default
      {{"fanout", "--rate", "5", "--max"}, "--max"},                  // the two exclude each other
      {{"fanout", "--max", "--protocol", "smoke"}, "--protocol"},
      {{"nosuchmode"}, "subcommand"},
  };
  for (const auto& c : cases) {
    std::string line;
    for (const auto& a : c.args) line += a + " ";
    const auto o = run_chatbench(c.args);
    INFO("chatbench " << line << "\n" << o.all());
    REQUIRE(o.code.has_value());
    CHECK(*o.code == 2);
    CHECK(contains(o.err + o.out, c.says));
  }
}

TEST_CASE("chatbench: a non-chat protocol without --port is refused, naming --port", "[bench][smoke]") {
  // A usage error like the others: exit 2.
  for (const char* protocol : {"irc", "line", "asio"}) {
    const auto o = run_chatbench({"fanout", "--protocol", protocol, "--max"});
    INFO(protocol << "\n" << o.all());
    REQUIRE(o.code.has_value());
    CHECK(*o.code == 2);
    CHECK(contains(o.err, "--port"));
    CHECK(contains(o.err, std::string("--protocol ") + protocol));
    CHECK(o.out.empty());  // no report of a run that never began
  }
}

TEST_CASE("chatbench fanout against a port where nothing listens fails at once", "[bench][smoke]") {
  const auto port = std::to_string(free_port());
  const auto started = std::chrono::steady_clock::now();
  const auto o = run_chatbench(
      {"fanout", "--max", "--port", port, "--protocol", "chat", "--clients", "3", "--senders", "1", "--msgs", "5"});
  const auto took = std::chrono::steady_clock::now() - started;
  INFO(o.all());
  REQUIRE(o.code.has_value());
  CHECK(*o.code != 0);
  CHECK(took < 60s);  // a refused connect is an answer, not something to wait out
  CHECK(contains(o.out, "not every client joined: 0 of 3"));
  CHECK(contains(o.out, "Connection refused"));
  CHECK(contains(o.out, "FAILED"));
}
