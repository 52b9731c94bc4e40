// Soak (issue 9), opt-in: the real chatserver binary (a child process on 127.0.0.1:0) with
// 1,000 clients for about 3 minutes: they join, chat at a steady rate, leave every way (QUIT,
// FIN, RST, half a handshake) and come back. The server's resident memory (VmRSS), open
// descriptors and threads are sampled from /proc/<pid> every 3 s. After a warm-up (a sixth of
// the run, at least 20 s), RSS must stay flat: the max of the last third of the remaining
// samples within 10% + 4 MiB of the max of their first third (the trend, in MiB/min, is printed
// too). Once every client is gone the descriptors and threads must be back where they were
// before the first client. Ten of the clients (auditors) stay all along and check that every
// other client's messages reached them once each and in order, complete when it left by QUIT or
// FIN, and that every LEAVE had the cause its client chose; STATS must show no departure the
// clients did not choose (timeout, no-pong, too-slow, flood, error) and no refused connection.
//
// Not part of the default suite: the ctest entry "soak" (label soak) skips itself unless
// CHAT_SOAK=1 is set. To run it:
//   cd build/release && CHAT_SOAK=1 ctest -L soak --output-on-failure -V
//   CHAT_SOAK=1 CHAT_SOAK_SECONDS=60 build/release/tests/server/chat_soak_tests   (a short one)
// Settings (environment): CHAT_SOAK_SECONDS (default 180), CHAT_SOAK_CLIENTS (1000; 200 in a
// sanitizer build), CHAT_SOAK_RATE (room messages per second from all clients together, 20).
//
// Server settings: every client comes from 127.0.0.1, so --max-per-ip 0. Flood control stays
// at its defaults: no client sends more than a line every few seconds (its messages, PONGs).
// --send-queue 128KiB: the room's history keeps the last --send-queue bytes of lines, and at
// this soak's ~90 events/s the default 1 MiB takes about 3 minutes to fill, so its RSS would
// still be climbing (by design, up to its bound) when the run ends; at 128 KiB it is full within
// the warm-up, and whatever still grows after that is a leak. The clients read at once (their
// backlog peaks at a few KiB), so the smaller too-slow limit costs nothing.
//
// Threads: the test thread does everything: one epoll loop over non-blocking sockets drives all
// the clients, samples /proc and makes the assertions. The server is a child process, ended by
// its pid (SIGTERM, then ~Subprocess's SIGKILL if it did not exit).
#include "tests/process/server_process.hpp"
#include "tests/server/raw_peer.hpp"

#include <catch2/catch.hpp>

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

using namespace chat::test;
using raw::Clock;

namespace {

double env_number(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const double d = std::strtod(v, &end);
  return (end != v && d > 0) ? d : fallback;
}

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

constexpr std::size_t auditor_count = 10;
constexpr auto sample_period = std::chrono::seconds(3);
constexpr auto step_patience = std::chrono::seconds(30);   // connect to WELCOME, or QUIT/FIN to the close
constexpr auto min_life = std::chrono::seconds(5);         // a churning client stays 5 to 55 s
constexpr auto max_life = std::chrono::seconds(55);
constexpr auto max_rejoin_delay = std::chrono::milliseconds(2000);

enum class Phase { idle, connecting, greeting, joining, joined, leaving };
enum class Exit { quit, fin, reset, half_handshake };
constexpr std::string_view exit_cause(Exit e) {
  switch (e) {
    case Exit::quit: return "quit";
    case Exit::fin: return "closed";
    case Exit::reset: return "reset";
    case Exit::half_handshake: return "";
  }
  return "";
}

struct Slot {
  raw::Fd fd;
  Phase phase = Phase::idle;
  bool auditor = false;
  bool want_out = false;  // EPOLLOUT registered
  std::uint32_t gen = 0;
  std::string nick;
  std::string in, out;
  Exit exit = Exit::quit;
  Clock::time_point wake{};  // idle: reconnect; joined: leave; other phases: give up
  std::uint64_t sent = 0;    // messages of this incarnation
  std::unordered_map<std::string, std::int64_t> seen;  // auditors: nick -> last message number
};

// What a leaving incarnation promised: how it leaves, and how many messages it sent (all of
// which must arrive when it leaves by QUIT or FIN: the server reads what came before).
struct Plan {
  Exit exit;
  std::uint64_t sent;
};

struct Sample {
  double t;  // seconds since the clients started
  std::size_t rss_kib, fds, threads, members;
};

class Soak {
 public:
  Soak(std::uint16_t port, std::size_t clients, double rate)
      : port_(port), slots_(clients), rate_(rate), rng_(12345), epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
    for (std::size_t i = 0; i < clients; ++i) slots_[i].auditor = i < auditor_count;
  }

  // Connects the auditors and waits (bounded) until they have all joined; then everybody else
  // connects at once, and each later leaves at a random time.
  bool start_auditors(Clock::duration patience) {
    const auto now = Clock::now();
    for (std::size_t i = 0; i < auditor_count && i < slots_.size(); ++i) connect(i, now);
    const auto deadline = now + patience;
    while (Clock::now() < deadline) {
      std::size_t joined = 0;
      for (std::size_t i = 0; i < auditor_count && i < slots_.size(); ++i) joined += slots_[i].phase == Phase::joined;
      if (joined == std::min(auditor_count, slots_.size())) return true;
      step(false);
    }
    return false;
  }
  void start_everybody() {
    const auto now = Clock::now();
    for (std::size_t i = auditor_count; i < slots_.size(); ++i) connect(i, now);
    next_message_ = now;
  }

  // One round: timers, then what the sockets have for us (waiting at most 10 ms).
  void step(bool churning) {
    const auto now = Clock::now();
    if (churning) timers(now);
    if (churning && rate_ > 0) {
      const auto gap = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / rate_));
      for (int burst = 0; now >= next_message_ && burst < 100; ++burst) {
        chat_once();
        next_message_ += gap;
      }
      if (now >= next_message_) next_message_ = now + gap;  // far behind: no catching up in a burst
    }
    epoll_event events[256];
    const int n = ::epoll_wait(epoll_.get(), events, 256, 10);
    for (int k = 0; k < n; ++k) {
      const auto i = static_cast<std::size_t>(events[k].data.u64);
      if (i >= slots_.size() || !slots_[i].fd.valid()) continue;
      on_ready(i, events[k].events);
    }
  }

  // Auditor 0 asks for STATS; the reply comes through step().
  void ask_stats() { send(0, "STATS\n"); }
  const std::string& stats_line() const { return stats_line_; }

  // Closes every client (an RST where something is unread), as if they all went at once.
  void close_all() {
    for (auto& s : slots_) {
      s.fd.reset();
      s.phase = Phase::idle;
    }
  }

  std::size_t members() const { return members_; }
  std::uint64_t connections() const { return connections_; }
  std::uint64_t messages() const { return messages_; }
  std::uint64_t audited() const { return audited_; }
  std::uint64_t departures() const { return departures_; }
  std::size_t problems() const { return problems_; }
  // Every kind of problem with its count and first few details.
  std::string problem_report() const {
    std::string out;
    for (const auto& [kind, entry] : problems_by_kind_) {
      out += "  " + kind + ": " + std::to_string(entry.first) + "\n";
      for (const auto& d : entry.second) out += "    " + d + "\n";
    }
    return out;
  }

 private:
  // A problem of kind `kind` ("LEAVE cause", "order", ...): counted by kind, the first few
  // of each kind kept with their details.
  void problem(const std::string& kind, const std::string& what) {
    ++problems_;
    auto& [count, samples] = problems_by_kind_[kind];
    ++count;
    if (samples.size() < 3) samples.push_back(what);
  }

  void connect(std::size_t i, Clock::time_point now) {
    auto& s = slots_[i];
    s.fd.reset(raw::tcp_socket(true));
    s.in.clear();
    s.out.clear();
    s.sent = 0;
    s.seen.clear();
    s.want_out = true;
    s.nick = "k" + std::to_string(i) + "g" + std::to_string(s.gen++);
    s.exit = Exit::quit;
    if (!s.auditor) {
      const auto r = rng_() % 100;
      s.exit = r < 40 ? Exit::quit : r < 65 ? Exit::fin : r < 90 ? Exit::reset : Exit::half_handshake;
    }
    if (!s.fd.valid()) {
      problem("socket", std::strerror(errno));
      idle(i, now);
      return;
    }
    const auto addr = raw::loopback(port_);
    if (::connect(s.fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
      problem("connect", std::strerror(errno));
      idle(i, now);
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = i;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, s.fd.get(), &ev);
    s.phase = Phase::connecting;
    s.wake = now + step_patience;
    ++connections_;
  }

  // Closes the socket (an RST if `reset`) and schedules the next incarnation.
  void idle(std::size_t i, Clock::time_point now, bool reset = false) {
    auto& s = slots_[i];
    if (s.phase == Phase::joined || s.phase == Phase::leaving) --members_;
    if (s.fd.valid() && reset) raw::arm_reset(s.fd.get());
    s.fd.reset();  // also leaves the epoll set
    s.phase = Phase::idle;
    s.wake = now + std::chrono::milliseconds(rng_() % max_rejoin_delay.count());
  }

  void timers(Clock::time_point now) {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      auto& s = slots_[i];
      if (now < s.wake) continue;
      switch (s.phase) {
        case Phase::idle: connect(i, now); break;
        case Phase::joined:
          if (s.auditor) break;
          leave(i, now);
          break;
        case Phase::connecting:
        case Phase::greeting:
        case Phase::joining:
        case Phase::leaving:
          problem("stuck", s.nick + ": nothing for " + std::to_string(step_patience.count()) + " s in phase " +
                  std::to_string(static_cast<int>(s.phase)));
          idle(i, now, true);
          break;
      }
    }
  }

  void leave(std::size_t i, Clock::time_point now) {
    auto& s = slots_[i];
    plans_[s.nick] = Plan{s.exit, s.sent};
    switch (s.exit) {
      case Exit::quit:
        send(i, "QUIT soak\n");
        s.phase = Phase::leaving;
        s.wake = now + step_patience;
        break;
      case Exit::fin:
        ::shutdown(s.fd.get(), SHUT_WR);
        s.phase = Phase::leaving;
        s.wake = now + step_patience;
        break;
      case Exit::reset:
      case Exit::half_handshake:
        idle(i, now, true);
        break;
    }
  }

  void chat_once() {
    if (members_ == 0) return;
    for (int tries = 0; tries < 50; ++tries) {
      const auto i = rng_() % slots_.size();
      auto& s = slots_[i];
      if (s.phase != Phase::joined) continue;
      send(i, "SAY " + std::to_string(s.sent++) + "\n");
      ++messages_;
      return;
    }
  }

  void send(std::size_t i, std::string_view line) {
    auto& s = slots_[i];
    s.out += line;
    flush(i);
  }

  void flush(std::size_t i) {
    auto& s = slots_[i];
    if (const auto error = raw::write_pending(s.fd.get(), s.out); !error.empty()) {
      problem("send", s.nick + ": " + error);
      idle(i, Clock::now());
      return;
    }
    const bool want = !s.out.empty() || s.phase == Phase::connecting;
    if (want != s.want_out) {
      epoll_event ev{};
      ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
      ev.data.u64 = i;
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, s.fd.get(), &ev);
      s.want_out = want;
    }
  }

  void on_ready(std::size_t i, std::uint32_t events) {
    auto& s = slots_[i];
    const auto now = Clock::now();
    if (s.phase == Phase::connecting) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(s.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        problem("connect", s.nick + ": " + std::strerror(err));
        idle(i, now);
        return;
      }
      s.phase = Phase::greeting;
      flush(i);  // drops EPOLLOUT
    }
    if ((events & EPOLLOUT) != 0) flush(i);
    if (!s.fd.valid() || (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) == 0) return;
    const std::string gone = raw::read_available(s.fd.get(), s.in);
    std::size_t start = 0;
    for (auto lf = s.in.find('\n'); lf != std::string::npos && s.fd.valid(); lf = s.in.find('\n', start)) {
      const std::string_view line = std::string_view(s.in).substr(start, lf - start);
      start = lf + 1;
      handle(i, line, now);
    }
    if (s.fd.valid()) s.in.erase(0, start);
    if (!gone.empty() && s.fd.valid()) {
      if (s.phase == Phase::leaving) {
        if (gone != "end of stream") problem("leaving", s.nick + ": leaving by " + std::string(exit_cause(s.exit)) + ", got " + gone);
        ++departures_;
        idle(i, now);
      } else {
        problem("dropped", s.nick + ": " + gone + " in phase " + std::to_string(static_cast<int>(s.phase)));
        idle(i, now);
      }
    }
  }

  static std::string_view word(std::string_view& rest) {
    const auto sp = rest.find(' ');
    const auto w = rest.substr(0, sp);
    rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
    return w;
  }

  void handle(std::size_t i, std::string_view line, Clock::time_point now) {
    auto& s = slots_[i];
    std::string_view rest = line;
    const auto verb = word(rest);
    if (verb == "PING") {
      // Not once it is leaving: after a FIN (or a QUIT) there is nothing more to send.
      if (s.phase != Phase::leaving) send(i, "PONG " + std::string(rest) + "\n");
      return;
    }
    switch (s.phase) {
      case Phase::greeting:
        if (verb.starts_with("#")) {
          if (s.exit == Exit::half_handshake) {
            ++departures_;
            idle(i, now);
            return;
          }
          s.phase = Phase::joining;
          send(i, "HELLO " + s.nick + "\n");
          return;
        }
        break;
      case Phase::joining:
        if (verb == "WELCOME") {
          s.phase = Phase::joined;
          ++members_;
          const auto life = min_life + std::chrono::milliseconds(rng_() % std::chrono::milliseconds(max_life - min_life).count());
          s.wake = now + life;
          return;
        }
        break;
      case Phase::joined:
      case Phase::leaving:
        if (verb == "MSG" || verb == "JOIN" || verb == "LEAVE" || verb == "USERS" || verb == "PONG") {
          if (s.auditor) audit(i, verb, rest, line);
          return;
        }
        if (verb == "STATS") {
          stats_line_ = std::string(line);
          return;
        }
        if (verb == "BYE" && s.phase == Phase::leaving && s.exit == Exit::quit && rest == "quit") return;
        break;
      case Phase::idle:
      case Phase::connecting:
        break;
    }
    problem("unexpected line", s.nick + ": \"" + std::string(line.substr(0, 200)) + "\" in phase " +
            std::to_string(static_cast<int>(s.phase)));
    if (verb == "BYE" || verb == "ERROR") idle(i, now, true);
  }

  // An auditor's checks: each sender's numbers come once each and in order (every incarnation
  // joined after the auditors did, so it is seen from its first message), all of them when it
  // left by QUIT or FIN, and each LEAVE has the cause its client chose.
  void audit(std::size_t i, std::string_view verb, std::string_view rest, std::string_view line) {
    auto& s = slots_[i];
    if (verb == "MSG") {
      const auto from = std::string(word(rest));
      std::int64_t n = -1;
      try {
        n = std::stoll(std::string(rest));
      } catch (const std::exception&) {
      }
      const auto it = s.seen.try_emplace(from, -1).first;
      if (n != it->second + 1) {
        problem("message order", s.nick + " read \"" + std::string(line) + "\" after #" + std::to_string(it->second));
      }
      it->second = std::max(it->second, n);
      ++audited_;
    } else if (verb == "LEAVE") {
      const auto nick = std::string(word(rest));
      const auto cause = word(rest);
      const auto plan = plans_.find(nick);
      const auto seen = s.seen.find(nick);
      const std::int64_t last = seen == s.seen.end() ? -1 : seen->second;
      if (plan == plans_.end()) {
        if (i == 0) problem("LEAVE not chosen", s.nick + " read \"" + std::string(line) + "\"");
      } else {
        // The causes are checked by auditor 0 alone: the others read the same LEAVE lines.
        if (i == 0 && cause != exit_cause(plan->second.exit)) {
          problem("LEAVE cause: chose " + std::string(exit_cause(plan->second.exit)) + ", got " + std::string(cause),
                  s.nick + " read \"" + std::string(line) + "\"");
        }
        const bool complete = plan->second.exit == Exit::quit || plan->second.exit == Exit::fin;
        if (complete && last != static_cast<std::int64_t>(plan->second.sent) - 1) {
          problem("messages missing before a LEAVE", s.nick + " read the LEAVE of " + nick + " after its message #" +
                                                         std::to_string(last) + " of " + std::to_string(plan->second.sent));
        }
      }
      if (seen != s.seen.end()) s.seen.erase(seen);
    }
  }

  std::uint16_t port_;
  std::vector<Slot> slots_;
  double rate_;
  std::mt19937 rng_;
  raw::Fd epoll_;
  Clock::time_point next_message_{};
  std::unordered_map<std::string, Plan> plans_;  // by nickname: how each incarnation left
  std::string stats_line_;
  std::size_t members_ = 0;
  std::uint64_t connections_ = 0, messages_ = 0, audited_ = 0, departures_ = 0;
  std::size_t problems_ = 0;
  std::map<std::string, std::pair<std::size_t, std::vector<std::string>>> problems_by_kind_;
};

// "STATS a=1 b=2" -> {a: 1, b: 2}
std::map<std::string, std::uint64_t> parse_stats(const std::string& line) {
  std::map<std::string, std::uint64_t> out;
  std::istringstream words(line);
  std::string w;
  words >> w;
  while (words >> w) {
    const auto eq = w.find('=');
    if (eq == std::string::npos) continue;
    try {
      out[w.substr(0, eq)] = std::stoull(w.substr(eq + 1));
    } catch (const std::exception&) {
    }
  }
  return out;
}

std::size_t max_rss(const std::vector<Sample>& samples, double from, double to) {
  std::size_t m = 0;
  for (const auto& s : samples) {
    if (s.t >= from && s.t < to) m = std::max(m, s.rss_kib);
  }
  return m;
}

// The server's descriptors and threads once they hold still: the same figures for 2.5 s
// (6 readings 500 ms apart; a writer may hold an ended session for one more turn, up to its
// 1 s idle timeout), bounded by `patience`.
std::pair<std::size_t, std::size_t> settled_level(pid_t pid, Clock::duration patience) {
  const auto deadline = Clock::now() + patience;
  std::pair<std::size_t, std::size_t> last{raw::open_fds(pid), raw::thread_count(pid)};
  int same = 0;
  while (same < 5 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // a sampling interval, not a readiness wait
    const std::pair<std::size_t, std::size_t> now{raw::open_fds(pid), raw::thread_count(pid)};
    same = now == last ? same + 1 : 0;
    last = now;
  }
  return last;
}

}  // namespace

TEST_CASE("soak: 1,000 clients churn and chat against chatserver: memory flat, descriptors and threads back",
          "[soak]") {
  const char* enabled = std::getenv("CHAT_SOAK");
  if (enabled == nullptr || std::string_view(enabled).empty() || std::string_view(enabled) == "0") {
    WARN("CHAT_SOAK is not set: soak skipped (run: CHAT_SOAK=1 ctest -L soak)");
    return;
  }
  const auto duration = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(env_number("CHAT_SOAK_SECONDS", 180)));
  const auto clients = static_cast<std::size_t>(env_number("CHAT_SOAK_CLIENTS", sanitized ? 200 : 1000));
  const double rate = env_number("CHAT_SOAK_RATE", 20);
  REQUIRE(clients > auditor_count);

  raise_file_limit();
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  REQUIRE(files.rlim_cur > clients + 100);

  ServerProcess server({"--max-clients", std::to_string(clients + 500), "--max-per-ip", "0", "--send-queue", "128KiB",
                        "--log-level", "warn"});
  const pid_t pid = server.process().pid();
  std::vector<std::string> server_log;
  auto drain_log = [&] {
    for (int k = 0; k < 1000; ++k) {
      auto l = server.process().read_line(Stream::err, std::chrono::milliseconds(0));
      if (!l) break;
      server_log.push_back(*l);
    }
  };

  // The idle server's level: after one connection came and went (every thread has started).
  {
    raw::BlockingPeer probe;
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    REQUIRE(probe.connect(server.port()));
    REQUIRE(probe.expect("#", deadline));
    REQUIRE(probe.send("HELLO probe\n"));
    REQUIRE(probe.expect("WELCOME probe", deadline));
    REQUIRE(probe.send("QUIT probe\n"));
    REQUIRE(probe.expect("BYE quit", deadline));
    REQUIRE(probe.expect_end(deadline));
  }
  const auto [fds_before, threads_before] = settled_level(pid, std::chrono::seconds(10));
  const auto rss_before = raw::rss_kib(pid);

  Soak soak(server.port(), clients, rate);
  REQUIRE(soak.start_auditors(std::chrono::seconds(30)));
  soak.start_everybody();

  const auto started = Clock::now();
  const auto ends = started + duration;
  std::vector<Sample> samples;
  auto next_sample = started;
  while (Clock::now() < ends) {
    soak.step(true);
    const auto now = Clock::now();
    if (now >= next_sample) {
      samples.push_back(Sample{seconds(now - started), raw::rss_kib(pid), raw::open_fds(pid), raw::thread_count(pid),
                               soak.members()});
      next_sample += sample_period;
      drain_log();
    }
  }
  const auto ran = Clock::now() - started;

  // The counters, asked while everybody is still there (no more churn or chat meanwhile).
  soak.ask_stats();
  const auto stats_deadline = Clock::now() + std::chrono::seconds(10);
  while (soak.stats_line().empty() && Clock::now() < stats_deadline) soak.step(false);
  const auto stats = parse_stats(soak.stats_line());

  // Everybody goes; the server must come back to its idle level.
  soak.close_all();
  const auto close_started = Clock::now();
  std::size_t fds_after = raw::open_fds(pid), threads_after = raw::thread_count(pid);
  while ((fds_after != fds_before || threads_after != threads_before) &&
         Clock::now() - close_started < std::chrono::seconds(15)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // sampling /proc, not waiting for readiness
    fds_after = raw::open_fds(pid);
    threads_after = raw::thread_count(pid);
  }
  const auto back_after = Clock::now() - close_started;
  const auto rss_after = raw::rss_kib(pid);
  drain_log();

  // ---- the figures ----
  const double total = seconds(ran);
  const double warm_up = std::max(20.0, total / 6);
  const double third = (total - warm_up) / 3;
  const auto first_max = max_rss(samples, warm_up, warm_up + third);
  const auto last_max = max_rss(samples, warm_up + 2 * third, total + 1);
  std::size_t fds_min = SIZE_MAX, fds_max = 0, threads_min = SIZE_MAX, threads_max = 0, rss_min = SIZE_MAX, rss_peak = 0;
  std::ostringstream table;
  for (const auto& s : samples) {
    table << "    " << static_cast<int>(s.t) << " s: rss " << s.rss_kib / 1024.0 << " MiB, fds " << s.fds << ", threads "
          << s.threads << ", members " << s.members << "\n";
    if (s.t < warm_up) continue;
    fds_min = std::min(fds_min, s.fds);
    fds_max = std::max(fds_max, s.fds);
    threads_min = std::min(threads_min, s.threads);
    threads_max = std::max(threads_max, s.threads);
    rss_min = std::min(rss_min, s.rss_kib);
    rss_peak = std::max(rss_peak, s.rss_kib);
  }
  // RSS trend after the warm-up: the least-squares slope, in MiB per minute.
  double slope = 0;
  {
    double n = 0, st = 0, sr = 0, stt = 0, str = 0;
    for (const auto& s : samples) {
      if (s.t < warm_up) continue;
      const double r = static_cast<double>(s.rss_kib) / 1024.0;
      n += 1;
      st += s.t;
      sr += r;
      stt += s.t * s.t;
      str += s.t * r;
    }
    if (n >= 2 && n * stt - st * st > 0) slope = 60 * (n * str - st * sr) / (n * stt - st * st);
  }
  auto stat = [&stats](const char* key) {
    const auto it = stats.find(key);
    return it == stats.end() ? std::uint64_t{0} : it->second;
  };
  WARN("soak: " << clients << " clients for " << total << " s: " << soak.connections() << " connections, "
                << soak.departures() << " chosen departures, " << soak.messages() << " messages ("
                << soak.messages() / total << "/s), " << soak.audited() << " checked by " << auditor_count
                << " auditors\n  server rss " << rss_before / 1024.0 << " MiB idle; after a " << warm_up
                << " s warm-up " << rss_min / 1024.0 << " to " << rss_peak / 1024.0 << " MiB; max of the first third "
                << first_max / 1024.0 << " MiB, of the last third " << last_max / 1024.0 << " MiB (trend "
                << slope << " MiB/min); "
                << rss_after / 1024.0 << " MiB once everybody left\n  fds " << fds_before << " idle, " << fds_min
                << " to " << fds_max << " running, " << fds_after << " at the end; threads " << threads_before
                << " idle, " << threads_min << " to " << threads_max << " running, " << threads_after
                << " at the end (" << seconds(back_after) << " s after the last client)\n  STATS: accepted "
                << stat("accepted") << ", leave_quit " << stat("leave_quit") << ", leave_closed " << stat("leave_closed")
                << ", leave_reset " << stat("leave_reset") << ", throttles " << stat("throttles") << ", history_chunks "
                << stat("history_chunks") << "\n  samples:\n"
                << table.str());

  // ---- the checks ----
  const std::string problems = soak.problem_report();
  std::string log;
  for (std::size_t k = 0; k < server_log.size() && k < 20; ++k) log += "  " + server_log[k] + "\n";
  INFO("problems, by kind:\n" << problems << "server log (first lines):\n" << log);
  CHECK(soak.problems() == 0);
  REQUIRE(samples.size() >= 6);
  CHECK(first_max > 0);
  CHECK(static_cast<double>(last_max) <= static_cast<double>(first_max) * 1.10 + 4 * 1024);
  CHECK(fds_after == fds_before);
  CHECK(threads_after == threads_before);
  INFO("STATS: " << soak.stats_line());
  REQUIRE_FALSE(soak.stats_line().empty());
  for (const char* key : {"leave_timeout", "leave_no_pong", "leave_too_slow", "leave_flood", "leave_error",
                          "refused_full", "refused_per_ip", "refused_busy"}) {
    INFO(key);
    CHECK(stat(key) == 0);
  }

  // The end: SIGTERM, by pid; a clean exit.
  REQUIRE(server.process().signal(SIGTERM));
  CHECK(server.process().wait_exit(std::chrono::seconds(10)) == std::optional<int>(0));
}
