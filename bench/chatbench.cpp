// chatbench: measures chat servers. The detection modes start chatserver themselves on
// 127.0.0.1 with --port 0 (never any other address) and end it by pid when done. The side-by-side
// modes (fanout, join, scale) measure a running server given by --host/--port in any of four
// protocols, or start their own chatserver when no port is given. Every run is bounded in count
// and time; chatbench stops by itself.
//
// How to run (after `./chat.sh build` or any build of the project):
//
//   build/release/bench/chatbench fanout --max                  # 100 clients, 10 senders x 1000 x 64 B
//   build/release/bench/chatbench fanout --rate 100             # 100 msg/s per sender: latency
//   build/release/bench/chatbench join --clients 2000           # a join storm
//   build/release/bench/chatbench scale --clients 10000         # memory, threads, idle CPU, one round
//   build/release/bench/chatbench fanout --max --protocol irc --port 6667 --server-pid 1234
//   build/release/bench/chatbench fanout --max --protocol ws           # every client a WebSocket
//   build/release/bench/chatbench fanout --max --protocol mixed        # half of them (--web-share F)
//   build/release/bench/chatbench --tls fanout --max            # every client over TLS
//   build/release/bench/chatbench fanout --max --compare-tls    # clear text, then TLS: both rows, the ratio
//   build/release/bench/chatbench scale --clients 10000 --compare-tls   # memory per client, clear vs TLS
//   build/release/bench/chatbench detect                        # detection latency per failure (~45 s)
//   build/release/bench/chatbench detect --case "not reading"   # one case only (--case repeatable)
//   build/release/bench/chatbench shutdown                      # SIGTERM with 1000 joined clients
//   build/release/bench/chatbench all                           # detect, shutdown and fanout --max
//   build/release/bench/chatbench history                       # --db FILE vs none, resume, 1M events (~5 min)
//   build/release/bench/chatbench history --quick               # the same, tiny (a few seconds)
//   build/release/bench/chatbench --json fanout --max > results.json
//   bench/compare.sh                                            # chatserver next to ngircd, ncat, Asio
//   bench/web_compare.sh                                        # web clients next to TCP clients
//
// Options for every mode: --server PATH (the chatserver to start; default: the one built with
// this chatbench), --json (stdout gets one JSON document; the tables go to stderr instead).
// For fanout, join and scale: --protocol chat|ws|mixed|line|irc|asio, --host H --port P (a running
// server; without --port chatbench starts chatserver), --server-pid PID (its /proc figures:
// memory, threads, CPU), --label NAME (for the report), --server-arg ARG (repeatable: an option
// for the chatserver chatbench starts). `ws` is chatserver's protocol over a WebSocket on the same
// port (GET /ws, then one line per masked text frame; swarm.hpp); `mixed` makes a share of the
// clients (--web-share F, 0..1, default 0.5, spread evenly over the client numbers) WebSocket
// clients and the rest TCP line clients, in one room and one run, and reports deliveries/s and
// latency separately for the two kinds of receiver (fanout.hpp). --tls: the clients speak TLS
// (chat, ws and mixed; swarm.hpp), and a chatserver started here gets --self-signed with a
// certificate made in a folder of its own under $TMPDIR, removed afterwards; the certificate is
// not verified (chatbench's own server; what is measured is the encryption). fanout and scale
// take --compare-tls (with --rounds N): the same load over clear text and over TLS, side by
// side, and the ratio (tls_compare.hpp). Progress lines always go to stderr. Exit status: 0
// when every measurement completed as expected (right causes, every BYE, every delivery exactly
// once and in order), 1 otherwise, 2 on a usage error.
//
// The modes (details in fanout.hpp, join_storm.hpp, scale.hpp, detect.hpp, shutdown.hpp):
//   fanout    deliveries per second and latency p50/p99/max, with a delivery checker (loss,
//             duplicates, reordering, corruption, and chatserver's global order).
//   join      N clients connect and join at once: time to the last join and to the end of the
//             join chatter, refused and dropped clients, then a message round.
//   scale     N clients: join time, server RSS and threads, idle CPU, a message round's latency.
//   detect    time from an injected failure to the observer's `LEAVE victim <cause>`: quit,
//             closed (victim process SIGKILLed), reset (RST), no-pong (victim process
//             SIGSTOPped; server defaults once, then --ping-interval 1s --ping-timeout 1s),
//             too-slow (victim stops reading: 1 MiB queue, and a stalled write with
//             --send-timeout 1s), and the "not reading (900 B lines)" (a 4 KiB receive
//             buffer, at most 1,000 lines of 900 B, --send-queue 256KiB --send-timeout 2s).
//             --case TEXT (repeatable) runs only the cases whose name contains TEXT; one that
//             matches no case is a usage error. Victim processes are this executable, run as
//             `chatbench victim` (an internal mode).
//   shutdown  SIGTERM -> process exit, and -> every client has read `BYE shutdown`.
//   history   the archive (--db): saturation with the database on and off, interleaved, and
//             whether the file kept up; a resume after N missed lines (RESUME -> HISTORY END
//             missed -> the first live line); a file of 1,000,000 events: start-up, join, SEARCH,
//             HISTORY BEFORE. --only saturation,resume,million; --quick (history_bench.hpp).
//
// The side-by-side modes drive every client from one thread with one epoll set (swarm.hpp) and
// report that thread's CPU, so a reader can tell when chatbench, not the server, was the limit.
//
// Threads: main thread; each chatserver started has a stderr drain thread (child_process.hpp).
// SIGINT/SIGTERM stop the benchmark within 100 ms, ending the processes it started.
#include "bench/child_process.hpp"
#include "bench/detect.hpp"
#include "bench/fanout.hpp"
#include "bench/history_bench.hpp"
#include "bench/join_storm.hpp"
#include "bench/scale.hpp"
#include "bench/shutdown.hpp"
#include "bench/tls_compare.hpp"
#include "bench/victim.hpp"
#include "common/cli.hpp"

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <exception>
#include <iostream>
#include <sstream>

#ifndef CHATSERVER_PATH
#define CHATSERVER_PATH "chatserver"
#endif

namespace {

using namespace chat::bench;

struct Settings {
  std::string server = CHATSERVER_PATH;
  bool json = false;
  std::string protocol = "chat";
  double web_share = -1;  // --web-share; -1: not given
  TargetOptions target;
  DetectOptions detect;
  ShutdownOptions shutdown;
  FanoutOptions fanout;
  JoinStormOptions join;
  ScaleOptions scale;
  HistoryOptions history;
  bool compare_tls = false;  // fanout, scale: --compare-tls
  int tls_rounds = 1;        // --rounds with --compare-tls
};

int run(const std::string& mode, Settings& s) {
  // With --json, stdout is for the JSON document alone; the tables go to stderr.
  std::ostream& tables = s.json ? std::cerr : std::cout;
  std::ostream& progress = std::cerr;
  s.detect.server_path = s.shutdown.server_path = s.target.server_path = s.server;
  s.detect.self_path = self_path();
  // ws and mixed are chatserver's protocol with some or all clients on a WebSocket.
  s.target.protocol = s.protocol == "ws" || s.protocol == "mixed" ? Protocol::chat : *protocol_from(s.protocol);
  s.target.web_share = s.protocol == "ws" ? 1.0 : s.protocol == "mixed" ? (s.web_share >= 0 ? s.web_share : 0.5) : 0.0;
  const bool starts_server =
      mode == "detect" || mode == "shutdown" || mode == "all" || mode == "history" || s.target.port == 0;
  if (starts_server && ::access(s.server.c_str(), X_OK) != 0) {
    std::cerr << "chatbench: cannot run chatserver at " << s.server << " (use --server PATH)\n";
    return 2;
  }

  Json json;
  json.begin_object();
  json.field("server", s.target.port == 0 ? s.server : s.target.host + ":" + std::to_string(s.target.port));
  bool ok = true;
  if (mode == "detect" || mode == "all") {
    const auto rows = run_detect(s.detect, progress);
    tables << "\n";
    print_detect(rows, tables);
    json_detect(rows, json);
    for (const auto& row : rows) ok = ok && row.ok();
  }
  if (mode == "shutdown" || mode == "all") {
    const auto result = run_shutdown(s.shutdown, progress);
    tables << "\n";
    print_shutdown(result, tables);
    json_shutdown(result, json);
    ok = ok && result.ok();
  }
  if (mode == "fanout" && s.compare_tls) {
    const auto result = run_fanout_tls_compare(s.fanout, s.target, s.tls_rounds, progress);
    tables << "\n";
    print_fanout_tls_compare(result, tables);
    json_fanout_tls_compare(result, json);
    ok = ok && result.ok();
  } else if (mode == "fanout" || mode == "all") {
    const auto result = run_fanout(s.fanout, s.target, progress);
    tables << "\n";
    print_fanout(result, tables);
    json_fanout(result, json);
    ok = ok && result.ok();
  }
  if (mode == "join") {
    const auto result = run_join_storm(s.join, s.target, progress);
    tables << "\n";
    print_join_storm(result, tables);
    json_join_storm(result, json);
    ok = ok && result.ok();
  }
  if (mode == "scale" && s.compare_tls) {
    const auto result = run_scale_tls_compare(s.scale, s.target, s.tls_rounds, progress);
    tables << "\n";
    print_scale_tls_compare(result, tables);
    json_scale_tls_compare(result, json);
    ok = ok && result.ok();
  } else if (mode == "scale") {
    const auto result = run_scale(s.scale, s.target, progress);
    tables << "\n";
    print_scale(result, tables);
    json_scale(result, json);
    ok = ok && result.ok();
  }
  if (mode == "history") {
    s.history.server_path = s.server;
    s.history.server_args = s.target.server_args;
    const auto result = run_history(s.history, progress);
    tables << "\n";
    print_history(result, tables);
    json_history(result, json);
    ok = ok && result.ok();
  }
  json.field("ok", ok);
  json.end_object();
  if (s.json) std::cout << json.text() << std::endl;
  return ok ? 0 : 1;
}

// The options every side-by-side mode shares.
void add_size_option(CLI::App* mode, int& size) {
  mode->add_option("--size", size, "Bytes of text per message")
      ->capture_default_str()
      ->check(CLI::Range(static_cast<int>(min_payload_size), static_cast<int>(max_payload_size)));
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  CLI::App app{"chatbench: measures chat servers: delivery rate and latency, join storms and scale side by side "
               "(this project's chatserver, ncat --chat, ngircd, the Asio chat example), and chatserver's "
               "detection latency per failure and shutdown time.",
               "chatbench"};
  app.fallthrough();
  app.require_subcommand(1);
  app.add_option("--server", s.server, "chatserver to start")->capture_default_str();
  app.add_flag("--json", s.json, "Print the results as one JSON document on stdout (tables go to stderr)");
  app.add_option("--protocol", s.protocol,
                 "fanout/join/scale: chat, ws (chat over a WebSocket), mixed (some ws, the rest chat; --web-share), "
                 "line (ncat --chat), irc (ngircd) or asio")
      ->capture_default_str()
      ->check(CLI::IsMember({"chat", "ws", "mixed", "line", "irc", "asio"}));
  app.add_option("--web-share", s.web_share,
                 "fanout/join/scale with --protocol mixed: the share of clients on a WebSocket, 0..1 (default 0.5)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--host", s.target.host, "fanout/join/scale: the server's address (numeric)")->capture_default_str();
  app.add_option("--port", s.target.port, "fanout/join/scale: a running server's port; none: start chatserver")
      ->check(CLI::Range(1, 65535));
  app.add_option("--server-pid", s.target.pid, "fanout/join/scale: the running server's pid, for /proc figures")
      ->check(CLI::PositiveNumber);
  app.add_option("--label", s.target.label, "fanout/join/scale: the server's name in the report");
  app.add_option("--server-arg", s.target.server_args, "fanout/join/scale: an option for the chatserver started here")
      ->allow_extra_args(false);
  app.add_option("--instances", s.target.instances,
                 "fanout: N chatservers sharing one room through a redis-server started here (client i on "
                 "instance i mod N; docs/scale-out.md)")
      ->capture_default_str()
      ->check(CLI::Range(1, 8));
  app.add_flag("--tls", s.target.tls,
               "fanout/join/scale: the clients speak TLS (a chatserver started here gets --self-signed in a "
               "temporary folder; the certificate is not verified)");

  auto* fanout = app.add_subcommand("fanout", "N clients in one room, S senders: deliveries/s, latency, checked");
  fanout->add_option("--clients", s.fanout.clients, "Clients in the room")->capture_default_str()->check(CLI::Range(2, 20'000));
  fanout->add_option("--senders", s.fanout.senders, "Clients that send")->capture_default_str()->check(CLI::Range(1, 1000));
  add_size_option(fanout, s.fanout.size);
  auto* rate = fanout->add_option("--rate", s.fanout.rate, "Messages per second per sender")->check(CLI::Range(0.1, 1e6));
  bool max = false;
  auto* max_flag = fanout->add_flag("--max", max, "Send as fast as the server takes them");
  rate->excludes(max_flag);
  auto* msgs = fanout->add_option("--msgs", s.fanout.msgs, "Messages per sender")->capture_default_str()->check(CLI::Range(1, 1'000'000));
  auto* duration = fanout->add_option("--duration", s.fanout.duration, "Seconds of sending, instead of --msgs")
                       ->check(CLI::Range(0.1, 3600.0));
  duration->excludes(msgs);
  fanout->add_option("--threads", s.fanout.threads,
                     "Generator threads, each driving its share of the clients (one epoll set each)")
      ->capture_default_str()
      ->check(CLI::Range(1, 16));
  fanout->add_option("--in-progress", s.fanout.in_progress, "Clients joining at once before the run")
      ->capture_default_str()
      ->check(CLI::Range(1, 20'000));
  fanout->add_option("--window", s.fanout.window, "With --max: messages per sender not yet delivered to all (0: no limit)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1'000'000));
  auto* fanout_compare = fanout->add_flag("--compare-tls", s.compare_tls,
                                          "The same load over clear text, then over TLS: both rows and the ratio");
  auto* fanout_rounds = fanout->add_option("--rounds", s.tls_rounds, "With --compare-tls: clear/TLS pairs, interleaved")
                            ->capture_default_str()
                            ->check(CLI::Range(1, 20));
  fanout_rounds->needs(fanout_compare);

  auto* join = app.add_subcommand("join", "N clients connect and join at once: time, refusals, drops, then a round");
  join->add_option("--clients", s.join.clients, "Clients")->capture_default_str()->check(CLI::Range(1, 20'000));
  join->add_option("--round-senders", s.join.round_senders, "Members that send one message after the storm")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  add_size_option(join, s.join.size);
  join->add_option("--patience", s.join.patience, "Seconds before the storm counts as timed out")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 3600.0));

  auto* scale = app.add_subcommand("scale", "N clients: join time, server memory and threads, idle CPU, one round");
  scale->add_option("--clients", s.scale.clients, "Clients")->capture_default_str()->check(CLI::Range(1, 30'000));
  scale->add_option("--in-progress", s.scale.in_progress, "Connections being set up at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 30'000));
  scale->add_option("--rate", s.scale.rate, "Messages per second in the chat phase, all senders together")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 10'000.0));
  scale->add_option("--duration", s.scale.duration, "Seconds of chat")->capture_default_str()->check(CLI::Range(0.0, 3600.0));
  scale->add_option("--idle", s.scale.idle, "Seconds of silence for the idle CPU")->capture_default_str()->check(CLI::Range(0.0, 3600.0));
  add_size_option(scale, s.scale.size);
  scale->add_option("--patience", s.scale.patience, "Seconds for everybody to join")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 3600.0));
  auto* scale_compare = scale->add_flag("--compare-tls", s.compare_tls,
                                        "The same clients over clear text, then over TLS: memory per client side by side");
  scale->add_option("--rounds", s.tls_rounds, "With --compare-tls: clear/TLS pairs, interleaved")
      ->capture_default_str()
      ->check(CLI::Range(1, 20))
      ->needs(scale_compare);

  auto* detect = app.add_subcommand("detect", "Detection latency per failure, each run a fresh scenario");
  detect->add_option("--runs", s.detect.runs, "Runs per case (no-pong with the 15s/10s defaults runs once)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  detect->add_option("--case", s.detect.cases,
                     "Run only the cases whose name contains TEXT (repeatable; default: every case)")
      ->type_name("TEXT")
      ->allow_extra_args(false);

  auto* shutdown = app.add_subcommand("shutdown", "SIGTERM with N joined clients: time to exit and to BYE");
  shutdown->add_option("--clients", s.shutdown.clients, "Joined clients")
      ->capture_default_str()
      ->check(CLI::Range(1, 10'000));

  app.add_subcommand("all", "detect, shutdown and fanout --max with their defaults");

  auto* history = app.add_subcommand(
      "history", "The archive (--db): saturation with it on and off, a resume's replay, a file of 1M events");
  bool history_quick = false;
  history->add_flag("--quick", history_quick, "Every part tiny (the test suite's smoke; a few seconds)");
  history->add_option("--only", s.history.parts, "Parts to run: saturation, resume, million (default: all)")
      ->delimiter(',')
      ->check(CLI::IsMember({"saturation", "resume", "million"}));
  history->add_option("--rounds", s.history.rounds, "saturation: fanout rounds with the database, and as many without")
      ->capture_default_str()
      ->check(CLI::Range(1, 50));
  history->add_option("--clients", s.history.fanout.clients, "saturation: clients in the room")
      ->capture_default_str()
      ->check(CLI::Range(2, 20'000));
  history->add_option("--senders", s.history.fanout.senders, "saturation: clients that send")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  history->add_option("--msgs", s.history.fanout.msgs, "saturation: messages per sender")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  add_size_option(history, s.history.fanout.size);
  history->add_option("--runs", s.history.runs, "resume: runs (each on a fresh server)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  history->add_option("--missed", s.history.missed, "resume: lines said while the client was away")
      ->capture_default_str()
      ->check(CLI::Range(1, 100'000));
  history->add_option("--events", s.history.events, "million: events in the file")
      ->capture_default_str()
      ->check(CLI::Range(1'002, 20'000'000));
  history->add_option("--starts", s.history.starts, "million: server starts on the file")
      ->capture_default_str()
      ->check(CLI::Range(1, 20));
  history->add_option("--repeats", s.history.repeats, "million: each query, per start")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  history->add_option("--db-file", s.history.db_file,
                      "million: build the file here and keep it (an existing file is used as it is)");

  // Internal: the victim process of the detect cases.
  int victim_port = 0;
  std::string victim_nick = "victim";
  int victim_lifetime_s = 120;
  auto* victim = app.add_subcommand("victim", "");
  victim->group("");  // hidden from --help
  victim->add_option("--port", victim_port)->required()->check(CLI::Range(1, 65535));
  victim->add_option("--nick", victim_nick);
  victim->add_option("--lifetime", victim_lifetime_s)->check(CLI::Range(1, 3600));

  try {
    app.parse(argc, argv);
    if (fanout->parsed() && !max && s.fanout.rate <= 0) throw CLI::ValidationError("fanout", "give --rate R or --max");
    const bool side_by_side = fanout->parsed() || join->parsed() || scale->parsed();
    if (s.web_share >= 0 && s.protocol != "mixed") {
      throw CLI::ValidationError("--web-share", "goes with --protocol mixed");
    }
    const bool chatserver_protocol = s.protocol == "chat" || s.protocol == "ws" || s.protocol == "mixed";
    if (side_by_side && s.target.port == 0 && !chatserver_protocol) {
      throw CLI::ValidationError("--protocol " + s.protocol,
                                 "needs --port of a running server (chatbench starts only chatserver)");
    }
    if (s.target.tls && !side_by_side) {
      throw CLI::ValidationError("--tls", "goes with fanout, join or scale");
    }
    if (s.target.tls && !chatserver_protocol) {
      throw CLI::ValidationError("--tls", "the TLS clients speak chatserver's protocol (chat, ws or mixed), not " +
                                              s.protocol);
    }
    if (s.compare_tls && s.target.tls) {
      throw CLI::ValidationError("--compare-tls", "runs clear text and TLS itself: no --tls");
    }
    if (s.compare_tls && s.target.port != 0) {
      throw CLI::ValidationError("--compare-tls", "starts its chatservers itself (with --self-signed): no --port");
    }
    if (side_by_side && s.target.port == 0 && s.target.host != "127.0.0.1") {
      throw CLI::ValidationError("--host", "needs --port: chatbench starts chatserver on 127.0.0.1 only");
    }
    if (fanout->parsed() && s.fanout.window > 0 && s.fanout.threads > 1) {
      throw CLI::ValidationError("--window", "works with one generator thread only (--threads 1)");
    }
    if (fanout->parsed() && s.fanout.senders > s.fanout.clients) {
      throw CLI::ValidationError("--senders", "cannot exceed --clients");
    }
    if (fanout->parsed() && s.fanout.duration == 0 &&
        static_cast<long long>(s.fanout.clients) * s.fanout.senders * s.fanout.msgs > 200'000'000) {
      throw CLI::ValidationError("fanout", "--clients x --senders x --msgs must stay within 200,000,000 deliveries");
    }
    // Each --case must pick a case: a typo would otherwise run nothing and report success.
    const auto case_names = detect_case_names();
    for (const auto& wanted : s.detect.cases) {
      const auto picks = [&](const std::string& name) { return detect_case_selected(name, {wanted}); };
      if (std::none_of(case_names.begin(), case_names.end(), picks)) {
        std::string list;
        for (const auto& n : case_names) list += (list.empty() ? "\"" : ", \"") + n + "\"";
        throw CLI::ValidationError("--case", "\"" + wanted + "\" is part of no case's name; the cases: " + list);
      }
    }
  } catch (const CLI::ParseError& e) {
    return chat::cli::exit_for(app, e, "chatbench");  // 0 after --help, 2 (with "did you mean"?) otherwise
  }
  if (victim->parsed()) {
    return run_victim(static_cast<std::uint16_t>(victim_port), victim_nick, std::chrono::seconds(victim_lifetime_s));
  }
  if (max) s.fanout.rate = 0;
  if (history_quick) {
    // --quick sets the sizes; options given with it still win.
    HistoryOptions given = s.history;
    s.history.apply_quick();
    auto keep = [&](const char* name, auto& field, const auto& value) {
      if (history->count(name) > 0) field = value;
    };
    keep("--rounds", s.history.rounds, given.rounds);
    keep("--clients", s.history.fanout.clients, given.fanout.clients);
    keep("--senders", s.history.fanout.senders, given.fanout.senders);
    keep("--msgs", s.history.fanout.msgs, given.fanout.msgs);
    keep("--runs", s.history.runs, given.runs);
    keep("--missed", s.history.missed, given.missed);
    keep("--events", s.history.events, given.events);
    keep("--starts", s.history.starts, given.starts);
    keep("--repeats", s.history.repeats, given.repeats);
  }

  install_interrupt_handlers();
  const std::string mode = app.get_subcommands().front()->get_name();
  try {
    return run(mode, s);
  } catch (const Interrupted&) {
    std::cerr << "chatbench: interrupted; the processes it started are ended\n";
    return 130;
  } catch (const std::exception& e) {
    std::cerr << "chatbench: " << e.what() << "\n";
    return 1;
  }
}
