// The pieces of the delivery path on their own (issue 8): Roster (the persistent member set),
// History (the sequenced, bounded room stream read without a lock) and Outbox (one client's
// merge of room events and its own lines, written with non-blocking sendmsg). The Outbox writes
// to one end of a socketpair and the test reads the other.
//
// Threads: the test thread only, except where a test says otherwise.
#include "server/history.hpp"
#include "server/outbox.hpp"
#include "server/roster.hpp"
#include "server/websocket_framing.hpp"
#include "common/websocket.hpp"

#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace chat;

namespace {

// Both ends of a UNIX stream socketpair; the Outbox writes to `out`, the test reads `in`.
struct Pair {
  int out = -1;
  int in = -1;
  Pair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    out = fds[0];
    in = fds[1];
  }
  ~Pair() {
    ::close(out);
    ::close(in);
  }
  Pair(const Pair&) = delete;
  Pair& operator=(const Pair&) = delete;
  // A 4 KiB send buffer, so that a write_some of more than that is cut short.
  void shrink_send_buffer() const {
    const int small = 4096;
    REQUIRE(::setsockopt(out, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  }
  // Everything readable now.
  std::string drain() const {
    std::string got;
    char buffer[65536];
    for (;;) {
      const ssize_t n = ::recv(in, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n <= 0) break;
      got.append(buffer, static_cast<std::size_t>(n));
    }
    return got;
  }
};

Outbox::Item own(std::string line, std::uint64_t after) {
  Outbox::Item item;
  item.line = std::move(line) + "\n";
  item.after = after;
  return item;
}

Outbox::Item join_at(History& history, StreamMode mode) {
  Outbox::Item item;
  item.kind = Outbox::Item::Kind::join_room;
  item.after = history.head();
  item.start = history.start();
  item.start_bytes = history.bytes_at_head(mode);
  return item;
}

// Writes until the outbox has nothing left (or it is finished / aborted).
Outbox::Written write_all(Outbox& box, int fd) {
  Outbox::Written w;
  do {
    w = box.write_some(fd, 1 << 20);
  } while (w.state == Outbox::Written::State::more);
  return w;
}

}  // namespace

TEST_CASE("Roster: sorted by key, persistent, and the same as a map after random changes", "[roster]") {
  Roster empty;
  const Roster a = empty.with("bob", "Bob").with("alice", "alice").with("carol", "CAROL");
  CHECK(a.names() == std::vector<std::string>{"alice", "Bob", "CAROL"});
  const Roster b = a.without("bob");
  CHECK(b.names() == std::vector<std::string>{"alice", "CAROL"});
  CHECK(a.names() == std::vector<std::string>{"alice", "Bob", "CAROL"});  // unchanged
  CHECK(empty.size() == 0);
  CHECK(a.with("bob", "BOB").names() == std::vector<std::string>{"alice", "BOB", "CAROL"});  // replaced
  CHECK(a.without("nobody").size() == 3);

  std::mt19937 rng(7);
  std::map<std::string, std::string> reference;
  Roster roster;
  std::vector<Roster> kept;
  std::vector<std::vector<std::string>> kept_names;
  for (int i = 0; i < 20000; ++i) {
    const std::string key = "n" + std::to_string(rng() % 3000);
    if (rng() % 3 == 0) {
      reference.erase(key);
      roster = roster.without(key);
    } else {
      reference[key] = key + "!";
      roster = roster.with(key, key + "!");
    }
    if (i % 2000 == 0) {
      kept.push_back(roster);
      std::vector<std::string> names;
      for (const auto& [k, v] : reference) names.push_back(v);
      kept_names.push_back(names);
    }
  }
  std::vector<std::string> names;
  for (const auto& [k, v] : reference) names.push_back(v);
  CHECK(roster.size() == reference.size());
  CHECK(roster.names() == names);
  for (std::size_t k = 0; k < kept.size(); ++k) CHECK(kept[k].names() == kept_names[k]);  // snapshots still right
}

TEST_CASE("History: entries across chunks, byte counts, trimming that keeps the limit", "[history]") {
  History history(10'000);
  auto cursor = history.start();
  std::uint64_t bytes = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string line = "MSG a " + std::to_string(i) + "\n";
    bytes += line.size();
    CHECK(history.append(line, "[t] " + line) == static_cast<std::uint64_t>(i));
  }
  CHECK(history.head() == 1000);
  CHECK(history.bytes_at_head(StreamMode::protocol) == bytes);
  CHECK(history.bytes_at_head(StreamMode::text) == bytes + 4 * 1000);
  // A cursor from the start still reads all of it: it holds its chunk, however the history trims.
  for (int i = 0; i < 1000; ++i) {
    REQUIRE(cursor.seq() == static_cast<std::uint64_t>(i));
    CHECK(cursor.entry().in(StreamMode::protocol) == "MSG a " + std::to_string(i) + "\n");
    cursor.advance();
  }
  // ~13 bytes per entry: 10,000 bytes are about 770 entries, so some of the 4 chunks went.
  CHECK(history.chunks() < 4);
  CHECK(history.chunks() >= 3);
}

TEST_CASE("History: a long chain of chunks pinned by one cursor is freed without recursion", "[history]") {
  History history(64);  // keeps almost nothing
  auto pinned = history.start();
  for (int i = 0; i < 300'000; ++i) history.append("x\n", "");  // ~1,170 chunks behind `pinned`
  CHECK(history.chunks() <= 2);
  pinned = HistoryCursor();  // destroys the chain: must not overflow the stack
  SUCCEED("freed");
}

TEST_CASE("HistoryCursor::run: entries back to back as one view, cut at a long line, at `want`, at a chunk", "[history]") {
  History history(1 << 22);
  auto cursor = history.start();
  const std::string big(HistoryChunk::bytes_per_mode + 10, 'B');  // stored on its own
  history.append("a1\n", "");
  history.append("b22\n", "t\n");
  history.append(big + "\n", "");
  history.append("c333\n", "");
  const auto first = cursor.run(history.head(), StreamMode::protocol, 1 << 20);
  CHECK(first.bytes == "a1\nb22\n");  // stops before the long line
  CHECK(first.entries == 2);
  cursor.advance(first.entries);
  const auto second = cursor.run(history.head(), StreamMode::protocol, 1 << 20);
  CHECK(second.entries == 1);  // the long line alone
  CHECK(second.bytes.size() == big.size() + 1);
  cursor.advance(1);
  CHECK(cursor.run(history.head(), StreamMode::protocol, 1 << 20).bytes == "c333\n");

  // `want`: the run ends with the entry that reaches it; `until`: never at or past it.
  auto from_start = history.start();
  for (int i = 0; i < 10; ++i) history.append("x" + std::to_string(i) + "\n", "");  // 3 bytes each
  const auto base = from_start.seq();
  CHECK(from_start.run(history.head(), StreamMode::protocol, 7).bytes == "x0\nx1\nx2\n");
  CHECK(from_start.run(history.head(), StreamMode::protocol, 6).bytes == "x0\nx1\n");
  CHECK(from_start.run(base + 4, StreamMode::protocol, 1 << 20).entries == 4);
  CHECK(from_start.run(base + 4, StreamMode::protocol, 0).entries == 1);  // at least one
  // How far a partial write of a run got: whole entries within the bytes, and their bytes.
  const auto part = from_start.whole_entries(StreamMode::protocol, 8, 10);
  CHECK(part.entries == 2);
  CHECK(part.bytes == "x0\nx1\n");
  CHECK(from_start.whole_entries(StreamMode::protocol, 2, 10).entries == 0);
  CHECK(from_start.whole_entries(StreamMode::protocol, 30, 10).entries == 10);

  // Text mode: entries a person does not see are empty and belong to the run (they are counted).
  auto text = history.start();
  history.append("P1\n", "T1\n");
  history.append("P2\n", "");
  history.append("P3\n", "T3\n");
  const auto run = text.run(history.head(), StreamMode::text, 1 << 20);
  CHECK(run.bytes == "T1\nT3\n");
  CHECK(run.entries == 3);

  // A run never crosses into the next chunk.
  History many(1 << 22);
  auto c = many.start();
  for (std::size_t i = 0; i < HistoryChunk::capacity + 5; ++i) many.append("m\n", "");
  CHECK(c.run(many.head(), StreamMode::protocol, 1 << 20).entries == HistoryChunk::capacity);
}

TEST_CASE("Outbox: runs of room entries across long lines and chunks, written in small pieces, in text mode",
          "[outbox]") {
  History history(1 << 23);
  Pair pair;
  pair.shrink_send_buffer();
  const auto mode = GENERATE(StreamMode::protocol, StreamMode::text);
  Outbox box(history, 1 << 23);
  box.set_mode(mode);
  REQUIRE(box.push(join_at(history, mode)) == Outbox::Push::ok);
  std::string expected;
  std::mt19937 random(21);
  const int entries = 3000;
  for (int i = 0; i < entries; ++i) {
    const std::size_t size = i % 500 == 7 ? HistoryChunk::bytes_per_mode + 100 : random() % 120;
    const std::string protocol = "MSG a " + std::to_string(i) + " " + std::string(size, 'p') + "\n";
    const std::string text = i % 3 == 0 ? "" : "[t] " + std::to_string(i) + "\n";
    history.append(protocol, text);
    expected += mode == StreamMode::text ? text : protocol;
    if (i % 250 == 0) {
      REQUIRE(box.push(own("PING p" + std::to_string(i), history.head())) == Outbox::Push::ok);
      expected += "PING p" + std::to_string(i) + "\n";
    }
  }
  std::string got;
  std::uint64_t delivered = 0;
  for (int rounds = 0; rounds < 1'000'000; ++rounds) {
    const auto w = box.write_some(pair.out, 1 + random() % (96 * 1024));
    delivered += w.room_entries;
    got += pair.drain();
    if (w.state == Outbox::Written::State::idle) break;
  }
  got += pair.drain();
  CHECK(got.size() == expected.size());
  CHECK(got == expected);
  CHECK(delivered == static_cast<std::uint64_t>(entries));  // every entry once, seen or not
  CHECK(box.backlog() == 0);
}

TEST_CASE("Outbox: an own line stamped before a room line that is half written goes after it, whole", "[outbox]") {
  // The reader stamps a reply with the head it read (h); entry h may be appended, gathered and
  // cut short by a full socket before the reply is pushed. The reply belongs before h, which is
  // no longer possible: it must go after the rest of h, not in the middle of it.
  History history(1 << 22);
  Outbox box(history, 1 << 22);
  Pair pair;
  pair.shrink_send_buffer();
  REQUIRE(box.push(join_at(history, StreamMode::protocol)) == Outbox::Push::ok);
  const auto stamp = history.head();
  const std::string line = "MSG a " + std::string(100'000, 'z') + "\n";
  history.append(line, "");
  REQUIRE(box.write_some(pair.out, 1 << 20).state == Outbox::Written::State::blocked);  // cut short
  REQUIRE(box.push(own("PONG x", stamp)) == Outbox::Push::ok);
  std::string got = pair.drain();
  for (int rounds = 0; rounds < 100'000; ++rounds) {
    const auto w = box.write_some(pair.out, 1 << 20);
    got += pair.drain();
    if (w.state == Outbox::Written::State::idle) break;
  }
  got += pair.drain();
  CHECK(got.size() == line.size() + 7);
  CHECK(got == line + "PONG x\n");
}

TEST_CASE("Outbox: own lines keep their place among room events", "[outbox]") {
  History history(1 << 20);
  Outbox box(history, 1 << 20);
  Pair pair;
  // Before joining: only own lines.
  REQUIRE(box.push(own("# greeting", history.head())) == Outbox::Push::ok);
  history.append("MSG x before-join\n", "");
  REQUIRE(box.push(join_at(history, StreamMode::protocol)) == Outbox::Push::ok);
  REQUIRE(box.push(own("WELCOME me", history.head())) == Outbox::Push::ok);
  history.append("MSG a 1\n", "");
  history.append("MSG a 2\n", "");
  REQUIRE(box.push(own("PRIV a me after-2", history.head())) == Outbox::Push::ok);
  history.append("MSG a 3\n", "");
  CHECK(write_all(box, pair.out).state == Outbox::Written::State::idle);
  CHECK(pair.drain() == "# greeting\nWELCOME me\nMSG a 1\nMSG a 2\nPRIV a me after-2\nMSG a 3\n");
  CHECK(box.backlog() == 0);
  // Nothing new: idle, nothing written.
  const auto w = box.write_some(pair.out, 1 << 20);
  CHECK(w.state == Outbox::Written::State::idle);
  CHECK(w.bytes == 0);
}

TEST_CASE("Outbox: USERS is rendered from its snapshot when written, in the client's mode", "[outbox]") {
  History history(1 << 20);
  Pair pair;
  Roster roster = Roster().with("bob", "bob").with("al", "Al");
  Outbox::Item users;
  users.kind = Outbox::Item::Kind::users;
  users.users = roster;
  SECTION("protocol") {
    Outbox box(history, 1 << 20);
    REQUIRE(box.push(users) == Outbox::Push::ok);
    roster = roster.with("zed", "zed");  // later changes do not show
    write_all(box, pair.out);
    CHECK(pair.drain() == "USERS Al bob\n");
  }
  SECTION("text") {
    Outbox box(history, 1 << 20);
    box.set_mode(StreamMode::text);
    REQUIRE(box.push(users) == Outbox::Push::ok);
    write_all(box, pair.out);
    const auto got = pair.drain();
    CHECK(got.ends_with("*** online (2): Al bob\n"));
  }
}

TEST_CASE("Outbox: text mode sends the text lines and skips events a person does not see", "[outbox]") {
  History history(1 << 20);
  Outbox box(history, 1 << 20);
  box.set_mode(StreamMode::text);
  Pair pair;
  REQUIRE(box.push(join_at(history, StreamMode::text)) == Outbox::Push::ok);
  history.append("MSG a hi\n", "[t] <a> hi\n");
  history.append("NOT-SHOWN\n", "");
  history.append("MSG a ho\n", "[t] <a> ho\n");
  write_all(box, pair.out);
  CHECK(pair.drain() == "[t] <a> hi\n[t] <a> ho\n");
  CHECK(box.backlog() == 0);
}

TEST_CASE("Outbox: a socket that takes only part of it resumes at the right byte", "[outbox]") {
  History history(1 << 22);
  Outbox box(history, 1 << 22);
  Pair pair;
  pair.shrink_send_buffer();
  REQUIRE(box.push(join_at(history, StreamMode::protocol)) == Outbox::Push::ok);
  std::string expected;
  for (int i = 0; i < 2000; ++i) {
    const std::string line = "MSG a " + std::to_string(i) + " " + std::string(static_cast<std::size_t>(i % 97), 'y') + "\n";
    expected += line;
    history.append(line, "");
    if (i % 100 == 0) {
      const std::string mine = "PING p" + std::to_string(i) + "\n";
      REQUIRE(box.push(own("PING p" + std::to_string(i), history.head())) == Outbox::Push::ok);
      expected += mine;
    }
  }
  std::string got;
  int blocked = 0;
  for (int rounds = 0; rounds < 100'000; ++rounds) {
    const auto w = box.write_some(pair.out, 64 * 1024);
    if (w.state == Outbox::Written::State::blocked) ++blocked;
    got += pair.drain();
    if (w.state == Outbox::Written::State::idle) break;
  }
  got += pair.drain();
  CHECK(blocked > 0);  // the small buffer did fill up
  CHECK(got == expected);
  CHECK(box.backlog() == 0);
}

// What a WebSocket client reads: the text messages of the frames in `bytes`, each with "\n"
// after it, and "<close CODE>" for a close frame; "<bad>" if the server broke the rules.
std::string messages_in(const std::string& bytes) {
  ws::MessageReader reader({ws::MessageReader::Role::client, 1 << 20, true});
  std::string out;
  reader.feed(bytes, [&out](const ws::MessageReader::Event& e) {
    using Kind = ws::MessageReader::Event::Kind;
    if (e.kind == Kind::text) out.append(e.payload).append("\n");
    if (e.kind == Kind::close) out += "<close " + std::to_string(e.code) + ">";
    if (e.kind == Kind::fail) out += "<bad: " + e.detail + ">";
  });
  return out;
}

TEST_CASE("Outbox: through a WebSocket framing every line is one text frame, raw bytes stay as they are",
          "[outbox][websocket]") {
  History history(1 << 22);
  Outbox box(history, 1 << 22);
  const WebSocketFraming framing(4096);
  Pair pair;
  const std::string switching = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
  Outbox::Item raw;
  raw.kind = Outbox::Item::Kind::raw;
  raw.line = switching;
  REQUIRE(box.push(std::move(raw)) == Outbox::Push::ok);
  box.set_framing(framing);
  REQUIRE(box.push(own("# greeting", history.head())) == Outbox::Push::ok);
  REQUIRE(box.push(join_at(history, StreamMode::protocol)) == Outbox::Push::ok);
  std::string expected = "# greeting\n";
  for (int i = 0; i < 300; ++i) {
    // Lengths on both sides of 126, where the header grows from 2 to 4 bytes.
    const std::string line = "MSG a " + std::to_string(i) + " " + std::string(static_cast<std::size_t>(i % 200), 'y');
    history.append(line + "\n", "");
    expected += line + "\n";
  }
  SECTION("all at once") {
    CHECK(write_all(box, pair.out).state == Outbox::Written::State::idle);
    const auto got = pair.drain();
    REQUIRE(got.starts_with(switching));
    CHECK(messages_in(got.substr(switching.size())) == expected);
    CHECK(box.backlog() == 0);  // counted in lines' bytes, whatever the framing added
  }
  SECTION("a socket that takes a few bytes at a time resumes inside headers and payloads") {
    pair.shrink_send_buffer();
    std::string got;
    int blocked = 0;
    for (int rounds = 0; rounds < 100'000; ++rounds) {
      const auto w = box.write_some(pair.out, 777);  // budgets that end mid-frame
      if (w.state == Outbox::Written::State::blocked) ++blocked;
      got += pair.drain();
      if (w.state == Outbox::Written::State::idle) break;
    }
    got += pair.drain();
    REQUIRE(got.starts_with(switching));
    CHECK(messages_in(got.substr(switching.size())) == expected);
    CHECK(box.backlog() == 0);
  }
  SECTION("the polite end is the BYE as a message, then a close frame") {
    Outbox::Item last;
    last.after = history.head();
    last.line = framing.goodbye("BYE shutdown", "shutdown");
    box.close_with(std::move(last));
    CHECK(write_all(box, pair.out).state == Outbox::Written::State::finished);
    const auto got = pair.drain();
    CHECK(messages_in(got.substr(switching.size())) == expected + "BYE shutdown\n<close 1001>");
  }
}

TEST_CASE("Outbox: the last line ends it, abort drops everything, a full outbox refuses", "[outbox]") {
  History history(1 << 20);
  Pair pair;
  SECTION("close_with: room events caused before it, then the BYE, then finished") {
    Outbox box(history, 1 << 20);
    REQUIRE(box.push(join_at(history, StreamMode::protocol)) == Outbox::Push::ok);
    history.append("MSG a 1\n", "");
    Outbox::Item bye = own("BYE quit", history.head());
    box.close_with(std::move(bye));
    history.append("MSG a after-bye\n", "");
    CHECK(box.push(own("ERROR late", history.head())) == Outbox::Push::closed);
    CHECK(write_all(box, pair.out).state == Outbox::Written::State::finished);
    CHECK(pair.drain() == "MSG a 1\nBYE quit\n");
  }
  SECTION("abort") {
    Outbox box(history, 1 << 20);
    REQUIRE(box.push(own("never sent", history.head())) == Outbox::Push::ok);
    box.abort();
    CHECK(box.write_some(pair.out, 1 << 20).state == Outbox::Written::State::aborted);
    CHECK(pair.drain().empty());
  }
  SECTION("full: own lines and room bytes count against the limit") {
    Outbox box(history, 100);
    REQUIRE(box.push(join_at(history, StreamMode::protocol)) == Outbox::Push::ok);
    history.append(std::string(60, 'r') + "\n", "");
    CHECK(box.backlog() == 61);
    CHECK(box.push(own(std::string(30, 'o'), history.head())) == Outbox::Push::ok);  // 61 + 31 = 92
    CHECK(box.push(own(std::string(10, 'o'), history.head())) == Outbox::Push::full);  // 92 + 11 > 100
    CHECK(box.backlog() == 92);
  }
}

TEST_CASE("Outbox: wait_below returns once a writer has drained it (the reader's backpressure)", "[outbox]") {
  History history(1 << 20);
  Outbox box(history, 1 << 20);
  Pair pair;
  REQUIRE(box.push(join_at(history, StreamMode::protocol)) == Outbox::Push::ok);
  for (int i = 0; i < 1000; ++i) history.append(std::string(99, 'm') + "\n", "");
  REQUIRE(box.backlog() == 100'000);
  // A writer thread drains it; the test thread waits like a paused reader.
  std::jthread writer([&] {
    for (;;) {
      const auto w = box.write_some(pair.out, 4096);
      (void)pair.drain();
      if (w.state == Outbox::Written::State::idle) return;
    }
  });
  box.wait_below(10'000, [] { return false; });
  CHECK(box.backlog() <= 10'000);
}

// The race the resume bench found (a live line inside a HISTORY block): the writer took the own
// lines queued so far, then read the head after the room had appended an entry stamped after the
// lines still being queued, and sent that entry first. Here one thread plays the room (own lines
// stamped with the head, then an entry, all under one lock, as Room::resume does) while a
// writer thread writes as fast as it can: the bytes must come out in exactly that order.
TEST_CASE("Outbox: own lines queued before an entry is appended go out before it, whatever the writer's timing",
          "[outbox]") {
  History history(64 << 20);
  Outbox box(history, 64 << 20);
  Pair pair;
  REQUIRE(box.push(join_at(history, StreamMode::protocol)) == Outbox::Push::ok);
  constexpr int rounds = 20'000;
  constexpr int own_per_round = 3;
  std::string expected;
  std::string got;
  std::atomic<bool> done{false};
  std::mutex room;  // the room's lock: stamps and appends in one order
  std::jthread writer([&] {
    while (true) {
      const bool last = done.load();
      const auto w = box.write_some(pair.out, 256);
      got += pair.drain();
      if (last && w.state == Outbox::Written::State::idle) break;
    }
  });
  for (int r = 0; r < rounds; ++r) {
    std::lock_guard lock(room);
    for (int i = 0; i < own_per_round; ++i) {
      std::string line = "OWN " + std::to_string(r) + " " + std::to_string(i);
      expected += line + "\n";
      REQUIRE(box.push(own(std::move(line), history.head())) == Outbox::Push::ok);
    }
    std::string entry = "MSG " + std::to_string(r) + "\n";
    expected += entry;
    history.append(entry, "");
  }
  done = true;
  writer.join();
  got += pair.drain();
  REQUIRE(got.size() == expected.size());
  if (got != expected) {
    std::size_t at = 0;
    while (got[at] == expected[at]) ++at;
    const std::size_t from = expected.rfind('\n', at) == std::string::npos ? 0 : expected.rfind('\n', at) + 1;
    FAIL("out of order at byte " << at << ": got \"" << got.substr(from, 40) << "\", expected \""
                                 << expected.substr(from, 40) << "\"");
  }
}
