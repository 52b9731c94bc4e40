// Network failures between real chatserver and chatclient processes in network namespaces
// (LabNetwork): a link that goes down, and a host that crashes and reboots. Each side must
// notice the other is gone with the right cause: `timeout` when packets just vanish (within
// the keepalive budget), `reset` when a rebooted host answers with a RST. And a seat resumed
// after the link was down for seconds (docs/protocol.md, "Ids, resume and history"): two
// protocol clients with ids on raw sockets made inside the namespaces, the victim's replay
// checked line by line against what the observer read.
//
// These need root and iproute2's `ip`. Where either is missing, or namespaces cannot be made,
// each test passes with a WARN "skipped: <why>" (Catch2 v2 has no SKIP). CI runs as root with
// iproute2, so there they really run.
//
// Timing: the bounds are the keepalive budget plus 10 s of slack (CI has 2 busy cores, and a
// sanitizer build is slower). The measured times are printed with WARN for the benchmark.
#include "lab/network.hpp"
#include "lab/observer.hpp"
#include "tests/support/process.hpp"

#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstring>
#include <iterator>
#include <memory>
#include <optional>
#include <set>
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

namespace {

// A protocol client on a raw socket made inside a host's namespace (connect_tcp), read line by
// line with deadlines; it answers PINGs itself. Single-threaded, owned by the test thread.
class LinePeer {
 public:
  LinePeer(const Host& host, const std::string& address, std::uint16_t port)
      : fd_(connect_tcp(address, port, host.ns_name, patience)) {}
  ~LinePeer() { close(); }
  LinePeer(const LinePeer&) = delete;
  LinePeer& operator=(const LinePeer&) = delete;

  bool send(const std::string& line) { return fd_ >= 0 && send_all(fd_, line + "\n"); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool closed() const { return fd_ < 0 || eof_; }

  // The next line but PING (answered), or nullopt at `deadline` or the end of the stream.
  std::optional<std::string> read_line(Clock::time_point deadline) {
    while (true) {
      if (const auto eol = buffer_.find('\n'); eol != std::string::npos) {
        std::string line = buffer_.substr(0, eol);
        buffer_.erase(0, eol + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        // The token is a secret even here: a failed test's messages show the rest.
        transcript += (line.rfind("TOKEN ", 0) == 0 ? "TOKEN <not shown>" : line) + "\n";
        if (line.rfind("PING", 0) == 0) {
          send("PONG" + line.substr(4));
          continue;
        }
        return line;
      }
      if (closed()) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(until(deadline).count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) return std::nullopt;
      char chunk[16384];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        eof_ = true;
        transcript += n == 0 ? "(end of stream)\n" : "(recv: " + std::string(std::strerror(errno)) + ")\n";
        return std::nullopt;
      }
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  // Reads lines until one starts with `prefix` (returned), or nullopt at `deadline`; `each`
  // sees every line read, the match included.
  template <typename Each>
  std::optional<std::string> read_until(const std::string& prefix, Clock::time_point deadline, Each&& each) {
    while (auto line = read_line(deadline)) {
      each(*line);
      if (line->rfind(prefix, 0) == 0) return line;
    }
    return std::nullopt;
  }
  std::optional<std::string> read_until(const std::string& prefix, Clock::time_point deadline) {
    return read_until(prefix, deadline, [](const std::string&) {});
  }

  std::string transcript;  // every line read, for messages

 private:
  int fd_ = -1;
  bool eof_ = false;
  std::string buffer_;
};

// The tag of a room event read with ids, "@<id>/<unix ms> <line>": the id, 0 for an untagged line.
std::uint64_t tag_id(const std::string& line) {
  if (line.empty() || line[0] != '@') return 0;
  std::uint64_t id = 0;
  const auto slash = line.find('/');
  if (slash == std::string::npos) return 0;
  const auto [end, ec] = std::from_chars(line.data() + 1, line.data() + slash, id);
  return ec == std::errc() && end == line.data() + slash ? id : 0;
}

// The line after the tag.
std::string untagged(const std::string& line) {
  return tag_id(line) == 0 ? line : line.substr(line.find(' ') + 1);
}

}  // namespace

TEST_CASE("chatserver resumes the seat of a client with ids after its link was down for seconds",
          "[netns][server][resume]") {
  auto net = network_or_skip();
  if (!net) return;  // skipped; the WARN says why
  Host& server_host = net->add_host("server");
  Host& client_host = net->add_host("client");

  // Keepalive 2s,1s,2 (TCP_USER_TIMEOUT 4 s) and no heartbeat: the server finds the drop by
  // keepalive's budget, with the observer's lines in flight to the dead link (the kernel's
  // user timeout, or the poller's TCP_INFO check). chatlab wifi-drop shows the heartbeat.
  auto server = start_server(*net, server_host,
                             {"--keepalive", quick_keepalive, "--ping-interval", no_heartbeat, "--db", "none"});
  LinePeer observer(server_host, server_host.address, server.port);
  std::vector<std::string> observed;  // every tagged line the observer read, in order
  const auto observe = [&](const std::string& line) {
    if (tag_id(line) != 0) observed.push_back(line);
  };
  REQUIRE(observer.send("HELLO observer ids"));
  REQUIRE(observer.read_until("HISTORY END recent", Clock::now() + patience));

  // The victim joins with ids: it keeps its TOKEN and the id of the last tagged line it read.
  LinePeer victim(client_host, server_host.address, server.port);
  REQUIRE(victim.send("HELLO victim ids"));
  std::string token;
  std::uint64_t last_id = 0;
  std::vector<std::uint64_t> victim_ids;  // every tagged id the victim read, both connections
  const auto victim_reads = [&](const std::string& line) {
    if (line.rfind("TOKEN ", 0) == 0) token = line.substr(6, line.find(' ', 6) - 6);
    if (const auto id = tag_id(line)) {
      victim_ids.push_back(id);
      last_id = std::max(last_id, id);
    }
  };
  {
    const auto end = victim.read_until("HISTORY END recent", Clock::now() + patience, victim_reads);
    INFO("victim read:\n" << victim.transcript);
    REQUIRE(end);
    REQUIRE(token.size() == 32);
  }
  const auto join = observer.read_until("@", Clock::now() + patience, observe);  // its JOIN victim
  REQUIRE(join);
  REQUIRE(untagged(*join) == "JOIN victim");
  const std::uint64_t join_id = tag_id(*join);

  // A line the victim reads before the drop: it resumes from a live event's id.
  REQUIRE(observer.send("SAY before the drop"));
  REQUIRE(victim.read_until("@", Clock::now() + patience, victim_reads));
  REQUIRE(untagged(victim.transcript.substr(victim.transcript.rfind('@'))) == "MSG observer before the drop\n");
  const std::uint64_t resume_from = last_id;

  // The drop: the victim's link goes down; the observer talks every 400 ms until the server
  // has said LEAVE and the link has been down 3 s at least.
  const auto down = Clock::now();
  net->link_down(client_host);
  std::optional<std::string> leave;
  Clock::time_point left_at{};
  int said = 0;
  for (auto next = down + 200ms; !leave || next < down + 3s; next += 400ms) {
    REQUIRE(next < down + quick_budget + slack);
    while (auto line = observer.read_line(next)) {
      observe(*line);
      if (untagged(*line).rfind("LEAVE victim ", 0) == 0 && !leave) {
        leave = untagged(*line);
        left_at = Clock::now();
      }
    }
    REQUIRE_FALSE(observer.closed());
    REQUIRE(observer.send("SAY line " + std::to_string(++said) + " while the victim is away"));
  }
  INFO("observer read:\n" << observer.transcript);
  REQUIRE(leave);
  CHECK(leave->rfind("LEAVE victim timeout ", 0) == 0);
  CHECK(left_at - down <= quick_budget + slack);

  // The link comes back; the victim's new connection asks for its seat.
  net->link_up(client_host);
  const auto up = Clock::now();
  victim.close();
  LinePeer resumed(client_host, server_host.address, server.port);
  REQUIRE(resumed.send("RESUME " + token + " " + std::to_string(resume_from)));
  std::optional<std::string> resumed_line, missed_head;
  std::vector<std::string> replay;
  bool in_block = false;
  const auto end = resumed.read_until("HISTORY END missed", Clock::now() + patience, [&](const std::string& line) {
    if (line.rfind("RESUMED ", 0) == 0) resumed_line = line;
    if (line.rfind("HISTORY missed ", 0) == 0) {
      missed_head = line;
      in_block = true;
    } else if (line == "HISTORY END missed") {
      in_block = false;
    } else if (in_block && tag_id(line) != 0) {
      replay.push_back(line);
    }
    victim_reads(line);
  });
  INFO("resumed victim read:\n" << resumed.transcript);
  REQUIRE(end);
  REQUIRE(resumed_line);
  REQUIRE(missed_head);
  // The observer reads its own last lines, then the BACK.
  std::optional<std::string> back;
  while (!back) {
    const auto line = observer.read_line(Clock::now() + patience);
    if (!line) break;
    observe(*line);
    if (untagged(*line).rfind("BACK victim ", 0) == 0) back = line;
  }
  INFO("observer read:\n" << observer.transcript);
  REQUIRE(back);
  const std::uint64_t back_id = tag_id(*back);

  // What the replay must be: what the observer read after the victim's last id, before the BACK.
  std::vector<std::string> expected;
  for (const auto& line : observed) {
    if (tag_id(line) > resume_from && tag_id(line) < back_id) expected.push_back(line);
  }
  CHECK(resumed_line->rfind("RESUMED victim ", 0) == 0);  // RESUMED <nick> <ms away> <missed>
  CHECK(resumed_line->substr(resumed_line->rfind(' ') + 1) == std::to_string(expected.size()));
  CHECK(*missed_head == "HISTORY missed " + std::to_string(expected.size()));  // and not partial
  CHECK(replay == expected);  // the same lines, tags included: each once, in order
  CHECK(std::count_if(replay.begin(), replay.end(), [](const std::string& l) {
          return untagged(l).rfind("LEAVE victim timeout ", 0) == 0;
        }) == 1);
  CHECK(std::count_if(replay.begin(), replay.end(), [](const std::string& l) {
          return untagged(l).rfind("MSG observer line ", 0) == 0;
        }) == said);

  // Live lines follow the replay at once: the first is the observer's next event.
  REQUIRE(observer.send("SAY welcome back"));
  const auto live = resumed.read_until("@", Clock::now() + patience, victim_reads);
  const auto echo = observer.read_until("@", Clock::now() + patience, observe);
  REQUIRE(live);
  REQUIRE(echo);
  CHECK(*live == *echo);
  CHECK(untagged(*live) == "MSG observer welcome back");

  // Across both connections the victim read every event the observer read after the victim's
  // JOIN exactly once (the BACK is the others', not its own), and in id order.
  std::vector<std::uint64_t> after_join;
  std::copy_if(victim_ids.begin(), victim_ids.end(), std::back_inserter(after_join),
               [&](std::uint64_t id) { return id > join_id; });
  CHECK(std::is_sorted(after_join.begin(), after_join.end()));
  CHECK(std::set<std::uint64_t>(after_join.begin(), after_join.end()).size() == after_join.size());
  std::vector<std::uint64_t> others;
  for (const auto& line : observed) {
    if (tag_id(line) > join_id && tag_id(line) != back_id) others.push_back(tag_id(line));
  }
  CHECK(after_join == others);

  WARN("resume after " << millis(up - down) << " ms with the link down: LEAVE after " << millis(left_at - down)
                       << " ms (" << *leave << "); " << *resumed_line << ", " << replay.size()
                       << " events replayed, each once and in order\n  " << *missed_head << "\n  "
                       << (replay.empty() ? std::string() : replay.front()) << "\n  ...\n  "
                       << (replay.empty() ? std::string() : replay.back()) << "\n  " << *back);
}

// One room on two chatservers (--redis, docs/scale-out.md), one of them cut from Redis by its
// link going down, then healed: the other side's reaper declares it lost (instance-lost), the
// cut-off side tells its members the room is split and keeps what they say, and when the link
// is back it announces them again, before what they said, and says the room is whole.
TEST_CASE("a chatserver cut from Redis by its link: lost for the others, split for its own, whole again when healed",
          "[netns][redis]") {
  auto net = network_or_skip();
  if (!net) return;  // skipped; the WARN says why
  REQUIRE(::access("/usr/bin/redis-server", X_OK) == 0);  // the README's test command installs it
  Host& core = net->add_host("core");  // Redis and chatserver A
  Host& edge = net->add_host("edge");  // chatserver B, cut off below
  const std::string port = "6390";     // inside the namespaces only
  Subprocess redis(net->in_host(core, {"/usr/bin/redis-server", "--bind", core.address, "--port", port, "--save", "",
                                       "--appendonly", "no", "--protected-mode", "no", "--dir", "/tmp", "--logfile",
                                       ""}));
  REQUIRE(redis.wait_for_line(Stream::out, "Ready to accept connections", patience));
  const std::vector<std::string> shared{"--redis", "redis://" + core.address + ":" + port, "--room", "partition",
                                        "--instance-timeout", "3s", "--db", "none", "--ping-interval", no_heartbeat};
  auto a = start_server(*net, core, shared);
  auto b = start_server(*net, edge, shared);
  auto alice = start_client(*net, core, core.address, a.port, "alice", {"--ping-interval", no_heartbeat, "--verbose"});
  auto bob = start_client(*net, edge, edge.address, b.port, "bob", {"--ping-interval", no_heartbeat});
  REQUIRE(alice->wait_for_line(Stream::out, "*** bob joined", patience));

  const auto down = Clock::now();
  net->link_down(edge);
  std::string seen_alice, seen_bob;
  // The others: bob's server stopped answering, once, within the instance timeout (+ slack).
  const auto lost = line_with(*alice, Stream::out, "bob was lost with their server", down + 3s + slack, seen_alice);
  INFO("alice said:\n" << seen_alice);
  REQUIRE(lost);
  const auto at = lost->find("stopped answering (no heartbeat for ");
  REQUIRE(at != std::string::npos);
  CHECK(std::stod(lost->substr(at + 36)) >= 1.9);  // (its heartbeat key's life: 2/3 of the timeout)
  // bob's own server: the room is split, and bob is still in it there.
  const auto split = line_with(*bob, Stream::out, "the room is split since", Clock::now() + slack, seen_bob);
  INFO("bob said:\n" << seen_bob);
  REQUIRE(split);
  REQUIRE(bob->write("said during the partition\n"));

  net->link_up(edge);
  REQUIRE(line_with(*bob, Stream::out, "the room is whole again", Clock::now() + slack + 10s, seen_bob));
  // alice: bob is back (announced again), then what he said while cut off, in that order.
  const auto said = line_with(*alice, Stream::out, "<bob> said during the partition", Clock::now() + slack, seen_alice);
  REQUIRE(said);
  const auto back_at = seen_alice.find("*** bob joined", seen_alice.find("bob was lost"));
  CHECK(back_at != std::string::npos);
  CHECK(back_at < seen_alice.find("<bob> said during the partition"));
  // bob never saw himself leave: his own server kept him.
  REQUIRE(bob->write("/who\n"));
  REQUIRE(line_with(*bob, Stream::out, "online", Clock::now() + patience, seen_bob));
  CHECK(seen_bob.find("bob was lost") == std::string::npos);
  WARN("a chatserver cut from Redis: the others read instance-lost after " << millis(Clock::now() - down)
                                                                           << " ms at most (3 s instance timeout)");
}
