#include "common/text.hpp"

#include <cstdint>

namespace chat {

TextProblem check_text(std::string_view text) {
  bool saw_control = false;
  std::size_t i = 0;
  const std::size_t n = text.size();
  while (i < n) {
    const auto b0 = static_cast<unsigned char>(text[i]);
    if (b0 < 0x80) {
      if ((b0 < 0x20 && b0 != '\t') || b0 == 0x7f) saw_control = true;
      ++i;
      continue;
    }
    std::size_t len;
    std::uint32_t cp;
    std::uint32_t min;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
      len = 2, cp = b0 & 0x1fu, min = 0x80;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      len = 3, cp = b0 & 0x0fu, min = 0x800;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      len = 4, cp = b0 & 0x07u, min = 0x10000;
    } else {
      return TextProblem::bad_utf8;  // continuation byte first, 0xc0/0xc1, or > 0xf4
    }
    if (n - i < len) return TextProblem::bad_utf8;
    for (std::size_t k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(text[i + k]);
      if ((b & 0xc0u) != 0x80u) return TextProblem::bad_utf8;
      cp = (cp << 6) | (b & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return TextProblem::bad_utf8;
    if (cp >= 0x80 && cp <= 0x9f) saw_control = true;
    i += len;
  }
  // Malformed UTF-8 anywhere wins over a control character: it is the more basic fault.
  return saw_control ? TextProblem::bad_char : TextProblem::none;
}

std::optional<std::string> nick_problem(std::string_view nick) {
  if (nick.empty()) return "a nickname needs 1 to 24 characters";
  // The characters first: "é" x 13 is 13 characters (26 bytes), refused for what it is, not
  // as too long.
  for (char c : nick) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '!' || c == '-';
    if (!ok) return "only A-Z a-z 0-9 _ ! - are allowed";
  }
  if (nick.size() > max_nick_length) return "longer than 24 characters";
  return std::nullopt;
}

std::string fold_nick(std::string_view nick) {
  std::string out(nick);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace chat
