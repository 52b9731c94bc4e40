// Fuzzes LineFramer (common/line_framer.hpp) against a model of its contract: however a byte
// stream is cut into feeds, the framer reports the same pieces as the stream split at its LFs
// (one CR before the LF dropped, lines over max_line reported as too_long, once), reports an
// over-long line once it is certainly too long and at the latest when its length passes
// max_line + 1, never buffers more than max_line + 1 bytes, and hands back the unterminated
// last line at the end.
//
// Input: byte 0 picks max_line (0 to 63, so over-long lines are cheap to reach), byte 1 seeds
// how the stream is cut into feeds (empty feeds included), the rest is the stream. The stream
// is also fed whole.
#include "common/line_framer.hpp"
#include "tests/fuzz/fuzz_support.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using chat::LineFramer;
using chat::fuzz::escaped;
using Kind = LineFramer::Piece::Kind;

namespace {

struct Piece {
  Kind kind;
  std::string text;  // for Kind::line only
  bool operator==(const Piece&) const = default;
};

std::string describe(const std::vector<Piece>& pieces) {
  std::string out;
  for (const auto& p : pieces) out += p.kind == Kind::line ? "line '" + escaped(p.text) + "' " : "too_long ";
  return out;
}

// A line of the stream without its LF: the piece the contract says it gives.
Piece expected_piece(std::string_view raw, std::size_t max_line) {
  if (raw.ends_with('\r')) raw.remove_suffix(1);
  if (raw.size() > max_line) return Piece{Kind::too_long, {}};
  return Piece{Kind::line, std::string(raw)};
}

// Whether an unterminated line is too long whatever comes next: past max_line + 1 bytes, or
// at max_line + 1 with a last byte that is not a CR (which an LF could still make the ending).
bool certainly_too_long(std::string_view tail, std::size_t max_line) {
  return tail.size() > max_line + 1 || (tail.size() == max_line + 1 && !tail.ends_with('\r'));
}

// Small deterministic cut sizes, 0 (an empty feed) to 19 bytes.
class Cutter {
 public:
  explicit Cutter(std::uint8_t seed) : state_(seed * 2654435761u + 1) {}
  std::size_t next() {
    state_ = state_ * 1103515245u + 12345u;
    return (state_ >> 16) % 20;
  }

 private:
  std::uint32_t state_;
};

// Feeds `stream` in cuts of next_size() bytes, checking the contract after every feed; then
// takes the unterminated last line.
template <typename NextSize>
void check_stream(std::size_t max_line, std::string_view stream, NextSize next_size) {
  // The complete lines' pieces, and where each line's LF is.
  std::vector<Piece> want;
  std::vector<std::size_t> lf_at;
  for (std::size_t start = 0;;) {
    const auto lf = stream.find('\n', start);
    if (lf == std::string_view::npos) break;
    want.push_back(expected_piece(stream.substr(start, lf - start), max_line));
    lf_at.push_back(lf);
    start = lf + 1;
  }

  LineFramer framer(max_line);
  FUZZ_CHECK(framer.max_line() == max_line, "max_line()");
  std::vector<Piece> got;
  const auto on_piece = [&](const LineFramer::Piece& p) {
    got.push_back(Piece{p.kind, p.kind == Kind::line ? std::string(p.text) : std::string()});
  };

  std::size_t pos = 0;
  std::size_t complete = 0;  // lines whose LF has been fed
  std::size_t checked = 0;   // lines whose piece has been compared
  while (pos < stream.size()) {
    const std::size_t n = std::min(next_size(), stream.size() - pos);
    framer.feed(stream.substr(pos, n), on_piece);
    pos += n;
    while (complete < lf_at.size() && lf_at[complete] < pos) ++complete;

    const std::size_t tail_start = complete == 0 ? 0 : lf_at[complete - 1] + 1;
    const std::string_view tail = stream.substr(tail_start, pos - tail_start);
    // Built only when a check fails.
    const auto context = [&] {
      return "max_line " + std::to_string(max_line) + ", after " + std::to_string(pos) + " bytes; got " +
             describe(got) + "; want " +
             describe({want.begin(), want.begin() + static_cast<std::ptrdiff_t>(complete)}) + "; unterminated '" +
             escaped(tail) + "'";
    };

    FUZZ_CHECK(framer.buffered() <= max_line + 1, "buffered() " + std::to_string(framer.buffered()) + ", " + context());
    // Every complete line reported, in order; the unterminated one reported as too_long when
    // it is past max_line + 1 bytes, and not before it is certainly too long.
    const std::size_t at_least = complete + (tail.size() > max_line + 1 ? 1 : 0);
    const std::size_t at_most = complete + (certainly_too_long(tail, max_line) ? 1 : 0);
    FUZZ_CHECK(got.size() >= at_least && got.size() <= at_most, context());
    for (; checked < complete; ++checked) FUZZ_CHECK(got[checked] == want[checked], context());
    if (got.size() > complete) FUZZ_CHECK(got[complete].kind == Kind::too_long, context());
  }

  // End of stream: the unterminated last line, if it fits.
  const std::size_t tail_start = lf_at.empty() ? 0 : lf_at.back() + 1;
  const std::string_view tail = stream.substr(tail_start);
  std::string_view stripped = tail;
  if (stripped.ends_with('\r')) stripped.remove_suffix(1);
  std::string partial = "(untouched)";
  const bool had = framer.take_partial(partial);
  const std::string context = "max_line " + std::to_string(max_line) + ", unterminated '" + escaped(tail) +
                              "', take_partial " + (had ? "'" + escaped(partial) + "'" : std::string("false"));
  if (tail.empty()) FUZZ_CHECK(!had, context);
  if (!stripped.empty() && stripped.size() <= max_line) FUZZ_CHECK(had, context);
  if (stripped.size() > max_line) FUZZ_CHECK(!had, context);  // an over-long line never comes out
  if (had) {
    FUZZ_CHECK(partial.size() <= max_line, context);
    FUZZ_CHECK(partial == stripped || partial == tail, context);
  } else {
    FUZZ_CHECK(partial == "(untouched)", context);
  }
  // take_partial empties the framer: what follows is a fresh line.
  FUZZ_CHECK(framer.buffered() == 0, context);
  got.clear();
  framer.feed("\n", on_piece);
  FUZZ_CHECK(got.size() == 1 && got[0] == (Piece{Kind::line, ""}), context + "; then LF gave " + describe(got));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t max_line = data[0] % 64;
  const std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);

  check_stream(max_line, stream, [&] { return stream.size(); });
  Cutter cutter(data[1]);
  check_stream(max_line, stream, [&] { return cutter.next(); });
  return 0;
}
