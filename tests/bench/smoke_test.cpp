// The real chatbench executable, each side-by-side mode run small and fast against the chatserver
// chatbench starts itself (127.0.0.1, port 0): fanout --max (JSON), fanout --rate, join and scale
// exit 0 with a clean check; usage errors exit 2 (a port-less non-chat protocol among them, with
// a message naming --port); a fanout against a port where nothing listens fails fast, saying the
// clients were refused. Web clients: fanout with every client on a WebSocket (--protocol ws) and
// with a mixed room (--protocol mixed) check clean, with the web clients' deliveries counted
// apart; a scale run with a mixed room completes; a server that refuses the WebSocket handshake
// fails the run at once, naming its status line. Detect: --case with a text in no case's name is a
// usage error; --case "not reading" runs the issue's non-reader alone, which leaves too-slow.
// History (the archive, --db): `history --quick` runs its three parts small (the database on and
// off in one run, a resume's replay, a file of 5,000 events and the queries on it), checks them
// clean, and leaves no file in its $TMPDIR. TLS: fanout --tls checks clean with every client's
// handshake counted by the server (STATS tls_clients) and the certificate's folder removed;
// fanout --compare-tls and scale --compare-tls run clear text and TLS side by side, the clear
// clients in clear text on a server that has TLS on, and give the ratio; --tls and --compare-tls
// refuse what they do not go with.
//
// Threads: the test thread; chatbench (and the chatserver it starts) are processes, driven
// through tests/support/process.hpp's Subprocess with bounded waits. The handshake-refusal case
// runs a one-connection-at-a-time fake server on a thread of its own (no Catch2 assertion there).
#include "tests/support/deadline.hpp"
#include "tests/support/process.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <poll.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <chrono>
#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <thread>
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
// `prefix` runs it through another program (/usr/bin/env NAME=VALUE, say).
Outcome run_chatbench(std::vector<std::string> args, std::vector<std::string> prefix = {}) {
  args.insert(args.begin(), CHATBENCH_PATH);
  args.insert(args.begin(), prefix.begin(), prefix.end());
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

// The integer after `"key":` in the JSON object `"object":{...}` of `json` (spaces removed), or -1.
long long json_number_in(const std::string& json, const std::string& object, const std::string& key) {
  const auto at = json.find("\"" + object + "\":{");
  if (at == std::string::npos) return -1;
  const auto end = json.find('}', at);
  const auto field = json.find("\"" + key + "\":", at);
  if (field == std::string::npos || field > end) return -1;
  return std::stoll(json.substr(field + key.size() + 3));
}

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

TEST_CASE("chatbench --json --instances 3 fanout: one room on three chatservers through Redis, checked clean",
          "[bench][smoke][redis]") {
  std::string dir = (std::filesystem::temp_directory_path() / "chatbench-smoke-XXXXXX").string();
  REQUIRE(::mkdtemp(dir.data()) != nullptr);
  const auto o = run_chatbench(
      {"--json", "--instances", "3", "fanout", "--max", "--clients", "12", "--senders", "6", "--msgs", "30"},
      {"/usr/bin/env", "TMPDIR=" + dir});
  INFO(o.all());
  REQUIRE(o.code.has_value());
  CHECK(*o.code == 0);
  const auto json = without_spaces(o.out);
  CHECK(contains(json, "\"instances\":3,"));
  CHECK(contains(json, "\"sent\":180,"));
  CHECK(contains(json, "\"deliveries_to_others\":1980,"));  // 180 messages x 11 other clients
  CHECK(contains(json, "\"lost\":0,"));
  CHECK(contains(json, "\"p99_same_instance\":"));
  CHECK(contains(json, "\"p99_other_instance\":"));
  CHECK(json.ends_with(",\"ok\":true}"));
  CHECK(contains(o.err, "global order: the same at all 12 receivers"));
  std::error_code e;
  CHECK(std::filesystem::is_empty(dir, e));  // redis-server's folder is gone
  std::filesystem::remove_all(dir, e);
}

TEST_CASE("chatbench --instances needs chatbench to start the servers", "[bench][smoke][redis]") {
  const auto o = run_chatbench({"--instances", "2", "--port", "15600", "fanout", "--max", "--clients", "4", "--senders", "2"});
  REQUIRE(o.code.has_value());
  CHECK(*o.code != 0);
  CHECK(contains(o.all(), "--instances starts its chatservers itself"));
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
      {{"history", "--only", "nonsense"}, "--only"},                  // saturation, resume, million
      {{"history", "--events", "10"}, "--events"},                    // the deep query needs 1,002
      {{"--tls", "detect"}, "--tls"},                                 // side-by-side modes only
      {{"--tls", "--protocol", "irc", "--port", "6667", "fanout", "--max"}, "--tls"},  // chatserver's protocol
      {{"fanout", "--max", "--rounds", "2"}, "--compare-tls"},        // --rounds goes with it
      {{"--tls", "fanout", "--max", "--compare-tls"}, "--compare-tls"},  // it runs both itself
      {{"--port", "6667", "scale", "--compare-tls"}, "--compare-tls"},   // it starts the servers
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

TEST_CASE("chatbench detect --case: a text in no case's name is a usage error that lists the cases",
          "[bench][smoke][detect]") {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"detect", "--case", "no such case"},
           {"detect", "--case", "not reading", "--case", "no such case"},  // each --case must match
       }) {
    const auto o = run_chatbench(args);
    INFO(o.all());
    REQUIRE(o.code.has_value());
    CHECK(*o.code == 2);
    CHECK(contains(o.err, "--case"));
    CHECK(contains(o.err, "\"no such case\""));
    CHECK(contains(o.err, "\"not reading (900 B lines)\""));  // the names to choose from
    CHECK_FALSE(contains(o.err, "detect: "));                 // no run began
    CHECK(o.out.empty());
  }
}

TEST_CASE("chatbench detect --case \"not reading\": the issue's non-reader alone, too-slow within seconds",
          "[bench][smoke][detect]") {
  // A 4 KiB receive buffer that never reads, up to 1,000 lines of 900 B, --send-queue 256KiB
  // --send-timeout 2s. A few milliseconds on an idle machine; the bound is for a loaded one, and
  // still far below the 25 s after which the default heartbeat would remove the client (no-pong).
  const auto o = run_chatbench({"--json", "detect", "--case", "not reading", "--runs", "1"});
  INFO(o.all());
  REQUIRE(o.code.has_value());
  CHECK(*o.code == 0);
  const auto json = without_spaces(o.out);  // spaces inside strings go too
  CHECK(std::count(o.out.begin(), o.out.end(), '\n') == 1);
  CHECK(contains(json, "\"detect\":[{\"case\":\"notreading(900Blines)\","));
  CHECK(contains(json, "\"settings\":\"--send-queue256KiB--send-timeout2s\","));
  CHECK(contains(json, "\"expected\":\"too-slow\",\"clock_starts_at\":"));
  CHECK(contains(json, "\"ok\":true,"));
  CHECK(contains(json, "\"causes\":[\"too-slow\"],\"details\":[\""));
  CHECK(contains(json, "\"errors\":[],\"line_bytes\":900,\"max_lines\":1000,"));
  CHECK(json.ends_with(",\"ok\":true}"));
  // Only the case asked for ran: one row, one run.
  std::size_t rows = 0;
  for (auto at = json.find("\"case\":"); at != std::string::npos; at = json.find("\"case\":", at + 1)) ++rows;
  CHECK(rows == 1);
  CHECK_FALSE(contains(o.err, "closed (SIGKILL)"));
  CHECK(contains(o.err, "not reading (900 B lines)"));

  // The first number in the JSON array `"name":[...]`, or -1 (no such array, or an empty one).
  const auto first = [&](const std::string& name) -> double {
    const auto at = json.find("\"" + name + "\":[");
    if (at == std::string::npos || json.compare(at + name.size() + 4, 1, "]") == 0) return -1;
    return std::stod(json.substr(at + name.size() + 4));
  };
  const double ms = first("ms");
  CHECK(ms > 0);
  CHECK(ms < 10'000);
  // It left before the observer had sent all it would (1,000 lines of 900 B and their LFs).
  const double sent_mib = first("sent_mib");
  CHECK(sent_mib > 0);
  CHECK(sent_mib < 1000.0 * 901 / (1 << 20));
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

TEST_CASE("chatbench fanout --protocol ws: every client on a WebSocket, checked clean", "[bench][smoke][web]") {
  const auto o = run_chatbench(
      {"--json", "--protocol", "ws", "fanout", "--max", "--clients", "5", "--senders", "2", "--msgs", "50"});
  INFO(o.all());
  REQUIRE(o.code.has_value());
  CHECK(*o.code == 0);
  const auto json = without_spaces(o.out);
  CHECK(contains(json, "\"protocol\":\"ws\","));
  CHECK(contains(json, "\"web_share\":1,"));
  CHECK(contains(json, "\"sent\":100,"));
  CHECK(contains(json, "\"deliveries_to_others\":400,"));  // 100 messages x 4 other clients
  CHECK(contains(json, "\"lost\":0,\"lost_to_gone\":0,\"duplicates\":0,\"reordered\":0,\"corrupt\":0,"));
  CHECK(contains(json, "\"order_violations\":0,"));
  CHECK(json_number_in(json, "web", "clients") == 5);
  CHECK(json_number_in(json, "web", "deliveries_to_others") == 400);
  CHECK(json.ends_with(",\"ok\":true}"));
  CHECK(contains(o.err, "(ws protocol,"));
  // The server saw WebSocket sessions: its STATS (fetched through a WebSocket) came back.
  CHECK(contains(json, "\"stats\":\"STATSclients=5"));
}

TEST_CASE("chatbench fanout --protocol mixed: web and TCP clients in one room, counted apart", "[bench][smoke][web]") {
  // 6 clients, half of them web: clients 1, 3 and 5. Senders are clients 0 (TCP) and 1 (web),
  // 50 messages each: each kind of receiver gets 3 x 100 deliveries, less its own sender's 50.
  const auto o = run_chatbench(
      {"--json", "--protocol", "mixed", "fanout", "--max", "--clients", "6", "--senders", "2", "--msgs", "50"});
  INFO(o.all());
  REQUIRE(o.code.has_value());
  CHECK(*o.code == 0);
  const auto json = without_spaces(o.out);
  CHECK(contains(json, "\"protocol\":\"mixed\",\"web_share\":0.5,"));
  CHECK(contains(json, "\"deliveries_to_others\":500,"));
  CHECK(contains(json, "\"lost\":0,\"lost_to_gone\":0,\"duplicates\":0,\"reordered\":0,\"corrupt\":0,"));
  CHECK(contains(json, "\"order_violations\":0,"));  // one global order for both kinds
  CHECK(json_number_in(json, "web", "clients") == 3);
  CHECK(json_number_in(json, "tcp", "clients") == 3);
  CHECK(json_number_in(json, "web", "deliveries_to_others") == 250);
  CHECK(json_number_in(json, "tcp", "deliveries_to_others") == 250);
  CHECK(contains(json, "\"web_over_tcp\":{"));
  CHECK(json.ends_with(",\"ok\":true}"));
  // The table has a line per kind.
  CHECK(contains(o.err, "mixed (50% ws, 50% chat) protocol"));
  CHECK(std::regex_search(o.err, std::regex(R"(\n +web: 3 clients, 250 deliveries to others in [0-9.]+ ms: [0-9,]+ deliveries/s)")));
  CHECK(std::regex_search(o.err, std::regex(R"(\n +tcp: 3 clients, 250 deliveries to others)")));
}

TEST_CASE("chatbench fanout --protocol mixed --web-share: another share, a table per kind", "[bench][smoke][web]") {
  // A quarter of 8: clients 3 and 7.
  const auto o = run_chatbench({"--protocol", "mixed", "--web-share", "0.25", "fanout", "--rate", "200", "--clients",
                                "8", "--senders", "4", "--msgs", "10"});
  INFO(o.all());
  REQUIRE(o.code.has_value());
  CHECK(*o.code == 0);
  CHECK(contains(o.out, "mixed (25% ws, 75% chat) protocol"));
  CHECK(contains(o.out, "checked: 0 lost, 0 duplicated, 0 reordered, 0 corrupted"));
  // Senders are clients 0-3, 10 messages each; client 3 is web. Each receiver gets the 40
  // messages less its own 10 if it sends.
  CHECK(contains(o.out, "web: 2 clients, 70 deliveries to others"));   // 30 + 40
  CHECK(contains(o.out, "tcp: 6 clients, 210 deliveries to others"));  // 3 x 30 + 3 x 40
  CHECK(contains(o.out, "web / tcp: deliveries/s per client"));
  CHECK_FALSE(contains(o.out, "FAILED"));
}

TEST_CASE("chatbench scale --protocol mixed: a small mixed room completes", "[bench][smoke][web]") {
  const auto o = run_chatbench(
      {"--protocol", "mixed", "scale", "--clients", "40", "--duration", "1", "--idle", "1", "--rate", "20"});
  INFO(o.all());
  REQUIRE(o.code.has_value());
  CHECK(*o.code == 0);
  CHECK(contains(o.out, "40 of 40"));
  CHECK(contains(o.out, "web: 20 clients"));
  CHECK_FALSE(contains(o.out, "FAILED"));
}

TEST_CASE("chatbench join --protocol ws: a storm of WebSockets, then a clean round", "[bench][smoke][web]") {
  const auto o = run_chatbench({"--protocol", "ws", "join", "--clients", "30", "--round-senders", "3"});
  INFO(o.all());
  REQUIRE(o.code.has_value());
  CHECK(*o.code == 0);
  CHECK(contains(o.out, "30 of 30"));
  CHECK(contains(o.out, "0 lost"));
  CHECK_FALSE(contains(o.out, "FAILED"));
}

TEST_CASE("chatbench --web-share: only with --protocol mixed, within 0..1", "[bench][smoke][web]") {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--web-share", "0.5", "fanout", "--max"},
           {"--protocol", "ws", "--web-share", "0.5", "fanout", "--max"},
           {"--protocol", "mixed", "--web-share", "1.5", "fanout", "--max"},
           {"--protocol", "mixed", "--web-share", "-0.1", "fanout", "--max"},
       }) {
    const auto o = run_chatbench(args);
    INFO(o.all());
    REQUIRE(o.code.has_value());
    CHECK(*o.code == 2);
    CHECK(contains(o.err, "--web-share"));
  }
}

namespace {

// A fake server on 127.0.0.1 (a port of its own): every connection gets `answer`, after the
// request head when `after_head`, else at once; then a FIN. One connection at a time, on a
// thread of its own, until destroyed.
class FakeServer {
 public:
  FakeServer(std::string answer, bool after_head) : answer_(std::move(answer)), after_head_(after_head) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof a;
    ok_ = listener_ >= 0 && ::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
          ::listen(listener_, 16) == 0 && ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &size) == 0;
    port_ = ntohs(a.sin_port);
    if (ok_) thread_ = std::thread([this] { serve(); });
  }
  ~FakeServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (listener_ >= 0) ::close(listener_);
  }
  bool ok() const { return ok_; }
  std::uint16_t port() const { return port_; }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      std::string head;
      char buffer[4096];
      const auto until = std::chrono::steady_clock::now() + 5s;
      while (after_head_ && head.find("\r\n\r\n") == std::string::npos && std::chrono::steady_clock::now() < until &&
             !stop_) {
        pollfd r{fd, POLLIN, 0};
        if (::poll(&r, 1, 50) <= 0) continue;
        const auto n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        head.append(buffer, static_cast<std::size_t>(n));
      }
      ::send(fd, answer_.data(), answer_.size(), MSG_NOSIGNAL);
      ::close(fd);
    }
  }

  std::string answer_;
  bool after_head_;
  int listener_ = -1;
  bool ok_ = false;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

TEST_CASE("chatbench --protocol ws against a server that refuses the handshake fails at once", "[bench][smoke][web]") {
  FakeServer fake("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", true);
  REQUIRE(fake.ok());
  const auto started = std::chrono::steady_clock::now();
  const auto o = run_chatbench({"--protocol", "ws", "--port", std::to_string(fake.port()), "fanout", "--max",
                                "--clients", "2", "--senders", "1", "--msgs", "5"});
  const auto took = std::chrono::steady_clock::now() - started;
  INFO(o.all());
  REQUIRE(o.code.has_value());
  CHECK(*o.code == 1);
  CHECK(took < 60s);
  CHECK(contains(o.out, "not every client joined: 0 of 2"));
  CHECK(contains(o.out, "WebSocket handshake refused: HTTP/1.1 403 Forbidden"));
}

TEST_CASE("chatbench --protocol ws: a web client greeted as a line client says so", "[bench][smoke][web]") {
  // What chatserver does when the GET comes after its 100 ms wait: the line greeting, not a 101.
  FakeServer fake("# chatserver 0.1.0: type a nickname to join, or HELLO <nick>\n", false);
  REQUIRE(fake.ok());
  const auto o = run_chatbench({"--protocol", "ws", "--port", std::to_string(fake.port()), "fanout", "--max",
                                "--clients", "2", "--senders", "1", "--msgs", "5"});
  INFO(o.all());
  REQUIRE(o.code.has_value());
  CHECK(*o.code == 1);
  CHECK(contains(o.out, "not every client joined: 0 of 2"));
  CHECK(contains(o.out, "greeted as a line client, not upgraded"));
}

TEST_CASE("chatbench --protocol ws: the server's PINGs, inside frames, get their PONGs", "[bench][smoke][web]") {
  // Receivers never send: with a 1 s heartbeat each gets a PING a second and, unanswered, would
  // leave with no-pong after two. Every client must still be there at the end.
  const auto o = run_chatbench({"--json", "--protocol", "ws", "--server-arg=--ping-interval", "--server-arg=1s",
                                "--server-arg=--ping-timeout", "--server-arg=1s", "fanout", "--rate", "5",
                                "--clients", "4", "--senders", "1", "--duration", "3.5"});
  INFO(o.all());
  REQUIRE(o.code.has_value());
  CHECK(*o.code == 0);
  const auto json = without_spaces(o.out);
  CHECK(contains(json, "\"ended_during_run\":0,"));
  CHECK(contains(json, "leave_no_pong=0"));
  CHECK(json.ends_with(",\"ok\":true}"));
}

TEST_CASE("chatbench --json history --quick: the three parts checked clean, no file left behind", "[bench][smoke][history]") {
  std::string dir = (std::filesystem::temp_directory_path() / "chatbench-smoke-XXXXXX").string();
  REQUIRE(::mkdtemp(dir.data()) != nullptr);
  const auto o = run_chatbench({"--json", "history", "--quick"}, {"/usr/bin/env", "TMPDIR=" + dir});
  INFO(o.all());
  REQUIRE(o.code.has_value());
  CHECK(*o.code == 0);
  const auto json = without_spaces(o.out);
  CHECK(std::count(o.out.begin(), o.out.end(), '\n') == 1);
  CHECK(contains(json, "\"history\":{\"quick\":true,"));
  // Saturation: a round with the database and one without, the file kept up, a ratio.
  CHECK(contains(json, "\"saturation\":{"));
  CHECK(contains(json, "\"db\":true,"));
  CHECK(contains(json, "\"db\":false,"));
  CHECK(contains(json, "\"kept_up\":true,\"stats_has_archive_counters\":"));
  CHECK(contains(json, "\"ratio_deliveries_per_second\":"));
  // Resume: 100 missed lines, found in order in the replay, RST seen as reset.
  CHECK(contains(json, "\"resume\":{\"missed\":100,"));
  CHECK(contains(json, "\"leave_cause\":\"reset\""));
  CHECK(contains(json, "\"missed_found\":100,"));
  // The file of 5,000 messages, written through the server, every query answered.
  CHECK(contains(json, "\"million\":{\"built\":true,\"events_asked\":5000,"));
  CHECK(contains(json, "\"msg_rows\":5000,"));
  CHECK(contains(json, "\"line\":\"SEARCHzanzibar\",\"answer_lines\":4,"));
  CHECK(contains(json, "\"line\":\"SEARCHhello\",\"answer_lines\":50,"));
  CHECK_FALSE(contains(json, "\"ok\":false"));
  CHECK(json.ends_with(",\"ok\":true}"));
  CHECK(contains(o.err, "History: resume after 100 missed lines"));
  std::error_code e;
  CHECK(std::filesystem::is_empty(dir, e));  // the run's directory and its files are gone
  std::filesystem::remove_all(dir, e);
}

TEST_CASE("chatbench --json --tls fanout --max: every client over TLS, checked clean, no certificate left behind",
          "[bench][smoke][tls]") {
  std::string dir = (std::filesystem::temp_directory_path() / "chatbench-smoke-XXXXXX").string();
  REQUIRE(::mkdtemp(dir.data()) != nullptr);
  const auto o = run_chatbench({"--json", "--tls", "fanout", "--max", "--clients", "5", "--senders", "2", "--msgs", "50"},
                               {"/usr/bin/env", "TMPDIR=" + dir});
  INFO(o.all());
  REQUIRE(o.code.has_value());
  CHECK(*o.code == 0);
  const auto json = without_spaces(o.out);
  CHECK(contains(json, "\"tls\":true,"));
  CHECK(contains(json, "\"sent\":100,"));
  CHECK(contains(json, "\"deliveries_to_others\":400,"));  // 100 messages x 4 other clients
  CHECK(contains(json, "\"lost\":0,"));
  // The server saw five TLS handshakes through: the clients did speak TLS.
  CHECK(contains(o.out, "tls_clients=5 tls_failed=0"));
  CHECK(json.ends_with(",\"ok\":true}"));
  CHECK(contains(o.err, "chat protocol over TLS"));
  std::error_code e;
  CHECK(std::filesystem::is_empty(dir, e));  // the --self-signed folder went with the server
  std::filesystem::remove_all(dir, e);
}

TEST_CASE("chatbench fanout --compare-tls: clear text and TLS side by side, both checked, and their ratio",
          "[bench][smoke][tls]") {
  const auto o = run_chatbench(
      {"--json", "fanout", "--max", "--clients", "4", "--senders", "2", "--msgs", "30", "--compare-tls"});
  INFO(o.all());
  REQUIRE(o.code.has_value());
  CHECK(*o.code == 0);
  const auto json = without_spaces(o.out);
  CHECK(contains(json, "\"compare_tls\":{\"mode\":\"fanout\",\"rounds\":1,"));
  CHECK(contains(json, "\"clear\":[{\"fanout\":{"));
  CHECK(contains(json, "\"tls\":[{\"fanout\":{"));
  CHECK(contains(json, "\"tls_over_clear\":{\"deliveries_per_second\":"));
  CHECK(std::count(o.out.begin(), o.out.end(), '\n') == 1);
  // 60 messages x 3 other clients, on each side; the same server configuration (TLS on) both
  // times, the clear clients in clear text.
  const std::regex deliveries("\"deliveries_to_others\":180,");
  CHECK(std::distance(std::sregex_iterator(json.begin(), json.end(), deliveries), std::sregex_iterator()) == 2);
  CHECK(contains(o.out, "tls_clients=0 tls_failed=0"));
  CHECK(contains(o.out, "tls_clients=4 tls_failed=0"));
  CHECK_FALSE(contains(json, "\"ok\":false"));
  CHECK(json.ends_with(",\"ok\":true}"));
  // The table for people, on stderr with --json: a row each, and the ratio.
  CHECK(contains(o.err, "TLS against clear text: fanout --max --clients 4 --senders 2 --msgs 30"));
  CHECK(contains(o.err, "clear text"));
  CHECK(contains(o.err, "TLS / clear text (medians): deliveries/s "));
}

TEST_CASE("chatbench scale --compare-tls: memory per client, clear text and TLS, side by side", "[bench][smoke][tls]") {
  const auto o = run_chatbench({"scale", "--compare-tls", "--clients", "20", "--duration", "0.5", "--idle", "0.5",
                                "--rate", "10"});
  INFO(o.all());
  REQUIRE(o.code.has_value());
  CHECK(*o.code == 0);
  CHECK(contains(o.out, "TLS against clear text: scale --clients 20"));
  CHECK(std::regex_search(o.out, std::regex("\\n +1 +clear text +20 ")));
  CHECK(std::regex_search(o.out, std::regex("\\n +1 +TLS +20 ")));
  CHECK(contains(o.out, "server memory per client after the join, KiB: clear text "));
  CHECK_FALSE(contains(o.out, "FAILED"));
}
