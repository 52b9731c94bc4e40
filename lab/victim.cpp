#include "lab/victim.hpp"

#include "common/tls.hpp"
#include "common/websocket.hpp"
#include "lab/observer.hpp"
#include "lab/tls_client.hpp"

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
#include <memory>
#include <optional>
#include <random>
#include <string_view>
#include <utility>

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

// The victim's connection: its blocking socket and, with --tls, the TLS engine its bytes go
// through. The victim moves the ciphertext itself, with the same send(2) and recv(2) as clear
// text, so every scenario breaks it the same way (a FIN, an RST, a stopped process) whatever
// it speaks. Threads: the victim's only thread makes, uses and destroys it.
class Connection {
 public:
  enum class Opened {
    ok,      // go on (the plaintext, if any, is appended)
    closed,  // the server's close_notify: nothing more will come
    failed,  // bad records: error() says why
  };

  // `engine`: null in clear text; with TLS, ready_client's (its ClientHello made).
  Connection(int fd, std::unique_ptr<tls::Engine> engine) : fd_(fd), engine_(std::move(engine)) {}
  ~Connection() { close(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  int fd() const { return fd_; }
  bool tls() const { return engine_ != nullptr; }
  // The handshake (with --tls), bounded by `timeout`; the plaintext that came with its last
  // bytes. Throws std::runtime_error.
  std::string handshake(std::chrono::milliseconds timeout) {
    return engine_ ? client_handshake(*engine_, fd_, timeout) : std::string();
  }
  // "TLSv1.3 TLS_AES_256_GCM_SHA384, the server's certificate SHA256:..."
  std::string describe() const {
    return engine_->describe() + ", the server's certificate " + engine_->peer_fingerprint();
  }
  // The bytes that carry `plain` on the wire: itself, or its TLS records.
  std::string seal(std::string_view plain) {
    if (!engine_) return std::string(plain);
    if (!engine_->write(plain)) return {};
    return engine_->take_output();
  }
  // Sends `plain`, waiting for room in the socket (after what send_now() left unsent).
  bool send(std::string_view plain) {
    const std::string bytes = seal(plain);
    if (!unsent_.empty() && !send_all(fd_, std::exchange(unsent_, {}))) return false;
    return !bytes.empty() && send_all(fd_, bytes);
  }
  // Sends without waiting (flooding): first the rest of what the socket did not take last time,
  // then `plain`'s bytes, as far as the socket takes them now. A line (or frame, or TLS record)
  // cut by a full socket waits here and goes first next time, before anything else: a new line
  // is made only once the last one is all out, so nothing is interleaved and what waits is one
  // line at most. False when something still waits (errno EAGAIN) or the send failed (errno).
  bool send_now(std::string_view plain = {}) {
    if (!flush_unsent()) return false;
    if (plain.empty()) return true;
    unsent_ = seal(plain);
    return flush_unsent();
  }
  // TLS's goodbye: a close_notify alert, sent (with --tls; nothing in clear text).
  bool send_close_notify() {
    if (!engine_) return true;
    engine_->close_notify();
    return send_all(fd_, engine_->take_output());
  }
  // Received bytes: their plaintext appended to `plain`.
  Opened open(std::string_view bytes, std::string& plain) {
    if (!engine_) {
      plain.append(bytes);
      return Opened::ok;
    }
    engine_->put_input(bytes);
    // A recv(2) brings at most 16 KiB of records: their plaintext is well under the limit.
    const auto status = engine_->read(plain, 1u << 20);
    // What the engine has to say (an alert, a key update's answer) goes at once.
    if (engine_->output_size() > 0) send_all(fd_, engine_->take_output());
    if (status == tls::Engine::Status::closed) return Opened::closed;
    if (status == tls::Engine::Status::failed) return Opened::failed;
    return Opened::ok;
  }
  std::string error() const { return engine_ ? engine_->error() : std::string(); }
  // close(2): a FIN (an RST with unread bytes), and never a close_notify.
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  bool flush_unsent() {
    while (!unsent_.empty()) {
      const ssize_t n = ::send(fd_, unsent_.data(), unsent_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return false;
      unsent_.erase(0, static_cast<std::size_t>(n));
    }
    return true;
  }

  int fd_;
  std::unique_ptr<tls::Engine> engine_;  // null in clear text
  std::string unsent_;  // send_now(): the part of a line the socket did not take
};

// A browser's opening handshake on the connection: GET /ws with an Origin that is the server
// itself (as the page it serves would send: https:// over TLS), bounded by 10 s. `in` holds
// what was already read (the plaintext that came with TLS's handshake). Returns what came after
// the 101's head (the first frames, if any); nullopt, said on stderr, if refused.
std::optional<std::string> open_websocket(Connection& conn, const std::string& host_port, Wire& wire,
                                          std::string in) {
  const std::string key = wire.key();
  const std::string origin = (conn.tls() ? "https://" : "http://") + host_port;
  if (!conn.send(ws::client_handshake(host_port, "/ws", key, origin))) {
    std::fprintf(stderr, "victim: cannot send the WebSocket handshake\n");
    return std::nullopt;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
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
    pollfd p{conn.fd(), POLLIN, 0};
    if (in.size() > 16384 || left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) {
      std::fprintf(stderr, "victim: no answer to the WebSocket handshake\n");
      return std::nullopt;
    }
    const ssize_t n = ::recv(conn.fd(), chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || conn.open(std::string_view(chunk, static_cast<std::size_t>(n)), in) != Connection::Opened::ok) {
      std::fprintf(stderr, "victim: the server closed the connection during the WebSocket handshake\n");
      return std::nullopt;
    }
  }
}

// A new connection to the server, with TLS's handshake when `tls`; null, said on stderr (or
// as "gone: ..." when `reconnecting`), if it cannot be made. `early`: the plaintext that came
// with the handshake.
std::unique_ptr<Connection> connect_to(const std::string& address, std::uint16_t port, bool tls, bool reconnecting,
                                       std::string& early) {
  std::unique_ptr<Connection> conn;
  try {
    auto engine = tls ? ready_client(address) : nullptr;  // the ClientHello goes right after the connect
    conn = std::make_unique<Connection>(connect_tcp(address, port, "", std::chrono::seconds(10)), std::move(engine));
    early = conn->handshake(std::chrono::seconds(10));
  } catch (const std::exception& e) {
    if (reconnecting) {
      report(std::string("gone: cannot reconnect: ") + e.what());
    } else {
      std::fprintf(stderr, "victim: %s\n", e.what());
    }
    return nullptr;
  }
  if (tls) report("TLS: " + conn->describe() + " (the lab's own, not verified)");
  return conn;
}

// What the victim says before it goes in the close-notify and cut commands, without its LF.
constexpr std::string_view last_words = "SAY my last words";

std::string describe(std::uint16_t code) {
  std::string text = std::to_string(code);
  if (const auto words = ws::describe_close(code); !words.empty()) text += " (" + std::string(words) + ")";
  return text;
}

}  // namespace

int run_victim(const std::string& address, std::uint16_t port, bool web, bool ids, bool tls) {
  std::signal(SIGPIPE, SIG_IGN);
  Wire wire(web);
  std::string early;  // plaintext that came with TLS's handshake (usually none)
  std::unique_ptr<Connection> conn = connect_to(address, port, tls, false, early);
  if (!conn) return 1;

  std::string in;       // from the server: lines (after the handshake's head, with --web)
  std::string control;  // from chatlab, on stdin
  std::optional<ws::MessageReader> frames;  // --web: the server's frames
  if (web) {
    auto rest = open_websocket(*conn, address + ":" + std::to_string(port), wire, std::move(early));
    if (!rest) return 1;
    in = std::move(*rest);
    frames.emplace(ws::MessageReader::Options{ws::MessageReader::Role::client, 1u << 20, true});
  } else if (!conn->send(ids ? "HELLO victim ids\n" : "HELLO victim\n")) {
    return 1;
  } else {
    in = std::move(early);
  }

  bool joined = false, reading = true, flooding = false, reported_unread = false;
  bool closing = false;  // it said goodbye (a close frame, a close_notify) and a FIN, and reads until the end
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
      if (!closing) conn->send(wire.line("PONG" + std::string(line.substr(4))));
    } else if (web && !joined && line.rfind("# chatserver", 0) == 0) {
      // The page sends HELLO once greeted, as a protocol client does.
      conn->send(wire.line("HELLO victim"));
    } else if (!joined && line.rfind("WELCOME ", 0) == 0) {
      joined = true;
      report("joined from port " + std::to_string(local_port(conn->fd())));
    } else if (!joined && line.rfind("ERROR ", 0) == 0) {
      std::fprintf(stderr, "victim: could not join: %.*s\n", static_cast<int>(line.size()), line.data());
      exit_code = 1;
    }
  };
  // Plaintext from the server, split into lines or frames.
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
          if (!closing) conn->send(wire.frame(ws::Opcode::pong, e.payload));
          return;
        case Kind::pong: return;
        case Kind::close:
          // The server's close frame: its answer to ours, or its own goodbye (which a browser
          // echoes). The end of the stream follows.
          report("the server's close frame: " + describe(e.code) +
                 (e.payload.empty() ? std::string() : ": " + std::string(e.payload)));
          if (!closing) conn->send(wire.close(e.code == ws::close_code::no_status ? ws::close_code::normal : e.code));
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
  // The connection is over (`what` it saw). With --ids the victim stays, waiting to be told to
  // reconnect: true. Otherwise false: it exits.
  const auto gone = [&](const std::string& what) {
    if (!ids) {
      report("gone: " + what);
      return false;
    }
    report("gone: " + what + " (it keeps its token and last id " + std::to_string(last_id) + " to resume)");
    conn.reset();
    in.clear();
    return true;
  };

  char chunk[16384];
  while (exit_code < 0) {
    const int fd = conn ? conn->fd() : -1;
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
          // The network is back: a new connection (and TLS handshake), and RESUME with what it kept.
          conn.reset();
          in.clear();
          conn = connect_to(address, port, tls, true, early);
          if (!conn) return 1;
          resuming = true;
          report("reconnected from port " + std::to_string(local_port(conn->fd())) +
                 " (a new TCP connection" + (tls ? ", a new TLS session" : "") + "); sends RESUME <its token> " +
                 std::to_string(last_id));
          if (!conn->send("RESUME " + token + " " + std::to_string(last_id) + "\n")) {
            report("gone: cannot send RESUME");
            return 1;
          }
          if (!early.empty()) on_bytes(std::exchange(early, {}));
        } else if (!conn) {
          // No connection (--ids, gone): only `reconnect` means anything now.
        } else if (command == "quit") {
          conn->send(wire.line("QUIT lab"));
        } else if (command == "close" && web) {
          // A closed tab: the browser says 1001 (going away) and lets the connection go (over
          // TLS, with TLS's own goodbye after the frame).
          flooding = false;
          reading = true;
          closing = true;
          const auto at = std::chrono::system_clock::now();  // on the timeline before the server reads it
          conn->send(wire.close(ws::close_code::going_away));
          conn->send_close_notify();
          ::shutdown(conn->fd(), SHUT_WR);
          report(std::string("sends a close frame 1001 (going away), then ") +
                     (tls ? "a close_notify and a FIN (shutdown)" : "a FIN (shutdown)"),
                 at);
        } else if (command == "close") {
          conn->close();
          report(tls ? "closed its socket without a close_notify: a FIN alone" : "closed its socket");
          return 0;
        } else if (command == "close-notify" || command == "cut") {
          // A line cut short (no LF), then the end: TLS's goodbye and a FIN, or a FIN alone.
          // Over TLS the server takes the unfinished line as the last word only after a
          // close_notify (in clear text, after any FIN).
          const auto at = std::chrono::system_clock::now();
          conn->send(web ? wire.line(last_words) : std::string(last_words));  // a frame is whole, a line is not
          if (command == "cut") {
            conn->close();
            report("sends \"" + std::string(last_words) + "\" without its LF, then closes its socket: a FIN, " +
                       (tls ? "no close_notify" : "nothing more"),
                   at);
            return 0;
          }
          flooding = false;
          reading = true;
          closing = true;
          conn->send_close_notify();
          ::shutdown(conn->fd(), SHUT_WR);
          report("sends \"" + std::string(last_words) + "\" without its LF, then " +
                     (tls ? "a close_notify and a FIN (shutdown)" : "a FIN (shutdown)"),
                 at);
        } else if (command == "stop-reading") {
          reading = false;
          report("stopped reading");
        } else if (command == "flood") {
          flooding = true;
        }
      }
    }
    if (!conn) continue;

    if (!reading && (p[1].revents & (POLLHUP | POLLERR))) {
      // poll reports these even when not asked: the connection is over (and polling again at
      // once would spin).
      report("gone: the connection was closed while it was not reading");
      return 0;
    }

    if (!reading && !reported_unread) {
      int unread = 0;
      if (::ioctl(conn->fd(), FIONREAD, &unread) == 0 && unread > 0) {
        report("unread " + std::to_string(unread) + " bytes wait in its receive queue");
        reported_unread = true;
      }
    }

    if (flooding && (p[1].revents & POLLOUT)) {
      // As many lines as the socket takes now; then poll again (and read the echoes).
      bool more = conn->send_now();  // what the socket did not take last time goes first
      for (int i = 0; i < 64 && more; ++i) more = conn->send_now(wire.line("SAY flood line " + std::to_string(++flood_count)));
      if (!more && errno != EAGAIN && errno != EWOULDBLOCK) {
        report(std::string("gone: send: ") + std::strerror(errno));
        return 0;
      }
    }

    if (reading && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      const ssize_t n = ::recv(conn->fd(), chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        if (gone("recv: " + (n == 0 ? std::string("end of stream") : std::string(std::strerror(errno))))) continue;
        return 0;
      }
      std::string plain;
      const auto opened = conn->open(std::string_view(chunk, static_cast<std::size_t>(n)), plain);
      on_bytes(plain);  // what came before a close_notify too
      if (opened == Connection::Opened::closed) {
        if (gone("the server's close_notify (TLS's end of the stream)")) continue;
        return 0;
      }
      if (opened == Connection::Opened::failed) {
        if (gone("bad TLS data: " + conn->error())) continue;
        return 0;
      }
    }
  }
  return exit_code;
}

}  // namespace chat::lab
