// chatbench's wire (bench/wire.hpp), pure: the benchmark payload's round trip at every size and
// its failures (stale tag, cut, merged, garbled), each dialect's message frame as the server
// relays it, what each dialect makes of the server's other lines (PING, roster, welcome,
// refusals), next_frame's framing limits, and the protocol names.
//
// Threads: none but the test thread (everything here is pure).
#include "bench/wire.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <string>
#include <string_view>

using namespace chat::bench;
using Kind = Seen::Kind;

namespace chat::bench {
// Readable failures: Catch prints these instead of "{?}".
std::ostream& operator<<(std::ostream& os, PayloadCheck c) {
  switch (c) {
    case PayloadCheck::ok: return os << "ok";
    case PayloadCheck::stale: return os << "stale";
    case PayloadCheck::corrupt: return os << "corrupt";
  }
  return os << "?";
}
std::ostream& operator<<(std::ostream& os, Seen::Kind k) { return os << static_cast<int>(k); }
std::ostream& operator<<(std::ostream& os, Protocol p) { return os << to_string(p); }
}  // namespace chat::bench

namespace {

constexpr std::uint32_t tag = 0x3a9f0c;

std::string payload_of(std::uint32_t sender, std::uint32_t seq, std::size_t size = 64, std::uint32_t t = tag) {
  std::string out;
  encode_payload(out, Payload{t, sender, seq, 987'654'321}, size);
  return out;
}

PayloadCheck check(std::string_view text, std::size_t size = 64) {
  Payload p;
  return decode_payload(text, tag, size, p);
}

// Splits `in` with `d.next_frame` and returns the first frame (fails the test if there is none).
std::string first_frame(const Dialect& d, std::string_view in, std::size_t* consumed = nullptr) {
  std::string_view frame;
  std::size_t used = 0;
  REQUIRE(d.next_frame(in, 4096, frame, used));
  REQUIRE(used > 0);
  if (consumed) *consumed = used;
  return std::string(frame);
}

}  // namespace

TEST_CASE("payload: round trip at every size from 48 to 400 bytes", "[bench][wire]") {
  for (std::size_t size = min_payload_size; size <= max_payload_size; ++size) {
    const Payload sent{tag, 17, static_cast<std::uint32_t>(size * 1000 + 7), 1'234'567'890};
    std::string text = "prefix";  // encode_payload appends
    encode_payload(text, sent, size);
    REQUIRE(text.starts_with("prefix"));
    text.erase(0, 6);
    INFO("size " << size << ": " << text);
    REQUIRE(text.size() == size);
    Payload got;
    REQUIRE(decode_payload(text, tag, size, got) == PayloadCheck::ok);
    CHECK(got.tag == sent.tag);
    CHECK(got.sender == sent.sender);
    CHECK(got.seq == sent.seq);
    CHECK(got.sent_us == sent.sent_us);
  }
}

TEST_CASE("payload: another run's tag is stale, not corrupt", "[bench][wire]") {
  const auto text = payload_of(3, 9, 64, 0x123456);
  Payload got;
  CHECK(decode_payload(text, 0x123457, 64, got) == PayloadCheck::stale);
  CHECK(got.sender == 3);
  CHECK(got.seq == 9);
  CHECK(decode_payload(text, 0x123456, 64, got) == PayloadCheck::ok);
  // Only the low 24 bits are the tag.
  CHECK(decode_payload(text, 0xff123456, 64, got) == PayloadCheck::ok);
}

TEST_CASE("payload: cut inside its header, merged, garbled or garbage is corrupt", "[bench][wire]") {
  // Each candidate is checked at its own length, so these cases test the header and filler
  // checks, not the size check (which has its own case below).
  const auto check_at_its_size = [](std::string_view t) { return check(t, t.size()); };
  const auto text = payload_of(4, 12345, 80);
  REQUIRE(check_at_its_size(text) == PayloadCheck::ok);

  SECTION("cut inside the header") {
    const auto last_colon = text.rfind(':');
    for (std::size_t n = 0; n < last_colon; ++n) {
      INFO("first " << n << " bytes");
      CHECK(check_at_its_size(std::string_view(text).substr(0, n)) == PayloadCheck::corrupt);
    }
  }
  SECTION("two payloads merged") {
    CHECK(check_at_its_size(text + payload_of(4, 12346, 80)) == PayloadCheck::corrupt);
    CHECK(check_at_its_size(text + payload_of(5, 0, 48)) == PayloadCheck::corrupt);
    // A second one glued onto the first, cut short: still not one of ours.
    CHECK(check_at_its_size(text + payload_of(4, 12346, 80).substr(0, 20)) == PayloadCheck::corrupt);
  }
  SECTION("one filler byte changed") {
    for (std::size_t i = text.rfind(':') + 1; i < text.size(); ++i) {
      auto changed = text;
      changed[i] = changed[i] == 'z' ? 'a' : static_cast<char>(changed[i] + 1);
      INFO("byte " << i << ": " << changed);
      CHECK(check_at_its_size(changed) == PayloadCheck::corrupt);
    }
  }
  SECTION("a digit of seq changed: the filler no longer matches") {
    const auto seq_at = text.find(":12345:") + 1;
    for (std::size_t i = seq_at; i < seq_at + 5; ++i) {
      auto changed = text;
      changed[i] = changed[i] == '9' ? '0' : static_cast<char>(changed[i] + 1);
      INFO(changed);
      CHECK(check_at_its_size(changed) == PayloadCheck::corrupt);
    }
  }
  SECTION("garbage") {
    for (std::string_view g : {"", "x", "hello world", "3a9f0c", "3a9f0c:", "3a9f0c:4:12345:987654321",
                               "3a9f0:4:12345:987654321:abc", "3a9f0cc:4:12345:987654321:abc", "zzzzzz:4:1:1:bc",
                               "3a9f0c::12345:987654321:abc", "3a9f0c:-4:1:1:bc", "3a9f0c:4:1:1:BC",
                               "3a9f0c:99999999999:1:1:bc"}) {
      INFO("\"" << g << "\"");
      CHECK(check_at_its_size(g) == PayloadCheck::corrupt);
    }
  }
}

// wire.hpp promises "Any change to a message (cut, merged, garbled) fails decode_payload". A
// payload cut inside its filler (a server that truncates long lines) keeps a filler that
// matches: only the size gives it away.
TEST_CASE("payload: cut inside its filler is corrupt", "[bench][wire]") {
  const auto text = payload_of(4, 12345, 80);
  CHECK(check(text, 80) == PayloadCheck::ok);
  CHECK(check(std::string_view(text).substr(0, text.size() - 1), 80) == PayloadCheck::corrupt);
  CHECK(check(std::string_view(text).substr(0, 60), 80) == PayloadCheck::corrupt);
  CHECK(check(std::string_view(text).substr(0, text.rfind(':') + 1), 80) == PayloadCheck::corrupt);
}

TEST_CASE("dialects: a relayed message classifies back to the same payload", "[bench][wire]") {
  const auto payload = payload_of(2, 41);

  SECTION("chat") {
    const auto& d = dialect_for(Protocol::chat);
    CHECK(d.protocol() == Protocol::chat);
    CHECK(d.echoes());
    CHECK(d.names_senders());
    std::string sent;
    d.encode_message(sent, payload);
    CHECK(sent == "SAY " + payload + "\n");
    std::size_t consumed = 0;
    CHECK(first_frame(d, sent, &consumed) == "SAY " + payload);
    CHECK(consumed == sent.size());
    // What the server relays ("MSG <from> <text>"), cut from the stream by next_frame. The
    // views in Seen point into the frame, which points into `wire`.
    const std::string relayed = "MSG b3 " + payload;
    const std::string wire = relayed + "\n";
    std::string_view frame;
    REQUIRE(d.next_frame(wire, 4096, frame, consumed));
    CHECK(consumed == wire.size());
    const auto seen = d.classify(frame);
    CHECK(seen.kind == Kind::message);
    CHECK(seen.payload == payload);
    CHECK(seen.from == "b3");
    CHECK(seen.text == relayed);
    CHECK(d.greeting("b3") == "HELLO b3\n");
    CHECK(d.stats_request() == "STATS\n");
  }
  SECTION("irc") {
    const auto& d = dialect_for(Protocol::irc);
    CHECK(d.protocol() == Protocol::irc);
    CHECK_FALSE(d.echoes());
    CHECK_FALSE(d.roster_in_one_line());
    std::string sent;
    d.encode_message(sent, payload);
    CHECK(sent == "PRIVMSG #chat :" + payload + "\r\n");
    std::size_t consumed = 0;
    CHECK(first_frame(d, sent, &consumed) == "PRIVMSG #chat :" + payload);  // CR stripped
    CHECK(consumed == sent.size());
    const std::string relayed = ":b3!~b3@localhost PRIVMSG #chat :" + payload;
    const std::string wire = relayed + "\r\n";
    std::string_view frame;
    REQUIRE(d.next_frame(wire, 4096, frame, consumed));
    CHECK(consumed == wire.size());
    const auto seen = d.classify(frame);
    CHECK(seen.kind == Kind::message);
    CHECK(seen.payload == payload);
    CHECK(seen.from == "b3");
    CHECK(d.greeting("b3") == "NICK b3\r\nUSER b3 0 * :b3\r\n");
    CHECK(d.after_welcome() == "JOIN #chat\r\n");
    CHECK(d.stats_request().empty());
  }
  SECTION("line") {
    const auto& d = dialect_for(Protocol::line);
    CHECK(d.protocol() == Protocol::line);
    CHECK_FALSE(d.joined_on_connect());  // in the room once ncat has said who else is there
    CHECK_FALSE(d.welcomes());
    CHECK_FALSE(d.echoes());
    CHECK_FALSE(d.names_senders());
    CHECK(d.greeting("b3").empty());
    std::string sent;
    d.encode_message(sent, payload);
    CHECK(sent == payload + "\n");
    const std::string wire = "<user5> " + payload + "\n";
    std::string_view frame;
    std::size_t consumed = 0;
    REQUIRE(d.next_frame(wire, 4096, frame, consumed));
    CHECK(consumed == wire.size());
    const auto seen = d.classify(frame);
    CHECK(seen.kind == Kind::message);
    CHECK(seen.payload == payload);
    CHECK(seen.from == "user5");
    // ncat's announcements, as notes in bench/peers.sh's exploration recorded them.
    CHECK(d.classify("<announce> 127.0.0.1 is connected as <user7>.").kind == Kind::member_joined);
    const auto alone = d.classify("<announce> already connected: nobody.");
    CHECK(alone.kind == Kind::roster);
    CHECK(alone.count == 1);
    const auto three = d.classify("<announce> already connected: 127.0.0.1 as <user4>, 127.0.0.1 as <user5>.");
    CHECK(three.kind == Kind::roster);
    CHECK(three.count == 3);
    CHECK(d.classify("<announce> <user6> is disconnected.").kind == Kind::member_left);
    // The second line of one relayed read comes without a prefix: still a message.
    CHECK(d.classify(payload).kind == Kind::message);
    CHECK(d.classify(payload).payload == payload);
  }
  SECTION("asio") {
    const auto& d = dialect_for(Protocol::asio);
    CHECK(d.protocol() == Protocol::asio);
    CHECK(d.echoes());
    CHECK(d.joined_on_connect());
    CHECK_FALSE(d.names_senders());
    std::string sent;
    d.encode_message(sent, payload);
    char head[8];
    std::snprintf(head, sizeof head, "%4d", static_cast<int>(payload.size()));
    CHECK(sent == std::string(head) + payload);
    // Two frames back to back, the second one incomplete.
    const std::string wire = sent + sent.substr(0, 10);
    std::string_view frame;
    std::size_t consumed = 0;
    REQUIRE(d.next_frame(wire, 4096, frame, consumed));
    CHECK(consumed == sent.size());
    const auto seen = d.classify(frame);
    CHECK(seen.kind == Kind::message);
    CHECK(seen.payload == payload);
    CHECK_FALSE(d.next_frame(std::string_view(wire).substr(consumed), 4096, frame, consumed));
  }
}

TEST_CASE("dialects: chat's other lines", "[bench][wire]") {
  const auto& d = dialect_for(Protocol::chat);
  const auto ping = d.classify("PING p7");
  CHECK(ping.kind == Kind::ping);
  CHECK(dialect_for(Protocol::chat).pong(ping.token) == "PONG p7\n");
  const auto users = d.classify("USERS a b c");
  CHECK(users.kind == Kind::roster);
  CHECK(users.count == 3);
  CHECK(d.classify("WELCOME x").kind == Kind::welcomed);
  CHECK(d.classify("JOIN x").kind == Kind::member_joined);
  CHECK(d.classify("LEAVE x quit bye").kind == Kind::member_left);
  CHECK(d.classify("BYE shutdown").kind == Kind::refused);
  CHECK(d.classify("ERROR too-long line over 4096 bytes").kind == Kind::error);
  CHECK(d.classify("STATS clients=1").kind == Kind::stats);
  CHECK(d.classify("# chatserver 0.1.0").kind == Kind::other);
  CHECK(d.classify("").kind == Kind::other);
  CHECK(d.classify("MSGX b3 hi").kind == Kind::other);
}

TEST_CASE("dialects: IRC's other lines", "[bench][wire]") {
  const auto& d = dialect_for(Protocol::irc);
  const auto ping = d.classify("PING :abc");
  CHECK(ping.kind == Kind::ping);
  CHECK(dialect_for(Protocol::irc).pong(ping.token) == "PONG :abc\r\n");
  CHECK(d.classify(":srv 001 b1 :Welcome").kind == Kind::welcomed);
  const auto names = d.classify(":srv 353 b1 = #chat :b1 b2 @b3");
  CHECK(names.kind == Kind::roster);
  CHECK(names.count == 3);
  CHECK(d.classify(":srv 366 b1 #chat :End").kind == Kind::roster_end);
  CHECK(d.classify(":srv 433 * b1 :in use").kind == Kind::refused);
  CHECK(d.classify("ERROR :Closing connection").kind == Kind::refused);
  CHECK(d.classify(":srv 422 b1 :MOTD File is missing").kind == Kind::other);
  const auto join = d.classify(":b2!~b2@localhost JOIN :#chat");
  CHECK(join.kind == Kind::member_joined);
  CHECK(join.from == "b2");
  CHECK(d.classify(":b2!~b2@localhost QUIT :gone").kind == Kind::member_left);
  CHECK(d.classify(":b2!~b2@localhost PART #chat").kind == Kind::member_left);
}

TEST_CASE("dialects: ncat's announcements", "[bench][wire]") {
  const auto& d = dialect_for(Protocol::line);
  CHECK(d.classify("<announce> 127.0.0.1 is connected as <user5>.").kind == Kind::member_joined);
  CHECK(d.classify("<announce> <user5> is disconnected.").kind == Kind::member_left);
  CHECK(d.classify("<announce> already connected: nobody.").kind == Kind::roster);  // the newcomer's roster
  // A line without "<userN> " is a message too: an intact one (the second line of one relayed
  // read) decodes, a piece does not.
  const auto piece = d.classify("3a9f0c:1:2");
  CHECK(piece.kind == Kind::message);
  CHECK(piece.payload == "3a9f0c:1:2");
}

TEST_CASE("next_frame: delimiters, incomplete and over-long frames", "[bench][wire]") {
  const auto& chat = dialect_for(Protocol::chat);
  std::string_view frame;
  std::size_t consumed = 99;

  SECTION("CR LF and LF are both stripped") {
    REQUIRE(chat.next_frame("abc\r\ndef\n", 100, frame, consumed));
    CHECK(frame == "abc");
    CHECK(consumed == 5);
    REQUIRE(chat.next_frame("def\n", 100, frame, consumed));
    CHECK(frame == "def");
    CHECK(consumed == 4);
    REQUIRE(chat.next_frame("\n", 100, frame, consumed));
    CHECK(frame.empty());
    CHECK(consumed == 1);
  }
  SECTION("an incomplete frame waits for more") {
    CHECK_FALSE(chat.next_frame("", 100, frame, consumed));
    CHECK_FALSE(chat.next_frame("MSG b1 hal", 100, frame, consumed));
    CHECK_FALSE(chat.next_frame("MSG b1 hal\r", 100, frame, consumed));
  }
  SECTION("a frame of exactly max_frame bytes is fine, with LF or CR LF") {
    const std::string body(100, 'x');
    REQUIRE(chat.next_frame(body + "\n", 100, frame, consumed));
    CHECK(frame.size() == 100);
    CHECK(consumed == 101);
    REQUIRE(chat.next_frame(body + "\r\n", 100, frame, consumed));
    CHECK(frame.size() == 100);
    CHECK(consumed == 102);
  }
  SECTION("an over-long frame: true with consumed 0") {
    const std::string body(500, 'x');
    REQUIRE(chat.next_frame(body, 100, frame, consumed));
    CHECK(consumed == 0);
    consumed = 99;
    REQUIRE(chat.next_frame(body + "\n", 100, frame, consumed));
    CHECK(consumed == 0);
    consumed = 99;
    REQUIRE(dialect_for(Protocol::irc).next_frame(body + "\r\n", 100, frame, consumed));
    CHECK(consumed == 0);
  }
  SECTION("asio: a header that is not a %4d length, or a body over 512 bytes") {
    const auto& asio = dialect_for(Protocol::asio);
    CHECK_FALSE(asio.next_frame("  1", 4096, frame, consumed));  // header incomplete
    for (std::string_view bad : {"12x4hello", "abcdhello", " -12hello", "1 23hello", "\n\n\n\n"}) {
      INFO("\"" << bad << "\"");
      consumed = 99;
      REQUIRE(asio.next_frame(bad, 4096, frame, consumed));
      CHECK(consumed == 0);
    }
    consumed = 99;
    REQUIRE(asio.next_frame("0513" + std::string(513, 'x'), 4096, frame, consumed));
    CHECK(consumed == 0);
    consumed = 99;
    REQUIRE(asio.next_frame(" 513", 4096, frame, consumed));  // refused on the header alone
    CHECK(consumed == 0);
    // 512 is the largest body, and "0005" (zero-padded) is a length too.
    REQUIRE(asio.next_frame(" 512" + std::string(512, 'y'), 4096, frame, consumed));
    CHECK(consumed == 516);
    CHECK(frame.size() == 512);
    REQUIRE(asio.next_frame("0005hello", 4096, frame, consumed));
    CHECK(frame == "hello");
    CHECK(consumed == 9);
    CHECK_FALSE(asio.next_frame("   5hell", 4096, frame, consumed));
  }
}

// Dialect::next_frame's contract (wire.hpp): "A frame longer than `max_frame` makes `consumed`
// 0". The search for the LF allows one more byte for a CR; a bare LF there is still too long.
TEST_CASE("next_frame: a frame one byte over max_frame, with a bare LF, is over-long", "[bench][wire]") {
  const auto& chat = dialect_for(Protocol::chat);
  std::string_view frame;
  std::size_t consumed = 99;
  REQUIRE(chat.next_frame(std::string(101, 'x') + "\n", 100, frame, consumed));
  CHECK(consumed == 0);
}

TEST_CASE("protocol names round trip", "[bench][wire]") {
  for (auto p : {Protocol::chat, Protocol::line, Protocol::irc, Protocol::asio}) {
    INFO(to_string(p));
    const auto back = protocol_from(to_string(p));
    REQUIRE(back.has_value());
    CHECK(*back == p);
    CHECK(dialect_for(p).protocol() == p);
  }
  CHECK(to_string(Protocol::chat) == "chat");
  CHECK(to_string(Protocol::line) == "line");
  CHECK(to_string(Protocol::irc) == "irc");
  CHECK(to_string(Protocol::asio) == "asio");
  CHECK_FALSE(protocol_from("IRC").has_value());
  CHECK_FALSE(protocol_from("").has_value());
  CHECK_FALSE(protocol_from("ncat").has_value());
}

TEST_CASE("asio: a header is spaces, then digits only, anything else is out of step", "[bench][wire]") {
  const auto& asio = dialect_for(Protocol::asio);
  std::string_view frame;
  std::size_t consumed = 99;
  for (std::string_view bad : {" 0 5hello", "0  5hello", "    hello", "12a4hello", "-005hello"}) {
    INFO("\"" << bad << "\"");
    consumed = 99;
    REQUIRE(asio.next_frame(bad, 4096, frame, consumed));
    CHECK(consumed == 0);
  }
  REQUIRE(asio.next_frame("   0", 4096, frame, consumed));  // an empty message is a message
  CHECK(frame.empty());
  CHECK(consumed == 4);
}

TEST_CASE("chat: a PING without a token gets a bare PONG", "[bench][wire]") {
  const auto seen = dialect_for(Protocol::chat).classify("PING");
  CHECK(seen.kind == Seen::Kind::ping);
  CHECK(dialect_for(Protocol::chat).pong(seen.token) == "PONG\n");
}
