#include "server/redis.hpp"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <charconv>
#include <chrono>
#include <fcntl.h>

namespace chat {

namespace {

[[noreturn]] void bad_url(const std::string& why) { throw std::invalid_argument("redis URL: " + why); }

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view text, std::string_view what) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    const int hi = i + 2 < text.size() ? hex_digit(text[i + 1]) : -1;
    const int lo = i + 2 < text.size() ? hex_digit(text[i + 2]) : -1;
    if (hi < 0 || lo < 0) bad_url("a '%' in the " + std::string(what) + " must be followed by two hex digits");
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

int parse_db(std::string_view text) {
  int db = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), db);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || db < 0 || db > 65535) {
    bad_url("database '" + std::string(text) + "' is not a number from 0 to 65535");
  }
  return db;
}

RedisValue copy_reply(const redisReply* reply) {
  RedisValue value;
  switch (reply->type) {
    case REDIS_REPLY_STRING:
      value.type = RedisValue::Type::string;
      value.str.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_STATUS:
      value.type = RedisValue::Type::status;
      value.str.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_ERROR:
      value.type = RedisValue::Type::error;
      value.str.assign(reply->str, reply->len);
      break;
    case REDIS_REPLY_INTEGER:
      value.type = RedisValue::Type::integer;
      value.integer = reply->integer;
      break;
    case REDIS_REPLY_ARRAY:
      value.type = RedisValue::Type::array;
      value.elements.reserve(reply->elements);
      for (std::size_t i = 0; i < reply->elements; ++i) value.elements.push_back(copy_reply(reply->element[i]));
      break;
    default:
      value.type = RedisValue::Type::nil;
      break;
  }
  return value;
}

// Sets an int socket option; false if the kernel refused it.
bool set_int_option(int fd, int level, int name, int value) {
  return ::setsockopt(fd, level, name, &value, sizeof value) == 0;
}

}  // namespace

std::string RedisUrl::display() const {
  if (!unix_path.empty()) {
    std::string out = "unix://" + unix_path;
    char sep = '?';
    if (db != 0) {
      out += sep + ("db=" + std::to_string(db));
      sep = '&';
    }
    if (!user.empty()) {
      out += sep + ("user=" + user);
      sep = '&';
    }
    if (!password.empty()) out += sep + std::string("password=***");
    return out;
  }
  std::string out = "redis://";
  if (!password.empty()) out += user + ":***@";
  out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return out + ":" + std::to_string(port) + "/" + std::to_string(db);
}

RedisUrl parse_redis_url(std::string_view url) {
  RedisUrl out;
  constexpr std::string_view tcp_scheme = "redis://";
  constexpr std::string_view unix_scheme = "unix://";
  if (url.starts_with("rediss://")) {
    bad_url("rediss:// (TLS) is not supported: Debian's hiredis 0.14 is built without TLS (docs/scale-out.md)");
  }
  if (url.starts_with(unix_scheme)) {
    std::string_view rest = url.substr(unix_scheme.size());
    const auto query = rest.find('?');
    std::string_view path = rest.substr(0, query);
    if (path.empty() || path.front() != '/') bad_url("unix:// needs an absolute path (unix:///run/redis/redis.sock)");
    out.unix_path = std::string(path);
    if (query != std::string_view::npos) {
      std::string_view params = rest.substr(query + 1);
      while (!params.empty()) {
        const auto amp = params.find('&');
        const std::string_view param = params.substr(0, amp);
        params = amp == std::string_view::npos ? std::string_view{} : params.substr(amp + 1);
        if (param.starts_with("db=")) {
          out.db = parse_db(param.substr(3));
        } else if (param.starts_with("password=")) {
          out.password = percent_decode(param.substr(9), "password");
        } else if (param.starts_with("user=")) {
          out.user = percent_decode(param.substr(5), "user");
        } else {
          bad_url("unknown parameter '" + std::string(param) + "' (unix:///path?db=N&password=P)");
        }
      }
    }
    return out;
  }
  if (!url.starts_with(tcp_scheme)) {
    bad_url("'" + std::string(url) + "' must start with redis:// or unix:// (redis://host:6379/0, unix:///run/redis/redis.sock)");
  }
  std::string_view rest = url.substr(tcp_scheme.size());
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) out.db = parse_db(db);
  }
  const auto at = authority.rfind('@');
  if (at != std::string_view::npos) {
    const std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      // redis://secret@host: a password alone, as redis-cli -u reads it.
      out.password = percent_decode(userinfo, "password");
    } else {
      out.user = percent_decode(userinfo.substr(0, colon), "user");
      out.password = percent_decode(userinfo.substr(colon + 1), "password");
    }
    if (out.password.empty()) bad_url("the password before '@' is empty");
  }
  std::string_view port;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) bad_url("'[' without ']' in the host");
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') bad_url("unexpected '" + std::string(after) + "' after the host");
      port = after.substr(1);
      if (port.empty()) bad_url("empty port after ':'");
    }
  } else {
    const auto colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) bad_url("empty port after ':'");
    }
  }
  if (out.host.empty()) bad_url("no host (redis://127.0.0.1:6379/0)");
  if (!port.empty()) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value < 1 || value > 65535) {
      bad_url("port '" + std::string(port) + "' is not a number from 1 to 65535");
    }
    out.port = static_cast<std::uint16_t>(value);
  }
  return out;
}

std::string RedisValue::describe() const {
  switch (type) {
    case Type::nil: return "(nil)";
    case Type::integer: return std::to_string(integer);
    case Type::status: return str;
    case Type::error: return "(error) " + str;
    case Type::string: return "\"" + str + "\"";
    case Type::array: {
      std::string out = "[";
      for (std::size_t i = 0; i < elements.size(); ++i) out += (i ? ", " : "") + elements[i].describe();
      return out + "]";
    }
  }
  return "?";
}

RedisConnection::RedisConnection(const RedisUrl& url, Millis timeout, std::string_view name) : where_(url.display()) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>(timeout.count() % 1000 * 1000);
  context_ = url.unix_path.empty() ? redisConnectWithTimeout(url.host.c_str(), url.port, tv)
                                   : redisConnectUnixWithTimeout(url.unix_path.c_str(), tv);
  if (context_ == nullptr) throw RedisError(where_ + ": out of memory");
  if (context_->err != 0) {
    const std::string why = context_->errstr;
    redisFree(context_);
    context_ = nullptr;
    throw RedisError(where_ + ": " + why);
  }
  if (url.unix_path.empty()) {
    // The same detectors as for chat clients: a Redis host that vanishes (cable, power) is
    // noticed by keepalive when idle, by TCP_USER_TIMEOUT when data is unacknowledged.
    redisEnableKeepAlive(context_);
    set_int_option(context_->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, static_cast<int>(std::max<long long>(timeout.count(), 1000)));
  }
  // From here on the socket is non-blocking and every wait is a poll(2) with a deadline: the
  // backplane thread must never sit in a read that a dead Redis does not answer.
  context_->flags &= ~REDIS_BLOCK;
  const int flags = ::fcntl(context_->fd, F_GETFL);
  ::fcntl(context_->fd, F_SETFL, flags | O_NONBLOCK);
  try {
    if (!url.password.empty()) {
      std::vector<std::string> auth{"AUTH"};
      if (!url.user.empty()) auth.push_back(url.user);
      auth.push_back(url.password);
      const auto reply = command(auth, timeout);
      if (reply.is_error()) throw RedisError(where_ + ": AUTH refused: " + reply.str);
    }
    if (url.db != 0) {
      const auto reply = command({"SELECT", std::to_string(url.db)}, timeout);
      if (reply.is_error()) throw RedisError(where_ + ": SELECT " + std::to_string(url.db) + " refused: " + reply.str);
    }
    if (!name.empty()) {
      const auto reply = command({"CLIENT", "SETNAME", std::string(name)}, timeout);
      if (reply.is_error()) throw RedisError(where_ + ": CLIENT SETNAME refused: " + reply.str);
    }
  } catch (...) {
    redisFree(context_);
    context_ = nullptr;
    throw;
  }
}

RedisConnection::~RedisConnection() {
  if (context_ != nullptr) redisFree(context_);
}

int RedisConnection::fd() const { return context_ != nullptr ? context_->fd : -1; }

void RedisConnection::fail(const std::string& what) {
  if (error_.empty()) error_ = what;
}

void RedisConnection::append(const std::vector<std::string>& argv) {
  if (broken()) return;
  std::vector<const char*> args;
  std::vector<std::size_t> lengths;
  args.reserve(argv.size());
  lengths.reserve(argv.size());
  for (const auto& arg : argv) {
    args.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  if (redisAppendCommandArgv(context_, static_cast<int>(args.size()), args.data(), lengths.data()) != REDIS_OK) {
    fail(context_->errstr);
    return;
  }
  ++in_flight_;
}

bool RedisConnection::flush() {
  if (broken()) return false;
  int done = 0;
  while (!done) {
    if (redisBufferWrite(context_, &done) != REDIS_OK) {
      fail(context_->errstr[0] != '\0' ? context_->errstr : "write failed");
      return false;
    }
    if (!done) {
      // The socket took what it could (EAGAIN leaves obuf as it was): the poll loop waits for
      // POLLOUT. redisBufferWrite reports EAGAIN as success with done == 0.
      pollfd p{context_->fd, POLLOUT, 0};
      if (::poll(&p, 1, 0) <= 0) return false;
    }
  }
  return true;
}

bool RedisConnection::read_some() {
  if (broken()) return false;
  if (redisBufferRead(context_) != REDIS_OK) {
    fail(context_->err == REDIS_ERR_EOF || context_->errstr[0] == '\0' ? "the server closed the connection"
                                                                      : context_->errstr);
    return false;
  }
  if (context_->reader->len - context_->reader->pos > max_reply_bytes) {
    fail("a reply larger than " + std::to_string(max_reply_bytes / (1024 * 1024)) + " MiB");
    return false;
  }
  return true;
}

std::optional<RedisValue> RedisConnection::next_reply() {
  if (context_ == nullptr || in_flight_ == 0) return std::nullopt;
  void* raw = nullptr;
  if (redisGetReplyFromReader(context_, &raw) != REDIS_OK) {
    fail(context_->errstr[0] != '\0' ? context_->errstr : "protocol error");
    return std::nullopt;
  }
  if (raw == nullptr) return std::nullopt;
  auto* reply = static_cast<redisReply*>(raw);
  RedisValue value = copy_reply(reply);
  freeReplyObject(reply);
  --in_flight_;
  return value;
}

RedisValue RedisConnection::command(const std::vector<std::string>& argv, Millis timeout) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + timeout;
  const std::size_t ahead = in_flight_;
  append(argv);
  std::size_t skip = ahead;
  for (;;) {
    if (broken()) throw RedisError(where_ + ": " + error_);
    const bool written = flush();
    if (broken()) throw RedisError(where_ + ": " + error_);
    while (auto reply = next_reply()) {
      if (skip == 0) return *std::move(reply);
      --skip;
    }
    if (broken()) throw RedisError(where_ + ": " + error_);
    const auto left = std::chrono::ceil<Millis>(deadline - Clock::now());
    if (left.count() <= 0) {
      fail("no reply within " + std::to_string(timeout.count()) + " ms");
      throw RedisError(where_ + ": " + error_);
    }
    pollfd p{context_->fd, static_cast<short>(POLLIN | (written ? 0 : POLLOUT)), 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) read_some();
  }
}

}  // namespace chat
