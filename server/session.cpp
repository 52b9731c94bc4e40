#include "server/session.hpp"

#include "common/log.hpp"
#include "common/http.hpp"
#include "common/render.hpp"
#include "common/text.hpp"
#include "common/tls.hpp"
#include "server/poller.hpp"
#include "server/room.hpp"
#include "server/stats.hpp"
#include "server/web.hpp"
#include "server/writer.hpp"

#include <netinet/in.h>
#include <poll.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
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

}  // namespace

bool Session::wait_readable(std::chrono::milliseconds timeout) {
  if (!plain_.empty()) return true;  // TLS: decrypted with the handshake's last bytes
  pollfd p{fd_, POLLIN | POLLRDHUP, 0};
  int r;
  do {
    r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  } while (r < 0 && errno == EINTR);
  return r != 0;  // an error: let the read find out
}

std::string to_string(ClientId id) { return "#" + std::to_string(static_cast<std::uint64_t>(id)); }

Session::Session(ClientId id, asio::ip::tcp::socket socket, const ServerConfig& config, Room& room, ServerStats& stats,
                 WebSite* web, TlsServer* tls)
    : fd_(socket.native_handle()),
      last_received_(Clock::now().time_since_epoch().count()),
      outbox_(room.history(), config.send_queue, lines_),
      lines_(config.max_line),
      id_(id),
      config_(config),
      room_(room),
      stats_(stats),
      socket_(std::move(socket)),
      peer_(endpoint_text(socket_)),
      address_(peer_address(socket_)),
      accepted_at_(Clock::time_point(Clock::duration(last_received_.load()))),
      commands_(*this, room),
      tls_server_(tls) {
  if (web != nullptr) door_.emplace(*this, *web);
  if (config.max_rate > 0) {
    flood_.emplace(config.max_rate, static_cast<double>(config.max_burst), config.flood_grace, accepted_at_);
  }
}

Session::~Session() {
  // reader_ is joined first (declared last); then socket_ closes the descriptor. The registry
  // only lets go of a finished session, so the join does not wait.
}

void Session::start() {
  // The door (--web) or the TLS door (--tls-cert) greets once it knows who came.
  if (!door_ && tls_server_ == nullptr) greet();
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
  if (bye.empty()) {
    if (decide(cause, std::move(detail))) force_close();
    return;
  }
  // A BYE repeats the detail where it tells the client something it does not know.
  const bool bye_with_detail =
      cause == LeaveCause::shutdown || cause == LeaveCause::timeout || cause == LeaveCause::flood ||
      cause == LeaveCause::kicked || cause == LeaveCause::banned;
  const Event bye_event{Event::Kind::bye, {}, {}, std::string(bye), bye_with_detail ? detail : std::string(), {}};
  // nc stays open after the server's FIN until its user stops it: the words say how (not to
  // a WebSocket, whose page closes by itself).
  const bool on_terminal = outbox_.framing().passthrough();
  const auto line = mode() == Mode::text ? render_line(bye_event, std::chrono::system_clock::now()).value_or("") +
                                               (on_terminal ? "; press Ctrl-C" : "")
                                         : format_event(bye_event);
  if (decide(cause, std::move(detail))) close_politely(outbox_.framing().goodbye(line, bye));
}

void Session::end_with(LeaveCause cause, std::string detail, std::string last_bytes) {
  if (decide(cause, std::move(detail))) close_politely(std::move(last_bytes));
}

bool Session::decide(LeaveCause cause, std::string detail) {
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
    return false;
  }
  ended_ = true;
  if (!trace.empty()) log_trace("ends ", who, ": ", trace);  // before the reader is woken
  return true;
}

void Session::close_politely(std::string last_bytes) {
  // The writer sends what is due (the room events caused before now), then `last_bytes`, then
  // a FIN. Only the read side is shut down here, which wakes a reader blocked in recv(2).
  Outbox::Item last;
  last.after = room_.history().head();
  last.line = std::move(last_bytes);
  outbox_.close_with(std::move(last));
  ::shutdown(fd_, SHUT_RD);
  wake_writer();
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

std::string Session::greeting() { return "# chatserver " CHAT_VERSION ": type a nickname to join, or HELLO <nick>"; }

void Session::send_raw(std::string bytes) {
  Outbox::Item item;
  item.kind = Outbox::Item::Kind::raw;
  item.after = room_.history().head();
  item.line = std::move(bytes);
  send_item(std::move(item), "reply");
}

void Session::upgrade(std::unique_ptr<Framing> framing) {
  upgrades_.push_back(std::move(framing));
  outbox_.set_framing(*upgrades_.back());
}

void Session::choose_mode(Mode mode) {
  mode_ = mode;
  outbox_.set_mode(mode == Mode::text ? StreamMode::text : StreamMode::protocol);
  log_debug("chose ", mode == Mode::text ? "text" : "protocol", " mode");
}

void Session::use_ids(bool on) {
  ids_ = on;
  outbox_.set_mode(on ? StreamMode::tagged : mode() == Mode::text ? StreamMode::text : StreamMode::protocol);
}

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

// What the reader's framing reports, acted on: lines go to Commands, one at a time and after
// flood control; the framing's own ending (a WebSocket close frame) ends the session.
class Session::Reading final : public Framing::Sink {
 public:
  explicit Reading(Session& session) : s_(session) {}
  void line(std::string_view text) override {
    if (s_.ended() || !s_.apply_flood_control()) return;
    s_.commands_.handle_line(text);
  }
  void too_long() override {
    if (s_.ended() || !s_.apply_flood_control()) return;
    s_.refuse({ErrorCode::too_long, "lines are at most " + std::to_string(s_.config_.max_line) + " bytes"});
  }
  void control(std::string bytes) override {
    if (!s_.ended()) s_.send_raw(std::move(bytes));
  }
  void finish(LeaveCause cause, std::string detail, std::string last_bytes) override {
    if (tracing()) log_trace(s_.framing_name(), ": ", detail);
    s_.end_with(cause, std::move(detail) + " (reader, " + s_.time_since_traffic() + ")", std::move(last_bytes));
  }

 private:
  Session& s_;
};

void Session::receive(std::string_view bytes) {
  if (door_ && !door_->open()) {
    door_->feed(bytes);  // it calls receive() again with what follows, once the door is open
    return;
  }
  Reading sink(*this);
  reading_framing().feed(bytes, sink);
}

void Session::greet() { reply_line(greeting()); }

bool Session::tls_door() {
  // A TLS client speaks first (its ClientHello, 0x16); a person on nc waits to be greeted. With
  // --tls-only nobody is greeted in clear text, so a ClientHello held up on its way (a lost
  // segment is sent again after 200 ms or more) gets two seconds before the refusal.
  if (wait_readable(config_.tls_only ? std::chrono::milliseconds(2000) : WebDoor::first_bytes_wait)) {
    char first[3];
    ssize_t n;
    do {
      n = ::recv(fd_, first, sizeof first, MSG_PEEK);
    } while (n < 0 && errno == EINTR);
    if (n > 0 && tls::looks_like_client_hello(std::string_view(first, static_cast<std::size_t>(n)))) {
      return tls_handshake();
    }
  }
  if (!config_.tls_only) return true;
  refuse_clear_text();
  return false;
}

bool Session::tls_handshake() {
  tls_ = std::make_unique<TlsTransport>(tls_server_->context(), fd_);
  outbox_.set_transport(*tls_);  // before anything is written: the writer waits for the handshake
  tls_on_ = true;
  std::array<char, read_chunk> buffer;
  while (!ended()) {
    std::error_code ec;
    const std::size_t n = socket_.read_some(asio::buffer(buffer), ec);
    if (ec) {
      // A FIN the server's own shutdown(2) made (the handshake timeout) is no finding.
      if (!(ec == asio::error::eof && ended())) {
        end(cause_of(ec), what_was_seen(ec) + " during the TLS handshake (reader, " + time_since_traffic() + ")");
      }
      return false;
    }
    last_received_ = Clock::now().time_since_epoch().count();
    // Traced as every other recv: the handshake's last bytes may carry the client's first line.
    if (tracing()) log_trace("recv: ", n, " bytes (TLS handshake)");
    bool output_left = false;
    const auto read = tls_->receive(std::string_view(buffer.data(), n), plain_, output_left, [this] { return ended(); });
    switch (read) {
      case TlsTransport::Read::ok:
        break;
      case TlsTransport::Read::closed:
        if (tls_->established()) {
          // Lines may have come with the handshake's end and the close_notify (a bot that
          // connects, says its piece and closes): they are read first, then the close.
          tls_peer_closed_ = true;
          return true;
        }
        end(LeaveCause::closed, "close_notify during the TLS handshake (reader)");
        return false;
      case TlsTransport::Read::failed:
        ++stats_.tls_failed;
        // A browser that does not trust the certificate ends here, with an alert that says so
        // ("tlsv1 alert unknown ca"): worth the info log. Scanners' old protocols and odd
        // hellos are many, and debug.
        if (const auto why = tls_->error(); why.find("alert") != std::string::npos) {
          log_info("TLS handshake failed, from ", peer(), ": ", why);
        } else {
          log_debug("TLS handshake failed, from ", peer(), ": ", why);
        }
        end(LeaveCause::error, "TLS handshake failed: " + tls_->error() + " (reader)");
        return false;
      case TlsTransport::Read::send_failed: {
        const std::error_code error(tls_->send_error(), asio::error::get_system_category());
        end(cause_of(error), what_was_seen(error) + " during the TLS handshake (reader)");
        return false;
      }
    }
    if (tls_->established()) {
      ++stats_.tls_clients;
      release_unused_stack();  // the handshake's crypto went deep; reading lines never does
      tls::release_thread_state();
      // A trace line with --trace (chatlab's timeline shows trace lines, not debug ones).
      if (tracing()) {
        log_trace("TLS handshake done: ", tls_->describe());
      } else {
        log_debug("TLS handshake done: ", tls_->describe());
      }
      if (output_left) wake_writer();  // a TLS 1.3 session ticket
      return true;
    }
  }
  return false;
}

void Session::refuse_clear_text() {
  ++stats_.refused_clear_text;
  // The bytes the client sent are read first: a socket closed with unread bytes sends an RST,
  // which could cost the client the line below. A few KiB at most, and not waited for.
  char head[4096];
  ssize_t n;
  do {
    n = ::recv(fd_, head, sizeof head, MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  const std::string sent(head, n > 0 ? static_cast<std::size_t>(n) : 0);  // kept: `head` is reused below
  for (int k = 0; k < 16 && n > 0; ++k) n = ::recv(fd_, head, sizeof head, MSG_DONTWAIT);
  std::error_code ec;
  const auto local = socket_.local_endpoint(ec);
  const std::string host = ec ? std::string("HOST") : local.address().to_string();
  const std::string port = ec ? std::string("PORT") : std::to_string(local.port());
  // A browser on http:// is sent to https:// (at the host it asked for).
  if (http::sniff(sent) == http::Sniff::http) {
    // The Host header (any case), if it is a host and port and nothing else.
    std::string lower = sent;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string where = (!ec && local.address().is_v6() ? "[" + host + "]" : host) + ":" + port;
    if (const auto at = lower.find("\r\nhost:"); at != std::string::npos) {
      auto from = sent.find_first_not_of(" \t", at + 7);
      const auto to = sent.find("\r\n", at + 7);
      if (from != std::string::npos && to != std::string::npos && from < to) {
        std::string asked = sent.substr(from, to - from);
        while (!asked.empty() && (asked.back() == ' ' || asked.back() == '\t')) asked.pop_back();
        const bool plain = !asked.empty() && asked.size() < 256 && std::all_of(asked.begin(), asked.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '-' || c == ':' || c == '[' ||
                 c == ']';
        });
        if (plain) where = asked;
      }
    }
    end_with(LeaveCause::error, "http:// on a --tls-only server: sent to https://",
             "HTTP/1.1 301 Moved Permanently\r\nLocation: https://" + where +
                 "/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return;
  }
  end_with(LeaveCause::error, "clear text on a --tls-only server",
           "BYE tls-required connect with chatclient --tls --host " + host + " --port " + port +
               ", or openssl s_client -quiet -connect " + host + ":" + port + "\n");
}

void Session::tls_closed() {
  // TLS's own end of the stream: a client that said goodbye this way is not cut off, and an
  // unfinished last line is its last word, as after a FIN in clear text.
  if (ended()) return;
  if (tracing()) log_trace("TLS: close_notify");
  std::string last;
  if (reading_framing().take_partial(last)) Reading(*this).line(last);
  // Answered in kind (RFC 8446 6.1): what is due goes out, then our close_notify and a FIN,
  // within --goodbye-timeout like any polite end.
  end_with(LeaveCause::closed, "close_notify (reader, " + time_since_traffic() + ")", std::string());
}

bool Session::decrypt(std::string_view cipher) {
  bool output_left = false;
  const auto read = tls_->receive(cipher, plain_, output_left, [this] { return ended(); });
  if (output_left) wake_writer();  // what the engine has to say (a key update's answer)
  if (!plain_.empty()) {
    receive(plain_);  // what came before a close_notify or bad record too, in order
    plain_.clear();
  }
  switch (read) {
    case TlsTransport::Read::ok:
      return !ended();
    case TlsTransport::Read::closed:
      tls_closed();
      return false;
    case TlsTransport::Read::failed:
      end(LeaveCause::error, "bad TLS data: " + tls_->error() + " (reader)");
      return false;
    case TlsTransport::Read::send_failed:
      break;  // only during the handshake
  }
  return !ended();
}

void Session::read_loop() {
  set_thread_role("reader " + to_string(id_));
  try {
    std::array<char, read_chunk> buffer;
    // --tls-cert: a ClientHello first is TLS, and its handshake is run now.
    const bool open = tls_server_ == nullptr || tls_door();
    // --web: an HTTP client speaks first, a person on nc waits for the greeting (web.hpp).
    if (open && door_) {
      door_->await_first_bytes(tls_server_ != nullptr && !tls() ? WebDoor::first_bytes_wait : Millis{0});
    } else if (open && tls_server_ != nullptr) {
      greet();
    }
    while (open && !ended()) {
      if (joined()) apply_backpressure();
      if (ended()) break;
      if (!plain_.empty()) {
        // Decrypted with the handshake's last bytes (a browser's request may come with them).
        receive(plain_);
        plain_.clear();
        continue;
      }
      if (tls_peer_closed_) {  // ... and a close_notify after them
        tls_closed();
        break;
      }
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
          // nothing is (docs/protocol.md). Nor after a FIN without TLS's close_notify: the line
          // may have been cut short by whoever sent that FIN.
          std::string last;
          if (ec == asio::error::eof && !ended() && !tls() && reading_framing().take_partial(last)) {
            Reading(*this).line(last);
          }
        } else if (tracing()) {
          log_trace("recv: error ", ec.message(), " (errno ", ec.value(), ")");
        }
        // The end of stream the server's own shutdown(2) made (another thread decided) is no
        // finding of the reader's: it would only read as "closed by peer" where no peer closed.
        if (ec == asio::error::eof && ended()) break;
        const bool cut = tls() && ec == asio::error::eof;  // TLS: a FIN before any close_notify
        end(cause_of(ec), what_was_seen(ec) + (cut ? " without close_notify" : "") + " (reader, " +
                              time_since_traffic() + ")");
        break;
      }
      last_received_ = Clock::now().time_since_epoch().count();
      if (tracing()) log_trace("recv: ", n, " bytes");
      if (tls()) {
        if (!decrypt(std::string_view(buffer.data(), n))) break;
      } else {
        receive(std::string_view(buffer.data(), n));
      }
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
    if (joined()) {
      log_info("disconnected: ", to_string(d->cause), " (", d->detail, ")");
    } else if (mode() == Mode::undecided) {
      // Never said a line: a health check (HAProxy's, every 2 s per chatserver, reads the
      // greeting and closes), a port scan, a browser's spare connection. Only at debug.
      log_debug("closed before saying anything, from ", peer(), ": ", to_string(d->cause), " (", d->detail, ")");
    } else {
      log_info("disconnected before joining, from ", peer(), ": ", to_string(d->cause), " (", d->detail, ")");
    }
  }
  part_done(reader_done_);
}

}  // namespace chat
