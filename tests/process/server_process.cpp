#include "tests/process/server_process.hpp"

#include <sys/resource.h>

#include <stdexcept>

namespace chat::test {

std::vector<std::string> ServerProcess::argv_with(std::vector<std::string> extra) {
  std::vector<std::string> argv{CHATSERVER_PATH, "--bind", "127.0.0.1", "--port", "0"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

ServerProcess::ServerProcess(std::vector<std::string> extra) : process_(argv_with(std::move(extra))) {
  const auto first = process_.read_line(Stream::err, patience);
  const std::string prefix = "chatserver listening on 127.0.0.1:";
  if (!first || first->rfind(prefix, 0) != 0) {
    throw std::runtime_error("chatserver did not start: " + first.value_or("(no output)"));
  }
  port_ = static_cast<std::uint16_t>(std::stoi(first->substr(prefix.size())));
}

std::pair<int, std::string> run_program_to_exit(const std::string& program, std::vector<std::string> args) {
  args.insert(args.begin(), program);
  Subprocess p(std::move(args));
  std::string out;
  while (auto line = p.read_line(Stream::err, patience)) out += *line + "\n";
  while (auto line = p.read_line(Stream::out, patience)) out += *line + "\n";
  return {p.wait_exit(patience).value_or(-1), out};
}

std::pair<int, std::string> run_to_exit(std::vector<std::string> args) {
  return run_program_to_exit(CHATSERVER_PATH, std::move(args));
}

void raise_file_limit() {
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
}

}  // namespace chat::test
