// Process tests of the real chatclient binary (CHATCLIENT_PATH), driven through its stdin and
// stdout with Subprocess, against a FakeServer scripted by the test itself.
//
// Everything runs on 127.0.0.1 with kernel-chosen ports. No test sleeps to wait for a state: it
// waits for a line, a connection, a close or the process exit, each with a deadline of kWait
// (generous: CI has two busy cores). The few checks that something does NOT happen use a short
// quiet period (kQuiet) and say so; they can only pass wrongly, never fail wrongly.
#include "tests/client/fake_server.hpp"
#include "tests/support/chatclient_args.hpp"
#include "tests/support/line_client.hpp"
#include "tests/support/process.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using chat::test::chatclient_args;
using chat::test::FakeServer;
using chat::test::LineClient;
using chat::test::Stream;
using chat::test::Subprocess;

namespace {

constexpr auto kWait = 5000ms;
constexpr auto kQuiet = 300ms;

// True if `line` starts with a "[HH:MM:SS] " stamp. (No std::regex: GCC 12 warns inside it
// under -fsanitize=address, and the warnings are errors.)
bool stamped(std::string_view line) {
  static constexpr std::string_view shape = "[00:00:00] ";
  if (line.size() < shape.size()) return false;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const bool ok = shape[i] == '0' ? (line[i] >= '0' && line[i] <= '9') : line[i] == shape[i];
    if (!ok) return false;
  }
  return true;
}

// The next stdout line, which must carry a "[HH:MM:SS] " stamp; returns the text after it.
std::string next_event(Subprocess& client) {
  auto line = client.read_line(Stream::out, kWait);
  REQUIRE(line);
  INFO("stdout line: " << *line);
  REQUIRE(stamped(*line));
  return line->substr(11);
}

// Everything left on a stream until the process closed it (after it exited).
std::string rest_of(Subprocess& client, Stream which) {
  std::string all;
  while (auto line = client.read_line(which, kWait)) all += *line + "\n";
  return all;
}

// VmHWM (peak resident memory) of `pid` in KiB, from /proc.
long peak_rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (status >> key) {
    if (key == "VmHWM:") {
      long kib = 0;
      status >> kib;
      return kib;
    }
    std::getline(status, key);
  }
  return -1;
}

// A started chatclient that has joined the fake server as alice, with bob already there.
struct Joined {
  FakeServer server;
  Subprocess client;
  std::unique_ptr<LineClient> conn;

  explicit Joined(std::vector<std::string> extra = {})
      : client(chatclient_args(server.port(), "alice", std::move(extra))) {
    conn = server.accept_and_join("alice", {"bob"}, kWait);
    REQUIRE(conn);
    REQUIRE(next_event(client) == "*** welcome, alice (type /help for commands)");
    REQUIRE(next_event(client) == "*** online (2): alice bob");
  }
};

}  // namespace

TEST_CASE("chatclient prints the server's events in readable form", "[chatclient]") {
  Joined j;
  j.conn->send_line("JOIN carol");
  CHECK(next_event(j.client) == "*** carol joined (3 online)");
  j.conn->send_line("MSG bob hello there");
  CHECK(next_event(j.client) == "<bob> hello there");
  j.conn->send_line("ME bob waves");
  CHECK(next_event(j.client) == "* bob waves");
  j.conn->send_line("PRIV bob alice psst");
  CHECK(next_event(j.client) == "[private] bob -> alice: psst");
  j.conn->send_line("NICK bob robert");
  CHECK(next_event(j.client) == "*** bob is now known as robert");
  j.conn->send_line("LEAVE carol closed connection closed by peer");
  CHECK(next_event(j.client) == "*** carol's connection closed (2 online)");
  // The renamed member is counted under the new name.
  j.conn->send_line("LEAVE robert quit bye all");
  CHECK(next_event(j.client) == "*** robert left (bye all) (1 online)");
  j.conn->send_line("ERROR no-such-nick zed");
  CHECK(next_event(j.client) == "*** nobody called zed is online");
  // '#' lines and CR LF endings: a remark once joined is for us (the room is split, a line
  // not sent): shown; the CR is not part of the text.
  j.conn->send_raw("# just a remark\r\nMSG bob crlf\r\n");
  CHECK(next_event(j.client) == "*** just a remark");
  CHECK(next_event(j.client) == "<bob> crlf");
}

TEST_CASE("chatclient turns typed lines into protocol lines", "[chatclient]") {
  Joined j;
  j.client.write(
      "hello world\n"
      "/me waves\n"
      "/msg bob psst\n"
      "@bob hi there\n"
      "/nick alicia\n"
      "/who\n"
      "//etc/motd is a path\n");
  for (const char* expected : {"SAY hello world", "ME waves", "PRIV bob psst", "PRIV bob hi there", "NICK alicia",
                               "WHO", "SAY /etc/motd is a path"}) {
    auto line = j.conn->read_line(kWait);
    REQUIRE(line);
    CHECK(*line == expected);
  }
}

TEST_CASE("chatclient refuses bad input locally and sends nothing for it", "[chatclient]") {
  Joined j;
  j.client.write("/foo bar\n/msg bob\n\n/help\nafter\n");
  CHECK(next_event(j.client) == "*** unknown command: /foo (type /help for the commands)");
  CHECK(next_event(j.client) == "*** usage: /msg <nick> <text>");
  auto help = j.client.read_line(Stream::out, kWait);
  REQUIRE(help);
  CHECK(*help == "*** commands:");
  REQUIRE(j.client.wait_for_line(Stream::out, "//text", kWait));
  // The first line on the wire is the one after the refused ones: nothing else was sent.
  auto line = j.conn->read_line(kWait);
  REQUIRE(line);
  CHECK(*line == "SAY after");
}

TEST_CASE("chatclient refuses an input line longer than --max-line", "[chatclient]") {
  Joined j({"--max-line", "64"});
  j.client.write(std::string(100, 'x') + "\n" + std::string(62, 'y') + "\nok\n");
  CHECK(next_event(j.client) == "*** not sent: too long (the input line is longer than 64 bytes)");
  // 62 bytes fit the input limit, but with "SAY " the wire line would not.
  CHECK(next_event(j.client) == "*** not sent: too long (with its command the line is longer than 64 bytes)");
  auto line = j.conn->read_line(kWait);
  REQUIRE(line);
  CHECK(*line == "SAY ok");
}

TEST_CASE("chatclient holds typed lines until the server welcomed it", "[chatclient]") {
  FakeServer server;
  Subprocess client(chatclient_args(server.port(), "alice"));
  auto conn = server.accept(kWait);
  REQUIRE(conn);
  auto hello = conn->read_line(kWait);
  REQUIRE(hello);
  CHECK(*hello == "HELLO alice ids");
  REQUIRE(client.write("early\n"));
  // Quiet period: a SAY before WELCOME would arrive within it.
  CHECK_FALSE(conn->read_line(kQuiet));
  conn->send_line("WELCOME alice");
  conn->send_line("USERS alice");
  auto line = conn->read_line(kWait);
  REQUIRE(line);
  CHECK(*line == "SAY early");
}

TEST_CASE("chatclient answers the server's PING with PONG", "[chatclient]") {
  Joined j;
  j.conn->send_line("PING 12345");
  auto line = j.conn->read_line(kWait);
  REQUIRE(line);
  CHECK(*line == "PONG 12345");
}

TEST_CASE("chatclient quits on stdin EOF and exits 0", "[chatclient]") {
  Joined j;
  j.client.write("last words");  // no LF: still sent at EOF
  j.client.close_stdin();
  auto say = j.conn->read_line(kWait);
  REQUIRE(say);
  CHECK(*say == "SAY last words");
  auto quit = j.conn->read_line(kWait);
  REQUIRE(quit);
  CHECK(*quit == "QUIT");
  j.conn->send_line("BYE quit");
  j.conn->close();
  CHECK(j.client.wait_exit(kWait) == 0);
  const auto rest = rest_of(j.client, Stream::out);
  CHECK(rest.find("disconnected") == std::string::npos);
  CHECK(rest.find("*** you left") != std::string::npos);
}

TEST_CASE("chatclient /quit sends the reason and exits 0", "[chatclient]") {
  Joined j;
  j.client.write("/quit gotta go\nnot sent\n");
  auto quit = j.conn->read_line(kWait);
  REQUIRE(quit);
  CHECK(*quit == "QUIT gotta go");
  j.conn->send_line("BYE quit");
  CHECK(j.client.wait_exit(kWait) == 0);
  // Lines after /quit are not sent; the client closes the connection.
  CHECK(j.conn->wait_closed(kWait));
}

TEST_CASE("chatclient gives up waiting for BYE after a bounded time", "[chatclient]") {
  Joined j;
  j.client.close_stdin();
  REQUIRE(j.conn->expect_line("QUIT", kWait));
  // The server never answers; the client waits about 2 s, then leaves anyway.
  CHECK(j.client.wait_exit(kWait) == 0);
}

TEST_CASE("chatclient reports a server that closes the connection", "[chatclient]") {
  Joined j;
  j.conn->close();
  CHECK(next_event(j.client) == "*** disconnected: the server closed the connection");
  CHECK(j.client.wait_exit(kWait) == 1);
}

TEST_CASE("chatclient reports a server that resets the connection", "[chatclient]") {
  Joined j;
  j.conn->close_with_reset();
  CHECK(next_event(j.client) == "*** disconnected: the connection to the server was reset");
  CHECK(j.client.wait_exit(kWait) == 1);
}

TEST_CASE("chatclient reports BYE from the server once and exits 1", "[chatclient]") {
  Joined j;
  // The connection stays open: BYE alone ends the session.
  j.conn->send_line("BYE shutdown server shutting down");
  CHECK(next_event(j.client) == "*** disconnected: the server has stopped");
  CHECK(j.client.wait_exit(kWait) == 1);
  CHECK(j.conn->wait_closed(kWait));
  CHECK(rest_of(j.client, Stream::out).empty());  // said once
}

TEST_CASE("chatclient --verbose adds the server's detail to the words", "[chatclient]") {
  Joined j({"--verbose"});
  j.conn->send_line("LEAVE bob no-pong no reply to PING within 10.0 s (poller, 16.2 s after last traffic)");
  CHECK(next_event(j.client) ==
        "*** bob stopped answering (no reply for 16 s) (1 online) [no-pong: no reply to PING within 10.0 s (poller, 16.2 s "
        "after last traffic)]");
  j.conn->send_line("BYE shutdown server shutting down");
  CHECK(next_event(j.client) == "*** disconnected: the server has stopped [shutdown: server shutting down]");
  CHECK(j.client.wait_exit(kWait) == 1);
}

TEST_CASE("chatclient pings a silent server and gives up with no-pong", "[chatclient]") {
  const auto start = std::chrono::steady_clock::now();
  Joined j({"--ping-interval", "200ms", "--ping-timeout", "300ms"});
  auto ping = j.conn->expect_line([](const std::string& l) { return l.starts_with("PING "); }, kWait);
  REQUIRE(ping);
  const auto lost = next_event(j.client);
  INFO(lost);
  // The time of silence, from the client's own detail ("(client, 5xx ms after last traffic)").
  CHECK(lost.starts_with("*** disconnected: the server stopped answering (no reply for "));
  CHECK((lost.ends_with(" ms)") || lost.ends_with(" s)")));
  CHECK(j.client.wait_exit(kWait) == 1);
  // Lower bound only (interval + timeout); an upper bound would be flaky on a busy machine.
  CHECK(std::chrono::steady_clock::now() - start >= 500ms);
}

TEST_CASE("chatclient keeps a server that answers its PINGs", "[chatclient]") {
  Joined j({"--ping-interval", "200ms", "--ping-timeout", "300ms"});
  for (int i = 0; i < 3; ++i) {
    auto ping = j.conn->expect_line([](const std::string& l) { return l.starts_with("PING "); }, kWait);
    REQUIRE(ping);
    j.conn->send_line("PONG " + ping->substr(5));
  }
  CHECK_FALSE(j.client.wait_exit(0ms));  // still running after three rounds
  j.client.close_stdin();
  REQUIRE(j.conn->expect_line("QUIT", kWait));
  j.conn->send_line("BYE quit");
  CHECK(j.client.wait_exit(kWait) == 0);
}

TEST_CASE("chatclient cannot connect: message on stderr, exit 1", "[chatclient]") {
  std::uint16_t port;
  {
    // A port that was just free and has no listener now.
    asio::io_context io;
    asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address_v4("127.0.0.1"), 0});
    port = acceptor.local_endpoint().port();
  }
  Subprocess client(chatclient_args(port, "alice"));
  CHECK(client.wait_exit(kWait) == 1);
  std::string seen;
  CHECK(client.wait_for_line(
      Stream::err, "chatclient: cannot connect to 127.0.0.1:" + std::to_string(port) + ": Connection refused",
      kWait, &seen));
  INFO(seen);
}

TEST_CASE("chatclient exits 1 when the server refuses the nickname", "[chatclient]") {
  const auto [code, detail] = GENERATE(std::pair<std::string, std::string>{"nick-in-use", "alice"},
                                       std::pair<std::string, std::string>{"bad-nick", "alice: reserved"});
  FakeServer server;
  Subprocess client(chatclient_args(server.port(), "alice"));
  auto conn = server.accept(kWait);
  REQUIRE(conn);
  REQUIRE(conn->expect_line("HELLO alice", kWait));
  conn->send_line("ERROR " + code + " " + detail);
  const std::string words = code == "nick-in-use" ? "the nickname alice is taken" : "that nickname is not allowed: " + detail;
  CHECK(next_event(client) == "*** " + words);
  CHECK(client.wait_exit(kWait) == 1);
  CHECK(client.wait_for_line(Stream::err, "chatclient: cannot join as alice: " + words, kWait));
  CHECK(conn->wait_closed(kWait));
}

TEST_CASE("chatclient: bad usage exits 2 with a message", "[chatclient]") {
  const auto extra = GENERATE(std::vector<std::string>{"--port", "1"},  // no --nick
                              std::vector<std::string>{"--nick", "alice", "--port", "http"},
                              std::vector<std::string>{"--nick", "alice", "--port", "70000"},
                              std::vector<std::string>{"--nick", "alice", "--ping-interval", "5"},
                              std::vector<std::string>{"--nick", "alice", "--ping-timeout", "0"},
                              std::vector<std::string>{"--nick", "alice", "--keepalive", "1s,2s"},
                              std::vector<std::string>{"--nick", "alice", "--max-line", "10"},
                              std::vector<std::string>{"--nick", "has space"},
                              std::vector<std::string>{"--nick", "alice", "--frobnicate"});
  std::vector<std::string> args{CHATCLIENT_PATH};
  args.insert(args.end(), extra.begin(), extra.end());
  Subprocess client(args);
  CHECK(client.wait_exit(kWait) == 2);
  auto message = client.read_line(Stream::err, kWait);
  REQUIRE(message);
  CHECK_FALSE(message->empty());
}

TEST_CASE("chatclient --help and --version exit 0", "[chatclient]") {
  Subprocess help({CHATCLIENT_PATH, "--help"});
  CHECK(help.wait_exit(kWait) == 0);
  CHECK(help.wait_for_line(Stream::out, "--ping-interval", kWait));

  Subprocess version({CHATCLIENT_PATH, "--version"});
  CHECK(version.wait_exit(kWait) == 0);
  auto line = version.read_line(Stream::out, kWait);
  REQUIRE(line);
  CHECK(line->starts_with("chatclient "));
}

TEST_CASE("chatclient discards an over-long server line without growing", "[chatclient]") {
  Joined j({"--max-line", "1KiB"});
  const long before = peak_rss_kib(j.client.pid());
  REQUIRE(before > 0);
  // 16 MiB without a newline: a client that buffered it would grow by at least that much.
  REQUIRE(j.conn->send_raw("MSG bob "));
  const std::string chunk(64 * 1024, 'x');
  for (int i = 0; i < 256; ++i) REQUIRE(j.conn->send_raw(chunk));
  REQUIRE(j.conn->send_raw("\nMSG bob still here\n"));
  CHECK(next_event(j.client) == "*** a line from the server was longer than 1024 bytes and was discarded");
  CHECK(next_event(j.client) == "<bob> still here");
  const long after = peak_rss_kib(j.client.pid());
  INFO("peak RSS before " << before << " KiB, after " << after << " KiB");
  CHECK(after - before < 4 * 1024);
}
