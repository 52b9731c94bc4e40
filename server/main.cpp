// chatserver: parse the options, start the server, wait for SIGINT/SIGTERM, stop it. SIGHUP
// reopens the --log-file (logrotate renames it, then sends SIGHUP) and reads the TLS certificate
// and key again (a renewed certificate).
//
// The main thread blocks the three signals before any other thread exists (so every thread
// inherits the mask) and waits for them with sigwait(): no signal handler runs anywhere,
// and the shutdown (or the reopening) is ordinary code on the main thread.
#include "common/log.hpp"
#include "server/archive.hpp"
#include "server/config.hpp"
#include "server/server.hpp"

#include <sys/resource.h>

#include <csignal>
#include <cstring>
#include <exception>
#include <iostream>
#include <variant>

int main(int argc, char** argv) {
  auto parsed = chat::parse_server_args(argc, argv);
  if (const int* code = std::get_if<int>(&parsed)) return *code;
  const auto& config = std::get<chat::ServerConfig>(parsed);
  chat::set_log_level(config.log_level);
  chat::set_thread_role("main");

  // Each client holds one descriptor; 1000 clients do not fit the usual soft limit of 1024.
  // Logged once the server has started: the first stderr line must be "listening on".
  std::string files_raised, files_short;
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0) {
    if (files.rlim_cur < files.rlim_max) {
      const auto before = files.rlim_cur;
      files.rlim_cur = files.rlim_max;
      if (setrlimit(RLIMIT_NOFILE, &files) == 0) {
        files_raised = "raised the open file limit from " + std::to_string(before) + " to " + std::to_string(files.rlim_cur);
      }
      getrlimit(RLIMIT_NOFILE, &files);
    }
    // A few descriptors are the server's own (listening socket, eventfds, epoll sets, log file).
    constexpr rlim_t own = 32;
    if (files.rlim_cur != RLIM_INFINITY && files.rlim_cur < config.max_clients + own) {
      files_short = "the open file limit is " + std::to_string(files.rlim_cur) + ": about " +
                    std::to_string(files.rlim_cur > own ? files.rlim_cur - own : 0) + " clients fit, not --max-clients " +
                    std::to_string(config.max_clients) + "; raise it (ulimit -n, or LimitNOFILE= for a service)";
    }
  }

  std::signal(SIGPIPE, SIG_IGN);  // a peer that vanished mid-write is an error code, not death
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);  // not a stop: reopen the --log-file (logrotate)
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  try {
    chat::Server server(config);
    server.start();
    if (!files_raised.empty()) chat::log_info(files_raised);
    if (!files_short.empty()) chat::log_warn(files_short);
    int signal = 0;
    while (sigwait(&stop_signals, &signal) == 0 && signal == SIGHUP) {
      chat::log_info("received SIGHUP, reopening the log file", config.tls_cert.empty() ? "" : " and the TLS certificate");
      server.reopen_log();
      server.reload_tls();
    }
    chat::log_info("received ", signal == SIGINT ? "SIGINT" : "SIGTERM", ", shutting down");
    server.stop();
  } catch (const chat::ArchiveError& e) {
    // A database that cannot be used is a setting to fix, not a failure to retry: exit 2, which
    // the service's RestartPreventExitStatus leaves down.
    std::cerr << "chatserver: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "chatserver: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
