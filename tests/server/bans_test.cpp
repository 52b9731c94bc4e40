// Bans (server/bans.hpp) on their own and through a real Archive: by nickname (ignoring case)
// and by address (IPv4 on a dual-stack socket as IPv4), replaced, lifted, over by themselves
// at their time (a `now` passed in: no sleeping), bounded, worded ("until 14:05"), and kept in
// the database across a reopen (a table an older database gets at its next open).
//
// Threads: the test thread, and the Archive's own thread when it is started.
#include "server/bans.hpp"

#include "tests/support/deadline.hpp"

#include <catch2/catch.hpp>

#include <sqlite3.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

using namespace chat;
using namespace std::chrono_literals;

namespace {

using WallClock = Bans::WallClock;

std::int64_t ms_of(WallClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

BanRecord ban_of(std::string nick, std::string address, WallClock::time_point until, std::string reason = {}) {
  return BanRecord{std::move(nick), std::move(address), ms_of(until), "op", std::move(reason)};
}

asio::ip::address address(const char* text) { return asio::ip::make_address(text); }

// A fresh directory under /tmp, removed with everything in it at the end.
struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/chat-bans-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    path = name;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return path + "/" + name; }
};

// One number from the file through a connection of the test's own.
std::int64_t query_int(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
  std::int64_t value = -1;
  if (sqlite3_step(st) == SQLITE_ROW) value = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return value;
}

void exec_sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  INFO((error ? error : ""));
  sqlite3_free(error);
  sqlite3_close(db);
  REQUIRE(rc == SQLITE_OK);
}

}  // namespace

TEST_CASE("Bans: by nickname ignoring case and by address, replaced, lifted, over at their time", "[bans]") {
  Archive memory(ArchiveOptions{});  // --db none
  Bans bans(memory);
  const auto now = WallClock::now();
  CHECK(bans.add(ban_of("Bob", "10.0.0.5", now + 10min, "flooding"), now) == Bans::Added::added);
  CHECK(bans.add(ban_of("carol", "", now + 1h), now) == Bans::Added::added);
  CHECK(bans.add(ban_of("dave", "10.0.0.5", now + 2h), now) == Bans::Added::added);

  REQUIRE(bans.for_nick("bob", now));
  CHECK(bans.for_nick("BOB", now)->nick == "Bob");
  CHECK(bans.for_nick("BOB", now)->reason == "flooding");
  CHECK_FALSE(bans.for_nick("eve", now));
  // An address banned twice: the ban that ends last is the one that holds.
  REQUIRE(bans.for_address(address("10.0.0.5"), now));
  CHECK(bans.for_address(address("10.0.0.5"), now)->nick == "dave");
  CHECK(bans.for_address(address("::ffff:10.0.0.5"), now)->nick == "dave");  // a dual-stack socket's view
  CHECK_FALSE(bans.for_address(address("10.0.0.6"), now));
  CHECK(bans.size(now) == 3);

  // Banned again: replaced, not added twice; the old address no longer holds.
  CHECK(bans.add(ban_of("bob", "10.0.0.7", now + 20min), now) == Bans::Added::replaced);
  CHECK(bans.size(now) == 3);
  CHECK(bans.for_address(address("10.0.0.7"), now)->nick == "bob");
  CHECK(bans.for_nick("Bob", now)->reason.empty());

  // Lifted by nickname, or by address (every ban with it).
  CHECK(bans.lift_nick("nobody", now).empty());
  const auto by_nick = bans.lift_nick("CAROL", now);
  REQUIRE(by_nick.size() == 1);
  CHECK(by_nick[0].nick == "carol");
  CHECK_FALSE(bans.for_nick("carol", now));
  CHECK(bans.add(ban_of("erin", "10.0.0.7", now + 1h), now) == Bans::Added::added);
  const auto by_address = bans.lift_address(address("::ffff:10.0.0.7"), now);
  REQUIRE(by_address.size() == 2);
  CHECK(by_address[0].nick == "bob");
  CHECK(by_address[1].nick == "erin");
  CHECK_FALSE(bans.for_address(address("10.0.0.7"), now));
  CHECK(bans.size(now) == 1);

  // Over by themselves at their time: every lookup lets go of those.
  CHECK(bans.add(ban_of("frank", "fd00::2", now + 1s), now) == Bans::Added::added);
  CHECK(bans.for_address(address("fd00::2"), now + 999ms));
  CHECK_FALSE(bans.for_address(address("fd00::2"), now + 1s));
  CHECK_FALSE(bans.for_nick("frank", now + 1s));
  CHECK(bans.for_nick("dave", now + 1s));
  CHECK(bans.list(now + 2h).empty());
}

TEST_CASE("Bans: at most max_bans, a replaced one does not count twice, an expired one makes room", "[bans]") {
  Archive memory(ArchiveOptions{});
  Bans bans(memory);
  const auto now = WallClock::now();
  for (std::size_t i = 0; i < Bans::max_bans; ++i) {
    REQUIRE(bans.add(ban_of("n" + std::to_string(i), "", i == 0 ? now + 1s : now + 1h), now) == Bans::Added::added);
  }
  CHECK(bans.add(ban_of("onemore", "", now + 1h), now) == Bans::Added::full);
  CHECK(bans.add(ban_of("N5", "10.0.0.1", now + 2h), now) == Bans::Added::replaced);
  CHECK(bans.size(now) == Bans::max_bans);
  CHECK(bans.add(ban_of("onemore", "", now + 1h), now + 1s) == Bans::Added::added);  // n0 is over
  CHECK(bans.list(now + 1s).size() == Bans::max_bans);
}

TEST_CASE("Bans: words for people: the time rounded up to the minute, a date when not today", "[bans]") {
  // Local times built with mktime: the test reads them as the server's local time zone does.
  std::tm tm{};
  tm.tm_year = 2026 - 1900;
  tm.tm_mon = 11;
  tm.tm_mday = 9;
  tm.tm_hour = 14;
  tm.tm_min = 4;
  tm.tm_sec = 20;
  tm.tm_isdst = -1;
  const auto now = WallClock::from_time_t(std::mktime(&tm));
  CHECK(Bans::until_text(ms_of(now + 10s), now) == "14:05");
  CHECK(Bans::until_text(ms_of(now + 40s), now) == "14:05");  // exactly 14:05:00
  CHECK(Bans::until_text(ms_of(now + 41s), now) == "14:06");
  CHECK(Bans::until_text(ms_of(now + 24h), now) == "2026-12-10 14:05");
  const BanRecord with_reason{"bob", "10.0.0.5", ms_of(now + 10min), "alice", "flooding"};
  CHECK(Bans::describe(with_reason, now) == "bob 10.0.0.5 until 14:15 by alice: flooding");
  const BanRecord nickname_only{"carol", "", ms_of(now + 10min), "alice", ""};
  CHECK(Bans::describe(nickname_only, now) == "carol (no address) until 14:15 by alice");
  CHECK(Bans::address_text(address("::ffff:192.168.1.20")) == "192.168.1.20");
  CHECK(Bans::address_text(address("fd00::2")) == "fd00::2");
}

TEST_CASE("Bans: kept in the database, written by the archive thread, taken back at the next open", "[bans][archive]") {
  TempDir dir;
  const auto path = dir.file("chat.db");
  const auto now = WallClock::now();
  {
    Archive archive(ArchiveOptions{path});
    archive.start();
    Bans bans(archive);
    REQUIRE(bans.add(ban_of("bob", "10.0.0.5", now + 1h, "flooding"), now) == Bans::Added::added);
    REQUIRE(bans.add(ban_of("carol", "", now + 2h), now) == Bans::Added::added);
    REQUIRE(bans.add(ban_of("dave", "10.0.0.6", now + 2h), now) == Bans::Added::added);
    REQUIRE(bans.add(ban_of("erin", "10.0.0.7", now + 1500ms), now) == Bans::Added::added);
    REQUIRE(bans.lift_nick("dave", now).size() == 1);
    // A ban made two hours ago for one hour: on disk, but over by the next open.
    REQUIRE(bans.add(ban_of("gone", "10.0.0.8", now - 1h), now - 2h) == Bans::Added::added);
    // The archive thread writes them with its next batch, while the archive is open.
    CHECK(chat::test::eventually([&] { return query_int(path, "SELECT count(*) FROM bans") == 4; }, 5s));
    archive.stop();
  }
  CHECK(query_int(path, "SELECT count(*) FROM bans WHERE nick_key = 'bob' AND address = '10.0.0.5'") == 1);
  CHECK(query_int(path, "PRAGMA user_version") == 1);  // the same schema version

  {
    Archive archive(ArchiveOptions{path});
    CHECK(archive.bans_at_start().size() == 3);  // not "gone", whose row the open deleted
    Bans bans(archive);
    REQUIRE(bans.for_nick("BOB", now));
    CHECK(bans.for_nick("bob", now)->reason == "flooding");
    CHECK(bans.for_nick("bob", now)->by == "op");
    CHECK(bans.for_address(address("10.0.0.5"), now));
    CHECK(bans.for_nick("carol", now));
    CHECK_FALSE(bans.for_nick("dave", now));
    CHECK_FALSE(bans.for_nick("gone", now - 90min));
    // Over while the server runs: let go of at the next lookup, and its row goes too.
    CHECK(bans.for_nick("erin", now + 1s));
    CHECK_FALSE(bans.for_nick("erin", now + 2s));
    archive.stop();
  }
  CHECK(query_int(path, "SELECT count(*) FROM bans WHERE nick_key IN ('erin', 'gone')") == 0);
  CHECK(query_int(path, "SELECT count(*) FROM bans") == 2);
}

TEST_CASE("Bans: a database from before bans were kept gets its table at the next open, same version", "[bans][archive]") {
  TempDir dir;
  const auto path = dir.file("old.db");
  {
    Archive archive(ArchiveOptions{path});
    archive.stop();
  }
  exec_sql(path, "DROP TABLE bans");  // as an earlier chatserver left it
  REQUIRE(query_int(path, "SELECT count(*) FROM sqlite_schema WHERE name = 'bans'") == 0);
  {
    Archive archive(ArchiveOptions{path});
    CHECK(archive.bans_at_start().empty());
    Bans bans(archive);
    REQUIRE(bans.add(ban_of("bob", "", WallClock::now() + 1h)) == Bans::Added::added);
    archive.stop();  // the last batch: the ban's row
  }
  CHECK(query_int(path, "SELECT count(*) FROM bans") == 1);
  CHECK(query_int(path, "PRAGMA user_version") == 1);
  Archive again(ArchiveOptions{path});
  REQUIRE(again.bans_at_start().size() == 1);
  CHECK(again.bans_at_start()[0].nick == "bob");
}
