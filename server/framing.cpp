#include "server/framing.hpp"

namespace chat {

const LineFraming& LineFraming::on_the_wire() {
  static const LineFraming framing(0);
  return framing;
}

void LineFraming::feed(std::string_view bytes, Sink& sink) {
  framer_.feed(bytes, [&sink](const LineFramer::Piece& piece) {
    if (piece.kind == LineFramer::Piece::Kind::too_long) {
      sink.too_long();
    } else {
      sink.line(piece.text);
    }
  });
}

std::string LineFraming::goodbye(std::string_view bye_line, std::string_view) const {
  std::string bytes(bye_line);
  bytes += '\n';
  return bytes;
}

}  // namespace chat
