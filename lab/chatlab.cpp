// chatlab: the failure lab. It starts a chatserver (with --trace), an observer client and a
// victim client, injects one failure, and prints a timeline in milliseconds from the fault:
// what each server thread saw and decided (the reader's recv(), the poller's probe, heartbeat
// and keepalive checks, a writer's send), what the kernel showed of the socket (`ss -tnoi`:
// keepalive probes, retransmissions), and the LEAVE the others received.
//
//   chatlab --list                    the scenarios
//   chatlab kill                      one scenario, as a table
//   chatlab --json hang               the same as one JSON document
//   chatlab hang -- --ping-timeout 3s more chatserver options (they come last and win)
//   chatlab --tls kill                the same scenario over TLS (a certificate made for the run)
//   chatlab tls-close                 tls-close and tls-cut are about TLS: always over TLS
//   sudo chatlab cable-pull           cable-pull, host-reboot, poll-only and wifi-drop need root
//                                     (network namespaces); without it chatlab says so and exits 2
//
// Exit status: 0 when the scenario ended as expected (the cause, the detector), 1 when it did
// not, 2 on a usage error or when the scenario cannot run here. Walk-through: docs/lab.md.
//
// The table goes to stdout as the scenario runs, each line once: the scenario's head at once,
// a phase's chatserver line when it starts, its timeline when it ends. stderr is for errors.
//
// Threads: the main thread runs the scenario; the objects it creates own the rest (the
// server's stderr drain thread, the observer's reader, the ss sampler). `chatlab victim` is the
// victim process (an internal mode, single-threaded; `chatlab victim --web` the browser's page,
// `--tls` over TLS):
// it is told apart before the lab's own command line is parsed, so that the help and usage
// people read show no subcommand.
#include "bench/child_process.hpp"
#include "lab/network.hpp"
#include "lab/scenarios.hpp"
#include "lab/victim.hpp"
#include "common/units.hpp"

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <exception>
#include <iostream>
#include <memory>
#include <string_view>

#ifndef CHATSERVER_PATH
#define CHATSERVER_PATH "chatserver"
#endif

namespace {

// The chatserver to start: next to this chatlab (an installed pair), the one built with it,
// or the first on PATH.
std::string default_server(const std::string& self) {
  const auto slash = self.rfind('/');
  const std::string beside = self.substr(0, slash + 1) + "chatserver";
  if (::access(beside.c_str(), X_OK) == 0) return beside;
  if (::access(CHATSERVER_PATH, X_OK) == 0) return CHATSERVER_PATH;
  return chat::lab::find_program("chatserver");
}

// The usage line people read. CLI11 2.1.2 has no App::usage(), and its own line names the
// positionals ("[scenario] [server-options...]") without the `--` that the options need.
class LabFormatter : public CLI::Formatter {
 public:
  std::string make_usage(const CLI::App*, std::string) const override {
    return "Usage: chatlab [OPTIONS] SCENARIO [-- CHATSERVER-OPTIONS...]\n"
           "       chatlab --list\n";
  }
};

// `chatlab victim [--web | --ids] [--tls] ADDRESS PORT`: the victim process that chatlab starts (internal).
int victim_main(int argc, char** argv) {
  CLI::App app{"chatlab's victim process (internal: chatlab starts it)", "chatlab victim"};
  std::string address;
  int port = 0;
  bool web = false, ids = false, tls = false;
  auto* web_flag = app.add_flag("--web", web, "Be a browser's page: the WebSocket at /ws");
  app.add_flag("--ids", ids, "Join with ids, keep the resume token, and RESUME on `reconnect`")->excludes(web_flag);
  app.add_flag("--tls", tls, "Speak TLS to the lab's own chatserver (its certificate is not verified)");
  app.add_option("address", address)->required();
  app.add_option("port", port)->required()->check(CLI::Range(1, 65535));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return chat::lab::run_victim(address, static_cast<std::uint16_t>(port), web, ids, tls);
}

std::string scenario_list() {
  std::string text;
  for (const auto& name : chat::lab::scenario_names()) {
    text += "  " + name + (chat::lab::needs_netns(name) ? " (root)" : "") + (chat::lab::always_tls(name) ? " (TLS)" : "") +
            ": " + chat::lab::scenario_summary(name) + "\n";
  }
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  if (argc >= 2 && std::string_view(argv[1]) == "victim") return victim_main(argc - 1, argv + 1);
  CLI::App app{"chatlab: break a chat client in one way and watch which chatserver thread notices, when, and why.",
               "chatlab"};
  app.formatter(std::make_shared<LabFormatter>());
  app.footer("Scenarios:\n" + scenario_list() +
             "\nEvery scenario runs over TLS too, with --tls. Walk-through: docs/lab.md");
  app.get_formatter()->column_width(30);

  chat::lab::LabOptions options;
  std::string scenario;
  bool json = false, list = false;
  std::string wait = "60s", watch = "10s";
  app.add_flag("--json", json, "Print the timeline as one JSON document");
  app.add_flag("--list", list, "List the scenarios");
  app.add_flag("--tls", options.tls,
               "Run the scenario over TLS: chatserver gets a certificate made for the run, the observer and the "
               "victim speak TLS to it (the tls-* scenarios always do)");
  app.add_option("--server", options.server_path, "The chatserver to start (default: the one beside chatlab)");
  app.add_option("--wait", wait, "Longest wait for the LEAVE after the fault")->capture_default_str();
  app.add_option("--watch", watch, "poll-only: how long to watch nothing happen")->capture_default_str();
  app.add_option("scenario", scenario, "What to break (see below)");
  app.add_option("server-options", options.extra, "More chatserver options, after --");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (list) {
    std::cout << scenario_list();
    return 0;
  }
  if (scenario.empty()) {
    std::cerr << "chatlab: which scenario? One of:\n" << scenario_list();
    return 2;
  }
  const auto& names = chat::lab::scenario_names();
  if (std::find(names.begin(), names.end(), scenario) == names.end()) {
    std::cerr << "chatlab: no scenario '" << scenario << "'. One of:\n" << scenario_list();
    return 2;
  }
  for (auto [text, target] : {std::pair{&wait, &options.wait}, std::pair{&watch, &options.watch}}) {
    std::string error;
    auto value = chat::parse_duration(*text, &error);
    if (!value || *value <= std::chrono::milliseconds(0)) {
      std::cerr << "chatlab: bad duration '" << *text << "': " << (error.empty() ? "must be positive" : error) << "\n";
      return 2;
    }
    *target = *value;
  }
  const auto unavailable = [&](const std::string& why) {
    std::cerr << "chatlab: " << scenario << " needs network namespaces, which this machine cannot give: " << why
              << "\n(run it as root, with iproute2 installed: sudo " << argv[0] << " " << scenario << ")\n";
    return 2;
  };
  if (chat::lab::needs_netns(scenario) && ::geteuid() != 0) {
    return unavailable("needs root to create network namespaces and veth pairs (effective uid " +
                       std::to_string(::geteuid()) + ")");
  }
  try {
    options.self_path = chat::bench::self_path();
    if (options.server_path.empty()) options.server_path = default_server(options.self_path);
    if (options.server_path.empty()) {
      std::cerr << "chatlab: no chatserver found beside chatlab or on PATH; give --server PATH\n";
      return 2;
    }
    if (json) {
      const auto result = chat::lab::run_scenario(scenario, options);
      std::cout << chat::lab::json_result(result) << "\n";
      return result.ok() ? 0 : 1;
    }
    chat::lab::print_scenario_head(scenario, std::cout, options.tls || chat::lab::always_tls(scenario));
    std::cout.flush();
    const auto phases = chat::lab::phase_count(scenario);
    chat::lab::ScenarioProgress progress;
    progress.started = [&](std::size_t k, const chat::lab::PhaseResult& phase) {
      chat::lab::print_phase_head(phase, k, phases, std::cout);
      std::cout.flush();
    };
    progress.done = [](std::size_t, const chat::lab::PhaseResult& phase) {
      chat::lab::print_phase_table(phase, std::cout);
      std::cout.flush();
    };
    return chat::lab::run_scenario(scenario, options, progress).ok() ? 0 : 1;
  } catch (const chat::lab::LabUnavailable& e) {
    return unavailable(e.what());
  } catch (const std::exception& e) {
    std::cerr << "chatlab: " << scenario << " failed: " << e.what() << "\n";
    return 1;
  }
}
