// Network failures between real chatserver and chatclient processes in network namespaces
// (LabNetwork): a link that goes down, and a host that crashes and reboots. Each side must
// notice the other is gone with the right cause: `timeout` when packets just vanish (within
// the keepalive budget), `reset` when a rebooted host answers with a RST.
//
// These need root and iproute2's `ip`. Where either is missing, or namespaces cannot be made,
// each test passes with a WARN "skipped: <why>" (Catch2 v2 has no SKIP). CI runs as root with
// iproute2, so there they really run.
//
// Timing: the bounds are the keepalive budget plus 10 s of slack (CI has 2 busy cores, and a
// sanitizer build is slower). The measured times are printed with WARN for the benchmark.
#include "lab/network.hpp"
#include "tests/support/process.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace chat::lab;
using namespace chat::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Host = LabNetwork::Host;

namespace {

constexpr auto patience = 10s;  // for steps that should take milliseconds (start-up, joins)
constexpr auto slack = 10s;     // on top of a detection budget

// Short keepalive for the timeout cases: 2 s idle, then 2 probes 1 s apart: a 4 s budget
// (TCP_USER_TIMEOUT is set to the same). The ping intervals are an hour, so that no heartbeat
// fires first: the cause must be the keepalive's.
const std::string quick_keepalive = "2s,1s,2";
constexpr auto quick_budget = 4s;
// For the reboot cases: a 16 s budget, far more than the crash and reboot steps take, so that
// the reset comes first.
const std::string slow_keepalive = "10s,2s,3";
constexpr auto slow_budget = 16s;
const std::string no_heartbeat = "1h";

long long millis(Clock::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

std::chrono::milliseconds until(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
  return left < 0ms ? 0ms : left;
}

// Catch2 v2 has no SKIP macro: when this machine cannot build the network, the test WARNs
// "skipped: <why>" and returns early, which is how these tests skip.
std::unique_ptr<LabNetwork> network_or_skip() {
  try {
    return std::make_unique<LabNetwork>();
  } catch (const NetworkUnavailable& e) {
    WARN("skipped: " << e.what());
    return nullptr;
  }
}

// The first line on `which` that contains `marker`, read before `deadline`; nullopt if none
// came (then `seen` holds what did).
std::optional<std::string> line_with(Subprocess& p, Stream which, const std::string& marker,
                                     Clock::time_point deadline, std::string& seen) {
  std::string found;
  const bool ok = p.wait_for_line(
      which,
      [&](const std::string& line) {
        if (line.find(marker) == std::string::npos) return false;
        found = line;
        return true;
      },
      until(deadline), &seen);
  if (!ok) return std::nullopt;
  return found;
}

// The word after `marker` in `line`, up to a ':', ' ' or ')': the cause in the server's
// "disconnected: timeout (...)", or in the detail chatclient --verbose shows after its words,
// "*** disconnected: the connection to the server was reset [reset: ...]" (marker " [").
std::string word_after(const std::string& line, const std::string& marker) {
  const auto at = line.find(marker);
  if (at == std::string::npos) return {};
  const auto start = at + marker.size();
  const auto end = line.find_first_of(":) ", start);
  return line.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

struct RunningServer {
  std::unique_ptr<Subprocess> process;
  std::uint16_t port = 0;
};

// chatserver inside `host`, listening on the host's address with a port the kernel picks,
// read back from its first stderr line "chatserver listening on <address>:<port>".
RunningServer start_server(const LabNetwork& net, const Host& host, std::vector<std::string> options) {
  std::vector<std::string> argv{CHATSERVER_PATH, "--bind", host.address, "--port", "0"};
  argv.insert(argv.end(), options.begin(), options.end());
  RunningServer server;
  server.process = std::make_unique<Subprocess>(net.in_host(host, argv));
  const auto first = server.process->read_line(Stream::err, patience);
  const std::string prefix = "chatserver listening on " + host.address + ":";
  INFO("chatserver's first line: " << first.value_or("(none)"));
  REQUIRE(first);
  REQUIRE(first->rfind(prefix, 0) == 0);
  server.port = static_cast<std::uint16_t>(std::stoi(first->substr(prefix.size())));
  return server;
}

// chatclient inside `host`, joined to the server at `server_address`:`port` as `nick`.
std::unique_ptr<Subprocess> start_client(const LabNetwork& net, const Host& host, const std::string& server_address,
                                         std::uint16_t port, const std::string& nick,
                                         std::vector<std::string> options) {
  std::vector<std::string> argv{CHATCLIENT_PATH, "--host", server_address, "--port", std::to_string(port), "--nick",
                                nick};
  argv.insert(argv.end(), options.begin(), options.end());
  auto client = std::make_unique<Subprocess>(net.in_host(host, argv));
  std::string seen;
  const bool joined = client->wait_for_line(Stream::out, "*** welcome, " + nick, patience, &seen);
  INFO("chatclient " << nick << " said:\n" << seen);  // after the wait: Catch2 v2 builds the message here
  REQUIRE(joined);
  return client;
}

// How the side that loses its peer is configured in the link-down cases: its defaults
// (keepalive 10s,2s,3, a 16 s budget, which the heartbeat's PING at 15 s must not delay), a
// tuned keepalive, and keepalive off, where the heartbeat's PING is not even ACKed, which says
// the host is gone, not that the process hung. Both timeouts must say `timeout`.
struct Setting {
  std::string name;
  std::vector<std::string> args;
  std::chrono::seconds budget;
};

std::vector<Setting> timeout_settings() {
  return {
      {"defaults (keepalive 10s,2s,3)", {}, std::chrono::seconds(16)},
      {"keepalive " + quick_keepalive, {"--keepalive", quick_keepalive, "--ping-interval", no_heartbeat},
       std::chrono::seconds(4)},
      {"keepalive off, heartbeat 1s + 2s", {"--keepalive", "off", "--ping-interval", "1s", "--ping-timeout", "2s"},
       std::chrono::seconds(3)},
  };
}

}  // namespace

TEST_CASE("chatserver reports timeout when a client's link goes down", "[netns][server]") {
  auto net = network_or_skip();
  if (!net) return;  // skipped; the WARN says why
  Host& server_host = net->add_host("server");
  Host& client_host = net->add_host("client");

  // Once per setting (timeout_settings): chatserver's defaults, tuned, keepalive off.
  const Setting setting = GENERATE(from_range(timeout_settings()));
  auto server = start_server(*net, server_host, setting.args);
  // The observer shares the server's host, so it is not cut off; it sees the LEAVE.
  auto observer = start_client(*net, server_host, server_host.address, server.port, "observer",
                               {"--ping-interval", no_heartbeat, "--verbose"});
  auto victim = start_client(*net, client_host, server_host.address, server.port, "victim",
                             {"--ping-interval", no_heartbeat});
  REQUIRE(observer->wait_for_line(Stream::out, "*** victim joined", patience));
  // Keepalive counts from the last segment received: the victim's join, just before this.
  const auto joined = Clock::now();

  const auto down = Clock::now();
  net->link_down(client_host);

  std::string seen;
  const auto logged = line_with(*server.process, Stream::err, "disconnected: ", down + setting.budget + slack, seen);
  const auto noticed = Clock::now();
  const auto took = noticed - down;
  INFO("chatserver logged:\n" << seen);  // after the wait: Catch2 v2 builds the message here
  REQUIRE(logged);
  CHECK(word_after(*logged, "disconnected: ") == "timeout");
  CHECK(took <= setting.budget + slack);

  std::string observed;
  const auto leave = line_with(*observer, Stream::out, "*** victim", Clock::now() + patience, observed);
  INFO("observer said:\n" << observed);
  REQUIRE(leave);
  CHECK(word_after(*leave, " [") == "timeout");  // the observer runs with --verbose

  WARN("server noticed the client's link down: "
       << word_after(*logged, "disconnected: ") << " after " << millis(took) << " ms (link down "
       << millis(down - joined) << " ms after the join; " << setting.name << ", budget " << setting.budget.count()
       << " s)\n  "
       << *logged << "\n  " << *leave);
}

TEST_CASE("chatserver reports reset when a client's host crashes and reboots", "[netns][server]") {
  auto net = network_or_skip();
  if (!net) return;  // skipped; the WARN says why
  Host& server_host = net->add_host("server");
  Host& client_host = net->add_host("client");

  auto server = start_server(*net, server_host, {"--keepalive", slow_keepalive, "--ping-interval", no_heartbeat});
  auto observer = start_client(*net, server_host, server_host.address, server.port, "observer",
                               {"--ping-interval", no_heartbeat, "--verbose"});
  auto victim = start_client(*net, client_host, server_host.address, server.port, "victim",
                             {"--ping-interval", no_heartbeat});
  REQUIRE(observer->wait_for_line(Stream::out, "*** victim joined", patience));

  // The crash: the link goes first, so that nothing the dying host sends (a FIN or RST from
  // its kernel when the process dies) reaches the server.
  const auto down = Clock::now();
  net->link_down(client_host);
  REQUIRE(victim->signal(SIGKILL));
  REQUIRE(victim->wait_exit(patience) == 128 + SIGKILL);
  net->crash(client_host);
  net->reboot(client_host);
  const auto rebooted = Clock::now();

  // The server writes to the victim (the observer's message is delivered to everyone); the
  // rebooted host has no socket for that connection and answers with a RST. If the victim had
  // not yet ACKed its join lines when the link went down, the server's retransmission of them
  // (one RTO, ~200 ms, after they were sent) may meet the RST first: the same cause.
  REQUIRE(observer->write("anyone there?\n"));
  const auto wrote = Clock::now();

  std::string seen;
  const auto logged = line_with(*server.process, Stream::err, "disconnected: ", down + slow_budget + slack, seen);
  const auto noticed = Clock::now();
  const auto took = noticed - down;
  INFO("chatserver logged:\n" << seen);  // after the wait: Catch2 v2 builds the message here
  REQUIRE(logged);
  CHECK(word_after(*logged, "disconnected: ") == "reset");
  CHECK(took <= slow_budget + slack);

  std::string observed;
  const auto leave = line_with(*observer, Stream::out, "*** victim", Clock::now() + patience, observed);
  INFO("observer said:\n" << observed);
  REQUIRE(leave);
  CHECK(word_after(*leave, " [") == "reset");  // the observer runs with --verbose

  WARN("server noticed the client host's crash and reboot: "
       << word_after(*logged, "disconnected: ") << " after " << millis(took) << " ms from link down (crash + reboot "
       << millis(rebooted - down) << " ms, then " << millis(noticed - wrote) << " ms from the write; keepalive "
       << slow_keepalive << ", budget 16 s)\n  " << *logged << "\n  " << *leave);
}

TEST_CASE("chatclient reports timeout when the server's link goes down", "[netns][client]") {
  auto net = network_or_skip();
  if (!net) return;  // skipped; the WARN says why
  Host& server_host = net->add_host("server");
  Host& client_host = net->add_host("client");

  // Once per setting (timeout_settings), now for chatclient's side.
  const Setting setting = GENERATE(from_range(timeout_settings()));
  auto server = start_server(*net, server_host, {"--ping-interval", no_heartbeat});
  auto client_args = setting.args;
  client_args.push_back("--verbose");  // the cause after the words, in brackets
  auto alice = start_client(*net, client_host, server_host.address, server.port, "alice", client_args);
  // Keepalive counts from the last segment received: the WELCOME, just before this.
  const auto joined = Clock::now();

  const auto down = Clock::now();
  net->link_down(server_host);

  std::string seen;
  const std::string marker = " [";  // after "*** disconnected: <words>": chatclient --verbose
  const auto lost = line_with(*alice, Stream::out, "*** disconnected: ", down + setting.budget + slack, seen);
  const auto noticed = Clock::now();
  const auto took = noticed - down;
  INFO("chatclient said:\n" << seen);  // after the wait: Catch2 v2 builds the message here
  REQUIRE(lost);
  CHECK(word_after(*lost, marker) == "timeout");
  CHECK(took <= setting.budget + slack);
  CHECK(alice->wait_exit(patience) == 1);

  WARN("chatclient noticed the server's link down: " << word_after(*lost, marker) << " after " << millis(took)
                                                     << " ms (link down " << millis(down - joined)
                                                     << " ms after the join; " << setting.name << ", budget "
                                                     << setting.budget.count() << " s)\n  " << *lost);
}

TEST_CASE("chatclient reports reset when the server's host crashes and reboots", "[netns][client]") {
  auto net = network_or_skip();
  if (!net) return;  // skipped; the WARN says why
  Host& server_host = net->add_host("server");
  Host& client_host = net->add_host("client");

  auto server = start_server(*net, server_host, {"--ping-interval", no_heartbeat});
  auto alice = start_client(*net, client_host, server_host.address, server.port, "alice",
                            {"--keepalive", slow_keepalive, "--ping-interval", no_heartbeat, "--verbose"});

  const auto down = Clock::now();
  net->link_down(server_host);
  REQUIRE(server.process->signal(SIGKILL));
  REQUIRE(server.process->wait_exit(patience) == 128 + SIGKILL);
  net->crash(server_host);
  net->reboot(server_host);
  const auto rebooted = Clock::now();

  // A typed line makes chatclient write; the rebooted host answers it with a RST. chatclient
  // may have met the RST already (then the write finds its stdin closed): a delayed ACK of its
  // last join lines, sent up to 40 ms after they came, can reach the rebooted host first.
  const bool typed = alice->write("anyone there?\n");
  const auto wrote = Clock::now();

  std::string seen;
  const std::string marker = " [";  // after "*** disconnected: <words>": chatclient --verbose
  const auto lost = line_with(*alice, Stream::out, "*** disconnected: ", down + slow_budget + slack, seen);
  const auto noticed = Clock::now();
  const auto took = noticed - down;
  INFO("chatclient said:\n" << seen);  // after the wait: Catch2 v2 builds the message here
  REQUIRE(lost);
  CHECK(word_after(*lost, marker) == "reset");
  CHECK(took <= slow_budget + slack);
  CHECK(alice->wait_exit(patience) == 1);

  WARN("chatclient noticed the server host's crash and reboot: "
       << word_after(*lost, marker) << " after " << millis(took) << " ms from link down (crash + reboot "
       << millis(rebooted - down) << " ms, then " << millis(noticed - wrote) << " ms from the write"
       << (typed ? "" : ", which found chatclient gone") << "; keepalive " << slow_keepalive << ", budget 16 s)\n  "
       << *lost);
}
