// Link: chatclient's network side, for both modes. One network thread connects, joins,
// relays commands, answers the server's PINGs, runs the heartbeat (and, if asked, measures the
// round-trip time with PINGs of its own), and when the connection is lost says why and, if
// asked, reconnects with backoff (client/reconnect.hpp).
//
// Ids and resuming (docs/protocol.md, "Ids, resume and history"): the Link joins with
// `HELLO <nick> ids`, keeps the resume TOKEN and the id of the last event it saw, and after a
// loss (any cause, a server shutdown too: a restarted server keeps the seats) asks for the
// seat back with `RESUME <token> <last id>`. The server then replays what we missed, once, as
// a `HISTORY missed` block. If the seat is gone (ERROR bad-token) the Link forgets the token
// and joins afresh with the same nickname or, if it is still held (our ghost, or our seat
// whose token was refused), a suffixed one. Events arrive marked with the history block they
// belong to (LinkEvent::history); a live event the server sent twice is dropped, and one that
// arrives in the middle of a HISTORY BEFORE / SEARCH answer (newer than any answer can be) is
// marked live.
//
// Threads:
//   - the driving thread (interactive mode: the UI thread, client/tui.cpp; script mode: the
//     main thread, client/chat_client.cpp) creates the Link, calls start() once, sends commands
//     with send() / quit(), drains events with take_events() when event_fd() is readable, and
//     destroys it (which stops and joins the network thread).
//   - the network thread (thread_, a std::jthread) is the only thread that touches the socket:
//     it connects, reads and writes it, and closes it. The driving thread never waits on the
//     network: what it sends is queued under mutex_ and the network thread is woken through
//     to_net_.
//   - the network thread never touches the terminal or stdout: what it has to say becomes a
//     LinkEvent (client/link_event.hpp), sanitised, queued under mutex_, with to_ui_ signalled.
//
// The socket's descriptor is not shared, so the driving thread stops the network thread with
// request_stop() + to_net_.signal() (no shutdown() needed).
//
// TLS (LinkOptions::tls, chatclient --tls; docs/tls.md): after the TCP connect the network
// thread runs the handshake with a tls::Engine (common/tls.hpp), bounded by connect_timeout,
// checks the certificate (client/known_servers.hpp: the system's authorities, else a pinned
// fingerprint, else --tls-pin's trust on first use) and then runs the same line protocol
// inside it. The engine does no I/O: this thread's own poll(2), recv and send move the
// ciphertext, exactly as they move clear text, so nothing else changes (the heartbeat, the
// keepalive checks and the stall timeout look at the same socket). A certificate that is
// refused ends the Link (`certificate` with error, then `ended`): never retried, the user
// must act. The end of a connection says whether the server sent close_notify; ours goes out
// before our FIN.
#pragma once

#include "client/link_event.hpp"
#include "client/reconnect.hpp"
#include "common/net.hpp"
#include "common/protocol.hpp"
#include "common/server_list.hpp"
#include "common/tls.hpp"
#include "common/units.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace chat {

struct LinkOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 15600;
  // Several servers (--host a,b,c): each attempt after a loss or a failed connect goes to the
  // next one in turn, with the same backoff; `host` and `port` are then not used. Empty: one.
  std::vector<ServerAddress> servers;
  std::string nick;
  std::string password;  // the room password: PASS before each HELLO or RESUME ("": none)
  KeepaliveConfig keepalive{};
  Millis ping_interval{15'000};  // silence before a heartbeat PING; 0: no heartbeat
  Millis ping_timeout{10'000};   // silence after our PING before the server counts as gone
  Millis rtt_interval{5'000};    // a PING for the status line's round-trip time this often; 0: never
  std::size_t max_line = 4096;
  bool reconnect = true;            // after a loss (or a failed connect): back off and try again
  bool give_up_when_refused = false;  // a refused nickname ends the Link instead of waiting for /nick
  BackoffConfig backoff{};
  Millis connect_timeout{10'000};
  Millis quit_wait{2'000};  // after QUIT, how long to wait for BYE / the close
  int max_ghost_tries = 5;  // suffixed nicknames to try on a rejoin before giving up on one
  // TLS (see above): the connection runs inside TLS; `host` (each server's) is the name its
  // certificate must carry, and the name sent with SNI.
  bool tls = false;
  bool tls_pin = false;       // trust an unverified certificate on first use, and pin it
  std::string known_servers;  // the pins' file; "": default_known_servers_path()
  // Called on the network thread after each event is queued, besides event_fd() becoming
  // readable: for a driving thread that waits in an event loop of its own rather than in
  // poll(2) (the Qt window posts itself a queued call). Must be quick and must not block.
  std::function<void()> on_event;
};

class Link {
 public:
  explicit Link(LinkOptions options, Backoff::Random random = {});
  // Stops and joins the network thread (driving thread).
  ~Link();

  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  // Driving thread, once: starts the network thread.
  void start();

  // Thread safe. Queues a command for the server. While not joined it is not sent: a notice
  // says so, except NICK while choosing a nickname after a refusal, which becomes HELLO.
  void send(Command command);
  // Thread safe. Sends QUIT (if connected), waits a bounded time for the goodbye and ends the
  // network thread, which reports `ended`. Also ends a wait between reconnect attempts.
  void quit(std::string reason);

  // Readable (POLLIN) when events are waiting. The driving thread polls it next to stdin.
  int event_fd() const { return to_ui_.fd(); }
  // Driving thread: every event queued so far, oldest first.
  std::vector<LinkEvent> take_events();

 private:
  enum class Outcome { stopped, quit, lost, unreachable, refused };

  // ---- network thread ----
  void run(std::stop_token stop);
  // One connection, from connect to its end. `unreachable` says why the connect failed.
  Outcome session(std::stop_token stop, bool& ever_joined, std::string& unreachable);
  std::optional<std::string> connect(std::stop_token stop);  // error message, or nullopt
  // The TLS handshake on the connected socket, then the certificate check. nullopt: trusted
  // (plaintext that came with the handshake's end is in `early`); else why it failed, and
  // `refused` says whether that was the certificate (the user must act: no retry).
  std::optional<std::string> handshake(std::stop_token stop, std::string& early, bool& refused);
  // The polite end of a TLS connection: what waits in wire_, then close_notify, as far as the
  // socket takes them now (never waits).
  void say_goodbye();
  bool wait(std::stop_token stop, Millis delay);             // false: stop or quit came first
  void post(LinkEvent event);
  // The Link gives up: `text` as an error event of `kind` (if any), then `ended` with an error.
  void end_with_error(std::optional<LinkEvent::Kind> kind = std::nullopt, std::string text = {});
  // The connection ended: `cause` is a leave cause token, or a BYE reason when `goodbye`.
  void post_lost(std::string cause, std::string detail, bool goodbye = false);
  Millis send_patience() const;  // how long a send may make no progress
  ServerAddress server() const;  // the one the next attempt goes to (network thread)

  const LinkOptions options_;
  Backoff backoff_;  // network thread only
  // Network thread only: the nickname a rejoin asks for (the one given, or the last one the
  // user chose); a suffixed one stands in only while our ghost holds it.
  std::string wanted_;
  // Network thread only, kept from one connection to the next: the resume token of our seat
  // (TOKEN; empty: none, join with HELLO) and the highest id of the tagged lines we saw in the
  // live order (live lines, recent and missed blocks; never those of HISTORY BEFORE or SEARCH
  // answers). A reconnect sends RESUME <token_> <last_id_> first.
  std::string token_;
  std::uint64_t last_id_ = 0;
  std::size_t current_ = 0;  // network thread only: the index in options_.servers tried now

  // Network thread only: connected, used and closed there.
  asio::io_context io_;
  std::optional<asio::ip::tcp::socket> socket_;
  // Network thread only, with options_.tls: the client context (made once, when the thread
  // starts) and this connection's engine (made for each connection, gone with it).
  tls::Context tls_context_;
  std::optional<tls::Engine> tls_;
  // Network thread only: bytes for the socket that it has not taken yet (the lines, or under
  // TLS their records). Emptied for each connection.
  std::string wire_;

  std::mutex mutex_;
  std::deque<LinkEvent> events_;     // guarded by mutex_: network thread -> driving thread
  std::deque<Command> outbox_;       // guarded by mutex_: driving thread -> network thread
  std::optional<std::string> quit_;  // guarded by mutex_: the reason, once /quit was typed
  Wakeup to_ui_;                     // signalled after events_ grows
  Wakeup to_net_;                    // signalled after outbox_ or quit_ changes

  std::jthread thread_;  // last: stopped and joined before the members it uses go
};

}  // namespace chat
