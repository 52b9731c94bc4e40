#include "client/link.hpp"

#include "client/known_servers.hpp"
#include "client/sanitize.hpp"
#include "common/line_framer.hpp"
#include "common/log.hpp"
#include "common/text.hpp"
#include "common/wording.hpp"

#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include <array>
#include <cassert>
#include <cerrno>
#include <csignal>

namespace chat {
namespace {

using Clock = std::chrono::steady_clock;

int millis_until(std::optional<Clock::time_point> deadline) {
  if (!deadline) return -1;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

// poll(2) retrying on EINTR. Returns its result.
int poll_fds(pollfd* fds, nfds_t n, std::optional<Clock::time_point> deadline) {
  while (true) {
    const int r = ::poll(fds, n, millis_until(deadline));
    if (r >= 0) return r;
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "poll");
  }
}

std::optional<Clock::time_point> earliest(std::optional<Clock::time_point> a, std::optional<Clock::time_point> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}

// Every string a server sent, made safe for the terminal before it leaves this thread.
Event sanitized(Event e) {
  e.nick = sanitize(e.nick);
  e.arg = sanitize(e.arg);
  e.code = sanitize(e.code);
  e.text = sanitize(e.text);
  for (auto& u : e.users) u = sanitize(u);
  return e;
}

LinkEvent make(LinkEvent::Kind kind) {
  LinkEvent e;
  e.kind = kind;
  return e;
}

// A resume token as the server makes them (docs/protocol.md: 32 lowercase hex digits; up to
// 128 accepted, as the server's parser does).
bool looks_like_token(std::string_view s) {
  if (s.size() < 32 || s.size() > 128) return false;
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// HELLO <nick> ids: ids, a resume token and the recent history (docs/protocol.md).
std::string hello_line(const std::string& nick) { return format_command(Command{Verb::hello, nick, "ids"}) + "\n"; }

}  // namespace

Link::Link(LinkOptions options, Backoff::Random random)
    : options_(std::move(options)), backoff_(options_.backoff, std::move(random)), wanted_(options_.nick) {}

Link::~Link() {
  if (thread_.joinable()) {
    thread_.request_stop();
    to_net_.signal();
    thread_.join();
  }
}

void Link::start() {
  thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

void Link::send(Command command) {
  {
    std::lock_guard lock(mutex_);
    outbox_.push_back(std::move(command));
  }
  to_net_.signal();
}

void Link::quit(std::string reason) {
  {
    std::lock_guard lock(mutex_);
    if (!quit_) quit_ = std::move(reason);
  }
  to_net_.signal();
}

std::vector<LinkEvent> Link::take_events() {
  assert(std::this_thread::get_id() != thread_.get_id());  // the driving thread's call
  to_ui_.clear();
  std::lock_guard lock(mutex_);
  std::vector<LinkEvent> out(std::make_move_iterator(events_.begin()), std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

void Link::end_with_error(std::optional<LinkEvent::Kind> kind, std::string text) {
  if (kind) {
    LinkEvent note = make(*kind);
    note.text = std::move(text);
    note.error = true;
    post(std::move(note));
  }
  LinkEvent ended = make(LinkEvent::Kind::ended);
  ended.error = true;
  post(std::move(ended));
}

void Link::post(LinkEvent event) {
  {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
  }
  to_ui_.signal();
  if (options_.on_event) options_.on_event();
}

void Link::post_lost(std::string cause, std::string detail, bool goodbye) {
  LinkEvent e = make(LinkEvent::Kind::lost);
  e.event = Event{goodbye ? Event::Kind::bye : Event::Kind::leave, {}, {}, sanitize(cause), sanitize(detail), {}};
  post(std::move(e));
}

// A server that stops reading must not hold our sends forever; they wait with the heartbeat's
// patience, or without a heartbeat the keepalive budget's, or 30 s when both are off.
Millis Link::send_patience() const {
  if (options_.ping_interval > Millis::zero()) return options_.ping_timeout;
  if (options_.keepalive.enabled) return options_.keepalive.budget();
  return Millis{30'000};
}

// ---- network thread ----------------------------------------------------------------------

void Link::run(std::stop_token stop) {
  // Signals are the driving thread's business: in interactive mode SIGWINCH must interrupt its
  // poll(2) (ncurses turns it into KEY_RESIZE), and SIGINT / SIGTERM / SIGHUP reach it through
  // its signalfd.
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGWINCH}) sigaddset(&mask, sig);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  set_thread_role("network");

  try {
    if (options_.tls) {
      std::string error;
      tls_context_ = tls::client_context(error);
      if (!tls_context_) {
        end_with_error(LinkEvent::Kind::notice, "cannot use TLS: " + error);
        return;
      }
    }
    bool ever_joined = false;
    while (true) {
      // Attempt 0 is the first connection; 1, 2, ... are the retries after it failed or was
      // lost (backoff_ counts them, and starts again from 0 once we have joined).
      LinkEvent connecting = make(LinkEvent::Kind::connecting);
      connecting.text = server().text();
      connecting.attempt = backoff_.failures();
      post(std::move(connecting));

      std::string unreachable;
      const Outcome outcome = session(stop, ever_joined, unreachable);
      say_goodbye();
      tls_.reset();
      wire_.clear();
      socket_.reset();  // closed here, on the only thread that ever used it
      if (outcome == Outcome::stopped) return;
      if (outcome == Outcome::quit) break;
      if (outcome == Outcome::refused || !options_.reconnect) {
        if (outcome == Outcome::unreachable) {
          end_with_error(LinkEvent::Kind::unreachable, sanitize(unreachable));
        } else {
          end_with_error();
        }
        return;
      }
      // One event per failed try: why it failed (when it was a connect that failed) and when
      // the next one comes.
      LinkEvent retry = make(LinkEvent::Kind::retry);
      retry.text = sanitize(unreachable);
      if (options_.servers.size() > 1) {
        // Failover: the next server in turn (a lost or unreachable one is tried again when
        // its turn comes back).
        current_ = (current_ + 1) % options_.servers.size();
        retry.server = server().text();
      }
      retry.delay = backoff_.next();
      retry.attempt = backoff_.failures();
      const Millis delay = retry.delay;
      post(std::move(retry));
      if (!wait(stop, delay)) {
        if (stop.stop_requested()) return;
        break;  // /quit while waiting
      }
    }
    post(make(LinkEvent::Kind::ended));
  } catch (const std::exception& e) {
    end_with_error(LinkEvent::Kind::notice, std::string("internal error in the network thread: ") + e.what());
  }
}

bool Link::wait(std::stop_token stop, Millis delay) {
  const auto deadline = Clock::now() + delay;
  while (!stop.stop_requested()) {
    std::deque<Command> dropped;
    {
      std::lock_guard lock(mutex_);
      if (quit_) return false;
      dropped.swap(outbox_);
    }
    for (const auto& cmd : dropped) {
      (void)cmd;
      LinkEvent note = make(LinkEvent::Kind::notice);
      note.text = "not connected: not sent";
      note.error = true;
      post(std::move(note));
    }
    if (Clock::now() >= deadline) return true;
    pollfd p{to_net_.fd(), POLLIN, 0};
    if (poll_fds(&p, 1, deadline) > 0) to_net_.clear();
  }
  return false;
}

ServerAddress Link::server() const {
  if (options_.servers.empty()) return ServerAddress{options_.host, options_.port};
  return options_.servers[current_ % options_.servers.size()];
}

std::optional<std::string> Link::connect(std::stop_token stop) {
  const ServerAddress target = server();
  const std::string where = target.text();
  std::error_code ec;
  asio::ip::tcp::resolver resolver(io_);
  const auto endpoints =
      resolver.resolve(target.host, std::to_string(target.port), asio::ip::resolver_base::numeric_service, ec);
  if (ec) return "cannot resolve " + target.host + ": " + ec.message();

  std::string failure = "cannot connect to " + where + ": no address";
  for (const auto& entry : endpoints) {
    socket_.emplace(io_);
    const auto endpoint = entry.endpoint();
    socket_->open(endpoint.protocol(), ec);
    if (ec) return "cannot create a socket: " + ec.message();
    const int fd = socket_->native_handle();
    // Non-blocking from here on: the connect waits in poll(2) next to to_net_ (so /quit and
    // the destructor interrupt it), and reads and writes use MSG_DONTWAIT anyway.
    socket_->non_blocking(true, ec);
    int r = ::connect(fd, endpoint.data(), static_cast<socklen_t>(endpoint.size()));
    if (r != 0 && errno != EINPROGRESS) {
      failure = "cannot connect to " + where + ": " + std::generic_category().message(errno);
      continue;
    }
    if (r != 0) {
      const auto deadline = Clock::now() + options_.connect_timeout;
      while (true) {
        std::array<pollfd, 2> fds{{{fd, POLLOUT, 0}, {to_net_.fd(), POLLIN, 0}}};
        const int ready = poll_fds(fds.data(), fds.size(), deadline);
        if (stop.stop_requested()) return "stopped";
        if (fds[1].revents != 0) {
          to_net_.clear();
          std::lock_guard lock(mutex_);
          if (quit_) return "quit";
        }
        if (fds[0].revents != 0) break;
        if (ready == 0) return "cannot connect to " + where + ": timed out";
      }
      if (const auto err = pending_socket_error(fd)) {
        failure = "cannot connect to " + where + ": " + err.message();
        continue;
      }
    }
    // Each line goes out in one send() already; Nagle would only hold a PONG or a typed line
    // back behind an unacknowledged one.
    socket_->set_option(asio::ip::tcp::no_delay(true), ec);
    if (const auto kec = apply_keepalive(*socket_, options_.keepalive)) {
      LinkEvent note = make(LinkEvent::Kind::notice);
      note.text = "warning: cannot set TCP keepalive: " + kec.message();
      post(std::move(note));
    }
    return std::nullopt;
  }
  return failure;
}

std::optional<std::string> Link::handshake(std::stop_token stop, std::string& early, bool& refused) {
  const ServerAddress target = server();
  const std::string where = target.text();
  const int fd = socket_->native_handle();
  tls_.emplace(tls_context_, tls::Engine::Role::client, target.host);
  // Said when a handshake fails: a server without TLS answers a ClientHello in clear text,
  // which OpenSSL reads as a bad record ("wrong version number", "packet length too long").
  const auto failed = [&](const std::string& why) {
    return "cannot connect to " + where + " over TLS: " + why + " (does the server take TLS?)";
  };
  if (tls_->start_handshake() == tls::Engine::Status::failed) return failed(tls_->error());

  // Bounded by the connect timeout, as the TCP connect before it.
  const auto deadline = Clock::now() + options_.connect_timeout;
  std::array<char, 16384> buf;
  while (!tls_->established()) {
    wire_ += tls_->take_output();
    while (!wire_.empty()) {
      const ssize_t n = ::send(fd, wire_.data(), wire_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        wire_.erase(0, static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      return "cannot connect to " + where + ": " + std::generic_category().message(errno);
    }
    std::array<pollfd, 2> fds{{{fd, static_cast<short>(POLLIN | (wire_.empty() ? 0 : POLLOUT)), 0},
                               {to_net_.fd(), POLLIN, 0}}};
    const int ready = poll_fds(fds.data(), fds.size(), deadline);
    if (stop.stop_requested()) return "stopped";
    if (fds[1].revents != 0) {
      to_net_.clear();
      std::lock_guard lock(mutex_);
      if (quit_) return "quit";
    }
    if (ready == 0) {
      return "cannot connect to " + where + ": the TLS handshake did not finish within " +
             format_duration(options_.connect_timeout);
    }
    if ((fds[0].revents & (POLLIN | POLLERR | POLLHUP)) == 0) continue;
    const ssize_t got = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (got == 0) return failed("the server closed the connection during the handshake");
    if (got < 0) return "cannot connect to " + where + ": " + std::generic_category().message(errno);
    tls_->put_input({buf.data(), static_cast<std::size_t>(got)});
    // Once the handshake ends this decrypts what came with it (the greeting, often).
    if (tls_->read(early, 1 << 20) == tls::Engine::Status::failed) return failed(tls_->error());
  }
  wire_ += tls_->take_output();  // our last handshake message; the session's first write sends it

  // The certificate (client/known_servers.hpp says the rules).
  CertificateCheck check;
  check.host = target.host;
  check.server = known_server_key(target.host, target.port);
  check.verify_error = tls_->verify_result();
  check.fingerprint = tls_->peer_fingerprint();
  check.pin = options_.tls_pin;
  check.known_servers = options_.known_servers.empty() ? default_known_servers_path() : options_.known_servers;
  Trust trust = check_certificate(check);
  for (auto& warning : trust.warnings) {
    LinkEvent note = make(LinkEvent::Kind::notice);
    note.text = "warning: " + sanitize(warning);
    post(std::move(note));
  }
  if (!trust.lines.empty()) {
    LinkEvent said = make(LinkEvent::Kind::certificate);
    // OpenSSL's reason and the host are the only words not ours; a line each, made safe.
    for (auto& line : trust.lines) said.lines.push_back(sanitize(line));
    said.error = !trust.accepted;
    post(std::move(said));
  }
  if (!trust.accepted) {
    refused = true;
    return "the certificate of " + where + " was not trusted";
  }
  LinkEvent secured = make(LinkEvent::Kind::secured);
  secured.server = where;
  secured.tls = tls_->describe();
  secured.text = trust.how;
  post(std::move(secured));
  return std::nullopt;
}

void Link::say_goodbye() {
  if (!socket_ || !socket_->is_open()) return;
  if (tls_) {
    tls_->close_notify();
    wire_ += tls_->take_output();
  }
  // Once, without waiting: what the socket does not take now (a server that stopped reading,
  // or is gone) goes with the connection.
  if (!wire_.empty()) (void)::send(socket_->native_handle(), wire_.data(), wire_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  wire_.clear();
}

Link::Outcome Link::session(std::stop_token stop, bool& ever_joined, std::string& unreachable) {
  const auto stopped_or_quit = [&]() -> std::optional<Outcome> {
    if (stop.stop_requested()) return Outcome::stopped;
    std::lock_guard lock(mutex_);
    if (quit_) return Outcome::quit;
    return std::nullopt;
  };
  if (auto failure = connect(stop)) {
    if (auto end = stopped_or_quit()) return *end;
    unreachable = std::move(*failure);
    return Outcome::unreachable;
  }
  std::string early;  // plaintext that came with the end of the TLS handshake
  if (options_.tls) {
    bool refused = false;
    if (auto failure = handshake(stop, early, refused)) {
      if (auto end = stopped_or_quit()) return *end;
      if (refused) return Outcome::refused;
      unreachable = std::move(*failure);
      return Outcome::unreachable;
    }
  }

  const int fd = socket_->native_handle();
  // On a rejoin we ask for the nickname we had chosen (options_.nick, or the last one the
  // user picked); a suffixed one is only a stand-in while the ghost holds it.
  std::string nick = wanted_;
  int ghost = 0;
  bool joined = false;
  bool choosing = false;  // the first join was refused; waiting for the user's /nick
  bool quitting = false;
  Clock::time_point quit_deadline{};
  // With a token from an earlier connection we ask for our seat back first (RESUME); the
  // server answers RESUMED, or ERROR bad-token and we join afresh with HELLO.
  bool resuming = !token_.empty();
  // The history block being received (HISTORY <what> n ... HISTORY END <what>), if any.
  History block = History::none;

  Command resume{Verb::resume, token_, {}};
  resume.id = last_id_;
  std::string out = resuming ? format_command(resume) + "\n" : hello_line(nick);
  // The room password, once per connection, before the first HELLO or RESUME.
  if (!options_.password.empty()) out = format_command(Command{Verb::pass, {}, options_.password}) + "\n" + out;
  // When writes began to make no progress; `stalled` says whether they have (a plain time
  // point: GCC 12 warns falsely about std::optional<time_point> here).
  bool stalled = false;
  Clock::time_point stalled_since{};
  LineFramer framer(options_.max_line);
  std::array<char, 16384> buf;
  auto last_heard = Clock::now();
  auto last_ping = Clock::now();
  std::optional<Clock::time_point> ping_sent;
  std::string ping_token;
  std::uint64_t next_token = 1;
  std::optional<Outcome> result;

  const auto notice = [this](std::string text, bool error) {
    LinkEvent note = make(LinkEvent::Kind::notice);
    note.text = std::move(text);
    note.error = error;
    post(std::move(note));
  };

  const auto handle_line = [&](std::string_view line) {
    const auto parsed = parse_event(line);
    if (!parsed) {
      notice("unrecognised line from server: " + sanitize(line), true);
      return;
    }
    const Event ev = sanitized(*parsed);
    using K = Event::Kind;
    switch (ev.kind) {
      case K::comment:
        if (ev.id == 0) {
          // Before joining: the greeting and hints, which nobody needs. Once in the room: a remark
          // for this client alone (the room is split from the other servers, a line not sent).
          if (joined) notice(ev.text, false);
          return;
        }
        break;  // a room notice, tagged like every room event
      case K::ping: out += format_command(Command{Verb::pong, ev.arg, {}}) + "\n"; return;
      case K::pong:
        if (ping_sent && ev.arg == ping_token) {
          LinkEvent rtt = make(LinkEvent::Kind::rtt);
          rtt.delay = std::chrono::ceil<Millis>(Clock::now() - *ping_sent);
          post(std::move(rtt));
          ping_sent.reset();
        }
        return;
      case K::welcome: {
        joined = true;
        resuming = false;
        // A fresh seat: what we saw before belongs to the old one. The ids of this connection
        // start from its recent history (a rejoin may show some lines again, marked as
        // earlier messages; a resume would have shown each once).
        last_id_ = 0;
        LinkEvent j = make(LinkEvent::Kind::joined);
        j.nick = ev.nick;
        j.rejoin = ever_joined;
        if (ghost > 0) j.text = wanted_;
        post(std::move(j));
        ever_joined = true;
        backoff_.reset();
        last_ping = Clock::now() - options_.rtt_interval;  // measure the round trip at once
        return;
      }
      case K::resumed: {
        if (!resuming) break;  // not asked for: shown as the line it is
        joined = true;
        resuming = false;
        nick = ev.nick;
        LinkEvent r = make(LinkEvent::Kind::resumed);
        r.nick = ev.nick;
        r.event = ev;
        r.rejoin = true;
        post(std::move(r));
        ever_joined = true;
        backoff_.reset();
        last_ping = Clock::now() - options_.rtt_interval;
        return;
      }
      case K::token:
        // Kept for the next connection (never shown, never logged). Only a token's shape is
        // accepted: it goes back into our RESUME line as it is.
        if (looks_like_token(ev.arg)) token_ = ev.arg;
        return;
      case K::history:
        block = history_from(ev.code);
        {
          LinkEvent start = make(LinkEvent::Kind::server);
          start.event = ev;
          start.history = block;
          post(std::move(start));
        }
        return;
      case K::history_end: {
        LinkEvent end = make(LinkEvent::Kind::server);
        end.event = ev;
        end.history = history_from(ev.code);
        post(std::move(end));
        block = History::none;
        return;
      }
      case K::error: {
        if (!joined && ev.code == to_string(ErrorCode::bad_password)) {
          // The room's password is missing or wrong (--password-file, --ask-password): trying
          // again with the same one would only be slowed down further. Said, and the end.
          LinkEvent refused = make(LinkEvent::Kind::refused);
          refused.event = ev;
          post(std::move(refused));
          result = Outcome::refused;
          return;
        }
        // A banned nickname or address (BAN): the same HELLO, or a RESUME of the same seat,
        // would be refused again until the ban ends. A refusal, like a bad nickname's: the
        // person may pick another (/nick), a script ends.
        const bool banned = ev.code == to_string(ErrorCode::banned);
        if (banned && resuming && !joined) {
          resuming = false;
          token_.clear();
          last_id_ = 0;
        }
        if (resuming && !joined) {
          // The seat is gone (expired, already resumed, a server that forgot it) or the server
          // does not know RESUME: forget the token and join afresh, as a first join would.
          resuming = false;
          token_.clear();
          last_id_ = 0;
          if (ev.code == to_string(ErrorCode::bad_token)) {
            notice(wording::refusal(ev.code, ev.text), false);
          } else {
            notice("could not resume (" + ev.code + (ev.text.empty() ? "" : ": " + ev.text) + "); joining afresh", false);
          }
          out += hello_line(nick);
          return;
        }
        // nick-held: the server keeps the seat for someone who dropped. After a drop of ours
        // that is probably our own seat, whose token was refused: as with our ghost, try the
        // suffixed nicknames.
        const bool taken = ev.code == to_string(ErrorCode::nick_in_use) || ev.code == to_string(ErrorCode::nick_held);
        const bool nick_refused = taken || banned || ev.code == to_string(ErrorCode::bad_nick);
        if (!joined && nick_refused) {
          if (ever_joined && taken && ghost < options_.max_ghost_tries) {
            ++ghost;
            const std::string next = ghost_nick(wanted_, ghost);
            notice(nick + " is still taken (probably by our old connection); trying " + next, false);
            nick = next;
            out += hello_line(nick);
          } else {
            choosing = true;
            LinkEvent refused = make(LinkEvent::Kind::refused);
            refused.event = ev;
            post(std::move(refused));
            if (options_.give_up_when_refused) result = Outcome::refused;
          }
          return;
        }
        break;
      }
      case K::bye:
        // Said once: as the reason the connection ended (`lost`, with the BYE's words), or,
        // after our QUIT, by the `ended` that follows.
        if (quitting) {  // the goodbye we asked for
          result = Outcome::quit;
          return;
        }
        post_lost(ev.code, ev.text, /*goodbye=*/true);
        result = Outcome::lost;
        return;
      case K::nick:
        if (fold_nick(ev.nick) == fold_nick(nick)) {
          nick = ev.arg;
          wanted_ = ev.arg;
        }
        break;
      default: break;
    }
    LinkEvent server = make(LinkEvent::Kind::server);
    // Ids: a tagged line that is part of the live order (live, or in a recent / missed block)
    // moves "the last id we saw" on, which a RESUME names; the server sends each of those once
    // and in order, so one at or below it would be a repeat and is not shown twice. Answers
    // to HISTORY BEFORE and SEARCH are replies about the past: their ids say nothing about
    // where we are.
    History mark = block;
    // An answer names only events older than the live ones already delivered before it (the
    // server sends every room event older than its answer first). So a line in an answer whose
    // id is newer than the last live id is a live event that reached us in the middle of the
    // answer: it is live. (With no live id yet there is nothing to compare with.)
    if (ev.id != 0 && (block == History::before || block == History::search) && last_id_ != 0 && ev.id > last_id_) {
      mark = History::none;
    }
    if (ev.id != 0 && (mark == History::none || mark == History::recent || mark == History::missed)) {
      if (ev.id <= last_id_) {
        notice("the server sent event " + std::to_string(ev.id) + " again; not shown twice", true);
        return;
      }
      last_id_ = ev.id;
    }
    server.history = mark;
    server.event = ev;
    post(std::move(server));
  };

  const auto feed = [&](std::string_view bytes) {
    framer.feed(bytes, [&](const LineFramer::Piece& piece) {
      if (result) return;
      if (piece.kind == LineFramer::Piece::Kind::too_long) {
        notice("a line from the server was longer than " + std::to_string(options_.max_line) +
                   " bytes and was discarded",
               true);
        return;
      }
      handle_line(piece.text);
    });
  };
  // The server's close_notify: its clean end; nothing more comes. (Ours answers it: say_goodbye.)
  const auto closed_by_peer = [&] {
    std::string partial;  // "BYE shutdown" without its LF still counts
    if (framer.take_partial(partial)) handle_line(partial);
    if (result) return *result;
    if (quitting) return Outcome::quit;
    post_lost("closed", "connection closed by peer with close_notify");
    return Outcome::lost;
  };
  feed(early);  // what came with the end of the TLS handshake
  if (result) return *result;
  if (tls_ && tls_->peer_closed()) return closed_by_peer();  // and its close_notify, at once

  while (true) {
    // What the driving thread asked for.
    std::deque<Command> commands;
    std::optional<std::string> quit_reason;
    {
      std::lock_guard lock(mutex_);
      commands.swap(outbox_);
      quit_reason = quit_;
    }
    for (auto& cmd : commands) {
      if (joined) {
        out += format_command(cmd) + "\n";
      } else if (choosing && cmd.verb == Verb::nick) {
        choosing = false;
        nick = cmd.arg;
        wanted_ = cmd.arg;
        out += hello_line(nick);
      } else {
        notice("not joined yet: not sent", true);
      }
    }
    if (quit_reason && !quitting) {
      quitting = true;
      quit_deadline = Clock::now() + options_.quit_wait;
      out += format_command(Command{Verb::quit, {}, *quit_reason}) + "\n";
    }

    // The lines become bytes for the socket: as they are, or under TLS encrypted into records
    // (with whatever else the engine has to send, such as an answer to a key update).
    if (tls_) {
      if (!out.empty() && !tls_->write(out)) {
        post_lost("error", "TLS: " + sanitize(tls_->error()));
        return Outcome::lost;
      }
      out.clear();
      wire_ += tls_->take_output();
    } else {
      wire_ += out;
      out.clear();
    }
    // Write what the kernel takes now; the rest waits for POLLOUT.
    while (!wire_.empty()) {
      const ssize_t n = ::send(fd, wire_.data(), wire_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        wire_.erase(0, static_cast<std::size_t>(n));
        stalled = false;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!stalled) stalled_since = Clock::now();
        stalled = true;
        break;
      }
      // A send error: the read below reports the cause (the socket is readable with it).
      wire_.clear();
      break;
    }

    // The next deadline: the goodbye after QUIT, a stalled write, the heartbeat and the RTT
    // probe.
    const bool heartbeat = options_.ping_interval > Millis::zero();
    std::optional<Clock::time_point> deadline;
    if (quitting) deadline = quit_deadline;
    if (stalled) deadline = earliest(deadline, stalled_since + send_patience());
    // The keepalive budget is checked here too (common/net.hpp: no_ack_for_budget says why).
    if (options_.keepalive.enabled) deadline = earliest(deadline, last_heard + options_.keepalive.budget());
    if (ping_sent) {
      deadline = earliest(deadline, *ping_sent + options_.ping_timeout);
    } else if (!quitting) {
      if (heartbeat) deadline = earliest(deadline, last_heard + options_.ping_interval);
      if (joined && options_.rtt_interval > Millis::zero()) deadline = earliest(deadline, last_ping + options_.rtt_interval);
    }

    std::array<pollfd, 2> fds{{{fd, static_cast<short>(POLLIN | (wire_.empty() ? 0 : POLLOUT)), 0},
                               {to_net_.fd(), POLLIN, 0}}};
    poll_fds(fds.data(), fds.size(), deadline);
    if (stop.stop_requested()) return Outcome::stopped;
    if (fds[1].revents != 0) to_net_.clear();
    const auto now = Clock::now();

    if (quitting && now >= quit_deadline) return Outcome::quit;
    // How a silence-based finding ends its detail, as the server's detectors end theirs: the
    // words for people take the time from it ("the server stopped answering (no reply for 25 s)").
    const auto silent_for = [&] { return " (client, " + format_duration(now - last_heard) + " after last traffic)"; };
    if (stalled && now - stalled_since >= send_patience()) {
      post_lost("timeout", "the server stopped reading (a send waited " + format_duration(send_patience()) + ")");
      return Outcome::lost;
    }
    if (now - last_heard >= options_.keepalive.budget()) {
      if (auto silent = no_ack_for_budget(tcp_health(fd), options_.keepalive)) {
        post_lost("timeout", *silent + silent_for());
        return Outcome::lost;
      }
    }
    if (ping_sent && now - *ping_sent >= options_.ping_timeout) {
      if (last_heard < *ping_sent) {
        if (auto unacked = ping_not_acked(tcp_health(fd), now - *ping_sent)) {
          post_lost("timeout", *unacked + silent_for());
          return Outcome::lost;
        }
        post_lost("no-pong", "no reply to PING within " + format_duration(options_.ping_timeout) + silent_for());
        return Outcome::lost;
      }
      ping_sent.reset();  // it is talking, just not answering this PING: alive
    }
    if (!ping_sent && !quitting &&
        ((heartbeat && now - last_heard >= options_.ping_interval) ||
         (joined && options_.rtt_interval > Millis::zero() && now - last_ping >= options_.rtt_interval))) {
      ping_token = "c" + std::to_string(next_token++);
      out += format_command(Command{Verb::ping, ping_token, {}}) + "\n";
      ping_sent = now;
      last_ping = now;
    }

    if ((fds[0].revents & (POLLIN | POLLERR | POLLHUP)) == 0) continue;
    const ssize_t got = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
    if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (got <= 0) {
      const std::error_code ec = got == 0 ? std::error_code(asio::error::eof)
                                          : std::error_code(errno, asio::error::get_system_category());
      std::string partial;  // "BYE shutdown" without its LF still counts
      if (framer.take_partial(partial)) handle_line(partial);
      if (result) return *result;
      if (quitting) return Outcome::quit;
      // Under TLS a FIN before the server's close_notify could be someone cutting the stream
      // short (a truncation attack looks the same as a crash): said, in the detail.
      post_lost(std::string(to_string(cause_of(ec))),
                what_was_seen(ec) + (tls_ && got == 0 ? " without close_notify (TLS: what came last may be cut short)" : ""));
      return Outcome::lost;
    }
    last_heard = now;
    if (!tls_) {
      feed({buf.data(), static_cast<std::size_t>(got)});
      if (result) return *result;
      continue;
    }
    tls_->put_input({buf.data(), static_cast<std::size_t>(got)});
    std::string plain;
    // Everything the input decrypts to (no more than it holds: bounded by one recv and a
    // record that was incomplete before it).
    const auto status = tls_->read(plain, 1 << 20);
    feed(plain);
    if (result) return *result;
    if (status == tls::Engine::Status::failed) {
      post_lost("error", "TLS: " + sanitize(tls_->error()));
      return Outcome::lost;
    }
    if (status == tls::Engine::Status::closed) return closed_by_peer();
  }
}

}  // namespace chat
