// `chatbench history`: what the room's archive (server/archive.hpp: --db, ids, RESUME, HISTORY
// BEFORE, SEARCH) costs and how fast its answers come, in three parts, each against chatservers
// that chatbench starts itself on 127.0.0.1 port 0 and ends by pid, on database files in a
// directory of its own under $TMPDIR (removed at the end, unless --db-file names one to keep).
//
//   saturation  `fanout --max` (100 clients, 10 senders x 10,000 messages of 64 B by default)
//               against chatserver --db FILE and --db none, interleaved in one run (pairs in
//               the order none/db, db/none, none/db, ...: a drift of the machine hits both), each
//               round on a fresh server and a fresh file. Reports both rates, the server's CPU
//               per delivery, and their ratios (db / none). Then whether the archive kept up:
//               the archive's STATS counters as the run ended (archived=, archive_queue=, ...);
//               how long after the run the file held its last event (a client joins with ids: the
//               newest id of its HISTORY recent block; then `SELECT max(id)` on the file, read
//               with SQLite while the server still runs, which WAL allows); the archive thread's
//               CPU time per event once all is written (/proc, the thread named "archive"); and,
//               after the server stopped, the msg rows in the file against the messages said.
//   resume      a client joins with ids (HELLO <nick> ids) and reads its TOKEN; another joins;
//               the first is dropped with an RST (SO_LINGER 0); once the room said LEAVE, the
//               other says N lines (--missed, 1,000) and reads their echoes; then a new
//               connection sends `RESUME <token> <last id>` and, in the same write, `SAY probe`.
//               Measured from the RESUME's write: RESUMED, `HISTORY END missed`, and the first
//               live line after the block (the probe's echo: the seat is live). Checked: the
//               block holds the N lines, once, in order, all after the last id. --runs of them,
//               each on a fresh server and file; medians.
//   million     a file with --events (1,000,000) events, written through chatserver (one client
//               says them as fast as the server echoes them, --db FILE --history-keep all; at
//               the last echo the archive's STATS, then SIGTERM at once: the time the stop takes
//               to write what waits), then chatserver started on it --starts times: start-up (spawn -> "listening"), a join
//               with ids (HELLO -> HISTORY END recent, the first after each start), SEARCH for a
//               rare, a middling, a common and an absent word and two pairs, HISTORY BEFORE deep
//               in the past and in the middle, and RESUME with an unknown token and last id 1
//               (what an unauthenticated line makes the server read), each --repeats times per
//               start. Start-up on a new file and with --db none is measured alongside.
//               The messages are "hello wA wB number I" (A, B from 1,000 words, I the message's
//               number), with "zanzibar" in 4 of them: hello is in every message, w17 in about
//               0.2%, zanzibar in 4, qwertyuiop in none.
//
// --quick shrinks every part (the test suite's smoke: a few seconds). Exit status as for the
// other modes: 1 when a part failed its checks (a lost event, a replay that is not exact, a
// server that did not start).
//
// Threads: main thread only; the servers are processes (child_process.hpp).
#pragma once

#include "bench/fanout.hpp"
#include "bench/report.hpp"

#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace chat::bench {

struct HistoryOptions {
  HistoryOptions() { fanout.msgs = 10'000; }  // the sustained saturation of docs/performance.md
  std::vector<std::string> parts;  // "saturation", "resume", "million"; empty: all three
  bool quick = false;
  std::string server_path;
  std::vector<std::string> server_args;  // extra options for every chatserver started
  // saturation
  int rounds = 3;           // rounds with the database, and as many without
  FanoutOptions fanout;     // clients, senders, msgs, size (always --max)
  // resume
  int runs = 5;
  int missed = 1000;
  // million
  int events = 1'000'000;
  int starts = 3;
  int repeats = 5;
  std::string db_file;      // build the file here and keep it; an existing file is used as it is
  // Set by --quick (see apply_quick).
  void apply_quick();
  bool wants(const std::string& part) const;
};

// One fanout round of the saturation part.
struct SaturationRound {
  bool db = false;
  FanoutResult fanout;
  // With the database: what the file held after the run (SQLite), and how long after the run's
  // end (the last delivery) the file had every message, measured while the server still ran.
  long long rows = -1, msg_rows = -1;
  double catch_up_ms = -1;  // -1: not within the patience
  double file_mib = 0;
  std::string db_error;
  std::string archive_stats;  // the archive's STATS keys at the run's end (before the wait)
  double archive_cpu_s = -1;  // the archive thread's CPU time once all was written (-1: unknown)
  bool kept_up() const { return msg_rows >= 0 && static_cast<std::uint64_t>(msg_rows) == fanout.sent; }
  bool ok() const { return fanout.ok() && db_error.empty() && (!db || kept_up()); }
  std::string failure() const;  // why not ok(), in a few words
};

struct SaturationResult {
  std::vector<SaturationRound> rounds;
  bool stats_has_archive = false;  // STATS has archive counters (archived=, archive_queue=, ...)
  bool ok() const;
};

struct ResumeRun {
  std::uint64_t last_id = 0;
  std::string leave_cause;   // what the room said when the dropped client's RST arrived
  double resumed_ms = -1;    // RESUME written -> RESUMED read
  double end_ms = -1;        // -> HISTORY END missed
  double live_ms = -1;       // -> the first live line (the probe's echo)
  std::size_t announced = 0; // HISTORY missed <n>
  bool partial = false;
  std::size_t block_lines = 0;
  std::size_t missed_found = 0;  // the N lines found in the block, in order
  std::string first_live;    // that line, shortened
  std::string error;
  bool ok() const { return error.empty(); }
};

struct ResumeResult {
  int missed = 0;
  std::vector<ResumeRun> runs;
  Summary resumed, end, live;  // ms, over the runs that completed
  bool ok() const;
};

// One query of the million part: its line, and the samples.
struct QueryFigures {
  std::string name;     // "SEARCH rare word"
  std::string line;     // "SEARCH zanzibar"
  std::size_t answer = 0;  // tagged lines in the answer (the last sample's)
  std::vector<double> samples;  // ms, every sample
  std::vector<double> cold;     // ms, the first sample after each start
  std::string error;
};

struct MillionResult {
  std::string file;
  bool built = false;          // built in this run (else an existing file was used)
  int events_asked = 0;
  double build_s = 0;          // the loader's first SAY -> the last echo
  double build_rate = 0;       // events per second through the server
  std::string build_stats;      // the archive's STATS keys when the last echo came
  double build_stop_ms = 0;    // then SIGTERM at once -> exit (the stop writes what waits)
  long long rows = 0, msg_rows = 0;
  double file_mib = 0;
  std::vector<double> start_ms, start_empty_ms, start_none_ms;
  std::vector<double> join_ms;  // the first join after each start (HELLO -> HISTORY END recent)
  std::vector<QueryFigures> queries;
  std::string error;
  bool ok() const;
};

struct HistoryResult {
  HistoryOptions options;
  std::optional<SaturationResult> saturation;
  std::optional<ResumeResult> resume;
  std::optional<MillionResult> million;
  bool ok() const;
};

HistoryResult run_history(const HistoryOptions& options, std::ostream& progress);
void print_history(const HistoryResult& result, std::ostream& out);
void json_history(const HistoryResult& result, Json& json);

}  // namespace chat::bench
