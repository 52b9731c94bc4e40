#include "client/sanitize.hpp"

#include <cstdint>
#include <optional>

namespace chat {
namespace {

// Decodes the well-formed UTF-8 sequence at the start of `s`: {code point, length}, or nullopt
// when the first byte does not start one (the caller then replaces that one byte).
struct Decoded {
  char32_t cp;
  std::size_t len;
};

std::optional<Decoded> decode(std::string_view s) {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = b(0);
  if (c < 0x80) return Decoded{c, 1};
  std::size_t len;
  char32_t cp;
  char32_t min;
  if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07, min = 0x10000;
  else return std::nullopt;  // a continuation byte or 0xF8..0xFF
  if (s.size() < len) return std::nullopt;
  for (std::size_t i = 1; i < len; ++i) {
    if ((b(i) & 0xC0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (b(i) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
  return Decoded{cp, len};
}

bool is_bidi_control(char32_t cp) {
  return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E || cp == 0x200F ||
         cp == 0x061C;
}

// Characters that end a line or a paragraph for some renderers though they are not controls:
// U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR (Qt's text widgets break there; a
// terminal may too), and U+FDD0 / U+FDD1, which Qt's QTextDocument uses as block separators.
// Kept, they would let one message show a second line that looks like someone else's.
bool is_line_breaker(char32_t cp) { return cp == 0x2028 || cp == 0x2029 || cp == 0xFDD0 || cp == 0xFDD1; }

// After ESC (or an 8-bit introducer) at `pos`: the length of the whole sequence, so it is
// removed as one piece rather than leaving "[31m" behind. `intro` is the character that says
// which kind of sequence it is ('[' CSI, ']' OSC, 'P' DCS, '^' PM, '_' APC, 'X' SOS).
std::size_t sequence_body_length(std::string_view s, std::size_t pos, char intro) {
  std::size_t i = pos;
  if (intro == '[') {
    // CSI: parameter bytes 0x30-0x3F, intermediate bytes 0x20-0x2F, one final byte 0x40-0x7E.
    while (i < s.size() && static_cast<unsigned char>(s[i]) >= 0x20 && static_cast<unsigned char>(s[i]) <= 0x3F) ++i;
    if (i < s.size() && static_cast<unsigned char>(s[i]) >= 0x40 && static_cast<unsigned char>(s[i]) <= 0x7E) ++i;
    return i - pos;
  }
  // String sequences run to BEL, ST (ESC \) or the 8-bit ST (U+009C, C2 9C), or to the end of
  // the line: a line never continues a string into the next one.
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0x07) return i + 1 - pos;
    if (c == 0x1B && i + 1 < s.size() && s[i + 1] == '\\') return i + 2 - pos;
    if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x9C) return i + 2 - pos;
    ++i;
  }
  return i - pos;
}

bool is_string_intro(char c) { return c == ']' || c == 'P' || c == '^' || c == '_' || c == 'X'; }

}  // namespace

std::string sanitize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0x1B) {  // ESC: drop the sequence it starts
      ++i;
      if (i < s.size()) {
        const char intro = s[i];
        if (intro == '[' || is_string_intro(intro)) {
          i += 1 + sequence_body_length(s, i + 1, intro);
        } else if (static_cast<unsigned char>(intro) >= 0x20 && static_cast<unsigned char>(intro) < 0x7F) {
          // "ESC x", e.g. ESC c (reset), ESC 7 / ESC 8 (save / restore cursor). nF sequences
          // (ESC, intermediates 0x20-0x2F, final) are swallowed whole.
          while (i < s.size() && static_cast<unsigned char>(s[i]) >= 0x20 && static_cast<unsigned char>(s[i]) <= 0x2F) ++i;
          if (i < s.size() && static_cast<unsigned char>(s[i]) >= 0x30 && static_cast<unsigned char>(s[i]) < 0x7F) ++i;
        }
      }
      out += replacement_char;
      continue;
    }
    if (c == '\t') {
      out += ' ';
      ++i;
      continue;
    }
    if (c < 0x20 || c == 0x7F) {
      out += replacement_char;
      ++i;
      continue;
    }
    const auto d = decode(s.substr(i));
    if (!d) {
      out += replacement_char;
      ++i;
      continue;
    }
    if (d->cp >= 0x80 && d->cp <= 0x9F) {  // C1: U+009B is an 8-bit CSI, U+009D an OSC, ...
      i += d->len;
      if (d->cp == 0x9B) i += sequence_body_length(s, i, '[');
      else if (d->cp == 0x9D || d->cp == 0x90 || d->cp == 0x9E || d->cp == 0x9F || d->cp == 0x98)
        i += sequence_body_length(s, i, ']');
      out += replacement_char;
      continue;
    }
    if (is_bidi_control(d->cp) || is_line_breaker(d->cp)) {
      out += replacement_char;
    } else {
      out.append(s.substr(i, d->len));
    }
    i += d->len;
  }
  return out;
}

bool is_sanitized(std::string_view text) { return sanitize(text) == text; }

}  // namespace chat
