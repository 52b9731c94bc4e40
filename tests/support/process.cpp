#include "tests/support/deadline.hpp"
#include "tests/support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <mutex>
#include <system_error>

extern char** environ;

namespace chat::test {
namespace {

using Clock = std::chrono::steady_clock;


void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

[[noreturn]] void throw_errno(int err, const char* what) {
  throw std::system_error(err, std::generic_category(), what);
}

// Both ends close-on-exec: only the dup2()ed copies in the child survive exec, so a child
// never holds another child's pipe open (which would hide that pipe's EOF).
void make_pipe(int fds[2]) {
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno(errno, "pipe2");
}

void set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

Subprocess::Subprocess(std::vector<std::string> argv) {
  if (argv.empty()) throw std::invalid_argument("Subprocess: empty argv");
  static std::once_flag ignore_sigpipe;
  std::call_once(ignore_sigpipe, [] { std::signal(SIGPIPE, SIG_IGN); });

  int in[2], out[2], err[2];
  make_pipe(in);
  make_pipe(out);
  make_pipe(err);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
  // Nothing else: a socket this process holds (Asio does not open them close-on-exec) must not
  // live on in the child, where closing it here would no longer end the connection.
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);

  // The child starts with default SIGPIPE handling and no blocked signals, whatever the test
  // runner did to its own.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults, empty;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigemptyset(&empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  const int rc = ::posix_spawnp(&pid_, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);

  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  stdin_fd_ = in[1];
  out_.fd = out[0];
  err_.fd = err[0];
  if (rc != 0) {
    pid_ = -1;
    close_fd(stdin_fd_);
    close_fd(out_.fd);
    close_fd(err_.fd);
    throw_errno(rc, ("posix_spawnp " + argv[0]).c_str());
  }
  set_nonblocking(stdin_fd_);
  set_nonblocking(out_.fd);
  set_nonblocking(err_.fd);
  // The child is not reaped before we wait for it, so its pid cannot be reused in between.
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
}

Subprocess::~Subprocess() {
  close_fd(stdin_fd_);
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  close_fd(out_.fd);
  close_fd(err_.fd);
  close_fd(pidfd_);
}

bool Subprocess::write(std::string_view data, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!data.empty()) {
    if (stdin_fd_ < 0) return false;
    const ssize_t n = ::write(stdin_fd_, data.data(), data.size());
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;  // EPIPE: child gone
    pollfd p{stdin_fd_, POLLOUT, 0};
    const int left = millis_until(deadline);
    if (left == 0) return false;
    if (::poll(&p, 1, left) < 0 && errno != EINTR) return false;
  }
  return true;
}

void Subprocess::close_stdin() { close_fd(stdin_fd_); }

std::optional<std::string> Subprocess::read_line(Stream which, std::chrono::milliseconds timeout) {
  Pipe& p = pipe_of(which);
  const auto deadline = Clock::now() + timeout;
  char buf[65536];
  while (true) {
    if (auto line = p.lines.pop(p.eof)) return line;
    if (p.eof) return std::nullopt;
    const ssize_t n = ::read(p.fd, buf, sizeof buf);
    if (n > 0) {
      p.lines.append({buf, static_cast<std::size_t>(n)});
      continue;
    }
    if (n == 0) {
      p.eof = true;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      p.eof = true;  // a broken pipe reads like EOF: nothing more will come
      continue;
    }
    const int left = millis_until(deadline);
    if (left == 0) return std::nullopt;
    pollfd pfd{p.fd, POLLIN, 0};
    if (::poll(&pfd, 1, left) < 0 && errno != EINTR) throw_errno(errno, "poll");
  }
}

bool Subprocess::wait_for_line(Stream which, const LinePredicate& match, std::chrono::milliseconds timeout,
                               std::string* seen) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    auto line = read_line(which, std::chrono::milliseconds(millis_until(deadline)));
    if (!line) return false;
    if (seen) seen->append(*line).push_back('\n');
    if (match(*line)) return true;
  }
}

bool Subprocess::wait_for_line(Stream which, std::string_view substring, std::chrono::milliseconds timeout,
                               std::string* seen) {
  return wait_for_line(
      which, [substring](const std::string& line) { return line.find(substring) != std::string::npos; }, timeout,
      seen);
}

bool Subprocess::at_eof(Stream which) const {
  const Pipe& p = pipe_of(which);
  return p.eof && p.lines.buffered() == 0;
}

bool Subprocess::signal(int sig) {
  if (pid_ <= 0 || exit_code_) return false;
  return ::kill(pid_, sig) == 0;
}

bool Subprocess::try_reap() {
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

std::optional<int> Subprocess::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!try_reap()) {
    const int left = millis_until(deadline);
    if (left == 0) return std::nullopt;
    if (pidfd_ >= 0) {
      pollfd p{pidfd_, POLLIN, 0};
      if (::poll(&p, 1, left) < 0 && errno != EINTR) throw_errno(errno, "poll pidfd");
    } else {
      // Kernels before 5.3 have no pidfd: check again every 10 ms until the deadline.
      ::poll(nullptr, 0, left < 10 ? left : 10);
    }
  }
  return exit_code_;
}

}  // namespace chat::test
