// chatserver out of descriptors, threads and memory (issue 9): a client that cannot be served
// is told `BYE server-busy` at once, the others go on, and the server serves again as soon as
// the resource is back. The limits are lowered on the running server with prlimit(2), so the
// starting server is a normal one; they are lifted again before the test ends.
#include "tests/process/server_process.hpp"
#include "tests/support/line_client.hpp"

#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <dirent.h>

#include <csignal>
#include <algorithm>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace chat::test;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<LineClient> join(std::uint16_t port, const std::string& nick) {
  auto c = std::make_unique<LineClient>(port);
  REQUIRE(c->send_line("HELLO " + nick));
  REQUIRE(c->expect_line("WELCOME " + nick, patience));
  return c;
}

int open_descriptors(pid_t pid) {
  int n = 0;
  if (DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str())) {
    while (const dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
  }
  return n;
}

// A size from /proc/<pid>/status in bytes: VmSize (the address space, which RLIMIT_AS bounds),
// VmData (private writable memory, which RLIMIT_DATA bounds).
rlim_t vm_bytes(pid_t pid, const std::string& which) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (status >> key) {
    if (key == which + ":") {
      rlim_t kib = 0;
      status >> kib;
      return kib * 1024;
    }
  }
  return 0;
}

// Sets the soft limit only (the hard one stays, so no privilege is needed to raise it again);
// `value` above the hard limit means the hard limit.
void set_limit(pid_t pid, int resource, rlim_t value) {
  const auto r = static_cast<__rlimit_resource>(resource);
  rlimit lim{};
  REQUIRE(::prlimit(pid, r, nullptr, &lim) == 0);
  lim.rlim_cur = std::min(value, lim.rlim_max);
  INFO("prlimit(" << pid << ", " << resource << ", soft " << lim.rlim_cur << ")");
  REQUIRE(::prlimit(pid, r, &lim, nullptr) == 0);
}

// Connects and returns the first line the server sends (nullopt: nothing within patience).
std::optional<std::string> first_line(std::uint16_t port, std::unique_ptr<LineClient>& keep) {
  keep = std::make_unique<LineClient>(port);
  return keep->read_line(patience);
}

}  // namespace

TEST_CASE("out of descriptors: BYE server-busy at once, logged once, accepted again when they return",
          "[process][exhaustion]") {
#if defined(__SANITIZE_ADDRESS__)
  // UBSan's vptr check asks whether memory is readable by writing it to a pipe: with no
  // descriptors left it cannot, and reports every virtual call as "invalid vptr". The case
  // runs in the release and ThreadSanitizer builds.
  WARN("skipped under AddressSanitizer + UBSan");
  return;
#endif
  ServerProcess server({"--max-per-ip", "0"});
  const pid_t pid = server.process().pid();
  auto alice = join(server.port(), "alice");
  auto bob = join(server.port(), "bob");
  // Room for exactly three more connections.
  const int open_now = open_descriptors(pid);
  REQUIRE(open_now > 3);
  set_limit(pid, RLIMIT_NOFILE, static_cast<rlim_t>(open_now + 3));

  std::vector<std::unique_ptr<LineClient>> accepted;
  int busy = 0;
  for (int i = 0; i < 8; ++i) {
    std::unique_ptr<LineClient> c;
    const auto line = first_line(server.port(), c);
    INFO("connection " << i << ", " << busy << " refused so far");
    if (!line) {
      std::string log;
      while (auto l = server.process().read_line(Stream::err, 200ms)) log += *l + "\n";
      INFO("the server's log:\n" << log);
      REQUIRE(line);  // never left waiting unanswered in the backlog
    }
    if (line->starts_with("# chatserver")) {
      // (Once refusals have begun, one more may still be greeted: the server's threads open
      // descriptors for a moment now and then, and one comes back.)
      accepted.push_back(std::move(c));
    } else {
      CHECK(*line == "BYE server-busy");
      CHECK(c->wait_closed(patience));
      ++busy;
    }
  }
  CHECK(accepted.size() >= 1);  // three, give or take what the server itself opens meanwhile
  CHECK(busy >= 3);
  // Those inside chat on.
  REQUIRE(alice->send_line("SAY still here"));
  CHECK(bob->expect_line("MSG alice still here", patience));

  // Descriptors return when the accepted ones leave: the next client is greeted again.
  for (auto& c : accepted) c->close();
  accepted.clear();
  bool greeted = false;
  const auto deadline = std::chrono::steady_clock::now() + patience;
  while (!greeted && std::chrono::steady_clock::now() < deadline) {
    std::unique_ptr<LineClient> c;
    const auto line = first_line(server.port(), c);
    REQUIRE(line);
    greeted = line->starts_with("# chatserver");
    if (!greeted) std::this_thread::sleep_for(100ms);  // the server reaps within a sweep or two
  }
  CHECK(greeted);
  set_limit(pid, RLIMIT_NOFILE, RLIM_INFINITY);

  // One warning per episode, not one per refused client, and each episode's end logged.
  REQUIRE(server.process().signal(SIGTERM));
  int warnings = 0, recovered = 0;
  while (auto line = server.process().read_line(Stream::err, patience)) {
    warnings += line->find("out of file descriptors") != std::string::npos;
    recovered += line->find("descriptors available again") != std::string::npos;
  }
  INFO(busy << " clients refused");
  WARN("out of descriptors: " << busy << " of 8 connections got BYE server-busy, " << warnings
                              << " warning(s) logged, descriptors back after the accepted ones left");
  CHECK(warnings >= 1);
  CHECK(warnings < busy);
  CHECK(recovered == warnings);
}

TEST_CASE("out of threads or memory: BYE server-busy for that client, the server goes on",
          "[process][exhaustion]") {
  if (sanitized) {
    // The sanitizers reserve terabytes of address space: RLIMIT_AS cannot be used on them.
    WARN("skipped under a sanitizer");
    return;
  }
  ServerProcess server({"--max-per-ip", "0", "--max-line", "1MiB", "--send-queue", "4MiB"});
  const pid_t pid = server.process().pid();
  auto alice = join(server.port(), "alice");
  auto bob = join(server.port(), "bob");

  SECTION("a reader thread that cannot be started") {
    // No more address space: the next reader's stack (or its session) cannot be had.
    set_limit(pid, RLIMIT_AS, vm_bytes(pid, "VmSize"));
    auto carol = std::make_unique<LineClient>(server.port());
    std::string seen;
    const bool busy = carol->expect_line("BYE server-busy", patience, &seen).has_value();
    const bool closed = carol->wait_closed(patience);
    set_limit(pid, RLIMIT_AS, RLIM_INFINITY);
    INFO("carol saw:\n" << seen);
    CHECK(busy);
    CHECK(closed);
    // The server goes on: those inside chat, and the next client joins.
    auto dave = join(server.port(), "dave");
    REQUIRE(alice->send_line("SAY after"));
    CHECK(bob->expect_line("MSG alice after", patience));
    CHECK(dave->expect_line("MSG alice after", patience));
  }

  SECTION("memory that cannot be had while reading a client's line") {
    // A line of 900 KiB in progress (--max-line 1MiB): the reader's buffer for it must grow
    // past the memory the process may still have. RLIMIT_DATA, not RLIMIT_AS: glibc's thread
    // arenas have their address space reserved already, and only making it writable fails.
    set_limit(pid, RLIMIT_DATA, vm_bytes(pid, "VmData") + 64 * 1024);
    const std::string part(900 * 1024, 'x');
    alice->send_raw(part);  // may fail half-way once the server has ended alice: that is fine
    std::string seen;
    const bool busy = alice->expect_line("BYE server-busy", patience, &seen).has_value();
    set_limit(pid, RLIMIT_DATA, RLIM_INFINITY);
    INFO("alice saw:\n" << seen);
    CHECK(busy);
    CHECK(bob->expect_line("LEAVE alice error server out of memory", patience));
    auto carol = join(server.port(), "carol");
    REQUIRE(bob->send_line("SAY after"));
    CHECK(carol->expect_line("MSG bob after", patience));
  }
}
