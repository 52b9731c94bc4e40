#include "server/session.hpp"

#include "common/log.hpp"
#include "common/render.hpp"
#include "common/text.hpp"
#include "server/poller.hpp"
#include "server/room.hpp"
#include "server/stats.hpp"
#include "server/writer.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <thread>

namespace chat {
namespace {

constexpr std::size_t read_chunk = 4096;

asio::ip::address peer_address(const asio::ip::tcp::socket& socket) {
  std::error_code ec;
  const auto ep = socket.remote_endpoint(ec);
  return ec ? asio::ip::address() : ep.address();
}

std::string endpoint_text(const asio::ip::tcp::socket& socket) {
  std::error_code ec;
  const auto ep = socket.remote_endpoint(ec);
  if (ec) return "?";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

bool starts_with_hello(std::string_view line) {
  if (line.size() < 5) return false;
  std::string verb(line.substr(0, 5));
  for (char& c : verb) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  return verb == "HELLO" && (line.size() == 5 || line[5] == ' ');
}

// The socket is CLOSE: an RST ended it (the reader has not closed it, and a FIN alone leaves
// it in CLOSE_WAIT).
bool reset_by_peer(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  return ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 && info.tcpi_state == TCP_CLOSE;
}

// "20", "2.5": a --max-rate for people.
std::string format_rate(double lines_per_second) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", lines_per_second);
  return buf;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string to_string(ClientId id) { return "#" + std::to_string(static_cast<std::uint64_t>(id)); }

Session::Session(ClientId id, asio::ip::tcp::socket socket, const ServerConfig& config, Room& room, ServerStats& stats)
    : fd_(socket.native_handle()),
      last_received_(Clock::now().time_since_epoch().count()),
      outbox_(room.history(), config.send_queue),
      id_(id),
      config_(config),
      room_(room),
      stats_(stats),
      socket_(std::move(socket)),
      peer_(endpoint_text(socket_)),
      address_(peer_address(socket_)),
      accepted_at_(Clock::time_point(Clock::duration(last_received_.load()))),
      framer_(config.max_line) {
  if (config.max_rate > 0) {
    flood_.emplace(config.max_rate, static_cast<double>(config.max_burst), config.flood_grace, accepted_at_);
  }
}

Session::~Session() {
  // reader_ is joined first (declared last); then socket_ closes the descriptor. The registry
  // only lets go of a finished session, so the join does not wait.
}

void Session::start() {
  reply_line("# chatserver " CHAT_VERSION ": type a nickname to join, or HELLO <nick>");
  try {
    reader_ = NamedThread("reader " + to_string(id_), small_stack, [this] { read_loop(); });
  } catch (...) {
    // Out of threads or memory: this client is told so and closed; the server goes on.
    end(LeaveCause::error, "could not start the reader thread", "server-busy");
    part_done(reader_done_);
    throw;
  }
}

std::string Session::label() const {
  std::lock_guard lock(mutex_);
  return nick_.empty() ? to_string(id_) : nick_;
}

std::string Session::nick() const {
  std::lock_guard lock(mutex_);
  return nick_;
}

void Session::set_joined(std::string nick) {
  set_nick(std::move(nick));
  joined_ = true;
}

void Session::set_nick(std::string nick) {
  std::lock_guard lock(mutex_);
  nick_ = std::move(nick);
}

std::optional<std::error_code> Session::confirm_gone(short revents) {
  if (revents == 0) return std::nullopt;
  std::lock_guard lock(mutex_);
  auto verdict = confirm_departure(fd_, revents);
  if (verdict && *verdict != asio::error::eof && !error_seen_) error_seen_ = *verdict;
  // Once the error has been read, later sweeps see only the end of the stream: the kept error
  // is still the truth.
  if (verdict && *verdict == asio::error::eof && error_seen_) verdict = error_seen_;
  return verdict;
}

std::optional<Departure> Session::departure() const {
  std::lock_guard lock(mutex_);
  return departure_;
}

std::optional<Session::Clock::time_point> Session::ended_at() const {
  std::lock_guard lock(mutex_);
  if (!departure_) return std::nullopt;
  return ended_at_;
}

void Session::end(LeaveCause cause, std::string detail, std::string_view bye) {
  // A BYE repeats the detail where it tells the client something it does not know.
  const bool bye_with_detail =
      cause == LeaveCause::shutdown || cause == LeaveCause::timeout || cause == LeaveCause::flood;
  Event bye_event{Event::Kind::bye, {}, {}, std::string(bye), bye_with_detail ? detail : std::string(), {}};
  // The detector's decision, traced after the lock is let go (stderr may be slow): the thread
  // role in the line names the detector that fired.
  std::string trace = tracing() ? std::string(to_string(cause)) + " (" + detail + ")" : std::string();
  std::optional<LeaveCause> earlier;
  std::string who;
  {
    std::lock_guard lock(mutex_);
    if (departure_) earlier = departure_->cause;  // someone else noticed first; their cause stands
    if (!trace.empty()) who = nick_.empty() ? to_string(id_) : nick_;
    if (!earlier) {
      departure_ = Departure{cause, std::move(detail)};
      ended_at_ = Clock::now();
    }
  }
  if (earlier) {
    if (!trace.empty()) log_trace("ends ", who, ": ", trace, ", but it had already ended ", to_string(*earlier));
    return;
  }
  ended_ = true;
  if (!trace.empty()) log_trace("ends ", who, ": ", trace);  // before the reader is woken below
  if (!bye.empty()) {
    // Polite ending: the writer sends what is due (the room events caused before now), then
    // the BYE, then a FIN. Only the read side is shut down here, which wakes a reader blocked
    // in recv(2).
    Outbox::Item last;
    last.after = room_.history().head();
    if (mode() == Mode::text) {
      last.line = render_line(bye_event, std::chrono::system_clock::now()).value_or("");
    } else {
      last.line = format_event(bye_event);
    }
    last.line += '\n';
    outbox_.close_with(std::move(last));
    ::shutdown(fd_, SHUT_RD);
    wake_writer();
  } else {
    force_close();
  }
}

void Session::force_close() {
  outbox_.abort();
  // Wakes the reader in recv(2); the writer lets go of the session when it sees the abort.
  // Unlike close(2), shutdown(2) leaves the descriptor valid, so no other thread can find it
  // reused.
  ::shutdown(fd_, SHUT_RDWR);
  wake_writer();
}

void Session::part_done(std::atomic<bool>& flag) {
  flag = true;
  // The second of the two (reader, writer) to finish tells the poller there is one to reap.
  if (done_parts_.fetch_add(1) == 1) ++stats_.unreaped;
}

void Session::writer_released() { part_done(writer_done_); }

void Session::wake_writer() {
  if (writer_ != nullptr) writer_->wake(*this);
}

void Session::send_item(Outbox::Item item, std::string_view via) {
  if (queue_item(std::move(item), via)) wake_writer();
}

bool Session::queue_item(Outbox::Item item, std::string_view via) {
  if (outbox_.push(std::move(item)) == Outbox::Push::full) {
    end(LeaveCause::too_slow, "send queue over " + std::to_string(outbox_.limit()) + " bytes (" + std::string(via) + ")");
    return false;
  }
  return true;
}

void Session::send_own(std::string line, std::uint64_t after, std::string_view via) {
  Outbox::Item item;
  item.after = after;
  item.line = std::move(line);
  item.line += '\n';
  send_item(std::move(item), via);
}

void Session::reply_line(std::string line) { send_own(std::move(line), room_.history().head(), "reply"); }

void Session::reply(const Event& event) {
  if (mode() == Mode::text) {
    if (auto line = render_line(event, std::chrono::system_clock::now())) reply_line(std::move(*line));
  } else {
    reply_line(format_event(event));
  }
}

void Session::reply_text(std::string_view line) { reply_line(std::string(line)); }

void Session::refuse(const Refusal& refusal) {
  reply(Event{Event::Kind::error, {}, {}, std::string(to_string(refusal.code)), refusal.detail, {}});
}

void Session::queue_ping(const std::string& token) {
  Outbox::Item item;
  item.after = room_.history().head();
  item.line = format_event(Event{Event::Kind::ping, {}, token, {}, {}, {}});
  item.line += '\n';
  queue_item(std::move(item), "reply");
}

Session::Clock::time_point Session::last_received() const {
  return Clock::time_point(Clock::duration(last_received_.load()));
}

std::optional<Session::Clock::time_point> Session::write_stalled_since() const {
  const auto rep = write_stalled_.load();
  if (rep == 0) return std::nullopt;
  return Clock::time_point(Clock::duration(rep));
}

void Session::writer_failed(std::error_code error) {
  {
    std::lock_guard lock(mutex_);
    if (!error_seen_) error_seen_ = error;
  }
  end(cause_of(error), what_was_seen(error) + " (writer, " + time_since_traffic() + ")");
}

void Session::set_write_stalled(std::optional<Clock::time_point> since) {
  write_stalled_ = since ? since->time_since_epoch().count() : 0;
}

std::string Session::time_since_traffic() const {
  return format_duration(Clock::now() - last_received()) + " after last traffic";
}

// ---- reader thread --------------------------------------------------------------------------

void Session::apply_backpressure() {
  // A client far behind on its own output (its echoes, the room's traffic) is not read from
  // until it has caught up: its lines wait in its own socket, TCP's flow control slows its
  // sender, and it is never dropped as too-slow for sending faster than it reads. Half the
  // limit stops the reading, a quarter resumes it.
  const std::uint64_t limit = outbox_.limit();
  if (outbox_.backlog() <= limit / 2) return;
  reader_paused_ = true;
  ++stats_.pauses;
  ++stats_.paused_now;
  log_debug("stopped reading: ", outbox_.backlog(), " bytes behind");
  outbox_.wait_below(limit / 4, [this] { return ended(); });
  --stats_.paused_now;
  reader_paused_ = false;
}

bool Session::apply_flood_control() {
  if (!flood_) return true;
  const bool was_slowed = flood_->slowed_since().has_value();
  const auto verdict = flood_->take(Clock::now());
  if (verdict.flood) {
    end(LeaveCause::flood,
        "over " + format_rate(config_.max_rate) + " lines/s for " + format_duration(config_.flood_grace) +
            " (burst " + std::to_string(config_.max_burst) + ")",
        "flood");
    return false;
  }
  if (verdict.wait == Clock::duration::zero()) return true;
  if (!was_slowed) ++stats_.throttles;
  if (tracing()) {
    const auto slowed = flood_->slowed_since() ? Clock::now() - *flood_->slowed_since() : Clock::duration::zero();
    log_trace("flood control: over ", format_rate(config_.max_rate), " lines/s (burst ", config_.max_burst,
              "): this line waits ", format_duration(verdict.wait), "; slowed for ", format_duration(slowed), " of ",
              format_duration(config_.flood_grace), " grace");
  }
  // Over the limit: this line waits for its token, and the client's next bytes wait in its own
  // socket meanwhile (nobody else waits). In slices, so that an ending session is not held up.
  reader_throttled_ = true;
  ++stats_.throttled_now;
  const auto until = Clock::now() + verdict.wait;
  for (auto now = Clock::now(); now < until && !ended(); now = Clock::now()) {
    std::this_thread::sleep_for(std::min<Clock::duration>(until - now, std::chrono::milliseconds(50)));
  }
  --stats_.throttled_now;
  reader_throttled_ = false;
  return !ended();
}

void Session::read_loop() {
  set_thread_role("reader " + to_string(id_));
  try {
    std::array<char, read_chunk> buffer;
    while (!ended()) {
      if (joined()) apply_backpressure();
      if (ended()) break;
      std::error_code ec;
      const std::size_t n = socket_.read_some(asio::buffer(buffer), ec);
      if (ec) {
        if (ec == asio::error::eof) {
          // The poller or a writer may have read the real error first (a reset), and the
          // recv() sees only the end of the stream: theirs is the truth. A writer's sendmsg
          // takes the error before it can say so: if the socket is CLOSE (an RST came) and no
          // one has said anything yet, the writer gets a few milliseconds to.
          for (int wait = 0;; ++wait) {
            {
              std::lock_guard lock(mutex_);
              if (error_seen_) ec = error_seen_;
            }
            if (ec != asio::error::eof || wait == 10 || !reset_by_peer(fd_)) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
          }
          if (tracing()) {
            log_trace(ec != asio::error::eof ? "recv: 0 bytes, end of stream; another thread had already read the "
                                               "socket's error: " + ec.message()
                      : ended() ? std::string("recv: 0 bytes: another thread ended the session and shut the socket down")
                                : std::string("recv: 0 bytes, end of stream (the peer sent FIN)"));
          }
          // After a FIN, an unfinished last line is still the client's last word; after a reset,
          // nothing is (docs/protocol.md).
          std::string last;
          if (ec == asio::error::eof && !ended() && framer_.take_partial(last)) handle_line(last);
        } else if (tracing()) {
          log_trace("recv: error ", ec.message(), " (errno ", ec.value(), ")");
        }
        end(cause_of(ec), what_was_seen(ec) + " (reader, " + time_since_traffic() + ")");
        break;
      }
      last_received_ = Clock::now().time_since_epoch().count();
      if (tracing()) log_trace("recv: ", n, " bytes");
      framer_.feed(std::string_view(buffer.data(), n), [this](const LineFramer::Piece& piece) {
        if (ended() || !apply_flood_control()) return;
        if (piece.kind == LineFramer::Piece::Kind::too_long) {
          refuse({ErrorCode::too_long, "lines are at most " + std::to_string(config_.max_line) + " bytes"});
        } else {
          handle_line(piece.text);
        }
      });
    }
  } catch (const std::bad_alloc&) {
    // Out of memory while serving this client: it is told so and closed; the server goes on.
    log_error("reader failed: out of memory");
    ++stats_.refused_busy;
    end(LeaveCause::error, "server out of memory", "server-busy");
  } catch (const std::system_error& e) {
    log_error("reader failed: ", e.what());
    ++stats_.refused_busy;
    end(LeaveCause::error, std::string("server error: ") + e.what(), "server-busy");
  } catch (const std::exception& e) {
    log_error("reader failed: ", e.what());
    end(LeaveCause::error, std::string("server error: ") + e.what());
  }
  // The one place a member's LEAVE is broadcast, whoever ended the session.
  try {
    room_.leave(*this);
  } catch (const std::exception& e) {
    log_error("leave failed: ", e.what());
  }
  if (auto d = departure()) {
    log_info("disconnected: ", to_string(d->cause), " (", d->detail, ")");
  }
  part_done(reader_done_);
}

void Session::handle_line(std::string_view line) {
  if (!joined()) {
    handle_handshake(line);
    return;
  }
  // A blank line in text mode is someone pressing Enter: nothing to say, nothing to refuse.
  if (mode() == Mode::text && trim(line).empty()) return;
  const auto parsed = mode() == Mode::text ? parse_text_input(line) : parse_protocol_line(line);
  if (const auto* refusal = std::get_if<Refusal>(&parsed)) {
    refuse(*refusal);
    return;
  }
  handle_command(std::get<Command>(parsed));
}

void Session::handle_handshake(std::string_view line) {
  if (mode() == Mode::undecided) {
    if (trim(line).empty()) return;  // telnet and friends may send an empty line first
    mode_ = starts_with_hello(line) ? Mode::protocol : Mode::text;
    outbox_.set_mode(mode() == Mode::text ? StreamMode::text : StreamMode::protocol);
    log_debug("chose ", mode() == Mode::text ? "text" : "protocol", " mode");
  }
  if (mode() == Mode::protocol) {
    const auto parsed = parse_protocol_line(line);
    if (const auto* refusal = std::get_if<Refusal>(&parsed)) {
      refuse(*refusal);
      return;
    }
    const auto& cmd = std::get<Command>(parsed);
    switch (cmd.verb) {
      case Verb::hello: join(cmd.arg); return;
      case Verb::ping: reply(Event{Event::Kind::pong, {}, cmd.arg, {}, {}, {}}); return;
      case Verb::pong: return;
      case Verb::quit: end(LeaveCause::quit, cmd.text, "quit"); return;
      case Verb::help: for (const auto& h : help_lines()) reply(Event{Event::Kind::comment, {}, {}, {}, h, {}}); return;
      case Verb::stats: reply_line(room_.stats_line()); return;
      default: refuse({ErrorCode::not_joined, "send HELLO <nick> first"}); return;
    }
  }
  // Text mode: a line is a nickname, unless it is a command.
  const auto text = trim(line);
  if (text.empty()) return;
  if (text.front() == '/') {
    const auto parsed = parse_text_input(text);
    if (const auto* cmd = std::get_if<Command>(&parsed)) {
      if (cmd->verb == Verb::quit) return end(LeaveCause::quit, cmd->text, "quit");
      if (cmd->verb == Verb::help) {
        for (const auto& h : help_lines()) reply_text(h);
        return;
      }
    } else if (const auto* refusal = std::get_if<Refusal>(&parsed);
               refusal->code == ErrorCode::bad_utf8 || refusal->code == ErrorCode::bad_char) {
      refuse(*refusal);  // the text rules first, as for every other line
      return;
    }
    refuse({ErrorCode::not_joined, "type a nickname first"});
    return;
  }
  const auto parsed = parse_protocol_line("HELLO " + std::string(text));
  if (const auto* refusal = std::get_if<Refusal>(&parsed)) {
    refuse(*refusal);
    reply_text("# type a nickname to join (1-24 characters: A-Z a-z 0-9 _ ! -)");
    return;
  }
  join(std::get<Command>(parsed).arg);
}

void Session::join(std::string_view nick) {
  switch (room_.join(shared_from_this(), std::string(nick))) {
    case Room::JoinResult::joined:
      set_thread_role("reader " + std::string(nick));
      log_info("joined from ", peer_, " as ", to_string(id_), " (", mode() == Mode::text ? "text" : "protocol",
               " mode)");
      return;
    case Room::JoinResult::nick_in_use:
      refuse({ErrorCode::nick_in_use, std::string(nick)});
      if (mode() == Mode::text) reply_text("# that nickname is taken; type another one");
      return;
    case Room::JoinResult::closed:
      return;  // the server is shutting down; BYE is on its way
  }
}

void Session::handle_command(const Command& cmd) {
  switch (cmd.verb) {
    case Verb::hello:
      refuse({ErrorCode::bad_args, "already joined as " + nick() + "; use NICK to change nickname"});
      return;
    case Verb::say: room_.say(*this, cmd.text); return;
    case Verb::me: room_.me(*this, cmd.text); return;
    case Verb::priv:
      if (!room_.priv(*this, cmd.arg, cmd.text)) refuse({ErrorCode::no_such_nick, cmd.arg});
      return;
    case Verb::nick: {
      const auto old = nick();
      switch (room_.rename(*this, cmd.arg)) {
        case Room::RenameResult::renamed:
          set_thread_role("reader " + cmd.arg);
          log_info("renamed from ", old);
          return;
        case Room::RenameResult::unchanged: return;
        case Room::RenameResult::nick_in_use: refuse({ErrorCode::nick_in_use, cmd.arg}); return;
      }
      return;
    }
    case Verb::who: room_.who(*this); return;
    case Verb::stats:
      // Protocol mode only: the counters are for programs (chatbench), not a person on nc.
      if (mode() == Mode::protocol) {
        reply_line(room_.stats_line());
      } else {
        refuse({ErrorCode::unknown_command, "STATS"});
      }
      return;
    case Verb::ping: reply(Event{Event::Kind::pong, {}, cmd.arg, {}, {}, {}}); return;
    case Verb::pong: return;  // the reader already counted the line as a sign of life
    case Verb::quit: end(LeaveCause::quit, cmd.text, "quit"); return;
    case Verb::help:
      for (const auto& h : help_lines()) {
        if (mode() == Mode::text) {
          reply_text(h);
        } else {
          reply(Event{Event::Kind::comment, {}, {}, {}, h, {}});
        }
      }
      return;
  }
}

}  // namespace chat
