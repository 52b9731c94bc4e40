// chatlab on loopback: the parsers its timeline is built from, every scenario that needs no
// network namespace, and the program itself (exit status, --json, usage errors).
#include "lab/ss_watch.hpp"
#include "lab/timeline.hpp"
#include "tests/lab/lab_check.hpp"
#include "tests/support/process.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

using namespace chat::lab;
using namespace chat::test;
using namespace std::chrono_literals;

TEST_CASE("parse_server_line reads the stamp, the thread's role, the level and the message", "[lab]") {
  const auto now = WallClock::now();
  const std::time_t t = WallClock::to_time_t(now);
  std::tm local{};
  localtime_r(&t, &local);
  char stamp[16];
  std::strftime(stamp, sizeof stamp, "%H:%M:%S", &local);

  const auto traced = parse_server_line(std::string(stamp) + ".123456 [reader victim] trace: recv: 13 bytes", now);
  REQUIRE(traced);
  CHECK(traced->role == "reader victim");
  CHECK(traced->level == "trace");
  CHECK(traced->message == "recv: 13 bytes");
  const auto whole_second = WallClock::from_time_t(t);
  CHECK(traced->at - whole_second == std::chrono::microseconds(123456));

  const auto plain = parse_server_line(std::string(stamp) + ".120 [poller] info: x: y", now);
  REQUIRE(plain);
  CHECK(plain->at - whole_second == std::chrono::microseconds(120000));
  CHECK(plain->message == "x: y");

  for (const char* bad : {"chatserver listening on 127.0.0.1:4000", "", "12:00:00", "12:00:00.1 poller info: x"}) {
    INFO(bad);
    CHECK_FALSE(parse_server_line(bad, now));
  }
}

TEST_CASE("parse_server_line puts a stamp from just before midnight on the day before", "[lab]") {
  std::tm local{};
  local.tm_year = 126;
  local.tm_mon = 11;
  local.tm_mday = 2;
  local.tm_hour = 0;
  local.tm_min = 0;
  local.tm_sec = 1;
  local.tm_isdst = -1;
  const auto just_after = WallClock::from_time_t(std::mktime(&local));
  const auto line = parse_server_line("23:59:59.500000 [poller] trace: x", just_after);
  REQUIRE(line);
  CHECK(just_after - line->at == 1500ms);
}

TEST_CASE("parse_ss_record reads the state, the timer, the probes and the retransmissions", "[lab]") {
  const auto keepalive = parse_ss_record(
      "ESTAB 0      0      10.254.1.1:15600 10.254.1.2:41234 timer:(keepalive,1.2sec,2)",
      "\t ts sack cubic wscale:7,7 rto:204 rtt:0.05/0.02 lastsnd:3000 lastrcv:3000 lastack:3056 unacked:0");
  REQUIRE(keepalive);
  CHECK(keepalive->state == "ESTAB");
  CHECK(keepalive->timer == "keepalive");
  CHECK(keepalive->timer_count == 2);
  CHECK(keepalive->lastack_ms == 3056);
  CHECK(keepalive->describe() == "ESTAB, Recv-Q 0, Send-Q 0, keepalive timer, 2 probes sent, last ACK 3056 ms ago");

  const auto retransmitting = parse_ss_record("FIN-WAIT-1 0 153115 127.0.0.1:1 127.0.0.1:2 timer:(on,408ms,3)",
                                              "\t rto:1632 backoff:3 unacked:5 retrans:1/9 lastack:900");
  REQUIRE(retransmitting);
  CHECK(retransmitting->send_q == 153115);
  CHECK(retransmitting->timer == "on");
  CHECK(retransmitting->unacked == 5);
  CHECK(retransmitting->retrans == "1/9");
  CHECK(retransmitting->backoff == 3);
  CHECK(retransmitting->describe().find("retransmission timer, 3 retransmissions") != std::string::npos);
  // A new probe changes the signature; the ACK's age alone does not.
  auto older = *keepalive;
  older.lastack_ms += 100;
  CHECK(older.signature() == keepalive->signature());
  older.timer_count = 3;
  CHECK(older.signature() != keepalive->signature());

  CHECK_FALSE(parse_ss_record("", ""));
  CHECK_FALSE(parse_ss_record("ESTAB 0", ""));
}

TEST_CASE("Timeline leaves out the observer's lines and keeps the rest in time order", "[lab]") {
  Timeline timeline;
  const auto t0 = WallClock::now();
  timeline.ignore_client("observer", 40000);
  timeline.add("poller", "heartbeat victim: quiet", t0 + 2ms);
  timeline.add("listener", "accepted 127.0.0.1:40000 as #1", t0);
  timeline.add("reader #1", "recv: 15 bytes", t0 + 1ms);
  timeline.add("reader observer", "recv: 6 bytes", t0 + 3ms);
  timeline.add("poller", "heartbeat observer: quiet", t0 + 4ms);
  timeline.add("poller", "heartbeat #10: quiet", t0 + 5ms);  // #10 is not #1
  timeline.add("observer", "LEAVE victim closed", t0 + 6ms);
  timeline.add("chatlab", "FAULT: the observer talks", t0 + 1ms);
  std::vector<std::string> kept;
  for (const auto& e : timeline.events()) kept.push_back(e.source + ": " + e.text);
  CHECK(kept == std::vector<std::string>{"chatlab: FAULT: the observer talks", "poller: heartbeat victim: quiet",
                                         "poller: heartbeat #10: quiet", "observer: LEAVE victim closed"});
}

TEST_CASE("Timeline names a reader thread once, by its client's nickname", "[lab]") {
  Timeline timeline;
  const auto t0 = WallClock::now();
  timeline.add("listener", "accepted 127.0.0.1:40002 as #2", t0);
  timeline.add("reader #2", "recv: 13 bytes", t0 + 1ms);
  timeline.add("reader victim", "joined from 127.0.0.1:40002 as #2 (protocol mode, lines)", t0 + 2ms);
  timeline.add("reader victim", "recv: 9 bytes", t0 + 3ms);
  timeline.add("reader #3", "recv: 4 bytes", t0 + 4ms);     // never joined: keeps its number
  timeline.add("reader #20", "recv: 5 bytes", t0 + 5ms);    // #20 is not #2
  std::vector<std::string> sources;
  for (const auto& e : timeline.events()) sources.push_back(e.source);
  CHECK(sources == std::vector<std::string>{"listener", "reader victim", "reader victim", "reader victim", "reader #3",
                                            "reader #20"});
}

TEST_CASE("Timeline keeps a bounded number of events", "[lab]") {
  Timeline timeline;
  for (std::size_t i = 0; i < Timeline::max_events + 10; ++i) timeline.add("poller", "x");
  CHECK(timeline.events().size() == Timeline::max_events);
  CHECK(timeline.dropped() == 10);
}

TEST_CASE("chatlab quit: the reader reads QUIT", "[lab][scenario]") {
  const auto result = run_scenario("quit", lab_options());
  INFO(timeline_text(result));
  REQUIRE(result.phases.size() == 1);
  check_phase(result.phases[0], "quit", {"reader"});
}

TEST_CASE("chatlab close: the reader's recv() returns 0 (FIN)", "[lab][scenario]") {
  const auto result = run_scenario("close", lab_options());
  INFO(timeline_text(result));
  REQUIRE(result.phases.size() == 1);
  check_phase(result.phases[0], "closed", {"reader"});
  CHECK(result.phases[0].evidence.find("end of stream (the peer sent FIN)") != std::string::npos);
}

TEST_CASE("chatlab kill: a killed process's kernel sends a FIN", "[lab][scenario]") {
  const auto result = run_scenario("kill", lab_options());
  INFO(timeline_text(result));
  REQUIRE(result.phases.size() == 1);
  check_phase(result.phases[0], "closed", {"reader"});
}

TEST_CASE("chatlab instance-lost: the victim's chatserver is killed, and the survivor's reaper says it once",
          "[lab][scenario][redis]") {
  const auto result = run_scenario("instance-lost", lab_options());
  INFO(timeline_text(result));
  REQUIRE(result.phases.size() == 1);
  const auto& phase = result.phases[0];
  check_phase(phase, "instance-lost", {"backplane"});
  REQUIRE(phase.leave_line);
  // How long the dead server was silent, by Redis's clock: at least the heartbeat key's life
  // (two thirds of --instance-timeout 3s), and about the timeout at most.
  const auto at = phase.leave_line->find("stopped answering (no heartbeat for ");
  REQUIRE(at != std::string::npos);
  const double silent = std::stod(phase.leave_line->substr(at + 36));
  CHECK(silent >= 1.9);
  CHECK(silent <= 10.0);
  // The second chatserver's lines are on the timeline, marked B; the victim saw its own end.
  const auto& events = phase.events;
  CHECK(std::any_of(events.begin(), events.end(), [](const LabEvent& e) { return e.source.rfind("B ", 0) == 0; }));
  CHECK(std::any_of(events.begin(), events.end(), [](const LabEvent& e) {
    return e.source == "victim" && e.text.rfind("gone: ", 0) == 0;
  }));
  // Exactly one decision: one reaper for the whole room.
  CHECK(std::count_if(events.begin(), events.end(), [](const LabEvent& e) {
          return e.source == "backplane" && e.text.rfind("ends victim: ", 0) == 0;
        }) == 1);
}

TEST_CASE("chatlab crash-unread: unread data turns the close into an RST", "[lab][scenario]") {
  const auto result = run_scenario("crash-unread", lab_options());
  INFO(timeline_text(result));
  REQUIRE(result.phases.size() == 1);
  check_phase(result.phases[0], "reset", {"reader", "poller", "writer"});
  const auto& events = result.phases[0].events;
  CHECK(std::any_of(events.begin(), events.end(), [](const LabEvent& e) {
    return e.source == "victim" && e.text.rfind("unread ", 0) == 0;
  }));
}

TEST_CASE("chatlab hang: the poller's heartbeat finds a stopped process", "[lab][scenario]") {
  const auto result = run_scenario("hang", lab_options());
  INFO(timeline_text(result));
  REQUIRE(result.phases.size() == 1);
  const auto& phase = result.phases[0];
  check_phase(phase, "no-pong", {"poller"});
  CHECK(phase.evidence.find("heartbeat victim: no line") != std::string::npos);
  CHECK(phase.evidence.find("its kernel ACKs") != std::string::npos);
  // The PING went out first.
  CHECK(std::any_of(phase.events.begin(), phase.events.end(), [](const LabEvent& e) {
    return e.source == "poller" && e.text.find("-> PING") != std::string::npos;
  }));
  // After the poller's decision the story is its consequences: the reader woken by the
  // shutdown, its exit with the poller's cause, the LEAVE. No second "ends victim:" line, and
  // nothing that says the peer closed the connection.
  const auto decided = std::find_if(phase.events.begin(), phase.events.end(), [](const LabEvent& e) {
    return e.source == "poller" && e.text.rfind("ends victim: no-pong", 0) == 0;
  });
  REQUIRE(decided != phase.events.end());
  for (auto e = std::next(decided); e != phase.events.end(); ++e) {
    INFO(e->source << ": " << e->text);
    CHECK(e->text.rfind("ends victim:", 0) != 0);
    CHECK(e->text.find("closed by peer") == std::string::npos);
  }
}

TEST_CASE("chatlab not-reading: a client that does not read is dropped too-slow", "[lab][scenario]") {
  const auto result = run_scenario("not-reading", lab_options());
  INFO(timeline_text(result));
  REQUIRE(result.phases.size() == 1);
  check_phase(result.phases[0], "too-slow", {"writer", "poller", "reader"});
  // The timeline shows where the bytes waited as they grew to the limit: some in the kernel
  // (its unsent part capped by TCP_NOTSENT_LOWAT), the rest queued in the server, reported in
  // steps while the socket was full, before the too-slow decision.
  std::vector<std::string> growth;
  for (const auto& e : result.phases[0].events) {
    if (e.text.find("bytes behind of send-queue 262144") != std::string::npos) growth.push_back(e.text);
  }
  INFO("growth lines: " << growth.size());
  CHECK(growth.size() >= 2);
  CHECK(std::any_of(growth.begin(), growth.end(),
                    [](const std::string& t) { return t.find(" in the kernel, ") != std::string::npos; }));
}

TEST_CASE("chatlab flood: flood control slows the reader, then drops the client", "[lab][scenario]") {
  const auto result = run_scenario("flood", lab_options());
  INFO(timeline_text(result));
  REQUIRE(result.phases.size() == 1);
  const auto& phase = result.phases[0];
  check_phase(phase, "flood", {"reader"});
  CHECK(std::any_of(phase.events.begin(), phase.events.end(), [](const LabEvent& e) {
    return e.source == "reader victim" && e.text.rfind("flood control: over 10 lines/s", 0) == 0;
  }));
  // Not before the grace (2 s) has run out.
  CHECK(phase.detected_ms >= 1900);
}

TEST_CASE("chatlab web-tab-closed: the reader reads the browser's close frame 1001", "[lab][scenario][web]") {
  const auto result = run_scenario("web-tab-closed", lab_options());
  INFO(timeline_text(result));
  REQUIRE(result.phases.size() == 1);
  const auto& phase = result.phases[0];
  check_phase(phase, "closed", {"reader"});
  // The detail names the code, and the reader's evidence is the close frame it read.
  REQUIRE(phase.leave_line);
  CHECK(phase.leave_line->find("WebSocket close 1001 (going away)") != std::string::npos);
  CHECK(phase.evidence.find("WebSocket close 1001") != std::string::npos);
  CHECK(std::any_of(phase.events.begin(), phase.events.end(), [](const LabEvent& e) {
    return e.source == "victim" && e.text.rfind("WebSocket open: HTTP/1.1 101", 0) == 0;
  }));
  // The server answers with its own close frame (RFC 6455 5.5.1), which the victim reads.
  CHECK(std::any_of(phase.events.begin(), phase.events.end(), [](const LabEvent& e) {
    return e.source == "victim" && e.text.rfind("the server's close frame: 1001", 0) == 0;
  }));
  // A frame in the socket, read at once: well under a second, as for the TCP close.
  CHECK(phase.leave_ms < 1000);
}

TEST_CASE("chatlab web-hang: the poller's heartbeat finds a stopped browser page", "[lab][scenario][web]") {
  const auto result = run_scenario("web-hang", lab_options());
  INFO(timeline_text(result));
  REQUIRE(result.phases.size() == 1);
  const auto& phase = result.phases[0];
  check_phase(phase, "no-pong", {"poller"});
  CHECK(phase.evidence.find("heartbeat victim: no line") != std::string::npos);
  CHECK(phase.evidence.find("its kernel ACKs") != std::string::npos);
  CHECK(std::any_of(phase.events.begin(), phase.events.end(), [](const LabEvent& e) {
    return e.source.rfind("reader", 0) == 0 && e.text == "HTTP GET /ws: 101";
  }));
  CHECK(std::any_of(phase.events.begin(), phase.events.end(), [](const LabEvent& e) {
    return e.source == "poller" && e.text.find("-> PING") != std::string::npos;
  }));
  // ping-interval 1 s + ping-timeout 1 s, checked at 100 ms sweeps: about 2 s.
  CHECK(phase.leave_ms < 5000);
}

// ---- over TLS -------------------------------------------------------------------------------

namespace {

bool observer_read(const PhaseResult& phase, const std::string& line) {
  return std::any_of(phase.events.begin(), phase.events.end(),
                     [&](const LabEvent& e) { return e.source == "observer" && e.text == line; });
}

// The --tls-cert the phase's chatserver ran with.
std::string cert_file_of(const PhaseResult& phase) {
  const auto it = std::find(phase.server_args.begin(), phase.server_args.end(), "--tls-cert");
  return it == phase.server_args.end() || std::next(it) == phase.server_args.end() ? std::string() : *std::next(it);
}

}  // namespace

TEST_CASE("chatlab --tls quit: the reader reads QUIT through TLS, and the certificate goes afterwards",
          "[lab][scenario][tls]") {
  const auto result = run_scenario("quit", tls_options());
  INFO(timeline_text(result));
  REQUIRE(result.phases.size() == 1);
  const auto& phase = result.phases[0];
  check_phase(phase, "quit", {"reader"});
  check_over_tls(phase);
  CHECK(result.tls);
  // The certificate was made for the run, in a directory of its own, removed at the end.
  const auto cert = cert_file_of(phase);
  REQUIRE_FALSE(cert.empty());
  CHECK(cert.find("/chatlab-tls-") != std::string::npos);
  CHECK(::access(cert.c_str(), F_OK) != 0);
  CHECK(::access(cert.substr(0, cert.rfind('/')).c_str(), F_OK) != 0);
}

TEST_CASE("chatlab tls-close: a close_notify then a FIN is closed close_notify, and the last line is delivered",
          "[lab][scenario][tls]") {
  // Over TLS without --tls: the scenario is about TLS.
  const auto result = run_scenario("tls-close", lab_options());
  INFO(timeline_text(result));
  REQUIRE(result.phases.size() == 1);
  const auto& phase = result.phases[0];
  check_phase(phase, "closed", {"reader"});
  check_over_tls(phase);
  REQUIRE(phase.leave_line);
  CHECK(phase.leave_line->rfind("LEAVE victim closed close_notify (reader, ", 0) == 0);
  CHECK(phase.leave_line->find("without") == std::string::npos);
  // The reader saw TLS's end of the stream (SSL_ERROR_ZERO_RETURN), not the FIN after it.
  CHECK(phase.evidence == "TLS: close_notify");
  // The unfinished line before the close_notify was the victim's last word, read before the LEAVE.
  CHECK(observer_read(phase, "MSG victim my last words"));
  CHECK(phase.verdict.find("the others read the unfinished last line") != std::string::npos);
  // A read, not a wait: well under a second.
  CHECK(phase.leave_ms < 1000);
}

TEST_CASE("chatlab tls-cut: a FIN without close_notify is closed, said so, and the cut line is dropped",
          "[lab][scenario][tls]") {
  const auto result = run_scenario("tls-cut", lab_options());
  INFO(timeline_text(result));
  REQUIRE(result.phases.size() == 1);
  const auto& phase = result.phases[0];
  check_phase(phase, "closed", {"reader"});
  check_over_tls(phase);
  REQUIRE(phase.leave_line);
  CHECK(phase.leave_line->find("connection closed by peer without close_notify (reader, ") != std::string::npos);
  CHECK(phase.evidence.find("end of stream (the peer sent FIN)") != std::string::npos);
  // The bytes of the unfinished line came (a record), but it may have been cut short: dropped.
  CHECK_FALSE(observer_read(phase, "MSG victim my last words"));
  CHECK(phase.leave_ms < 1000);
}

TEST_CASE("chatlab --tls kill: a killed TLS client's FIN comes without close_notify", "[lab][scenario][tls]") {
  const auto result = run_scenario("kill", tls_options());
  INFO(timeline_text(result));
  REQUIRE(result.phases.size() == 1);
  const auto& phase = result.phases[0];
  check_phase(phase, "closed", {"reader"});
  check_over_tls(phase);
  REQUIRE(phase.leave_line);
  CHECK(phase.leave_line->find("without close_notify") != std::string::npos);
}

TEST_CASE("chatlab --tls crash-unread: unread records turn the close into an RST", "[lab][scenario][tls]") {
  const auto result = run_scenario("crash-unread", tls_options());
  INFO(timeline_text(result));
  REQUIRE(result.phases.size() == 1);
  check_phase(result.phases[0], "reset", {"reader", "poller", "writer"});
  check_over_tls(result.phases[0]);
}

TEST_CASE("chatlab --tls hang: the poller's heartbeat finds a stopped TLS client", "[lab][scenario][tls]") {
  const auto result = run_scenario("hang", tls_options());
  INFO(timeline_text(result));
  REQUIRE(result.phases.size() == 1);
  const auto& phase = result.phases[0];
  check_phase(phase, "no-pong", {"poller"});
  check_over_tls(phase);
  // The PING went in a record, and its kernel ACKed it: the same verdict as in clear text.
  CHECK(phase.evidence.find("heartbeat victim: no line") != std::string::npos);
  CHECK(phase.evidence.find("its kernel ACKs") != std::string::npos);
  CHECK(phase.leave_ms < 5000);
}

TEST_CASE("chatlab --tls web-tab-closed: the close frame 1001 inside TLS", "[lab][scenario][tls][web]") {
  const auto result = run_scenario("web-tab-closed", tls_options());
  INFO(timeline_text(result));
  REQUIRE(result.phases.size() == 1);
  const auto& phase = result.phases[0];
  check_phase(phase, "closed", {"reader"});
  check_over_tls(phase);
  REQUIRE(phase.leave_line);
  CHECK(phase.leave_line->find("WebSocket close 1001 (going away)") != std::string::npos);
  CHECK(std::any_of(phase.events.begin(), phase.events.end(), [](const LabEvent& e) {
    return e.source == "reader victim" && e.text == "HTTPS GET /ws: 101";
  }));
}

namespace {

// Every line `lab` writes on `which`, until it closes it (bounded by `timeout` overall).
std::vector<std::string> all_lines(Subprocess& lab, Stream which, std::chrono::milliseconds timeout) {
  std::vector<std::string> lines;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!lab.at_eof(which) && std::chrono::steady_clock::now() < deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (auto line = lab.read_line(which, left)) lines.push_back(*line);
  }
  return lines;
}

}  // namespace

TEST_CASE("chatlab the program: each line once, the table on stdout and nothing before its head", "[lab][program]") {
  for (const std::string scenario : {"quit", "hang"}) {
    Subprocess lab({CHATLAB_PATH, scenario});
    lab.close_stdin();
    const auto out = all_lines(lab, Stream::out, 60s);
    const auto err = all_lines(lab, Stream::err, 10s);
    CHECK(lab.wait_exit(10s) == 0);
    std::string text;
    for (const auto& line : out) text += line + "\n";
    INFO(scenario << ": stdout:\n" << text);
    // The head comes first, then the server's command line, once; the fault is told once, in the table.
    REQUIRE_FALSE(out.empty());
    CHECK(out[0].rfind("chatlab " + scenario + ": ", 0) == 0);
    CHECK(std::count_if(out.begin(), out.end(), [](const std::string& l) { return l.rfind("chatserver --trace", 0) == 0; }) == 1);
    CHECK(std::count_if(out.begin(), out.end(), [](const std::string& l) { return l.find("FAULT: ") != std::string::npos; }) == 1);
    // stderr is for errors: none here, so no line told twice before the head.
    for (const auto& line : err) {
      const std::string said = line.rfind("chatlab: ", 0) == 0 ? line.substr(9) : line;
      INFO("stderr: " << line);
      CHECK(std::none_of(out.begin(), out.end(), [&](const std::string& o) { return o.find(said) != std::string::npos; }));
    }
    CHECK(err.empty());
  }
}

TEST_CASE("chatlab the program: its usage has no SUBCOMMAND, and its victim still runs", "[lab][program]") {
  {
    Subprocess lab({CHATLAB_PATH, "--help"});
    lab.close_stdin();
    const auto out = all_lines(lab, Stream::out, 10s);
    CHECK(lab.wait_exit(10s) == 0);
    std::string text;
    for (const auto& line : out) text += line + "\n";
    INFO(text);
    CHECK(text.find("Usage: chatlab [OPTIONS] SCENARIO [-- CHATSERVER-OPTIONS...]") != std::string::npos);
    CHECK(text.find("SUBCOMMAND") == std::string::npos);
    CHECK(text.find("web-hang: ") != std::string::npos);  // the scenarios, in the footer
  }
  for (std::vector<std::string> argv : {std::vector<std::string>{CHATLAB_PATH, "--no-such-option", "kill"},
                                        std::vector<std::string>{CHATLAB_PATH, "victim"},
                                        std::vector<std::string>{CHATLAB_PATH, "victim", "127.0.0.1", "port"}}) {
    INFO(argv[1] << (argv.size() > 2 ? " " + argv[2] : std::string()));
    Subprocess lab(argv);
    lab.close_stdin();
    CHECK(lab.wait_exit(10s) == 2);
  }
  // `chatlab victim` is what every scenario starts: the quit scenario runs it.
  const auto result = run_scenario("quit", lab_options());
  INFO(timeline_text(result));
  REQUIRE(result.phases.size() == 1);
  CHECK(result.phases[0].ok);
}

TEST_CASE("chatlab the program: a timeline, --json, and exit 2 for what it cannot do", "[lab][program]") {
  {
    Subprocess lab({CHATLAB_PATH, "--list"});
    lab.close_stdin();
    std::string seen;
    CHECK(lab.wait_for_line(Stream::out, "web-hang: ", 10s, &seen));
    INFO(seen);
    CHECK(seen.find("web-tab-closed: ") != std::string::npos);
    std::string tls_seen;
    CHECK(lab.wait_for_line(Stream::out, "tls-cut (TLS): ", 10s, &tls_seen));
    INFO(tls_seen);
    CHECK(tls_seen.find("tls-close (TLS): ") != std::string::npos);
    CHECK(lab.wait_exit(10s) == 0);
  }
  {
    // --tls: the head says it runs over TLS, the JSON too, and the verdict is the scenario's.
    Subprocess lab({CHATLAB_PATH, "--tls", "--json", "close"});
    lab.close_stdin();
    const auto json = lab.read_line(Stream::out, 30s);
    REQUIRE(json);
    CHECK(json->rfind("{\"scenario\":\"close\"", 0) == 0);
    CHECK(json->find("\"tls\":true") != std::string::npos);
    CHECK(json->find("\"ok\":true") != std::string::npos);
    CHECK(json->find("without close_notify") != std::string::npos);
    CHECK(lab.wait_exit(30s) == 0);
  }
  {
    Subprocess lab({CHATLAB_PATH, "--tls", "quit"});
    lab.close_stdin();
    std::string seen;
    CHECK(lab.wait_for_line(Stream::out, "ok: cause quit, decided by the reader thread", 30s, &seen));
    INFO(seen);
    CHECK(seen.find("\nover TLS: ") != std::string::npos);
    CHECK(seen.find(" --tls-cert ") != std::string::npos);
    CHECK(seen.find("victim          TLS: TLSv1.") != std::string::npos);
    CHECK(lab.wait_exit(30s) == 0);
  }
  {
    Subprocess lab({CHATLAB_PATH, "close"});
    lab.close_stdin();
    std::string seen;
    CHECK(lab.wait_for_line(Stream::out, "ok: cause closed, decided by the reader thread", 30s, &seen));
    INFO(seen);
    CHECK(seen.find("FAULT: the victim closes its socket") != std::string::npos);
    CHECK(seen.find("LEAVE victim closed") != std::string::npos);
    CHECK(lab.wait_exit(30s) == 0);
  }
  {
    // One JSON document; the options after -- reach chatserver, after the lab's own, and win.
    Subprocess lab({CHATLAB_PATH, "--json", "kill", "--", "--poll-interval", "50ms", "--keepalive", "3s,1s,3"});
    lab.close_stdin();
    const auto json = lab.read_line(Stream::out, 30s);
    REQUIRE(json);
    CHECK(json->rfind("{\"scenario\":\"kill\"", 0) == 0);
    CHECK(json->find("\"ok\":true") != std::string::npos);
    CHECK(json->find("\"detector\":\"reader\"") != std::string::npos);
    CHECK(json->find("\"--poll-interval\",\"50ms\"") != std::string::npos);
    CHECK(json->find("TCP_KEEPIDLE 3.0 s, TCP_KEEPINTVL 1.0 s, TCP_KEEPCNT 3") != std::string::npos);
    CHECK(lab.wait_exit(30s) == 0);
  }
  for (std::vector<std::string> argv : {std::vector<std::string>{CHATLAB_PATH, "no-such-scenario"},
                                        std::vector<std::string>{CHATLAB_PATH},
                                        std::vector<std::string>{CHATLAB_PATH, "--wait", "soon", "kill"}}) {
    Subprocess lab(argv);
    lab.close_stdin();
    CHECK(lab.wait_exit(10s) == 2);
  }
  {
    // The server's own usage error is the lab's failure, said as such.
    Subprocess lab({CHATLAB_PATH, "kill", "--", "--no-such-option"});
    lab.close_stdin();
    std::string seen;
    CHECK(lab.wait_for_line(Stream::err, "chatserver did not start", 10s, &seen));
    CHECK(lab.wait_exit(10s) == 1);
  }
}
