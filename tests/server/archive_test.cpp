// Archive (server/archive.hpp) on real SQLite files in a temporary directory: what survives a
// reopen, when a batch reaches the disk, the three readers (after, before, search) from memory
// and from disk, --history-keep, --db none, the one-line errors of a database that cannot be
// used, and a write that fails (SQLITE_FULL, made honestly by PRAGMA max_page_count through a
// test hook) and recovers. The [.bench] case measures a 1,000,000-event database.
//
// Threads: the test thread, and the Archive's own thread; the concurrency case adds reader
// threads with a reader's small stack.
#include "server/archive.hpp"
#include "common/thread.hpp"

#include "tests/support/deadline.hpp"

#include <catch2/catch.hpp>

#include <sqlite3.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace chat {
// The test hook of archive.hpp (a friend): the archive thread's PRAGMA max_page_count.
struct ArchiveTestAccess {
  static void limit_pages(Archive& archive, std::int64_t extra_pages) { archive.test_limit_pages(extra_pages); }
  static void limit_queue(Archive& archive, std::size_t records) { archive.test_limit_queue(records); }
};
}  // namespace chat

using namespace chat;
using namespace std::chrono_literals;

namespace {

constexpr std::int64_t base_ms = 1'790'000'000'000;  // some Unix time in ms, for the events

// A fresh directory under /tmp, removed with everything in it at the end.
struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/chat-archive-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    path = name;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::permissions(path, std::filesystem::perms::owner_all, ec);
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return path + "/" + name; }
};

std::uint64_t id_of(std::uint64_t run, std::uint64_t n) { return (run << 32) + n; }

ArchivedEvent make(std::uint64_t id, Event::Kind kind, std::string nick, std::string text = {}, std::string arg = {},
                   std::string code = {}) {
  ArchivedEvent e;
  e.id = id;
  e.time_ms = base_ms + static_cast<std::int64_t>(id & 0xFFFFFFFF);
  e.event.kind = kind;
  e.event.nick = std::move(nick);
  e.event.text = std::move(text);
  e.event.arg = std::move(arg);
  e.event.code = std::move(code);
  return e;
}

ArchivedEvent msg(std::uint64_t id, std::string text, std::string nick = "alice") {
  return make(id, Event::Kind::msg, std::move(nick), std::move(text));
}

// What an Archive said through on_trouble, in order: written by the archive's thread, read on the
// test thread.
class Told {
 public:
  // Makes `archive` report its trouble here (this must outlive `archive`).
  void listen(Archive& archive) {
    archive.on_trouble([this](std::string text) {
      std::lock_guard lock(mutex_);
      told_.push_back(std::move(text));
    });
  }
  // A copy of what was said so far.
  std::vector<std::string> messages() const {
    std::lock_guard lock(mutex_);
    return told_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> told_;  // guarded by mutex_
};

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
  return chat::test::eventually(done, limit);
}

std::vector<std::uint64_t> ids(const std::vector<ArchivedEvent>& events) {
  std::vector<std::uint64_t> out;
  for (const auto& e : events) out.push_back(e.id);
  return out;
}

// A number from the file through a connection of the test's own (read-only unless `write`).
std::int64_t query_int(const std::string& path, const std::string& sql, bool write = false) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, write ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  const int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
  INFO(sqlite3_errmsg(db));
  REQUIRE(rc == SQLITE_OK);
  std::int64_t value = -1;
  const int step = sqlite3_step(st);
  INFO(sqlite3_errmsg(db));
  REQUIRE((step == SQLITE_ROW || step == SQLITE_DONE));
  if (step == SQLITE_ROW) value = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return value;
}

void exec_sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) == SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  INFO((error ? error : ""));
  sqlite3_free(error);
  sqlite3_close(db);
  REQUIRE(rc == SQLITE_OK);
}

// The ArchiveError text of opening `options`, or "" if it opened.
std::string open_error(ArchiveOptions options) {
  try {
    Archive archive(std::move(options));
  } catch (const ArchiveError& e) {
    return e.what();
  }
  return "";
}

ArchiveOptions at(const std::string& path) {
  ArchiveOptions o;
  o.path = path;
  return o;
}

}  // namespace

TEST_CASE("archive: run() is 1 for a new database and one more at each open", "[archive]") {
  TempDir dir;
  const auto path = dir.file("chat.db");
  {
    Archive a(at(path));
    CHECK(a.run() == 1);
    CHECK(a.on_disk());
    CHECK(a.last_id() == 0);
    CHECK(a.last_seat() == 0);
    CHECK(a.seats_at_start().empty());
  }
  for (std::uint64_t expected = 2; expected <= 4; ++expected) {
    Archive a(at(path));
    CHECK(a.run() == expected);
  }
  // Committed in the constructor, before start(): a kill -9 right after the open keeps it.
  CHECK(query_int(path, "SELECT value FROM meta WHERE key = 'run'") == 4);
  Archive memory(ArchiveOptions{});
  CHECK(memory.run() == 1);
  CHECK_FALSE(memory.on_disk());
}

TEST_CASE("archive: the directory is created 0700 and the file 0600", "[archive]") {
  TempDir dir;
  const auto path = dir.path + "/a/b/chat.db";
  {
    Archive a(at(path));
    a.start();
  }
  struct stat st {};
  REQUIRE(::stat((dir.path + "/a").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  REQUIRE(::stat((dir.path + "/a/b").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(query_int(path, "PRAGMA journal_mode") != -1);
}

TEST_CASE("archive: events, ids and seats survive a reopen", "[archive]") {
  TempDir dir;
  const auto path = dir.file("chat.db");
  std::vector<ArchivedEvent> sent = {
      make(id_of(1, 1), Event::Kind::join, "alice"),
      msg(id_of(1, 2), "hello, world"),
      make(id_of(1, 3), Event::Kind::me, "alice", "waves"),
      make(id_of(1, 4), Event::Kind::nick, "alice", {}, "alicia"),
      make(id_of(1, 5), Event::Kind::leave, "bob", "gone for lunch", {}, "quit"),
      make(id_of(1, 7), Event::Kind::back, "carol", {}, "1234"),
      make(id_of(1, 9), Event::Kind::comment, {}, "the server restarts at noon"),
  };
  {
    Archive a(at(path));
    REQUIRE(a.run() == 1);
    a.start();
    for (const auto& e : sent) a.append(e);
    a.seat_opened({1, "hash-1", "alice", 0});
    a.seat_opened({2, "hash-2", "bob", 0});
    a.seat_opened({3, "hash-3", "carol", 0});
    a.seat_opened({4, "hash-4", "dave", 0});
    a.seat_renamed(1, "alicia");
    a.seat_token(1, "hash-1b");
    a.seat_dropped(2, base_ms + 5000);
    a.seat_dropped(3, base_ms + 6000);
    a.seat_back(3);
    a.seat_closed(4);  // the highest seat: closed, but its number is never used again
    CHECK(a.last_id() == id_of(1, 9));
  }
  Archive b(at(path));
  CHECK(b.run() == 2);
  CHECK(b.last_id() == id_of(1, 9));
  CHECK(b.last_seat() == 4);
  const auto got = b.recent(100);
  REQUIRE(got.size() == sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    INFO("event " << i);
    CHECK(got[i].id == sent[i].id);
    CHECK(got[i].time_ms == sent[i].time_ms);
    CHECK(got[i].event.kind == sent[i].event.kind);
    CHECK(got[i].event.nick == sent[i].event.nick);
    CHECK(got[i].event.arg == sent[i].event.arg);
    CHECK(got[i].event.code == sent[i].event.code);
    CHECK(got[i].event.text == sent[i].event.text);
    CHECK(got[i].event.id == sent[i].id);  // the event's own copy of the tag
    CHECK(got[i].event.time_ms == sent[i].time_ms);
  }
  const auto& seats = b.seats_at_start();
  REQUIRE(seats.size() == 3);
  CHECK(seats[0].seat == 1);
  CHECK(seats[0].nick == "alicia");
  CHECK(seats[0].token_hash == "hash-1b");
  CHECK(seats[0].dropped_ms == 0);
  CHECK(seats[1].seat == 2);
  CHECK(seats[1].dropped_ms == base_ms + 5000);
  CHECK(seats[2].seat == 3);
  CHECK(seats[2].dropped_ms == 0);
  // The closed seat's token hash is not kept.
  CHECK(query_int(path, "SELECT count(*) FROM seats WHERE token_hash = 'hash-4'") == 0);
  // A clean stop leaves nothing "gone": after(0) is complete.
  const auto all = b.after(0, UINT64_MAX, 100);
  CHECK(all.complete);
  CHECK(all.events.size() == sent.size());
}

TEST_CASE("archive: a batch reaches the disk within the batch interval, or at batch_max", "[archive]") {
  TempDir dir;
  const auto path = dir.file("chat.db");
  SECTION("the interval (50 ms)") {
    Archive a(at(path));
    a.start();
    const auto t0 = std::chrono::steady_clock::now();
    a.append(msg(id_of(1, 1), "one"));
    a.append(msg(id_of(1, 2), "two"));
    REQUIRE(eventually([&] { return a.counters().written == 2; }, 2s));
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(took < 2s);  // 50 ms plus scheduling; the bound is generous for loaded CI machines
    // Really on disk, seen through another connection:
    CHECK(query_int(path, "SELECT count(*) FROM events") == 2);
    const auto c = a.counters();
    CHECK(c.batches == 1);
    CHECK(c.max_batch == 2);
    CHECK(c.queued == 0);
    CHECK(c.lost == 0);
  }
  SECTION("batch_max records at once, without waiting for a long interval") {
    auto o = at(path);
    o.batch_interval = Millis(600'000);
    o.batch_max = 10;
    Archive a(o);
    a.start();
    for (std::uint64_t n = 1; n <= 9; ++n) a.append(msg(id_of(1, n), "x"));
    std::this_thread::sleep_for(100ms);  // (only to show that nine do not start a batch)
    CHECK(a.counters().written == 0);
    CHECK(a.counters().queued == 9);
    a.append(msg(id_of(1, 10), "x"));
    REQUIRE(eventually([&] { return a.counters().written == 10; }, 2s));
  }
  SECTION("stop() writes what is queued") {
    auto o = at(path);
    o.batch_interval = Millis(600'000);
    {
      Archive a(o);
      a.start();
      for (std::uint64_t n = 1; n <= 5; ++n) a.append(msg(id_of(1, n), "x"));
      a.stop();
      a.stop();  // idempotent
      CHECK(a.counters().written == 5);
    }
    CHECK(query_int(path, "SELECT count(*) FROM events") == 5);
  }
  SECTION("stop() without start() writes what is queued") {
    {
      Archive a(at(path));
      a.append(msg(id_of(1, 1), "x"));
      a.seat_opened({7, "h", "alice", 0});
    }
    Archive b(at(path));
    CHECK(b.last_id() == id_of(1, 1));
    CHECK(b.last_seat() == 7);
  }
}

TEST_CASE("archive: after() from memory and from disk, and its complete flag", "[archive]") {
  TempDir dir;
  const auto path = dir.file("chat.db");
  auto o = at(path);
  o.recent = 8;  // a small ring: most of the 100 events are on disk only
  {
    Archive a(o);
    a.start();
    for (std::uint64_t n = 1; n <= 100; ++n) a.append(msg(id_of(1, n), "event " + std::to_string(n)));
    REQUIRE(eventually([&] { return a.counters().written == 100; }));

    // Recent: from the ring.
    auto tail = a.after(id_of(1, 95), UINT64_MAX, 100, true);
    CHECK(tail.complete);
    CHECK(ids(tail.events) == std::vector<std::uint64_t>{id_of(1, 96), id_of(1, 97), id_of(1, 98), id_of(1, 99), id_of(1, 100)});
    // Too far back for the ring: memory_only says so, the disk answers. (Written events stay in
    // the ring until the search index has them too: the room's quiet moment, 250 ms.)
    REQUIRE(eventually([&] { return !a.after(id_of(1, 10), UINT64_MAX, 1000, true).complete; }));
    auto disk = a.after(id_of(1, 10), UINT64_MAX, 1000);
    CHECK(disk.complete);
    REQUIRE(disk.events.size() == 90);
    CHECK(disk.events.front().id == id_of(1, 11));
    CHECK(disk.events.back().id == id_of(1, 100));
    CHECK(disk.events.front().event.text == "event 11");
    // From the start.
    auto all = a.after(0, UINT64_MAX, 1000);
    CHECK(all.complete);
    CHECK(all.events.size() == 100);
    // Cut at the limit: not complete, and the first ones.
    auto cut = a.after(id_of(1, 10), UINT64_MAX, 5);
    CHECK_FALSE(cut.complete);
    CHECK(ids(cut.events) == std::vector<std::uint64_t>{id_of(1, 11), id_of(1, 12), id_of(1, 13), id_of(1, 14), id_of(1, 15)});
    // Exactly the limit is complete.
    auto exact = a.after(id_of(1, 10), id_of(1, 16), 5);
    CHECK(exact.complete);
    CHECK(exact.events.size() == 5);
    // The range's upper end, across disk and ring.
    auto middle = a.after(id_of(1, 90), id_of(1, 95), 100);
    CHECK(middle.complete);
    CHECK(ids(middle.events) == std::vector<std::uint64_t>{id_of(1, 91), id_of(1, 92), id_of(1, 93), id_of(1, 94)});
    // Empty ranges.
    CHECK(a.after(id_of(1, 100), UINT64_MAX, 10).events.empty());
    CHECK(a.after(id_of(1, 100), UINT64_MAX, 10).complete);
    CHECK(a.after(id_of(1, 5), id_of(1, 6), 10).events.empty());
  }
  // After a reopen the ring is loaded from disk: the recent ones come from memory still.
  Archive b(o);
  auto tail = b.after(id_of(1, 95), UINT64_MAX, 100, true);
  CHECK(tail.complete);
  CHECK(tail.events.size() == 5);
  CHECK_FALSE(b.after(id_of(1, 50), UINT64_MAX, 100, true).complete);
  CHECK(b.after(id_of(1, 50), UINT64_MAX, 100).complete);
  CHECK(b.after(id_of(1, 50), UINT64_MAX, 100).events.size() == 50);
}

TEST_CASE("archive: events not yet written are found by every reader", "[archive]") {
  TempDir dir;
  auto o = at(dir.file("chat.db"));
  o.recent = 4;
  o.batch_interval = Millis(600'000);  // nothing is written until stop()
  Archive a(o);
  a.start();
  for (std::uint64_t n = 1; n <= 20; ++n) a.append(msg(id_of(1, n), "pending number " + std::to_string(n)));
  CHECK(a.counters().written == 0);
  // The ring keeps every unwritten event whatever `recent` says.
  CHECK(a.recent(100).size() == 20);
  auto all = a.after(0, UINT64_MAX, 100, true);
  CHECK(all.complete);
  CHECK(all.events.size() == 20);
  CHECK(a.before(id_of(1, 11), 3).size() == 3);
  CHECK(ids(a.search("pending", 3)) == std::vector<std::uint64_t>{id_of(1, 18), id_of(1, 19), id_of(1, 20)});
  CHECK(ids(a.search("NUMBER 7", 10)) == std::vector<std::uint64_t>{id_of(1, 7)});
  a.stop();
  CHECK(a.counters().written == 20);
  // Written now, and the ring is back to `recent`: the same answers come from the disk.
  CHECK(a.recent(100).size() == 4);
  CHECK(ids(a.search("pending", 3)) == std::vector<std::uint64_t>{id_of(1, 18), id_of(1, 19), id_of(1, 20)});
  CHECK(ids(a.search("NUMBER 7", 10)) == std::vector<std::uint64_t>{id_of(1, 7)});
  CHECK(a.after(0, UINT64_MAX, 100).events.size() == 20);
}

TEST_CASE("archive: before()", "[archive]") {
  TempDir dir;
  auto o = at(dir.file("chat.db"));
  o.recent = 10;
  Archive a(o);
  a.start();
  for (std::uint64_t n = 1; n <= 50; ++n) a.append(msg(id_of(1, n), "e" + std::to_string(n)));
  REQUIRE(eventually([&] { return a.counters().written == 50; }));
  // From the ring.
  CHECK(ids(a.before(id_of(1, 50), 3)) == std::vector<std::uint64_t>{id_of(1, 47), id_of(1, 48), id_of(1, 49)});
  // Across the ring's start: disk and ring merged.
  const auto across = a.before(id_of(1, 45), 10);
  REQUIRE(across.size() == 10);
  CHECK(across.front().id == id_of(1, 35));
  CHECK(across.back().id == id_of(1, 44));
  // From the disk only, and the very start.
  CHECK(ids(a.before(id_of(1, 4), 10)) == std::vector<std::uint64_t>{id_of(1, 1), id_of(1, 2), id_of(1, 3)});
  CHECK(a.before(id_of(1, 1), 10).empty());
  CHECK(a.before(UINT64_MAX, 100).size() == 50);
  CHECK(a.before(id_of(1, 30), 0).empty());
}

TEST_CASE("archive: search() with FTS5, whatever the words", "[archive]") {
  TempDir dir;
  const auto path = dir.file("chat.db");
  const std::vector<std::string> texts = {
      "hello world",                          // 1
      "Hello again, WORLD!",                  // 2
      "the café is open",                     // 3
      "say \"quoted\" things AND NEAR(x y)",  // 4
      "a*b and (parens) and ^caret -minus",   // 5
      "日本語 のテキスト",                     // 6
      "emoji 🙂 here",                        // 7
      "nothing to see",                       // 8
  };
  {
    Archive a(at(path));
    a.start();
    std::uint64_t n = 0;
    for (const auto& t : texts) a.append(msg(id_of(1, ++n), t));
    a.append(make(id_of(1, ++n), Event::Kind::me, "bob", "says hello from me"));           // 9: me counts
    a.append(make(id_of(1, ++n), Event::Kind::leave, "carol", "hello leave", {}, "quit"));  // 10: not searched
    a.append(make(id_of(1, ++n), Event::Kind::comment, {}, "hello comment"));              // 11: not searched
  }
  Archive a(at(path));  // every answer from the disk (FTS5)
  a.start();
  const auto search = [&](std::string_view words, std::size_t n = 100) { return ids(a.search(words, n)); };
  using V = std::vector<std::uint64_t>;
  CHECK(search("hello") == V{id_of(1, 1), id_of(1, 2), id_of(1, 9)});
  CHECK(search("HELLO world") == V{id_of(1, 1), id_of(1, 2)});
  CHECK(search("hello", 2) == V{id_of(1, 2), id_of(1, 9)});  // the newest 2, oldest first
  CHECK(search("cafe") == V{id_of(1, 3)});                    // diacritics folded
  CHECK(search("café") == V{id_of(1, 3)});
  CHECK(search("world hello nothing").empty());
  CHECK(search("日本語") == V{id_of(1, 6)});
  CHECK(search("🙂") == V{id_of(1, 7)});
  CHECK(search("").empty());
  CHECK(search("   \t ").empty());
  CHECK(search("hello", 0).empty());
  // FTS5 syntax in the words is only text: no error, and it means what it says.
  CHECK(search("AND") == V{id_of(1, 4), id_of(1, 5)});
  CHECK(search("NEAR(x") == V{id_of(1, 4)});
  CHECK(search("\"quoted\"") == V{id_of(1, 4)});
  CHECK(search("\"") .empty());
  CHECK(search("\"\"\"").empty());
  CHECK(search("a*b") == V{id_of(1, 5)});
  CHECK(search("(parens)") == V{id_of(1, 5)});
  CHECK(search("^caret") == V{id_of(1, 5)});
  CHECK(search("-minus") == V{id_of(1, 5)});
  CHECK(search("*").empty());
  CHECK(search("hello *") == V{id_of(1, 1), id_of(1, 2), id_of(1, 9)});  // an empty phrase adds nothing
  for (const std::string& hostile : std::vector<std::string>{"OR", "NOT", "hello OR nothing", "text:hello", "{text}: hello", "hel*", "\"hello",
                                    "hello\"", "NEAR(hello world, 2)", "( ) \" * ^ : + -", "\xff\xfe", "\\", "'", "';--",
                                    std::string("hello\0world", 11), std::string(5000, '"')}) {
    INFO(hostile);
    CHECK_NOTHROW(a.search(hostile, 10));
  }
  CHECK(search("OR").empty());
}

TEST_CASE("archive: the search index follows the events when the room is quiet, and catches up after a crash",
          "[archive]") {
  TempDir dir;
  const auto path = dir.file("chat.db");
  const auto indexed = [&] { return query_int(path, "SELECT value FROM meta WHERE key = 'indexed_upto'"); };
  const auto in_index = [&] {
    return query_int(path, "SELECT count(*) FROM events_fts WHERE events_fts MATCH 'needle'");
  };
  {
    Archive a(at(path));
    a.start();
    for (std::uint64_t n = 1; n <= 50; ++n) a.append(msg(id_of(1, n), "needle " + std::to_string(n)));
    REQUIRE(eventually([&] { return a.counters().written == 50; }));
    // Written, and found at once (from memory, whether or not the index has them yet)...
    CHECK(a.search("needle", 100).size() == 50);
    // ...and in the index once the room has been quiet for a moment.
    REQUIRE(eventually([&] { return indexed() == static_cast<std::int64_t>(id_of(1, 50)); }));
    CHECK(in_index() == 50);
    CHECK(a.search("needle", 100).size() == 50);
  }
  // A run that wrote events but ended before indexing them (a kill -9): as if the index had
  // none of them. The next open indexes them before anyone can search.
  exec_sql(path, "INSERT INTO events_fts(events_fts) VALUES ('delete-all'); "
                 "UPDATE meta SET value = 0 WHERE key = 'indexed_upto'");
  CHECK(in_index() == 0);
  {
    Archive a(at(path));
    CHECK(indexed() == static_cast<std::int64_t>(id_of(1, 50)));
    CHECK(in_index() == 50);
    a.start();
    CHECK(a.search("needle", 100).size() == 50);
  }
  CHECK(query_int(path, "SELECT count(*) FROM events_fts WHERE events_fts MATCH 'needle 7'") == 1);
}

TEST_CASE("archive: memory only (--db none)", "[archive]") {
  ArchiveOptions o;  // path ""
  o.keep_rows = 50;
  Archive a(o);
  a.start();
  CHECK(a.run() == 1);
  CHECK_FALSE(a.on_disk());
  CHECK(a.path().empty());
  a.seat_opened({1, "h", "alice", 0});  // no-ops: nothing persists
  a.seat_closed(1);
  CHECK(a.last_seat() == 0);
  CHECK(a.seats_at_start().empty());
  for (std::uint64_t n = 1; n <= 60; ++n) a.append(msg(n, n % 2 ? "Odd One" : "even one"));
  // keep_rows bounds the ring, and the ring is the whole history.
  CHECK(a.recent(1000).size() == 50);
  CHECK(a.recent(3).back().id == 60);
  auto all = a.after(0, UINT64_MAX, 1000);
  CHECK_FALSE(all.complete);  // 1 to 10 are gone
  CHECK(all.events.size() == 50);
  CHECK(all.events.front().id == 11);
  auto tail = a.after(20, UINT64_MAX, 1000);
  CHECK(tail.complete);
  CHECK(tail.events.size() == 40);
  CHECK(ids(a.before(14, 10)) == std::vector<std::uint64_t>{11, 12, 13});
  // Case-insensitive substrings of the text, messages and actions only.
  CHECK(ids(a.search("odd ONE", 3)) == std::vector<std::uint64_t>{55, 57, 59});
  CHECK(ids(a.search("dd", 2)) == std::vector<std::uint64_t>{57, 59});
  CHECK(a.search("  ", 5).empty());
  CHECK(a.search("\"(*", 5).empty());
  a.append(make(61, Event::Kind::comment, {}, "Odd comment"));
  CHECK(ids(a.search("odd", 1)) == std::vector<std::uint64_t>{59});
  CHECK(a.counters().written == 0);
  CHECK(a.last_id() == 61);
  a.stop();
}

TEST_CASE("archive: memory only keeps 100,000 events without --history-keep", "[archive]") {
  Archive a(ArchiveOptions{});
  for (std::uint64_t n = 1; n <= 100'010; ++n) a.append(make(n, Event::Kind::join, "x"));
  CHECK(a.recent(200'000).size() == 100'000);
  CHECK_FALSE(a.after(0, UINT64_MAX, 10).complete);
  CHECK(a.after(10, 20, 100).complete);
  CHECK(a.after(10, 20, 100).events.size() == 9);
  CHECK_FALSE(a.after(10, UINT64_MAX, 10).complete);  // cut at the limit
}

TEST_CASE("archive: --history-keep prunes the disk, the index and the ring", "[archive]") {
  TempDir dir;
  const auto path = dir.file("chat.db");
  {
    Archive a(at(path));
    a.start();
    for (std::uint64_t n = 1; n <= 100; ++n) a.append(msg(id_of(1, n), n <= 70 ? "old words" : "new words"));
  }
  SECTION("keep_rows") {
    auto o = at(path);
    o.keep_rows = 30;
    {
      Archive a(o);
      // The ring obeys at once; the disk at the thread's first pass.
      CHECK(a.recent(1000).size() == 30);
      a.start();
      REQUIRE(eventually([&] { return query_int(path, "SELECT count(*) FROM events") == 30; }));
      auto all = a.after(0, UINT64_MAX, 1000);
      CHECK_FALSE(all.complete);  // something was let go of
      REQUIRE(all.events.size() == 30);
      CHECK(all.events.front().id == id_of(1, 71));
      CHECK(a.after(id_of(1, 70), UINT64_MAX, 1000).complete);
      CHECK_FALSE(a.after(id_of(1, 69), UINT64_MAX, 1000).complete);
      CHECK(a.search("old", 100).empty());  // the index was pruned with the rows
      CHECK(a.search("new", 100).size() == 30);
      // New events push the oldest out of the ring at once.
      for (std::uint64_t n = 1; n <= 5; ++n) a.append(msg(id_of(2, n), "newer"));
      CHECK(a.recent(1000).size() == 30);
    }
    CHECK(query_int(path, "SELECT value FROM meta WHERE key = 'gone_upto'") >= static_cast<std::int64_t>(id_of(1, 70)));
    // The index agrees with the table (FTS5's own check; it needs a writable connection).
    exec_sql(path, "INSERT INTO events_fts(events_fts) VALUES ('integrity-check')");
    CHECK(query_int(path, "SELECT count(*) FROM events_fts WHERE events_fts MATCH 'old'") == 0);
    Archive b(o);  // gone_upto is remembered
    CHECK_FALSE(b.after(0, UINT64_MAX, 1000).complete);
  }
  SECTION("keep_age") {
    // Make the first 60 events old, the others recent.
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    exec_sql(path, "UPDATE events SET time_ms = " + std::to_string(now - 3 * 3600'000) +
                       " WHERE id <= " + std::to_string(id_of(1, 60)) + "; UPDATE events SET time_ms = " +
                       std::to_string(now) + " WHERE id > " + std::to_string(id_of(1, 60)));
    auto o = at(path);
    o.keep_age = std::chrono::hours(1);
    Archive a(o);
    a.start();
    REQUIRE(eventually([&] { return query_int(path, "SELECT count(*) FROM events") == 40; }));
    CHECK(a.recent(1000).size() == 40);
    CHECK(a.after(0, UINT64_MAX, 1000).events.front().id == id_of(1, 61));
    CHECK(a.search("old", 100).size() == 10);  // 61 to 70
  }
}

TEST_CASE("archive: a database that cannot be used is one line naming the file", "[archive]") {
  TempDir dir;
  SECTION("not a database") {
    const auto path = dir.file("chat.db");
    std::ofstream(path) << std::string(8192, 'x');
    const auto error = open_error(at(path));
    CHECK(error == path + ": file is not a database");
  }
  SECTION("another program's database") {
    const auto path = dir.file("other.db");
    exec_sql(path, "CREATE TABLE accounts(name TEXT)");
    const auto error = open_error(at(path));
    CHECK(error == path + ": is not a chatserver database (it holds other tables)");
  }
  SECTION("a newer schema") {
    const auto path = dir.file("chat.db");
    { Archive a(at(path)); }
    exec_sql(path, "PRAGMA user_version = 99");
    CHECK(open_error(at(path)) == path + ": was written by a newer chatserver (schema version 99; this one knows 1)");
  }
  SECTION("a corrupt file") {
    const auto path = dir.file("chat.db");
    {
      Archive a(at(path));
      for (std::uint64_t n = 1; n <= 2000; ++n) a.append(msg(id_of(1, n), "some text to fill pages " + std::to_string(n)));
    }
    // Every page but the first (the header and the schema) overwritten with noise.
    const auto size = std::filesystem::file_size(path);
    REQUIRE(size > 8 * 4096);
    {
      std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
      std::mt19937 random(7);
      f.seekp(4096);
      for (std::uintmax_t i = 4096; i < size; ++i) f.put(static_cast<char>(random()));
    }
    const auto error = open_error(at(path));
    INFO(error);
    CHECK(error.rfind(path + ": ", 0) == 0);
    CHECK(error.find("malformed") != std::string::npos);
    CHECK(error.find('\n') == std::string::npos);
  }
  SECTION("a path under a regular file (fails even for root)") {
    const auto file = dir.file("file");
    std::ofstream(file) << "x";
    const auto path = file + "/chat.db";
    CHECK(open_error(at(path)) == path + ": cannot create it: " + file + " is not a directory");
    const auto deeper = file + "/sub/chat.db";
    CHECK(open_error(at(deeper)) == deeper + ": cannot create it: " + file + " is not a directory");
  }
  SECTION("a directory") {
    const auto path = dir.file("adir");
    REQUIRE(::mkdir(path.c_str(), 0700) == 0);
    CHECK(open_error(at(path)) == path + ": is a directory");
  }
  SECTION("a read-only directory") {
    if (::geteuid() == 0) {
      WARN("skipped: root may write into a read-only directory");
      return;
    }
    const auto ro = dir.file("ro");
    REQUIRE(::mkdir(ro.c_str(), 0500) == 0);
    const auto path = ro + "/chat.db";
    CHECK(open_error(at(path)) == path + ": cannot create it: Permission denied (is the directory writable?)");
  }
}

TEST_CASE("archive: a database held by another chatserver is refused", "[archive]") {
  TempDir dir;
  const auto path = dir.file("chat.db");
  SECTION("another Archive in this process") {
    Archive first(at(path));
    first.start();
    first.append(msg(id_of(1, 1), "still mine"));
    CHECK(open_error(at(path)) == path + ": is held by another chatserver");
    // The refusal did not disturb the first one.
    REQUIRE(eventually([&] { return first.counters().written == 1; }));
    CHECK(first.after(0, UINT64_MAX, 10).events.size() == 1);
  }
  SECTION("a flock held through another descriptor (as another process would)") {
    { Archive a(at(path)); }
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(::flock(fd, LOCK_EX | LOCK_NB) == 0);
    CHECK(open_error(at(path)) == path + ": is held by another chatserver");
    ::close(fd);
    CHECK(open_error(at(path)).empty());  // free again
  }
}

TEST_CASE("archive: a write that fails drops its batch, says so once, and recovers", "[archive]") {
  TempDir dir;
  const auto path = dir.file("chat.db");
  Told told;  // before the Archive: its thread may call on_trouble until the Archive is gone
  auto o = at(path);
  o.recent = 16;
  Archive a(o);
  told.listen(a);
  a.start();
  a.append(msg(id_of(1, 1), "before the trouble"));
  REQUIRE(eventually([&] { return a.counters().written == 1; }));

  // The disk is "full": no page may be added.
  ArchiveTestAccess::limit_pages(a, 0);
  const std::string big(3000, 'z');
  std::uint64_t n = 1;
  for (int batch = 0; batch < 5; ++batch) {
    for (int i = 0; i < 20; ++i) a.append(msg(id_of(1, ++n), big));
    REQUIRE(eventually([&] { return a.counters().queued == 0; }));
  }
  const std::uint64_t last_failed = n;
  REQUIRE(eventually([&] { return a.counters().lost == 100; }));
  CHECK(a.counters().written == 1);
  {
    const auto m = told.messages();
    REQUIRE(m.size() == 1);  // once, however many batches failed
    CHECK(m[0] == "history is not being saved: database or disk is full");  // the path is in the log only
  }
  // Memory keeps working: the ring still holds at least the last `recent` events, lost ones
  // included (and the one written event, which the full disk keeps out of the search index).
  const auto last = a.recent(1000);
  CHECK(last.size() >= 16);
  CHECK(last.size() <= 101);
  CHECK(last.back().id == id_of(1, 101));
  CHECK(a.search("before", 10).size() == 1);
  // Resuming across the loss: the events are there (from the ring) but the answer is partial.
  auto across = a.after(id_of(1, 1), UINT64_MAX, 1000);
  CHECK_FALSE(across.complete);

  // Room again.
  ArchiveTestAccess::limit_pages(a, -1);
  a.append(msg(id_of(1, ++n), "after the trouble"));
  REQUIRE(eventually([&] { return told.messages().size() == 2; }));
  CHECK(told.messages()[1] == "history is being saved again; events " + std::to_string(id_of(1, 2)) + " to " +
                             std::to_string(id_of(1, last_failed)) + " were not saved");
  REQUIRE(eventually([&] { return a.counters().written == 2; }));
  CHECK(a.counters().lost == 100);
  CHECK(a.after(id_of(1, last_failed), UINT64_MAX, 10).complete);
  a.stop();
  CHECK(query_int(path, "SELECT count(*) FROM events") == 2);
  CHECK(query_int(path, "SELECT value FROM meta WHERE key = 'clean'") == 1);
}

TEST_CASE("archive: what a failed write lost is remembered across a reopen", "[archive]") {
  TempDir dir;
  const auto path = dir.file("chat.db");
  auto o = at(path);
  {
    Archive a(o);
    a.start();
    a.append(msg(id_of(1, 1), "kept"));
    REQUIRE(eventually([&] { return a.counters().written == 1; }));
    ArchiveTestAccess::limit_pages(a, 0);
    for (std::uint64_t n = 2; n <= 40; ++n) a.append(msg(id_of(1, n), std::string(3000, 'z')));
    REQUIRE(eventually([&] { return a.counters().lost == 39; }));
    ArchiveTestAccess::limit_pages(a, -1);
    a.append(msg(id_of(1, 41), "kept too"));
    REQUIRE(eventually([&] { return a.counters().written == 2; }));
  }
  const std::uint64_t last_failed = 40;
  Archive b(o);
  CHECK_FALSE(b.after(id_of(1, 1), UINT64_MAX, 1000).complete);  // gone_upto was written
  CHECK(b.after(id_of(1, last_failed), UINT64_MAX, 1000).complete);
}

TEST_CASE("archive: a full queue drops its oldest events, says so once, and recovers", "[archive]") {
  TempDir dir;
  const auto path = dir.file("chat.db");
  Told told;  // before the Archive: its thread may call on_trouble until the Archive is gone
  Archive a(at(path));
  told.listen(a);
  ArchiveTestAccess::limit_queue(a, 100);
  // No thread yet: the queue fills as it would behind a disk far too slow.
  for (std::uint64_t n = 1; n <= 150; ++n) a.append(msg(id_of(1, n), "m" + std::to_string(n)));
  CHECK(a.counters().queued == 100);
  CHECK(a.counters().lost == 50);
  CHECK(a.recent(1000).size() == 150);  // memory still has them all
  CHECK_FALSE(a.after(0, UINT64_MAX, 1000).complete);
  CHECK(a.after(id_of(1, 50), UINT64_MAX, 1000).complete);
  a.start();
  REQUIRE(eventually([&] { return told.messages().size() == 1; }));
  CHECK(told.messages()[0] == "history is not being saved in full: the disk is too slow and 50 events were dropped (" +
                             path + ")");
  a.append(msg(id_of(1, 151), "after"));
  REQUIRE(eventually([&] { return told.messages().size() == 2; }));
  CHECK(told.messages()[1] == "history is being saved again; 50 events from " + std::to_string(id_of(1, 1)) + " to " +
                             std::to_string(id_of(1, 50)) + " were not saved");
  REQUIRE(eventually([&] { return a.counters().written == 101; }));
  a.stop();
  CHECK(query_int(path, "SELECT min(id) FROM events") == static_cast<std::int64_t>(id_of(1, 51)));
}

TEST_CASE("archive: a run that ended without its last batch makes older resumes partial", "[archive]") {
  TempDir dir;
  const auto path = dir.file("chat.db");
  {
    Archive a(at(path));
    a.start();
    for (std::uint64_t n = 1; n <= 3; ++n) a.append(msg(id_of(1, n), "x"));
  }
  // As if run 1 had been killed with events not yet written.
  exec_sql(path, "UPDATE meta SET value = 0 WHERE key = 'clean'");
  Archive b(at(path));
  REQUIRE(b.run() == 2);
  CHECK_FALSE(b.after(id_of(1, 3), UINT64_MAX, 10).complete);
  b.append(msg(id_of(2, 1), "run 2"));
  auto now = b.after(id_of(2, 0), UINT64_MAX, 10);
  CHECK(now.complete);
  CHECK(now.events.size() == 1);
}

TEST_CASE("archive: readers on small stacks while the archive thread writes", "[archive]") {
  TempDir dir;
  auto o = at(dir.file("chat.db"));
  o.recent = 64;
  o.batch_interval = Millis(5);
  o.keep_rows = 3000;
  Archive a(o);
  a.start();
  constexpr std::uint64_t total = 6000;
  std::atomic<std::uint64_t> appended{0};
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  const auto check = [&](bool ok) {
    if (!ok) failures.fetch_add(1);
  };
  std::vector<NamedThread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back("reader " + std::to_string(r), small_stack, [&, r] {
      std::mt19937 random(static_cast<unsigned>(r));
      while (!done.load()) {
        const std::uint64_t head = appended.load();
        const std::uint64_t from = head > 0 ? random() % head : 0;
        auto slice = a.after(id_of(1, from), UINT64_MAX, 200, r == 0);
        for (std::size_t i = 0; i < slice.events.size(); ++i) {
          check(slice.events[i].id > id_of(1, from));
          if (i > 0) check(slice.events[i].id > slice.events[i - 1].id);
        }
        // Nothing the room appended before the call is missing from a complete answer.
        if (slice.complete && !slice.events.empty() && from + 1 < head) {
          check(slice.events.front().id == id_of(1, from + 1));
        }
        auto page = a.before(id_of(1, head + 1), 50);
        for (std::size_t i = 1; i < page.size(); ++i) check(page[i].id > page[i - 1].id);
        auto found = a.search("word" + std::to_string(random() % 10), 20);
        for (std::size_t i = 1; i < found.size(); ++i) check(found[i].id > found[i - 1].id);
        check(a.recent(10).size() <= 10);
        (void)a.counters();
      }
    });
  }
  for (std::uint64_t n = 1; n <= total; ++n) {
    a.append(msg(id_of(1, n), "word" + std::to_string(n % 10) + " number " + std::to_string(n)));
    appended.store(n);
    if (n % 500 == 0) a.seat_opened({n, "h", "nick", 0});
    if (n % 100 == 0) std::this_thread::sleep_for(1ms);
  }
  REQUIRE(eventually([&] { return a.counters().written == total; }, 20s));
  done.store(true);
  for (auto& t : readers) t.join();
  CHECK(failures.load() == 0);
  CHECK(a.counters().lost == 0);
  a.stop();
}

// ---- the 1,000,000-event database (not in the default run: ./chat_archive_tests "[.bench]") ---

TEST_CASE("archive bench: open and search a database of 1,000,000 events", "[.bench]") {
  const char* keep = std::getenv("CHAT_BENCH_DB");  // reuse a file made by an earlier run
  TempDir dir;
  const std::string path = keep ? keep : dir.file("chat.db");
  const auto seconds = [](auto d) { return std::chrono::duration<double>(d).count(); };
  constexpr std::uint64_t total = 1'000'000;
  const std::vector<std::string> vocabulary = {"the", "a", "chat", "server", "hello", "world", "build", "test",
                                               "merge", "deploy", "lunch", "coffee", "bug", "fix", "review",
                                               "thread", "socket", "kernel", "patch", "release"};
  if (!std::filesystem::exists(path) || std::filesystem::file_size(path) == 0) {
    auto o = at(path);
    o.batch_max = 8192;
    Archive a(o);
    a.start();
    std::mt19937 random(1);
    const auto t0 = std::chrono::steady_clock::now();
    for (std::uint64_t n = 1; n <= total; ++n) {
      std::string text;
      const int words = 4 + static_cast<int>(random() % 10);
      for (int w = 0; w < words; ++w) {
        if (w) text += ' ';
        text += vocabulary[random() % vocabulary.size()];
      }
      if (n % 100'000 == 0) text += " needle" + std::to_string(n);
      a.append(msg(id_of(1, n), text, "user" + std::to_string(n % 50)));
      if (a.counters().queued > 200'000) std::this_thread::sleep_for(1ms);  // do not drop anything
    }
    a.stop();
    const auto took = std::chrono::steady_clock::now() - t0;
    WARN("wrote " << a.counters().written << " events in " << seconds(took) << " s, " << a.counters().batches
                  << " batches, longest " << a.counters().max_batch_ms << " ms; file "
                  << std::filesystem::file_size(path) / (1 << 20) << " MiB");
    REQUIRE(a.counters().written == total);
  }
  for (int round = 0; round < 3; ++round) {
    const auto t0 = std::chrono::steady_clock::now();
    Archive a(at(path));
    const auto opened = std::chrono::steady_clock::now();
    a.start();
    const auto time = [&](const char* what, const std::function<std::size_t()>& body) {
      const auto s0 = std::chrono::steady_clock::now();
      const std::size_t n = body();
      WARN(what << ": " << n << " events in " << seconds(std::chrono::steady_clock::now() - s0) * 1000 << " ms");
    };
    WARN("round " << round << ": open " << seconds(opened - t0) * 1000 << " ms (run " << a.run() << ")");
    time("search 'needle500000' (rare)", [&] { return a.search("needle500000", 50).size(); });
    time("search 'hello' (common), newest 50", [&] { return a.search("hello", 50).size(); });
    time("search 'hello world coffee', newest 50", [&] { return a.search("hello world coffee", 50).size(); });
    time("search 'hello world coffee bug kernel patch', newest 500",
         [&] { return a.search("hello world coffee bug kernel patch", 500).size(); });
    time("search 'absent' (no match)", [&] { return a.search("absent", 50).size(); });
    time("after(500000), 500", [&] { return a.after(id_of(1, 500'000), UINT64_MAX, 500).events.size(); });
    time("before(1000), 500", [&] { return a.before(id_of(1, 1000), 500).size(); });
    a.stop();
  }
}
