// WebSocket (RFC 6455) without sockets: frames out, messages in, and the keys of the opening
// handshake. The server serves a WebSocket on its chat port, one line of the chat protocol
// (without its newline) per text message; chatbench and chatlab speak it as clients. The
// sockets, the HTTP exchange around the handshake (common/http.hpp) and the answers to pings
// and closes belong to them; this file only encodes and decodes.
//
// Threads: the free functions are pure and thread safe. A Utf8Validator or a MessageReader
// belongs to one thread at a time (a session's reader thread); distinct objects are
// independent.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace chat::ws {

enum class Opcode : std::uint8_t { continuation = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10 };

// The close codes this project sends or reports (RFC 6455 7.4.1). 1005 and 1006 never go on the
// wire: they stand for "the close frame had no code" and "there was no close frame".
namespace close_code {
constexpr std::uint16_t normal = 1000, going_away = 1001, protocol_error = 1002, unsupported_data = 1003,
                        no_status = 1005, abnormal = 1006, invalid_payload = 1007, policy = 1008, too_big = 1009,
                        internal_error = 1011, try_again_later = 1013;
}

// The code in words, for people and logs: "going away", "protocol error"; "" for a code the RFC's
// registry does not name (3000-4999 are the applications').
std::string_view describe_close(std::uint16_t code);

// Whether a close frame may carry `code` (RFC 6455 7.4): 1000-1003, 1007-1014 and 3000-4999.
bool close_code_allowed_on_wire(std::uint16_t code);

// The largest frame header: 2 bytes, 8 of extended length, 4 of masking key.
constexpr std::size_t max_header = 14;
// The largest payload of a control frame (close, ping, pong).
constexpr std::size_t max_control_payload = 125;

// Writes the header of one frame to `out` (at least max_header bytes) and returns its size. The
// frame carries `payload_size` bytes (below 2^63) and has FIN set unless `fin` is false. With
// `mask` (a client's frame) the mask bit and key are written too; the caller masks the payload
// itself (apply_mask). The shortest length encoding is used. It writes what it is asked, also
// frames a reader must refuse (a control frame over 125 bytes or without FIN), so that tests
// and chatlab can send them: a control frame's payload is the caller's to keep within 125.
std::size_t frame_header(Opcode op, std::uint64_t payload_size, char* out,
                         const std::array<std::uint8_t, 4>* mask = nullptr, bool fin = true);

// XORs `size` bytes at `data` with `mask`; masking and unmasking are the same operation.
// `offset` is where `data` starts within the frame's payload, so a payload can be masked in pieces.
void apply_mask(char* data, std::size_t size, const std::array<std::uint8_t, 4>& mask, std::size_t offset = 0);

// One whole frame: header and payload, masked when `mask` is given.
std::string make_frame(Opcode op, std::string_view payload, const std::array<std::uint8_t, 4>* mask = nullptr,
                       bool fin = true);

// A close frame: the 2-byte code, then `reason` cut to fit the 125-byte payload (at most 123
// bytes) without splitting a UTF-8 sequence. code 1005 (no_status) gives an empty payload, the
// reason is then dropped. Any other code is written as given (close_code_allowed_on_wire says
// which a peer accepts).
std::string close_frame(std::uint16_t code, std::string_view reason = {},
                        const std::array<std::uint8_t, 4>* mask = nullptr);

// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + "258EAFA5-...")), with
// OpenSSL's libcrypto. Throws std::runtime_error if libcrypto fails (it has no reason to).
std::string accept_key(std::string_view client_key);

// Whether `key` can be a Sec-WebSocket-Key: base64 of 16 bytes, i.e. 22 base64 characters then
// "==". Like Python's websockets, the unused low bits of the last character are not checked.
bool valid_client_key(std::string_view key);

// The client's opening handshake (RFC 6455 4.1): a GET of `path` (origin-form, "/ws") with Host
// `host_port`, Upgrade: websocket, Connection: Upgrade, Sec-WebSocket-Key `key` (16 random bytes
// in base64, the caller's), Sec-WebSocket-Version: 13, and Origin if `origin` is not empty.
std::string client_handshake(std::string_view host_port, std::string_view path, std::string_view key,
                             std::string_view origin = {});

// Whether the server's response head (status line and fields; what follows the empty line, if
// given, is ignored) accepts the handshake made with `key`: status 101, Upgrade: websocket,
// Connection: Upgrade, the right Sec-WebSocket-Accept, and no extension or subprotocol (the
// client asked for none, so RFC 6455 4.1 says to fail on one).
bool handshake_accepted(std::string_view response_head, std::string_view key);

// Checks UTF-8 fed in pieces that may cut a code point anywhere, by RFC 3629: no overlong
// forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF. It holds no bytes, only
// where it is inside a code point. One thread at a time.
class Utf8Validator {
 public:
  // Checks the next bytes. Returns false as soon as the bytes fed so far cannot begin valid
  // UTF-8, and from then on until reset().
  bool feed(std::string_view bytes);
  // True if everything fed so far is valid UTF-8 and does not end inside a code point.
  bool complete() const { return !failed_ && need_ == 0; }
  bool failed() const { return failed_; }
  void reset() { *this = Utf8Validator(); }

 private:
  std::uint8_t need_ = 0;  // continuation bytes the current code point still needs
  // The range of the next continuation byte: narrower than 80..BF right after E0 (overlong),
  // ED (surrogates), F0 (overlong) and F4 (above U+10FFFF), the rows of RFC 3629's grammar.
  std::uint8_t lo_ = 0x80;
  std::uint8_t hi_ = 0xBF;
  bool failed_ = false;
};

// MessageReader: bytes from the peer in, whole messages and control frames out, with hard
// limits. One thread at a time (a session's reader thread); not thread safe.
//
// Memory: it never holds more than max_message bytes of message payload, plus one control
// frame's payload (125 bytes), plus one frame header (14 bytes), whatever the peer sends; the
// message buffer's capacity never exceeds max_message either. Payload bytes are unmasked and
// kept as they arrive (a frame need not arrive whole); fragmented messages are reassembled
// within max_message. Pings and pongs between the fragments of a message are reported in
// order without disturbing it; a close there is reported too and ends the stream, the
// unfinished message dropped (RFC 6455 5.4 allows control frames between fragments).
//
// Errors: the first violation of RFC 6455 or of the options ends the stream with a `fail`
// event carrying the close code to send; they are the codes Python's websockets 10.4 sends,
// but for a 64-bit length with its top bit set, which RFC 6455 5.2 forbids (websockets
// reports it as too big):
//   1002 protocol error: a server's frame not masked / a client's frame masked, reserved bits
//        set, an unknown opcode, a fragmented control frame, a control frame over 125 bytes,
//        a continuation without a message, a new message inside a fragmented one, a close
//        frame of 1 byte or with a code not allowed on the wire, a 64-bit length with its top
//        bit set;
//   1003 a binary message when text_only, as soon as its first frame header is in;
//   1007 invalid UTF-8 in a text message (as soon as the bytes that make it invalid are in,
//        or at the end of the message if it ends inside a code point) or in a close reason;
//   1009 a message over max_message, as soon as a frame header announces a length that takes
//        it over, before any of that payload is kept.
// Not checked: the minimal encoding of lengths (the RFC asks senders for it; most readers,
// websockets among them, accept longer forms).
class MessageReader {
 public:
  // server: every frame must be masked (a reader in the server); client: no frame may be.
  enum class Role { server, client };
  struct Options {
    Role role = Role::server;
    std::size_t max_message = 4096;  // the most payload bytes of one message, all fragments
    bool text_only = true;           // binary messages fail with 1003
    // Text messages must be UTF-8 (else 1007), as RFC 6455 8.1 asks of every endpoint. A
    // benchmark's client that compares every payload byte for byte with what was sent may turn
    // it off (chatbench: the check would be measuring the generator, not the server).
    bool check_utf8 = true;
  };

  struct Event {
    enum class Kind { text, binary, ping, pong, close, fail };
    Kind kind;
    // text, binary: the whole message; ping, pong: the payload; close: the reason (valid
    // UTF-8, maybe empty); fail: empty. Valid during the callback only.
    std::string_view payload;
    // close: the peer's code (1005 when the frame had none); fail: the code WE must send.
    std::uint16_t code = 0;
    // fail: why, for people and logs ("frame not masked", "message over 4096 bytes").
    std::string detail;
  };

  explicit MessageReader(Options options);

  // Feeds bytes as they arrive; calls `on_event(const Event&)` for each complete message and
  // control frame, in stream order. After a `fail` or a `close` event it reports nothing more
  // and ignores further bytes (failed() / closed() say which). The caller answers pings and
  // closes. An exception from on_event leaves feed() with the rest of `bytes` unread: the
  // stream is then cut, and the reader must not be fed again.
  template <typename OnEvent>
  void feed(std::string_view bytes, OnEvent&& on_event);

  bool failed() const { return failed_; }
  bool closed() const { return closed_; }
  // Bytes held: the message so far, the control frame so far, the header so far. At most
  // max_message + 125 + 14 (for tests of the memory bound).
  std::size_t buffered() const { return message_.size() + control_size_ + header_size_; }
  const Options& options() const { return options_; }

 private:
  // Where the frame being read is: in its 2 fixed header bytes, its extended length, its
  // masking key, or its payload.
  enum class Stage : std::uint8_t { start, length, mask, payload };

  // Consumes bytes until an event is ready or the bytes are used up; returns how many it used.
  std::size_t parse(std::string_view bytes);
  void header_complete();  // header_size_ has reached header_need_ for the current stage
  bool check_start();      // the 2 fixed bytes; false if they fail the stream
  void length_known();     // the payload length is in length_
  void begin_payload();
  void take_payload(std::string_view chunk);
  void end_frame();
  void end_close_frame();
  void report(Event::Kind kind, std::string_view payload, std::uint16_t code = 0);
  void fail(std::uint16_t code, std::string detail);
  bool refuse(std::uint16_t code, std::string detail);  // fail(), then false
  void finish_event();  // after the callback: drop what the event pointed into
  bool is_control() const { return (static_cast<std::uint8_t>(opcode_) & 0x8u) != 0; }

  Options options_;

  // The frame being read.
  Stage stage_ = Stage::start;
  std::array<std::uint8_t, max_header> header_{};
  std::size_t header_size_ = 0;  // header bytes received
  std::size_t header_need_ = 2;  // header bytes the current stage needs
  Opcode opcode_ = Opcode::continuation;
  bool fin_ = false;
  bool masked_ = false;
  std::array<std::uint8_t, 4> mask_{};
  std::uint64_t length_ = 0;     // the frame's payload length
  std::uint64_t remaining_ = 0;  // payload bytes not received yet
  std::size_t mask_offset_ = 0;  // payload bytes received, modulo 4

  // The data message being assembled, over one or more frames. A vector because its
  // reserve() allocates exactly what is asked (std::string's may double past max_message).
  bool in_message_ = false;
  bool message_text_ = false;
  std::vector<char> message_;
  // A whole unmasked message that came in one piece of the caller's bytes (what a client reads
  // from a server): reported from there, not copied into message_. Valid until finish_event().
  std::string_view direct_;
  Utf8Validator utf8_;

  // The control frame being read.
  std::array<char, max_control_payload> control_{};
  std::size_t control_size_ = 0;

  Event event_{Event::Kind::fail, {}, 0, {}};
  bool ready_ = false;  // event_ waits for the callback
  bool failed_ = false;
  bool closed_ = false;
};

template <typename OnEvent>
void MessageReader::feed(std::string_view bytes, OnEvent&& on_event) {
  for (;;) {
    bytes.remove_prefix(parse(bytes));
    if (!ready_) return;
    on_event(static_cast<const Event&>(event_));
    finish_event();
  }
}

}  // namespace chat::ws
