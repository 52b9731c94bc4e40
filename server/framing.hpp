// Framing: how one connection's bytes become lines of the protocol, and its lines bytes.
//
// The room, the history and the writers deal in lines (docs/protocol.md). What carries a line
// on the wire is the connection's framing, and only the framing:
//
//   LineFraming       (this file) a line is its bytes and an LF: nc, telnet, chatclient
//   WebSocketFraming  (websocket_framing.hpp) a line is one text frame of RFC 6455: a browser
//
// A second kind of client is a second Framing, nothing else: Session, Room, History and the
// WriterPool do not know which one a connection has.
//
// Threads: feed() and take_partial() belong to the session's reader thread (the framing keeps
// what it has read of an unfinished line or frame). frame(), passthrough() and goodbye() are
// const and keep no state, so a writer thread (frame) and any thread ending the session
// (goodbye) may call them while the reader feeds.
#pragma once

#include "common/line_framer.hpp"
#include "common/protocol.hpp"

#include <cstddef>
#include <string>
#include <string_view>

namespace chat {

class Framing {
 public:
  // What feed() tells the reader. Reader thread.
  class Sink {
   public:
    // One line of the protocol, without its newline.
    virtual void line(std::string_view text) = 0;
    // A line over --max-line was thrown away; the connection goes on (ERROR too-long).
    virtual void too_long() = 0;
    // Bytes for the client exactly as they are, in order with its lines (a WebSocket pong).
    virtual void control(std::string bytes) = 0;
    // The framing ends the connection (a WebSocket close frame, or a frame that breaks the
    // rules): `last_bytes` are sent, then a FIN. Nothing more is fed after this.
    virtual void finish(LeaveCause cause, std::string detail, std::string last_bytes) = 0;

   protected:
    ~Sink() = default;
  };

  // How one line goes on the wire: `header_size` bytes written to the caller's buffer, then
  // the first `payload_size` bytes of the line.
  struct Wire {
    std::size_t header_size;
    std::size_t payload_size;
  };
  static constexpr std::size_t max_header = 10;  // a server's WebSocket frame header, unmasked

  virtual ~Framing() = default;
  virtual std::string_view name() const = 0;  // "lines", "websocket": for logs

  // ---- the reader thread ----------------------------------------------------------------------
  // Received bytes: calls `sink` for each line and event, in order.
  virtual void feed(std::string_view bytes, Sink& sink) = 0;
  // At end of stream (FIN): an unfinished last line, if the framing has one ("QUIT bye" sent
  // without LF is still the client's last word). Empties it.
  virtual bool take_partial(std::string& out) = 0;

  // ---- any thread (const, no state) -----------------------------------------------------------
  // `line` ends with its LF. `header` has room for max_header bytes.
  virtual Wire frame(std::string_view line, char* header) const = 0;
  // frame() adds nothing and keeps the whole line: runs of lines may go out as one piece.
  virtual bool passthrough() const = 0;
  // The last bytes of a polite end: the BYE line (`bye_line`, no LF; `reason` is its reason
  // token), and whatever closes the framing.
  virtual std::string goodbye(std::string_view bye_line, std::string_view reason) const = 0;
};

// The plain line protocol: what every client spoke before browsers came.
class LineFraming final : public Framing {
 public:
  explicit LineFraming(std::size_t max_line) : framer_(max_line) {}
  // A shared one for writing only (const: nothing can feed it).
  static const LineFraming& on_the_wire();

  std::string_view name() const override { return "lines"; }
  void feed(std::string_view bytes, Sink& sink) override;
  bool take_partial(std::string& out) override { return framer_.take_partial(out); }
  Wire frame(std::string_view line, char*) const override { return Wire{0, line.size()}; }
  bool passthrough() const override { return true; }
  std::string goodbye(std::string_view bye_line, std::string_view reason) const override;

 private:
  LineFramer framer_;  // reader thread only
};

}  // namespace chat
