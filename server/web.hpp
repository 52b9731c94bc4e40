// The web side of the chat port (--web on, the default): the page in web/ and a WebSocket at
// /ws, served by the same listener, readers, poller and writers as every other client.
//
//   WebDoor   what a connection's first bytes are. An HTTP client always speaks first; a
//             person on nc or telnet waits to be greeted. So the reader waits up to
//             first_bytes_wait: nothing came, it greets (lines); bytes came, http::sniff says
//             whether they begin a request line. One kind of HTTP connection stays silent
//             for longer: a browser opens spare connections (to fetch a page's files in
//             parallel, or on a guess) and may send a request on one seconds later; a greeting
//             there would be read as the response and break the page. Such spares come from an
//             address whose browser has just made a request on another connection, so an
//             address that asked for a file within the last 15 s gets patient_wait instead. Lines: greet, and the bytes go to the line
//             framing. HTTP: the request head is read (bounded, within --handshake-timeout
//             like a nickname), WebSite answers it, and either the connection becomes a
//             WebSocket (101: WebSocketFraming from now on, then the greeting and the chat as
//             usual) or the response is sent and the next request read (keep-alive) or the
//             connection closed.
//   WebSite   the answers: GET / and the page's files (built in, or --web-root), GET /ws with
//             the upgrade checks (RFC 6455 4.2: version 13, a key, an Origin that is this server
//             or listed in --web-origin), 404, 405.
//
// A browser is then a session like any other: a reader thread, the poller's probe and
// heartbeat, a writer's turn, too-slow, flood control, max-clients and max-per-ip. The room
// never learns that it is a browser.
//
// Threads: WebSite is made by the main thread and read-only afterwards (thread safe). A
// WebDoor belongs to one session's reader thread.
#pragma once

#include "common/http.hpp"
#include "server/config.hpp"
#include "server/framing.hpp"

#include <asio/ip/address.hpp>

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace chat {

class Session;

// The framing of a connection while it speaks HTTP: only whole answers go out (as raw bytes),
// nothing is framed, and a polite end from any thread (shutdown, the handshake timeout) is a
// FIN alone: a BYE line would be read by the browser as the answer to its next request. The
// door reads the requests itself, so feed() is never called.
class HttpFraming final : public Framing {
 public:
  std::string_view name() const override { return "http"; }
  void feed(std::string_view, Sink&) override {}
  bool take_partial(std::string&) override { return false; }
  Wire frame(std::string_view line, char*) const override { return Wire{0, line.size()}; }
  bool passthrough() const override { return true; }
  std::string goodbye(std::string_view, std::string_view) const override { return {}; }
};

class WebSite {
 public:
  explicit WebSite(const ServerConfig& config) : config_(config) {}

  struct Answer {
    std::string bytes;        // the whole response
    int status = 0;
    bool upgrade = false;     // 101: the connection is a WebSocket from now on
    bool keep_alive = false;  // another request may follow on this connection
  };
  // The response to `request`; `may_keep_alive` false for the last one a connection gets.
  // Thread safe.
  Answer answer(const http::Request& request, bool may_keep_alive = true) const;

  // `address` asked for a file (a browser is there). Thread safe.
  void note_browser(const asio::ip::address& address);
  // Did `address` ask for a file within the last 15 s? Thread safe.
  bool browser_at(const asio::ip::address& address) const;

 private:
  Answer websocket(const http::Request& request) const;
  Answer file(const http::Request& request, std::string_view path, bool may_keep_alive) const;
  // Is `origin` (an Origin header) this server, as the browser reached it (`host`), or listed?
  bool origin_allowed(std::string_view origin, std::string_view host) const;

  const ServerConfig& config_;
  mutable std::mutex mutex_;
  // guarded by mutex_: when each address last made a request; at most max_browsers entries
  std::map<asio::ip::address, std::chrono::steady_clock::time_point> browsers_;
};

class WebDoor {
 public:
  // How long a silent new connection waits for its greeting: long enough for a browser's
  // request to arrive (it is sent with the connection's first ACK), short enough that a person
  // on nc does not notice.
  static constexpr std::chrono::milliseconds first_bytes_wait{100};
  // How long a silent connection from an address that just spoke HTTP waits: longer than
  // browsers keep an unused spare connection open (Chromium 10 s) before they close it.
  static constexpr std::chrono::milliseconds patient_wait{12'000};
  // Requests served on one keep-alive connection before it is closed.
  static constexpr int max_requests = 100;

  WebDoor(Session& session, WebSite& site) : session_(session), site_(site) {}

  // Decided: the connection speaks lines or WebSocket frames; its bytes go to its framing.
  bool open() const { return state_ == State::open; }
  // Waits for the connection's first bytes (first_bytes_wait, or patient_wait where a browser
  // is), and greets it if none came: a person is waiting. `waited`: how long the TLS door
  // already waited for them.
  void await_first_bytes(std::chrono::milliseconds waited = std::chrono::milliseconds(0));
  // Bytes that arrived while the door was not open.
  void feed(std::string_view bytes);

 private:
  enum class State { sniffing, http, open, closed };
  void open_for_lines(std::string_view bytes);
  void handle_request();  // request_ is complete: answers it, and says what comes next (state_)

  Session& session_;
  WebSite& site_;
  State state_ = State::sniffing;
  std::string sniffed_;                        // the first bytes, until sniff() decides (a few dozen)
  std::optional<http::RequestReader> request_;  // State::http: the request being read
  int requests_ = 0;
};

}  // namespace chat
