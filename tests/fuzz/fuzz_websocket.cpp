// Fuzzes the WebSocket reader (common/websocket.hpp) two ways.
//
// Raw bytes: whatever the peer sends, however it is cut into feeds, the reader
//   - reports the same events as when the stream comes in one feed;
//   - never holds more than max_message + 125 + 14 bytes (buffered());
//   - reports text messages that are valid UTF-8 and binary ones only when allowed, both within
//     max_message; pings and pongs of at most 125 bytes; closes with a code allowed on the wire
//     (or 1005) and a UTF-8 reason; failures with 1002, 1003, 1007 or 1009 and a reason;
//   - reports nothing after a fail or a close, and says so in failed() / closed().
// Built frames: a sequence of frames written with make_frame (masked as the role needs, now
//   and then a control frame without FIN or over 125 bytes), read back whole and in pieces,
//   must give exactly the events a model of RFC 6455 written here expects.
//
// Input: byte 0 picks the mode (bit 7), the role (bit 0), text_only (bit 1) and max_message
// (bits 2-4); byte 1 seeds how the stream is cut into feeds (empty feeds included); the rest
// is the stream (raw) or the description of the frames (built, read with FuzzedDataProvider).
#include "common/websocket.hpp"
#include "tests/fuzz/fuzz_support.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using chat::fuzz::escaped;
using chat::ws::MessageReader;
using chat::ws::Opcode;
using Kind = MessageReader::Event::Kind;

namespace {

struct Got {
  Kind kind;
  std::string payload;
  std::uint16_t code = 0;
  std::string detail;
  bool operator==(const Got&) const = default;
};

std::string describe(const std::vector<Got>& events) {
  static constexpr const char* names[] = {"text", "binary", "ping", "pong", "close", "fail"};
  std::string out;
  for (const auto& e : events) {
    out += names[static_cast<int>(e.kind)];
    out += " '" + escaped(e.payload.substr(0, 40)) + (e.payload.size() > 40 ? "...'" : "'");
    if (e.code != 0) out += " " + std::to_string(e.code);
    if (!e.detail.empty()) out += " (" + e.detail + ")";
    out += "; ";
  }
  return out;
}

bool valid_utf8(std::string_view s) { return chat::fuzz::code_points(s).has_value(); }

// Checks one event against the contract, whatever the stream.
void check_event(const MessageReader::Options& options, const MessageReader::Event& e) {
  const auto context = [&] {
    return std::string("event kind ") + std::to_string(static_cast<int>(e.kind)) + ", code " + std::to_string(e.code) +
           ", payload '" + escaped(e.payload) + "'";
  };
  switch (e.kind) {
    case Kind::text: FUZZ_CHECK(valid_utf8(e.payload) && e.payload.size() <= options.max_message, context()); break;
    case Kind::binary: FUZZ_CHECK(!options.text_only && e.payload.size() <= options.max_message, context()); break;
    case Kind::ping:
    case Kind::pong: FUZZ_CHECK(e.payload.size() <= chat::ws::max_control_payload, context()); break;
    case Kind::close:
      FUZZ_CHECK(
          e.code == chat::ws::close_code::no_status ? e.payload.empty() : chat::ws::close_code_allowed_on_wire(e.code),
          context());
      FUZZ_CHECK(valid_utf8(e.payload) && e.payload.size() <= chat::ws::max_control_payload - 2, context());
      break;
    case Kind::fail:
      FUZZ_CHECK(e.code == 1002 || e.code == 1003 || e.code == 1007 || e.code == 1009, context());
      FUZZ_CHECK(!e.detail.empty() && e.payload.empty(), context());
      break;
  }
}

// Small deterministic cut sizes: mostly 0 (an empty feed) to 19 bytes, now and then up to 1000.
class Cutter {
 public:
  explicit Cutter(std::uint8_t seed) : state_(seed * 2654435761u + 1) {}
  std::size_t next() {
    state_ = state_ * 1103515245u + 12345u;
    const std::uint32_t r = state_ >> 16;
    return r % 16 == 0 ? r % 1000 : r % 20;
  }

 private:
  std::uint32_t state_;
};

// Feeds `stream` in cuts of next_size() bytes, checking the contract after every feed and
// every event; returns the events.
template <typename NextSize>
std::vector<Got> read_stream(const MessageReader::Options& options, std::string_view stream, NextSize next_size) {
  MessageReader reader(options);
  std::vector<Got> got;
  bool stopped = false;
  const auto on_event = [&](const MessageReader::Event& e) {
    FUZZ_CHECK(!stopped, "an event after fail/close: " + describe(got));
    check_event(options, e);
    got.push_back(Got{e.kind, std::string(e.payload), e.code, e.detail});
    stopped = e.kind == Kind::fail || e.kind == Kind::close;
    FUZZ_CHECK(reader.failed() == (e.kind == Kind::fail) && reader.closed() == (e.kind == Kind::close), describe(got));
  };
  const std::size_t bound = options.max_message + chat::ws::max_control_payload + chat::ws::max_header;
  std::size_t pos = 0;
  do {
    const std::size_t n = std::min(next_size(), stream.size() - pos);
    reader.feed(stream.substr(pos, n), on_event);
    pos += n;
    FUZZ_CHECK(reader.buffered() <= bound, "buffered() " + std::to_string(reader.buffered()) + " after " +
                                               std::to_string(pos) + " bytes; " + describe(got));
    FUZZ_CHECK(reader.failed() == (!got.empty() && got.back().kind == Kind::fail), describe(got));
    FUZZ_CHECK(reader.closed() == (!got.empty() && got.back().kind == Kind::close), describe(got));
  } while (pos < stream.size());
  if (stopped) {
    // Whatever comes next is ignored.
    reader.feed(std::string_view("\x81\x80\0\0\0\0\x81\x00", 8), on_event);
    FUZZ_CHECK(reader.buffered() == 0, "buffered() " + std::to_string(reader.buffered()) + " after the end");
  }
  return got;
}

// ---- built frames and their model -----------------------------------------------------------

struct Frame {
  Opcode op;
  bool fin;
  std::string payload;
};

// Whether `s` is valid UTF-8 or valid UTF-8 cut inside its last code point.
bool valid_utf8_prefix(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const std::size_t len = chat::fuzz::utf8_length_at(s, i);
    if (len == 0) break;
    i += len;
  }
  const std::string_view tail = s.substr(i);
  if (tail.empty()) return true;
  if (tail.size() > 3) return false;
  // The tail is the start of a well-formed sequence if some ending completes it. The second
  // byte's range depends on the first (Table 3-7); 80, 90 or A0 fits every narrowed range.
  for (const char second : {'\x80', '\x90', '\xA0'}) {
    std::string padded(tail);
    while (padded.size() < 4) padded += padded.size() == 1 ? second : '\x80';
    if (chat::fuzz::utf8_length_at(padded, 0) > tail.size()) return true;
  }
  return false;
}

// What RFC 6455 and the options make of `frames`, as the reader should report it.
std::vector<Got> model(const MessageReader::Options& options, const std::vector<Frame>& frames) {
  std::vector<Got> out;
  const auto fail = [&](std::uint16_t code) {
    out.push_back(Got{Kind::fail, {}, code, "?"});
    return out;
  };
  bool in_message = false;
  bool text = false;
  std::string message;
  for (const Frame& f : frames) {
    const auto op = static_cast<unsigned>(f.op);
    if (op >= 8) {
      if (!f.fin || f.payload.size() > 125) return fail(1002);
      if (f.op == Opcode::ping) out.push_back(Got{Kind::ping, f.payload, 0, {}});
      if (f.op == Opcode::pong) out.push_back(Got{Kind::pong, f.payload, 0, {}});
      if (f.op != Opcode::close) continue;
      if (f.payload.empty()) {
        out.push_back(Got{Kind::close, {}, 1005, {}});
        return out;
      }
      if (f.payload.size() == 1) return fail(1002);
      const auto code = static_cast<std::uint16_t>(static_cast<unsigned char>(f.payload[0]) << 8 |
                                                   static_cast<unsigned char>(f.payload[1]));
      const bool allowed =
          (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
      if (!allowed) return fail(1002);
      if (!valid_utf8(std::string_view(f.payload).substr(2))) return fail(1007);
      out.push_back(Got{Kind::close, f.payload.substr(2), code, {}});
      return out;
    }
    if ((f.op == Opcode::continuation) != in_message) return fail(1002);
    if (f.op == Opcode::binary && options.text_only) return fail(1003);
    if (message.size() + f.payload.size() > options.max_message) return fail(1009);
    if (!in_message) text = f.op == Opcode::text;
    in_message = true;
    message += f.payload;
    if (text && !valid_utf8_prefix(message)) return fail(1007);
    if (!f.fin) continue;
    if (text && !valid_utf8(message)) return fail(1007);
    out.push_back(Got{text ? Kind::text : Kind::binary, message, 0, {}});
    message.clear();
    in_message = false;
  }
  return out;
}

// Frames from the fuzzer's bytes, and the stream that carries them. Some are spoiled on purpose:
// a control frame without FIN or over 125 bytes (make_frame writes what it is asked).
std::string build(FuzzedDataProvider& in, MessageReader::Role role, std::vector<Frame>& frames) {
  static constexpr Opcode ops[] = {Opcode::text, Opcode::text, Opcode::continuation, Opcode::continuation,
                                   Opcode::binary, Opcode::ping, Opcode::pong, Opcode::close};
  std::string stream;
  while (in.remaining_bytes() > 0 && frames.size() < 64) {
    const auto shape = in.ConsumeIntegral<std::uint8_t>();
    Frame f{ops[shape & 7], (shape & 8) == 0, in.ConsumeRandomLengthString(300)};
    std::array<std::uint8_t, 4> mask{};
    for (auto& b : mask) b = in.ConsumeIntegral<std::uint8_t>();
    if (static_cast<unsigned>(f.op) >= 8) {
      // Mostly good control frames: FIN, and within 125 bytes.
      if ((shape & 0x30) != 0x30) {
        f.fin = true;
        if (f.payload.size() > 125) f.payload.resize(125);
      }
    }
    const auto* key = role == MessageReader::Role::server ? &mask : nullptr;
    stream += chat::ws::make_frame(f.op, f.payload, key, f.fin);
    frames.push_back(std::move(f));
  }
  return stream;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  static constexpr std::size_t max_messages[] = {0, 1, 3, 16, 125, 126, 1000, 65536};
  MessageReader::Options options;
  options.role = (data[0] & 1) ? MessageReader::Role::client : MessageReader::Role::server;
  options.text_only = (data[0] & 2) != 0;
  options.max_message = max_messages[(data[0] >> 2) & 7];
  const bool built = (data[0] & 0x80) != 0;

  std::vector<Frame> frames;
  std::string stream;
  if (built) {
    FuzzedDataProvider in(data + 2, size - 2);
    stream = build(in, options.role, frames);
  } else {
    stream.assign(reinterpret_cast<const char*>(data + 2), size - 2);
  }

  const auto whole = read_stream(options, stream, [&] { return stream.size(); });
  Cutter cutter(data[1]);
  const auto cut = read_stream(options, stream, [&] { return cutter.next(); });
  FUZZ_CHECK(whole == cut, "whole: " + describe(whole) + "\ncut: " + describe(cut));

  if (built) {
    auto want = model(options, frames);
    // The model knows the code of a failure, not its words.
    auto got = whole;
    if (!got.empty() && got.back().kind == Kind::fail) got.back().detail = "?";
    FUZZ_CHECK(got == want, "got: " + describe(whole) + "\nwant: " + describe(want) + "\nstream '" +
                                escaped(stream.substr(0, 400)) + "'");
  }
  return 0;
}
