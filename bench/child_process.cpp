#include "bench/child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <stdexcept>
#include <system_error>
#include <mutex>
#include <utility>

extern char** environ;

namespace chat::bench {
namespace {

constexpr std::size_t max_pipe_line = 64 * 1024;
constexpr std::size_t max_tail = 40;

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

// ---- PipeLines -------------------------------------------------------------------------------

PipeLines::PipeLines(PipeLines&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), eof_(other.eof_), buffer_(std::move(other.buffer_)) {}

PipeLines& PipeLines::operator=(PipeLines&& other) noexcept {
  if (this != &other) {
    close_fd(fd_);
    fd_ = std::exchange(other.fd_, -1);
    eof_ = other.eof_;
    buffer_ = std::move(other.buffer_);
  }
  return *this;
}

PipeLines::~PipeLines() { close_fd(fd_); }

std::optional<std::string> PipeLines::pop() {
  const auto lf = buffer_.find('\n');
  std::size_t take = 0;
  if (lf != std::string::npos) {
    take = lf + 1;
  } else if (buffer_.size() >= max_pipe_line || (eof_ && !buffer_.empty())) {
    take = buffer_.size();
  } else {
    return std::nullopt;
  }
  std::string line = buffer_.substr(0, take);
  buffer_.erase(0, take);
  if (!line.empty() && line.back() == '\n') line.pop_back();
  return line;
}

std::optional<std::string> PipeLines::read_line(Clock::time_point deadline) {
  char chunk[4096];
  while (true) {
    if (auto line = pop()) return line;
    if (eof_ || fd_ < 0) return std::nullopt;
    const ssize_t n = ::read(fd_, chunk, sizeof chunk);
    if (n > 0) {
      buffer_.append(chunk, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      eof_ = true;
      continue;
    }
    check_interrupted();
    if (Clock::now() >= deadline) return std::nullopt;
    pollfd p{fd_, POLLIN, 0};
    ::poll(&p, 1, poll_timeout(deadline));
  }
}

// ---- ChildProcess ----------------------------------------------------------------------------

ChildProcess::ChildProcess(std::vector<std::string> argv, Output out, Output err) {
  if (argv.empty()) throw std::invalid_argument("ChildProcess: empty argv");
  // Writing to the stdin of a child that has died must be an error (EPIPE), not the end of this
  // process: SIGPIPE is ignored here from the first child on (the child gets the default back).
  static std::once_flag ignore_sigpipe;
  std::call_once(ignore_sigpipe, [] { std::signal(SIGPIPE, SIG_IGN); });
  // Every descriptor we create is close-on-exec: only the dup2()ed copies reach the child, so
  // no child holds another child's pipe (or a benchmark socket) open.
  int in[2] = {-1, -1};
  int outp[2] = {-1, -1};
  int errp[2] = {-1, -1};
  if (::pipe2(in, O_CLOEXEC) != 0) throw_errno(errno, "pipe2");
  if (out == Output::pipe && ::pipe2(outp, O_CLOEXEC) != 0) throw_errno(errno, "pipe2");
  if (err == Output::pipe && ::pipe2(errp, O_CLOEXEC) != 0) throw_errno(errno, "pipe2");

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  auto route = [&actions](Output how, int pipe_write_end, int target) {
    if (how == Output::pipe) posix_spawn_file_actions_adddup2(&actions, pipe_write_end, target);
    if (how == Output::discard) posix_spawn_file_actions_addopen(&actions, target, "/dev/null", O_WRONLY, 0);
  };
  route(out, outp[1], STDOUT_FILENO);
  route(err, errp[1], STDERR_FILENO);
  // Nothing else: a socket this process holds (Asio does not open them close-on-exec) must not
  // live on in the child, where closing it here would no longer end the connection.
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);

  // chatbench ignores SIGPIPE and handles SIGINT/SIGTERM; the child must not inherit that.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigset_t empty;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGTERM);
  sigemptyset(&empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  spawned_at_ = Clock::now();
  const int rc = ::posix_spawn(&pid_, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);

  ::close(in[0]);
  if (outp[1] >= 0) ::close(outp[1]);
  if (errp[1] >= 0) ::close(errp[1]);
  stdin_fd_ = in[1];
  // Our end only: write_stdin() waits for pipe space with a deadline instead of blocking.
  ::fcntl(stdin_fd_, F_SETFL, ::fcntl(stdin_fd_, F_GETFL) | O_NONBLOCK);
  out_ = PipeLines(outp[0]);
  err_ = PipeLines(errp[0]);
  if (rc != 0) {
    pid_ = -1;
    close_fd(stdin_fd_);
    throw_errno(rc, "cannot start " + argv[0]);
  }
  for (int fd : {outp[0], errp[0]}) {
    if (fd >= 0) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  // Not reaped before we wait for it, so the pid cannot be reused in between.
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
}

ChildProcess::~ChildProcess() {
  close_stdin();
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  close_fd(pidfd_);
}

void ChildProcess::close_stdin() { close_fd(stdin_fd_); }

bool ChildProcess::write_stdin(std::string_view text, Clock::time_point deadline) {
  while (!text.empty()) {
    if (stdin_fd_ < 0) return false;
    const ssize_t n = ::write(stdin_fd_, text.data(), text.size());
    if (n > 0) {
      text.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    if (Clock::now() >= deadline) return false;
    pollfd p{stdin_fd_, POLLOUT, 0};
    ::poll(&p, 1, poll_timeout(deadline));
  }
  return true;
}

bool ChildProcess::signal(int sig) {
  if (pid_ <= 0 || exit_code_) return false;
  return ::kill(pid_, sig) == 0;
}

bool ChildProcess::try_reap() {
  if (exit_code_) return true;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    exit_code_ = decode_status(status);
    close_fd(pidfd_);
    return true;
  }
  if (r < 0) throw_errno(errno, "waitpid");
  return false;
}

std::optional<int> ChildProcess::wait_exit(Clock::time_point deadline) {
  while (!try_reap()) {
    check_interrupted();
    if (Clock::now() >= deadline) return std::nullopt;
    if (pidfd_ >= 0) {
      pollfd p{pidfd_, POLLIN, 0};
      ::poll(&p, 1, poll_timeout(deadline));
    } else {
      // Kernels before 5.3 have no pidfd: look again every 10 ms.
      ::poll(nullptr, 0, std::min(poll_timeout(deadline), 10));
    }
  }
  return exit_code_;
}

void ChildProcess::kill() {
  if (!signal(SIGKILL)) return;
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (!try_reap() && Clock::now() < deadline) {
    pollfd p{pidfd_, POLLIN, 0};
    ::poll(pidfd_ >= 0 ? &p : nullptr, pidfd_ >= 0 ? 1 : 0, std::min(poll_timeout(deadline), 10));
  }
}

// ---- ServerProcess ---------------------------------------------------------------------------

namespace {

// What `path --help` prints: a baseline chatserver built from an older commit has fewer
// options than this one.
std::string server_help(const std::string& path) {
  ChildProcess help({path, "--help"}, ChildProcess::Output::pipe, ChildProcess::Output::discard);
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  std::string text;
  while (auto line = help.out().read_line(deadline)) text += *line + "\n";
  return text;
}

std::vector<std::string> server_argv(const std::string& path, const std::vector<std::string>& extra,
                                     const ServerProcess::Launch& launch) {
  std::vector<std::string> argv = launch.prefix;
  argv.insert(argv.end(), {path, "--bind", launch.bind, "--port", "0"});
  // Every benchmark client comes from 127.0.0.1 and sends as fast as it can: chatserver runs
  // without its per-address limit and flood control, as the peers run without theirs (options
  // given in `extra` come later and win).
  if (launch.lift_limits) {
    const auto help = server_help(path);
    if (help.find("--max-per-ip ") != std::string::npos) argv.insert(argv.end(), {"--max-per-ip", "0"});
    if (help.find("--max-rate ") != std::string::npos) argv.insert(argv.end(), {"--max-rate", "0"});
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

}  // namespace

ServerProcess::ServerProcess(const std::string& path, const std::vector<std::string>& extra)
    : ServerProcess(path, extra, Launch{}) {}

ServerProcess::ServerProcess(const std::string& path, const std::vector<std::string>& extra, Launch launch)
    : launch_(std::move(launch)),
      process_(server_argv(path, extra, launch_), ChildProcess::Output::discard, ChildProcess::Output::pipe) {
  const auto first = process_.err().read_line(Clock::now() + launch_.start_patience);
  start_ms_ = millis_between(process_.spawned_at(), Clock::now());  // its --help run came before
  const std::string prefix = "chatserver listening on " + launch_.bind + ":";
  if (!first || first->rfind(prefix, 0) != 0) {
    std::string said = first.value_or("(nothing)");
    // A usage error is a few lines: show them.
    for (int i = 0; i < 5; ++i) {
      auto more = process_.err().read_line(Clock::now() + std::chrono::milliseconds(200));
      if (!more) break;
      said += " | " + *more;
    }
    throw std::runtime_error("chatserver did not start: " + said);
  }
  port_ = static_cast<std::uint16_t>(std::stoi(first->substr(prefix.size())));
  drain_ = std::jthread([this](std::stop_token stop) { drain(stop); });
}

ServerProcess::~ServerProcess() {
  drain_.request_stop();
  if (drain_.joinable()) drain_.join();
  // process_'s destructor SIGKILLs the server if stop() was not called (or did not finish).
}

void ServerProcess::drain(std::stop_token stop) {
  // Drain thread. Reads only process_.err(), which the main thread no longer touches after
  // the constructor. It ends at EOF (the server exited) or when asked to stop.
  try {
    while (!stop.stop_requested()) {
      auto line = process_.err().read_line(Clock::now() + poll_slice);
      if (line) {
        if (launch_.on_line) {
          try {
            launch_.on_line(*line);
          } catch (const std::exception&) {
            // The caller's business (out of memory, say); the line still goes to the tail.
          }
        }
        std::lock_guard lock(tail_mutex_);
        tail_.push_back(std::move(*line));
        if (tail_.size() > max_tail) tail_.pop_front();
      } else if (process_.err().at_eof()) {
        return;
      }
    }
  } catch (const Interrupted&) {
    // The main thread sees the interruption too and ends the server.
  }
}

int ServerProcess::stop(Clock::duration grace) {
  if (auto code = process_.exit_code()) return *code;
  process_.signal(SIGTERM);
  if (auto code = process_.wait_exit(Clock::now() + grace)) return *code;
  process_.kill();
  return process_.exit_code().value_or(-1);
}

std::vector<std::string> ServerProcess::stderr_tail() const {
  std::lock_guard lock(tail_mutex_);
  return {tail_.begin(), tail_.end()};
}

std::string self_path() {
  char buffer[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  if (n <= 0) throw_errno(errno, "readlink /proc/self/exe");
  return std::string(buffer, static_cast<std::size_t>(n));
}

}  // namespace chat::bench
