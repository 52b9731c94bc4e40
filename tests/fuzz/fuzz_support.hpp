// What the libFuzzer targets share: FUZZ_CHECK, their assertion, and a UTF-8 reader written
// from the Unicode Standard's table of well-formed byte sequences (Table 3-7), so that it checks
// common/text.cpp's and client/sanitize.cpp's decoders instead of repeating them.
#pragma once

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chat::fuzz {

// `s` with every byte outside printable ASCII (and the backslash) written as \xNN.
inline std::string escaped(std::string_view s) {
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += ch;
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02X", c);
      out += hex;
    }
  }
  return out;
}

[[noreturn]] inline void fail(const char* expr, const char* file, int line, const std::string& detail) {
  std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: %s\n", file, line, expr, detail.c_str());
  std::abort();  // libFuzzer reports a crash and saves the input as crash-<sha1>
}

// The length of the well-formed UTF-8 sequence that starts at s[i] (i < s.size()), or 0 if
// none does.
inline std::size_t utf8_length_at(std::string_view s, std::size_t i) {
  const auto at = [&](std::size_t k) -> int {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : -1;
  };
  const auto in = [](int b, int lo, int hi) { return b >= lo && b <= hi; };
  const int b0 = at(0);
  if (in(b0, 0x00, 0x7F)) return 1;
  int lo = 0x80, hi = 0xBF;  // the range of the second byte; later ones are always 80..BF
  std::size_t len;
  if (in(b0, 0xC2, 0xDF)) len = 2;
  else if (b0 == 0xE0) len = 3, lo = 0xA0;                               // no overlong forms
  else if (in(b0, 0xE1, 0xEC) || in(b0, 0xEE, 0xEF)) len = 3;
  else if (b0 == 0xED) len = 3, hi = 0x9F;                               // no surrogates
  else if (b0 == 0xF0) len = 4, lo = 0x90;                               // no overlong forms
  else if (in(b0, 0xF1, 0xF3)) len = 4;
  else if (b0 == 0xF4) len = 4, hi = 0x8F;                               // nothing above U+10FFFF
  else return 0;                                                         // 80..C1, F5..FF
  if (!in(at(1), lo, hi)) return 0;
  for (std::size_t k = 2; k < len; ++k) {
    if (!in(at(k), 0x80, 0xBF)) return 0;
  }
  return len;
}

// The code point of a well-formed sequence of `len` bytes at s[i].
inline char32_t utf8_code_point_at(std::string_view s, std::size_t i, std::size_t len) {
  static constexpr unsigned char lead_mask[] = {0, 0x7F, 0x1F, 0x0F, 0x07};
  char32_t cp = static_cast<unsigned char>(s[i]) & lead_mask[len];
  for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return cp;
}

// The code points of `s`, or nullopt if it is not well-formed UTF-8.
inline std::optional<std::vector<char32_t>> code_points(std::string_view s) {
  std::vector<char32_t> out;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t len = utf8_length_at(s, i);
    if (len == 0) return std::nullopt;
    out.push_back(utf8_code_point_at(s, i, len));
    i += len;
  }
  return out;
}

// The controls of the protocol's text rules: C0 but TAB, DEL, C1.
inline bool is_forbidden_control(char32_t cp) {
  return (cp < 0x20 && cp != '\t') || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F);
}

// The Unicode bidirectional controls client/sanitize.hpp lists.
inline bool is_bidi_control(char32_t cp) {
  return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E || cp == 0x200F ||
         cp == 0x061C;
}

// Where a renderer may start a new line though it is no control: U+2028, U+2029, and
// QTextDocument's block separators U+FDD0, U+FDD1 (client/sanitize.hpp).
inline bool is_line_breaker(char32_t cp) { return cp == 0x2028 || cp == 0x2029 || cp == 0xFDD0 || cp == 0xFDD1; }

}  // namespace chat::fuzz

// Checks a property of the code under test; on failure prints `detail` (a std::string
// expression, evaluated only then) and aborts.
#define FUZZ_CHECK(cond, detail)                                             \
  do {                                                                       \
    if (!(cond)) ::chat::fuzz::fail(#cond, __FILE__, __LINE__, (detail));    \
  } while (0)
