// Archive: the room's public events kept in SQLite (and in memory), the seats that may be
// resumed, and the operators' bans, so that they survive a restart. docs/threads.md, "The archive: history on disk, off the delivery path".
//
//   the room's side   append(), seat_*(), ban_*(): O(1) and no I/O (append and seat_* with the
//                     room's lock held, ban_* with the Bans' lock): the record goes into an
//                     in-memory queue (and the recent ring), or a seat or ban is marked to be
//                     written, and that is all
//   the archive thread ("archive"): wakes every batch_interval (or when batch_max records
//                     wait), takes the whole queue under mutex_ and writes it in ONE
//                     transaction (WAL, synchronous=NORMAL), then prunes (--history-keep)
//   readers' side     recent(), after(), before(), search(): from any thread, never with the
//                     room's lock held when they may touch the disk (each query opens or
//                     reuses a read-only connection of its own; WAL lets it read while the
//                     archive thread writes)
//
// What a kill -9 costs: the records queued since the last commit (one batch, ~50 ms).
// Private messages never come here: they are the Room's, in memory, for the resume window only.
//
// A database that cannot be opened, is not a chat database, is corrupt, or is held by another
// chatserver (flock on the file) throws ArchiveError from the constructor: one line naming the
// file (chatserver exits 2). A write that fails later (disk full, I/O error) drops that batch,
// keeps the room running, logs one warning, and calls the trouble callback once; when a batch
// is written again it calls it once more ("recovered", with the ids that were lost).
//
// With path "" (--db none) nothing touches the disk: the ring is the whole history (at most
// --history-keep N events, or 100,000 without it), no thread is started, seat_*() and ban_*()
// do nothing.
//
// Threads: append() and seat_*() from any thread, in practice under the room's lock; ban_*()
// from any thread, in practice under Bans' lock (mutex_ is held only to push); queries from
// any thread; start()/stop() from the owner (Server).
#pragma once

#include "common/protocol.hpp"
#include "common/units.hpp"
#include "common/thread.hpp"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace chat {

// The one-line reason a database cannot be used ("/var/lib/chat/chat.db: file is not a
// database"): chatserver prints it and exits 2.
class ArchiveError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One public room event with its id and time.
struct ArchivedEvent {
  std::uint64_t id = 0;
  std::int64_t time_ms = 0;  // Unix time in milliseconds
  Event event;               // join, leave, msg, me, nick, back or comment
};

// A seat that may be resumed: who had it, and the hash of its current token.
struct SeatRecord {
  std::uint64_t seat = 0;       // stable for the seat's life, across renames and restarts
  std::string token_hash;       // hex SHA-256 of the token: the token itself is never stored
  std::string nick;
  std::int64_t dropped_ms = 0;  // Unix ms when its connection was lost; 0: connected when the run ended
};

// A ban (BAN, server/bans.hpp): a nickname, and the address it was connected from when it was
// banned, until a time. One per nickname (ignoring case).
struct BanRecord {
  std::string nick;           // as it was spelt
  std::string address;        // "10.0.0.5", "fd00::2"; "" when unknown (it was not connected here)
  std::int64_t until_ms = 0;  // Unix ms: the ban is over from then on
  std::string by;             // the operator's nickname
  std::string reason;         // may be ""
};

struct ArchiveOptions {
  std::string path;                  // the database file; "": memory only (--db none)
  std::size_t recent = 4096;         // events kept in memory besides the disk (>= --history)
  std::uint64_t keep_rows = 0;       // --history-keep N: at most N events kept; 0: no limit
  std::chrono::hours keep_age{0};    // --history-keep Nd: events younger than this; 0: no limit
  Millis batch_interval{50};         // a batch is written at most this long after its first record
  std::size_t batch_max = 4096;      // ...or as soon as this many records wait
};

class Archive {
 public:
  // Opens (creating if needed: the file, and for the default path its directory), checks and
  // locks the database, loads the recent events into memory, reads the seats left open, and
  // takes this run's number. Throws ArchiveError. No thread yet.
  explicit Archive(ArchiveOptions options);
  ~Archive();  // stop()
  Archive(const Archive&) = delete;
  Archive& operator=(const Archive&) = delete;

  void start();  // starts the archive thread
  void stop();   // writes what is queued (one last batch) and joins the thread. Idempotent.

  // This run's number: 1 for a new database (and always for memory only), one more on each
  // start. The room's ids are run * 2^32 + n, so they increase across restarts even when a
  // kill -9 lost the last ids handed out.
  std::uint64_t run() const { return run_; }
  // The largest id kept (0: none), as loaded at open time and then appended.
  std::uint64_t last_id() const;
  // The seats that were open when the last run ended (loaded at open; empty for memory only).
  const std::vector<SeatRecord>& seats_at_start() const { return seats_at_start_; }
  // The largest seat number ever used (so new seats never reuse one).
  std::uint64_t last_seat() const { return last_seat_; }
  // The bans the last run left that are not over yet (loaded at open; empty for memory only).
  const std::vector<BanRecord>& bans_at_start() const { return bans_at_start_; }

  // ---- the room's side: O(1), no I/O ----------------------------------------------------------
  void append(ArchivedEvent event);
  // The events up to `id` that are not here already were never kept (a chatserver joining a
  // shared room starts after them): after() says complete = false for an id below it.
  void not_kept_upto(std::uint64_t id);
  void seat_opened(const SeatRecord& seat);                       // a new seat (dropped_ms 0)
  void seat_renamed(std::uint64_t seat, std::string nick);
  void seat_token(std::uint64_t seat, std::string token_hash);    // a resume gave it a new token
  void seat_dropped(std::uint64_t seat, std::int64_t when_ms);    // held for the resume window
  void seat_back(std::uint64_t seat);                             // resumed: connected again
  void seat_closed(std::uint64_t seat);                           // gone for good (quit, expired)
  // A ban made (or made again: the nickname's row is replaced), and one lifted or over. The
  // row is written with the next batch, as it is then.
  void ban_set(const BanRecord& ban);
  void ban_lifted(std::string_view nick);

  // ---- readers ----------------------------------------------------------------------------
  // The last `n` events (memory only: at most options.recent), oldest first.
  std::vector<ArchivedEvent> recent(std::size_t n) const;
  struct Slice {
    std::vector<ArchivedEvent> events;  // oldest first
    bool complete = true;  // false: events after `id` were pruned or lost, or more than `limit`
  };
  // Events with id in (id, below), oldest first, at most `limit` (below = UINT64_MAX: no upper
  // bound). memory_only: never touches the disk (complete = false if the ring does not reach
  // back to `id`; the events are then those the ring holds in the range).
  //
  // The rule for `complete` (ids have gaps, so "is id+1 missing?" cannot be asked): the archive
  // remembers the largest id it ever let go of, gone_upto (pruned by --history-keep, lost in a
  // failed write, dropped from an overfull queue, evicted from memory with --db none, or
  // possibly handed out by a previous run that ended without writing its last batch). Every
  // event above gone_upto is still kept. So complete = (id >= gone_upto) and the answer was not
  // cut at `limit`. It never claims complete when something is missing; it may say partial when
  // what was let go of lies outside (id, below). id 0 ("saw nothing") is complete only if
  // nothing was ever let go of.
  Slice after(std::uint64_t id, std::uint64_t below, std::size_t limit, bool memory_only = false) const;
  // The `n` events just before `id`, oldest first.
  std::vector<ArchivedEvent> before(std::uint64_t id, std::size_t n) const;
  // The newest `n` messages and actions whose text holds every word (FTS5; in memory: every
  // word as a case-insensitive substring), oldest first. Each word is searched for as a quoted
  // FTS5 string, so no input is FTS5 syntax. Events not written yet (the current batch) are
  // matched in memory by an approximation of FTS5's tokenizer (archive.cpp, fts_like_match).
  std::vector<ArchivedEvent> search(std::string_view words, std::size_t n) const;

  // ---- health -----------------------------------------------------------------------------
  // Called on the archive thread: once when writing starts to fail (its text says why), and
  // once when a batch is written again (its text names the ids lost). Set before start().
  void on_trouble(std::function<void(std::string)> callback) { trouble_ = std::move(callback); }
  bool on_disk() const { return !options_.path.empty(); }
  const std::string& path() const { return options_.path; }
  struct Counters {
    std::uint64_t written = 0;     // events committed
    std::uint64_t batches = 0;     // transactions committed
    std::uint64_t lost = 0;        // events in batches that failed
    std::uint64_t queued = 0;      // records waiting now
    std::uint64_t max_batch = 0;   // the largest batch so far (records)
    double max_batch_ms = 0;       // the longest transaction so far
  };
  Counters counters() const;

 private:
  friend struct ArchiveTestAccess;  // tests/server/archive_test.cpp only
  class Db;  // the SQLite connection(s) (archive.cpp)
  void run_thread();
  // The archive thread's steps (or stop()'s, when start() was never called), entered and left
  // with mutex_ held through `lock`, which they release around the SQLite work.
  void write_batch(std::unique_lock<std::mutex>& lock);
  // Archive thread: puts the written events' words into the search index (one transaction).
  void index_pending(std::unique_lock<std::mutex>& lock);
  bool prune_some(std::unique_lock<std::mutex>& lock);  // true: more to prune
  void finish(std::unique_lock<std::mutex>& lock);      // stop(): the last batch, the clean mark
  // Test hook: the archive thread sets PRAGMA max_page_count to the database's pages now plus
  // `extra_pages` before its next batch (negative: back to SQLite's maximum), so that a test
  // can make writes fail with SQLITE_FULL honestly. Nothing else calls it.
  void test_limit_pages(std::int64_t extra_pages);
  // Test hook: the queue's bound (1,000,000 records otherwise), to test what a full queue drops.
  void test_limit_queue(std::size_t records);

  const ArchiveOptions options_;
  // Set by the constructor, read-only afterwards (any thread):
  std::uint64_t run_ = 1;
  std::uint64_t last_seat_ = 0;
  std::vector<SeatRecord> seats_at_start_;
  std::vector<BanRecord> bans_at_start_;

  std::function<void(std::string)> trouble_;  // set before start(); called by the archive thread
  // The writer's connection (the constructor's thread, then the archive thread; stop()'s after
  // the join) and the pool of read-only connections (any thread; guarded by a mutex of its own).
  std::unique_ptr<Db> db_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  // (the queue, the ring and the counters: guarded by mutex_; see archive.cpp)
  struct State;
  std::unique_ptr<State> state_;  // guarded by mutex_

  NamedThread thread_;  // declared last: joined first
};

}  // namespace chat
