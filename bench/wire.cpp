#include "bench/wire.hpp"

#include <charconv>
#include <type_traits>
#include <cstring>

namespace chat::bench {
namespace {

char filler_at(std::uint32_t seq, std::size_t i) { return static_cast<char>('a' + (seq + i) % 26); }

// "abc...zabc...z...": the filler of any message is a slice of it, so checking one is a memcmp.
const std::string& alphabet_run() {
  static const std::string run = [] {
    std::string s;
    for (std::size_t i = 0; i < max_payload_size + 26; ++i) s.push_back(static_cast<char>('a' + i % 26));
    return s;
  }();
  return run;
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
  std::string pong(std::string_view token) const override {
    return token.empty() ? std::string("PONG\n") : "PONG " + std::string(token) + "\n";
  }

  Seen classify(std::string_view frame) const override {
    Seen s;
    s.text = frame;
    // The hot path first: a relayed message.
    if (frame.starts_with("MSG ")) {
      const auto rest = frame.substr(4);
      const auto space = rest.find(' ');
      s.kind = Seen::Kind::message;
      s.from = rest.substr(0, space);
      s.payload = space == std::string_view::npos ? std::string_view() : rest.substr(space + 1);
      return s;
    }
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
      s.token = rest;
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
// ncat (7.93) names a client <userN> after its descriptor. On every connect it tells everyone,
// the newcomer included, "<announce> 127.0.0.1 is connected as <user5>." and then
// "<announce> already connected: 127.0.0.1 as <user4>, ..." (or "... nobody."): for the newcomer
// the second line is its roster. It relays whatever one recv() returned to the others with one
// "<userN> " in front, so a line split across two reads arrives corrupted ("<user5> hel<user5>
// lo") and the second of two lines read at once arrives without a prefix. It echoes nothing to
// the sender and has no heartbeat. (bench/compare.sh notes, docs/performance.md.)

class LineDialect final : public Dialect {
 public:
  Protocol protocol() const override { return Protocol::line; }
  std::string greeting(std::string_view) const override { return {}; }
  bool welcomes() const override { return false; }
  bool echoes() const override { return false; }
  bool names_senders() const override { return false; }  // <userN>, not our nicknames
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
      } else if (rest.starts_with("already connected: ")) {
        s.kind = Seen::Kind::roster;
        std::size_t others = 0;
        for (auto at = rest.find(" as <user"); at != std::string_view::npos; at = rest.find(" as <user", at + 1)) ++others;
        s.count = others + 1;  // and the newcomer itself, as chat's USERS and IRC's NAMES count it
      } else if (rest.find(" is disconnected") != std::string_view::npos) {
        s.kind = Seen::Kind::member_left;
      }
      return s;
    }
    // "<user5> text". A line without the prefix (the second line of a read) is a message too,
    // and decode_payload tells an intact one from a piece.
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
  std::string pong(std::string_view token) const override { return "PONG :" + std::string(token) + "\r\n"; }
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
      s.token = trailing;
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
    // The example writes "%4d": the length right-aligned, padded with spaces (and reads it with
    // atoi, so zeros work too). Spaces, then at least one digit, then nothing but digits.
    std::size_t i = 0;
    while (i < header && in[i] == ' ') ++i;
    std::size_t length = 0;
    if (i == header) {
      consumed = 0;  // four spaces: not a header, the stream is out of step
      return true;
    }
    for (; i < header; ++i) {
      const char c = in[i];
      if (c < '0' || c > '9') {
        consumed = 0;
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

PayloadCheck decode_payload(std::string_view text, std::uint32_t tag, std::size_t expected_size, Payload& out) {
  // One pass over "tttttt:sender:seq:us:": the tag is exactly 6 hex digits, the numbers are
  // decimal without sign or leading space, each field ends at its colon.
  const std::size_t size = text.size();
  if (size < 7 || size > max_payload_size || text[6] != ':') return PayloadCheck::corrupt;
  Payload p;
  for (std::size_t i = 0; i < 6; ++i) {
    const char c = text[i];
    unsigned digit;
    if (c >= '0' && c <= '9') {
      digit = static_cast<unsigned>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<unsigned>(c - 'a' + 10);
    } else {
      return PayloadCheck::corrupt;
    }
    p.tag = p.tag * 16 + digit;
  }
  std::size_t at = 7;
  auto number = [&](auto& value) {
    const std::size_t from = at;
    std::uint64_t v = 0;
    while (at < size && text[at] >= '0' && text[at] <= '9') {
      v = v * 10 + static_cast<std::uint64_t>(text[at] - '0');
      if (v > UINT32_MAX && sizeof(value) == 4) return false;
      if (at - from > 19) return false;
      ++at;
    }
    if (at == from || at == size || text[at] != ':') return false;
    ++at;
    value = static_cast<std::remove_reference_t<decltype(value)>>(v);
    return true;
  };
  if (!number(p.sender) || !number(p.seq) || !number(p.sent_us)) return PayloadCheck::corrupt;
  if (std::memcmp(text.data() + at, alphabet_run().data() + (p.seq + at) % 26, size - at) != 0) {
    return PayloadCheck::corrupt;
  }
  if (p.tag != (tag & 0xffffffu)) {
    out = p;
    return PayloadCheck::stale;
  }
  // Cut inside the filler, or padded: the filler that is there matched, the length does not.
  if (size != expected_size) return PayloadCheck::corrupt;
  out = p;
  return PayloadCheck::ok;
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
  if (frame.size() > max_frame) {  // the search allowed for a CR; a bare LF one byte later is too long
    consumed = 0;
    return true;
  }
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
