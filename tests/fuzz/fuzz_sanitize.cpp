// Fuzzes chatclient's sanitiser (client/sanitize.hpp) with arbitrary bytes, as a hostile
// server could send them. What the header promises, checked on every output:
//   - it is one line of well-formed UTF-8 (checked against the Unicode Standard's table,
//     fuzz_support.hpp) with no C0 control (TAB, CR, LF and ESC included), no DEL, no C1, no
//     bidi control and no line or paragraph separator, so nothing in it can drive a terminal or
//     start a new line in a Qt window;
//   - it is sanitised: is_sanitized(out), sanitize(out) == out; and is_sanitized(in) exactly
//     when sanitize leaves the input alone;
//   - for input without ESC or C1 (the two things that swallow a whole sequence) the output is
//     exactly the documented replacement: TAB a space, other C0 and DEL one U+FFFD each, bidi
//     controls and line breakers U+FFFD, one U+FFFD per byte that starts no well-formed sequence, the rest kept.
#include "client/sanitize.hpp"
#include "tests/fuzz/fuzz_support.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

using chat::fuzz::escaped;

namespace {

// The sanitised form of `in` by the header's rules, or nullopt when `in` holds ESC or a C1
// control, whose sequences this model does not delimit.
std::optional<std::string> expected_output(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size();) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (c == 0x1B) return std::nullopt;
    if (c == '\t') {
      out += ' ';
      ++i;
      continue;
    }
    if (c < 0x20 || c == 0x7F) {
      out += chat::replacement_char;
      ++i;
      continue;
    }
    const std::size_t len = chat::fuzz::utf8_length_at(in, i);
    if (len == 0) {
      out += chat::replacement_char;
      ++i;
      continue;
    }
    const char32_t cp = chat::fuzz::utf8_code_point_at(in, i, len);
    if (cp >= 0x80 && cp <= 0x9F) return std::nullopt;
    if (chat::fuzz::is_bidi_control(cp) || chat::fuzz::is_line_breaker(cp)) {
      out += chat::replacement_char;
    } else {
      out.append(in.substr(i, len));
    }
    i += len;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::string out = chat::sanitize(in);
  const auto context = [&] { return "input '" + escaped(in) + "' gave '" + escaped(out) + "'"; };

  const auto cps = chat::fuzz::code_points(out);
  FUZZ_CHECK(cps, context() + ": not well-formed UTF-8");
  for (const char32_t cp : *cps) {
    FUZZ_CHECK(cp >= 0x20 && cp != 0x7F && !(cp >= 0x80 && cp <= 0x9F) && !chat::fuzz::is_bidi_control(cp) &&
                   !chat::fuzz::is_line_breaker(cp),
               context() + ": holds U+" + std::to_string(static_cast<unsigned>(cp)) + " (decimal)");
  }

  FUZZ_CHECK(chat::is_sanitized(out), context() + ": output not is_sanitized");
  FUZZ_CHECK(chat::sanitize(out) == out, context() + ": sanitize is not idempotent");
  FUZZ_CHECK(chat::is_sanitized(in) == (out == in), context() + ": is_sanitized(input) disagrees");

  if (const auto want = expected_output(in)) {
    FUZZ_CHECK(out == *want, context() + ", want '" + escaped(*want) + "'");
  }
  return 0;
}
