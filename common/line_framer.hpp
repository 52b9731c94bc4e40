// LineFramer: turns a byte stream into protocol lines, with a hard limit.
//
// Used by exactly one thread at a time (a session's reader thread, the client's network
// thread); not thread safe. Memory is bounded: it never holds more than max_line + 1 bytes,
// whatever the peer sends.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace chat {

class LineFramer {
 public:
  // What feed() reports, once per complete line.
  struct Piece {
    enum class Kind {
      line,      // `text` is one line without its LF (and without a CR right before it)
      too_long,  // a line exceeded max_line; its bytes are discarded up to its LF
    };
    Kind kind;
    std::string_view text;  // valid only during the callback
  };

  // `max_line`: the most bytes a line may hold, not counting CR LF.
  explicit LineFramer(std::size_t max_line) : max_line_(max_line) {}

  // Feeds received bytes; calls `on_piece(const Piece&)` for each complete line and once for
  // each over-long line, at the latest at its LF: as soon as max_line + 2 bytes of it are
  // buffered (one more than a line plus its CR), so a flood without LF is never held.
  template <typename OnPiece>
  void feed(std::string_view bytes, OnPiece&& on_piece);

  // At end of stream: the unterminated last line, if any (a peer that sends "bye" and closes
  // without a newline is still heard). Empties the framer.
  bool take_partial(std::string& out);

  std::size_t buffered() const { return buffer_.size(); }
  std::size_t max_line() const { return max_line_; }

 private:
  std::size_t max_line_;
  std::string buffer_;      // the current line so far; at most max_line_ + 1 bytes
  bool discarding_ = false; // inside an over-long line, waiting for its LF
};

template <typename OnPiece>
void LineFramer::feed(std::string_view bytes, OnPiece&& on_piece) {
  while (!bytes.empty()) {
    const auto lf = bytes.find('\n');
    const std::string_view chunk = bytes.substr(0, lf);  // npos: all of it
    if (!discarding_) {
      // +1 leaves room for the CR that may precede the LF.
      if (buffer_.size() + chunk.size() > max_line_ + 1) {
        buffer_.clear();
        discarding_ = true;
        on_piece(Piece{Piece::Kind::too_long, {}});
      } else {
        buffer_.append(chunk);
      }
    }
    if (lf == std::string_view::npos) return;
    bytes.remove_prefix(lf + 1);
    if (discarding_) {
      discarding_ = false;
      continue;
    }
    std::string_view line = buffer_;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.size() > max_line_) {
      on_piece(Piece{Piece::Kind::too_long, {}});
    } else {
      on_piece(Piece{Piece::Kind::line, line});
    }
    buffer_.clear();
  }
}

}  // namespace chat
