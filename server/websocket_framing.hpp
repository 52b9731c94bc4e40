// WebSocketFraming: a line of the protocol is one WebSocket text message (RFC 6455), both ways,
// without its newline, as IRCv3's WebSocket binding carries IRC lines. What a browser speaks.
//
// Reading (the reader thread): ws::MessageReader takes frames apart, unmasks them, reassembles
// fragmented messages within --max-line and checks the UTF-8 as it comes. A ping is answered
// with a pong; a close frame ends the session `closed` (the code in the detail) and is echoed;
// a frame that breaks the rules ends it `error`, with the close code the RFC asks for (1002
// protocol error, 1003 a binary message, 1007 bad UTF-8, 1009 over --max-line). Every line
// then goes to Commands exactly as a line from nc would.
//
// Writing (any writer thread): a line becomes a 2- or 4-byte header and the line's bytes
// without the LF (the Outbox builds them back to back, so a run of frames is one iovec). A
// polite end is the BYE line as a message, then a close frame.
#pragma once

#include "common/websocket.hpp"
#include "server/framing.hpp"

namespace chat {

class WebSocketFraming final : public Framing {
 public:
  explicit WebSocketFraming(std::size_t max_line);

  std::string_view name() const override { return "websocket"; }
  void feed(std::string_view bytes, Sink& sink) override;
  bool take_partial(std::string&) override { return false; }  // half a frame is not a line
  Wire frame(std::string_view line, char* header) const override;
  bool passthrough() const override { return false; }
  std::string goodbye(std::string_view bye_line, std::string_view reason) const override;

  // The close code that goes with a BYE reason: 1000 for quit, 1001 when the server shuts
  // down, 1013 (try again later) when it is full or busy, 1008 (policy) for the rest.
  static std::uint16_t close_code_for(std::string_view bye_reason);

 private:
  ws::MessageReader reader_;  // reader thread only
};

}  // namespace chat
