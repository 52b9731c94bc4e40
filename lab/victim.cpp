#include "lab/victim.hpp"

#include "common/websocket.hpp"
#include "lab/observer.hpp"

#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <random>
#include <string_view>

namespace chat::lab {
namespace {

// One line for chatlab, stamped with the wall clock in microseconds (chatlab puts it on its
// timeline at that time, not at the time it happens to read it).
// `at`: when it happened, if that was before now (the start of a send).
void report(const std::string& text, std::chrono::system_clock::time_point at = std::chrono::system_clock::now()) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(at.time_since_epoch()).count();
  std::printf("%lld %s\n", static_cast<long long>(us), text.c_str());
  std::fflush(stdout);
}

std::string base64(const unsigned char* data, std::size_t size) {
  static constexpr char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < size; i += 3) {
    const std::uint32_t n = (std::uint32_t{data[i]} << 16) | (i + 1 < size ? std::uint32_t{data[i + 1]} << 8 : 0u) |
                            (i + 2 < size ? std::uint32_t{data[i + 2]} : 0u);
    out += digits[(n >> 18) & 63];
    out += digits[(n >> 12) & 63];
    out += i + 1 < size ? digits[(n >> 6) & 63] : '=';
    out += i + 2 < size ? digits[n & 63] : '=';
  }
  return out;
}

// How the victim's lines go on the wire: an LF after each, or (a browser's page) one masked
// text frame each, with a fresh masking key per frame as RFC 6455 5.3 asks of a client.
class Wire {
 public:
  explicit Wire(bool web) : web_(web), rng_(std::random_device{}()) {}
  bool web() const { return web_; }
  std::array<std::uint8_t, 4> mask() {
    std::array<std::uint8_t, 4> key{};
    for (auto& b : key) b = static_cast<std::uint8_t>(rng_());
    return key;
  }
  std::string line(std::string_view text) {
    if (!web_) return std::string(text) + "\n";
    const auto key = mask();
    return ws::make_frame(ws::Opcode::text, text, &key);
  }
  std::string frame(ws::Opcode op, std::string_view payload) {
    const auto key = mask();
    return ws::make_frame(op, payload, &key);
  }
  std::string close(std::uint16_t code) {
    const auto key = mask();
    return ws::close_frame(code, {}, &key);
  }
  // A Sec-WebSocket-Key: 16 random bytes in base64.
  std::string key() {
    unsigned char raw[16];
    for (auto& b : raw) b = static_cast<unsigned char>(rng_());
    return base64(raw, sizeof raw);
  }

 private:
  bool web_;
  std::mt19937 rng_;
};

// A browser's opening handshake on the connected socket `fd`: GET /ws with an Origin that is
// the server itself (as the page it serves would send), bounded by 10 s. Returns what came
// after the 101's head (the first frames, if any); nullopt, said on stderr, if refused.
std::optional<std::string> open_websocket(int fd, const std::string& host_port, Wire& wire) {
  const std::string key = wire.key();
  if (!send_all(fd, ws::client_handshake(host_port, "/ws", key, "http://" + host_port))) {
    std::fprintf(stderr, "victim: cannot send the WebSocket handshake\n");
    return std::nullopt;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::string in;
  char chunk[4096];
  while (true) {
    if (const auto end = in.find("\r\n\r\n"); end != std::string::npos) {
      const std::string head = in.substr(0, end + 4);
      if (!ws::handshake_accepted(head, key)) {
        std::fprintf(stderr, "victim: the server refused the WebSocket: %s\n", head.substr(0, head.find('\r')).c_str());
        return std::nullopt;
      }
      report("WebSocket open: " + head.substr(0, head.find('\r')));
      return in.substr(end + 4);
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (in.size() > 16384 || left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) {
      std::fprintf(stderr, "victim: no answer to the WebSocket handshake\n");
      return std::nullopt;
    }
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::fprintf(stderr, "victim: the server closed the connection during the WebSocket handshake\n");
      return std::nullopt;
    }
    in.append(chunk, static_cast<std::size_t>(n));
  }
}

std::string describe(std::uint16_t code) {
  std::string text = std::to_string(code);
  if (const auto words = ws::describe_close(code); !words.empty()) text += " (" + std::string(words) + ")";
  return text;
}

}  // namespace

int run_victim(const std::string& address, std::uint16_t port, bool web, bool ids) {
  std::signal(SIGPIPE, SIG_IGN);
  Wire wire(web);
  int fd = -1;
  try {
    fd = connect_tcp(address, port, "", std::chrono::seconds(10));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "victim: %s\n", e.what());
    return 1;
  }

  std::string in;       // from the server: lines (after the handshake's head, with --web)
  std::string control;  // from chatlab, on stdin
  std::optional<ws::MessageReader> frames;  // --web: the server's frames
  if (web) {
    auto rest = open_websocket(fd, address + ":" + std::to_string(port), wire);
    if (!rest) return 1;
    in = std::move(*rest);
    frames.emplace(ws::MessageReader::Options{ws::MessageReader::Role::client, 1u << 20, true});
  } else if (!send_all(fd, ids ? "HELLO victim ids\n" : "HELLO victim\n")) {
    return 1;
  }

  bool joined = false, reading = true, flooding = false, reported_unread = false;
  bool closing = false;  // --web: it sent its close frame and FIN, and reads until the end
  unsigned long flood_count = 0;
  int exit_code = -1;  // set when a line or frame ends the victim
  // --ids: what a RESUME needs, kept from the connection that dropped.
  std::string token;         // the last TOKEN's (never printed)
  std::uint64_t last_id = 0; // the id of the last tagged line read
  bool resuming = false;     // it sent RESUME and waits for RESUMED (or an ERROR)
  // One line from the server, lines or text frame alike.
  const auto on_line = [&](std::string_view line) {
    if (ids && line.rfind("PING", 0) != 0 && line.rfind("PONG", 0) != 0) {
      // Every line for chatlab to check, but the token: a secret, as the server's log treats it.
      if (line.rfind("TOKEN ", 0) == 0) {
        const auto end = line.find(' ', 6);
        token = std::string(line.substr(6, end == std::string_view::npos ? std::string_view::npos : end - 6));
        report("read: TOKEN <" + std::to_string(token.size()) + " hex digits, kept, not shown>" +
               (end == std::string_view::npos ? std::string() : std::string(line.substr(end))));
      } else {
        report("read: " + std::string(line));
      }
      if (line.rfind('@', 0) == 0) {
        std::uint64_t id = 0;
        const auto slash = line.find('/');
        const auto [end, ec] = std::from_chars(line.data() + 1, line.data() + std::min(slash, line.size()), id);
        (void)end;
        if (ec == std::errc() && id > last_id) last_id = id;
      } else if (resuming && line.rfind("RESUMED ", 0) == 0) {
        resuming = false;
      } else if (resuming && line.rfind("ERROR ", 0) == 0) {
        resuming = false;
        report("its RESUME was refused");
      }
    }
    if (line.rfind("PING", 0) == 0) {
      if (!closing) send_all(fd, wire.line("PONG" + std::string(line.substr(4))));
    } else if (web && !joined && line.rfind("# chatserver", 0) == 0) {
      // The page sends HELLO once greeted, as a protocol client does.
      send_all(fd, wire.line("HELLO victim"));
    } else if (!joined && line.rfind("WELCOME ", 0) == 0) {
      joined = true;
      report("joined from port " + std::to_string(local_port(fd)));
    } else if (!joined && line.rfind("ERROR ", 0) == 0) {
      std::fprintf(stderr, "victim: could not join: %.*s\n", static_cast<int>(line.size()), line.data());
      exit_code = 1;
    }
  };
  // Bytes from the server, split into lines or frames.
  const auto on_bytes = [&](std::string_view bytes) {
    if (!web) {
      in.append(bytes);
      for (auto eol = in.find('\n'); eol != std::string::npos && exit_code < 0; eol = in.find('\n')) {
        const std::string line = in.substr(0, eol);
        in.erase(0, eol + 1);
        on_line(line);
      }
      if (in.size() > (1u << 20)) in.clear();  // bounded; no server line is this long
      return;
    }
    frames->feed(bytes, [&](const ws::MessageReader::Event& e) {
      using Kind = ws::MessageReader::Event::Kind;
      if (exit_code >= 0) return;
      switch (e.kind) {
        case Kind::text: on_line(e.payload); return;
        case Kind::binary: return;
        case Kind::ping:
          if (!closing) send_all(fd, wire.frame(ws::Opcode::pong, e.payload));
          return;
        case Kind::pong: return;
        case Kind::close:
          // The server's close frame: its answer to ours, or its own goodbye (which a browser
          // echoes). The end of the stream follows.
          report("the server's close frame: " + describe(e.code) +
                 (e.payload.empty() ? std::string() : ": " + std::string(e.payload)));
          if (!closing) send_all(fd, wire.close(e.code == ws::close_code::no_status ? ws::close_code::normal : e.code));
          return;
        case Kind::fail:
          report("gone: WebSocket: " + e.detail + " (close " + std::to_string(e.code) + ")");
          exit_code = 0;
          return;
      }
    });
  };
  if (!in.empty()) {
    const std::string first = std::move(in);
    in.clear();
    on_bytes(first);
  }

  char chunk[16384];
  while (exit_code < 0) {
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
        if (command == "reconnect" && ids && !web) {
          // The network is back: a new connection, and RESUME with what it kept.
          if (fd >= 0) ::close(fd);
          fd = -1;
          in.clear();
          try {
            fd = connect_tcp(address, port, "", std::chrono::seconds(10));
          } catch (const std::exception& e) {
            report(std::string("gone: cannot reconnect: ") + e.what());
            return 1;
          }
          resuming = true;
          report("reconnected from port " + std::to_string(local_port(fd)) +
                 " (a new TCP connection); sends RESUME <its token> " + std::to_string(last_id));
          if (!send_all(fd, "RESUME " + token + " " + std::to_string(last_id) + "\n")) {
            report("gone: cannot send RESUME");
            return 1;
          }
        } else if (command == "quit") {
          send_all(fd, wire.line("QUIT lab"));
        } else if (command == "close" && web) {
          // A closed tab: the browser says 1001 (going away) and lets the connection go.
          flooding = false;
          reading = true;
          closing = true;
          const auto at = std::chrono::system_clock::now();  // on the timeline before the server reads it
          send_all(fd, wire.close(ws::close_code::going_away));
          ::shutdown(fd, SHUT_WR);
          report("sends a close frame 1001 (going away), then a FIN (shutdown)", at);
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
        const std::string line = wire.line("SAY flood line " + std::to_string(++flood_count));
        const ssize_t n = ::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n < 0) {
          report(std::string("gone: send: ") + std::strerror(errno));
          return 0;
        }
        // A partial line (or frame) is finished with blocking sends: the next must start whole.
        if (static_cast<std::size_t>(n) < line.size() && !send_all(fd, std::string_view(line).substr(n))) break;
      }
    }

    if (reading && fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const std::string what = n == 0 ? "end of stream" : std::strerror(errno);
        if (ids) {
          // A client that can resume stays: it waits to be told to reconnect.
          report("gone: recv: " + what + " (it keeps its token and last id " + std::to_string(last_id) +
                 " to resume)");
          ::close(fd);
          fd = -1;
          in.clear();
          continue;
        }
        report("gone: recv: " + what);
        return 0;
      }
      on_bytes(std::string_view(chunk, static_cast<std::size_t>(n)));
    }
  }
  return exit_code;
}

}  // namespace chat::lab
