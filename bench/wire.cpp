#include "bench/wire.hpp"

#include <charconv>
#include <cstring>

namespace chat::bench {
namespace {

char filler_at(std::uint32_t seq, std::size_t i) { return static_cast<char>('a' + (seq + i) % 26); }

template <typename T>
bool parse_field(std::string_view& text, T& value, int base = 10) {
  const auto colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + colon, value, base);
  if (ec != std::errc() || end != text.data() + colon) return false;
  text.remove_prefix(colon + 1);
  return true;
}

std::string_view first_word(std::string_view s) { return s.substr(0, s.find(' ')); }

std::string_view after_word(std::string_view s) {
  const auto space = s.find(' ');
  return space == std::string_view::npos ? std::string_view() : s.substr(space + 1);
}

std::size_t count_words(std::string_view s) {
  std::size_t n = 0;
  bool in_word = false;
  for (char c : s) {
    if (c == ' ') {
      in_word = false;
    } else if (!in_word) {
      in_word = true;
      ++n;
    }
  }
  return n;
}

// ---- this project's protocol (docs/protocol.md) -------------------------------------------------

class ChatDialect final : public Dialect {
 public:
  Protocol protocol() const override { return Protocol::chat; }
  std::string greeting(std::string_view nick) const override { return "HELLO " + std::string(nick) + "\n"; }
  bool echoes() const override { return true; }
  void encode_message(std::string& out, std::string_view payload) const override {
    out.append("SAY ").append(payload).push_back('\n');
  }
  std::string stats_request() const override { return "STATS\n"; }

  Seen classify(std::string_view frame) const override {
    Seen s;
    s.text = frame;
    const auto verb = first_word(frame);
    const auto rest = after_word(frame);
    if (verb == "MSG") {
      s.kind = Seen::Kind::message;
      s.from = first_word(rest);
      s.payload = after_word(rest);
    } else if (verb == "JOIN") {
      s.kind = Seen::Kind::member_joined;
    } else if (verb == "LEAVE") {
      s.kind = Seen::Kind::member_left;
    } else if (verb == "WELCOME") {
      s.kind = Seen::Kind::welcomed;
    } else if (verb == "USERS") {
      s.kind = Seen::Kind::roster;
      s.count = count_words(rest);
    } else if (verb == "PING") {
      s.kind = Seen::Kind::ping;
      s.reply = "PONG " + std::string(rest) + "\n";
    } else if (verb == "BYE") {
      s.kind = Seen::Kind::refused;
    } else if (verb == "ERROR") {
      s.kind = Seen::Kind::error;
    } else if (verb == "STATS") {
      s.kind = Seen::Kind::stats;
    }
    return s;
  }
};

// ---- ncat --chat ------------------------------------------------------------------------------
//
// ncat relays every chunk it reads from a client to the others as "<userN> " + the chunk, and
// tells everyone about arrivals and departures in "<announce> ..." lines (bench/compare.sh's
// notes in docs/performance.md). It echoes nothing to the sender and has no handshake.

class LineDialect final : public Dialect {
 public:
  Protocol protocol() const override { return Protocol::line; }
  std::string greeting(std::string_view) const override { return {}; }
  bool joined_on_connect() const override { return true; }
  bool echoes() const override { return false; }
  void encode_message(std::string& out, std::string_view payload) const override {
    out.append(payload).push_back('\n');
  }

  Seen classify(std::string_view frame) const override {
    Seen s;
    s.text = frame;
    if (frame.starts_with("<announce> ")) {
      const auto rest = frame.substr(11);
      if (rest.find(" is connected as ") != std::string_view::npos) {
        s.kind = Seen::Kind::member_joined;
      } else if (rest.find(" is disconnected") != std::string_view::npos) {
        s.kind = Seen::Kind::member_left;
      }
      return s;
    }
    // "<user5> text". Anything else in this dialect is a relayed piece that lost its line
    // structure: a message that decode_payload will call corrupt.
    s.kind = Seen::Kind::message;
    if (frame.starts_with("<user")) {
      const auto close = frame.find("> ");
      if (close != std::string_view::npos) {
        s.from = frame.substr(1, close - 1);
        s.payload = frame.substr(close + 2);
        return s;
      }
    }
    s.payload = frame;
    return s;
  }
};

// ---- IRC (RFC 2812, as ngircd speaks it) ------------------------------------------------------

class IrcDialect final : public Dialect {
 public:
  Protocol protocol() const override { return Protocol::irc; }
  std::string greeting(std::string_view nick) const override {
    const std::string n(nick);
    return "NICK " + n + "\r\nUSER " + n + " 0 * :" + n + "\r\n";
  }
  std::string after_welcome() const override { return "JOIN #chat\r\n"; }
  bool roster_in_one_line() const override { return false; }
  bool echoes() const override { return false; }
  void encode_message(std::string& out, std::string_view payload) const override {
    out.append("PRIVMSG #chat :").append(payload).append("\r\n");
  }

  Seen classify(std::string_view frame) const override {
    Seen s;
    s.text = frame;
    std::string_view prefix;
    std::string_view rest = frame;
    if (rest.starts_with(':')) {
      prefix = first_word(rest).substr(1);
      rest = after_word(rest);
    }
    const auto command = first_word(rest);
    const auto params = after_word(rest);
    const auto nick = prefix.substr(0, prefix.find('!'));
    const auto trailing_at = params.starts_with(':') ? 0 : params.find(" :");
    const std::string_view trailing =
        trailing_at == std::string_view::npos ? params.substr(params.rfind(' ') + 1)
                                              : params.substr(trailing_at == 0 ? 1 : trailing_at + 2);
    if (command == "PRIVMSG") {
      s.kind = Seen::Kind::message;
      s.from = nick;
      s.payload = trailing;
    } else if (command == "JOIN") {
      s.kind = Seen::Kind::member_joined;  // our own JOIN too; the swarm counts only later ones
      s.from = nick;
    } else if (command == "PART" || command == "QUIT") {
      s.kind = Seen::Kind::member_left;
    } else if (command == "PING") {
      s.kind = Seen::Kind::ping;
      s.reply = "PONG :" + std::string(trailing) + "\r\n";
    } else if (command == "001") {
      s.kind = Seen::Kind::welcomed;
    } else if (command == "353") {
      s.kind = Seen::Kind::roster;
      s.count = count_words(trailing);
    } else if (command == "366") {
      s.kind = Seen::Kind::roster_end;
    } else if (command == "ERROR" || command == "432" || command == "433" || command == "436" ||
               command == "437" || command == "465" || command == "471" || command == "473" ||
               command == "474" || command == "475" || command == "403" || command == "405") {
      s.kind = Seen::Kind::refused;
    }
    return s;
  }
};

// ---- the Asio chat example (asio/src/examples/cpp11/chat/chat_message.hpp) -------------------
//
// Every message is a 4-character decimal body length, then the body (at most 512 bytes). The
// server relays each message to every participant, the sender included, and replays its last
// 100 messages to a newcomer. No names, no handshake, no heartbeat.

class AsioDialect final : public Dialect {
 public:
  static constexpr std::size_t header = 4;
  static constexpr std::size_t max_body = 512;

  Protocol protocol() const override { return Protocol::asio; }
  std::string greeting(std::string_view) const override { return {}; }
  bool joined_on_connect() const override { return true; }
  bool echoes() const override { return true; }
  bool names_senders() const override { return false; }
  void encode_message(std::string& out, std::string_view payload) const override {
    char head[header + 1];
    std::snprintf(head, sizeof head, "%4d", static_cast<int>(payload.size()));
    out.append(head, header).append(payload);
  }

  bool next_frame(std::string_view in, std::size_t, std::string_view& frame, std::size_t& consumed) const override {
    if (in.size() < header) return false;
    // The example writes "%4d": the length right-aligned, padded with spaces.
    std::size_t length = 0;
    for (std::size_t i = 0; i < header; ++i) {
      const char c = in[i];
      if (c == ' ' && length == 0) continue;
      if (c < '0' || c > '9') {
        consumed = 0;  // not a header: the stream is out of step
        return true;
      }
      length = length * 10 + static_cast<std::size_t>(c - '0');
    }
    if (length > max_body) {
      consumed = 0;
      return true;
    }
    if (in.size() < header + length) return false;
    frame = in.substr(header, length);
    consumed = header + length;
    return true;
  }

  Seen classify(std::string_view frame) const override {
    Seen s;
    s.text = frame;
    s.kind = Seen::Kind::message;
    s.payload = frame;
    return s;
  }
};

}  // namespace

std::string_view to_string(Protocol protocol) {
  switch (protocol) {
    case Protocol::chat: return "chat";
    case Protocol::line: return "line";
    case Protocol::irc: return "irc";
    case Protocol::asio: return "asio";
  }
  return "?";
}

std::optional<Protocol> protocol_from(std::string_view name) {
  for (auto p : {Protocol::chat, Protocol::line, Protocol::irc, Protocol::asio}) {
    if (to_string(p) == name) return p;
  }
  return std::nullopt;
}

void encode_payload(std::string& out, const Payload& p, std::size_t size) {
  char head[64];
  const int n = std::snprintf(head, sizeof head, "%06x:%u:%u:%llu:", p.tag & 0xffffffu, p.sender, p.seq,
                              static_cast<unsigned long long>(p.sent_us));
  const auto head_size = static_cast<std::size_t>(n);
  out.append(head, head_size);
  for (std::size_t i = head_size; i < size; ++i) out.push_back(filler_at(p.seq, i));
}

PayloadCheck decode_payload(std::string_view text, std::uint32_t tag, Payload& out) {
  const std::size_t size = text.size();
  // The tag is exactly 6 hex digits: "0001a0:" and "1a0:" are not the same message.
  if (size < 7 || text[6] != ':') return PayloadCheck::corrupt;
  std::string_view rest = text;
  Payload p;
  if (!parse_field(rest, p.tag, 16) || !parse_field(rest, p.sender) || !parse_field(rest, p.seq) ||
      !parse_field(rest, p.sent_us)) {
    return PayloadCheck::corrupt;
  }
  for (std::size_t i = size - rest.size(); i < size; ++i) {
    if (text[i] != filler_at(p.seq, i)) return PayloadCheck::corrupt;
  }
  out = p;
  return p.tag == (tag & 0xffffffu) ? PayloadCheck::ok : PayloadCheck::stale;
}

bool Dialect::next_frame(std::string_view in, std::size_t max_frame, std::string_view& frame,
                         std::size_t& consumed) const {
  const void* lf = std::memchr(in.data(), '\n', std::min(in.size(), max_frame + 2));
  if (lf == nullptr) {
    if (in.size() > max_frame + 1) {
      consumed = 0;
      return true;
    }
    return false;
  }
  const auto at = static_cast<std::size_t>(static_cast<const char*>(lf) - in.data());
  frame = in.substr(0, at);
  if (!frame.empty() && frame.back() == '\r') frame.remove_suffix(1);
  consumed = at + 1;
  return true;
}

const Dialect& dialect_for(Protocol protocol) {
  static const ChatDialect chat;
  static const LineDialect line;
  static const IrcDialect irc;
  static const AsioDialect asio;
  switch (protocol) {
    case Protocol::chat: return chat;
    case Protocol::line: return line;
    case Protocol::irc: return irc;
    case Protocol::asio: return asio;
  }
  return chat;
}

}  // namespace chat::bench
