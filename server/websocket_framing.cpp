#include "server/websocket_framing.hpp"

#include <string>

namespace chat {

WebSocketFraming::WebSocketFraming(std::size_t max_line)
    : reader_(ws::MessageReader::Options{ws::MessageReader::Role::server, max_line, true}) {}

void WebSocketFraming::feed(std::string_view bytes, Sink& sink) {
  reader_.feed(bytes, [&sink](const ws::MessageReader::Event& e) {
    using Kind = ws::MessageReader::Event::Kind;
    switch (e.kind) {
      case Kind::text: sink.line(e.payload); return;
      case Kind::binary: return;  // text_only: reported as a failure (1003) instead
      case Kind::ping: sink.control(ws::make_frame(ws::Opcode::pong, e.payload)); return;
      case Kind::pong: return;    // a sign of life, which the reader has counted already
      case Kind::close: {
        // The peer closes (a tab closed: 1001 going away). Echo its code, as RFC 6455 5.5.1
        // asks, then FIN.
        std::string detail = "WebSocket close " + std::to_string(e.code);
        if (const auto words = ws::describe_close(e.code); !words.empty()) detail += " (" + std::string(words) + ")";
        if (!e.payload.empty()) detail += ": " + std::string(e.payload);
        const std::uint16_t echo = e.code == ws::close_code::no_status ? ws::close_code::normal : e.code;
        sink.finish(LeaveCause::closed, std::move(detail), ws::close_frame(echo));
        return;
      }
      case Kind::fail:
        sink.finish(LeaveCause::error, "WebSocket: " + e.detail + " (close " + std::to_string(e.code) + ")",
                    ws::close_frame(e.code, e.detail));
        return;
    }
  });
}

Framing::Wire WebSocketFraming::frame(std::string_view line, char* header) const {
  // An empty entry is an event this client's mode does not show (text mode): nothing to send.
  if (line.empty()) return Wire{0, 0};
  const std::size_t payload = line.size() - 1;  // without the LF
  return Wire{ws::frame_header(ws::Opcode::text, payload, header), payload};
}

std::uint16_t WebSocketFraming::close_code_for(std::string_view reason) {
  if (reason == "quit") return ws::close_code::normal;
  if (reason == "shutdown") return ws::close_code::going_away;
  if (reason == "server-full" || reason == "server-busy") return ws::close_code::try_again_later;
  return ws::close_code::policy;
}

std::string WebSocketFraming::goodbye(std::string_view bye_line, std::string_view reason) const {
  return ws::make_frame(ws::Opcode::text, bye_line) + ws::close_frame(close_code_for(reason), reason);
}

}  // namespace chat
