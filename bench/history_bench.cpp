#include "bench/history_bench.hpp"

#include "bench/child_process.hpp"
#include "bench/line_conn.hpp"
#include "bench/proc_stats.hpp"
#include "bench/temp_dir.hpp"
#include "common/protocol.hpp"

#include <sqlite3.h>

#include <stdlib.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace chat::bench {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// ---- files (in the run's TempDir, bench/temp_dir.hpp) ---------------------------------------

// A database file with its WAL and shared-memory files.
void remove_db(const std::string& path) {
  std::error_code ignored;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(path + suffix, ignored);
}

double file_mib(const std::string& path) {
  double bytes = 0;
  std::error_code e;
  for (const char* suffix : {"", "-wal"}) {
    const auto size = fs::file_size(path + suffix, e);
    if (!e) bytes += static_cast<double>(size);
  }
  return bytes / (1024.0 * 1024.0);
}

// The archive's file read with SQLite, read-only (the server may be running: WAL lets a reader
// in beside its writer). The schema is server/archive.cpp's: events(id, time_ms, kind, nick,
// arg, code, text), kind 'msg' for a message.
class DbReader {
 public:
  explicit DbReader(const std::string& path) {
    const int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr);
    if (rc != SQLITE_OK) {
      const std::string text = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close(db_);
      throw std::runtime_error(path + ": " + text);
    }
    sqlite3_busy_timeout(db_, 2000);
  }
  ~DbReader() { sqlite3_close(db_); }
  DbReader(const DbReader&) = delete;
  DbReader& operator=(const DbReader&) = delete;

  // The first column of the first row of `sql` (one optional integer parameter); -1 when
  // there is no row or it is NULL.
  long long integer(const char* sql, std::optional<long long> param = std::nullopt) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) != SQLITE_OK) {
      throw std::runtime_error(std::string(sql) + ": " + sqlite3_errmsg(db_));
    }
    if (param) sqlite3_bind_int64(stmt, 1, *param);
    long long out = -1;
    const int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW && sqlite3_column_type(stmt, 0) != SQLITE_NULL) out = sqlite3_column_int64(stmt, 0);
    const std::string error = rc == SQLITE_ROW || rc == SQLITE_DONE ? std::string() : sqlite3_errmsg(db_);
    sqlite3_finalize(stmt);
    if (!error.empty()) throw std::runtime_error(std::string(sql) + ": " + error);
    return out;
  }
  long long rows() { return integer("SELECT count(*) FROM events"); }
  long long msg_rows() { return integer("SELECT count(*) FROM events WHERE kind = 'msg'"); }
  // The id of the event `offset` places after the oldest.
  long long id_at(long long offset) { return integer("SELECT id FROM events ORDER BY id LIMIT 1 OFFSET ?", offset); }

 private:
  sqlite3* db_ = nullptr;
};

// Polls the file (SELECT max(id): a look at the end of the primary key, cheap at any size)
// until it holds the event `id` or `patience` passes: the time it took (ms), or -1.
double wait_for_id(const std::string& path, std::uint64_t id, Clock::duration patience) {
  const auto t0 = Clock::now();
  const auto deadline = t0 + patience;
  std::optional<DbReader> db;
  while (true) {
    try {
      if (!db) db.emplace(path);
      if (db->integer("SELECT max(id) FROM events") >= static_cast<long long>(id)) return millis_between(t0, Clock::now());
    } catch (const std::exception&) {
      db.reset();  // not there yet (a busy file, a schema being made): look again
    }
    check_interrupted();
    if (Clock::now() >= deadline) return -1;
    ::poll(nullptr, 0, 2);
  }
}

// ---- one protocol client ------------------------------------------------------------------

// A chat client on a LineConn whose lines are read one at a time with a predicate.
class Talk {
 public:
  Talk(std::uint16_t port, std::string name, Clock::time_point deadline) : conn_(port, deadline), name_(std::move(name)) {}
  LineConn& conn() { return conn_; }
  void send(std::string_view line) { conn_.send_line(line); }

  // Reads lines until `f(line, time read)` returns true, answering PINGs; the time of that
  // line. The connections in `others` are pumped meanwhile (their lines wait in their buffers).
  // Throws std::runtime_error naming `what` on a timeout or when the connection ends.
  template <typename F>
  Clock::time_point until(F&& f, Clock::time_point deadline, const std::string& what, std::vector<LineConn*> others = {}) {
    others.push_back(&conn_);
    auto now = Clock::now();
    while (true) {
      while (auto line = conn_.next_line()) {
        if (answer_ping(conn_, *line)) continue;
        if (f(*line, now)) return now;
      }
      if (!conn_.live()) {
        throw std::runtime_error(name_ + ": the connection ended (" + (conn_.error().empty() ? "closed" : conn_.error()) +
                                 ") while waiting for " + what);
      }
      if (now >= deadline) throw std::runtime_error(name_ + ": no " + what + " in time");
      pump(others, deadline);
      now = Clock::now();
    }
  }

 private:
  LineConn conn_;
  std::string name_;
};

[[noreturn]] void refused(const std::string& who, std::string_view line) {
  throw std::runtime_error(who + ": the server said \"" + std::string(line.substr(0, 200)) + "\"");
}

bool is_refusal(const Event& e) { return e.kind == Event::Kind::error || e.kind == Event::Kind::bye; }

// `HELLO nick ids`, read to `HISTORY END recent`. The token, and the largest id seen.
struct IdsJoin {
  std::string token;
  std::uint64_t last_id = 0;
  Clock::time_point end;
};
IdsJoin join_with_ids(Talk& t, const std::string& nick, Clock::time_point deadline) {
  IdsJoin j;
  t.send("HELLO " + nick + " ids");
  j.end = t.until(
      [&](std::string_view line, Clock::time_point) {
        const auto e = parse_event(line);
        if (!e) return false;
        if (is_refusal(*e)) refused(nick, line);
        j.last_id = std::max(j.last_id, e->id);
        if (e->kind == Event::Kind::token) j.token = e->arg;
        return e->kind == Event::Kind::history_end && e->code == "recent";
      },
      deadline, "HISTORY END recent");
  return j;
}

// Says `count` lines (text(i) for i = 0, 1, ...) as fast as the server echoes them, with at
// most `window` not yet echoed, in writes of up to 128 lines. The first write and the last
// echo.
struct Said {
  Clock::time_point first_send, last_echo;
  std::uint64_t last_id = 0;  // the last echo's id (a client with ids), else 0
};
Said say_lines(Talk& t, const std::string& nick, std::uint64_t count, const std::function<std::string(std::uint64_t)>& text,
               Clock::time_point deadline, std::uint64_t window, std::ostream* progress = nullptr) {
  const std::string echo = "MSG " + nick + " ";
  std::uint64_t sent = 0, echoed = 0, told = 0;
  Said s;
  s.first_send = Clock::now();
  LineConn* const self[] = {&t.conn()};
  std::string chunk;
  while (echoed < count) {
    if (sent < count && sent - echoed < window && t.conn().pending_output() < 64 * 1024) {
      chunk.clear();
      for (int k = 0; k < 128 && sent < count && sent - echoed < window; ++k, ++sent) {
        chunk += "SAY ";
        chunk += text(sent);
        chunk += '\n';
      }
      chunk.pop_back();  // send_line adds the last LF
      t.conn().send_line(chunk);
    }
    pump(self, deadline);
    const auto now = Clock::now();
    while (auto line = t.conn().next_line()) {
      if (answer_ping(t.conn(), *line)) continue;
      std::string_view untagged = *line;
      std::uint64_t id = 0;
      if (untagged.starts_with('@')) {  // "@<id>/<ms> MSG ...": a client with ids
        const auto space = untagged.find(' ');
        std::from_chars(untagged.data() + 1, untagged.data() + untagged.size(), id);
        untagged.remove_prefix(space == std::string_view::npos ? untagged.size() : space + 1);
      }
      if (untagged.starts_with(echo)) {
        ++echoed;
        s.last_echo = now;
        s.last_id = id;
      } else if (line->starts_with("ERROR") || line->starts_with("BYE")) {
        refused(nick, *line);
      }
    }
    if (!t.conn().live()) throw std::runtime_error(nick + ": the connection ended after " + std::to_string(echoed) + " echoes");
    if (now >= deadline) {
      throw std::runtime_error(nick + ": " + std::to_string(echoed) + " of " + std::to_string(count) + " lines echoed in time");
    }
    if (progress && count >= 100'000 && echoed - told >= count / 10) {
      told = echoed;
      *progress << "history:   " << format_count(static_cast<double>(echoed)) << " said\n";
    }
  }
  return s;
}

std::vector<std::string> server_args(const HistoryOptions& o, std::vector<std::string> own) {
  std::vector<std::string> args{"--log-level", "warn"};
  args.insert(args.end(), own.begin(), own.end());
  args.insert(args.end(), o.server_args.begin(), o.server_args.end());
  return args;
}

std::string shortened(std::string_view line, std::size_t n = 80) {
  return line.size() <= n ? std::string(line) : std::string(line.substr(0, n)) + "...";
}

// The STATS keys about the archive ("archived=... archive_queue=..."), "" when it has none.
std::string archive_keys(const std::string& stats) {
  std::string out;
  for (const auto& [key, value] : parse_stats(stats)) {
    if (key.starts_with("archive")) out += (out.empty() ? "" : " ") + key + "=" + value;
  }
  return out;
}

// `STATS`, and its answer.
std::string stats_of(Talk& t, Clock::time_point deadline) {
  std::string line;
  t.send("STATS");
  t.until(
      [&](std::string_view got, Clock::time_point) {
        if (!got.starts_with("STATS ")) return false;
        line = got;
        return true;
      },
      deadline, "STATS");
  return line;
}

// ---- saturation ---------------------------------------------------------------------------

SaturationResult run_saturation(const HistoryOptions& o, const TempDir& tmp, std::ostream& progress) {
  SaturationResult result;
  int serial = 0;
  for (int pair = 0; pair < o.rounds; ++pair) {
    // none/db, db/none, ...: whatever drifts over the run touches both sides alike.
    for (const bool db : pair % 2 == 0 ? std::vector<bool>{false, true} : std::vector<bool>{true, false}) {
      SaturationRound round;
      round.db = db;
      const std::string file = tmp.file("saturation-" + std::to_string(serial++) + ".db");
      TargetOptions target;
      target.server_path = o.server_path;
      target.label = db ? "chatserver --db FILE" : "chatserver --db none";
      target.server_args = {"--db", db ? file : "none"};
      target.server_args.insert(target.server_args.end(), o.server_args.begin(), o.server_args.end());
      FanoutOptions f = o.fanout;
      f.rate = 0;
      progress << "history: saturation round " << serial << " of " << 2 * o.rounds << ", " << target.label << "\n";
      // While the server still runs: how long after the run until the file holds its last event.
      if (db) {
        f.before_stop = [&round, &file](std::uint16_t port, int pid) {
          // The newest event before a probe's join (its HISTORY recent block) is the run's last.
          const auto t0 = Clock::now();
          Talk probe(port, "probe", t0 + 10s);
          const auto last = join_with_ids(probe, "hprobe", t0 + 10s).last_id;
          const double more = wait_for_id(file, last, 30s);
          round.catch_up_ms = more < 0 ? -1 : millis_between(t0, Clock::now());
          probe.send("QUIT");
          // All of it written: the archive thread's CPU over the server's life.
          if (const auto cpu = thread_cpu_seconds(pid, "archive")) round.archive_cpu_s = *cpu;
        };
      }
      round.fanout = run_fanout(f, target, progress);
      if (db) {
        try {
          DbReader reader(file);
          round.rows = reader.rows();
          round.msg_rows = reader.msg_rows();
        } catch (const std::exception& e) {
          round.db_error = e.what();
        }
        round.file_mib = file_mib(file);
        remove_db(file);
      }
      round.archive_stats = archive_keys(round.fanout.stats_after);
      result.stats_has_archive = result.stats_has_archive || !round.archive_stats.empty();
      result.rounds.push_back(std::move(round));
    }
  }
  return result;
}

// ---- resume -------------------------------------------------------------------------------

ResumeRun resume_once(const HistoryOptions& o, const std::string& file) {
  ResumeRun r;
  try {
    ServerProcess server(o.server_path, server_args(o, {"--db", file}));
    const auto deadline = Clock::now() + 60s;
    Talk a(server.port(), "ra", deadline);
    auto joined = join_with_ids(a, "ra", deadline);
    if (joined.token.empty()) throw std::runtime_error("ra: no TOKEN after HELLO ra ids");
    r.last_id = joined.last_id;

    Talk b(server.port(), "rb", deadline);
    join(b.conn(), "rb", deadline);
    a.until(
        [&](std::string_view line, Clock::time_point) {
          const auto e = parse_event(line);
          if (e && e->kind == Event::Kind::join && e->nick == "rb") r.last_id = std::max(r.last_id, e->id);
          return e && e->kind == Event::Kind::join && e->nick == "rb";
        },
        deadline, "JOIN rb", {&b.conn()});
    // Everything ra was sent has been read, so the close below is an RST (SO_LINGER 0).
    a.conn().close_with_reset();
    b.until(
        [&](std::string_view line, Clock::time_point) {
          const auto e = parse_event(line);
          if (e && e->kind == Event::Kind::leave && e->nick == "ra") r.leave_cause = e->code;
          return e && e->kind == Event::Kind::leave && e->nick == "ra";
        },
        deadline, "LEAVE ra");
    const auto missed = static_cast<std::uint64_t>(o.missed);
    say_lines(b, "rb", missed, [](std::uint64_t i) { return "missed " + std::to_string(i) + " while ra was away"; }, deadline,
              256);

    Talk a2(server.port(), "ra (resuming)", deadline);
    const std::string probe = "probe after the resume";
    const auto t0 = Clock::now();
    a2.send("RESUME " + joined.token + " " + std::to_string(r.last_id) + "\nSAY " + probe);
    int phase = 0;  // 0: before the block, 1: in it, 2: after it
    std::uint64_t previous = r.last_id;
    std::uint64_t next_missed = 0;
    a2.until(
        [&](std::string_view line, Clock::time_point now) {
          const auto e = parse_event(line);
          if (!e) return false;
          if (is_refusal(*e)) refused("ra (resuming)", line);
          if (phase == 0) {
            if (e->kind == Event::Kind::resumed) r.resumed_ms = millis_between(t0, now);
            if (e->kind == Event::Kind::history && e->code == "missed") {
              r.announced = static_cast<std::size_t>(std::stoull(e->arg));
              r.partial = e->text == "partial";
              phase = 1;
            }
            return false;
          }
          if (phase == 1) {
            if (e->kind == Event::Kind::history_end && e->code == "missed") {
              r.end_ms = millis_between(t0, now);
              phase = 2;
              return false;
            }
            ++r.block_lines;
            if (e->id <= previous) {
              throw std::runtime_error("the replay is out of order or repeats: id " + std::to_string(e->id) + " after " +
                                       std::to_string(previous) + " (line " + std::to_string(r.block_lines) +
                                       " of the block: " + shortened(line) + ")");
            }
            previous = e->id;
            const std::string want = "missed " + std::to_string(next_missed) + " while ra was away";
            if (e->kind == Event::Kind::msg && e->nick == "rb" && e->text == want) ++next_missed;
            return false;
          }
          if (e->id == 0) return false;  // not a room event
          r.live_ms = millis_between(t0, now);
          r.first_live = shortened(line);
          return true;
        },
        deadline, "the replay and a live line");
    r.missed_found = next_missed;
    if (r.missed_found != missed) {
      r.error = "the replay held " + std::to_string(r.missed_found) + " of the " + std::to_string(missed) +
                " missed lines in order (" + std::to_string(r.block_lines) + " lines in the block)";
    } else if (r.partial) {
      r.error = "the replay said partial";
    } else if (r.first_live.find(probe) == std::string::npos) {
      r.error = "the first live line was not the probe's echo: " + r.first_live;
    }
    a2.send("QUIT");
    b.send("QUIT");
    if (const int code = server.stop(); code != 0 && r.error.empty()) {
      r.error = "chatserver exited with status " + std::to_string(code);
    }
  } catch (const Interrupted&) {
    throw;
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  remove_db(file);
  return r;
}

ResumeResult run_resume(const HistoryOptions& o, const TempDir& tmp, std::ostream& progress) {
  ResumeResult result;
  result.missed = o.missed;
  std::vector<double> resumed, end, live;
  for (int i = 0; i < o.runs; ++i) {
    progress << "history: resume run " << i + 1 << " of " << o.runs << " (" << o.missed << " missed lines)\n";
    auto run = resume_once(o, tmp.file("resume-" + std::to_string(i) + ".db"));
    if (run.ok()) {
      resumed.push_back(run.resumed_ms);
      end.push_back(run.end_ms);
      live.push_back(run.live_ms);
    } else {
      progress << "history:   FAILED: " << run.error << "\n";
    }
    result.runs.push_back(std::move(run));
  }
  result.resumed = summarize(resumed);
  result.end = summarize(end);
  result.live = summarize(live);
  return result;
}

// ---- a million events ---------------------------------------------------------------------

constexpr const char* rare_word = "zanzibar";

std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

// Message i of n: "hello wA wB number i", with the rare word in 4 of them.
std::string million_text(std::uint64_t i, std::uint64_t n) {
  const auto h = mix(i + 1);
  std::string text = "hello w" + std::to_string(h % 1000) + " w" + std::to_string((h >> 20) % 1000) + " number " +
                     std::to_string(i);
  const std::uint64_t quarter = std::max<std::uint64_t>(n / 4, 1);
  if (i % quarter == quarter / 2) text += std::string(" ") + rare_word;
  return text;
}

void build_million(const HistoryOptions& o, MillionResult& m, std::ostream& progress) {
  progress << "history: writing " << format_count(o.events) << " events into " << m.file << " through chatserver ...\n";
  ServerProcess server(o.server_path, server_args(o, {"--db", m.file, "--history-keep", "all"}));
  const auto n = static_cast<std::uint64_t>(o.events);
  const auto deadline = Clock::now() + 60s + std::chrono::seconds(n / 2'000);
  Talk loader(server.port(), "loader", deadline);
  join_with_ids(loader, "loader", deadline);
  const auto said = say_lines(
      loader, "loader", n, [n](std::uint64_t i) { return million_text(i, n); }, deadline, 4096, &progress);
  m.build_s = std::chrono::duration<double>(said.last_echo - said.first_send).count();
  m.build_rate = m.build_s > 0 ? static_cast<double>(n) / m.build_s : 0;
  // What the archive still had to write when the last echo came, and then a SIGTERM at once:
  // the stop writes it all (one last batch) before the server exits.
  m.build_stats = archive_keys(stats_of(loader, deadline));
  const auto t0 = Clock::now();
  const int code = server.stop(600s);
  m.build_stop_ms = millis_between(t0, Clock::now());
  if (code != 0) throw std::runtime_error("chatserver exited with status " + std::to_string(code) + " after the build");
  m.built = true;
}

// A query's answer: `HISTORY <what> <k>`, k tagged lines, `HISTORY END <what>` (or, for a
// RESUME, the ERROR that refuses it).
std::size_t ask(Talk& t, const std::string& line, Clock::time_point deadline, double& ms) {
  const bool resume = line.starts_with("RESUME");
  std::size_t tagged = 0;
  const auto t0 = Clock::now();
  t.send(line);
  const auto end = t.until(
      [&](std::string_view got, Clock::time_point) {
        const auto e = parse_event(got);
        if (!e) return false;
        if (resume) return e->kind == Event::Kind::error || e->kind == Event::Kind::resumed;
        if (is_refusal(*e)) refused(line, got);
        if (e->id != 0) ++tagged;
        return e->kind == Event::Kind::history_end;
      },
      deadline, "the answer to " + line);
  ms = millis_between(t0, end);
  return tagged;
}

MillionResult run_million(const HistoryOptions& o, const TempDir& tmp, std::ostream& progress) {
  MillionResult m;
  m.events_asked = o.events;
  m.file = o.db_file.empty() ? tmp.file("million.db") : o.db_file;
  try {
    std::error_code e;
    if (!fs::exists(m.file, e) || fs::file_size(m.file, e) == 0) {
      build_million(o, m, progress);
    } else {
      progress << "history: using the existing " << m.file << "\n";
    }
    long long deep = -1, middle = -1;
    {
      DbReader db(m.file);
      m.rows = db.rows();
      m.msg_rows = db.msg_rows();
      deep = db.id_at(1000);
      middle = db.id_at(m.rows / 2);
    }
    m.file_mib = file_mib(m.file);
    if (m.built && m.msg_rows != o.events) {
      m.error = "the file holds " + std::to_string(m.msg_rows) + " messages of the " + std::to_string(o.events) + " said";
    }
    struct Query {
      std::string name, line;
      bool fresh_connection = false;  // asked on a connection that has not joined
    };
    const std::vector<Query> queries{
        {"SEARCH a rare word (4 messages)", std::string("SEARCH ") + rare_word},
        {"SEARCH a middling word (~0.2%)", "SEARCH w17"},
        {"SEARCH a common word (every message)", "SEARCH hello"},
        {"SEARCH an absent word", "SEARCH qwertyuiop"},
        {"SEARCH rare + common", std::string("SEARCH ") + rare_word + " hello"},
        {"SEARCH middling + common", "SEARCH w17 hello"},
        {"HISTORY BEFORE deep (1,000 from the start) 100", "HISTORY BEFORE " + std::to_string(deep) + " 100"},
        {"HISTORY BEFORE deep 500", "HISTORY BEFORE " + std::to_string(deep) + " 500"},
        {"HISTORY BEFORE the middle 500", "HISTORY BEFORE " + std::to_string(middle) + " 500"},
        {"RESUME unknown token, last id 1 (not joined)", "RESUME " + std::string(32, '0') + " 1", true},
    };
    for (const auto& q : queries) m.queries.push_back(QueryFigures{q.name, q.line, 0, {}, {}, {}});

    for (int s = 0; s < o.starts; ++s) {
      progress << "history: start " << s + 1 << " of " << o.starts << " on " << format_count(static_cast<double>(m.rows))
               << " events ...\n";
      ServerProcess::Launch launch;
      launch.start_patience = 300s;
      ServerProcess server(o.server_path, server_args(o, {"--db", m.file, "--history-keep", "all"}), launch);
      m.start_ms.push_back(server.start_ms());
      const auto deadline = Clock::now() + 300s;
      Talk q(server.port(), "q" + std::to_string(s), deadline);
      const auto t0 = Clock::now();
      const auto joined = join_with_ids(q, "q" + std::to_string(s), deadline);
      m.join_ms.push_back(millis_between(t0, joined.end));
      Talk stranger(server.port(), "stranger", deadline);
      for (std::size_t k = 0; k < queries.size(); ++k) {
        auto& fig = m.queries[k];
        for (int rep = 0; rep < o.repeats; ++rep) {
          double ms = 0;
          try {
            fig.answer = ask(queries[k].fresh_connection ? stranger : q, queries[k].line, deadline, ms);
          } catch (const Interrupted&) {
            throw;
          } catch (const std::exception& e) {
            fig.error = e.what();
            break;
          }
          fig.samples.push_back(ms);
          if (rep == 0) fig.cold.push_back(ms);
        }
      }
      q.send("QUIT");
      stranger.send("QUIT");
      if (const int code = server.stop(60s); code != 0 && m.error.empty()) {
        m.error = "chatserver exited with status " + std::to_string(code);
      }
    }
    // The same start on a file with nothing in it, and with no file at all.
    for (int s = 0; s < o.starts; ++s) {
      const auto empty = tmp.file("empty-" + std::to_string(s) + ".db");
      {
        ServerProcess server(o.server_path, server_args(o, {"--db", empty}));
        m.start_empty_ms.push_back(server.start_ms());
        server.stop();
      }
      remove_db(empty);
      ServerProcess none(o.server_path, server_args(o, {"--db", "none"}));
      m.start_none_ms.push_back(none.start_ms());
      none.stop();
    }
  } catch (const Interrupted&) {
    throw;
  } catch (const std::exception& e) {
    if (m.error.empty()) m.error = e.what();
  }
  if (o.db_file.empty()) remove_db(m.file);
  return m;
}

// ---- reports --------------------------------------------------------------------------------

double median_of(std::vector<double> v) { return summarize(std::move(v)).median; }

struct SideFigures {
  std::vector<double> rate, ns, p50, cpu;
};
SideFigures side(const SaturationResult& s, bool db) {
  SideFigures f;
  for (const auto& r : s.rounds) {
    if (r.db != db || !r.fanout.ok()) continue;
    f.rate.push_back(r.fanout.deliveries_per_second);
    f.p50.push_back(r.fanout.p50_ms);
    if (r.fanout.server_ns_per_delivery) f.ns.push_back(*r.fanout.server_ns_per_delivery);
    if (r.fanout.server_cpu) f.cpu.push_back(*r.fanout.server_cpu);
  }
  return f;
}

std::string ratio_text(double a, double b) {
  if (a <= 0 || b <= 0) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.3f", a / b);
  return text;
}

std::string range_text(const std::vector<double>& v, bool count) {
  if (v.empty()) return "-";
  const auto s = summarize(v);
  auto f = [&](double x) { return count ? format_count(x) : format_ms(x); };
  return f(s.median) + (v.size() > 1 ? " (" + f(s.min) + "-" + f(s.max) + ")" : "");
}

}  // namespace

void HistoryOptions::apply_quick() {
  quick = true;
  rounds = 1;
  fanout.clients = 10;
  fanout.senders = 2;
  fanout.msgs = 200;
  runs = 2;
  missed = 100;
  events = 5'000;
  starts = 2;
  repeats = 2;
}

bool HistoryOptions::wants(const std::string& part) const {
  return parts.empty() || std::find(parts.begin(), parts.end(), part) != parts.end();
}

std::string SaturationRound::failure() const {
  const auto& f = fanout;
  if (!f.error.empty()) return f.error;
  if (f.ended_during_run > 0) {
    return std::to_string(f.ended_during_run) + " clients' connections ended during the run: " + f.ended_reasons;
  }
  if (!f.check.ok()) return f.check.examples.empty() ? "the delivery check failed" : f.check.examples.front();
  if (!f.join.complete()) return "not every client joined";
  if (!db_error.empty()) return db_error;
  if (db && !kept_up()) {
    return "the file holds " + std::to_string(msg_rows) + " messages of the " + std::to_string(f.sent) + " said";
  }
  return f.ok() ? "" : "the run did not complete";
}

bool SaturationResult::ok() const {
  return !rounds.empty() && std::all_of(rounds.begin(), rounds.end(), [](const auto& r) { return r.ok(); });
}

bool ResumeResult::ok() const {
  return !runs.empty() && std::all_of(runs.begin(), runs.end(), [](const auto& r) { return r.ok(); });
}

bool MillionResult::ok() const {
  return error.empty() && std::all_of(queries.begin(), queries.end(), [](const auto& q) { return q.error.empty(); });
}

bool HistoryResult::ok() const {
  return (!saturation || saturation->ok()) && (!resume || resume->ok()) && (!million || million->ok());
}

HistoryResult run_history(const HistoryOptions& options, std::ostream& progress) {
  HistoryResult r;
  r.options = options;
  TempDir tmp("chatbench-history");
  if (options.wants("saturation")) r.saturation = run_saturation(options, tmp, progress);
  if (options.wants("resume")) r.resume = run_resume(options, tmp, progress);
  if (options.wants("million")) r.million = run_million(options, tmp, progress);
  return r;
}

void print_history(const HistoryResult& r, std::ostream& out) {
  const auto& o = r.options;
  if (r.saturation) {
    const auto& s = *r.saturation;
    out << "History: saturation with the database on and off, interleaved: fanout --max --clients " << o.fanout.clients
        << " --senders " << o.fanout.senders << " --msgs " << o.fanout.msgs << " --size " << o.fanout.size << ", "
        << o.rounds << " round(s) each\n";
    Table t({{"round", true}, {"--db", false}, {"deliveries/s", true}, {"p50 ms", true}, {"server CPU %", true},
             {"server ns/delivery", true}, {"chatbench CPU %", true}, {"msgs said", true}, {"msg rows", true},
             {"on disk after ms", true}, {"file MiB", true}, {"ok", false}});
    int i = 0;
    for (const auto& round : s.rounds) {
      const auto& f = round.fanout;
      t.add_row({std::to_string(++i), round.db ? "FILE" : "none", format_count(f.deliveries_per_second), format_ms(f.p50_ms),
                 f.server_cpu ? format_count(*f.server_cpu) : "-",
                 f.server_ns_per_delivery ? format_ms(*f.server_ns_per_delivery) : "-",
                 f.generator_cpu > 0 ? format_count(f.generator_cpu) : "-", format_count(static_cast<double>(f.sent)),
                 round.db ? std::to_string(round.msg_rows) : "-",
                 round.db ? (round.catch_up_ms < 0 ? "not in 30 s" : format_ms(round.catch_up_ms)) : "-",
                 round.db ? format_ms(round.file_mib) : "-",
                 round.ok() ? "yes" : "FAILED: " + round.failure()});
    }
    t.print(out);
    const auto db = side(s, true), none = side(s, false);
    std::vector<double> per_event;
    for (const auto& round : s.rounds) {
      if (round.db && round.archive_cpu_s >= 0 && round.rows > 0) per_event.push_back(1e6 * round.archive_cpu_s / static_cast<double>(round.rows));
    }
    out << "  deliveries/s: db " << range_text(db.rate, true) << ", none " << range_text(none.rate, true)
        << "; db / none (medians) " << ratio_text(median_of(db.rate), median_of(none.rate)) << "\n";
    out << "  server CPU per delivery, ns: db " << range_text(db.ns, false) << ", none " << range_text(none.ns, false)
        << "; db / none " << ratio_text(median_of(db.ns), median_of(none.ns)) << " (above 1: the archive's cost)\n";
    if (!per_event.empty()) {
      out << "  the archive thread's CPU per event written (over the server's life, all of it on disk), us: "
          << range_text(per_event, false) << "\n";
    }
    const bool kept = std::all_of(s.rounds.begin(), s.rounds.end(), [](const auto& x) { return !x.db || x.kept_up(); });
    out << "  the archive kept up: " << (kept ? "yes" : "NO")
        << " (msg rows in the file = messages said, every db round; read with SQLite)\n";
    if (!s.stats_has_archive) out << "  STATS: no archive counters (counted in the file instead)\n";
    i = 0;
    for (const auto& round : s.rounds) {
      ++i;
      if (round.db && !round.archive_stats.empty()) {
        out << "  round " << i << ", STATS as the run ended: " << round.archive_stats << "\n";
      }
    }
  }
  if (r.resume) {
    const auto& s = *r.resume;
    out << "\nHistory: resume after " << s.missed << " missed lines, " << s.runs.size() << " run(s), fresh server each\n";
    Table t({{"run", true}, {"drop seen as", false}, {"-> RESUMED ms", true}, {"-> HISTORY END missed ms", true},
             {"-> first live line ms", true}, {"block", true}, {"ok", false}});
    int i = 0;
    for (const auto& run : s.runs) {
      t.add_row({std::to_string(++i), run.leave_cause.empty() ? "-" : run.leave_cause,
                 run.resumed_ms >= 0 ? format_ms(run.resumed_ms) : "-", run.end_ms >= 0 ? format_ms(run.end_ms) : "-",
                 run.live_ms >= 0 ? format_ms(run.live_ms) : "-", std::to_string(run.block_lines),
                 run.ok() ? "yes" : "FAILED: " + run.error});
    }
    t.print(out);
    out << "  median ms: RESUMED " << format_ms(s.resumed.median) << ", HISTORY END missed " << format_ms(s.end.median)
        << " (" << format_ms(s.end.min) << "-" << format_ms(s.end.max) << "), first live line " << format_ms(s.live.median)
        << "\n";
  }
  if (r.million) {
    const auto& m = *r.million;
    out << "\nHistory: " << format_count(static_cast<double>(m.rows)) << " events in the file ("
        << format_count(static_cast<double>(m.msg_rows)) << " messages), " << format_ms(m.file_mib) << " MiB\n";
    if (m.built) {
      out << "  written through chatserver: " << format_count(m.events_asked) << " SAYs in " << format_ms(m.build_s * 1000)
          << " ms (" << format_count(m.build_rate) << " events/s)\n";
      out << "  at the last echo, STATS: " << (m.build_stats.empty() ? "-" : m.build_stats)
          << "; then SIGTERM -> exit (the stop writes what waits): " << format_ms(m.build_stop_ms) << " ms\n";
    }
    out << "  start-up (spawn -> listening), ms: this file " << range_text(m.start_ms, false) << ", a new file "
        << range_text(m.start_empty_ms, false) << ", --db none " << range_text(m.start_none_ms, false) << "\n";
    out << "  join with ids (HELLO -> HISTORY END recent), the first after each start, ms: "
        << range_text(m.join_ms, false) << "\n";
    Table t({{"query", false}, {"answer lines", true}, {"median ms", true}, {"min", true}, {"max", true},
             {"first after start (median)", true}});
    for (const auto& q : m.queries) {
      const auto s = summarize(q.samples);
      t.add_row({q.name, std::to_string(q.answer), format_ms(s.median), format_ms(s.min), format_ms(s.max),
                 q.cold.empty() ? "-" : format_ms(median_of(q.cold))});
      if (!q.error.empty()) t.add_row({"  FAILED: " + q.error});
    }
    t.print(out);
    if (!m.error.empty()) out << "  FAILED: " << m.error << "\n";
  }
}

void json_history(const HistoryResult& r, Json& json) {
  json.begin_object("history");
  json.field("quick", r.options.quick);
  if (r.saturation) {
    const auto& s = *r.saturation;
    json.begin_object("saturation");
    json.field("clients", r.options.fanout.clients);
    json.field("senders", r.options.fanout.senders);
    json.field("msgs", r.options.fanout.msgs);
    json.field("size", r.options.fanout.size);
    json.begin_array("rounds");
    for (const auto& round : s.rounds) {
      const auto& f = round.fanout;
      json.begin_object();
      json.field("db", round.db);
      json.field("deliveries_per_second", f.deliveries_per_second);
      json.field("p50_ms", f.p50_ms);
      if (f.server_cpu) json.field("server_cpu_percent", *f.server_cpu);
      if (f.server_ns_per_delivery) json.field("server_cpu_ns_per_delivery", *f.server_ns_per_delivery);
      json.field("generator_cpu_percent", f.generator_cpu);
      json.field("sent", static_cast<long long>(f.sent));
      if (round.db) {
        json.field("rows", round.rows);
        json.field("msg_rows", round.msg_rows);
        json.field("on_disk_after_ms", round.catch_up_ms);
        json.field("file_mib", round.file_mib);
        json.field("kept_up", round.kept_up());
        json.field("stats", round.archive_stats);
        if (round.archive_cpu_s >= 0) json.field("archive_thread_cpu_s", round.archive_cpu_s);
      }
      if (!round.ok()) json.field("error", round.failure());
      json.field("ok", round.ok());
      json.end_object();
    }
    json.end_array();
    const auto db = side(s, true), none = side(s, false);
    json.field("db_deliveries_per_second", median_of(db.rate));
    json.field("none_deliveries_per_second", median_of(none.rate));
    if (!db.rate.empty() && !none.rate.empty()) json.field("ratio_deliveries_per_second", median_of(db.rate) / median_of(none.rate));
    if (!db.ns.empty() && !none.ns.empty()) json.field("ratio_cpu_per_delivery", median_of(db.ns) / median_of(none.ns));
    json.field("kept_up", std::all_of(s.rounds.begin(), s.rounds.end(), [](const auto& x) { return !x.db || x.kept_up(); }));
    json.field("stats_has_archive_counters", s.stats_has_archive);
    json.field("ok", s.ok());
    json.end_object();
  }
  if (r.resume) {
    const auto& s = *r.resume;
    json.begin_object("resume");
    json.field("missed", s.missed);
    json.begin_array("runs");
    for (const auto& run : s.runs) {
      json.begin_object();
      json.field("leave_cause", run.leave_cause);
      json.field("resumed_ms", run.resumed_ms);
      json.field("history_end_ms", run.end_ms);
      json.field("first_live_ms", run.live_ms);
      json.field("announced", run.announced);
      json.field("block_lines", run.block_lines);
      json.field("missed_found", run.missed_found);
      json.field("partial", run.partial);
      if (!run.error.empty()) json.field("error", run.error);
      json.field("ok", run.ok());
      json.end_object();
    }
    json.end_array();
    json.summary("resumed_ms", s.resumed);
    json.summary("history_end_ms", s.end);
    json.summary("first_live_ms", s.live);
    json.field("ok", s.ok());
    json.end_object();
  }
  if (r.million) {
    const auto& m = *r.million;
    json.begin_object("million");
    json.field("built", m.built);
    json.field("events_asked", m.events_asked);
    json.field("rows", m.rows);
    json.field("msg_rows", m.msg_rows);
    json.field("file_mib", m.file_mib);
    if (m.built) {
      json.field("build_seconds", m.build_s);
      json.field("build_events_per_second", m.build_rate);
      json.field("build_stats", m.build_stats);
      json.field("build_stop_ms", m.build_stop_ms);
    }
    json.summary("start_ms", summarize(m.start_ms));
    json.summary("start_new_file_ms", summarize(m.start_empty_ms));
    json.summary("start_db_none_ms", summarize(m.start_none_ms));
    json.summary("join_ms", summarize(m.join_ms));
    json.begin_array("queries");
    for (const auto& q : m.queries) {
      json.begin_object();
      json.field("name", q.name);
      json.field("line", q.line);
      json.field("answer_lines", q.answer);
      json.summary("ms", summarize(q.samples));
      json.summary("first_after_start_ms", summarize(q.cold));
      if (!q.error.empty()) json.field("error", q.error);
      json.end_object();
    }
    json.end_array();
    if (!m.error.empty()) json.field("error", m.error);
    json.field("ok", m.ok());
    json.end_object();
  }
  json.field("ok", r.ok());
  json.end_object();
}

}  // namespace chat::bench
