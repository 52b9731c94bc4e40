// Ids, seat resume and history, in process (docs/protocol.md, "Ids, resume and history"): HELLO
// <nick> ids (TOKEN, the recent history, tagged lines), RESUME after a reset and while the old
// connection is still open (checked against an independent model: what a client with ids that
// stayed connected saw), the token rules (wrong, used, expired, QUIT, malformed), HISTORY BEFORE
// and SEARCH, and what a person on nc sees of all this. A real chat::Server on 127.0.0.1:0,
// clients on real sockets (test_server.hpp).
//
// Threads: only the resume-at-the-seam case runs a second thread (bob's sender, with a
// LineClient of its own that the test thread does not touch meanwhile); every assertion is on
// the test thread.
#include "tests/server/test_server.hpp"
#include "tests/support/tagged_lines.hpp"
#include "tests/support/temp_dir.hpp"

#include "server/archive.hpp"
#include "server/room.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
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

// Longer than io_timeout: a history block or a replay on 2 busy cores (and under the
// sanitizers) may take a while; a passing test never waits for it.
constexpr std::chrono::milliseconds patience{15'000};

bool is_hex32(std::string_view s) {
  return s.size() == 32 && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The next line within `patience`; `log`, when given, gets it too.
std::string read(LineClient& c, std::vector<std::string>* log = nullptr) { return read_line_within(c, patience, log); }

// Reads until a line satisfies `match` (returned); every line read goes to `log` when given.
std::string read_until(LineClient& c, const std::function<bool(const std::string&)>& match,
                       std::vector<std::string>* log = nullptr, std::string_view what = "") {
  return read_until_within(c, patience, match, log, what);
}

std::function<bool(const std::string&)> starting(std::string prefix) {
  return [prefix = std::move(prefix)](const std::string& l) { return l.starts_with(prefix); };
}

HistoryBlock read_block(LineClient& c, const std::string& what) { return read_block_within(c, what, patience); }

void check_token_line(const std::string& line, std::string& token, std::string& window) {
  INFO("TOKEN line: " << line);
  REQUIRE(line.starts_with("TOKEN "));
  const auto rest = line.substr(6);
  const auto space = rest.find(' ');
  REQUIRE(space != std::string::npos);
  token = rest.substr(0, space);
  window = rest.substr(space + 1);
  CHECK(is_hex32(token));
  CHECK(to_u64(window).has_value());
}

IdClient join_ids(std::uint16_t port, const std::string& nick) {
  IdClient m;
  m.c = std::make_unique<LineClient>(port);
  REQUIRE(m.c->send_line("HELLO " + nick + " ids"));
  const auto greeting = read(*m.c);
  INFO("greeting: " << greeting);
  REQUIRE(greeting.starts_with("#"));
  REQUIRE(read(*m.c) == "WELCOME " + nick);
  check_token_line(read(*m.c), m.token, m.window);
  m.users = read(*m.c);
  INFO("USERS line: " << m.users);
  REQUIRE(m.users.starts_with("USERS "));
  CHECK((m.users + " ").find(" " + nick + " ") != std::string::npos);
  m.recent = read_block(*m.c, "recent");
  for (const auto& l : m.recent.lines) m.last_id = std::max(m.last_id, must_tag(l).id);
  return m;
}

// PING, then every line up to its PONG: the highest tagged id among them raises `last_id`.
// Returns the lines read.
std::vector<std::string> drain_ids(IdClient& m) { return drain_ids_within(m, patience); }

// What RESUME answered, up to HISTORY END missed.
struct Resumed {
  std::string nick;
  std::uint64_t away_ms = 0;
  std::uint64_t missed = 0;
  std::string token;
  std::string window;
  std::string users;
  HistoryBlock block;
};

// RESUMED <nick> <ms> <n>, TOKEN, USERS, HISTORY missed n [partial] ... HISTORY END missed.
Resumed read_resumed(LineClient& c) {
  Resumed r;
  const auto line = read(c);
  INFO("RESUME answered: " << line);
  REQUIRE(line.starts_with("RESUMED "));
  std::istringstream words(line.substr(8));
  std::string away, missed, extra;
  words >> r.nick >> away >> missed;
  CHECK(!(words >> extra));
  REQUIRE(to_u64(away).has_value());
  REQUIRE(to_u64(missed).has_value());
  r.away_ms = *to_u64(away);
  r.missed = *to_u64(missed);
  check_token_line(read(c), r.token, r.window);
  r.users = read(c);
  INFO("USERS line: " << r.users);
  REQUIRE(r.users.starts_with("USERS "));
  r.block = read_block(c, "missed");
  CHECK(r.block.count == r.missed);
  return r;
}

// A new connection that sends RESUME as its first line and reads the greeting.
std::unique_ptr<LineClient> connect_resume(std::uint16_t port, const std::string& token, std::uint64_t last) {
  auto c = std::make_unique<LineClient>(port);
  REQUIRE(c->send_line("RESUME " + token + " " + std::to_string(last)));
  const auto greeting = read(*c);
  INFO("greeting: " << greeting);
  REQUIRE(greeting.starts_with("#"));
  return c;
}

// The tagged lines of `lines` whose id is above `after`, in the order given.
std::vector<std::string> tagged_after(const std::vector<std::string>& lines, std::uint64_t after) {
  std::vector<std::string> out;
  for (const auto& l : lines) {
    if (const auto t = parse_tagged(l); t && t->id > after) out.push_back(l);
  }
  return out;
}

void sort_by_id(std::vector<std::string>& lines) {
  std::stable_sort(lines.begin(), lines.end(),
                   [](const std::string& a, const std::string& b) { return must_tag(a).id < must_tag(b).id; });
}

// Where two line sequences first differ, for a failure message.
std::string first_difference(const std::vector<std::string>& got, const std::vector<std::string>& want) {
  std::size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  std::ostringstream out;
  out << "got " << got.size() << " lines, expected " << want.size() << "; first difference at index " << i << "\n";
  const std::size_t from = i >= 3 ? i - 3 : 0;
  out << "got:\n";
  for (std::size_t k = from; k < std::min(got.size(), i + 4); ++k) out << "  [" << k << "] " << got[k] << "\n";
  out << "expected:\n";
  for (std::size_t k = from; k < std::min(want.size(), i + 4); ++k) out << "  [" << k << "] " << want[k] << "\n";
  return out.str();
}

void check_strictly_increasing(const std::vector<std::string>& lines) {
  std::uint64_t prev = 0;
  for (const auto& l : lines) {
    const auto t = must_tag(l);
    INFO("ids out of order at: " << l << " (previous id " << prev << ")");
    CHECK(t.id > prev);
    prev = t.id;
  }
}

// "[12:00:00] x" -> "x"; a line without a stamp as it is (the history separators may or may not
// carry one).
std::string strip_stamp(const std::string& line) { return unstamp(line).value_or(line); }

// TestServer::config() with chatserver's own --history (50): TestServer's default is 0, for the
// tests that compare a stream line by line from the join.
chat::ServerConfig history_config() {
  auto c = TestServer::config();
  c.history = chat::ServerConfig{}.history;
  return c;
}

std::string random_token() {
  std::mt19937_64 rng(std::random_device{}());
  static const char* hex = "0123456789abcdef";
  std::string t;
  for (int i = 0; i < 32; ++i) t += hex[rng() % 16];
  return t;
}

}  // namespace

// ---- joining with ids ------------------------------------------------------------------------

TEST_CASE("resume: HELLO <nick> ids: WELCOME, TOKEN, USERS, the recent history, then tagged live lines, and "
          "without ids nothing changes",
          "[resume][ids]") {
  TestServer server(history_config());
  const auto port = server.port();
  auto bob = connect_and_join(port, "bob");  // no ids: the lines it always had
  REQUIRE(bob->send_line("SAY one"));
  REQUIRE(bob->send_line("SAY two"));
  REQUIRE(bob->send_line("ME waves"));
  CHECK(next_line(*bob) == "MSG bob one");
  CHECK(next_line(*bob) == "MSG bob two");
  CHECK(next_line(*bob) == "ME bob waves");

  const auto before_join = unix_ms_now();
  auto carol = join_ids(port, "carol");
  CHECK(carol.window == "120");
  CHECK(carol.users == "USERS bob carol");
  // Everything said before carol joined, oldest first, tagged; not her own JOIN.
  CHECK(carol.recent.count == 4);
  CHECK_FALSE(carol.recent.partial);
  std::vector<std::string> bodies;
  for (const auto& l : carol.recent.lines) {
    const auto t = must_tag(l);
    bodies.push_back(t.body);
    CHECK(t.ms <= unix_ms_now() + 1000);
    CHECK(t.ms >= before_join - 60'000);
  }
  CHECK(bodies == std::vector<std::string>{"JOIN bob", "MSG bob one", "MSG bob two", "ME bob waves"});

  // bob, without ids, sees carol's JOIN plain, and no tag on anything.
  CHECK(next_line(*bob) == "JOIN carol");
  REQUIRE(bob->send_line("SAY three"));
  REQUIRE(bob->send_line("PRIV carol psst"));
  REQUIRE(bob->send_line("NICK bobby"));
  CHECK(next_line(*bob) == "MSG bob three");
  CHECK(next_line(*bob) == "PRIV bob carol psst");
  CHECK(next_line(*bob) == "NICK bob bobby");

  // carol's live lines are tagged, PRIV included, and the ids only grow from the recent block on.
  std::vector<std::string> live;
  read_until(*carol.c, tagged_starting("NICK bob bobby"), &live, "NICK bob bobby");
  REQUIRE(live.size() == 3);
  CHECK(must_tag(live[0]).body == "MSG bob three");
  CHECK(must_tag(live[1]).body == "PRIV bob carol psst");
  CHECK(must_tag(live[2]).body == "NICK bob bobby");
  auto all = carol.recent.lines;
  all.insert(all.end(), live.begin(), live.end());
  check_strictly_increasing(all);

  // Replies stay untagged: PONG, USERS, ERROR.
  REQUIRE(carol.c->send_line("PING x"));
  CHECK(read(*carol.c) == "PONG x");
  REQUIRE(carol.c->send_line("WHO"));
  CHECK(read(*carol.c) == "USERS bobby carol");
  REQUIRE(carol.c->send_line("PRIV nobody hi"));
  CHECK(read(*carol.c).starts_with("ERROR no-such-nick nobody"));

  // A later joiner without ids gets no TOKEN and no history block: WELCOME, USERS, then live.
  auto dan = connect_and_join(port, "dan");
  REQUIRE(dan->send_line("PING end"));
  CHECK(next_line(*dan) == "PONG end");
  CHECK(must_tag(read(*carol.c)).body == "JOIN dan");
}

TEST_CASE("resume: --history N bounds the recent block and --history 0 sends an empty one", "[resume][ids]") {
  const std::size_t history = GENERATE(std::size_t{0}, std::size_t{3}, chat::ServerConfig{}.history);
  auto config = history_config();
  config.history = history;
  config.max_rate = 0;
  TestServer server(config);
  auto bob = join_ids(server.port(), "bob");
  CHECK(bob.recent.count == 0);
  std::vector<std::string> said;
  const int lines = static_cast<int>(history) + 6;
  for (int i = 0; i < lines; ++i) REQUIRE(bob.c->send_line("SAY n" + std::to_string(i)));
  for (int i = 0; i < lines; ++i) said.push_back(read(*bob.c));
  auto carol = join_ids(server.port(), "carol");
  INFO("--history " << history);
  CHECK(carol.recent.count == history);
  // The newest `history` events before the join, exactly as bob saw them.
  const std::vector<std::string> want(said.end() - static_cast<long>(history), said.end());
  CHECK(carol.recent.lines == want);
}

// ---- resuming a seat -------------------------------------------------------------------------

// The model: obs joined first with ids and stays connected; what it reads is the room's order.
// alice's replay plus her live stream must be exactly obs's tagged lines after alice's last id
// (her own LEAVE included: it is an event after her last id), without her own BACK (like one's
// own JOIN, it is where her new stream starts) and
// without the private messages between others, plus the private messages to or from alice
// (their ids as bob, who has ids, saw them), merged by id.
TEST_CASE("resume: after a reset, RESUME gives the seat back with exactly the missed events, then live lines "
          "with no gap and no duplicate at the seam",
          "[resume]") {
  auto config = history_config();
  config.max_rate = 0;  // bob's sender goes faster than 20 lines/s
  TestServer server(config);
  const auto port = server.port();

  auto obs = join_ids(port, "obs");
  std::vector<std::string> obs_log;  // every line obs reads from its join on
  auto alice = join_ids(port, "alice");
  auto bob = join_ids(port, "bob");
  auto pat = connect_and_join(port, "pat");  // no ids
  auto txt = connect_text(port, "txt");      // a person on nc
  read_until(*obs.c, tagged_starting("JOIN txt"), &obs_log, "JOIN txt");

  for (int i = 1; i <= 3; ++i) REQUIRE(bob.c->send_line("SAY before-" + std::to_string(i)));
  read_until(*obs.c, tagged_starting("MSG bob before-3"), &obs_log, "MSG bob before-3");
  drain_ids(alice);  // alice has read everything up to before-3
  const std::uint64_t last = alice.last_id;
  REQUIRE(last > 0);

  // Lines that reach alice's socket but that she never reads: she must get them on resuming.
  for (int i = 1; i <= 3; ++i) REQUIRE(bob.c->send_line("SAY inflight-" + std::to_string(i)));
  read_until(*obs.c, tagged_starting("MSG bob inflight-3"), &obs_log, "MSG bob inflight-3");

  const auto t_reset = Clock::now();
  alice.c->close_with_reset();
  const auto leave = read_until(*obs.c, tagged_starting("LEAVE alice "), &obs_log, "LEAVE alice");
  const auto t_leave_seen = Clock::now();
  INFO("obs saw: " << leave);
  CHECK(must_tag(leave).body.starts_with("LEAVE alice reset "));
  CHECK(expect_prefix(*pat, "LEAVE alice ").starts_with("LEAVE alice reset "));

  // While she is away: messages, an action, a rename, someone joining and leaving, a private
  // message between two others (an id alice never sees) and two to her.
  REQUIRE(bob.c->send_line("SAY away-1"));
  REQUIRE(bob.c->send_line("ME looks around"));
  REQUIRE(bob.c->send_line("PRIV obs between us"));
  REQUIRE(bob.c->send_line("PRIV alice psst"));  // held seat: accepted, kept for her
  std::vector<std::string> privs_to_alice;
  privs_to_alice.push_back(read_until(*bob.c, tagged_starting("PRIV bob alice psst"), nullptr, "PRIV bob alice psst"));
  {
    auto dave = connect_and_join(port, "dave");
    REQUIRE(dave->send_line("QUIT see you"));
    expect_prefix(*dave, "BYE quit");
  }
  REQUIRE(bob.c->send_line("NICK bobby"));
  REQUIRE(bob.c->send_line("SAY away-2"));
  REQUIRE(bob.c->send_line("PRIV ALICE psst again"));  // found ignoring case
  privs_to_alice.push_back(
      read_until(*bob.c, tagged_starting("PRIV bobby alice psst again"), nullptr, "PRIV bobby alice psst again"));
  read_until(*obs.c, tagged_starting("MSG bobby away-2"), &obs_log, "MSG bobby away-2");

  // Her nickname is held: not for a HELLO (with or without ids, any case), not for a NICK.
  {
    auto intruder = connect_client(port);
    REQUIRE(intruder->send_line("HELLO alice"));
    CHECK(next_line(*intruder) == "ERROR nick-held alice");
    REQUIRE(intruder->send_line("HELLO Alice ids"));
    CHECK(next_line(*intruder).starts_with("ERROR nick-held "));
    REQUIRE(pat->send_line("NICK alice"));
    CHECK(expect_prefix(*pat, "ERROR ") == "ERROR nick-held alice");
    // A text-mode person typing the nickname is refused too.
    auto person = connect_client(port);
    REQUIRE(person->send_line("alice"));
    const auto refusal = next_line(*person);
    INFO("text-mode refusal: " << refusal);
    CHECK(refusal.find("alice") != std::string::npos);
    CHECK_FALSE(refusal.find("welcome") != std::string::npos);
  }

  // bob keeps talking from another thread while alice resumes.
  constexpr int live_lines = 500;
  std::atomic<bool> sender_ok{true};
  std::jthread sender([&c = *bob.c, &sender_ok] {
    for (int i = 0; i < live_lines; ++i) {
      if (!c.send_line("SAY live-" + std::to_string(i))) {
        sender_ok = false;
        return;
      }
      std::this_thread::sleep_for(3ms);  // a steady pace, so that lines are said all through the resume
    }
  });
  read_until(*obs.c, tagged_starting("MSG bobby live-20"), &obs_log, "MSG bobby live-20");

  const auto t_resume = Clock::now();
  auto alice2 = connect_resume(port, alice.token, last);
  const auto r = read_resumed(*alice2);
  const auto t_resumed = Clock::now();
  sender.join();
  REQUIRE(sender_ok);

  CHECK(r.nick == "alice");
  CHECK(r.token != alice.token);
  CHECK(r.window == "120");
  CHECK_FALSE(r.block.partial);
  CHECK(r.users == "USERS alice bobby obs pat txt");
  // Away from the drop (before obs saw the LEAVE) to the RESUME (after it was sent).
  const auto lower = std::chrono::duration_cast<std::chrono::milliseconds>(t_resume - t_leave_seen).count();
  const auto upper = std::chrono::duration_cast<std::chrono::milliseconds>(t_resumed - t_reset).count();
  INFO("away " << r.away_ms << " ms; expected between " << lower << " and " << upper);
  CHECK(static_cast<std::int64_t>(r.away_ms) + 20 >= lower);
  CHECK(static_cast<std::int64_t>(r.away_ms) <= upper + 20);

  // Two more private messages live, then an end marker.
  REQUIRE(bob.c->send_line("PRIV alice welcome back"));
  privs_to_alice.push_back(
      read_until(*bob.c, tagged_starting("PRIV bobby alice welcome back"), nullptr, "PRIV bobby alice welcome back"));
  REQUIRE(bob.c->send_line("SAY the-end"));
  read_until(*obs.c, tagged_starting("MSG bobby the-end"), &obs_log, "MSG bobby the-end");
  std::vector<std::string> alice_live;
  read_until(*alice2, tagged_starting("MSG bobby the-end"), &alice_live, "MSG bobby the-end");

  // The independent model.
  std::vector<std::string> model;
  std::string back_line;
  for (const auto& l : tagged_after(obs_log, last)) {
    const auto t = must_tag(l);
    if (t.body.starts_with("BACK alice ")) {
      back_line = t.body;
      continue;
    }
    if (t.body.starts_with("PRIV ")) continue;  // between obs and bob: not alice's
    model.push_back(l);
  }
  model.insert(model.end(), privs_to_alice.begin(), privs_to_alice.end());
  sort_by_id(model);

  std::vector<std::string> alice_stream = r.block.lines;
  for (const auto& l : alice_live) {
    if (parse_tagged(l)) alice_stream.push_back(l);
  }
  INFO(first_difference(alice_stream, model));
  CHECK(alice_stream == model);
  check_strictly_increasing(alice_stream);
  // Every replayed event is after her last id; the inflight lines come first.
  REQUIRE(!r.block.lines.empty());
  CHECK(must_tag(r.block.lines.front()).body == "MSG bob inflight-1");
  CHECK(must_tag(r.block.lines.front()).id > last);

  // The seam really was crossed by live traffic: bob's lines on both sides of HISTORY END.
  auto count_live = [](const std::vector<std::string>& lines) {
    return std::count_if(lines.begin(), lines.end(), [](const std::string& l) {
      const auto t = parse_tagged(l);
      return t && t->body.starts_with("MSG bobby live-");
    });
  };
  CHECK(count_live(r.block.lines) > 0);
  CHECK(count_live(alice_live) > 0);
  CHECK(count_live(alice_stream) == live_lines);

  // The others: BACK with ids (with the same time away), JOIN without, "is back" on nc.
  CHECK(back_line == "BACK alice " + std::to_string(r.away_ms));
  CHECK(expect_prefix(*pat, "JOIN alice") == "JOIN alice");
  std::string seen;
  const auto back_text = txt->expect_line("alice is back", patience, &seen);
  INFO("text-mode lines:\n" << seen);
  REQUIRE(back_text.has_value());
  CHECK(strip_stamp(*back_text).starts_with("*** alice is back (away "));

  // She is a member again under her nickname.
  REQUIRE(alice2->send_line("SAY I am back"));
  read_until(*obs.c, tagged_starting("MSG alice I am back"), &obs_log, "MSG alice I am back");
  REQUIRE(alice2->send_line("RESUME " + r.token + " 0"));
  CHECK(read_until(*alice2, starting("ERROR "), nullptr, "ERROR") == "ERROR bad-args already joined as alice");
}

TEST_CASE("resume: while the old connection is still open, RESUME ends it (LEAVE closed), then BACK", "[resume]") {
  TestServer server(history_config());
  const auto port = server.port();
  auto obs = join_ids(port, "obs");
  std::vector<std::string> obs_log;
  auto alice = join_ids(port, "alice");
  auto bob = join_ids(port, "bob");
  auto pat = connect_and_join(port, "pat");
  read_until(*obs.c, tagged_starting("JOIN pat"), &obs_log, "JOIN pat");

  REQUIRE(bob.c->send_line("SAY m1"));
  read_until(*obs.c, tagged_starting("MSG bob m1"), &obs_log, "MSG bob m1");
  drain_ids(alice);
  const auto last = alice.last_id;
  REQUIRE(bob.c->send_line("SAY m2"));  // reaches the old connection, which will never read it
  read_until(*obs.c, tagged_starting("MSG bob m2"), &obs_log, "MSG bob m2");

  // The "phone changed networks": a new connection resumes; the server never saw the old one drop.
  auto alice2 = connect_resume(port, alice.token, last);
  const auto r = read_resumed(*alice2);
  CHECK(r.nick == "alice");
  CHECK_FALSE(r.block.partial);
  CHECK(r.users == "USERS alice bob obs pat");
  {
    INFO("the old connection was not ended");
    CHECK(alice.c->wait_closed(patience));
  }

  const auto leave = read_until(*obs.c, tagged_starting("LEAVE alice "), &obs_log, "LEAVE alice");
  INFO("LEAVE line: " << leave);
  CHECK(must_tag(leave).body.starts_with("LEAVE alice closed "));
  CHECK(leave.find("replaced by a resumed connection") != std::string::npos);
  const auto back = read_until(*obs.c, tagged_starting("BACK alice "), &obs_log, "BACK alice");
  CHECK(must_tag(back).id > must_tag(leave).id);
  CHECK(must_tag(back).body == "BACK alice " + std::to_string(r.away_ms));
  CHECK(expect_prefix(*pat, "LEAVE alice ").starts_with("LEAVE alice closed "));
  CHECK(next_line(*pat) == "JOIN alice");

  // The replay: m2 and the LEAVE of the old connection, as obs saw them.
  REQUIRE(bob.c->send_line("SAY m3"));
  read_until(*obs.c, tagged_starting("MSG bob m3"), &obs_log, "MSG bob m3");
  std::vector<std::string> alice_live;
  read_until(*alice2, tagged_starting("MSG bob m3"), &alice_live, "MSG bob m3");
  std::vector<std::string> model;
  for (const auto& l : tagged_after(obs_log, last)) {
    if (!must_tag(l).body.starts_with("BACK alice ")) model.push_back(l);
  }
  auto stream = r.block.lines;
  for (const auto& l : alice_live) {
    if (parse_tagged(l)) stream.push_back(l);
  }
  INFO(first_difference(stream, model));
  CHECK(stream == model);
}

// ---- tokens ----------------------------------------------------------------------------------

TEST_CASE("resume: token refusals (wrong, already used, after QUIT), malformed RESUME, and HELLO afresh afterwards",
          "[resume][tokens]") {
  TestServer server(history_config());
  const auto port = server.port();
  auto obs = join_ids(port, "obs");

  SECTION("a wrong token: bad-token, and the connection may HELLO (without ids: no TOKEN)") {
    auto c = connect_resume(port, random_token(), 0);
    CHECK(next_line(*c) == "ERROR bad-token unknown or already used");
    REQUIRE(c->send_line("HELLO carol"));
    CHECK(next_line(*c) == "WELCOME carol");
    CHECK(next_line(*c) == "USERS carol obs");
    REQUIRE(c->send_line("SAY plain"));
    CHECK(next_line(*c) == "MSG carol plain");
  }

  SECTION("a token that was used: bad-token already used, and the seat's holder is not disturbed") {
    auto alice = join_ids(port, "alice");
    drain_ids(alice);
    alice.c->close_with_reset();
    read_until(*obs.c, tagged_starting("LEAVE alice reset "), nullptr, "LEAVE alice reset");
    auto alice2 = connect_resume(port, alice.token, alice.last_id);
    const auto r = read_resumed(*alice2);
    CHECK(r.nick == "alice");
    read_until(*obs.c, tagged_starting("BACK alice "), nullptr, "BACK alice");

    // Someone replays the old token (from a copy of her state, a log...).
    auto thief = connect_resume(port, alice.token, 0);
    const auto refusal = next_line(*thief);
    INFO(refusal);
    CHECK(refusal.starts_with("ERROR bad-token "));
    CHECK(refusal.find("already used") != std::string::npos);
    // alice is still connected and still alice: no LEAVE, her lines go through.
    REQUIRE(alice2->send_line("SAY still here"));
    std::vector<std::string> between;
    read_until(*obs.c, tagged_starting("MSG alice still here"), &between, "MSG alice still here");
    for (const auto& l : between) CHECK_FALSE(l.find("LEAVE alice") != std::string::npos);
    // The refused connection may join afresh, with ids.
    REQUIRE(thief->send_line("HELLO thief ids"));
    CHECK(next_line(*thief) == "WELCOME thief");
    CHECK(next_line(*thief).starts_with("TOKEN "));

    // The new token works once in its turn.
    read_until(*alice2, tagged_starting("JOIN thief"), nullptr, "JOIN thief");
    alice2->close_with_reset();
    read_until(*obs.c, tagged_starting("LEAVE alice reset "), nullptr, "LEAVE alice reset");
    auto alice3 = connect_resume(port, r.token, 0);
    const auto r3 = read_resumed(*alice3);
    CHECK(r3.nick == "alice");
    auto again = connect_resume(port, r.token, 0);
    CHECK(next_line(*again).starts_with("ERROR bad-token "));
  }

  SECTION("QUIT gives the seat up: the nickname is free at once, the token is dead") {
    auto alice = join_ids(port, "alice");
    REQUIRE(alice.c->send_line("QUIT bye"));
    expect_prefix(*alice.c, "BYE quit");
    read_until(*obs.c, tagged_starting("LEAVE alice quit"), nullptr, "LEAVE alice quit");
    auto other = connect_and_join(port, "alice");  // checks WELCOME alice
    auto c = connect_resume(port, alice.token, 0);
    CHECK(next_line(*c) == "ERROR bad-token unknown or already used");
  }

  SECTION("malformed RESUME: bad-args, before and after joining; then HELLO works") {
    const std::string token = random_token();
    std::string upper = token;
    std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
    auto c = std::make_unique<LineClient>(port);
    REQUIRE(c->send_line("RESUME"));
    CHECK(next_line(*c).starts_with("#"));
    CHECK(next_line(*c) == "ERROR bad-args usage: RESUME <token> <last id seen>");
    for (const std::string& line : std::vector<std::string>{"RESUME " + token, "RESUME " + token + " x", "RESUME " + token + " -1", "RESUME " + token + " 1 2",
          "RESUME abc 5", "RESUME " + token.substr(0, 31) + " 5", "RESUME " + upper + " 5",
          "RESUME " + token + "g 5", "resume " + token, "RESUME  " + token + " 5"}) {
      INFO(line);
      REQUIRE(c->send_line(line));
      CHECK(next_line(*c) == "ERROR bad-args usage: RESUME <token> <last id seen>");
    }
    REQUIRE(c->send_line("HELLO carol ids"));
    CHECK(next_line(*c) == "WELCOME carol");
    CHECK(next_line(*c).starts_with("TOKEN "));
    CHECK(next_line(*c) == "USERS carol obs");
    read_block(*c, "recent");
    REQUIRE(c->send_line("RESUME " + token + " 5"));
    CHECK(next_line(*c) == "ERROR bad-args already joined as carol");
    REQUIRE(c->send_line("RESUME"));
    CHECK(next_line(*c).starts_with("ERROR bad-args "));
  }
}

TEST_CASE("resume: past --resume-window the token is refused as expired and the nickname is free again",
          "[resume][tokens]") {
  auto config = history_config();
  config.resume_window = std::chrono::milliseconds(300);
  TestServer server(config);
  const auto port = server.port();
  auto obs = join_ids(port, "obs");
  auto alice = join_ids(port, "alice");
  CHECK(to_u64(alice.window).has_value());  // whole seconds
  drain_ids(alice);
  alice.c->close_with_reset();
  read_until(*obs.c, tagged_starting("LEAVE alice reset "), nullptr, "LEAVE alice reset");
  // Time must pass here, and nothing observable says when the window is over without ending
  // the seat itself (a HELLO alice would): wait it out, with room to spare.
  std::this_thread::sleep_for(config.resume_window + 500ms);

  SECTION("the RESUME is the first thing the room sees after the window") {}
  SECTION("the room moved on meanwhile: someone joined and left") {
    auto passer = connect_and_join(port, "passer");
    REQUIRE(passer->send_line("QUIT"));
    expect_prefix(*passer, "BYE quit");
    read_until(*obs.c, tagged_starting("LEAVE passer quit"), nullptr, "LEAVE passer quit");
  }

  auto c = connect_resume(port, alice.token, alice.last_id);
  CHECK(next_line(*c) == "ERROR bad-token expired");
  // After the refusal, the same connection joins afresh, as alice.
  REQUIRE(c->send_line("HELLO alice ids"));
  CHECK(next_line(*c) == "WELCOME alice");
  CHECK(next_line(*c).starts_with("TOKEN "));
  CHECK(next_line(*c) == "USERS alice obs");
  read_block(*c, "recent");
  // And the expired token stays refused.
  auto again = connect_resume(port, alice.token, alice.last_id);
  CHECK(next_line(*again).starts_with("ERROR bad-token "));
}

TEST_CASE("resume: --resume-window 0 holds no seat", "[resume][tokens]") {
  auto config = history_config();
  config.resume_window = std::chrono::milliseconds(0);
  TestServer server(config);
  const auto port = server.port();
  auto obs = join_ids(port, "obs");
  auto alice = join_ids(port, "alice");
  alice.c->close_with_reset();
  read_until(*obs.c, tagged_starting("LEAVE alice reset "), nullptr, "LEAVE alice reset");
  auto other = connect_and_join(port, "alice");
  auto c = connect_resume(port, alice.token, 0);
  CHECK(next_line(*c).starts_with("ERROR bad-token "));
}

TEST_CASE("resume: flood gives the seat up at once, too-slow holds it like any other drop", "[resume][tokens]") {
  SECTION("flood: the nickname is free and the token refused") {
    auto config = history_config();
    config.max_rate = 5;
    config.max_burst = 5;
    config.flood_grace = std::chrono::milliseconds(300);
    TestServer server(config);
    const auto port = server.port();
    auto obs = join_ids(port, "obs");
    auto alice = join_ids(port, "alice");
    for (int i = 0; i < 200; ++i) REQUIRE(alice.c->send_line("SAY flood " + std::to_string(i)));
    read_until(*obs.c, tagged_starting("LEAVE alice flood"), nullptr, "LEAVE alice flood");
    auto other = connect_and_join(port, "alice");  // WELCOME alice: nothing held
    auto c = connect_resume(port, alice.token, alice.last_id);
    CHECK(next_line(*c).starts_with("ERROR bad-token "));
  }
  SECTION("too-slow: the nickname is held and the seat resumes") {
    auto config = history_config();
    config.max_rate = 0;
    config.send_queue = 64 * 1024;
    config.send_timeout = std::chrono::milliseconds(2000);
    TestServer server(config);
    const auto port = server.port();
    auto obs = join_ids(port, "obs");
    auto alice = join_ids(port, "alice");
    // alice stops reading, with a receive buffer too small to hide the room's traffic.
    alice.c->socket().set_option(asio::socket_base::receive_buffer_size(4096));
    auto bob = connect_and_join(port, "bob");
    const std::string filler(900, 'y');
    bool left = false;
    for (int i = 0; i < 20'000 && !left; ++i) {
      REQUIRE(bob->send_line("SAY " + std::to_string(i) + " " + filler));
      if (i % 100 == 99) left = obs.c->expect_line(tagged_starting("LEAVE alice too-slow"), 200ms).has_value();
    }
    if (!left) read_until(*obs.c, tagged_starting("LEAVE alice too-slow"), nullptr, "LEAVE alice too-slow");
    auto taker = std::make_unique<LineClient>(port);
    REQUIRE(taker->send_line("HELLO alice"));
    CHECK(taker->expect_line("ERROR nick-held alice", patience));
    auto c = connect_resume(port, alice.token, alice.last_id);
    CHECK(read_until(*c, starting("RESUMED "), nullptr, "RESUMED").starts_with("RESUMED alice "));
  }
}

// ---- paging back and searching ---------------------------------------------------------------

TEST_CASE("resume: HISTORY BEFORE <id> <n> pages back through tagged events, with or without ids", "[resume][history]") {
  auto config = history_config();
  config.max_rate = 0;
  TestServer server(config);
  const auto port = server.port();
  auto bob = join_ids(port, "bob");  // the first event is bob's JOIN, which he does not see
  std::vector<std::string> said;     // bob's tagged lines, in order
  for (int i = 0; i < 10; ++i) REQUIRE(bob.c->send_line("SAY line-" + std::to_string(i)));
  for (int i = 0; i < 10; ++i) said.push_back(read(*bob.c));
  for (int i = 0; i < 10; ++i) CHECK(must_tag(said[static_cast<std::size_t>(i)]).body == "MSG bob line-" + std::to_string(i));

  SECTION("the n events just before the id, oldest first") {
    REQUIRE(bob.c->send_line("HISTORY BEFORE " + std::to_string(must_tag(said[9]).id) + " 3"));
    const auto b = read_block(*bob.c, "before");
    CHECK(b.lines == std::vector<std::string>(said.begin() + 6, said.begin() + 9));
  }
  SECTION("fewer than n: the start of what is kept") {
    REQUIRE(bob.c->send_line("HISTORY BEFORE " + std::to_string(must_tag(said[0]).id) + " 50"));
    const auto b = read_block(*bob.c, "before");
    REQUIRE(b.count == 1);
    CHECK(must_tag(b.lines[0]).body == "JOIN bob");
    REQUIRE(bob.c->send_line("HISTORY BEFORE " + std::to_string(must_tag(b.lines[0]).id) + " 50"));
    CHECK(read_block(*bob.c, "before").count == 0);
    REQUIRE(bob.c->send_line("HISTORY BEFORE 1 5"));
    CHECK(read_block(*bob.c, "before").count == 0);
  }
  SECTION("a client without ids gets the answer tagged too; private messages are not in it") {
    auto pat = connect_and_join(port, "pat");
    REQUIRE(bob.c->send_line("PRIV pat secret"));
    said.push_back(read_until(*bob.c, tagged_starting("JOIN pat"), nullptr, "JOIN pat"));
    CHECK(next_line(*pat) == "PRIV bob pat secret");
    REQUIRE(pat->send_line("HISTORY BEFORE 18446744073709551615 500"));
    const auto b = read_block(*pat, "before");
    REQUIRE(b.count == 12);
    CHECK(must_tag(b.lines[0]).body == "JOIN bob");
    CHECK(std::vector<std::string>(b.lines.begin() + 1, b.lines.end()) == said);
    check_strictly_increasing(b.lines);
  }
  SECTION("at most 500 lines per answer") {
    for (int i = 10; i < 520; ++i) REQUIRE(bob.c->send_line("SAY line-" + std::to_string(i)));
    read_until(*bob.c, tagged_starting("MSG bob line-519"), nullptr, "MSG bob line-519");
    REQUIRE(bob.c->send_line("HISTORY BEFORE 18446744073709551615 100000"));
    const auto b = read_block(*bob.c, "before");
    REQUIRE(b.count == 500);
    CHECK(must_tag(b.lines.front()).body == "MSG bob line-20");
    CHECK(must_tag(b.lines.back()).body == "MSG bob line-519");
    check_strictly_increasing(b.lines);
  }
  SECTION("bad-args, and not-joined before joining") {
    for (const char* line : {"HISTORY", "HISTORY BEFORE", "HISTORY BEFORE 5", "HISTORY BEFORE x 3",
                             "HISTORY BEFORE 5 0", "HISTORY AFTER 5 3", "HISTORY BEFORE 5 -1", "HISTORY BEFORE -5 3"}) {
      INFO(line);
      REQUIRE(bob.c->send_line(line));
      CHECK(read_until(*bob.c, starting("ERROR "), nullptr, "ERROR").starts_with("ERROR bad-args usage: HISTORY BEFORE"));
    }
    auto c = connect_client(port);
    REQUIRE(c->send_line("HELLO"));  // protocol mode, refused (bad-nick)
    CHECK(next_line(*c).starts_with("ERROR "));
    REQUIRE(c->send_line("HISTORY BEFORE 5 3"));
    CHECK(next_line(*c).starts_with("ERROR not-joined "));
    REQUIRE(c->send_line("SEARCH hello"));
    CHECK(next_line(*c).starts_with("ERROR not-joined "));
  }
}

TEST_CASE("resume: SEARCH <words> finds messages and actions holding every word, newest 50, oldest first, and "
          "FTS syntax in the words is only words",
          "[resume][search]") {
  // In memory (--db none: substrings) and in SQLite (FTS5: whole words); the cases below mean
  // the same in both.
  const bool on_disk = GENERATE(false, true);
  TempDir dir("chat_resume_tests");
  auto config = history_config();
  config.max_rate = 0;
  if (on_disk) config.db = (dir.path() / "chat.db").string();
  TestServer server(config);
  const auto port = server.port();
  INFO((on_disk ? "--db " + config.db : std::string("--db none")));
  auto bob = join_ids(port, "bob");
  auto quick = connect_and_join(port, "quick");  // a JOIN holding the word: not a message, not found
  for (const char* line : {"SAY the quick brown fox", "SAY a lazy dog sleeps", "SAY Quick thinking wins",
                           "ME likes the QUICK fox", "SAY nothing to see"}) {
    REQUIRE(bob.c->send_line(line));
  }
  std::vector<std::string> said;
  read_until(*bob.c, tagged_starting("MSG bob nothing to see"), &said, "MSG bob nothing to see");
  said = tagged_after(said, 0);
  REQUIRE(said.size() == 6);  // JOIN quick, 4 messages, 1 action
  const auto& fox = said[1];
  const auto& dog = said[2];
  const auto& thinking = said[3];
  const auto& likes = said[4];

  auto search = [&](LineClient& c, const std::string& words) {
    REQUIRE(c.send_line("SEARCH " + words));
    return read_block(c, "search");
  };
  auto check_all = [&](bool written) {
    INFO((written ? "after the batch was written" : "right after the lines were said"));
    CHECK(search(*bob.c, "quick").lines == std::vector<std::string>{fox, thinking, likes});
    CHECK(search(*bob.c, "quick fox").lines == std::vector<std::string>{fox, likes});
    CHECK(search(*bob.c, "FOX   Quick").lines == std::vector<std::string>{fox, likes});
    CHECK(search(*bob.c, "dog").lines == std::vector<std::string>{dog});
    CHECK(search(*bob.c, "zebra").count == 0);
    CHECK(search(*bob.c, "brown lazy").count == 0);
    // Without ids: the same answer, tagged.
    drain(*quick);  // the room's lines so far
    CHECK(search(*quick, "quick fox").lines == std::vector<std::string>{fox, likes});
  };
  check_all(false);
  if (on_disk) {
    // Once the archive thread has written its batch, the answer comes from SQLite.
    const auto deadline = Clock::now() + patience;
    while (server.server().room().archive().counters().queued > 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
    REQUIRE(server.server().room().archive().counters().queued == 0);
    CHECK(server.server().room().archive().counters().written >= 6);
    check_all(true);
  }

  // Quotes and what FTS5 would read as operators: a well-formed answer, never an error.
  for (const std::string& words :
       {std::string("\"quick"), std::string("\"quick\""), std::string("quick OR dog"), std::string("quick AND fox"),
        std::string("NOT dog"), std::string("fox*"), std::string("NEAR(quick fox)"), std::string("-dog"),
        std::string("^quick"), std::string("text:quick"), std::string("quick\"\""), std::string("("),
        std::string(")"), std::string("'"), std::string("*"), std::string("\""), std::string(":"),
        std::string("a\"b"), std::string("{quick}"), std::string("quick + fox"), std::string("'; DROP TABLE events; --"),
        std::string("%"), std::string("_"), std::string("\\"), std::string("caf\xc3\xa9")}) {
    INFO("SEARCH " << words);
    REQUIRE(bob.c->send_line("SEARCH " + words));
    const auto header = read(*bob.c);
    INFO("answer: " << header);
    REQUIRE(header.starts_with("HISTORY search "));
    const auto n = to_u64(header.substr(std::string("HISTORY search ").size()));
    REQUIRE(n.has_value());
    for (std::uint64_t i = 0; i < *n; ++i) {
      const auto t = must_tag(read(*bob.c));
      CHECK((t.body.starts_with("MSG ") || t.body.starts_with("ME ")));
    }
    CHECK(read(*bob.c) == "HISTORY END search");
  }
  // Still answering, and still finding.
  CHECK(search(*bob.c, "dog").lines == std::vector<std::string>{dog});

  // The newest 50, oldest first.
  for (int i = 0; i < 60; ++i) REQUIRE(bob.c->send_line("SAY many-" + std::to_string(i)));
  std::vector<std::string> many;
  read_until(*bob.c, tagged_starting("MSG bob many-59"), &many, "MSG bob many-59");
  many = tagged_after(many, 0);
  REQUIRE(many.size() == 60);
  CHECK(search(*bob.c, "many").lines == std::vector<std::string>(many.begin() + 10, many.end()));

  REQUIRE(bob.c->send_line("SEARCH"));
  CHECK(read(*bob.c) == "ERROR bad-args usage: SEARCH <words>");
}

// ---- text mode -------------------------------------------------------------------------------

TEST_CASE("resume: text mode: a person joining sees the earlier messages between separators, and /search", "[resume][text]") {
  TestServer server(history_config());
  const auto port = server.port();

  // The first person in an empty room: no block.
  auto first = connect_text(port, "first");
  auto bob = connect_and_join(port, "bob");
  CHECK(next_text(*first) == "*** bob joined (2 online)");
  REQUIRE(bob->send_line("SAY alpha one"));
  REQUIRE(bob->send_line("SAY beta two"));
  REQUIRE(bob->send_line("ME gamma three"));
  CHECK(next_line(*bob) == "MSG bob alpha one");
  CHECK(next_line(*bob) == "MSG bob beta two");
  CHECK(next_line(*bob) == "ME bob gamma three");
  CHECK(next_text(*first) == "<bob> alpha one");

  auto txt = connect_text(port, "txt");
  CHECK(strip_stamp(next_line(*txt)) == "--- earlier messages (5) ---");
  CHECK(next_text(*txt) == "*** first joined");
  CHECK(next_text(*txt) == "*** bob joined");
  CHECK(next_text(*txt) == "<bob> alpha one");
  CHECK(next_text(*txt) == "<bob> beta two");
  CHECK(next_text(*txt) == "* bob gamma three");
  CHECK(strip_stamp(next_line(*txt)) == "--- now ---");
  REQUIRE(bob->send_line("SAY delta four"));
  CHECK(next_text(*txt) == "<bob> delta four");

  REQUIRE(txt->send_line("/search BETA"));
  CHECK(strip_stamp(next_line(*txt)) == "--- found (1) ---");
  CHECK(next_text(*txt) == "<bob> beta two");
  CHECK(strip_stamp(next_line(*txt)) == "--- end of search ---");
  REQUIRE(txt->send_line("/search \"quoted\" OR NEAR(x*)"));
  CHECK(strip_stamp(next_line(*txt)) == "--- found (0) ---");
  CHECK(strip_stamp(next_line(*txt)) == "--- end of search ---");
  REQUIRE(txt->send_line("/search"));
  const auto refusal = next_text(*txt);
  INFO(refusal);
  CHECK(refusal.starts_with("*** "));
  // A plain line is still a message.
  REQUIRE(txt->send_line("hello all"));
  CHECK(next_text(*txt) == "<txt> hello all");
}

TEST_CASE("resume: text mode: --history bounds what a person is shown on joining", "[resume][text]") {
  auto config = history_config();
  config.history = 2;
  TestServer server(config);
  auto bob = connect_and_join(server.port(), "bob");
  for (const char* l : {"SAY one", "SAY two", "SAY three"}) REQUIRE(bob->send_line(l));
  for (int i = 0; i < 3; ++i) next_line(*bob);
  auto txt = connect_text(server.port(), "txt");
  CHECK(strip_stamp(next_line(*txt)) == "--- earlier messages (2) ---");
  CHECK(next_text(*txt) == "<bob> two");
  CHECK(next_text(*txt) == "<bob> three");
  CHECK(strip_stamp(next_line(*txt)) == "--- now ---");
}
