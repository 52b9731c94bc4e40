#include "bench/swarm.hpp"

#include "common/websocket.hpp"

#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <limits>
#include <random>
#include <stdexcept>
#include <system_error>

namespace chat::bench {
namespace {

constexpr std::size_t scratch_size = 256 * 1024;
constexpr std::size_t reads_per_event = 4;  // then the other connections get their turn
constexpr int max_events = 1024;
constexpr std::size_t max_response_head = 16 * 1024;  // a web client's 101 and its fields
// Connections that complete are served at least this often while the other events of a round
// are handled (swarm.hpp: why the first bytes must not wait).
constexpr int connects_every = 16;
constexpr std::uint64_t connect_set_token = UINT64_MAX;  // the connect set's event in the main set

[[noreturn]] void throw_errno(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

// Raises the soft RLIMIT_NOFILE so that `needed` more descriptors fit. False if they cannot.
bool fit_descriptors(std::size_t needed) {
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) != 0) return false;
  if (files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
    getrlimit(RLIMIT_NOFILE, &files);
  }
  return files.rlim_cur == RLIM_INFINITY || files.rlim_cur >= needed + 64;
}

std::string base64(const unsigned char* data, std::size_t size) {
  static constexpr char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < size; i += 3) {
    const std::uint32_t b0 = data[i];
    const std::uint32_t b1 = i + 1 < size ? data[i + 1] : 0;
    const std::uint32_t b2 = i + 2 < size ? data[i + 2] : 0;
    const std::uint32_t v = b0 << 16 | b1 << 8 | b2;
    out.push_back(digits[v >> 18 & 63]);
    out.push_back(digits[v >> 12 & 63]);
    out.push_back(i + 1 < size ? digits[v >> 6 & 63] : '=');
    out.push_back(i + 2 < size ? digits[v & 63] : '=');
  }
  return out;
}

// Where the response head ends (just past its empty line, CRLF CRLF or LF LF), or npos.
std::size_t head_end(std::string_view head) {
  for (auto lf = head.find('\n'); lf != std::string_view::npos; lf = head.find('\n', lf + 1)) {
    if (lf + 1 < head.size() && head[lf + 1] == '\n') return lf + 2;
    if (lf + 2 < head.size() && head[lf + 1] == '\r' && head[lf + 2] == '\n') return lf + 3;
  }
  return std::string_view::npos;
}

}  // namespace

bool is_web_client(std::size_t id, double web_share) {
  if (web_share <= 0) return false;
  if (web_share >= 1) return true;
  return std::floor(static_cast<double>(id + 1) * web_share) > std::floor(static_cast<double>(id) * web_share);
}

struct Swarm::Web {
  explicit Web(std::size_t max_message)
      // No UTF-8 check: the checker compares every payload byte with what was sent, and the
      // check would be the generator's cost, not the server's.
      : reader(ws::MessageReader::Options{ws::MessageReader::Role::client, max_message, true, false}) {}
  std::string key;           // Sec-WebSocket-Key, base64 of 16 random bytes
  std::string head;          // the response head so far, until the 101
  bool upgraded = false;     // the 101 came and was right: frames from now on
  ws::MessageReader reader;  // the server's frames
};

Swarm::Swarm(SwarmOptions options)
    : options_(std::move(options)), dialect_(dialect_for(options_.protocol)), scratch_(options_.max_frame + scratch_size) {
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address_);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address_);
  if (::inet_pton(AF_INET, options_.host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(options_.port);
    address_size_ = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, options_.host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(options_.port);
    address_size_ = sizeof(sockaddr_in6);
  } else {
    throw std::runtime_error("--host " + options_.host + ": not a numeric IPv4 or IPv6 address");
  }
  if (options_.web_share > 0 && options_.protocol != Protocol::chat) {
    throw std::runtime_error("web clients speak chatserver's protocol only (--protocol " +
                             std::string(to_string(options_.protocol)) + ")");
  }
  if (options_.tls && options_.protocol != Protocol::chat) {
    throw std::runtime_error("TLS clients speak chatserver's protocol only (--protocol " +
                             std::string(to_string(options_.protocol)) + ")");
  }
  std::random_device seed;
  prng_ = (static_cast<std::uint64_t>(seed()) << 32 | seed()) | 1;  // xorshift must not start at 0
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw_errno("epoll_create1");
  connect_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (connect_fd_ < 0) throw_errno("epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = connect_set_token;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, connect_fd_, &ev) != 0) throw_errno("epoll_ctl");
}

Swarm::~Swarm() {
  for (auto& c : clients_) {
    if (c.fd >= 0) ::close(c.fd);
  }
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (connect_fd_ >= 0) ::close(connect_fd_);
}

void Swarm::add_clients(std::size_t n) {
  std::vector<std::size_t> ids(n);
  for (std::size_t k = 0; k < n; ++k) ids[k] = clients_.size() + k;
  add_clients(ids);
}

void Swarm::add_clients(const std::vector<std::size_t>& ids) {
  if (!fit_descriptors(ids.size() + clients_.size())) {
    throw std::runtime_error("cannot open " + std::to_string(clients_.size() + ids.size()) +
                             " connections: RLIMIT_NOFILE is too low (raise the hard limit, e.g. ulimit -Hn)");
  }
  const std::size_t first = clients_.size();
  clients_.resize(clients_.size() + ids.size());
  for (std::size_t k = 0; k < ids.size(); ++k) {
    ids_.push_back(ids[k]);
    nicks_.push_back(options_.nick_prefix + std::to_string(ids[k]));
    clients_[first + k].web = is_web_client(ids[k], options_.web_share);
    if (clients_[first + k].web) ++web_count_;
  }
}

std::array<std::uint8_t, 4> Swarm::next_mask() {
  prng_ ^= prng_ << 13;
  prng_ ^= prng_ >> 7;
  prng_ ^= prng_ << 17;
  const auto v = static_cast<std::uint32_t>(prng_ >> 16);
  return {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8), static_cast<std::uint8_t>(v >> 16),
          static_cast<std::uint8_t>(v >> 24)};
}

double Swarm::cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

void Swarm::start_connects() {
  std::size_t started = 0;
  while (next_to_start_ < clients_.size() &&
         (options_.max_in_progress == 0 || connecting_ < options_.max_in_progress)) {
    // The connections that completed meanwhile get their first bytes now (a TLS client's
    // ClientHello costs a key share: hundreds of them would hold the first ones back).
    if (options_.tls && ++started % connects_every == 0) serve_connects();
    const std::size_t i = next_to_start_++;
    Client& c = clients_[i];
    c.started = Clock::now();
    if (options_.tls) {
      // The ClientHello is made before the connect, so that it leaves with the first ACK as a
      // real client's does: chatserver takes a connection whose first bytes have not come
      // within 100 ms for a person on nc, and greets it in clear text (server/web.hpp).
      c.tls = std::make_unique<tls::Engine>(options_.tls, tls::Engine::Role::client);
      if (c.tls->start_handshake() == tls::Engine::Status::failed) {
        end(i, "TLS: " + c.tls->error());  // still waiting: not counted as connecting
        continue;
      }
    }
    ++connecting_;
    c.fd = ::socket(address_.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) {
      end(i, std::string("socket: ") + std::strerror(errno));
      continue;
    }
    // Lines go out as soon as they are queued: latency is what the benchmark measures.
    const int one = 1;
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (const char* rb = std::getenv("CHATBENCH_RCVBUF")) {
      const int size = std::atoi(rb);
      ::setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    }
    c.state = State::connecting;
    epoll_event ev{};
    ev.events = EPOLLOUT;  // the connect's outcome (errors and hang-ups are always reported)
    ev.data.u64 = i;
    if (::epoll_ctl(connect_fd_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
      end(i, std::string("epoll_ctl: ") + std::strerror(errno));
      continue;
    }
    if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&address_), address_size_) != 0 && errno != EINPROGRESS) {
      end(i, std::string("connect: ") + std::strerror(errno));
      continue;
    }
  }
}

void Swarm::on_connected(std::size_t i) {
  Client& c = clients_[i];
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    end(i, std::string("connect: ") + std::strerror(err));
    return;
  }
  // From the connect set to the main one.
  ::epoll_ctl(connect_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.u64 = i;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
    end(i, std::string("epoll_ctl: ") + std::strerror(errno));
    return;
  }
  c.watching_out = false;
  c.state = State::handshake;
  // A TLS client's ClientHello (made in start_connects) goes out with the flush below; HELLO
  // (or a web client's GET), queued next, waits in `out` as plaintext until the handshake is
  // done (flush_tls).
  if (c.web) {
    // The opening handshake; HELLO follows the 101 (web_received).
    c.ws = std::make_unique<Web>(options_.max_frame);
    unsigned char raw[16];
    for (std::size_t k = 0; k < sizeof raw; k += 4) {
      const auto m = next_mask();
      std::memcpy(raw + k, m.data(), 4);
    }
    c.ws->key = base64(raw, sizeof raw);
    const bool v6 = options_.host.find(':') != std::string::npos;
    const std::string host_port =
        (v6 ? "[" + options_.host + "]" : options_.host) + ":" + std::to_string(options_.port);
    c.out.append(ws::client_handshake(host_port, options_.web_path, c.ws->key));
    flush(i);
  } else if (dialect_.joined_on_connect()) {
    set_joined(i, Clock::now());
  } else {
    send(i, dialect_.greeting(nick(i)));
  }
  if (c.tls) flush(i);  // the ClientHello, whatever was queued
}

void Swarm::set_joined(std::size_t i, Clock::time_point now) {
  Client& c = clients_[i];
  if (c.state == State::joined || c.state == State::ended) return;
  c.state = State::joined;
  c.was_joined = true;
  c.joined_at = now;
  --connecting_;
  ++joined_;
  ++ever_joined_;
  last_join_ = now;
}

void Swarm::watch_out(std::size_t i, bool on) {
  Client& c = clients_[i];
  if (c.watching_out == on || c.fd < 0) return;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0u);
  ev.data.u64 = i;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
  c.watching_out = on;
}

void Swarm::send(std::size_t i, std::string_view bytes) {
  queue(i, bytes);
  flush(i);
}

void Swarm::queue(std::size_t i, std::string_view bytes) {
  Client& c = clients_[i];
  if (c.state == State::ended || bytes.empty()) return;
  if (c.web) {
    queue_frames(i, bytes);
  } else {
    c.out.append(bytes);
  }
}

void Swarm::queue_frames(std::size_t i, std::string_view lines) {
  // Each line (up to its LF, which stays off the wire) is one text frame, masked in place in the
  // output buffer with a mask of its own.
  std::string& out = clients_[i].out;
  std::size_t from = 0;
  while (from < lines.size()) {
    const auto lf = lines.find('\n', from);
    const auto to = lf == std::string_view::npos ? lines.size() : lf;
    const auto line = lines.substr(from, to - from);
    const auto mask = next_mask();
    char header[ws::max_header];
    out.append(header, ws::frame_header(ws::Opcode::text, line.size(), header, &mask));
    const std::size_t at = out.size();
    out.append(line);
    ws::apply_mask(out.data() + at, line.size(), mask);
    from = to + 1;
  }
}

void Swarm::queue_control(std::size_t i, int opcode, std::string_view payload) {
  const auto mask = next_mask();
  clients_[i].out.append(ws::make_frame(static_cast<ws::Opcode>(opcode), payload, &mask));
}

void Swarm::flush(std::size_t i) {
  Client& c = clients_[i];
  if (c.state == State::ended || c.state == State::connecting || c.state == State::waiting) return;
  if (c.tls) {
    flush_tls(i);
    return;
  }
  while (c.out_pos < c.out.size()) {
    const ssize_t n = ::send(c.fd, c.out.data() + c.out_pos, c.out.size() - c.out_pos, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_pos += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    end(i, std::string("send: ") + std::strerror(errno));
    return;
  }
  if (c.out_pos == c.out.size()) {
    c.out.clear();
    c.out_pos = 0;
    watch_out(i, false);
  } else {
    if (c.out_pos > 64 * 1024 && c.out_pos > c.out.size() / 2) {
      c.out.erase(0, c.out_pos);
      c.out_pos = 0;
    }
    watch_out(i, true);
  }
}

void Swarm::flush_tls(std::size_t i) {
  Client& c = clients_[i];
  tls::Engine& engine = *c.tls;
  // Once the handshake is done, what was queued is encrypted in one go (records of up to 16 KiB):
  // the modes queue a batch and then flush, so a batch costs a record, not a record per line.
  if (c.out_pos < c.out.size() && engine.established()) {
    if (!engine.write(std::string_view(c.out).substr(c.out_pos))) {
      end(i, "TLS: cannot encrypt: " + engine.error());
      return;
    }
    c.out.clear();
    c.out_pos = 0;
  }
  while (engine.output_size() > 0) {
    const auto bytes = engine.output();
    const ssize_t n = ::send(c.fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      engine.consume_output(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    end(i, std::string("send: ") + std::strerror(errno));
    return;
  }
  watch_out(i, engine.output_size() > 0);
}

void Swarm::close(std::size_t i) { end(i, "closed by chatbench"); }

void Swarm::end(std::size_t i, std::string reason) {
  Client& c = clients_[i];
  if (c.state == State::ended) return;
  const bool was_connecting = c.state == State::connecting;
  if (c.state == State::joined) {
    --joined_;
    ++dropped_;
  } else {
    if (c.state != State::waiting) --connecting_;
    ++refused_;
  }
  c.state = State::ended;
  if (c.end_reason.empty()) c.end_reason = std::move(reason);
  if (c.fd >= 0) {
    ::epoll_ctl(was_connecting ? connect_fd_ : epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    c.fd = -1;
  }
  c.in.clear();
  c.in.shrink_to_fit();
  if (feeding_ != i) c.ws.reset();  // else once its reader has returned (web_received)
  c.tls.reset();
  c.out.clear();
  c.out.shrink_to_fit();
  ++ended_;
  if (on_end) on_end(i);
}

void Swarm::handle_frame(std::size_t i, std::string_view frame, Clock::time_point now) {
  Client& c = clients_[i];
  const Seen seen = dialect_.classify(frame);
  switch (seen.kind) {
    case Seen::Kind::message:
    case Seen::Kind::stats:
      if (on_frame) on_frame(i, seen, now);
      return;
    case Seen::Kind::ping:
      send(i, dialect_.pong(seen.token));
      return;
    case Seen::Kind::welcomed:
      if (c.welcomed) return;
      c.welcomed = true;
      send(i, dialect_.after_welcome());
      return;
    case Seen::Kind::roster:
      if (c.state != State::handshake) return;
      c.roster += seen.count;
      if (dialect_.roster_in_one_line() && (c.welcomed || !dialect_.welcomes())) set_joined(i, now);
      return;
    case Seen::Kind::roster_end:
      if (c.state == State::handshake && c.welcomed) set_joined(i, now);
      return;
    case Seen::Kind::member_joined:
      if (c.state != State::joined) return;  // IRC: our own JOIN comes before the NAMES
      ++c.chatter;
      last_chatter_ = now;
      return;
    case Seen::Kind::member_left:
      ++c.left_seen;
      return;
    case Seen::Kind::error:
      if (c.state == State::joined) {
        if (on_frame) on_frame(i, seen, now);
        return;
      }
      [[fallthrough]];
    case Seen::Kind::refused:
      if (c.end_reason.empty()) c.end_reason = std::string(frame.substr(0, 200));
      // chatserver's ERROR nick-in-use and the like leave the connection open: a benchmark
      // client has no second nickname, so it ends here.
      end(i, {});
      return;
    case Seen::Kind::other:
      return;
  }
}

void Swarm::on_readable(std::size_t i) {
  for (std::size_t round = 0; round < reads_per_event; ++round) {
    Client& c = clients_[i];
    if (c.state == State::ended) return;
    // A frame left incomplete by the last read goes to the front of the scratch buffer and the
    // read lands right behind it: only that piece is copied, never the bulk of the data. (A web
    // client's reader keeps its own partial frame; a TLS client's goes in front of the
    // plaintext instead, cipher_received.)
    const std::size_t carried = c.web || c.tls ? 0 : c.in.size();
    if (carried > 0) std::memcpy(scratch_.data(), c.in.data(), carried);
    const ssize_t n = ::recv(c.fd, scratch_.data() + carried, scratch_.size() - carried, 0);
    if (n == 0) {
      end(i, c.tls && !c.tls->established() ? "connection closed by the server during the TLS handshake"
             : c.web && c.ws && !c.ws->upgraded
                 ? (c.ws->head.empty() ? "connection closed by the server during the WebSocket handshake"
                                       : "connection closed by the server after: " + c.ws->head.substr(0, 200))
                 : "connection closed by the server");
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      end(i, std::string("recv: ") + std::strerror(errno));
      return;
    }
    const auto now = Clock::now();
    const std::string_view data(scratch_.data(), carried + static_cast<std::size_t>(n));
    if (c.tls) {
      if (!cipher_received(i, data, now)) return;
    } else if (!plaintext_received(i, data, now)) {
      return;
    }
    if (static_cast<std::size_t>(n) < scratch_.size() - carried) return;  // drained
  }
}

bool Swarm::cipher_received(std::size_t i, std::string_view cipher, Clock::time_point now) {
  Client& c = clients_[i];
  tls::Engine& engine = *c.tls;
  const bool was_established = engine.established();
  engine.put_input(cipher);
  // The carried partial line first, then all the plaintext this read's records hold (one read's
  // worth: bounded by scratch_size).
  plain_.assign(c.web ? std::string_view() : std::string_view(c.in));
  const auto status = engine.read(plain_, std::numeric_limits<std::size_t>::max());
  // The handshake's next flight (the client's Finished), or what waited for the handshake.
  if (engine.output_size() > 0 || (!was_established && engine.established())) {
    flush(i);
    if (clients_[i].state == State::ended) return false;
  }
  // What came before a close_notify or a bad record is read first: a BYE says more than the end.
  if (!plain_.empty() && !plaintext_received(i, plain_, now)) return false;
  switch (status) {
    case tls::Engine::Status::ok:
      return true;
    case tls::Engine::Status::closed:
      end(i, "TLS close_notify from the server");
      return false;
    case tls::Engine::Status::failed:
      end(i, std::string(was_established ? "TLS: " : "TLS handshake: ") + engine.error());
      return false;
  }
  return true;
}

bool Swarm::plaintext_received(std::size_t i, std::string_view data, Clock::time_point now) {
  if (clients_[i].web) return web_received(i, data, now);
  std::size_t used = 0;
  while (used < data.size()) {
    std::string_view frame;
    std::size_t consumed = 0;
    if (!dialect_.next_frame(data.substr(used), options_.max_frame, frame, consumed)) break;
    if (consumed == 0) {
      end(i, "a frame over " + std::to_string(options_.max_frame) + " bytes, or out of step");
      return false;
    }
    used += consumed;
    handle_frame(i, frame, now);
    if (clients_[i].state == State::ended) return false;
  }
  clients_[i].in.assign(data.substr(used));
  return true;
}

bool Swarm::web_received(std::size_t i, std::string_view bytes, Clock::time_point now) {
  Web& w = *clients_[i].ws;
  if (!w.upgraded) {
    // The response head, as it comes: until its empty line, nothing else is known.
    const std::size_t before = w.head.size();
    w.head.append(bytes.substr(0, std::min(bytes.size(), max_response_head + 1 - before)));
    if (w.head.size() >= 5 && !w.head.starts_with("HTTP/")) {
      // chatserver greets a connection that sent nothing for 100 ms as a person on nc, and then
      // takes the GET for a line; or its web side is off (--web off), or it is no chatserver.
      end(i, std::string(w.head.starts_with("# ") ? "greeted as a line client, not upgraded (the GET came after "
                                                    "the server's 100 ms wait, or --web off): "
                                                  : "not an HTTP response to the WebSocket handshake: ") +
                 w.head.substr(0, std::min<std::size_t>(w.head.find('\n'), 200)));
      return false;
    }
    const auto end_at = head_end(w.head);
    if (end_at == std::string::npos) {
      if (w.head.size() > max_response_head) {
        end(i, "WebSocket handshake: a response head over " + std::to_string(max_response_head) + " bytes");
        return false;
      }
      return true;
    }
    if (!ws::handshake_accepted(std::string_view(w.head).substr(0, end_at), w.key)) {
      auto status = w.head.substr(0, std::min(w.head.find_first_of("\r\n"), std::size_t{200}));
      end(i, "WebSocket handshake refused: " + status);
      return false;
    }
    w.upgraded = true;
    // What came behind the head is the first frames (the greeting); the rest of `bytes` too.
    bytes.remove_prefix(end_at - before);
    std::string().swap(w.head);
    send(i, dialect_.greeting(nick(i)));
    if (clients_[i].state == State::ended) return false;
  }
  feeding_ = i;
  w.reader.feed(bytes, [&](const ws::MessageReader::Event& e) {
    if (clients_[i].state == State::ended) return;  // the rest of this read is of no interest
    using Kind = ws::MessageReader::Event::Kind;
    switch (e.kind) {
      case Kind::text:
        handle_frame(i, e.payload, now);
        return;
      case Kind::binary:  // text_only: reported as a failure instead
      case Kind::pong:
        return;
      case Kind::ping:
        queue_control(i, static_cast<int>(ws::Opcode::pong), e.payload);
        flush(i);
        return;
      case Kind::close: {
        std::string reason = "WebSocket close " + std::to_string(e.code);
        if (const auto words = ws::describe_close(e.code); !words.empty()) reason += " (" + std::string(words) + ")";
        if (!e.payload.empty()) reason += ": " + std::string(e.payload);
        const auto mask = next_mask();
        const std::uint16_t echo = e.code == ws::close_code::no_status ? ws::close_code::normal : e.code;
        clients_[i].out.append(ws::close_frame(echo, {}, &mask));
        flush(i);
        end(i, std::move(reason));
        return;
      }
      case Kind::fail: {
        const auto mask = next_mask();
        clients_[i].out.append(ws::close_frame(e.code, e.detail, &mask));
        flush(i);
        end(i, "WebSocket: " + e.detail + " (close " + std::to_string(e.code) + ")");
        return;
      }
    }
  });
  feeding_ = SIZE_MAX;
  if (clients_[i].state == State::ended) {
    clients_[i].ws.reset();
    return false;
  }
  return true;
}

void Swarm::run_once(Clock::time_point deadline) {
  check_interrupted();
  start_connects();
  epoll_event events[max_events];
  // epoll_pwait2 takes a timeout in nanoseconds: a paced sender's next message is due in less
  // than a millisecond, which epoll_wait cannot express.
  const auto left = std::clamp<Clock::duration>(deadline - Clock::now(), Clock::duration::zero(), poll_slice);
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
  const timespec timeout{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  const int ready = ::epoll_pwait2(epoll_fd_, events, max_events, &timeout, nullptr);
  if (ready < 0 && errno != EINTR) throw_errno("epoll_pwait2");
  serve_connects();
  for (int k = 0; k < ready; ++k) {
    if (k % connects_every == connects_every - 1) serve_connects();
    if (events[k].data.u64 == connect_set_token) continue;
    const auto i = static_cast<std::size_t>(events[k].data.u64);
    const auto ev = events[k].events;
    if (clients_[i].state == State::ended) continue;
    if (clients_[i].state == State::connecting) {
      on_connected(i);
      if (clients_[i].state == State::ended) continue;
    }
    if (ev & EPOLLOUT) flush(i);
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(i);
  }
  start_connects();
  check_interrupted();
}

void Swarm::serve_connects() {
  epoll_event events[256];
  for (;;) {
    const int n = ::epoll_wait(connect_fd_, events, 256, 0);
    if (n <= 0) return;
    for (int k = 0; k < n; ++k) {
      const auto i = static_cast<std::size_t>(events[k].data.u64);
      if (clients_[i].state == State::connecting) on_connected(i);
    }
    if (n < 256) return;
  }
}

bool Swarm::run_until(const std::function<bool()>& done, Clock::time_point deadline) {
  while (!done()) {
    if (Clock::now() >= deadline) return false;
    run_once(deadline);
  }
  return true;
}

}  // namespace chat::bench
