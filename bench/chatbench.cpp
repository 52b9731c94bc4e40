// chatbench: measures a real chatserver, which it starts itself on 127.0.0.1 with --port 0
// (never any other address), and ends by pid when done. Every run is bounded in count and
// time; chatbench stops by itself.
//
// How to run (after `./chat.sh run` or any build of the project):
//
//   build/release/bench/chatbench detect              # detection latency per failure (~45 s)
//   build/release/bench/chatbench detect --runs 10
//   build/release/bench/chatbench shutdown            # SIGTERM with 1000 joined clients (~15 s)
//   build/release/bench/chatbench shutdown --clients 200
//   build/release/bench/chatbench load                # latency and throughput, 50 clients (~3 s)
//   build/release/bench/chatbench load --clients 100 --messages 5000 --size 200
//   build/release/bench/chatbench all                 # the three with their defaults (~1 min)
//   build/release/bench/chatbench --json all > results.json
//
// (Times measured on 2 CPUs. Most of `detect` is the one no-pong run with the server's default
// 15 s + 10 s heartbeat; most of `shutdown` is joining: each JOIN goes to everyone already in.)
//
// Options for every mode: --server PATH (default: the chatserver built with this chatbench),
// --json (stdout gets one JSON document; the tables go to stderr instead). Progress lines
// always go to stderr. Exit status: 0 when every measurement completed as expected (right
// causes, every BYE, every delivery), 1 otherwise, 2 on a usage error.
//
// The modes (details in detect.hpp, shutdown.hpp, load.hpp):
//   detect    time from an injected failure to the observer's `LEAVE victim <cause>`: quit,
//             closed (victim process SIGKILLed), reset (RST), no-pong (victim process
//             SIGSTOPped; server defaults once, then --ping-interval 1s --ping-timeout 1s),
//             too-slow (victim stops reading: 1 MiB queue, and a stalled write with
//             --send-timeout 1s). Victim processes are this executable, run as
//             `chatbench victim` (an internal mode).
//   shutdown  SIGTERM -> process exit, and -> every client has read `BYE shutdown`.
//   load      delivery latency p50/p99/max across all receivers, and delivered lines/s.
//
// Threads: main thread; each chatserver started has a stderr drain thread (child_process.hpp).
// SIGINT/SIGTERM stop the benchmark within 100 ms, ending the processes it started.
#include "bench/child_process.hpp"
#include "bench/detect.hpp"
#include "bench/load.hpp"
#include "bench/shutdown.hpp"
#include "bench/victim.hpp"

#include <CLI/CLI.hpp>

#include <unistd.h>

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
  DetectOptions detect;
  ShutdownOptions shutdown;
  LoadOptions load;
};

int run(const std::string& mode, Settings& s) {
  // With --json, stdout is for the JSON document alone; the tables go to stderr.
  std::ostream& tables = s.json ? std::cerr : std::cout;
  std::ostream& progress = std::cerr;
  s.detect.server_path = s.shutdown.server_path = s.load.server_path = s.server;
  s.detect.self_path = self_path();
  if (::access(s.server.c_str(), X_OK) != 0) {
    std::cerr << "chatbench: cannot run chatserver at " << s.server << " (use --server PATH)\n";
    return 2;
  }

  Json json;
  json.begin_object();
  json.field("server", s.server);
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
  if (mode == "load" || mode == "all") {
    const auto result = run_load(s.load, progress);
    tables << "\n";
    print_load(result, tables);
    json_load(result, json);
    ok = ok && result.ok();
  }
  json.field("ok", ok);
  json.end_object();
  if (s.json) std::cout << json.text() << std::endl;
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Settings s;
  CLI::App app{"chatbench: measures chatserver (started here on 127.0.0.1, port 0): detection latency per "
               "failure, shutdown time, message latency and throughput.",
               "chatbench"};
  app.fallthrough();
  app.require_subcommand(1);
  app.add_option("--server", s.server, "chatserver to run")->capture_default_str();
  app.add_flag("--json", s.json, "Print the results as one JSON document on stdout (tables go to stderr)");

  auto* detect = app.add_subcommand("detect", "Detection latency per failure, each run a fresh scenario");
  detect->add_option("--runs", s.detect.runs, "Runs per case (no-pong with the 15s/10s defaults runs once)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));

  auto* shutdown = app.add_subcommand("shutdown", "SIGTERM with N joined clients: time to exit and to BYE");
  shutdown->add_option("--clients", s.shutdown.clients, "Joined clients")
      ->capture_default_str()
      ->check(CLI::Range(1, 10'000));

  auto* load = app.add_subcommand("load", "Delivery latency (p50/p99/max) and throughput with N clients");
  load->add_option("--clients", s.load.clients, "Joined clients")->capture_default_str()->check(CLI::Range(1, 2'000));
  load->add_option("--messages", s.load.messages, "Messages per phase")
      ->capture_default_str()
      ->check(CLI::Range(1, 100'000));
  load->add_option("--size", s.load.size, "Bytes of text per message")
      ->capture_default_str()
      ->check(CLI::Range(40, 4000));
  load->add_option("--senders", s.load.senders, "Clients that send")->capture_default_str()->check(CLI::Range(1, 100));
  load->add_option("--rate", s.load.rate, "Messages per second in the paced phase")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  load->add_option("--window", s.load.window, "Messages in flight in the flood phase")
      ->capture_default_str()
      ->check(CLI::Range(1, 100'000));

  app.add_subcommand("all", "detect, shutdown and load with their defaults");

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
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (victim->parsed()) {
    return run_victim(static_cast<std::uint16_t>(victim_port), victim_nick, std::chrono::seconds(victim_lifetime_s));
  }
  if (load->parsed() && static_cast<long long>(s.load.clients) * s.load.messages > 5'000'000) {
    std::cerr << "chatbench: --clients x --messages must stay within 5,000,000 deliveries per phase\n";
    return 2;
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
