// The room's history and seats across restarts of the real chatserver (--db FILE, SQLite):
// a clean restart keeps the events and their ids, RESUME works on the restarted server, a
// kill -9 loses at most the last batch, a database that cannot be used stops the server with
// exit code 2 and one line naming the file, --db none keeps nothing, and --history-keep N
// prunes. docs/protocol.md "Ids, resume and history", server/archive.hpp.
//
// Every server is a child process on 127.0.0.1 port 0 (ServerProcess), ended by its pid; every
// database lives in a temporary directory removed at the end of the test. Not thread safe:
// the test thread drives everything.
#include "tests/process/server_process.hpp"
#include "tests/support/line_client.hpp"
#include "tests/support/tagged_lines.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace chat::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// For one line or one exit: generous (2 busy cores); a passing test never waits this long.
constexpr std::chrono::milliseconds wait_long{20'000};

// The next line within wait_long.
std::string read(LineClient& c) { return read_line_within(c, wait_long); }

std::string read_until(LineClient& c, const std::function<bool(const std::string&)>& match,
                       std::vector<std::string>* log = nullptr, std::string_view what = "") {
  return read_until_within(c, wait_long, match, log, what);
}

HistoryBlock read_block(LineClient& c, const std::string& what) { return read_block_within(c, what, wait_long); }

std::string token_of(const std::string& line) {
  INFO("TOKEN line: " << line);
  REQUIRE(line.starts_with("TOKEN "));
  const auto rest = line.substr(6);
  const auto token = rest.substr(0, rest.find(' '));
  CHECK(token.size() == 32);
  return token;
}

// HELLO <nick> ids: greeting, WELCOME, TOKEN, USERS, HISTORY recent.
IdClient join_ids(std::uint16_t port, const std::string& nick) {
  IdClient m;
  m.c = std::make_unique<LineClient>(port);
  REQUIRE(m.c->send_line("HELLO " + nick + " ids"));
  REQUIRE(read(*m.c).starts_with("#"));
  REQUIRE(read(*m.c) == "WELCOME " + nick);
  m.token = token_of(read(*m.c));
  REQUIRE(read(*m.c).starts_with("USERS "));
  m.recent = read_block(*m.c, "recent");
  for (const auto& l : m.recent.lines) m.last_id = std::max(m.last_id, must_tag(l).id);
  return m;
}

// PING and every line up to its PONG; the tagged ones raise last_id.
void drain_ids(IdClient& m) { drain_ids_within(m, wait_long); }

// Every event kept, oldest first, paged back with HISTORY BEFORE (at most 500 a page).
std::vector<std::string> page_back_all(LineClient& c) {
  std::vector<std::string> all;
  std::uint64_t before = UINT64_MAX;
  for (int page = 0; page < 100; ++page) {
    REQUIRE(c.send_line("HISTORY BEFORE " + std::to_string(before) + " 500"));
    const auto b = read_block(c, "before");
    all.insert(all.begin(), b.lines.begin(), b.lines.end());
    if (b.lines.empty() || b.count < 500) return all;
    before = must_tag(b.lines.front()).id;
  }
  FAIL("more than 100 pages of history");
  return all;
}

// The prefix of the tests' temporary directories (TempDir).
constexpr std::string_view temp_prefix = "chat_persistence_tests";

// chatserver with --db `db` (warnings only: nobody reads its stderr while it runs).
std::unique_ptr<ServerProcess> start_server(const std::string& db, std::vector<std::string> more = {}) {
  std::vector<std::string> args{"--log-level", "warn"};
  if (!db.empty()) {
    args.push_back("--db");
    args.push_back(db);
  }
  args.insert(args.end(), more.begin(), more.end());
  return std::make_unique<ServerProcess>(std::move(args));
}

// SIGTERM and a clean exit (0).
void stop_server(std::unique_ptr<ServerProcess>& server) {
  REQUIRE(server->process().signal(SIGTERM));
  const auto code = server->process().wait_exit(wait_long);
  INFO("chatserver did not exit within " << wait_long.count() << " ms of SIGTERM");
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  server.reset();
}

// A chatserver run that ends by itself: its exit code, and its stderr and stdout lines.
struct Run {
  int code = -1;
  std::vector<std::string> err;
  std::vector<std::string> out;
};

Run run_server_to_exit(std::vector<std::string> args) {
  args.insert(args.begin(), {CHATSERVER_PATH, "--bind", "127.0.0.1", "--port", "0"});
  Subprocess p(std::move(args));
  Run r;
  const auto deadline = Clock::now() + wait_long;
  while (!p.at_eof(Stream::err) && Clock::now() < deadline) {
    if (auto line = p.read_line(Stream::err, 500ms)) r.err.push_back(*line);
  }
  while (!p.at_eof(Stream::out) && Clock::now() < deadline) {
    if (auto line = p.read_line(Stream::out, 500ms)) r.out.push_back(*line);
  }
  r.code = p.wait_exit(wait_long).value_or(-1);  // -1: still running (the destructor kills it)
  return r;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += "  " + l + "\n";
  return out;
}

std::string slurp(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("persistence: a clean restart keeps the history and its ids, and new ids are greater", "[persistence]") {
  TempDir dir(temp_prefix);
  const auto db = (dir.path() / "chat.db").string();
  auto server = start_server(db);
  auto alice = join_ids(server->port(), "alice");
  CHECK(alice.recent.count == 0);
  std::vector<std::string> said;  // alice's tagged echoes
  for (int i = 0; i < 5; ++i) REQUIRE(alice.c->send_line("SAY before restart " + std::to_string(i)));
  REQUIRE(alice.c->send_line("ME leaves for a moment"));
  for (int i = 0; i < 6; ++i) said.push_back(read(*alice.c));
  auto bob = join_ids(server->port(), "bob");  // sees alice's JOIN and lines in his recent block
  REQUIRE(bob.recent.count == 7);
  const std::vector<std::string> before_restart = bob.recent.lines;
  CHECK(std::vector<std::string>(before_restart.begin() + 1, before_restart.end()) == said);
  stop_server(server);

  server = start_server(db);
  auto nina = join_ids(server->port(), "nina");
  INFO("nina's recent block:\n" << joined(nina.recent.lines));
  // The same events, with the same ids and times, oldest first (the JOIN of bob too; no
  // LEAVE at shutdown: the clients got BYE shutdown).
  REQUIRE(nina.recent.count == 8);
  CHECK(std::vector<std::string>(nina.recent.lines.begin(), nina.recent.lines.begin() + 7) == before_restart);
  CHECK(must_tag(nina.recent.lines[7]).body == "JOIN bob");
  CHECK_FALSE(nina.recent.partial);
  // HISTORY BEFORE reads them too.
  REQUIRE(nina.c->send_line("HISTORY BEFORE " + std::to_string(must_tag(said.back()).id) + " 3"));
  CHECK(read_block(*nina.c, "before").lines == std::vector<std::string>(said.end() - 4, said.end() - 1));
  // New ids are greater than every old one.
  REQUIRE(nina.c->send_line("SAY after restart"));
  const auto fresh_line = read(*nina.c);
  const auto fresh = must_tag(fresh_line);
  CHECK(fresh.body == "MSG nina after restart");
  CHECK(fresh.id > must_tag(nina.recent.lines.back()).id);
  // The seats of alice and bob, connected at the shutdown, are held for them on the new run.
  LineClient intruder(server->port());
  REQUIRE(intruder.send_line("HELLO alice"));
  CHECK(read(intruder).starts_with("#"));
  CHECK(read(intruder) == "ERROR nick-held alice");
  stop_server(server);

  // And a third run still has them all.
  server = start_server(db);
  auto omar = join_ids(server->port(), "omar");
  const auto all = page_back_all(*omar.c);
  REQUIRE(all.size() >= 10);
  CHECK(std::vector<std::string>(all.begin(), all.begin() + 7) == before_restart);
  CHECK(std::find(all.begin(), all.end(), fresh_line) != all.end());
  {
    std::uint64_t prev = 0;
    for (const auto& l : all) {
      INFO(l);
      CHECK(must_tag(l).id > prev);
      prev = must_tag(l).id;
    }
  }
}

TEST_CASE("persistence: RESUME across a restart gives back the seat and the saved public events after the last id",
          "[persistence]") {
  TempDir dir(temp_prefix);
  const auto db = (dir.path() / "chat.db").string();
  auto server = start_server(db);
  auto alice = join_ids(server->port(), "alice");
  auto bob = join_ids(server->port(), "bob");
  REQUIRE(bob.c->send_line("SAY seen-1"));
  read_until(*bob.c, tagged_starting("MSG bob seen-1"), nullptr, "MSG bob seen-1");
  drain_ids(alice);  // reads JOIN bob and seen-1, then its PONG
  REQUIRE(alice.last_id > 0);
  const auto last = alice.last_id;

  // Said after the last line alice read: public lines (saved), and a private one (memory only).
  std::vector<std::string> unseen;
  for (int i = 1; i <= 3; ++i) REQUIRE(bob.c->send_line("SAY unseen-" + std::to_string(i)));
  REQUIRE(bob.c->send_line("ME shrugs"));
  REQUIRE(bob.c->send_line("PRIV alice not kept across a restart"));
  read_until(*bob.c, tagged_starting("PRIV bob alice"), &unseen, "PRIV bob alice");
  std::vector<std::string> want;
  for (const auto& l : unseen) {
    const auto t = parse_tagged(l);
    if (t && t->id > last && !t->body.starts_with("PRIV ")) want.push_back(l);
  }
  REQUIRE(want.size() == 4);
  const auto t_stop = Clock::now();
  stop_server(server);
  // Both got BYE shutdown before the FIN.
  read_until(*alice.c, [](const std::string& l) { return l.starts_with("BYE shutdown"); }, nullptr, "BYE shutdown");

  server = start_server(db);
  auto c = std::make_unique<LineClient>(server->port());
  REQUIRE(c->send_line("RESUME " + alice.token + " " + std::to_string(last)));
  REQUIRE(read(*c).starts_with("#"));
  const auto resumed = read(*c);
  INFO("RESUME answered: " << resumed);
  REQUIRE(resumed.starts_with("RESUMED alice "));
  std::istringstream words(resumed.substr(std::string("RESUMED alice ").size()));
  std::uint64_t away = 0, missed = 0;
  REQUIRE(words >> away >> missed);
  const auto upper = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t_stop).count();
  CHECK(static_cast<std::int64_t>(away) <= upper + 50);
  const auto fresh_token = token_of(read(*c));
  CHECK(fresh_token != alice.token);
  CHECK(read(*c) == "USERS alice");
  const auto block = read_block(*c, "missed");
  CHECK(missed == block.count);
  CHECK_FALSE(block.partial);
  INFO("missed block:\n" << joined(block.lines));
  CHECK(block.lines == want);

  // Live from here, with ids above the old run's.
  auto carl = join_ids(server->port(), "carl");
  const auto join = read_until(*c, tagged_starting("JOIN carl"), nullptr, "JOIN carl");
  CHECK(must_tag(join).id > must_tag(want.back()).id);
  // bob's seat was kept too; alice's old token is spent.
  REQUIRE(carl.c->send_line("NICK bob"));
  CHECK(read(*carl.c) == "ERROR nick-held bob");
  LineClient again(server->port());
  REQUIRE(again.send_line("RESUME " + alice.token + " 0"));
  CHECK(read(again).starts_with("#"));
  CHECK(read(again).starts_with("ERROR bad-token "));
  // bob resumes too, from before everything (0): the whole saved history after id 0.
  LineClient bob2(server->port());
  REQUIRE(bob2.send_line("RESUME " + bob.token + " " + std::to_string(must_tag(want.back()).id)));
  CHECK(read(bob2).starts_with("#"));
  CHECK(read(bob2).starts_with("RESUMED bob "));
  stop_server(server);
}

TEST_CASE("persistence: kill -9 loses at most the last batch, and the survivors are a prefix with their ids",
          "[persistence][kill]") {
  TempDir dir(temp_prefix);
  const auto db = (dir.path() / "chat.db").string();
  auto server = start_server(db, {"--max-rate", "0"});
  auto w = join_ids(server->port(), "writer");

  // A steady pace: one line a millisecond for about 2 s, each acknowledged by its echo.
  const int total = sanitized ? 500 : 2000;
  const auto pace = std::chrono::microseconds(2'000'000 / total);
  std::vector<std::string> echo(static_cast<std::size_t>(total));
  std::vector<Clock::time_point> echoed_at(static_cast<std::size_t>(total));
  int sent = 0, acked = 0;
  const auto t0 = Clock::now();
  const auto give_up = t0 + 60s;
  while (acked < total && Clock::now() < give_up) {
    while (sent < total && Clock::now() >= t0 + pace * sent) {
      if (!w.c->send_line("SAY n-" + std::to_string(sent))) FAIL("the server stopped taking lines at " << sent);
      ++sent;
    }
    const auto next = sent < total ? t0 + pace * sent : Clock::now() + 200ms;
    const auto wait = std::max<std::chrono::milliseconds::rep>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now()).count());
    auto line = w.c->read_line(std::chrono::milliseconds(wait));
    if (!line) {
      if (w.c->closed()) FAIL("the server closed the connection after " << acked << " echoes");
      continue;
    }
    const auto t = parse_tagged(*line);
    if (!t) continue;  // a PING, say
    if (t->body != "MSG writer n-" + std::to_string(acked)) FAIL("echo " << acked << " out of order: " << *line);
    echo[static_cast<std::size_t>(acked)] = *line;
    echoed_at[static_cast<std::size_t>(acked)] = Clock::now();
    ++acked;
  }
  REQUIRE(acked == total);
  const auto t_kill = Clock::now();
  REQUIRE(server->process().signal(SIGKILL));
  CHECK(server->process().wait_exit(wait_long) == 128 + SIGKILL);
  server.reset();
  const auto send_ms = std::chrono::duration_cast<std::chrono::milliseconds>(t_kill - t0).count();

  server = start_server(db, {"--max-rate", "0"});
  auto reader = join_ids(server->port(), "reader");
  const auto all = page_back_all(*reader.c);
  std::map<int, std::string> survived;
  for (const auto& l : all) {
    const auto t = must_tag(l);
    if (t.body.starts_with("MSG writer n-")) survived[std::stoi(t.body.substr(std::string("MSG writer n-").size()))] = l;
  }
  // A prefix: 0 .. m-1, each exactly as echoed (same id, same time).
  int m = 0;
  while (survived.contains(m)) ++m;
  CHECK(survived.size() == static_cast<std::size_t>(m));
  for (const auto& [i, line] : survived) {
    INFO("line " << i);
    CHECK(line == echo[static_cast<std::size_t>(i)]);
  }
  // Every line echoed more than 1 s before the kill is there (batches are ~50 ms).
  int must = 0;
  while (must < total && echoed_at[static_cast<std::size_t>(must)] <= t_kill - 1s) ++must;
  const auto lost = total - m;
  const auto oldest_lost_age =
      lost == 0 ? 0
                : std::chrono::duration_cast<std::chrono::milliseconds>(t_kill - echoed_at[static_cast<std::size_t>(m)]).count();
  INFO(total << " lines over " << send_ms << " ms; " << m << " survived, " << lost << " lost; the oldest lost was echoed "
             << oldest_lost_age << " ms before the kill; " << must << " were echoed more than 1 s before it");
  CHECK(m >= must);
  WARN("kill -9 after " << total << " lines in " << send_ms << " ms: " << lost << " lost (the oldest echoed "
                        << oldest_lost_age << " ms before the kill)");

  // New ids are above every id handed out before the kill, saved or not.
  REQUIRE(reader.c->send_line("SAY after the kill"));
  const auto fresh = must_tag(read_until(*reader.c, tagged_starting("MSG reader after the kill"), nullptr, "MSG reader"));
  CHECK(fresh.id > must_tag(echo.back()).id);
  stop_server(server);
}

TEST_CASE("persistence: a database that cannot be used: exit 2 and one line on stderr naming the file",
          "[persistence][errors]") {
  TempDir dir(temp_prefix);

  SECTION("a file of random bytes") {
    const auto db = dir.path() / "chat.db";
    std::string noise(64 * 1024, '\0');
    std::mt19937 rng(12345);
    for (auto& ch : noise) ch = static_cast<char>(rng() & 0xff);
    {
      std::ofstream out(db, std::ios::binary);
      out << noise;
    }
    const auto r = run_server_to_exit({"--db", db.string()});
    INFO("stderr:\n" << joined(r.err) << "stdout:\n" << joined(r.out));
    CHECK(r.code == 2);
    REQUIRE(r.err.size() == 1);
    CHECK(r.err[0].find(db.string()) != std::string::npos);
    CHECK(r.out.empty());
    CHECK(slurp(db) == noise);  // the user's file is left as it was
  }

  SECTION("a path under a regular file (ENOTDIR, even for root)") {
    const auto file = dir.path() / "plain";
    {
      std::ofstream out(file);
      out << "not a directory\n";
    }
    const auto db = (file / "chat.db").string();
    const auto r = run_server_to_exit({"--db", db});
    INFO("stderr:\n" << joined(r.err) << "stdout:\n" << joined(r.out));
    CHECK(r.code == 2);
    REQUIRE(r.err.size() == 1);
    CHECK(r.err[0].find(db) != std::string::npos);
    CHECK(r.out.empty());
  }

  SECTION("a directory") {
    const auto r = run_server_to_exit({"--db", dir.path().string()});
    INFO("stderr:\n" << joined(r.err) << "stdout:\n" << joined(r.out));
    CHECK(r.code == 2);
    REQUIRE(r.err.size() == 1);
    CHECK(r.err[0].find(dir.path().string()) != std::string::npos);
  }

  SECTION("a database another chatserver is using; the first goes on, and frees it when it stops") {
    const auto db = (dir.path() / "chat.db").string();
    auto first = start_server(db);
    const auto r = run_server_to_exit({"--db", db});
    INFO("stderr:\n" << joined(r.err) << "stdout:\n" << joined(r.out));
    CHECK(r.code == 2);
    REQUIRE(r.err.size() == 1);
    CHECK(r.err[0].find(db) != std::string::npos);
    auto alice = join_ids(first->port(), "alice");
    REQUIRE(alice.c->send_line("SAY still here"));
    CHECK(must_tag(read(*alice.c)).body == "MSG alice still here");
    stop_server(first);
    auto second = start_server(db);
    auto bob = join_ids(second->port(), "bob");
    CHECK(std::any_of(bob.recent.lines.begin(), bob.recent.lines.end(),
                      [](const std::string& l) { return l.find("MSG alice still here") != std::string::npos; }));
    stop_server(second);
  }
}

TEST_CASE("persistence: --db none (and the default with --port 0) keeps nothing across a restart", "[persistence]") {
  const bool explicit_none = GENERATE(true, false);
  INFO((explicit_none ? "--db none" : "no --db, --port 0"));
  // The default database would go under $XDG_STATE_HOME: point it at a directory of ours, and
  // check that nothing is created there.
  TempDir state(temp_prefix);
  const char* old = std::getenv("XDG_STATE_HOME");
  const std::optional<std::string> saved = old ? std::optional<std::string>(old) : std::nullopt;
  ::setenv("XDG_STATE_HOME", state.path().c_str(), 1);
  struct Restore {
    std::optional<std::string> value;
    ~Restore() {
      if (value) {
        ::setenv("XDG_STATE_HOME", value->c_str(), 1);
      } else {
        ::unsetenv("XDG_STATE_HOME");
      }
    }
  } restore{saved};

  const std::string db = explicit_none ? "none" : "";
  auto server = start_server(db);
  auto alice = join_ids(server->port(), "alice");
  for (int i = 0; i < 3; ++i) REQUIRE(alice.c->send_line("SAY forgotten " + std::to_string(i)));
  read_until(*alice.c, tagged_starting("MSG alice forgotten 2"), nullptr, "MSG alice forgotten 2");
  auto bob = join_ids(server->port(), "bob");
  CHECK(bob.recent.count == 4);  // in memory while it runs
  stop_server(server);

  server = start_server(db);
  auto nina = join_ids(server->port(), "nina");
  CHECK(nina.recent.count == 0);
  REQUIRE(nina.c->send_line("HISTORY BEFORE 18446744073709551615 500"));
  const auto kept = read_block(*nina.c, "before");  // only nina's own JOIN
  REQUIRE(kept.count == 1);
  CHECK(must_tag(kept.lines[0]).body == "JOIN nina");
  REQUIRE(nina.c->send_line("SEARCH forgotten"));
  CHECK(read_block(*nina.c, "search").count == 0);
  // No seat survived: the nickname is free, the token unknown.
  auto alice2 = join_ids(server->port(), "alice");
  LineClient c(server->port());
  REQUIRE(c.send_line("RESUME " + alice.token + " 0"));
  CHECK(read(c).starts_with("#"));
  CHECK(read(c) == "ERROR bad-token unknown or already used");
  stop_server(server);
  CHECK(std::filesystem::is_empty(state.path()));
}

TEST_CASE("persistence: --history-keep 100 prunes the database to about 100 events, the newest", "[persistence]") {
  TempDir dir(temp_prefix);
  const auto db = (dir.path() / "chat.db").string();
  const std::vector<std::string> options{"--history-keep", "100", "--max-rate", "0"};
  auto server = start_server(db, options);
  auto w = join_ids(server->port(), "writer");
  constexpr int total = 400;
  for (int i = 0; i < total; ++i) REQUIRE(w.c->send_line("SAY keep-" + std::to_string(i)));
  std::vector<std::string> said;
  read_until(*w.c, tagged_starting("MSG writer keep-" + std::to_string(total - 1)), &said, "the last echo");
  said.erase(std::remove_if(said.begin(), said.end(), [](const std::string& l) { return !parse_tagged(l); }), said.end());
  REQUIRE(said.size() == static_cast<std::size_t>(total));

  // The newest events, a tail of what was said: checked on the running server and after a restart.
  auto check_kept = [&](std::vector<std::string> kept) {
    // Only the writer's lines: the JOIN lines of the writer (pruned first) and of a later reader
    // are events too.
    std::erase_if(kept, [](const std::string& l) { return !must_tag(l).body.starts_with("MSG writer keep-"); });
    INFO(kept.size() << " of the writer's lines kept");
    CHECK(kept.size() >= 90);
    CHECK(kept.size() <= 100);
    REQUIRE(!kept.empty());
    CHECK(kept.back() == said.back());
    const auto from = std::find(said.begin(), said.end(), kept.front());
    REQUIRE(from != said.end());
    CHECK(std::vector<std::string>(from, said.end()) == kept);
  };

  // Pruning runs on the archive thread every few seconds: poll with a generous deadline.
  std::vector<std::string> kept;
  const auto deadline = Clock::now() + 60s;
  for (;;) {
    REQUIRE(w.c->send_line("HISTORY BEFORE 18446744073709551615 500"));
    std::vector<std::string> lines;
    read_until(*w.c, [](const std::string& l) { return l.starts_with("HISTORY before "); }, nullptr, "HISTORY before");
    for (;;) {
      const auto l = read(*w.c);
      if (l == "HISTORY END before") break;
      lines.push_back(l);
    }
    kept = lines;
    if (kept.size() <= 100 || Clock::now() >= deadline) break;
    std::this_thread::sleep_for(250ms);
  }
  check_kept(kept);
  stop_server(server);

  server = start_server(db, options);
  auto reader = join_ids(server->port(), "reader");
  check_kept(page_back_all(*reader.c));
  stop_server(server);
}

namespace {

// A small tmpfs mounted on `dir` for one test: a disk that fills up, or one that is read-only,
// for real (root ignores permissions, not a full or read-only file system). Unmounted at scope
// exit. Root only: `error` says why when it could not be mounted.
class SmallDisk {
 public:
  SmallDisk(const std::filesystem::path& dir, const std::string& options, unsigned long flags = 0) : dir_(dir) {
    std::filesystem::create_directories(dir_);
    if (::geteuid() != 0) {
      error = "not root";
    } else if (::mount("tmpfs", dir_.c_str(), "tmpfs", flags, options.c_str()) != 0) {
      error = std::string("mount tmpfs: ") + std::strerror(errno);
    } else {
      mounted_ = true;
    }
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;
  // More room on the same disk (the files stay).
  bool grow(const std::string& options) {
    return ::mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT, options.c_str()) == 0;
  }
  std::string error;

 private:
  std::filesystem::path dir_;
  bool mounted_ = false;
};

}  // namespace

TEST_CASE("persistence: a full disk keeps the room going, tells it once, and tells it again when history is saved again",
          "[persistence]") {
  TempDir dir(temp_prefix);
  SmallDisk disk(dir.path() / "small", "size=640k,mode=0700");
  if (!disk.error.empty()) {
    WARN("skipped: a full disk needs a tmpfs of the test's own (" << disk.error << ")");
    return;
  }
  auto server = start_server((dir.path() / "small" / "chat.db").string(), {"--max-rate", "0"});
  LineClient watch(server->port());
  REQUIRE(watch.send_line("HELLO watch"));
  REQUIRE(watch.expect_line("WELCOME watch", wait_long));
  LineClient talk(server->port());
  REQUIRE(talk.send_line("HELLO talk"));
  REQUIRE(talk.expect_line("WELCOME talk", wait_long));
  const std::string filler(900, 'x');
  std::vector<std::string> seen;
  const auto log = [&](const std::string& l) {
    seen.push_back(l);
    return l.starts_with("# history is not being saved");
  };
  // Lines until the file system is full and the room is told (640 KiB: a few hundred lines).
  std::optional<std::string> told;
  for (int i = 0; i < 4000 && !told; ++i) {
    REQUIRE(talk.send_line("SAY " + std::to_string(i) + " " + filler));
    if (i % 50 == 49) told = watch.expect_line(log, 300ms);
  }
  if (!told) told = watch.expect_line(log, wait_long);
  INFO("the last lines the watcher read: " << (seen.empty() ? std::string("none") : seen.back()));
  REQUIRE(told);
  CHECK(told->find("full") != std::string::npos);
  CHECK(told->find("small") == std::string::npos);  // the room is not told the server's paths
  // The room goes on: a line said now arrives; the notice came once.
  REQUIRE(talk.send_line("SAY still here"));
  std::vector<std::string> after;
  REQUIRE(watch.expect_line([&](const std::string& l) { after.push_back(l); return l == "MSG talk still here"; },
                            wait_long));
  for (const auto& l : after) CHECK_FALSE(l.starts_with("# history is not being saved"));
  // Room again: the next batch is written, and the room hears which events were not saved.
  REQUIRE(disk.grow("size=64m"));
  REQUIRE(talk.send_line("SAY saved again"));
  const auto back = watch.expect_line(
      [](const std::string& l) { return l.starts_with("# history is being saved again"); }, wait_long);
  REQUIRE(back);
  CHECK(back->find("were not saved") != std::string::npos);
  stop_server(server);
}

TEST_CASE("persistence: a database on a read-only file system: exit 2 and one line naming the file", "[persistence]") {
  TempDir dir(temp_prefix);
  SmallDisk disk(dir.path() / "ro", "size=1m", MS_RDONLY);
  if (!disk.error.empty()) {
    WARN("skipped: a read-only file system needs a tmpfs of the test's own (" << disk.error << ")");
    return;
  }
  const auto db = (dir.path() / "ro" / "chat.db").string();
  const auto run = run_server_to_exit({"--db", db});
  INFO("stderr:\n" << joined(run.err));
  CHECK(run.code == 2);
  REQUIRE(run.err.size() == 1);
  CHECK(run.err[0].find(db) != std::string::npos);
  CHECK(run.err[0].starts_with("chatserver: "));
}
