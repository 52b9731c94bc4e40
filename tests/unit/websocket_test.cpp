#include "common/websocket.hpp"

#include "common/http.hpp"
#include "common/text.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

using chat::ws::MessageReader;
using chat::ws::Opcode;
using Kind = MessageReader::Event::Kind;
using Role = MessageReader::Role;
using Mask = std::array<std::uint8_t, 4>;
namespace close_code = chat::ws::close_code;

namespace {

// Builds a string from raw bytes, so that test inputs can hold any byte (NUL included).
std::string bytes(std::initializer_list<int> list) {
  std::string out;
  for (int b : list) out += static_cast<char>(b);
  return out;
}

// What the reader reported, copied out of the callback (Event::payload dies with it).
struct Got {
  Kind kind;
  std::string payload;
  std::uint16_t code = 0;
  std::string detail;
  bool operator==(const Got&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Got& g) {
  static constexpr const char* names[] = {"text", "binary", "ping", "pong", "close", "fail"};
  os << names[static_cast<int>(g.kind)];
  if (g.payload.size() > 40) {
    os << " (" << g.payload.size() << " bytes)";
  } else {
    os << " '" << g.payload << "'";
  }
  if (g.code != 0) os << " " << g.code;
  if (!g.detail.empty()) os << " (" << g.detail << ")";
  return os;
}

Got text(std::string s) { return Got{Kind::text, std::move(s), 0, {}}; }
Got binary(std::string s) { return Got{Kind::binary, std::move(s), 0, {}}; }
Got ping(std::string s) { return Got{Kind::ping, std::move(s), 0, {}}; }
Got pong(std::string s) { return Got{Kind::pong, std::move(s), 0, {}}; }
Got closed(std::uint16_t code, std::string reason = {}) { return Got{Kind::close, std::move(reason), code, {}}; }
Got failure(std::uint16_t code, std::string detail) { return Got{Kind::fail, {}, code, std::move(detail)}; }

using Events = std::vector<Got>;

Events feed(MessageReader& reader, std::string_view in) {
  Events out;
  reader.feed(in, [&](const MessageReader::Event& e) {
    out.push_back(Got{e.kind, std::string(e.payload), e.code, e.detail});
  });
  return out;
}

MessageReader::Options server(std::size_t max_message = 4096, bool text_only = true) {
  return {Role::server, max_message, text_only};
}
MessageReader::Options client(std::size_t max_message = 4096, bool text_only = true) {
  return {Role::client, max_message, text_only};
}

Events read(MessageReader::Options options, std::string_view in) {
  MessageReader reader(options);
  return feed(reader, in);
}

// Feeds one byte at a time; a breach of the memory bound shows up as an event no comparison expects.
Events read_bytewise(MessageReader::Options options, std::string_view in) {
  MessageReader reader(options);
  Events out;
  for (const char c : in) {
    const auto got = feed(reader, std::string_view(&c, 1));
    out.insert(out.end(), got.begin(), got.end());
    if (reader.buffered() > options.max_message + 139) out.push_back(failure(0, "buffered() over the bound"));
  }
  return out;
}

// Feeds pieces of 0 to max_piece bytes, cut by `rng`.
Events read_split(MessageReader::Options options, std::string_view in, std::mt19937& rng, std::size_t max_piece) {
  MessageReader reader(options);
  Events out;
  std::uniform_int_distribution<std::size_t> piece(0, max_piece);
  while (!in.empty()) {
    const std::size_t n = std::min(piece(rng), in.size());
    const auto got = feed(reader, in.substr(0, n));
    out.insert(out.end(), got.begin(), got.end());
    in.remove_prefix(n);
  }
  return out;
}

const Mask rfc_mask{0x37, 0xfa, 0x21, 0x3d};  // the key of RFC 6455 5.7's examples
const Mask key{0x12, 0x34, 0x56, 0x78};

// A client's (masked) frame.
std::string masked(Opcode op, std::string_view payload, bool fin = true) {
  return chat::ws::make_frame(op, payload, &key, fin);
}
std::string unmasked(Opcode op, std::string_view payload, bool fin = true) {
  return chat::ws::make_frame(op, payload, nullptr, fin);
}

// The only event of `in`, which must be a failure.
Got failure_of(MessageReader::Options options, std::string_view in) {
  MessageReader reader(options);
  const Events got = feed(reader, in);
  INFO("events: " << ::Catch::Detail::stringify(got));
  REQUIRE(got.size() == 1);
  CHECK(reader.failed());
  CHECK_FALSE(reader.closed());
  // Nothing more, whatever follows.
  CHECK(feed(reader, masked(Opcode::text, "after") + unmasked(Opcode::text, "after")).empty());
  return got.front();
}

}  // namespace

TEST_CASE("accept_key: RFC 6455's example", "[websocket]") {
  // RFC 6455 1.3 (and 4.2.2): the value every implementation agrees on.
  CHECK(chat::ws::accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  // Wikipedia's example, and the empty key (SHA-1 of the GUID alone).
  CHECK(chat::ws::accept_key("x3JJHMbDL1EzLkh9GBhXDw==") == "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
  CHECK(chat::ws::accept_key("").size() == 28);
}

TEST_CASE("valid_client_key: base64 of 16 bytes", "[websocket]") {
  CHECK(chat::ws::valid_client_key("dGhlIHNhbXBsZSBub25jZQ=="));
  CHECK(chat::ws::valid_client_key("AAAAAAAAAAAAAAAAAAAAAA=="));
  CHECK(chat::ws::valid_client_key("/+/+/+/+/+/+/+/+/+/+/w=="));
  CHECK_FALSE(chat::ws::valid_client_key(""));
  CHECK_FALSE(chat::ws::valid_client_key("dGhlIHNhbXBsZSBub25jZQ="));    // 23 characters
  CHECK_FALSE(chat::ws::valid_client_key("dGhlIHNhbXBsZSBub25jZQ==="));  // 25
  CHECK_FALSE(chat::ws::valid_client_key("dGhlIHNhbXBsZSBub25jZQAA"));   // no padding: 18 bytes
  CHECK_FALSE(chat::ws::valid_client_key("dGhlIHNhbXBsZSBub25jZ==="));
  CHECK_FALSE(chat::ws::valid_client_key("dGhlIHNhbXBsZSBub25jZ-=="));  // base64url is not base64
  CHECK_FALSE(chat::ws::valid_client_key("dGhlIHNhbXBsZSBub25j Q=="));
}

TEST_CASE("describe_close and the codes allowed on the wire", "[websocket]") {
  CHECK(chat::ws::describe_close(close_code::going_away) == "going away");
  CHECK(chat::ws::describe_close(close_code::protocol_error) == "protocol error");
  CHECK(chat::ws::describe_close(close_code::too_big) == "message too big");
  CHECK(chat::ws::describe_close(close_code::try_again_later) == "try again later");
  CHECK(chat::ws::describe_close(4000).empty());
  CHECK(chat::ws::describe_close(0).empty());
  for (const int code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000, 4999}) {
    INFO(code);
    CHECK(chat::ws::close_code_allowed_on_wire(static_cast<std::uint16_t>(code)));
  }
  for (const int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535}) {
    INFO(code);
    CHECK_FALSE(chat::ws::close_code_allowed_on_wire(static_cast<std::uint16_t>(code)));
  }
}

TEST_CASE("RFC 6455 5.7: the example frames, written and read", "[websocket]") {
  SECTION("a single-frame unmasked text message") {
    const auto frame = bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
    CHECK(unmasked(Opcode::text, "Hello") == frame);
    CHECK(read(client(), frame) == Events{text("Hello")});
    CHECK(read(server(), frame) == Events{failure(close_code::protocol_error, "frame not masked")});
  }
  SECTION("a single-frame masked text message") {
    const auto frame = bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
    CHECK(chat::ws::make_frame(Opcode::text, "Hello", &rfc_mask) == frame);
    CHECK(read(server(), frame) == Events{text("Hello")});
    CHECK(read(client(), frame) == Events{failure(close_code::protocol_error, "masked frame from the server")});
  }
  SECTION("a fragmented unmasked text message") {
    const auto first = bytes({0x01, 0x03, 0x48, 0x65, 0x6c});
    const auto second = bytes({0x80, 0x02, 0x6c, 0x6f});
    CHECK(unmasked(Opcode::text, "Hel", false) == first);
    CHECK(unmasked(Opcode::continuation, "lo") == second);
    MessageReader reader(client());
    CHECK(feed(reader, first).empty());
    CHECK(reader.buffered() == 3);
    CHECK(feed(reader, second) == Events{text("Hello")});
    CHECK(reader.buffered() == 0);
  }
  SECTION("an unmasked ping and a masked pong") {
    const auto ping_frame = bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
    const auto pong_frame = bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
    CHECK(unmasked(Opcode::ping, "Hello") == ping_frame);
    CHECK(chat::ws::make_frame(Opcode::pong, "Hello", &rfc_mask) == pong_frame);
    CHECK(read(client(), ping_frame) == Events{ping("Hello")});
    CHECK(read(server(), pong_frame) == Events{pong("Hello")});
  }
  SECTION("256 bytes of binary data in a single unmasked frame") {
    const std::string payload(256, '\xAB');
    const auto frame = unmasked(Opcode::binary, payload);
    CHECK(frame.substr(0, 4) == bytes({0x82, 0x7E, 0x01, 0x00}));
    CHECK(frame.size() == 4 + 256);
    CHECK(read(client(4096, false), frame) == Events{binary(payload)});
  }
  SECTION("64 KiB of binary data in a single unmasked frame") {
    std::string payload(65536, '\0');
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7);
    const auto frame = unmasked(Opcode::binary, payload);
    CHECK(frame.substr(0, 10) == bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}));
    CHECK(frame.size() == 10 + 65536);
    CHECK(read(client(65536, false), frame) == Events{binary(payload)});
    CHECK(read(client(65535, false), frame) == Events{failure(close_code::too_big, "message over 65535 bytes")});
  }
}

TEST_CASE("frame_header: the three length forms, with and without a mask", "[websocket]") {
  char out[chat::ws::max_header];
  const auto header = [&](std::uint64_t size, const Mask* mask = nullptr, bool fin = true, Opcode op = Opcode::binary) {
    return std::string(out, chat::ws::frame_header(op, size, out, mask, fin));
  };
  CHECK(header(0) == bytes({0x82, 0x00}));
  CHECK(header(125) == bytes({0x82, 0x7D}));
  CHECK(header(126) == bytes({0x82, 0x7E, 0x00, 0x7E}));
  CHECK(header(65535) == bytes({0x82, 0x7E, 0xFF, 0xFF}));
  CHECK(header(65536) == bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0, 0}));
  CHECK(header(0x7FFF'FFFF'FFFF'FFFFu) == bytes({0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}));
  CHECK(header(5, &rfc_mask) == bytes({0x82, 0x85, 0x37, 0xfa, 0x21, 0x3d}));
  CHECK(header(70000, &rfc_mask).size() == chat::ws::max_header);
  CHECK(header(3, nullptr, false, Opcode::text) == bytes({0x01, 0x03}));
  CHECK(header(0, nullptr, true, Opcode::continuation) == bytes({0x80, 0x00}));
  CHECK(header(2, nullptr, true, Opcode::close) == bytes({0x88, 0x02}));
}

TEST_CASE("apply_mask in pieces equals apply_mask at once, and undoes itself", "[websocket]") {
  std::mt19937 rng(7);
  std::string original(1000, '\0');
  for (char& c : original) c = static_cast<char>(rng());
  std::string whole = original;
  chat::ws::apply_mask(whole.data(), whole.size(), rfc_mask);
  for (std::size_t i = 0; i < 12; ++i) {
    INFO("byte " << i);
    CHECK(static_cast<std::uint8_t>(whole[i] ^ original[i]) == rfc_mask[i % 4]);
  }
  for (const std::size_t piece : {1, 3, 5, 7, 8, 9, 13, 64, 999}) {
    std::string pieces = original;
    for (std::size_t at = 0; at < pieces.size(); at += piece) {
      chat::ws::apply_mask(pieces.data() + at, std::min(piece, pieces.size() - at), rfc_mask, at);
    }
    INFO("pieces of " << piece);
    CHECK(pieces == whole);
  }
  chat::ws::apply_mask(whole.data(), whole.size(), rfc_mask);
  CHECK(whole == original);
}

TEST_CASE("close_frame: code, reason cut at a UTF-8 boundary, 1005 empty", "[websocket]") {
  CHECK(chat::ws::close_frame(close_code::normal, "bye") == bytes({0x88, 0x05, 0x03, 0xE8, 'b', 'y', 'e'}));
  CHECK(chat::ws::close_frame(close_code::going_away) == bytes({0x88, 0x02, 0x03, 0xE9}));
  CHECK(chat::ws::close_frame(close_code::no_status, "dropped") == bytes({0x88, 0x00}));
  SECTION("a reason of 123 bytes fits, 124 is cut") {
    const std::string fits(123, 'r');
    CHECK(read(client(), chat::ws::close_frame(close_code::policy, fits)) == Events{closed(close_code::policy, fits)});
    CHECK(read(client(), chat::ws::close_frame(close_code::policy, fits + "s")) ==
          Events{closed(close_code::policy, fits)});
  }
  SECTION("a cut never splits a code point") {
    std::string eacute;
    for (int i = 0; i < 100; ++i) eacute += "\xC3\xA9";  // 2 bytes: 61 fit in 123
    CHECK(read(client(), chat::ws::close_frame(close_code::normal, eacute)) ==
          Events{closed(close_code::normal, eacute.substr(0, 122))});
    std::string euro = "x";
    for (int i = 0; i < 50; ++i) euro += "\xE2\x82\xAC";  // 1 + 3 * 40 = 121 bytes fit
    CHECK(read(client(), chat::ws::close_frame(close_code::normal, euro)) ==
          Events{closed(close_code::normal, euro.substr(0, 121))});
    std::string emoji;
    for (int i = 0; i < 40; ++i) emoji += "\xF0\x9F\x98\x80";  // 4 bytes: 30 fit in 123
    CHECK(read(client(), chat::ws::close_frame(close_code::normal, emoji)) ==
          Events{closed(close_code::normal, emoji.substr(0, 120))});
  }
  SECTION("masked, as a client sends it") {
    CHECK(read(server(), chat::ws::close_frame(close_code::going_away, "tab closed", &key)) ==
          Events{closed(close_code::going_away, "tab closed")});
    CHECK(read(server(), chat::ws::close_frame(close_code::no_status, {}, &key)) ==
          Events{closed(close_code::no_status)});
  }
}

TEST_CASE("MessageReader delivers messages and control frames in stream order", "[websocket]") {
  MessageReader reader(server());
  const std::string stream = masked(Opcode::text, "one") + masked(Opcode::ping, "p1") + masked(Opcode::text, "") +
                             masked(Opcode::pong, "") + masked(Opcode::text, "caf\xC3\xA9");
  CHECK(feed(reader, stream) == Events{text("one"), ping("p1"), text(""), pong(""), text("caf\xC3\xA9")});
  CHECK(reader.buffered() == 0);
  CHECK_FALSE(reader.failed());
  CHECK_FALSE(reader.closed());
  CHECK(reader.options().max_message == 4096);
}

TEST_CASE("MessageReader: pings and pongs between fragments leave the message alone", "[websocket]") {
  const std::string stream = masked(Opcode::text, "Hel", false) + masked(Opcode::ping, "are you there?") +
                             masked(Opcode::continuation, "", false) + masked(Opcode::pong, "yes") +
                             masked(Opcode::continuation, "lo, ", false) + masked(Opcode::ping, "") +
                             masked(Opcode::continuation, "world");
  const Events want{ping("are you there?"), pong("yes"), ping(""), text("Hello, world")};
  CHECK(read(server(), stream) == want);
  CHECK(read_bytewise(server(), stream) == want);
  // A close between fragments ends the stream there; the half message is dropped.
  CHECK(read(server(), masked(Opcode::text, "Hel", false) + chat::ws::close_frame(1000, "bye", &key) +
                           masked(Opcode::continuation, "lo")) == Events{closed(1000, "bye")});
}

TEST_CASE("MessageReader: a message of exactly max_message, fragmented or not", "[websocket]") {
  const std::string full(100, 'm');
  CHECK(read(server(100), masked(Opcode::text, full)) == Events{text(full)});
  CHECK(read(server(100), masked(Opcode::text, full.substr(0, 60), false) + masked(Opcode::continuation, "", false) +
                              masked(Opcode::continuation, full.substr(60))) == Events{text(full)});
  CHECK(read(server(0), masked(Opcode::text, "")) == Events{text("")});
  // Control frames are not counted against max_message.
  CHECK(read(server(0), masked(Opcode::ping, "ping payload")) == Events{ping("ping payload")});
}

TEST_CASE("MessageReader: binary messages when text_only is off", "[websocket]") {
  const std::string payload = bytes({0x00, 0xFF, 0xC0, 0x80});  // not UTF-8, and needs not be
  CHECK(read(server(4096, false), masked(Opcode::binary, payload)) == Events{binary(payload)});
  CHECK(read(server(4096, false), masked(Opcode::binary, payload.substr(0, 1), false) +
                                      masked(Opcode::continuation, payload.substr(1))) == Events{binary(payload)});
}

TEST_CASE("MessageReader: the close frame", "[websocket]") {
  SECTION("with a code and a reason") {
    MessageReader reader(server());
    CHECK(feed(reader, chat::ws::close_frame(close_code::going_away, "tab closed", &key) + masked(Opcode::text, "x")) ==
          Events{closed(close_code::going_away, "tab closed")});
    CHECK(reader.closed());
    CHECK_FALSE(reader.failed());
    CHECK(reader.buffered() == 0);
    CHECK(feed(reader, masked(Opcode::text, "ignored")).empty());
  }
  SECTION("empty: 1005") { CHECK(read(server(), masked(Opcode::close, "")) == Events{closed(close_code::no_status)}); }
  SECTION("every code allowed on the wire is reported as sent") {
    for (const int code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999}) {
      INFO(code);
      CHECK(read(server(), chat::ws::close_frame(static_cast<std::uint16_t>(code), "", &key)) ==
            Events{closed(static_cast<std::uint16_t>(code))});
    }
  }
}

TEST_CASE("MessageReader fails with the code websockets 10.4 sends", "[websocket]") {
  using close_code::protocol_error;
  SECTION("a server's frame not masked, a client's frame masked: 1002") {
    CHECK(failure_of(server(), unmasked(Opcode::text, "hi")) == failure(protocol_error, "frame not masked"));
    CHECK(failure_of(server(), unmasked(Opcode::ping, "")) == failure(protocol_error, "frame not masked"));
    CHECK(failure_of(client(), masked(Opcode::text, "hi")) == failure(protocol_error, "masked frame from the server"));
  }
  SECTION("reserved bits: 1002, from the first two bytes") {
    for (const int rsv : {0x40, 0x20, 0x10, 0x70}) {
      INFO("RSV bits " << rsv);
      CHECK(failure_of(server(), bytes({0x81 | rsv, 0x80})) == failure(protocol_error, "reserved bits set"));
    }
  }
  SECTION("unknown opcodes: 1002") {
    for (const int op : {3, 4, 5, 6, 7, 11, 12, 13, 14, 15}) {
      INFO("opcode " << op);
      CHECK(failure_of(server(), bytes({0x80 | op, 0x80})) ==
            failure(protocol_error, "unknown opcode " + std::to_string(op)));
    }
  }
  SECTION("a control frame without FIN: 1002") {
    for (const Opcode op : {Opcode::ping, Opcode::pong, Opcode::close}) {
      std::string frame = masked(op, "");
      frame[0] = static_cast<char>(frame[0] & 0x7F);
      CHECK(failure_of(server(), frame) == failure(protocol_error, "fragmented control frame"));
    }
  }
  SECTION("a control frame over 125 bytes: 1002, from its header") {
    CHECK(failure_of(server(), bytes({0x89, 0xFE, 0x00, 0x7E})) ==
          failure(protocol_error, "control frame over 125 bytes"));
    CHECK(failure_of(server(), bytes({0x88, 0xFF})) == failure(protocol_error, "control frame over 125 bytes"));
    CHECK(failure_of(client(), bytes({0x8A, 0x7E})) == failure(protocol_error, "control frame over 125 bytes"));
    // make_frame writes such frames when asked, for tests and chatlab.
    CHECK(failure_of(server(), masked(Opcode::ping, std::string(126, 'p'))) ==
          failure(protocol_error, "control frame over 125 bytes"));
    CHECK(failure_of(server(), masked(Opcode::pong, "", false)) == failure(protocol_error, "fragmented control frame"));
  }
  SECTION("a continuation without a message: 1002") {
    CHECK(failure_of(server(), masked(Opcode::continuation, "lo")) ==
          failure(protocol_error, "continuation without a message"));
    CHECK(read(server(), masked(Opcode::text, "done") + masked(Opcode::continuation, "more")) ==
          Events{text("done"), failure(protocol_error, "continuation without a message")});
  }
  SECTION("a new message inside a fragmented one: 1002") {
    CHECK(failure_of(server(), masked(Opcode::text, "Hel", false) + masked(Opcode::text, "lo")) ==
          failure(protocol_error, "new message inside a fragmented one"));
    CHECK(failure_of(server(4096, false), masked(Opcode::text, "Hel", false) + masked(Opcode::binary, "lo")) ==
          failure(protocol_error, "new message inside a fragmented one"));
  }
  SECTION("a binary message when text_only: 1003, from its first two bytes") {
    CHECK(failure_of(server(), bytes({0x82, 0x85})) ==
          failure(close_code::unsupported_data, "binary message (text only here)"));
    CHECK(failure_of(server(), bytes({0x02, 0xFF})) ==
          failure(close_code::unsupported_data, "binary message (text only here)"));
  }
  SECTION("invalid UTF-8 in a text message: 1007, at the first bad byte") {
    // The header announces 100 bytes; the first is already wrong.
    CHECK(failure_of(server(), bytes({0x81, 0xE4, 0, 0, 0, 0, 0xFF})) ==
          failure(close_code::invalid_payload, "invalid UTF-8 in a text message"));
    for (const std::string& bad : {bytes({0xC0, 0x80}),              // overlong NUL
                                   bytes({0xE0, 0x80, 0xAF}),        // overlong '/'
                                   bytes({0xED, 0xA0, 0x80}),        // surrogate U+D800
                                   bytes({0xF4, 0x90, 0x80, 0x80}),  // U+110000
                                   bytes({0xF5, 0x80, 0x80, 0x80}),  // no such lead byte
                                   bytes({0x80}),                    // continuation first
                                   bytes({0xC3, 0x28})}) {           // lead, then ASCII
      INFO(::Catch::Detail::stringify(bad));
      CHECK(failure_of(server(), masked(Opcode::text, "ok " + bad + " more")) ==
            failure(close_code::invalid_payload, "invalid UTF-8 in a text message"));
    }
  }
  SECTION("invalid UTF-8: per fragment, and at the end of the last one") {
    // A code point may straddle fragments...
    CHECK(read(server(), masked(Opcode::text, "1 \xE2\x82", false) + masked(Opcode::continuation, "\xAC")) ==
          Events{text("1 \xE2\x82\xAC")});
    // ...but a bad byte in the first fragment fails before the next one comes.
    CHECK(failure_of(server(), masked(Opcode::text, "1 \xE2\x28", false)) ==
          failure(close_code::invalid_payload, "invalid UTF-8 in a text message"));
    // A message may not end inside one.
    CHECK(failure_of(server(), masked(Opcode::text, "1 \xE2\x82", false) + masked(Opcode::continuation, "")) ==
          failure(close_code::invalid_payload, "invalid UTF-8 in a text message"));
    CHECK(failure_of(server(), masked(Opcode::text, "\xF0\x9F\x98")) ==
          failure(close_code::invalid_payload, "invalid UTF-8 in a text message"));
  }
  SECTION("a message over max_message: 1009, from the header, before its payload") {
    // 101 bytes announced; nothing of the payload (or even the mask) is sent.
    CHECK(failure_of(server(100), bytes({0x81, 0xE5})) == failure(close_code::too_big, "message over 100 bytes"));
    CHECK(failure_of(server(), bytes({0x81, 0xFF, 0, 0, 0, 0, 0, 0xA0, 0, 0})) ==
          failure(close_code::too_big, "message over 4096 bytes"));
    // Fragments: the one that would take the message over fails at its header.
    CHECK(failure_of(server(100), masked(Opcode::text, std::string(60, 'a'), false) + bytes({0x80, 0xA9})) ==
          failure(close_code::too_big, "message over 100 bytes"));
    CHECK(failure_of(server(0), bytes({0x81, 0x81})) == failure(close_code::too_big, "message over 0 bytes"));
  }
  SECTION("a 64-bit length with its top bit set: 1002") {
    CHECK(failure_of(server(), bytes({0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0})) ==
          failure(protocol_error, "64-bit length with the top bit set"));
    CHECK(failure_of(client(4096, false), bytes({0x82, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})) ==
          failure(protocol_error, "64-bit length with the top bit set"));
  }
  SECTION("a close frame of 1 byte: 1002") {
    CHECK(failure_of(server(), masked(Opcode::close, "\x03")) == failure(protocol_error, "close frame of 1 byte"));
  }
  SECTION("a close code not allowed on the wire: 1002") {
    for (const int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535}) {
      INFO(code);
      const std::string payload = bytes({code >> 8, code & 0xFF}) + "reason";
      CHECK(failure_of(server(), masked(Opcode::close, payload)) ==
            failure(protocol_error, "bad close code " + std::to_string(code)));
    }
  }
  SECTION("a close reason that is not UTF-8: 1007") {
    CHECK(failure_of(server(), masked(Opcode::close, bytes({0x03, 0xE8, 0xFF}))) ==
          failure(close_code::invalid_payload, "invalid UTF-8 in a close reason"));
    CHECK(failure_of(server(), masked(Opcode::close, bytes({0x03, 0xE8, 'o', 'k', 0xC3}))) ==
          failure(close_code::invalid_payload, "invalid UTF-8 in a close reason"));
  }
}

TEST_CASE("MessageReader: events before a failure are delivered, nothing after", "[websocket]") {
  MessageReader reader(server());
  CHECK(feed(reader, masked(Opcode::text, "fine") + unmasked(Opcode::text, "bad") + masked(Opcode::text, "lost")) ==
        Events{text("fine"), failure(close_code::protocol_error, "frame not masked")});
  CHECK(reader.failed());
  CHECK(reader.buffered() == 0);
  CHECK(feed(reader, masked(Opcode::text, "ignored")).empty());
}

namespace {

// A long stream a client could send: text messages of every length form, fragmented ones with
// control frames between the fragments, empty frames, multi-byte UTF-8 straddling fragment
// boundaries; then a close.
std::string long_stream(std::mt19937& rng, Events& want) {
  static const std::string alphabet[] = {"a", "b", " ", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\t"};
  const auto random_text = [&](std::size_t n) {
    std::string s;
    while (s.size() < n) s += alphabet[rng() % std::size(alphabet)];
    return s;
  };
  std::string stream;
  for (const std::size_t size : {0, 1, 125, 126, 127, 1000, 65535, 65536, 70000, 3, 0}) {
    const std::string message = random_text(size);
    const std::size_t pieces = 1 + rng() % 4;
    std::size_t at = 0;
    for (std::size_t p = 0; p < pieces; ++p) {
      const bool last = p + 1 == pieces;
      const std::size_t n = last ? message.size() - at : std::min(message.size() - at, std::size_t(rng() % 400));
      const Mask frame_key{static_cast<std::uint8_t>(rng()), static_cast<std::uint8_t>(rng()),
                           static_cast<std::uint8_t>(rng()), static_cast<std::uint8_t>(rng())};
      stream += chat::ws::make_frame(p == 0 ? Opcode::text : Opcode::continuation,
                                     std::string_view(message).substr(at, n), &frame_key, last);
      at += n;
      if (!last && rng() % 2) {
        const std::string token = "ping " + std::to_string(stream.size());
        stream += masked(Opcode::ping, token);
        want.push_back(ping(token));
      }
    }
    want.push_back(text(message));
  }
  stream += chat::ws::close_frame(close_code::normal, "done", &key);
  want.push_back(closed(close_code::normal, "done"));
  stream += masked(Opcode::text, "after the close");
  return stream;
}

}  // namespace

TEST_CASE("MessageReader: however the bytes are cut, the same events", "[websocket]") {
  std::mt19937 rng(2024);
  Events want;
  const std::string stream = long_stream(rng, want);
  const auto options = server(80000);
  CHECK(read(options, stream) == want);
  CHECK(read_bytewise(options, stream) == want);
  for (const std::size_t max_piece : {2, 13, 200, 5000, 100000}) {
    INFO("pieces up to " << max_piece);
    CHECK(read_split(options, stream, rng, max_piece) == want);
  }
  // A failing stream fails at the same place whatever the cuts.
  const std::string failing = stream.substr(0, stream.size() / 2) + masked(Opcode::continuation, "x");
  const Events failed_whole = read(options, failing);
  REQUIRE_FALSE(failed_whole.empty());
  CHECK(failed_whole.back().kind == Kind::fail);
  CHECK(read_bytewise(options, failing) == failed_whole);
  CHECK(read_split(options, failing, rng, 300) == failed_whole);
}

TEST_CASE("MessageReader: make_frame round trips, every length form, both roles", "[websocket]") {
  std::mt19937 rng(99);
  for (const std::size_t size : {0, 1, 124, 125, 126, 127, 65535, 65536, 65537, 200000}) {
    std::string payload(size, '\0');
    for (char& c : payload) c = static_cast<char>(rng());
    const Mask frame_key{static_cast<std::uint8_t>(rng()), static_cast<std::uint8_t>(rng()),
                         static_cast<std::uint8_t>(rng()), static_cast<std::uint8_t>(rng())};
    INFO("size " << size);
    CHECK(read(server(size, false), chat::ws::make_frame(Opcode::binary, payload, &frame_key)) ==
          Events{binary(payload)});
    CHECK(read(client(size, false), chat::ws::make_frame(Opcode::binary, payload)) == Events{binary(payload)});
    // A header written alone and a payload masked in pieces make the same frame.
    char header[chat::ws::max_header];
    std::string frame(header, chat::ws::frame_header(Opcode::binary, size, header, &frame_key));
    const std::size_t header_size = frame.size();
    frame += payload;
    for (std::size_t at = 0; at < size; at += 1000) {
      chat::ws::apply_mask(frame.data() + header_size + at, std::min<std::size_t>(1000, size - at), frame_key, at);
    }
    CHECK(frame == chat::ws::make_frame(Opcode::binary, payload, &frame_key));
  }
  // Control frames up to 125 bytes.
  const std::string most(125, 'p');
  CHECK(read(server(), masked(Opcode::ping, most)) == Events{ping(most)});
  CHECK(read(client(), unmasked(Opcode::pong, most)) == Events{pong(most)});
}

TEST_CASE("MessageReader: memory stays bounded while a 10 MB message comes in", "[websocket]") {
  std::mt19937 rng(10);
  constexpr std::size_t ten_mb = 10 * 1000 * 1000;
  const std::string message(ten_mb, 'z');
  std::size_t high_water = 0;
  const auto feed_in_pieces = [&](MessageReader& reader, const std::string& stream, Events& got) {
    std::uniform_int_distribution<std::size_t> piece(1, 70000);
    for (std::size_t at = 0; at < stream.size();) {
      const std::size_t n = std::min(piece(rng), stream.size() - at);
      const auto events = feed(reader, std::string_view(stream).substr(at, n));
      got.insert(got.end(), events.begin(), events.end());
      at += n;
      high_water = std::max(high_water, reader.buffered());
      REQUIRE(reader.buffered() <= reader.options().max_message + 139);
    }
  };

  SECTION("one frame, over max_message: refused at its header") {
    MessageReader reader(server());
    Events got;
    feed_in_pieces(reader, masked(Opcode::text, message), got);
    CHECK(got == Events{failure(close_code::too_big, "message over 4096 bytes")});
    CHECK(high_water <= 14);
  }
  SECTION("many fragments, over max_message: refused at the fragment that takes it over") {
    MessageReader reader(server());
    std::string stream;
    for (std::size_t at = 0; at < message.size(); at += 1000) {
      stream += masked(at == 0 ? Opcode::text : Opcode::continuation, std::string_view(message).substr(at, 1000),
                       at + 1000 >= message.size());
    }
    Events got;
    feed_in_pieces(reader, stream, got);
    CHECK(got == Events{failure(close_code::too_big, "message over 4096 bytes")});
    CHECK(high_water <= 4000 + 14);
  }
  SECTION("many fragments with pings between them, within a max_message of 10 MB") {
    MessageReader reader(server(ten_mb));
    std::string stream;
    Events want;
    std::size_t at = 0;
    for (bool first = true; at < message.size(); first = false) {
      const std::size_t n = std::min<std::size_t>(rng() % 300000, message.size() - at);
      stream += masked(first ? Opcode::text : Opcode::continuation, std::string_view(message).substr(at, n),
                       at + n == message.size());
      at += n;
      if (at < message.size()) {
        stream += masked(Opcode::ping, std::string(125, 'p'));
        want.push_back(ping(std::string(125, 'p')));
      }
    }
    want.push_back(text(message));
    Events got;
    feed_in_pieces(reader, stream, got);
    CHECK(got == want);
    CHECK(high_water >= ten_mb - 70000);  // it did hold (nearly) the whole message
    CHECK(reader.buffered() == 0);
  }
}

TEST_CASE("Utf8Validator agrees with check_text, whole and in pieces", "[websocket]") {
  using chat::ws::Utf8Validator;
  const auto valid = [](std::string_view s) { return chat::check_text(s) != chat::TextProblem::bad_utf8; };
  // Bytes where UTF-8's rules change, and plain ones.
  static constexpr int interesting[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                                        0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xF8, 0xFF};
  std::mt19937 rng(3629);
  int valid_count = 0;
  for (int round = 0; round < 100000; ++round) {
    std::string s;
    const std::size_t n = rng() % 12;
    for (std::size_t i = 0; i < n; ++i) s += static_cast<char>(interesting[rng() % std::size(interesting)]);
    const bool want = valid(s);
    valid_count += want;
    Utf8Validator whole;
    whole.feed(s);
    Utf8Validator split;
    std::string_view rest = s;
    while (!rest.empty()) {
      const std::size_t cut = std::min<std::size_t>(rng() % 4, rest.size());
      split.feed(rest.substr(0, cut));
      rest.remove_prefix(cut);
    }
    INFO(::Catch::Detail::stringify(s));
    REQUIRE(whole.complete() == want);
    REQUIRE(split.complete() == want);
    // feed() turns false exactly when no continuation could make the bytes valid: a prefix of
    // a valid string is never refused.
    if (want) {
      for (std::size_t cut = 0; cut <= s.size(); ++cut) {
        Utf8Validator prefix;
        REQUIRE(prefix.feed(std::string_view(s).substr(0, cut)));
      }
    }
  }
  CHECK(valid_count > 1000);  // the mix does reach valid strings
}

namespace {

// `cp` in UTF-8's bit pattern for `length` bytes: the shortest form, or an overlong one.
std::string encode(std::uint32_t cp, int length) {
  if (length == 1) return std::string(1, static_cast<char>(cp));
  static constexpr unsigned lead[] = {0, 0, 0xC0, 0xE0, 0xF0};
  std::string s(static_cast<std::size_t>(length), '\0');
  for (int i = length - 1; i > 0; --i, cp >>= 6) s[static_cast<std::size_t>(i)] = static_cast<char>(0x80 | (cp & 0x3F));
  s[0] = static_cast<char>(lead[length] | cp);
  return s;
}

}  // namespace

TEST_CASE("Utf8Validator: every code point in its shortest form is valid but the surrogates, longer forms never",
          "[websocket]") {
  using chat::ws::Utf8Validator;
  const auto valid = [](std::string_view s) { return chat::check_text(s) != chat::TextProblem::bad_utf8; };
  for (std::uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    const int shortest = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    const bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
    for (int length = shortest; length <= 4; ++length) {
      const std::string s = encode(cp, length);
      const bool want = length == shortest && !surrogate;
      Utf8Validator v;
      v.feed(s);
      if (v.complete() != want || valid(s) != want) FAIL("code point " << cp << " in " << length << " bytes");
    }
  }
  // Past U+10FFFF, in 4 bytes (up to F7 BF BF BF).
  for (std::uint32_t cp = 0x110000; cp < 0x200000; cp += 0x1001) {
    Utf8Validator v;
    v.feed(encode(cp, 4));
    if (v.complete()) FAIL("code point " << cp);
  }
}

TEST_CASE("Utf8Validator: long ASCII runs take the fast path and still catch what follows", "[websocket]") {
  chat::ws::Utf8Validator v;
  CHECK(v.feed(std::string(1000, 'a')));
  CHECK(v.feed(std::string(13, 'b') + "\xE2\x82"));
  CHECK_FALSE(v.complete());
  CHECK(v.feed("\xAC" + std::string(20, 'c')));
  CHECK(v.complete());
  CHECK_FALSE(v.feed(std::string(17, 'd') + "\xFF" + std::string(17, 'd')));
  CHECK(v.failed());
  CHECK_FALSE(v.feed("a"));  // stays failed
  CHECK_FALSE(v.complete());
  v.reset();
  CHECK(v.complete());
  CHECK(v.feed("a"));
}

TEST_CASE("client_handshake and handshake_accepted", "[websocket]") {
  const std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
  SECTION("the request, as the server reads it") {
    chat::http::RequestReader reader;
    REQUIRE(reader.feed(chat::ws::client_handshake("127.0.0.1:7000", "/ws", key, "http://127.0.0.1:7000")) ==
            chat::http::RequestReader::State::complete);
    const auto& r = reader.request();
    CHECK(r.method == "GET");
    CHECK(r.target == "/ws");
    CHECK(r.version == "HTTP/1.1");
    CHECK(r.header("host") == "127.0.0.1:7000");
    CHECK(r.header_has_token("Upgrade", "websocket"));
    CHECK(r.header_has_token("Connection", "upgrade"));
    CHECK(r.header("Sec-WebSocket-Key") == key);
    CHECK(r.header("Sec-WebSocket-Version") == "13");
    CHECK(r.header("Origin") == "http://127.0.0.1:7000");
    CHECK(reader.rest().empty());
    CHECK(chat::ws::client_handshake("h:1", "/", key).find("Origin") == std::string::npos);
  }
  SECTION("the response") {
    const auto accept = chat::ws::accept_key(key);
    CHECK(
        chat::ws::handshake_accepted("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                                     key));
    // As chat::http::response writes it; frames right after the head are ignored.
    const std::string made = chat::http::response(
        101, {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}, {"Sec-WebSocket-Accept", accept}}, "");
    CHECK(chat::ws::handshake_accepted(made, key));
    CHECK(chat::ws::handshake_accepted(made + unmasked(Opcode::text, "# welcome"), key));
    // Case, bare LF, no reason phrase, token lists.
    CHECK(chat::ws::handshake_accepted(
        "HTTP/1.1 101\nupgrade: WebSocket\nconnection: keep-alive, upgrade\nsec-websocket-accept: " + accept + "\n",
        key));
    CHECK_FALSE(chat::ws::handshake_accepted(made, "x3JJHMbDL1EzLkh9GBhXDw=="));  // another key
    CHECK_FALSE(chat::ws::handshake_accepted(
        "HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n",
        key));
    CHECK_FALSE(chat::ws::handshake_accepted(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n",
        key));
    CHECK_FALSE(chat::ws::handshake_accepted(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: " + accept + "\r\n\r\n", key));
    CHECK_FALSE(chat::ws::handshake_accepted(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", key));
    CHECK_FALSE(chat::ws::handshake_accepted(
        made.substr(0, made.size() - 2) + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n", key));
    CHECK_FALSE(chat::ws::handshake_accepted("", key));
    CHECK_FALSE(chat::ws::handshake_accepted("garbage\r\n\r\n", key));
  }
}

TEST_CASE("MessageReader: check_utf8 off hands a text message over as it is (a benchmark client)", "[websocket]") {
  const std::string bad = bytes({0xC3, 0x28});  // a lead byte, then ASCII
  const std::string frame = make_frame(Opcode::text, bad);
  MessageReader::Options unchecked = client();
  unchecked.check_utf8 = false;
  MessageReader reader(unchecked);
  CHECK(feed(reader, frame) == Events{text(bad)});
  // The default checks, and a close reason is checked whatever the option says.
  MessageReader checked(client());
  CHECK(feed(checked, frame) == Events{failure(close_code::invalid_payload, "invalid UTF-8 in a text message")});
  MessageReader reason(unchecked);
  CHECK(feed(reason, chat::ws::close_frame(1000, bad)) ==
        Events{failure(close_code::invalid_payload, "invalid UTF-8 in a close reason")});
}
