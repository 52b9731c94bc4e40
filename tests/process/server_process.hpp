// ServerProcess: a real chatserver process on 127.0.0.1 port 0, for process tests.
//
// Not thread safe: one test thread owns it. The destructor ends the process by its pid.
#pragma once

#include "tests/support/process.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace chat::test {

inline constexpr auto patience = std::chrono::seconds(10);  // generous: CI has 2 busy cores

class ServerProcess {
 public:
  // Starts chatserver with --bind 127.0.0.1 --port 0 plus `extra`, and waits (bounded) for its
  // "chatserver listening on 127.0.0.1:<port>" line. Throws if it does not come.
  explicit ServerProcess(std::vector<std::string> extra = {});

  std::uint16_t port() const { return port_; }
  Subprocess& process() { return process_; }

 private:
  static std::vector<std::string> argv_with(std::vector<std::string> extra);
  Subprocess process_;
  std::uint16_t port_ = 0;
};

// Runs `program` with `args` until it exits; returns {exit code, all of stderr then all of
// stdout}. For runs that end by themselves (--help, a usage error).
std::pair<int, std::string> run_program_to_exit(const std::string& program, std::vector<std::string> args);

// run_program_to_exit for chatserver (no --bind/--port added).
std::pair<int, std::string> run_to_exit(std::vector<std::string> args);

// Raises this process's open-file soft limit to its hard limit (tests with many clients).
void raise_file_limit();

// True when built with a sanitizer: tests scale their client counts down (TSan is ~10x slower).
constexpr bool sanitized = CHAT_SANITIZED;

}  // namespace chat::test
