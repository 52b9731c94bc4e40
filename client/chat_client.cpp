#include "client/chat_client.hpp"

#include "client/sanitize.hpp"

#include "common/line_framer.hpp"
#include "common/log.hpp"
#include "common/render.hpp"
#include "common/text.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cassert>
#include <cerrno>
#include <variant>

namespace chat {
namespace {

using Clock = std::chrono::steady_clock;

// Milliseconds left until `deadline` as poll(2) wants them: rounded up, so that a wake-up is
// never early and the loop does not spin on a 0 ms timeout just before the deadline.
int millis_until(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

// poll(2) that retries on EINTR with the time that is left. Returns poll's result.
int poll_until(pollfd* fds, nfds_t n, std::optional<Clock::time_point> deadline) {
  while (true) {
    const int timeout = deadline ? millis_until(*deadline) : -1;
    const int r = ::poll(fds, n, timeout);
    if (r >= 0) return r;
    if (errno != EINTR) throw std::system_error(errno, std::generic_category(), "poll");
  }
}

Event error_event(std::string_view code, std::string detail) {
  return Event{Event::Kind::error, {}, {}, std::string(code), std::move(detail), {}};
}

// Every string a server sent, made safe before it is printed: it comes from the network and
// must not drive the terminal (client/sanitize.hpp).
Event sanitized(Event e) {
  e.nick = sanitize(e.nick);
  e.arg = sanitize(e.arg);
  e.code = sanitize(e.code);
  e.text = sanitize(e.text);
  for (auto& u : e.users) u = sanitize(u);
  return e;
}

}  // namespace

ChatClient::ChatClient(ClientOptions options, int input_fd, std::ostream& out, std::ostream& err)
    : options_(std::move(options)), input_fd_(input_fd), socket_(io_), out_(out), err_(err) {}

ChatClient::~ChatClient() { stop_network(); }

// ---- main thread ------------------------------------------------------------------------

int ChatClient::run() {
  main_thread_ = std::this_thread::get_id();
  if (!connect()) return exit_failure;
  // Each line goes out in one send() already; Nagle would only hold a PONG or a typed line
  // back behind an unacknowledged one.
  std::error_code ignored;
  socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
  if (auto ec = apply_keepalive(socket_, options_.keepalive)) {
    std::lock_guard lock(out_mutex_);
    err_ << "chatclient: warning: cannot set TCP keepalive: " << ec.message() << std::endl;
  }
  // Sent before the network thread exists; if it fails, that thread's first read says why.
  send_line(format_command(Command{Verb::hello, options_.nick, {}}));
  network_ = std::jthread([this](std::stop_token stop) { network_main(stop); });

  // Typed lines wait until the server has accepted the nickname: nothing is sent to a server
  // that is about to refuse us, and a script's output starts with the welcome.
  if (wait_until_joined()) input_loop();
  stop_network();

  std::lock_guard lock(state_mutex_);
  return state_.exit_code.value_or(exit_ok);
}

bool ChatClient::connect() {
  assert_main_thread();
  std::error_code ec;
  asio::ip::tcp::resolver resolver(io_);
  const auto endpoints =
      resolver.resolve(options_.host, std::to_string(options_.port), asio::ip::resolver_base::numeric_service, ec);
  if (!ec) asio::connect(socket_, endpoints, ec);
  if (ec) {
    std::lock_guard lock(out_mutex_);
    err_ << "chatclient: cannot connect to " << options_.host << ":" << options_.port << ": " << ec.message()
         << std::endl;
    return false;
  }
  return true;
}

bool ChatClient::wait_until_joined() {
  assert_main_thread();
  while (true) {
    {
      std::lock_guard lock(state_mutex_);
      if (state_.exit_code) return false;
      if (state_.joined) return true;
    }
    pollfd p{wakeup_.fd(), POLLIN, 0};
    poll_until(&p, 1, std::nullopt);
    wakeup_.clear();
  }
}

void ChatClient::input_loop() {
  assert_main_thread();
  LineFramer framer(options_.max_line);
  std::array<char, 4096> buf;
  while (true) {
    std::array<pollfd, 2> fds{{{input_fd_, POLLIN, 0}, {wakeup_.fd(), POLLIN, 0}}};
    poll_until(fds.data(), fds.size(), std::nullopt);
    if (fds[1].revents != 0) {
      wakeup_.clear();
      if (ended()) return;
    }
    if (fds[0].revents == 0) continue;

    ssize_t n = ::read(input_fd_, buf.data(), buf.size());
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n < 0) {
      const int err = errno;
      std::lock_guard lock(out_mutex_);
      err_ << "chatclient: cannot read input: " << std::generic_category().message(err) << std::endl;
      n = 0;  // treated as the end of input: leave politely
    }
    if (n == 0) {
      // A last line without LF (`printf 'bye' | chatclient ...`) is still sent.
      std::string last;
      if (framer.take_partial(last) && !handle_input(last)) return;
      quit("");
      return;
    }

    bool go_on = true;
    framer.feed({buf.data(), static_cast<std::size_t>(n)}, [&](const LineFramer::Piece& piece) {
      if (!go_on) return;  // after /quit the rest of the chunk is not sent
      if (piece.kind == LineFramer::Piece::Kind::too_long) {
        print_event(error_event("too-long", "input line longer than " + std::to_string(options_.max_line) +
                                                " bytes, not sent"));
        return;
      }
      go_on = handle_input(piece.text);
    });
    if (!go_on || ended()) return;
  }
}

bool ChatClient::handle_input(std::string_view line) {
  assert_main_thread();
  if (line.empty()) return true;  // an empty Enter is not worth an error line
  const ParseResult parsed = parse_text_input(line);
  if (const auto* refusal = std::get_if<Refusal>(&parsed)) {
    print_event(error_event(to_string(refusal->code), refusal->detail));
    return true;
  }
  const Command& cmd = std::get<Command>(parsed);
  if (cmd.verb == Verb::help) {
    for (const auto& help : help_lines()) print(help);
    return true;
  }
  if (cmd.verb == Verb::quit) {
    quit(cmd.text);
    return false;
  }
  const std::string wire = format_command(cmd);
  if (wire.size() > options_.max_line) {
    print_event(error_event("too-long", "line longer than " + std::to_string(options_.max_line) +
                                            " bytes with its command, not sent"));
    return true;
  }
  // A failed send ends nothing by itself: the network thread's read reports why the
  // connection broke (a stalled send has already called lost()).
  send_line(wire);
  return !ended();
}

void ChatClient::quit(std::string_view reason) {
  assert_main_thread();
  {
    std::lock_guard lock(state_mutex_);
    state_.quitting = true;  // from now on the end of the connection is what we asked for
  }
  const std::error_code ec = send_line(format_command(Command{Verb::quit, {}, std::string(reason)}));
  if (!ec) {
    // Wait (bounded) for BYE or the close, so that the server has seen QUIT before we close:
    // closing at once could turn our QUIT into a reset on its side.
    const auto deadline = Clock::now() + options_.quit_wait;
    while (!ended()) {
      pollfd p{wakeup_.fd(), POLLIN, 0};
      if (poll_until(&p, 1, deadline) == 0) break;
      wakeup_.clear();
    }
  }
  std::lock_guard lock(state_mutex_);
  if (!state_.exit_code) state_.exit_code = exit_ok;
}

void ChatClient::stop_network() {
  if (!network_.joinable()) return;
  network_.request_stop();
  // shutdown() wakes the network thread's poll(2)/read; close() from this thread would race
  // with them (and could hit a reused descriptor). The socket is closed after the join.
  std::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  network_.join();
}

bool ChatClient::ended() {
  std::lock_guard lock(state_mutex_);
  return state_.exit_code.has_value();
}

void ChatClient::assert_main_thread() const { assert(std::this_thread::get_id() == main_thread_); }

// ---- network thread ---------------------------------------------------------------------

void ChatClient::network_main(std::stop_token stop) {
  set_thread_role("network");
  try {
    read_loop(stop);
  } catch (const std::exception& e) {
    lost("error", std::string("internal error: ") + e.what());
  } catch (...) {
    lost("error", "internal error");
  }
  // Every way out of read_loop() but a stop request has ended the session; this is a guard
  // in case one did not, so that the main thread is never left waiting.
  if (!stop.stop_requested()) lost("error", "network thread ended");
  wakeup_.signal();
}

void ChatClient::read_loop(std::stop_token stop) {
  LineFramer framer(options_.max_line);
  std::array<char, 16384> buf;
  const bool heartbeat = options_.ping_interval > Millis::zero();
  auto last_heard = Clock::now();
  // Our PING is unanswered since ping_sent_at. (Not an optional: GCC 12 reports a false
  // maybe-uninitialized on it here.)
  bool ping_sent = false;
  Clock::time_point ping_sent_at{};
  std::uint64_t next_token = 1;
  const int fd = socket_.native_handle();

  while (!stop.stop_requested()) {
    std::optional<Clock::time_point> deadline;
    if (heartbeat) deadline = ping_sent ? ping_sent_at + options_.ping_timeout : last_heard + options_.ping_interval;
    // The keepalive budget is checked here too (common/net.hpp: no_ack_for_budget says why).
    const auto budget_check = last_heard + options_.keepalive.budget();
    if (options_.keepalive.enabled && (!deadline || budget_check < *deadline)) deadline = budget_check;
    pollfd p{fd, POLLIN, 0};
    const int ready = poll_until(&p, 1, deadline);
    if (stop.stop_requested()) return;

    if (ready == 0) {  // a deadline: the keepalive budget or the heartbeat's
      if (Clock::now() - last_heard >= options_.keepalive.budget()) {
        if (auto silent = no_ack_for_budget(fd, options_.keepalive)) {
          lost("timeout", *silent);
          return;
        }
      }
      if (ping_sent) {
        const auto since_ping = Clock::now() - ping_sent_at;
        if (since_ping < options_.ping_timeout) continue;
        if (auto unacked = ping_not_acked(fd, since_ping)) {
          lost("timeout", *unacked);
          return;
        }
        lost("no-pong", "no reply to PING within " + format_duration(options_.ping_timeout));
        return;
      }
      if (!heartbeat || Clock::now() - last_heard < options_.ping_interval) continue;
      send_line("PING " + std::to_string(next_token++));
      if (ended()) return;  // the send stalled
      ping_sent = true;
      ping_sent_at = Clock::now();
      continue;
    }

    // poll said readable (data, FIN, RST or an error), so this read does not block.
    std::error_code ec;
    const std::size_t got = socket_.read_some(asio::buffer(buf), ec);
    if (ec) {
      if (stop.stop_requested()) return;  // our own shutdown()
      std::string partial;  // "BYE shutdown" without its LF still counts
      if (framer.take_partial(partial) && !handle_server_line(partial)) return;
      lost(to_string(cause_of(ec)), what_was_seen(ec));
      return;
    }
    // Any bytes prove the server alive, even the middle of a long line that is not complete
    // yet: counting only whole lines would call a slow big line a dead server.
    last_heard = Clock::now();
    ping_sent = false;

    bool go_on = true;
    framer.feed({buf.data(), got}, [&](const LineFramer::Piece& piece) {
      if (!go_on) return;
      if (piece.kind == LineFramer::Piece::Kind::too_long) {
        print_stamped("*** a line from the server was longer than " + std::to_string(options_.max_line) +
                      " bytes and was discarded");
        return;
      }
      go_on = handle_server_line(piece.text);
    });
    if (!go_on) return;
  }
}

bool ChatClient::handle_server_line(std::string_view line) {
  auto event = parse_event(line);
  if (!event) {
    print_stamped("*** unrecognised line from server: " + sanitize(line));
    return true;
  }
  *event = sanitized(std::move(*event));
  using K = Event::Kind;
  const auto count = [this]() -> std::optional<std::size_t> {
    if (!users_known_) return std::nullopt;
    return users_.size();
  };
  switch (event->kind) {
    case K::comment:  // the greeting and other remarks for people reading the raw protocol
    case K::pong:     // hearing anything already reset the heartbeat
      return true;
    case K::ping:
      send_line(format_command(Command{Verb::pong, event->arg, {}}));
      return !ended();
    case K::welcome: {
      my_nick_ = event->nick;
      print_event(*event);
      {
        std::lock_guard lock(state_mutex_);
        state_.joined = true;
      }
      wakeup_.signal();
      return true;
    }
    case K::users:
      users_.clear();
      for (const auto& u : event->users) users_[fold_nick(u)] = u;
      users_known_ = true;
      print_event(*event);
      return true;
    case K::join:
      users_[fold_nick(event->nick)] = event->nick;
      print_event(*event, count());
      return true;
    case K::leave:
      users_.erase(fold_nick(event->nick));
      print_event(*event, count());
      return true;
    case K::nick:
      if (users_.erase(fold_nick(event->nick)) > 0 || !users_known_) users_[fold_nick(event->arg)] = event->arg;
      if (fold_nick(event->nick) == fold_nick(my_nick_)) my_nick_ = event->arg;
      print_event(*event);
      return true;
    case K::error: {
      print_event(*event);
      bool joined;
      {
        std::lock_guard lock(state_mutex_);
        joined = state_.joined;
      }
      if (!joined && (event->code == to_string(ErrorCode::bad_nick) ||
                      event->code == to_string(ErrorCode::nick_in_use))) {
        refused_at_join(*event);
        return false;
      }
      return true;
    }
    case K::bye: {
      print_event(*event);
      std::string detail = event->text;
      if (detail.empty()) {
        const auto cause = leave_cause_from(event->code);
        detail = cause ? std::string(describe(*cause)) : "the server ended the session";
      }
      lost(event->code, detail);
      return false;
    }
    case K::msg:
    case K::me:
    case K::priv:
      print_event(*event);
      return true;
  }
  return true;
}

void ChatClient::refused_at_join(const Event& error) {
  {
    std::lock_guard lock(state_mutex_);
    if (state_.exit_code) return;
    state_.exit_code = exit_failure;
  }
  {
    std::lock_guard lock(out_mutex_);
    err_ << "chatclient: cannot join as " << options_.nick << ": " << error.code
         << (error.text.empty() ? "" : " ") << error.text << std::endl;
  }
  wakeup_.signal();
}

// ---- either thread ----------------------------------------------------------------------

void ChatClient::lost(std::string_view cause, std::string_view detail) {
  bool announce;
  {
    std::lock_guard lock(state_mutex_);
    if (state_.exit_code) return;  // the first to end the session tells its story
    // After our QUIT, a BYE or a close is the goodbye we asked for, not a loss.
    announce = !state_.quitting;
    state_.exit_code = announce ? exit_failure : exit_ok;
  }
  if (announce) {
    std::string text = "*** connection to server lost (" + std::string(cause);
    if (!detail.empty()) text += ": " + std::string(detail);
    print_stamped(text + ")");
  }
  wakeup_.signal();
}

std::error_code ChatClient::send_line(std::string_view line) {
  std::string wire;
  wire.reserve(line.size() + 1);
  wire.append(line).push_back('\n');

  // A server that stops reading must not hold this thread, and with it write_mutex_, forever:
  // the other thread's PING or PONG would wait behind it and the heartbeat would go blind.
  // So sends do not block in the kernel; they wait in poll(2) with the heartbeat's patience.
  const Millis patience = options_.ping_interval > Millis::zero() ? options_.ping_timeout
                          : options_.keepalive.enabled            ? options_.keepalive.budget()
                                                                  : Millis{30'000};
  const auto deadline = Clock::now() + patience;
  const int fd = socket_.native_handle();
  std::string_view rest = wire;
  std::lock_guard lock(write_mutex_);
  while (!rest.empty()) {
    // MSG_NOSIGNAL: a dead peer gives EPIPE, not SIGPIPE (main() ignores it as well).
    const ssize_t n = ::send(fd, rest.data(), rest.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      rest.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return {errno, asio::error::get_system_category()};
    pollfd p{fd, POLLOUT, 0};
    if (poll_until(&p, 1, deadline) == 0) {
      lost("timeout", "the server stopped reading (a send waited " + format_duration(patience) + ")");
      return asio::error::timed_out;
    }
  }
  return {};
}

void ChatClient::print(std::string_view line) {
  std::lock_guard lock(out_mutex_);
  // Flushed per line: a script reading our stdout through a pipe sees each event when it
  // happens, not when a buffer fills.
  out_ << line << std::endl;
}

void ChatClient::print_stamped(std::string_view text) {
  print("[" + clock_stamp(std::chrono::system_clock::now()) + "] " + std::string(text));
}

void ChatClient::print_event(const Event& event, std::optional<std::size_t> online) {
  if (auto line = render_line(event, std::chrono::system_clock::now(), online)) print(*line);
}

}  // namespace chat
