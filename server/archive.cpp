// Archive (archive.hpp): the room's public events and its seats in SQLite, written in batches
// by a thread of its own, read by any thread through pooled read-only connections.
//
// The file holds (user_version 1, application_id 'CHAT'):
//
//   meta(key, value)   run        this run's number (one more at each open)
//                      last_seat  the largest seat number ever used (never reused)
//                      gone_upto  the largest event id no longer kept (see after())
//                      clean      1 when the last run wrote everything it was given
//   events             one row per public event, id = the room's id (run * 2^32 + n)
//   events_fts         FTS5 index over the text of msg and me rows: "external content"
//                      (it stores no text of its own, only the index; rowid = events.id),
//                      filled a batch at a time (one INSERT ... SELECT per transaction) and
//                      emptied by a delete trigger, so pruning events prunes the index too
//   seats              one row per seat that may be resumed (open = 1); closing a seat clears
//                      its token hash and sets open = 0, and the next prune deletes the row
//   bans               one row per banned nickname (BAN), until its time is up or it is
//                      lifted; created by every open when it is not there (CREATE TABLE IF NOT
//                      EXISTS): a database of an earlier chatserver gets it without a new schema
//                      version, and an earlier chatserver reading this one ignores it
//
// Memory: the "ring" holds every event not yet written (the queue's and the batch in flight)
// plus the last options.recent written ones, so the common questions (recent(), a resume a
// few seconds back) never touch the disk. With --db none the ring is the whole history.
//
// Locks: mutex_ guards State (the ring, the queue, the seats' and the bans' mirrors, the
// counters); the room's side (and Bans) holds it only to push. Db's reader pool has a mutex of its own. The writer's
// connection is the constructor's, then the archive thread's (or stop()'s, if start() was
// never called): never two threads at once, so it is opened with SQLITE_OPEN_NOMUTEX.
#include "server/archive.hpp"

#include "common/log.hpp"
#include "common/text.hpp"

#include <sqlite3.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace chat {

namespace {

constexpr int schema_version = 1;
constexpr std::int32_t chat_application_id = 0x43484154;  // "CHAT": PRAGMA application_id
constexpr std::size_t max_queued = 1'000'000;        // records waiting before the oldest events go
constexpr std::size_t memory_only_default_cap = 100'000;  // --db none without --history-keep N
constexpr std::int64_t prune_rows_per_pass = 2'000;  // a bounded delete: batches wait for it
constexpr auto prune_interval = std::chrono::seconds(5);
constexpr int archive_nice = 19;
// The search index is built behind the events (write_batch, index_pending): when the room has
// been quiet this long, or when this many written events wait for it. A busy room's messages
// reach the disk every batch; their words reach the index in one step when it pauses. (Indexing
// costs the archive thread three times what writing the event does: docs/performance.md.)
constexpr auto index_quiet = std::chrono::milliseconds(250);
constexpr std::uint64_t index_lag_max = 100'000;
constexpr int wal_pages_max = 16'384;  // 64 MiB of WAL at most                     // the archive thread's nice value (background work)
constexpr std::size_t max_idle_readers = 4;
constexpr std::size_t max_limit = 1u << 20;          // a sanity bound on `limit` and `n`
constexpr std::size_t pending_search_scan = 200'000; // newest unwritten events searched in memory
// PRAGMA quick_check reads every page. Up to this size it costs well under a second, so it is
// run at every open; above it the open relies on the schema reads and SQLite's own checks as
// pages are used (a 1M-event file is ~250 MB: a full check would take seconds).
constexpr std::int64_t quick_check_max_bytes = 16ll << 20;

using Clock = std::chrono::steady_clock;

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---- SQLite, thinly wrapped ----------------------------------------------------------------

// A failed SQLite call: the code and sqlite3_errmsg's text ("database or disk is full").
struct SqliteError : std::runtime_error {
  SqliteError(int code_, const std::string& what) : std::runtime_error(what), code(code_) {}
  int code;
};

[[noreturn]] void fail(sqlite3* db, int rc) {
  throw SqliteError(rc, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

void exec(sqlite3* db, const char* sql) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    std::string text = message ? message : sqlite3_errstr(rc);
    sqlite3_free(message);
    throw SqliteError(rc, text);
  }
}

// One prepared statement. Not thread safe: it belongs to one connection, used by one thread
// at a time.
class Stmt {
 public:
  Stmt() = default;
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    const int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
    if (rc != SQLITE_OK) fail(db, rc);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(Stmt&& other) noexcept : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)) {}
  Stmt& operator=(Stmt&& other) noexcept {
    if (this != &other) {
      sqlite3_finalize(stmt_);
      db_ = other.db_;
      stmt_ = std::exchange(other.stmt_, nullptr);
    }
    return *this;
  }

  Stmt& bind(int i, std::int64_t value) {
    check(sqlite3_bind_int64(stmt_, i, value));
    return *this;
  }
  Stmt& bind(int i, std::uint64_t value) { return bind(i, static_cast<std::int64_t>(value)); }
  Stmt& bind(int i, std::string_view text) {
    check(sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT));
    return *this;
  }
  // true: a row is ready; false: done (and the statement is reset for the next use).
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) {
      const std::string text = sqlite3_errmsg(db_);  // before the reset
      sqlite3_reset(stmt_);
      throw SqliteError(rc, text);
    }
    sqlite3_reset(stmt_);
    return false;
  }
  void run() {
    while (step()) {
    }
  }
  // Ends a query early, and forgets the bindings (a text bound stays until then).
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string text(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
    return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
  }

 private:
  void check(int rc) const {
    if (rc != SQLITE_OK) fail(db_, rc);
  }
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

// Resets a statement when a query ends, however it ends.
struct ResetOnExit {
  Stmt& stmt;
  ~ResetOnExit() { stmt.reset(); }
};

constexpr const char* event_columns = "id, time_ms, kind, nick, arg, code, text";

// A row of `event_columns` (columns 0-6); nullopt for a kind this build does not know.
std::optional<ArchivedEvent> row_event(const Stmt& q) {
  const auto kind = kind_from_token(q.text(2));
  if (!kind) return std::nullopt;
  ArchivedEvent e;
  e.id = static_cast<std::uint64_t>(q.int64(0));
  e.time_ms = q.int64(1);
  e.event.kind = *kind;
  e.event.nick = q.text(3);
  e.event.arg = q.text(4);
  e.event.code = q.text(5);
  e.event.text = q.text(6);
  e.event.id = e.id;
  e.event.time_ms = e.time_ms;
  return e;
}

// ---- the schema --------------------------------------------------------------------------

constexpr const char* schema_sql = R"sql(
CREATE TABLE meta(
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta(key, value) VALUES ('run', 0), ('last_seat', 0), ('gone_upto', 0), ('clean', 1), ('indexed_upto', 0);
CREATE TABLE events(
  id INTEGER PRIMARY KEY,      -- the room's id: run * 2^32 + n
  time_ms INTEGER NOT NULL,    -- Unix time in milliseconds
  kind TEXT NOT NULL,          -- kind_token(): join, leave, msg, me, nick, back, comment
  nick TEXT NOT NULL,
  arg TEXT NOT NULL,
  code TEXT NOT NULL,
  text TEXT NOT NULL
);
CREATE VIRTUAL TABLE events_fts USING fts5(
  text, content = 'events', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TABLE seats(
  seat INTEGER PRIMARY KEY,
  token_hash TEXT NOT NULL,    -- hex SHA-256 of the resume token ('' once closed)
  nick TEXT NOT NULL,
  dropped_ms INTEGER NOT NULL, -- 0: connected when last written
  open INTEGER NOT NULL        -- 1: may be resumed; 0: closed, deleted by the next prune
);
)sql";

// Not part of schema_sql: every open runs it, so that a database made before bans were kept
// gets the table (schema version 1 either way).
constexpr const char* bans_sql = R"sql(
CREATE TABLE IF NOT EXISTS bans(
  nick_key TEXT PRIMARY KEY,   -- fold_nick(nick): one ban per nickname, ignoring case
  nick TEXT NOT NULL,
  address TEXT NOT NULL,       -- '' when unknown (the nickname was not connected here)
  until_ms INTEGER NOT NULL,   -- Unix ms: over from then on (deleted at the next open)
  by_nick TEXT NOT NULL,
  reason TEXT NOT NULL
) WITHOUT ROWID;
)sql";

// ---- the files this process holds -----------------------------------------------------------

// Another Archive of this process on the same file must be refused without opening (and then
// closing) a descriptor of it: closing any descriptor of a file drops every POSIX lock the
// process holds on it, SQLite's included. So the process remembers the files it holds.
std::mutex held_mutex;
std::set<std::pair<dev_t, ino_t>> held_files;  // guarded by held_mutex

std::string errno_text(int err) { return std::strerror(err); }

// mkdir -p of the file's directory, each missing level with mode 0700.
void make_parent_dirs(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos || slash == 0) return;
  const std::string dir = path.substr(0, slash);
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw ArchiveError(path + ": cannot create it: " + dir + " is not a directory");
    return;
  }
  for (std::size_t pos = 1;; ++pos) {
    pos = dir.find('/', pos);
    const std::string level = dir.substr(0, pos);
    if (::mkdir(level.c_str(), 0700) != 0) {
      const int err = errno;
      if (err != EEXIST) {
        throw ArchiveError(path + ": cannot create its directory " + level + ": " + errno_text(err));
      }
      if (::stat(level.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        throw ArchiveError(path + ": cannot create it: " + level + " is not a directory");
      }
    }
    if (pos == std::string::npos) break;
  }
}

// ---- words, for search() ---------------------------------------------------------------------

std::vector<std::string> split_words(std::string_view words) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < words.size()) {
    const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\0'; };
    while (i < words.size() && blank(words[i])) ++i;
    std::size_t j = i;
    while (j < words.size() && !blank(words[j])) ++j;
    if (j > i) out.emplace_back(words.substr(i, j - i));
    i = j;
  }
  return out;
}

// Each word as an FTS5 string ("..." with " doubled), joined by spaces: an implicit AND of
// phrases. Inside a string nothing is syntax (AND, NEAR, *, ^, parentheses are text), so no
// input can make the query fail to parse.
std::string fts_query(const std::vector<std::string>& words) {
  std::string q;
  for (const auto& w : words) {
    if (!q.empty()) q += ' ';
    q += '"';
    for (char c : w) {
      if (c == '"') q += '"';
      q += c;
    }
    q += '"';
  }
  return q;
}

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string ascii_folded(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = ascii_lower(c);
  return out;
}

// FTS5's unicode61 tokenizer, approximately: a token is a run of ASCII letters and digits
// and non-ASCII characters other than the common punctuation and symbol blocks (SQLite also
// counts characters beyond U+FFFF, emoji included, as token characters); ASCII is folded to
// lower case. It differs from SQLite in the rarer scripts' punctuation and in folding non-ASCII
// case and diacritics, which is why it serves only the events of the batch not yet written.
std::vector<std::string> fts_like_tokens(std::string_view text) {
  std::vector<std::string> tokens;
  std::string current;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto byte = static_cast<unsigned char>(text[i]);
    std::size_t len = 1;
    bool token_char;
    if (byte < 0x80) {
      token_char = (byte >= '0' && byte <= '9') || (byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z');
    } else {
      char32_t cp = 0;
      if (byte >= 0xF0) {
        len = 4;
        cp = byte & 0x07;
      } else if (byte >= 0xE0) {
        len = 3;
        cp = byte & 0x0F;
      } else if (byte >= 0xC0) {
        len = 2;
        cp = byte & 0x1F;
      }
      len = std::min(len, text.size() - i);
      for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
      const bool separator = (cp >= 0x80 && cp <= 0xBF) || cp == 0xD7 || cp == 0xF7 ||
                             (cp >= 0x2000 && cp <= 0x2BFF) || (cp >= 0x3000 && cp <= 0x303F) ||
                             (cp >= 0xFE10 && cp <= 0xFE6F) || (cp >= 0xFF01 && cp <= 0xFF0F) ||
                             (cp >= 0xFF1A && cp <= 0xFF20);
      token_char = !separator;
    }
    if (token_char) {
      for (std::size_t k = 0; k < len; ++k) current += ascii_lower(text[i + k]);
    } else if (!current.empty()) {
      tokens.push_back(std::move(current));
      current.clear();
    }
    i += len;
  }
  if (!current.empty()) tokens.push_back(std::move(current));
  return tokens;
}

// What the FTS5 query of fts_query(words) would say of `text`, approximately: every word's
// tokens appear in the text as a phrase (consecutive). Words without tokens ("*", "--") are
// ignored, as FTS5 ignores empty phrases in an AND; with none left nothing matches.
bool fts_like_match(std::string_view text, const std::vector<std::vector<std::string>>& phrases) {
  if (phrases.empty()) return false;
  const auto tokens = fts_like_tokens(text);
  for (const auto& phrase : phrases) {
    if (std::search(tokens.begin(), tokens.end(), phrase.begin(), phrase.end()) == tokens.end()) return false;
  }
  return true;
}

// --db none: every word a case-insensitive (ASCII) substring of the text.
bool substring_match(std::string_view text, const std::vector<std::string>& folded_words) {
  const std::string folded = ascii_folded(text);
  for (const auto& w : folded_words) {
    if (folded.find(w) == std::string::npos) return false;
  }
  return true;
}

bool searchable(const ArchivedEvent& e) {
  return e.event.kind == Event::Kind::msg || e.event.kind == Event::Kind::me;
}

// The union of two lists sorted by id, without duplicates (an event both in memory and on disk).
std::vector<ArchivedEvent> merge_by_id(std::vector<ArchivedEvent> a, std::vector<ArchivedEvent> b) {
  std::vector<ArchivedEvent> out;
  out.reserve(a.size() + b.size());
  std::size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    if (j == b.size() || (i < a.size() && a[i].id < b[j].id)) {
      out.push_back(std::move(a[i++]));
    } else if (i == a.size() || b[j].id < a[i].id) {
      out.push_back(std::move(b[j++]));
    } else {
      out.push_back(std::move(a[i++]));
      ++j;
    }
  }
  return out;
}

// A disk read that failed (a reader thread): logged, at most one line every 10 seconds.
void log_read_failure(const std::string& path, const char* what, const std::exception& e) {
  static std::atomic<std::int64_t> last_ms{0};
  const std::int64_t now = unix_ms_now();
  std::int64_t last = last_ms.load(std::memory_order_relaxed);
  if (now - last < 10'000 || !last_ms.compare_exchange_strong(last, now)) return;
  log_warn("history ", what, " from ", path, " failed: ", e.what(), " (answered from memory)");
}

}  // namespace

// ---- Db: the connections ------------------------------------------------------------------

// The writer's connection, its statements and the file lock, plus the pool of read-only
// connections. Threads: the writer side from one thread at a time (the constructor's, then
// the archive thread); acquire_reader()/release_reader() from any thread (pool_mutex_).
class Archive::Db {
 public:
  // A read-only connection with its own prepared statements; one thread at a time uses it.
  struct Reader {
    sqlite3* db = nullptr;
    Stmt after, before, search;
    explicit Reader(const std::string& path) {
      const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
      if (rc != SQLITE_OK) {
        const std::string text = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
        sqlite3_close(db);
        throw SqliteError(rc, text);
      }
      try {
        sqlite3_busy_timeout(db, 2000);
        const std::string cols = event_columns;
        after = Stmt(db, ("SELECT " + cols + " FROM events WHERE id > ?1 AND id < ?2 ORDER BY id LIMIT ?3").c_str());
        before = Stmt(db, ("SELECT " + cols + " FROM events WHERE id < ?1 ORDER BY id DESC LIMIT ?2").c_str());
        // The subquery lets FTS5 walk its index newest first and stop after n.
        search = Stmt(db, ("SELECT " + cols +
                           " FROM events WHERE id IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?1"
                           " ORDER BY rowid DESC LIMIT ?2) AND kind IN ('msg', 'me') ORDER BY id")
                              .c_str());
      } catch (...) {
        close();
        throw;
      }
    }
    ~Reader() { close(); }
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;
    void close() {
      after = Stmt();
      before = Stmt();
      search = Stmt();
      sqlite3_close(db);
      db = nullptr;
    }
  };

  // A reader on loan; back to the pool when it goes, unless a query on it failed.
  class Lease {
   public:
    Lease(Db& db, std::unique_ptr<Reader> r) : db_(db), reader_(std::move(r)) {}
    ~Lease() {
      if (reader_ && !failed_) db_.release_reader(std::move(reader_));
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Reader* operator->() { return reader_.get(); }
    void failed() { failed_ = true; }

   private:
    Db& db_;
    std::unique_ptr<Reader> reader_;
    bool failed_ = false;
  };

  explicit Db(std::string path);  // opens and locks; throws ArchiveError
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  const std::string path;
  sqlite3* writer = nullptr;

  // The writer's statements (prepare_writer(), once the schema is there).
  Stmt begin, commit, rollback, insert_event, index_events, upsert_seat, close_seat, upsert_ban, delete_ban, meta_max,
      meta_set, oldest_after_offset, oldest_times, delete_upto, delete_closed_seats;
  void prepare_writer();

  // Archive thread: rows in `events`; -1 until the first prune pass that needs it counts them
  // (--history-keep N): on the archive thread, because count(*) of 1M rows takes ~0.4 s.
  std::int64_t rows = -1;
  bool seats_closed = false;  // archive thread: closed seats wait for the next prune
  bool prune_failing = false; // archive thread: a prune failed (logged once until one works)

  Lease acquire_reader() {
    {
      std::lock_guard lock(pool_mutex_);
      if (!idle_.empty()) {
        auto r = std::move(idle_.back());
        idle_.pop_back();
        return Lease(*this, std::move(r));
      }
    }
    return Lease(*this, std::make_unique<Reader>(path));  // opened outside the lock
  }
  void release_reader(std::unique_ptr<Reader> r) {
    std::lock_guard lock(pool_mutex_);
    if (idle_.size() < max_idle_readers) idle_.push_back(std::move(r));
  }

  // The writer's transaction: BEGIN IMMEDIATE ... COMMIT, rolled back if anything throws.
  template <typename F>
  void transaction(F&& body) {
    begin.run();
    try {
      body();
      commit.run();
    } catch (...) {
      if (!sqlite3_get_autocommit(writer)) {
        try {
          rollback.run();
        } catch (const std::exception&) {
          // SQLite has rolled back by itself after some errors; nothing more to do.
        }
      }
      throw;
    }
  }

 private:
  int lock_fd_ = -1;
  std::pair<dev_t, ino_t> file_id_{};
  std::mutex pool_mutex_;
  std::vector<std::unique_ptr<Reader>> idle_;  // guarded by pool_mutex_
};

Archive::Db::Db(std::string path_) : path(std::move(path_)) {
  // SQLite counts every allocation under one process-wide mutex (for sqlite3_memory_used(),
  // which nothing here reads): off, before the library's first use. (If something used SQLite
  // first, this is refused and nothing changes.)
  static const int memstatus_off = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  (void)memstatus_off;
  make_parent_dirs(path);
  {
    // Checked, opened and flocked under held_mutex: this process never opens a second
    // descriptor of a file it holds (see held_files).
    std::lock_guard lock(held_mutex);
    struct stat st {};
    const bool existed = ::stat(path.c_str(), &st) == 0;
    if (existed && held_files.count({st.st_dev, st.st_ino})) throw ArchiveError(path + ": is held by another chatserver");
    if (existed && S_ISDIR(st.st_mode)) throw ArchiveError(path + ": is a directory");
    lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd_ < 0) {
      const int err = errno;
      if (!existed) {
        throw ArchiveError(path + ": cannot create it: " + errno_text(err) +
                           (err == EACCES || err == EROFS ? " (is the directory writable?)" : ""));
      }
      throw ArchiveError(path + ": cannot open it for writing: " + errno_text(err));
    }
    // flock and SQLite's fcntl locks are separate on Linux: this lock says "a chatserver has
    // it" to other chatservers and stays for the Archive's life, whatever SQLite does.
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      ::close(lock_fd_);  // no SQLite connection of ours is open on it (held_files said so)
      lock_fd_ = -1;
      if (err == EWOULDBLOCK) throw ArchiveError(path + ": is held by another chatserver");
      throw ArchiveError(path + ": cannot lock it: " + errno_text(err));
    }
    if (::fstat(lock_fd_, &st) == 0) file_id_ = {st.st_dev, st.st_ino};
    held_files.insert(file_id_);
  }
  try {
    const int rc = sqlite3_open_v2(path.c_str(), &writer, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) fail(writer, rc);
    sqlite3_extended_result_codes(writer, 1);
    sqlite3_busy_timeout(writer, 2000);
  } catch (const SqliteError& e) {
    // The destructor does not run for a constructor that throws: undo by hand.
    sqlite3_close(writer);
    writer = nullptr;
    std::lock_guard lock(held_mutex);
    held_files.erase(file_id_);
    ::close(lock_fd_);
    throw ArchiveError(path + ": " + e.what());
  }
}

Archive::Db::~Db() {
  {
    std::lock_guard lock(pool_mutex_);
    idle_.clear();
  }
  for (Stmt* st : {&begin, &commit, &rollback, &insert_event, &index_events, &upsert_seat, &close_seat, &upsert_ban,
                   &delete_ban, &meta_max, &meta_set, &oldest_after_offset, &oldest_times, &delete_upto,
                   &delete_closed_seats}) {
    *st = Stmt();
  }
  // The last connection to close checkpoints the WAL into the file and removes it.
  if (sqlite3_close(writer) != SQLITE_OK) sqlite3_close_v2(writer);
  // Only now, with no SQLite descriptor of ours left: closing this one drops the process's
  // POSIX locks on the file, which SQLite would otherwise still count on.
  std::lock_guard lock(held_mutex);
  held_files.erase(file_id_);
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

void Archive::Db::prepare_writer() {
  begin = Stmt(writer, "BEGIN IMMEDIATE");
  commit = Stmt(writer, "COMMIT");
  rollback = Stmt(writer, "ROLLBACK");
  insert_event = Stmt(writer, "INSERT INTO events(id, time_ms, kind, nick, arg, code, text) VALUES (?, ?, ?, ?, ?, ?, ?)");
  // The search index takes a batch's messages in one statement. A trigger per row (as the
  // delete side still has: pruning is rare) made FTS5 write a tiny segment of its index at
  // every INSERT, which cost four fifths of the archive thread's time at a busy room's rate
  // (docs/performance.md, "History and resume").
  index_events = Stmt(writer,
                      "INSERT INTO events_fts(rowid, text) SELECT id, text FROM events"
                      " WHERE id BETWEEN ?1 AND ?2 AND kind IN ('msg', 'me')");
  upsert_seat = Stmt(writer,
                     "INSERT INTO seats(seat, token_hash, nick, dropped_ms, open) VALUES (?1, ?2, ?3, ?4, 1)"
                     " ON CONFLICT(seat) DO UPDATE SET token_hash = ?2, nick = ?3, dropped_ms = ?4, open = 1");
  close_seat = Stmt(writer, "UPDATE seats SET open = 0, token_hash = '' WHERE seat = ?");
  upsert_ban = Stmt(writer,
                    "INSERT INTO bans(nick_key, nick, address, until_ms, by_nick, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                    " ON CONFLICT(nick_key) DO UPDATE SET nick = ?2, address = ?3, until_ms = ?4, by_nick = ?5,"
                    " reason = ?6");
  delete_ban = Stmt(writer, "DELETE FROM bans WHERE nick_key = ?");
  meta_max = Stmt(writer, "UPDATE meta SET value = max(value, ?2) WHERE key = ?1");
  meta_set = Stmt(writer, "UPDATE meta SET value = ?2 WHERE key = ?1");
  oldest_after_offset = Stmt(writer, "SELECT id FROM events ORDER BY id LIMIT 1 OFFSET ?");
  oldest_times = Stmt(writer, "SELECT id, time_ms FROM events ORDER BY id LIMIT ?");
  delete_upto = Stmt(writer, "DELETE FROM events WHERE id <= ?");
  delete_closed_seats = Stmt(writer, "DELETE FROM seats WHERE open = 0");
}

// ---- State: what mutex_ guards ----------------------------------------------------------------

using EventPtr = std::shared_ptr<const ArchivedEvent>;  // shared by the queue and the ring

struct Archive::State {
  // The ring: ids increasing. On disk: every event not yet written plus the last `recent`
  // written ones. Memory only: everything kept.
  std::deque<EventPtr> ring;
  std::uint64_t last_id = 0;
  // The largest id let go of for good (after()'s rule, archive.hpp); persisted in meta.
  std::uint64_t gone_upto = 0;
  // On disk: the largest id that may be kept on disk but is no longer in the ring (0: the
  // ring holds every kept event). The ring answers after(id) when id >= this.
  std::uint64_t ring_evicted_upto = 0;

  // The queue (on disk only): events in id order, and the seats changed since the last take.
  std::deque<EventPtr> queue;
  std::uint64_t in_flight_from = 0;  // the first id of the batch being written; 0: none
  // The search index: every searchable event with id <= indexed_upto is in it; written events
  // after it (at most about index_lag_max) are not yet, and stay in the ring for search().
  std::uint64_t indexed_upto = 0;
  std::uint64_t written_upto = 0;    // the largest id written to the disk
  std::uint64_t unindexed = 0;       // events written since indexed_upto
  Clock::time_point last_append{};   // when the room last appended (the quiet clock)
  Clock::time_point next_index_try{};  // after a failed index_pending(): not before this
  std::size_t in_flight_count = 0;   // events in the batch being written
  std::unordered_map<std::uint64_t, SeatRecord> seats;  // the open seats, as they are now
  std::unordered_set<std::uint64_t> dirty_seats;        // to write: upsert, or close if not in `seats`
  std::unordered_map<std::string, BanRecord> bans;      // the bans, as they are now, by fold_nick
  std::unordered_set<std::string> dirty_bans;           // to write: upsert, or delete if not in `bans`
  std::uint64_t max_seat = 0;
  Clock::time_point first_waiting{};  // when the queue last went from empty to not empty

  bool started = false;
  bool stopping = false;  // stop() called: write the last batch now and end
  bool stopped = false;   // stop() has run (or is running)

  // Losses, reported by the archive thread (trouble_): the current episode.
  bool in_trouble = false;       // trouble_ was told writing fails; not yet that it works again
  std::uint64_t episode_lost = 0;
  std::uint64_t episode_first = 0;
  std::uint64_t episode_last = 0;
  bool episode_gapped = false;   // a batch was written during the episode: the ids are not one run
  std::uint64_t dropped_since_take = 0;  // events the full queue dropped since the last batch was taken

  Counters counters;
  std::optional<std::int64_t> test_extra_pages;  // test_limit_pages(), for the next batch
  std::size_t queue_limit = max_queued;          // test_limit_queue() lowers it

  std::size_t waiting() const { return queue.size() + dirty_seats.size() + dirty_bans.size(); }

  // The first id not yet written or dropped (queue or batch in flight); UINT64_MAX: none.
  std::uint64_t unsaved_from() const {
    if (in_flight_from != 0) return in_flight_from;
    return queue.empty() ? UINT64_MAX : queue.front()->id;
  }
  // The first id search() must look for in memory: not written, or written but not indexed.
  std::uint64_t unindexed_from() const {
    return unindexed == 0 ? unsaved_from() : std::min(unsaved_from(), indexed_upto + 1);
  }

  void note_lost(std::uint64_t first, std::uint64_t last, std::uint64_t count) {
    counters.lost += count;
    gone_upto = std::max(gone_upto, last);
    episode_first = episode_first == 0 ? first : std::min(episode_first, first);
    episode_last = std::max(episode_last, last);
    episode_lost += count;
  }

  // Bounds the ring (with mutex_ held; O(1) amortized): --history-keep first (those events are
  // gone), then the ring's own size (memory only: gone; on disk: still on disk). Never an
  // event not yet written: the readers count on finding those here.
  // `evicted`: the events let go of are moved there, for the caller to free after it lets go of
  // mutex_ (the archive thread: thousands at a time, while the room may be waiting to append).
  void trim(const ArchiveOptions& o, bool on_disk, std::int64_t now_ms, std::vector<EventPtr>* evicted = nullptr) {
    const auto pop = [&] {
      if (evicted != nullptr) evicted->push_back(std::move(ring.front()));
      ring.pop_front();
    };
    const std::uint64_t protect_from = on_disk ? unindexed_from() : unsaved_from();
    const auto unprotected = [&] { return !ring.empty() && ring.front()->id < protect_from; };
    const auto let_go = [&] {
      gone_upto = std::max(gone_upto, ring.front()->id);
      pop();
    };
    if (o.keep_age.count() > 0) {
      const std::int64_t cutoff = now_ms - std::chrono::duration_cast<std::chrono::milliseconds>(o.keep_age).count();
      while (unprotected() && ring.front()->time_ms < cutoff) let_go();
    }
    if (o.keep_rows != 0) {
      while (ring.size() > o.keep_rows && unprotected()) let_go();
    }
    if (!on_disk) {
      const std::size_t cap = o.keep_rows != 0 ? o.keep_rows : memory_only_default_cap;
      while (ring.size() > cap) let_go();
      return;
    }
    // Written events beyond `recent` stay on disk only.
    const auto first_unsaved = std::lower_bound(ring.begin(), ring.end(), protect_from,
                                                [](const EventPtr& e, std::uint64_t id) { return e->id < id; });
    std::size_t written = static_cast<std::size_t>(first_unsaved - ring.begin());
    while (written > o.recent) {
      ring_evicted_upto = ring.front()->id;
      pop();
      --written;
    }
  }
};

// ---- opening ------------------------------------------------------------------------------

Archive::Archive(ArchiveOptions options) : options_(std::move(options)), state_(std::make_unique<State>()) {
  if (options_.path.empty()) return;  // memory only: run 1, nothing to load
  db_ = std::make_unique<Db>(options_.path);
  sqlite3* w = db_->writer;
  State& s = *state_;
  try {
    // The first statements read the file's header: "file is not a database" shows here.
    {
      Stmt wal(w, "PRAGMA journal_mode = WAL");
      if (!wal.step() || wal.text(0) != "wal") {
        throw SqliteError(SQLITE_ERROR, "cannot use write-ahead logging (journal_mode " + wal.text(0) + ")");
      }
      wal.reset();
    }
    exec(w, "PRAGMA journal_size_limit = 67108864");  // the WAL file shrinks back after checkpoints

    std::int64_t app_id = 0, version = 0, tables = 0, pages = 0, page_size = 0;
    {
      Stmt q(w, "PRAGMA application_id");
      if (q.step()) app_id = q.int64(0);
      q.reset();
      Stmt v(w, "PRAGMA user_version");
      if (v.step()) version = v.int64(0);
      v.reset();
      Stmt t(w, "SELECT count(*) FROM sqlite_schema");
      if (t.step()) tables = t.int64(0);
      t.reset();
      Stmt p(w, "PRAGMA page_count");
      if (p.step()) pages = p.int64(0);
      p.reset();
      Stmt z(w, "PRAGMA page_size");
      if (z.step()) page_size = z.int64(0);
      z.reset();
    }
    if (tables > 0 && app_id != chat_application_id) {
      throw ArchiveError(options_.path + ": is not a chatserver database (it holds other tables)");
    }
    if (app_id == chat_application_id && version > schema_version) {
      throw ArchiveError(options_.path + ": was written by a newer chatserver (schema version " +
                         std::to_string(version) + "; this one knows " + std::to_string(schema_version) + ")");
    }
    if (tables > 0 && pages * page_size <= quick_check_max_bytes) {
      // quick_check(1): stop at the first problem (its text may span lines: the first one that
      // says something goes into the one-line error).
      Stmt check(w, "PRAGMA quick_check(1)");
      const std::string report = check.step() ? check.text(0) : "ok";
      check.reset();
      if (report != "ok") {
        std::string line;
        std::size_t from = 0;
        while (from < report.size()) {
          auto to = report.find('\n', from);
          if (to == std::string::npos) to = report.size();
          line = report.substr(from, to - from);
          if (!line.empty() && !line.starts_with("***")) break;
          from = to + 1;
        }
        throw ArchiveError(options_.path + ": database disk image is malformed (" + line + ")");
      }
    }

    // This run's number, committed with a full sync before the room hands out any id made of it.
    exec(w, "PRAGMA synchronous = FULL");
    exec(w, "BEGIN IMMEDIATE");
    try {
      if (tables == 0) {
        exec(w, schema_sql);
        exec(w, ("PRAGMA application_id = " + std::to_string(chat_application_id)).c_str());
        exec(w, ("PRAGMA user_version = " + std::to_string(schema_version)).c_str());
      }
      exec(w, bans_sql);
      {
        // Bans whose time is up are not loaded; their rows go now.
        Stmt over(w, "DELETE FROM bans WHERE until_ms <= ?");
        over.bind(1, unix_ms_now()).run();
      }
      // A file from before the index was filled a batch at a time had a trigger doing it row by
      // row: without this, each message would be indexed twice.
      exec(w, "DROP TRIGGER IF EXISTS events_fts_insert");
      // The index lags the events (index_quiet): a row deleted before it was indexed must not
      // be deleted from the index (FTS5 would take words out that were never put in).
      exec(w, "DROP TRIGGER IF EXISTS events_fts_delete");
      exec(w, R"sql(CREATE TRIGGER events_fts_delete AFTER DELETE ON events
  WHEN old.kind IN ('msg', 'me') AND old.id <= (SELECT value FROM meta WHERE key = 'indexed_upto') BEGIN
  INSERT INTO events_fts(events_fts, rowid, text) VALUES ('delete', old.id, old.text);
END)sql");
      // A file from before the index lagged had every row indexed.
      exec(w, "INSERT OR IGNORE INTO meta(key, value) SELECT 'indexed_upto', coalesce(max(id), 0) FROM events");
      std::unordered_map<std::string, std::int64_t> meta;
      {
        Stmt m(w, "SELECT key, value FROM meta");
        while (m.step()) meta[m.text(0)] = m.int64(1);
      }
      for (const char* key : {"run", "last_seat", "gone_upto", "clean"}) {
        if (!meta.count(key)) throw ArchiveError(options_.path + ": is not a complete chatserver database (meta." + key + " is missing)");
      }
      run_ = static_cast<std::uint64_t>(meta["run"]) + 1;
      last_seat_ = static_cast<std::uint64_t>(meta["last_seat"]);
      s.gone_upto = static_cast<std::uint64_t>(meta["gone_upto"]);
      if (meta["clean"] == 0) {
        // The last run ended without writing its last batch (kill -9, a crash, a failed final
        // write): it may have handed out ids after the last one kept, all below this run's.
        s.gone_upto = std::max(s.gone_upto, (run_ << 32) - 1);
      }
      Stmt set(w, "UPDATE meta SET value = ?2 WHERE key = ?1");
      set.bind(1, std::string_view("run")).bind(2, static_cast<std::int64_t>(run_)).run();
      set.bind(1, std::string_view("clean")).bind(2, std::int64_t{0}).run();
      set.bind(1, std::string_view("gone_upto")).bind(2, s.gone_upto).run();
      // What the last run wrote but had not indexed yet (it ended without a quiet moment: a
      // kill -9, or a stop that failed): indexed now, before anyone can search.
      std::int64_t max_id = 0;
      {
        Stmt q(w, "SELECT coalesce(max(id), 0) FROM events");
        if (q.step()) max_id = q.int64(0);
      }
      if (meta["indexed_upto"] < max_id) {
        Stmt index(w, "INSERT INTO events_fts(rowid, text) SELECT id, text FROM events"
                      " WHERE id > ?1 AND kind IN ('msg', 'me')");
        index.bind(1, meta["indexed_upto"]).run();
        set.bind(1, std::string_view("indexed_upto")).bind(2, max_id).run();
      }
      s.indexed_upto = s.written_upto = static_cast<std::uint64_t>(max_id);
      exec(w, "COMMIT");
    } catch (...) {
      if (!sqlite3_get_autocommit(w)) sqlite3_exec(w, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
    exec(w, "PRAGMA synchronous = NORMAL");  // WAL: a commit is safe from a crash, fsync at checkpoints
    // The checkpoint (copying the WAL into the file, with an fsync) waits for a quiet moment
    // (index_pending) instead of coming every 1,000 pages in the middle of a busy minute; the
    // WAL may grow to this many pages (4 KiB each) before a commit does it anyway.
    exec(w, ("PRAGMA wal_autocheckpoint = " + std::to_string(wal_pages_max)).c_str());
    db_->prepare_writer();

    // What the room needs at once: the seats, the last id, the recent events.
    {
      Stmt q(w, "SELECT seat, token_hash, nick, dropped_ms FROM seats WHERE open = 1 ORDER BY seat");
      while (q.step()) {
        SeatRecord r;
        r.seat = static_cast<std::uint64_t>(q.int64(0));
        r.token_hash = q.text(1);
        r.nick = q.text(2);
        r.dropped_ms = q.int64(3);
        seats_at_start_.push_back(r);
        s.seats.emplace(r.seat, r);
        last_seat_ = std::max(last_seat_, r.seat);
      }
    }
    s.max_seat = last_seat_;
    {
      Stmt q(w, "SELECT nick, address, until_ms, by_nick, reason FROM bans ORDER BY nick_key");
      while (q.step()) {
        BanRecord b{q.text(0), q.text(1), q.int64(2), q.text(3), q.text(4)};
        s.bans.emplace(fold_nick(b.nick), b);
        bans_at_start_.push_back(std::move(b));
      }
    }
    {
      Stmt q(w, (std::string("SELECT ") + event_columns + " FROM events ORDER BY id DESC LIMIT ?").c_str());
      q.bind(1, static_cast<std::int64_t>(std::min<std::size_t>(options_.recent, max_limit)));
      while (q.step()) {
        if (s.last_id == 0) s.last_id = static_cast<std::uint64_t>(q.int64(0));
        if (auto e = row_event(q)) s.ring.push_front(std::make_shared<const ArchivedEvent>(std::move(*e)));
      }
      q.reset();
    }
    if (!s.ring.empty()) {
      Stmt q(w, "SELECT max(id) FROM events WHERE id < ?");
      q.bind(1, s.ring.front()->id);
      if (q.step()) s.ring_evicted_upto = static_cast<std::uint64_t>(q.int64(0));  // NULL: 0
      q.reset();
    }
    s.trim(options_, true, unix_ms_now());
  } catch (const ArchiveError&) {
    db_.reset();
    throw;
  } catch (const SqliteError& e) {
    db_.reset();
    throw ArchiveError(options_.path + ": " + e.what());
  }
}

Archive::~Archive() { stop(); }

void Archive::start() {
  {
    std::lock_guard lock(mutex_);
    if (state_->started || state_->stopped) return;
    state_->started = true;
  }
  if (!on_disk()) return;  // memory only: nothing to write, no thread
  // SQLite wants more stack than a reader's 256 KiB now and then (FTS5 merges, big statements).
  thread_ = NamedThread("archive", std::max<std::size_t>(small_stack, 1u << 20), [this] { run_thread(); });
}

void Archive::stop() {
  std::unique_lock lock(mutex_);
  if (state_->stopped) return;
  state_->stopped = true;
  state_->stopping = true;
  const bool threaded = thread_.joinable();
  lock.unlock();
  wake_.notify_all();
  if (threaded) thread_.join();  // it writes the last batch before it ends
  if (!db_) return;
  lock.lock();
  finish(lock);
}

// ---- the archive thread ------------------------------------------------------------------------

void Archive::run_thread() {
  set_thread_role("archive");
  // Background work: when the CPUs are busy the delivery path (readers, writers, the poller)
  // goes first and the batch waits a little, in its queue. Nice 19 on this thread alone (Linux
  // gives each thread its own nice value); lowering one's own priority needs no privilege.
  if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), archive_nice) != 0) {
    log_debug("archive: could not lower the thread's priority: ", std::strerror(errno));
  }
  try {
    std::unique_lock lock(mutex_);
    auto next_prune = Clock::now();  // a first pass at once: --history-keep may have changed
    bool more_to_prune = false;
    for (;;) {
      State& s = *state_;
      const auto now = Clock::now();
      const bool work = s.waiting() > 0;
      if (s.stopping) {
        // One last batch of what waits now, and out: stop() (finish()) writes anything appended
        // after this take, and the clean mark.
        if (work) write_batch(lock);
        break;  // finish() writes the rest, batch by batch
      }
      if (work && (s.waiting() >= options_.batch_max || now >= s.first_waiting + options_.batch_interval)) {
        write_batch(lock);
        continue;
      }
      if (s.unindexed > 0 && s.queue.empty() && now >= s.last_append + index_quiet && now >= s.next_index_try) {
        index_pending(lock);
        continue;
      }
      if (now >= next_prune) {
        more_to_prune = prune_some(lock);
        // A bounded pass: with more to do, the next one comes after the next batch.
        next_prune = more_to_prune ? Clock::now() : Clock::now() + prune_interval;
        continue;
      }
      auto deadline = next_prune;
      if (work) deadline = std::min(deadline, s.first_waiting + options_.batch_interval);
      if (s.unindexed > 0) deadline = std::min(deadline, std::max(s.last_append + index_quiet, s.next_index_try));
      wake_.wait_until(lock, deadline);
    }
  } catch (const std::exception& e) {
    log_error("the archive thread ended: ", e.what(), "; history is no longer saved");
  }
}

void Archive::write_batch(std::unique_lock<std::mutex>& lock) {
  State& s = *state_;
  // Take what waits (mutex_ held), at most batch_max events: a transaction stays short however
  // far behind the disk is, and a reader's disk query never waits long for the writer. The
  // seats' rows as they are now.
  std::deque<EventPtr> events;
  if (s.queue.size() <= options_.batch_max) {
    events.swap(s.queue);
  } else {
    const auto end = s.queue.begin() + static_cast<std::ptrdiff_t>(options_.batch_max);
    events.assign(std::make_move_iterator(s.queue.begin()), std::make_move_iterator(end));
    s.queue.erase(s.queue.begin(), end);
  }
  s.in_flight_count = events.size();
  // The index lags the events until the room is quiet (index_pending), or until too many wait.
  const std::uint64_t index_from = s.indexed_upto + 1;
  const std::uint64_t index_to =
      !events.empty() && s.unindexed + events.size() >= index_lag_max ? events.back()->id : 0;
  struct SeatWrite {
    std::uint64_t seat;
    std::optional<SeatRecord> record;  // nullopt: closed
  };
  std::vector<SeatWrite> seats;
  seats.reserve(s.dirty_seats.size());
  for (const auto seat : s.dirty_seats) {
    const auto it = s.seats.find(seat);
    seats.push_back({seat, it == s.seats.end() ? std::nullopt : std::optional<SeatRecord>(it->second)});
  }
  s.dirty_seats.clear();
  struct BanWrite {
    std::string key;
    std::optional<BanRecord> record;  // nullopt: lifted or over
  };
  std::vector<BanWrite> bans;
  bans.reserve(s.dirty_bans.size());
  for (const auto& key : s.dirty_bans) {
    const auto it = s.bans.find(key);
    bans.push_back({key, it == s.bans.end() ? std::nullopt : std::optional<BanRecord>(it->second)});
  }
  s.dirty_bans.clear();
  const std::uint64_t max_seat = s.max_seat;
  const std::uint64_t gone_upto = s.gone_upto;
  s.in_flight_from = events.empty() ? 0 : events.front()->id;
  s.dropped_since_take = 0;
  const auto extra_pages = std::exchange(s.test_extra_pages, std::nullopt);
  lock.unlock();

  Db& db = *db_;
  std::string error;
  const auto t0 = Clock::now();
  try {
    if (extra_pages) {
      std::int64_t limit = 1073741823;  // SQLite's largest
      if (*extra_pages >= 0) {
        Stmt p(db.writer, "PRAGMA page_count");
        if (p.step()) limit = p.int64(0) + *extra_pages;
        p.reset();
      }
      exec(db.writer, ("PRAGMA max_page_count = " + std::to_string(limit)).c_str());
    }
    db.transaction([&] {
      for (const auto& e : events) {
        db.insert_event.bind(1, e->id)
            .bind(2, e->time_ms)
            .bind(3, kind_token(e->event.kind))
            .bind(4, std::string_view(e->event.nick))
            .bind(5, std::string_view(e->event.arg))
            .bind(6, std::string_view(e->event.code))
            .bind(7, std::string_view(e->event.text))
            .run();
      }
      if (index_to != 0) {
        db.index_events.bind(1, index_from).bind(2, index_to).run();
        db.meta_set.bind(1, std::string_view("indexed_upto")).bind(2, index_to).run();
      }
      for (const auto& w : seats) {
        if (w.record) {
          db.upsert_seat.bind(1, w.seat)
              .bind(2, std::string_view(w.record->token_hash))
              .bind(3, std::string_view(w.record->nick))
              .bind(4, w.record->dropped_ms)
              .run();
        } else {
          db.close_seat.bind(1, w.seat).run();
        }
      }
      for (const auto& b : bans) {
        if (b.record) {
          db.upsert_ban.bind(1, std::string_view(b.key))
              .bind(2, std::string_view(b.record->nick))
              .bind(3, std::string_view(b.record->address))
              .bind(4, b.record->until_ms)
              .bind(5, std::string_view(b.record->by))
              .bind(6, std::string_view(b.record->reason))
              .run();
        } else {
          db.delete_ban.bind(1, std::string_view(b.key)).run();
        }
      }
      db.meta_max.bind(1, std::string_view("last_seat")).bind(2, max_seat).run();
      db.meta_max.bind(1, std::string_view("gone_upto")).bind(2, gone_upto).run();
    });
  } catch (const std::exception& e) {
    error = e.what();
  }
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();

  lock.lock();
  s.in_flight_from = 0;
  s.in_flight_count = 0;
  std::string tell;
  const std::uint64_t records = events.size() + seats.size() + bans.size();
  if (error.empty()) {
    s.counters.written += events.size();
    if (!events.empty()) s.written_upto = events.back()->id;
    if (index_to != 0) {
      s.indexed_upto = index_to;
      s.unindexed = 0;
    } else {
      s.unindexed += events.size();
    }
    s.counters.batches += 1;
    s.counters.max_batch = std::max<std::uint64_t>(s.counters.max_batch, records);
    s.counters.max_batch_ms = std::max(s.counters.max_batch_ms, ms);
    if (db.rows >= 0) db.rows += static_cast<std::int64_t>(events.size());
    for (const auto& w : seats) {
      if (!w.record) db.seats_closed = true;
    }
    if (!s.in_trouble && s.episode_lost > 0) {
      // The full queue dropped events (append()) while this batch was written: the disk is
      // too slow for the room.
      s.in_trouble = true;
      tell = "history is not being saved in full: the disk is too slow and " + std::to_string(s.episode_lost) +
             " events were dropped (" + options_.path + ")";
      log_warn(tell);
      s.episode_gapped = true;
    } else if (s.in_trouble && s.dropped_since_take == 0) {
      if (s.episode_gapped) {
        tell = "history is being saved again; " + std::to_string(s.episode_lost) + " events from " +
               std::to_string(s.episode_first) + " to " + std::to_string(s.episode_last) + " were not saved";
      } else {
        tell = "history is being saved again; events " + std::to_string(s.episode_first) + " to " +
               std::to_string(s.episode_last) + " were not saved";
      }
      log_info(tell);
      s.in_trouble = false;
      s.episode_lost = s.episode_first = s.episode_last = 0;
      s.episode_gapped = false;
    } else if (s.in_trouble) {
      s.episode_gapped = true;
    }
  } else {
    if (!events.empty()) s.note_lost(events.front()->id, events.back()->id, events.size());
    // The seats' and bans' rows are not lost: their state is still in the mirrors; written next time.
    for (const auto& w : seats) s.dirty_seats.insert(w.seat);
    for (const auto& b : bans) s.dirty_bans.insert(b.key);
    if (!s.dirty_seats.empty() && s.queue.empty()) s.first_waiting = Clock::now();
    if (!s.in_trouble) {
      s.in_trouble = true;
      // The log names the file (for the operator); the room hears only what it means for them.
      tell = "history is not being saved: " + error;
      log_warn(tell, " (", options_.path, ")");
    }
  }
  std::vector<EventPtr> evicted;
  s.trim(options_, true, unix_ms_now(), &evicted);  // the batch no longer needs protecting in the ring
  if (!tell.empty() && trouble_) {
    lock.unlock();
    try {
      trouble_(tell);
    } catch (const std::exception& e) {
      log_error("archive trouble callback: ", e.what());
    }
    lock.lock();
  }
  // The batch's events are freed here, outside the lock: the room appends meanwhile.
  lock.unlock();
  events.clear();
  evicted.clear();
  lock.lock();
}

bool Archive::prune_some(std::unique_lock<std::mutex>& lock) {
  lock.unlock();
  Db& db = *db_;
  bool more = false;
  std::uint64_t upto = 0;
  std::int64_t deleted = 0;
  try {
    if (options_.keep_rows != 0 && db.rows < 0) {
      Stmt q(db.writer, "SELECT count(*) FROM events");
      if (q.step()) db.rows = q.int64(0);
      q.reset();
    }
    if (options_.keep_rows != 0 && db.rows > static_cast<std::int64_t>(options_.keep_rows)) {
      const std::int64_t excess =
          std::min<std::int64_t>(db.rows - static_cast<std::int64_t>(options_.keep_rows), prune_rows_per_pass);
      ResetOnExit reset{db.oldest_after_offset};
      db.oldest_after_offset.bind(1, excess - 1);
      if (db.oldest_after_offset.step()) upto = static_cast<std::uint64_t>(db.oldest_after_offset.int64(0));
      more = excess == prune_rows_per_pass;
    }
    if (options_.keep_age.count() > 0) {
      // Events are appended in time order, so the old ones are the first ones: walk from the
      // oldest, stop at the first young one (a clock stepped back only delays a few).
      const std::int64_t cutoff =
          unix_ms_now() - std::chrono::duration_cast<std::chrono::milliseconds>(options_.keep_age).count();
      ResetOnExit reset{db.oldest_times};
      db.oldest_times.bind(1, prune_rows_per_pass);
      std::int64_t seen = 0;
      bool young = false;
      while (db.oldest_times.step()) {
        ++seen;
        if (db.oldest_times.int64(1) >= cutoff) {
          young = true;
          break;
        }
        upto = std::max(upto, static_cast<std::uint64_t>(db.oldest_times.int64(0)));
      }
      if (!young && seen == prune_rows_per_pass) more = true;
    }
    if (upto == 0 && !db.seats_closed) {
      lock.lock();
      return false;
    }
    if (upto != 0) {
      // Readers learn first that these are going (a conservative `complete`), then they go.
      lock.lock();
      state_->gone_upto = std::max(state_->gone_upto, upto);
      const std::uint64_t gone = state_->gone_upto;
      lock.unlock();
      db.transaction([&] {
        db.delete_upto.bind(1, upto).run();
        deleted = sqlite3_changes(db.writer);
        db.meta_max.bind(1, std::string_view("gone_upto")).bind(2, gone).run();
        db.delete_closed_seats.run();
      });
    } else {
      db.transaction([&] { db.delete_closed_seats.run(); });
    }
    if (db.rows >= 0) db.rows -= deleted;
    db.seats_closed = false;
    db.prune_failing = false;
  } catch (const std::exception& e) {
    // Nothing is lost by a prune that fails: log it (once), and try again at the next pass.
    if (!db.prune_failing) log_warn("history: pruning ", options_.path, " failed: ", e.what());
    db.prune_failing = true;
    more = false;
  }
  lock.lock();
  State& s = *state_;
  if (upto != 0) {
    const std::uint64_t protect_from = s.unsaved_from();
    while (!s.ring.empty() && s.ring.front()->id <= upto && s.ring.front()->id < protect_from) s.ring.pop_front();
    if (s.ring_evicted_upto <= upto) s.ring_evicted_upto = 0;  // nothing on disk only any more
  }
  return more;
}

void Archive::index_pending(std::unique_lock<std::mutex>& lock) {
  State& s = *state_;
  const std::uint64_t from = s.indexed_upto + 1;
  const std::uint64_t to = s.written_upto;
  const std::uint64_t count = s.unindexed;
  lock.unlock();
  std::string error;
  try {
    Db& db = *db_;
    db.transaction([&] {
      db.index_events.bind(1, from).bind(2, to).run();
      db.meta_set.bind(1, std::string_view("indexed_upto")).bind(2, to).run();
    });
    // The quiet moment is also the time to fold the WAL back into the file (PASSIVE: it never
    // waits for a reader; what a reader still uses is left for the next time).
    sqlite3_wal_checkpoint_v2(db.writer, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  } catch (const std::exception& e) {
    error = e.what();
  }
  lock.lock();
  if (!error.empty()) {
    // The events are on disk; only their words are not searchable yet. Tried again later (and
    // at the next start); search() still finds them in memory meanwhile.
    log_warn("history: cannot index ", count, " events for search yet: ", error);
    s.next_index_try = Clock::now() + std::chrono::seconds(5);
    return;
  }
  s.indexed_upto = to;
  s.unindexed -= std::min(s.unindexed, count);  // (none were written meanwhile: this thread writes)
  std::vector<EventPtr> evicted;  // up to index_lag_max events: freed after the lock
  s.trim(options_, true, unix_ms_now(), &evicted);
  lock.unlock();
  evicted.clear();
  lock.lock();
}

void Archive::finish(std::unique_lock<std::mutex>& lock) {
  State& s = *state_;
  // The thread has ended (or never started): the writer's connection is this thread's now.
  // What waits is what start() never got to, or what was appended while the thread ended.
  // Batch by batch; a batch that fails is dropped (and its seats wait again), so the loop ends.
  for (int attempts = 0; s.waiting() > 0 && attempts < 1'000'000; ++attempts) {
    const auto lost_before = s.counters.lost;
    write_batch(lock);
    if (s.counters.lost != lost_before) break;  // the disk fails: the next run finds this run unclean
  }
  if (s.unindexed > 0) {
    s.next_index_try = {};
    index_pending(lock);
  }
  const bool clean = s.waiting() == 0 && !s.in_trouble && s.episode_lost == 0;
  const std::uint64_t gone = s.gone_upto;
  lock.unlock();
  if (!clean) return;  // the next open treats this run's end as lost (meta.clean stays 0)
  Db& db = *db_;
  try {
    db.transaction([&] {
      db.meta_max.bind(1, std::string_view("gone_upto")).bind(2, gone).run();
      db.meta_set.bind(1, std::string_view("clean")).bind(2, std::int64_t{1}).run();
    });
  } catch (const std::exception& e) {
    log_warn("history: cannot mark ", options_.path, " as closed cleanly: ", e.what());
  }
}

void Archive::test_limit_pages(std::int64_t extra_pages) {
  std::lock_guard lock(mutex_);
  state_->test_extra_pages = extra_pages;
}

void Archive::test_limit_queue(std::size_t records) {
  std::lock_guard lock(mutex_);
  state_->queue_limit = std::max<std::size_t>(records, 1);
}

// ---- the room's side ---------------------------------------------------------------------------

void Archive::append(ArchivedEvent event) {
  if (!is_room_event(event.event.kind)) {
    assert(!"Archive::append: not a room event");
    return;
  }
  event.event.id = event.id;  // one truth for both copies of the id and time
  event.event.time_ms = event.time_ms;
  auto e = std::make_shared<const ArchivedEvent>(std::move(event));  // before the lock: allocation
  std::lock_guard lock(mutex_);
  State& s = *state_;
  if (e->id <= s.last_id) {
    assert(!"Archive::append: ids must increase");
    return;
  }
  s.last_id = e->id;
  if (on_disk()) {
    if (s.queue.size() >= s.queue_limit) {
      // The disk is far behind: the oldest waiting event goes (it stays in the ring a while).
      const std::uint64_t id = s.queue.front()->id;
      s.queue.pop_front();
      s.note_lost(id, id, 1);
      ++s.dropped_since_take;
    }
    s.queue.push_back(e);
    s.last_append = Clock::now();
    const std::size_t waiting = s.waiting();
    if (waiting == 1) {
      s.first_waiting = Clock::now();
      wake_.notify_one();  // it may be asleep until the next prune: the batch clock starts now
    } else if (waiting == options_.batch_max) {
      wake_.notify_one();
    }
  }
  s.ring.push_back(std::move(e));
  s.trim(options_, on_disk(), s.ring.back()->time_ms);
}

namespace {
// A seat change (mutex_ held): the mirror updated and the seat marked for the next batch,
// which writes its row as it is then. So a seat changed ten times between two batches costs
// one row, and what waits for the disk is bounded by the number of seats. `S` is
// Archive::State (deduced: the name is private).
template <typename S, typename F>
void change_seat(S& s, std::condition_variable& wake, std::uint64_t seat, F&& change) {
  const auto it = s.seats.find(seat);
  if (it == s.seats.end()) return;  // not a seat we know (closed already): nothing to write
  change(it->second);
  const std::size_t before = s.waiting();
  s.dirty_seats.insert(seat);
  if (before == 0) {
    s.first_waiting = Clock::now();  // the batch clock starts now
    wake.notify_one();
  }
}
}  // namespace

void Archive::seat_opened(const SeatRecord& seat) {
  if (!on_disk()) return;
  std::lock_guard lock(mutex_);
  State& s = *state_;
  s.seats[seat.seat] = seat;
  s.max_seat = std::max(s.max_seat, seat.seat);
  change_seat(s, wake_, seat.seat, [](SeatRecord&) {});
}

void Archive::seat_renamed(std::uint64_t seat, std::string nick) {
  if (!on_disk()) return;
  std::lock_guard lock(mutex_);
  change_seat(*state_, wake_, seat, [&](SeatRecord& r) { r.nick = std::move(nick); });
}

void Archive::seat_token(std::uint64_t seat, std::string token_hash) {
  if (!on_disk()) return;
  std::lock_guard lock(mutex_);
  change_seat(*state_, wake_, seat, [&](SeatRecord& r) { r.token_hash = std::move(token_hash); });
}

void Archive::seat_dropped(std::uint64_t seat, std::int64_t when_ms) {
  if (!on_disk()) return;
  std::lock_guard lock(mutex_);
  change_seat(*state_, wake_, seat, [&](SeatRecord& r) { r.dropped_ms = when_ms; });
}

void Archive::seat_back(std::uint64_t seat) {
  if (!on_disk()) return;
  std::lock_guard lock(mutex_);
  change_seat(*state_, wake_, seat, [](SeatRecord& r) { r.dropped_ms = 0; });
}

void Archive::seat_closed(std::uint64_t seat) {
  if (!on_disk()) return;
  std::lock_guard lock(mutex_);
  State& s = *state_;
  if (s.seats.erase(seat) == 0) return;
  const std::size_t before = s.waiting();
  s.dirty_seats.insert(seat);
  if (before == 0 && s.waiting() == 1) {
    s.first_waiting = Clock::now();
    wake_.notify_one();
  }
}

namespace {
// A ban's row to write with the next batch (mutex_ held), as seats are (change_seat). `S` is
// Archive::State.
template <typename S>
void mark_ban(S& s, std::condition_variable& wake, std::string key) {
  const std::size_t before = s.waiting();
  s.dirty_bans.insert(std::move(key));
  if (before == 0 && s.waiting() == 1) {
    s.first_waiting = Clock::now();  // the batch clock starts now
    wake.notify_one();
  }
}
}  // namespace

void Archive::ban_set(const BanRecord& ban) {
  if (!on_disk()) return;
  auto key = fold_nick(ban.nick);
  std::lock_guard lock(mutex_);
  State& s = *state_;
  s.bans[key] = ban;
  mark_ban(s, wake_, std::move(key));
}

void Archive::ban_lifted(std::string_view nick) {
  if (!on_disk()) return;
  auto key = fold_nick(nick);
  std::lock_guard lock(mutex_);
  State& s = *state_;
  if (s.bans.erase(key) == 0) return;
  mark_ban(s, wake_, std::move(key));
}

// ---- readers ----------------------------------------------------------------------------------

void Archive::not_kept_upto(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  state_->gone_upto = std::max(state_->gone_upto, id);  // (persisted with the next batch)
}

std::uint64_t Archive::last_id() const {
  std::lock_guard lock(mutex_);
  return state_->last_id;
}

Archive::Counters Archive::counters() const {
  std::lock_guard lock(mutex_);
  Counters c = state_->counters;
  c.queued = state_->waiting() + state_->in_flight_count;  // the batch being written still waits for the disk
  return c;
}

std::vector<ArchivedEvent> Archive::recent(std::size_t n) const {
  std::vector<EventPtr> picked;
  {
    std::lock_guard lock(mutex_);
    State& s = *state_;
    if (!on_disk()) s.trim(options_, false, unix_ms_now());  // --history-keep Nd in a quiet room
    const std::size_t k = std::min(n, s.ring.size());
    picked.assign(s.ring.end() - static_cast<std::ptrdiff_t>(k), s.ring.end());
  }
  std::vector<ArchivedEvent> out;  // copied outside the lock
  out.reserve(picked.size());
  for (const auto& e : picked) out.push_back(*e);
  return out;
}

Archive::Slice Archive::after(std::uint64_t id, std::uint64_t below, std::size_t limit, bool memory_only) const {
  limit = std::min(limit, max_limit);
  Slice out;
  if (id == UINT64_MAX || below <= id + 1) return out;  // an empty range: nothing to miss
  std::vector<EventPtr> from_ring;  // the ring's first limit + 1 events in the range
  std::uint64_t gone = 0;
  bool covered = true;
  {
    std::lock_guard lock(mutex_);
    State& s = *state_;
    if (!on_disk()) s.trim(options_, false, unix_ms_now());
    gone = s.gone_upto;
    covered = !on_disk() || id >= s.ring_evicted_upto;
    auto it = std::upper_bound(s.ring.begin(), s.ring.end(), id,
                               [](std::uint64_t v, const EventPtr& e) { return v < e->id; });
    for (; it != s.ring.end() && (*it)->id < below && from_ring.size() <= limit; ++it) from_ring.push_back(*it);
  }
  std::vector<ArchivedEvent> events;
  events.reserve(from_ring.size());
  for (const auto& e : from_ring) events.push_back(*e);
  if (!covered && !memory_only) {
    // The ring does not reach back to `id`: the disk, merged with the ring (the ring was read
    // first, so an event written meanwhile is in one or the other).
    try {
      auto lease = db_->acquire_reader();
      std::vector<ArchivedEvent> disk;
      try {
        Stmt& q = lease->after;
        ResetOnExit reset{q};
        q.bind(1, id).bind(2, std::min<std::uint64_t>(below, INT64_MAX)).bind(3, static_cast<std::int64_t>(limit + 1));
        while (q.step()) {
          if (auto e = row_event(q)) disk.push_back(std::move(*e));
        }
      } catch (...) {
        lease.failed();
        throw;
      }
      events = merge_by_id(std::move(disk), std::move(events));
      covered = true;
    } catch (const std::exception& e) {
      log_read_failure(options_.path, "read", e);
    }
  }
  const bool cut = events.size() > limit;
  if (cut) events.resize(limit);
  out.events = std::move(events);
  out.complete = covered && !cut && id >= gone;
  return out;
}

std::vector<ArchivedEvent> Archive::before(std::uint64_t id, std::size_t n) const {
  n = std::min(n, max_limit);
  if (n == 0) return {};
  std::vector<EventPtr> from_ring;  // the ring's last n events before id, newest first
  bool covered = true;
  {
    std::lock_guard lock(mutex_);
    State& s = *state_;
    if (!on_disk()) s.trim(options_, false, unix_ms_now());
    auto it = std::lower_bound(s.ring.begin(), s.ring.end(), id,
                               [](const EventPtr& e, std::uint64_t v) { return e->id < v; });
    while (it != s.ring.begin() && from_ring.size() < n) from_ring.push_back(*--it);
    // Events kept on disk only are all older than the ring's: n from the ring are the n.
    covered = !on_disk() || s.ring_evicted_upto == 0 || from_ring.size() == n;
  }
  std::vector<ArchivedEvent> events;
  events.reserve(from_ring.size());
  for (auto it = from_ring.rbegin(); it != from_ring.rend(); ++it) events.push_back(**it);
  if (!covered) {
    try {
      auto lease = db_->acquire_reader();
      std::vector<ArchivedEvent> disk;
      try {
        Stmt& q = lease->before;
        ResetOnExit reset{q};
        q.bind(1, std::min<std::uint64_t>(id, INT64_MAX)).bind(2, static_cast<std::int64_t>(n));
        while (q.step()) {
          if (auto e = row_event(q)) disk.push_back(std::move(*e));
        }
      } catch (...) {
        lease.failed();
        throw;
      }
      std::reverse(disk.begin(), disk.end());
      events = merge_by_id(std::move(disk), std::move(events));
      if (events.size() > n) events.erase(events.begin(), events.end() - static_cast<std::ptrdiff_t>(n));
    } catch (const std::exception& e) {
      log_read_failure(options_.path, "read", e);
    }
  }
  return events;
}

std::vector<ArchivedEvent> Archive::search(std::string_view words, std::size_t n) const {
  n = std::min(n, max_limit);
  const auto list = split_words(words);
  if (list.empty() || n == 0) return {};

  // From memory: --db none, the whole ring; on disk, the events not written yet (newest
  // first, at most pending_search_scan of them). The pointers are copied under the lock, the
  // matching is done outside it.
  std::vector<EventPtr> candidates;
  {
    std::lock_guard lock(mutex_);
    State& s = *state_;
    if (!on_disk()) {
      s.trim(options_, false, unix_ms_now());
      candidates.assign(s.ring.rbegin(), s.ring.rend());
    } else {
      const std::uint64_t from = s.unindexed_from();
      for (auto it = s.ring.rbegin(); it != s.ring.rend() && (*it)->id >= from && candidates.size() < pending_search_scan;
           ++it) {
        candidates.push_back(*it);
      }
    }
  }
  std::vector<ArchivedEvent> found;  // newest first
  if (!on_disk()) {
    std::vector<std::string> folded;
    for (const auto& w : list) folded.push_back(ascii_folded(w));
    for (const auto& e : candidates) {
      if (found.size() == n) break;
      if (searchable(*e) && substring_match(e->event.text, folded)) found.push_back(*e);
    }
    std::reverse(found.begin(), found.end());
    return found;
  }
  std::vector<std::vector<std::string>> phrases;
  for (const auto& w : list) {
    auto tokens = fts_like_tokens(w);
    if (!tokens.empty()) phrases.push_back(std::move(tokens));
  }
  for (const auto& e : candidates) {
    if (found.size() == n) break;
    if (searchable(*e) && fts_like_match(e->event.text, phrases)) found.push_back(*e);
  }
  std::reverse(found.begin(), found.end());
  if (found.size() == n) return found;  // the newest n are all still in memory

  std::vector<ArchivedEvent> disk;
  try {
    auto lease = db_->acquire_reader();
    try {
      Stmt& q = lease->search;
      ResetOnExit reset{q};
      q.bind(1, std::string_view(fts_query(list))).bind(2, static_cast<std::int64_t>(n));
      while (q.step()) {
        if (auto e = row_event(q)) disk.push_back(std::move(*e));
      }
    } catch (...) {
      lease.failed();
      throw;
    }
  } catch (const std::exception& e) {
    log_read_failure(options_.path, "search", e);
  }
  auto merged = merge_by_id(std::move(disk), std::move(found));
  if (merged.size() > n) merged.erase(merged.begin(), merged.end() - static_cast<std::ptrdiff_t>(n));
  return merged;
}

}  // namespace chat
