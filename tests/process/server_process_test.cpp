// chatserver as a process: its first line, its command line, and SIGTERM / SIGINT with
// clients connected.
#include "tests/process/server_process.hpp"
#include "tests/support/line_client.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <regex>

using namespace chat::test;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<LineClient> join(std::uint16_t port, const std::string& nick) {
  auto c = std::make_unique<LineClient>(port);
  REQUIRE(c->send_line("HELLO " + nick));
  REQUIRE(c->expect_line("WELCOME " + nick, patience));
  return c;
}

}  // namespace

TEST_CASE("chatserver's first line names the address and port it bound", "[process]") {
  ServerProcess server;
  CHECK(server.port() != 0);
  LineClient c(server.port());
  auto greeting = c.read_line(patience);
  REQUIRE(greeting);
  CHECK(greeting->rfind("# chatserver", 0) == 0);
}

TEST_CASE("chatserver --help and --version exit 0", "[process]") {
  auto [code, out] = run_to_exit({"--help"});
  CHECK(code == 0);
  for (const char* option : {"--bind", "--port", "--max-clients", "--max-line", "--handshake-timeout", "--log-file",
                             "--log-level", "--version", "--keepalive", "--ping-interval", "--ping-timeout",
                             "--send-queue", "--send-timeout", "--poll-interval", "--max-rate", "--max-burst",
                             "--flood-grace", "--max-per-ip", "--trace"}) {
    INFO(option);
    CHECK(out.find(option) != std::string::npos);
  }
  auto [vcode, vout] = run_to_exit({"--version"});
  CHECK(vcode == 0);
  CHECK(vout.find("chatserver 0.") != std::string::npos);
}

TEST_CASE("chatserver rejects bad usage with a message and exit code 2", "[process]") {
  const std::vector<std::vector<std::string>> bad{
      {"--port", "abc"},          {"--port", "70000"},          {"--max-clients", "0"},
      {"--handshake-timeout", "5"}, {"--ping-interval", "soon"}, {"--keepalive", "10s,2s"},
      {"--keepalive", "1.5s,2s,3"}, {"--send-queue", "12XB"},   {"--log-level", "loud"},
      {"--no-such-option"},       {"--max-line", "10"},         {"--max-rate", "-1"},
      {"--max-burst", "0"},       {"--flood-grace", "1"},       {"--max-per-ip", "x"},
      {"--ping-interval", "5ms"}, {"--log-level", "TRACE"},     {"--trace", "yes"},
  };
  for (const auto& args : bad) {
    auto [code, out] = run_to_exit(args);
    INFO(args[0] << " " << (args.size() > 1 ? args[1] : "") << " -> " << out);
    CHECK(code == 2);
    CHECK(!out.empty());
  }
}

TEST_CASE("chatserver says so and exits 1 when the port is in use", "[process]") {
  ServerProcess first;
  auto [code, out] = run_to_exit({"--bind", "127.0.0.1", "--port", std::to_string(first.port())});
  CHECK(code == 1);
  CHECK(out.find("Address already in use") != std::string::npos);
  CHECK(out.find(std::to_string(first.port())) != std::string::npos);
}

TEST_CASE("chatserver says so and exits 1 when the log file cannot be opened", "[process]") {
  auto [code, out] = run_to_exit({"--bind", "127.0.0.1", "--port", "0", "--log-file", "/nonexistent-dir/x.log"});
  CHECK(code == 1);
  CHECK(out.find("/nonexistent-dir/x.log") != std::string::npos);
}

TEST_CASE("SIGTERM and SIGINT: every client gets BYE shutdown, exit 0", "[process][shutdown]") {
  raise_file_limit();
  const int signal = GENERATE(SIGTERM, SIGINT);
  // The issue's figure is 1000 clients within 2 s: chatbench measures that. Here the behaviour
  // is checked with fewer clients under the sanitizers, and the time bound is generous.
  const int count = sanitized ? 50 : (signal == SIGTERM ? 1000 : 100);
  // warn: nobody drains the server's stderr pipe here, and 2 info lines per client would fill it.
  // Every client comes from 127.0.0.1: the per-address limit is lifted.
  ServerProcess server({"--log-level", "warn", "--max-per-ip", "0"});
  std::vector<std::unique_ptr<LineClient>> clients;
  clients.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) clients.push_back(join(server.port(), "u" + std::to_string(i)));

  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(server.process().signal(signal));
  const auto code = server.process().wait_exit(patience);
  const auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE(code);
  CHECK(*code == 0);
  INFO("shutdown with " << count << " clients took "
                        << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  CHECK(took < patience);
  WARN("shutdown with " << count << " clients: exit after "
                        << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
  int byes = 0;
  for (auto& c : clients) {
    if (c->expect_line("BYE shutdown", patience)) ++byes;
    CHECK(c->wait_closed(patience));
  }
  CHECK(byes == count);
}

TEST_CASE("chatserver with stderr connected to the journal: syslog priority prefixes, no time stamps", "[process]") {
  // systemd sets JOURNAL_STREAM to stderr's "<device>:<inode>"; sh does the same here for the
  // pipe the test reads, and execs chatserver.
  Subprocess server({"/bin/sh", "-c",
                     "JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec \"$0\" --bind 127.0.0.1 --port 0 "
                     "--log-level debug",
                     CHATSERVER_PATH});
  std::string seen;
  REQUIRE(server.wait_for_line(Stream::err, "chatserver listening on 127.0.0.1:", patience, &seen));
  REQUIRE(server.wait_for_line(Stream::err, "<6>[main] info: max 1000 clients", patience, &seen));
  server.signal(SIGTERM);
  CHECK(server.wait_for_line(Stream::err, "<6>[main] info: received SIGTERM, shutting down", patience, &seen));
  CHECK(server.wait_exit(patience) == 0);
  while (auto rest = server.read_line(Stream::err, std::chrono::milliseconds(0))) seen += *rest + "\n";
  INFO(seen);
  // A debug line (the listener's "stopped") has priority 7; no line carries a time stamp of its own.
  CHECK(seen.find("<7>[") != std::string::npos);
  CHECK(seen.find(":00.") == std::string::npos);
  // Without a matching JOURNAL_STREAM (another stream's numbers), the usual stamped lines.
  Subprocess plain({"/bin/sh", "-c", "JOURNAL_STREAM=1:1 exec \"$0\" --bind 127.0.0.1 --port 0", CHATSERVER_PATH});
  REQUIRE(plain.wait_for_line(Stream::err, "chatserver listening on 127.0.0.1:", patience));
  const auto line = plain.read_line(Stream::err, patience);
  REQUIRE(line);
  CHECK(line->find(" [main] info: max 1000 clients") == 12);
}

TEST_CASE("SIGHUP during traffic reopens the log file: every transcript line lands whole in the old or the new file",
          "[process][transcript]") {
  // What logrotate does: rename the file, then SIGHUP. The server must go on writing to the
  // renamed file until it reopens, and lose nothing on either side of the switch.
  char dir_template[] = "/tmp/chat-sighup-XXXXXX";
  REQUIRE(mkdtemp(dir_template));
  const std::filesystem::path dir = dir_template;
  const auto log = dir / "chat.log";
  const auto rotated = dir / "chat.log.1";
  // Info level: the transcript thread says when it has reopened (a few lines in all).
  ServerProcess server({"--log-file", log.string(), "--max-rate", "0"});
  auto c = join(server.port(), "writer");

  const int racing = sanitized ? 600 : 3000;  // the second half of these races the reopen
  const int after = 100;                      // sent once the reopen is done: the new file's
  const int count = racing + after;
  const int rotate_at = racing / 2;
  const auto say = [&](int i) { REQUIRE(c->send_line("SAY line-" + std::to_string(i) + "-end")); };
  const auto echoed = [&](int i) { REQUIRE(c->expect_line("line-" + std::to_string(i) + "-end", patience)); };
  for (int i = 0; i < rotate_at; ++i) say(i);
  echoed(rotate_at - 1);  // the first half has reached the room
  std::filesystem::rename(log, rotated);
  REQUIRE(server.process().signal(SIGHUP));
  for (int i = rotate_at; i < racing; ++i) say(i);  // at once, while the main thread handles the signal
  echoed(racing - 1);
  REQUIRE(server.process().wait_for_line(Stream::err, "reopened the log file", patience));
  for (int i = racing; i < count; ++i) say(i);
  echoed(count - 1);
  REQUIRE(server.process().signal(SIGTERM));  // stop() writes what is queued, then exits
  REQUIRE(server.process().wait_exit(patience) == 0);

  const auto read = [](const std::filesystem::path& p) {
    std::ifstream in(p);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  };
  const auto old_lines = read(rotated);
  const auto new_lines = read(log);
  INFO(old_lines.size() << " lines in the rotated file, " << new_lines.size() << " in the new one");
  // Both files hold messages: the first half is in the old one, the last ones in the new.
  const auto holds_a_message = [](const std::vector<std::string>& lines) {
    return std::any_of(lines.begin(), lines.end(), [](const auto& l) { return l.find("line-") != std::string::npos; });
  };
  CHECK(holds_a_message(old_lines));
  CHECK(holds_a_message(new_lines));

  const std::regex whole(R"(^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d .*)");
  const std::regex message(R"(line-(\d+)-end$)");
  int expected = 0;
  for (const auto* lines : {&old_lines, &new_lines}) {
    for (const auto& l : *lines) {
      INFO(l);
      CHECK(std::regex_match(l, whole));  // never torn: each line starts with its date stamp
      std::smatch m;
      if (!std::regex_search(l, m, message)) continue;  // joins, leaves
      CHECK(std::stoi(m[1]) == expected);  // exactly once each, in order, across both files
      ++expected;
    }
  }
  CHECK(expected == count);
  std::filesystem::remove_all(dir);
}

TEST_CASE("SIGHUP when the log file cannot be reopened keeps writing to the old one", "[process][transcript]") {
  char dir_template[] = "/tmp/chat-sighup-XXXXXX";
  REQUIRE(mkdtemp(dir_template));
  const std::filesystem::path dir = dir_template;
  const auto log = dir / "chat.log";
  ServerProcess server({"--log-file", log.string()});
  // The path now names a directory: fopen("a") fails.
  std::filesystem::rename(log, dir / "moved.log");
  std::filesystem::create_directory(log);
  REQUIRE(server.process().signal(SIGHUP));
  CHECK(server.process().wait_for_line(Stream::err, "cannot reopen the log file", patience));
  auto c = join(server.port(), "still");
  REQUIRE(server.process().signal(SIGTERM));
  REQUIRE(server.process().wait_exit(patience) == 0);
  std::ifstream in(dir / "moved.log");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text.find("still joined") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("the info log names who joined and left, not each silent connection (a health check every 2 s)",
          "[process]") {
  ServerProcess server({"--log-level", "info"});
  // Three health checks: connect, read the greeting, close.
  for (int i = 0; i < 3; ++i) {
    LineClient probe(server.port());
    REQUIRE(probe.expect_line("# chatserver", patience));
    probe.close();
  }
  // Someone who tried a name that is not one and left; someone who joined and quit.
  {
    LineClient shy(server.port());
    REQUIRE(shy.send_line("HELLO no?such!name"));
    REQUIRE(shy.expect_line("ERROR bad-nick", patience));
  }
  {
    auto alice = join(server.port(), "alice");
    REQUIRE(alice->send_line("QUIT"));
    CHECK(alice->wait_closed(patience));
  }
  // Each connection has its own reader thread, so the shy one's line may come after alice's.
  std::string seen;
  bool quit_seen = false, shy_seen = false;
  REQUIRE(server.process().wait_for_line(
      Stream::err,
      [&](const std::string& line) {
        quit_seen = quit_seen || line.find("[reader alice] info: disconnected: quit") != std::string::npos;
        shy_seen = shy_seen || line.find("info: disconnected before joining, from 127.0.0.1:") != std::string::npos;
        return quit_seen && shy_seen;
      },
      patience, &seen));
  INFO(seen);
  CHECK(seen.find("info: joined from 127.0.0.1:") != std::string::npos);
  CHECK(seen.find("accepted") == std::string::npos);                  // (at debug)
  CHECK(seen.find("before saying anything") == std::string::npos);  // (at debug)
}
