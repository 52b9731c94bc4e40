// In-process tests of the Link's ids, resume and history logic (client/link.hpp; the spec is
// docs/protocol.md, "Ids, resume and history") against a FakeServer scripted on the test thread:
// what the Link sends on the wire (HELLO <nick> ids, RESUME <token> <last id>) and the events it
// reports (joined / resumed, lines marked with their history block, repeated ids dropped).
//
// Threads: the test thread plays the server and drains the Link's events; the Link's own network
// thread does the rest. Every wait has a deadline (kWait); nothing sleeps.
#include "client/link.hpp"
#include "tests/client/fake_server.hpp"

#include <catch2/catch.hpp>

#include <poll.h>

#include <functional>

using namespace std::chrono_literals;
using chat::Event;
using chat::History;
using chat::Link;
using chat::LinkEvent;
using chat::test::FakeServer;
using chat::test::LineClient;
using chat::test::tagged;
using chat::test::test_token;

namespace {

constexpr auto kWait = 5000ms;

chat::LinkOptions options_for(std::uint16_t port) {
  chat::LinkOptions o;
  o.port = port;
  o.nick = "alice";
  o.ping_interval = chat::Millis::zero();  // no heartbeat: the fake server never answers PINGs
  o.rtt_interval = chat::Millis::zero();
  o.backoff.initial = chat::Millis{50};  // reconnect at once
  o.backoff.cap = chat::Millis{200};
  o.backoff.jitter = 0;
  return o;
}

// The Link's events as they come, drained on the test thread.
class Events {
 public:
  explicit Events(Link& link) : link_(link) {}

  // Waits for the next event (after those already returned) that `match` accepts; the ones
  // skipped stay in all(). nullopt after `timeout`.
  std::optional<LinkEvent> next(const std::function<bool(const LinkEvent&)>& match,
                                std::chrono::milliseconds timeout = kWait) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      while (seen_ < all_.size()) {
        const LinkEvent& e = all_[seen_++];
        if (match(e)) return e;
      }
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{link_.event_fd(), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
      for (auto& e : link_.take_events()) all_.push_back(std::move(e));
    }
  }
  std::optional<LinkEvent> next(LinkEvent::Kind kind) {
    return next([kind](const LinkEvent& e) { return e.kind == kind; });
  }
  // The next server event that is a message with `text`.
  std::optional<LinkEvent> message(const std::string& text) {
    return next([&](const LinkEvent& e) {
      return e.kind == LinkEvent::Kind::server && e.event.kind == Event::Kind::msg && e.event.text == text;
    });
  }
  // Every server event of kind msg, me, join, priv, ... (not the block's start and end), in order.
  std::vector<LinkEvent> lines() const {
    std::vector<LinkEvent> out;
    for (const auto& e : all_) {
      if (e.kind == LinkEvent::Kind::server && e.event.kind != Event::Kind::history &&
          e.event.kind != Event::Kind::history_end && e.event.kind != Event::Kind::users) {
        out.push_back(e);
      }
    }
    return out;
  }
  const std::vector<LinkEvent>& all() const { return all_; }

 private:
  Link& link_;
  std::vector<LinkEvent> all_;
  std::size_t seen_ = 0;
};

std::string expect_line(LineClient& conn) {
  auto line = conn.read_line(kWait);
  REQUIRE(line);
  return *line;
}

}  // namespace

TEST_CASE("link: joins with ids, keeps the token and the last live id, and resumes with them after a drop",
          "[link][resume]") {
  FakeServer server;
  Link link(options_for(server.port()));
  Events events(link);
  link.start();

  auto conn = server.accept_and_join_ids(
      "alice", {"bob"}, test_token(1),
      {tagged(10, "MSG bob first", 1'700'000'000'000), tagged(12, "ME bob waves", 1'700'000'001'000)}, kWait);
  REQUIRE(conn);
  REQUIRE(conn->send_line(tagged(15, "MSG bob live one")));
  REQUIRE(conn->send_line(tagged(16, "PRIV bob alice psst")));

  auto joined = events.next(LinkEvent::Kind::joined);
  REQUIRE(joined);
  CHECK(joined->nick == "alice");
  CHECK_FALSE(joined->rejoin);
  REQUIRE(events.next([](const LinkEvent& e) { return e.event.kind == Event::Kind::priv; }));

  // The recent block: its start, its lines and its end are marked `recent`, with their ids and
  // times; the live lines after it are not marked.
  const auto lines = events.lines();
  REQUIRE(lines.size() == 4);
  CHECK(lines[0].history == History::recent);
  CHECK(lines[0].event.id == 10);
  CHECK(lines[0].event.time_ms == 1'700'000'000'000);
  CHECK(lines[1].history == History::recent);
  CHECK(lines[1].event.kind == Event::Kind::me);
  CHECK(lines[2].history == History::none);
  CHECK(lines[2].event.text == "live one");
  CHECK(lines[3].history == History::none);
  bool saw_start = false, saw_end = false;
  for (const auto& e : events.all()) {
    if (e.event.kind == Event::Kind::history) {
      saw_start = true;
      CHECK(e.history == History::recent);
      CHECK(e.event.arg == "2");
    }
    if (e.event.kind == Event::Kind::history_end) saw_end = e.history == History::recent;
    CHECK(e.event.kind != Event::Kind::token);  // the token is the Link's, never shown
  }
  CHECK(saw_start);
  CHECK(saw_end);

  // A drop (a reset): the reconnect asks for the seat with the token and the last id seen.
  conn->close_with_reset();
  REQUIRE(events.next(LinkEvent::Kind::lost));
  auto again = server.accept(kWait);
  REQUIRE(again);
  REQUIRE(again->send_line("# fake chat server; say HELLO <nick>"));
  CHECK(expect_line(*again) == "RESUME " + test_token(1) + " 16");
  REQUIRE(again->send_raw("RESUMED alice 41000 2\nTOKEN " + test_token(2) + " 120\nUSERS alice bob\n" +
                          "HISTORY missed 2\n" + tagged(17, "MSG bob while away") + "\n" + tagged(18, "JOIN carol") +
                          "\nHISTORY END missed\n" + tagged(19, "MSG carol hello alice") + "\n"));

  auto resumed = events.next(LinkEvent::Kind::resumed);
  REQUIRE(resumed);
  CHECK(resumed->nick == "alice");
  CHECK(resumed->rejoin);
  CHECK(resumed->event.arg == "41000");  // away, in ms
  CHECK(resumed->event.text == "2");     // missed
  auto missed = events.message("while away");
  REQUIRE(missed);
  CHECK(missed->history == History::missed);
  CHECK(missed->event.id == 17);
  auto join = events.next([](const LinkEvent& e) { return e.event.kind == Event::Kind::join; });
  REQUIRE(join);
  CHECK(join->history == History::missed);
  auto live = events.message("hello alice");
  REQUIRE(live);
  CHECK(live->history == History::none);
  // No `joined` for a resume: it is the same seat.
  for (const auto& e : events.all()) {
    if (e.kind == LinkEvent::Kind::joined) CHECK_FALSE(e.rejoin);
  }

  // The next drop resumes with the new token (the old one is spent) and the newest id.
  again->close_with_reset();
  REQUIRE(events.next(LinkEvent::Kind::lost));
  auto third = server.accept(kWait);
  REQUIRE(third);
  CHECK(expect_line(*third) == "RESUME " + test_token(2) + " 19");
}

TEST_CASE("link: a refused token falls back to HELLO ids, and a held nickname gets the ghost retries",
          "[link][resume]") {
  FakeServer server;
  Link link(options_for(server.port()));
  Events events(link);
  link.start();

  auto conn = server.accept_and_join_ids("alice", {}, test_token(7), {}, kWait);
  REQUIRE(conn);
  REQUIRE(conn->send_line(tagged(5, "MSG alice hi")));
  REQUIRE(events.message("hi"));
  // The server shut down politely: a restarted one keeps the seats, so the Link resumes too.
  REQUIRE(conn->send_line("BYE shutdown server shutting down"));
  auto lost = events.next(LinkEvent::Kind::lost);
  REQUIRE(lost);
  CHECK(lost->event.code == "shutdown");

  auto second = server.accept(kWait);
  REQUIRE(second);
  CHECK(expect_line(*second) == "RESUME " + test_token(7) + " 5");
  REQUIRE(second->send_line("ERROR bad-token expired"));
  // Forgotten: a fresh join on the same connection, with ids.
  CHECK(expect_line(*second) == "HELLO alice ids");
  auto said = events.next([](const LinkEvent& e) { return e.kind == LinkEvent::Kind::notice; });
  REQUIRE(said);
  CHECK(said->text == "could not resume: expired; joining afresh");
  // Our old seat still holds the nickname (its token was refused): as with a ghost, a suffix.
  REQUIRE(second->send_line("ERROR nick-held alice"));
  CHECK(expect_line(*second) == "HELLO alice_ ids");
  REQUIRE(second->send_raw("WELCOME alice_\nUSERS alice_\nHISTORY recent 0\nHISTORY END recent\n"));
  auto joined = events.next(LinkEvent::Kind::joined);
  REQUIRE(joined);
  CHECK(joined->rejoin);
  CHECK(joined->nick == "alice_");
  CHECK(joined->text == "alice");  // the nickname we wanted
  for (const auto& e : events.all()) CHECK(e.kind != LinkEvent::Kind::refused);  // nick-held was not a refusal

  // This server gave no TOKEN this time: the next reconnect cannot resume and says HELLO.
  second->close();
  REQUIRE(events.next(LinkEvent::Kind::lost));
  auto third = server.accept(kWait);
  REQUIRE(third);
  REQUIRE(third->send_line("# greeting"));
  CHECK(expect_line(*third) == "HELLO alice ids");
}

TEST_CASE("link: a live id at or below the last one is dropped, answers keep their older ids, and a live line "
          "inside an answer counts as live",
          "[link][resume]") {
  FakeServer server;
  Link link(options_for(server.port()));
  Events events(link);
  link.start();

  auto conn = server.accept_and_join_ids("alice", {"bob"}, test_token(3), {tagged(8, "MSG bob earlier")}, kWait);
  REQUIRE(conn);
  REQUIRE(conn->send_raw(tagged(20, "MSG bob twenty") + "\n" +   // live
                         tagged(20, "MSG bob twenty again") + "\n" +  // repeated: dropped
                         tagged(19, "MSG bob nineteen") + "\n" +      // older: dropped
                         // A scroll-back answer: older ids, kept (not repeats), marked.
                         "HISTORY before 2\n" + tagged(3, "MSG bob three") + "\n" + tagged(4, "MSG bob four") +
                         "\nHISTORY END before\n" +
                         // A search answer: older ids too, kept, marked.
                         "HISTORY search 2\n" + tagged(8, "MSG bob earlier") + "\n" + tagged(17, "MSG bob seventeen") +
                         "\nHISTORY END search\n" + tagged(21, "MSG bob twenty-one") + "\n" +
                         // A live event that slipped inside an answer: newer than the last live
                         // id (21), so live, and "seen".
                         "HISTORY before 1\n" + tagged(2, "MSG bob two") + "\n" + tagged(22, "MSG bob slipped in") +
                         "\nHISTORY END before\n"));
  REQUIRE(events.message("slipped in"));

  std::vector<std::string> texts;
  std::vector<History> marks;
  for (const auto& e : events.lines()) {
    if (e.kind != LinkEvent::Kind::server) continue;
    texts.push_back(e.event.text);
    marks.push_back(e.history);
  }
  CHECK(texts == std::vector<std::string>{"earlier", "twenty", "three", "four", "earlier", "seventeen", "twenty-one",
                                          "two", "slipped in"});
  CHECK(marks == std::vector<History>{History::recent, History::none, History::before, History::before, History::search,
                                      History::search, History::none, History::before, History::none});
  // The two repeats were dropped, each with a notice saying so.
  int dropped = 0;
  for (const auto& e : events.all()) {
    if (e.kind == LinkEvent::Kind::notice && e.text.find("again; not shown twice") != std::string::npos) ++dropped;
  }
  CHECK(dropped == 2);

  // The last id seen is 22: the live line inside the answer; never an answer's own ids.
  conn->close_with_reset();
  REQUIRE(events.next(LinkEvent::Kind::lost));
  auto again = server.accept(kWait);
  REQUIRE(again);
  CHECK(expect_line(*again) == "RESUME " + test_token(3) + " 22");
}

TEST_CASE("link: HISTORY BEFORE and SEARCH go out only once joined", "[link][resume]") {
  FakeServer server;
  Link link(options_for(server.port()));
  Events events(link);
  link.start();
  auto conn = server.accept(kWait);
  REQUIRE(conn);
  CHECK(expect_line(*conn) == "HELLO alice ids");
  chat::Command before{chat::Verb::history, {}, {}};
  before.id = 42;
  before.count = 50;
  link.send(before);  // not joined yet: refused with a notice, never sent
  auto refused = events.next(LinkEvent::Kind::notice);
  REQUIRE(refused);
  CHECK(refused->text == "not joined yet: not sent");
  REQUIRE(conn->send_raw("WELCOME alice\nTOKEN " + test_token(4) + " 120\nUSERS alice\nHISTORY recent 0\nHISTORY END recent\n"));
  REQUIRE(events.next(LinkEvent::Kind::joined));
  link.send(before);
  link.send(chat::Command{chat::Verb::search, {}, "cats and dogs"});
  CHECK(expect_line(*conn) == "HISTORY BEFORE 42 50");
  CHECK(expect_line(*conn) == "SEARCH cats and dogs");
}

TEST_CASE("link over TLS: a handshake the server never answers fails within the connect timeout, said once",
          "[link][tls]") {
  FakeServer server;  // accepts, and never says a word: no ServerHello
  auto options = options_for(server.port());
  options.tls = true;
  options.connect_timeout = chat::Millis{300};
  options.reconnect = false;
  Link link(options);
  Events events(link);
  const auto started = std::chrono::steady_clock::now();
  link.start();
  auto conn = server.accept(kWait);
  REQUIRE(conn);
  auto failed = events.next(LinkEvent::Kind::unreachable);
  REQUIRE(failed);
  CHECK(failed->text == "cannot connect to 127.0.0.1:" + std::to_string(server.port()) +
                            ": the TLS handshake did not finish within 300 ms");
  // Not before the timeout; well before the test's own deadline.
  CHECK(std::chrono::steady_clock::now() - started >= 300ms);
  auto ended = events.next(LinkEvent::Kind::ended);
  REQUIRE(ended);
  CHECK(ended->error);
}

TEST_CASE("link: ERROR banned is a refusal, at HELLO and at a RESUME (no second try of the same seat)",
          "[link][resume]") {
  FakeServer server;
  auto options = options_for(server.port());
  options.give_up_when_refused = true;  // as chatclient in a script
  {
    Link link(options);
    Events events(link);
    link.start();
    auto conn = server.accept(kWait);
    REQUIRE(conn);
    CHECK(expect_line(*conn) == "HELLO alice ids");
    REQUIRE(conn->send_line("ERROR banned alice until 14:05"));
    auto refused = events.next(LinkEvent::Kind::refused);
    REQUIRE(refused);
    CHECK(refused->event.code == "banned");
    CHECK(refused->event.text == "alice until 14:05");
    REQUIRE(events.next(LinkEvent::Kind::ended));
  }
  {
    // Joined, dropped, and banned meanwhile: the RESUME is refused, and nothing more is tried.
    Link link(options);
    Events events(link);
    link.start();
    auto conn = server.accept_and_join_ids("alice", {}, test_token(9), {}, kWait);
    REQUIRE(conn);
    conn->close();
    REQUIRE(events.next(LinkEvent::Kind::lost));
    auto again = server.accept(kWait);
    REQUIRE(again);
    CHECK(expect_line(*again) == "RESUME " + test_token(9) + " 0");
    REQUIRE(again->send_line("ERROR banned alice until 14:05"));
    auto refused = events.next(LinkEvent::Kind::refused);
    REQUIRE(refused);
    CHECK(refused->event.code == "banned");
    REQUIRE(events.next(LinkEvent::Kind::ended));
    CHECK_FALSE(again->read_line(kWait));  // no HELLO after it: the connection just ends
    CHECK(again->closed());
  }
}
