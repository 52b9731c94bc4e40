#include "lab/victim.hpp"

#include "lab/observer.hpp"

#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string_view>

namespace chat::lab {
namespace {

// One line for chatlab, stamped with the wall clock in microseconds (chatlab puts it on its
// timeline at that time, not at the time it happens to read it).
void report(const std::string& text) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::system_clock::now().time_since_epoch()).count();
  std::printf("%lld %s\n", static_cast<long long>(us), text.c_str());
  std::fflush(stdout);
}

}  // namespace

int run_victim(const std::string& address, std::uint16_t port) {
  std::signal(SIGPIPE, SIG_IGN);
  int fd = -1;
  try {
    fd = connect_tcp(address, port, "", std::chrono::seconds(10));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "victim: %s\n", e.what());
    return 1;
  }
  if (!send_all(fd, "HELLO victim\n")) return 1;

  std::string in;       // from the server
  std::string control;  // from chatlab, on stdin
  bool joined = false, reading = true, flooding = false, reported_unread = false;
  unsigned long flood_count = 0;
  char chunk[16384];
  while (true) {
    pollfd p[2] = {{STDIN_FILENO, POLLIN, 0}, {fd, 0, 0}};
    if (reading) p[1].events |= POLLIN;
    if (flooding) p[1].events |= POLLOUT;
    // Not reading: look at the receive queue every 50 ms, to say when bytes wait there.
    ::poll(p, 2, reading ? -1 : 50);

    if (p[0].revents) {
      const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
      if (n <= 0) return 0;  // chatlab is done with us
      control.append(chunk, static_cast<std::size_t>(n));
      for (auto eol = control.find('\n'); eol != std::string::npos; eol = control.find('\n')) {
        const std::string command = control.substr(0, eol);
        control.erase(0, eol + 1);
        if (command == "quit") {
          send_all(fd, "QUIT lab\n");
        } else if (command == "close") {
          ::close(fd);
          report("closed its socket");
          return 0;
        } else if (command == "stop-reading") {
          reading = false;
          report("stopped reading");
        } else if (command == "flood") {
          flooding = true;
        }
      }
    }

    if (!reading && (p[1].revents & (POLLHUP | POLLERR))) {
      // poll reports these even when not asked: the connection is over (and polling again at
      // once would spin).
      report("gone: the connection was closed while it was not reading");
      return 0;
    }

    if (!reading && !reported_unread) {
      int unread = 0;
      if (::ioctl(fd, FIONREAD, &unread) == 0 && unread > 0) {
        report("unread " + std::to_string(unread) + " bytes wait in its receive queue");
        reported_unread = true;
      }
    }

    if (flooding && (p[1].revents & POLLOUT)) {
      // As many lines as the socket takes now; then poll again (and read the echoes).
      for (int i = 0; i < 64; ++i) {
        const std::string line = "SAY flood line " + std::to_string(++flood_count) + "\n";
        const ssize_t n = ::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n < 0) {
          report(std::string("gone: send: ") + std::strerror(errno));
          return 0;
        }
        // A partial line is finished with blocking sends: the next SAY must start a line.
        if (static_cast<std::size_t>(n) < line.size() && !send_all(fd, std::string_view(line).substr(n))) break;
      }
    }

    if (reading && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        report(std::string("gone: recv: ") + (n == 0 ? "end of stream" : std::strerror(errno)));
        return 0;
      }
      in.append(chunk, static_cast<std::size_t>(n));
      for (auto eol = in.find('\n'); eol != std::string::npos; eol = in.find('\n')) {
        const std::string line = in.substr(0, eol);
        in.erase(0, eol + 1);
        if (line.rfind("PING", 0) == 0) {
          send_all(fd, "PONG" + line.substr(4) + "\n");
        } else if (!joined && line.rfind("WELCOME ", 0) == 0) {
          joined = true;
          report("joined from port " + std::to_string(local_port(fd)));
        } else if (!joined && line.rfind("ERROR ", 0) == 0) {
          std::fprintf(stderr, "victim: could not join: %s\n", line.c_str());
          return 1;
        }
      }
      if (in.size() > (1u << 20)) in.clear();  // bounded; no server line is this long
    }
  }
}

}  // namespace chat::lab
