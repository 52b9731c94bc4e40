// chatserver's and chatclient's command lines as people meet them (issue 22, "Options"): a
// host name for --bind, "did you mean" for a misspelt option, a bad unit named as such, a
// --help that shows the formats people type, and the addresses a LAN server is reachable at.
// Every usage error exits 2. Nothing here connects anywhere but 127.0.0.1.
#include "tests/process/server_process.hpp"
#include "tests/support/line_client.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <regex>
#include <string>
#include <vector>

using namespace chat::test;

namespace {

// Runs chatclient with `args` until it exits: {exit code, stderr then stdout}.
std::pair<int, std::string> run_client_to_exit(std::vector<std::string> args) {
  return chat::test::run_program_to_exit(CHATCLIENT_PATH, std::move(args));
}

// CLI11's type labels, which --help must not show: "UINT:UINT in [1 - 100000]", "TEXT:DURATION",
// "INT:INT in [1 - 65535]", "TEXT:{error,warn,...}", or a bare TEXT/UINT/FLOAT.
const std::regex cli11_labels(R"(\b(UINT|INT|TEXT|FLOAT)\b|[A-Z]:[A-Z{]|in \[)");

}  // namespace

TEST_CASE("chatserver --bind localhost listens on 127.0.0.1, says so, and a client joins there", "[process][options]") {
  Subprocess server({CHATSERVER_PATH, "--bind", "localhost", "--port", "0"});
  const auto first = server.read_line(Stream::err, patience);
  REQUIRE(first);
  INFO(*first);
  const std::regex listening(R"(chatserver listening on 127\.0\.0\.1:(\d+) \(localhost[;)].*)");
  std::smatch m;
  REQUIRE(std::regex_match(*first, m, listening));
  const auto port = static_cast<std::uint16_t>(std::stoi(m[1]));
  CHECK(port != 0);
  LineClient c(port);  // 127.0.0.1
  REQUIRE(c.send_line("HELLO alice"));
  CHECK(c.expect_line("WELCOME alice", patience));
  CHECK(server.signal(SIGTERM));
  CHECK(server.wait_exit(patience) == 0);
}

TEST_CASE("chatserver: a --bind that is neither an address nor a name is a usage error naming --bind", "[process][options]") {
  for (const char* bad : {"256.1.1.1", "::zz", "not an address!", "10"}) {
    auto [code, out] = run_to_exit({"--bind", bad, "--port", "0"});
    INFO(bad << " -> " << out);
    CHECK(code == 2);
    CHECK(out.rfind("--bind: '" + std::string(bad) + "'", 0) == 0);
    CHECK(out.find("bad address") == std::string::npos);
  }
}

TEST_CASE("chatserver: a misspelt option gets the nearest one's name, exit 2", "[process][options]") {
  struct Case {
    std::vector<std::string> args;
    const char* says;
  };
  const std::vector<Case> cases{
      {{"--max-client", "5"}, "chatserver: unknown option --max-client (did you mean --max-clients?)"},
      {{"--maxclients", "5"}, "chatserver: unknown option --maxclients (did you mean --max-clients?)"},
      {{"--maxclients=5"}, "chatserver: unknown option --maxclients (did you mean --max-clients?)"},
      {{"--ping-timout", "1s"}, "chatserver: unknown option --ping-timout (did you mean --ping-timeout?)"},
      {{"--port", "0", "--keep", "1s,1s,1"}, "chatserver: unknown option --keep (did you mean --keepalive?)"},
      {{"--frobnicate"}, "chatserver: unknown option --frobnicate (chatserver --help lists them)"},
  };
  for (const auto& c : cases) {
    auto [code, out] = run_to_exit(c.args);
    INFO(c.args[0] << " -> " << out);
    CHECK(code == 2);
    CHECK(out.rfind(c.says, 0) == 0);
  }
}

TEST_CASE("chatserver --config: a misspelt key gets the nearest option's name", "[process][options][config]") {
  char name[] = "/tmp/chat-options-XXXXXX";
  const int fd = mkstemp(name);
  REQUIRE(fd >= 0);
  const std::string text = "port = 0\nmax-clientz = 5\n";
  REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  ::close(fd);
  auto [code, out] = run_to_exit({"--config", name});
  ::unlink(name);
  INFO(out);
  CHECK(code == 2);
  CHECK(out.find(std::string(name) + ":2: unknown option 'max-clientz' (did you mean max-clients?)") !=
        std::string::npos);
}

TEST_CASE("chatclient: a misspelt option gets the nearest one's name, exit 2", "[process][options][client]") {
  auto [code, out] = run_client_to_exit({"--nik", "alice"});
  INFO(out);
  CHECK(code == 2);
  CHECK(out.rfind("chatclient: unknown option --nik (did you mean --nick?)", 0) == 0);
}

TEST_CASE("a duration with a wrong unit says the unit is wrong, not missing, exit 2", "[process][options]") {
  const std::string says = "--ping-timeout: unknown unit 'x' in '10x' (use ms, s, m or h, e.g. 100ms, 1.5s, 2m)";
  SECTION("chatserver") {
    auto [code, out] = run_to_exit({"--ping-timeout", "10x"});
    INFO(out);
    CHECK(code == 2);
    CHECK(out.rfind(says, 0) == 0);
    CHECK(out.find("needs a unit") == std::string::npos);
  }
  SECTION("chatclient") {
    auto [code, out] = run_client_to_exit({"--nick", "alice", "--ping-timeout", "10x"});
    INFO(out);
    CHECK(code == 2);
    CHECK(out.rfind(says, 0) == 0);
  }
  SECTION("chatserver, a size") {
    auto [code, out] = run_to_exit({"--send-queue", "64KB"});
    INFO(out);
    CHECK(code == 2);
    CHECK(out.rfind("--send-queue: unknown unit 'KB' in '64KB'", 0) == 0);
  }
}

TEST_CASE("chatserver --help: grouped options, the formats people type, no CLI11 type labels", "[process][options]") {
  auto [code, help] = run_to_exit({"--help"});
  REQUIRE(code == 0);
  INFO(help);
  for (const char* line : {"\nNetwork:\n", "\nLimits:\n", "\nDetection:\n", "\nLogging:\n", "\nWeb:\n", "\nFormats:\n",
                           "  DURATION:   a number and a unit: 100ms, 1.5s, 2m, 1h",
                           "  SIZE:       bytes, or with a unit: 4096, 64KiB, 1MiB", "  --ping-timeout DURATION=10s",
                           "  --max-clients N=1000", "  --send-queue SIZE=1MiB", "  --bind ADDRESS=0.0.0.0"}) {
    INFO(line);
    CHECK(help.find(line) != std::string::npos);
  }
  std::smatch label;
  const bool labelled = std::regex_search(help, label, cli11_labels);
  INFO("label: " << (labelled ? label.str() : std::string()));
  CHECK_FALSE(labelled);
}

TEST_CASE("chatclient --help: grouped options, the formats people type, no CLI11 type labels", "[process][options][client]") {
  auto [code, help] = run_client_to_exit({"--help"});
  REQUIRE(code == 0);
  INFO(help);
  for (const char* line : {"\nServer:\n", "\nConnection:\n", "\nFormats:\n",
                           "  DURATION:   a number and a unit: 100ms, 1.5s, 2m, 1h",
                           "  SIZE:       bytes, or with a unit: 4096, 64KiB, 1MiB", "--ping-timeout DURATION=10s",
                           "--max-line SIZE=4096", "--port N=15600"}) {
    INFO(line);
    CHECK(help.find(line) != std::string::npos);
  }
  CHECK_FALSE(std::regex_search(help, cli11_labels));
}

TEST_CASE("chatserver on every address says where people can join and how to keep it to this machine",
          "[process][options][banner]") {
  const bool web = GENERATE(true, false);
  INFO("--web " << (web ? "on" : "off"));
  // Port 0 and nothing connects: only the lines are read.
  Subprocess server({CHATSERVER_PATH, "--bind", "0.0.0.0", "--port", "0", "--web", web ? "on" : "off"});
  const auto first = server.read_line(Stream::err, patience);
  REQUIRE(first);
  CHECK(first->rfind("chatserver listening on 0.0.0.0:", 0) == 0);
  const std::string port = first->substr(first->rfind(':') + 1);
  std::string seen;
  REQUIRE(server.wait_for_line(Stream::err, "to keep the chat to this machine: --bind 127.0.0.1", patience, &seen));
  INFO(seen);
  // A machine with a network address is told it; one with loopback alone, that only it can join.
  const std::regex lan(web ? "people on your network can join at http://[0-9.]+:" + port + "/ \\(a browser\\) or nc [0-9.]+ " + port
                           : "people on your network can join with nc [0-9.]+ " + port);
  const bool told_lan = std::regex_search(seen, lan);
  const bool told_alone = seen.find("only this machine can join for now") != std::string::npos;
  CHECK(told_lan != told_alone);
  CHECK((seen.find("http://") != std::string::npos) == web);
  CHECK(seen.find("169.254.") == std::string::npos);
  CHECK(server.signal(SIGTERM));
  CHECK(server.wait_exit(patience) == 0);
}

TEST_CASE("chatserver on every address of a machine with loopback alone says only it can join",
          "[process][options][banner]") {
  // A network namespace of its own (unshare, root): no interface but a loopback that is down.
  // Catch2 v2 has no SKIP: elsewhere the test passes with a WARN.
  if (::geteuid() != 0 || ::access("/usr/bin/unshare", X_OK) != 0) {
    WARN("skipped: needs root and /usr/bin/unshare for a network namespace");
    return;
  }
  Subprocess server({"/usr/bin/unshare", "--net", CHATSERVER_PATH, "--bind", "0.0.0.0", "--port", "0"});
  const auto first = server.read_line(Stream::err, patience);
  REQUIRE(first);
  if (first->rfind("unshare:", 0) == 0) {  // a container that forbids it
    WARN("skipped: " << *first);
    return;
  }
  CHECK(first->rfind("chatserver listening on 0.0.0.0:", 0) == 0);
  const std::string port = first->substr(first->rfind(':') + 1);
  std::string seen;
  REQUIRE(server.wait_for_line(Stream::err, "to keep the chat to this machine: --bind 127.0.0.1", patience, &seen));
  INFO(seen);
  CHECK(seen.find("only this machine can join for now (it has no network address but loopback), at http://127.0.0.1:" +
                  port + "/ (a browser) or nc 127.0.0.1 " + port) != std::string::npos);
  CHECK(seen.find("people on your network") == std::string::npos);
  CHECK(server.signal(SIGTERM));
  CHECK(server.wait_exit(patience) == 0);
}

TEST_CASE("chatserver on 127.0.0.1 prints no address banner", "[process][options][banner]") {
  ServerProcess server;  // --bind 127.0.0.1, and its first line was "listening on"
  std::string seen;
  // The next line of Server::start comes right after where the banner would be.
  REQUIRE(server.process().wait_for_line(Stream::err, "] info: max ", patience, &seen));
  INFO(seen);
  CHECK(seen.find("people on your network") == std::string::npos);
  CHECK(seen.find("only this machine can join") == std::string::npos);
  CHECK(seen.find("--bind 127.0.0.1") == std::string::npos);
}

TEST_CASE("chatserver: a bad --redis, --room or --instance-timeout is a usage error naming the option, exit 2",
          "[process][options][redis]") {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"--redis", "http://127.0.0.1:6379"}, "--redis"},
      {{"--redis", "rediss://127.0.0.1:6379"}, "TLS"},
      {{"--redis", "redis://127.0.0.1:99999"}, "--redis"},
      {{"--room", "a b"}, "--room: 'a b'"},
      {{"--room", "{x}"}, "--room"},
      {{"--instance-timeout", "100ms"}, "--instance-timeout"},
  };
  for (const auto& [args, expected] : cases) {
    auto all = args;
    all.insert(all.end(), {"--port", "0"});
    auto [code, out] = run_to_exit(all);
    INFO(args.front() << " " << args.back() << " -> " << out);
    CHECK(code == 2);
    CHECK(out.find(expected) != std::string::npos);
  }
  // Redis not there: one line naming it, exit 1 (a service manager tries again later).
  auto [code, out] = run_to_exit({"--port", "0", "--db", "none", "--redis", "unix:///nonexistent/redis.sock"});
  INFO(out);
  CHECK(code == 1);
  CHECK(out.find("unix:///nonexistent/redis.sock") != std::string::npos);
}
