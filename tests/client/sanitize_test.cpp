// Unit tests of client/sanitize.hpp: nothing that came from the network may drive the terminal.
#include "client/sanitize.hpp"

#include <catch2/catch.hpp>

#include <string>

using chat::is_sanitized;
using chat::sanitize;

namespace {
const std::string R(chat::replacement_char);

// No byte that a terminal acts on survives: C0 (TAB included), DEL, ESC, and no C1 in UTF-8.
bool inert(const std::string& s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) return false;
    if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(s[i + 1]) <= 0x9F)
      return false;
  }
  return true;
}
}  // namespace

TEST_CASE("sanitize keeps ordinary text, UTF-8 included", "[sanitize]") {
  CHECK(sanitize("hello, world") == "hello, world");
  CHECK(sanitize("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xE4\xB8\xAD") == "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xE4\xB8\xAD");
  CHECK(sanitize("") == "");
  CHECK(sanitize("[ok] *** not an escape") == "[ok] *** not an escape");
  CHECK(is_sanitized("plain"));
}

TEST_CASE("sanitize removes CSI sequences whole", "[sanitize]") {
  CHECK(sanitize("\x1b[31mred\x1b[0m") == R + "red" + R);
  CHECK(sanitize("a\x1b[2Jb") == "a" + R + "b");              // clear screen
  CHECK(sanitize("a\x1b[10;20Hb") == "a" + R + "b");          // cursor position
  CHECK(sanitize("a\x1b[?1049hb") == "a" + R + "b");          // alternate screen
  CHECK(sanitize("a\x1b[38;5;208mb") == "a" + R + "b");
  CHECK(sanitize("end\x1b[") == "end" + R);                   // cut short
}

TEST_CASE("sanitize removes OSC, DCS and other string sequences", "[sanitize]") {
  CHECK(sanitize("a\x1b]0;owned title\x07" "b") == "a" + R + "b");      // window title, BEL
  CHECK(sanitize("a\x1b]2;t\x1b\\b") == "a" + R + "b");                  // ST terminator
  CHECK(sanitize("a\x1b]8;;http://x\x1b\\link") == "a" + R + "link");   // hyperlink
  CHECK(sanitize("a\x1bPq#0;2;0;0;0\x1b\\b") == "a" + R + "b");          // DCS (sixel)
  CHECK(sanitize("a\x1b]0;never ends") == "a" + R);                      // to the end of line
  CHECK(sanitize("a\x1b" "cb") == "a" + R + "b");                        // ESC c: reset
  CHECK(sanitize("a\x1b" "7b\x1b" "8") == "a" + R + "b" + R);            // save / restore cursor
  CHECK(sanitize("a\x1b(0b") == "a" + R + "b");                          // charset (nF)
  CHECK(sanitize("\x1b") == R);
}

TEST_CASE("sanitize replaces C0 controls and DEL, TAB becomes a space", "[sanitize]") {
  CHECK(sanitize("a\rb") == "a" + R + "b");
  CHECK(sanitize("a\nb") == "a" + R + "b");
  CHECK(sanitize("a\bb") == "a" + R + "b");
  CHECK(sanitize("bell\x07") == "bell" + R);
  CHECK(sanitize(std::string("nul\0x", 5)) == "nul" + R + "x");
  CHECK(sanitize("del\x7f") == "del" + R);
  CHECK(sanitize("a\tb") == "a b");
  // A message cannot pose as a line of the client's own by returning the carriage.
  CHECK(sanitize("hi\r[12:00:00] *** connection to server lost") == "hi" + R + "[12:00:00] *** connection to server lost");
}

TEST_CASE("sanitize replaces C1 controls, 8-bit CSI and OSC with their parameters", "[sanitize]") {
  CHECK(sanitize("a\xC2\x9B" "31mb") == "a" + R + "b");           // U+009B CSI
  CHECK(sanitize("a\xC2\x9D" "0;t\x07" "b") == "a" + R + "b");    // U+009D OSC
  CHECK(sanitize("a\xC2\x85" "b") == "a" + R + "b");              // NEL
  CHECK(sanitize("a\xC2\x80\xC2\x85" "b") == "a" + R + R + "b");
  CHECK(sanitize("a\xC2\x9F" "app command\xC2\x9C" "b") == "a" + R + "b");  // APC ... ST
  CHECK(sanitize("\xC2\xA0") == "\xC2\xA0");  // U+00A0 no-break space is text
}

TEST_CASE("sanitize replaces the characters where a renderer may start a new line", "[sanitize]") {
  // U+2028, U+2029, and U+FDD0 / U+FDD1 (QTextDocument's block separators): a message must not
  // show a second line that looks like another person's.
  for (const std::string breaker : {"\xE2\x80\xA8", "\xE2\x80\xA9", "\xEF\xB7\x90", "\xEF\xB7\x91"}) {
    INFO("bytes: " << breaker.size());
    CHECK(sanitize("hi" + breaker + "[14:03:00] <admin> run this") == "hi" + R + "[14:03:00] <admin> run this");
    CHECK(!is_sanitized("x" + breaker));
  }
}

TEST_CASE("sanitize replaces Unicode bidi controls", "[sanitize]") {
  for (const std::string bidi : {"\xE2\x80\xAA", "\xE2\x80\xAB", "\xE2\x80\xAC", "\xE2\x80\xAD", "\xE2\x80\xAE",
                                 "\xE2\x81\xA6", "\xE2\x81\xA7", "\xE2\x81\xA8", "\xE2\x81\xA9", "\xE2\x80\x8E",
                                 "\xE2\x80\x8F", "\xD8\x9C"}) {
    INFO("bidi bytes: " << bidi.size());
    CHECK(sanitize("x" + bidi + "y") == "x" + R + "y");
  }
  // U+202E RIGHT-TO-LEFT OVERRIDE would show "txt.exe" as "exe.txt".
  CHECK(sanitize("\xE2\x80\xAEtxt.exe") == R + "txt.exe");
  CHECK(sanitize("\xE2\x80\x8D") == "\xE2\x80\x8D");  // U+200D ZWJ (emoji sequences) stays
}

TEST_CASE("sanitize replaces ill-formed UTF-8 byte by byte", "[sanitize]") {
  CHECK(sanitize("a\xFF" "b") == "a" + R + "b");
  CHECK(sanitize("a\xC0\xAF" "b") == "a" + R + R + "b");            // overlong '/'
  CHECK(sanitize("a\xED\xA0\x80" "b") == "a" + R + R + R + "b");    // surrogate U+D800
  CHECK(sanitize("a\xF4\x90\x80\x80") == "a" + R + R + R + R);       // > U+10FFFF
  CHECK(sanitize("a\xE2\x82") == "a" + R + R);                       // truncated
  CHECK(sanitize("\x80") == R);                                      // lone continuation
  // An overlong ESC (C0 9B) cannot sneak a sequence past.
  CHECK(inert(sanitize("\xC1\x9B[2J")));
}

TEST_CASE("sanitize output is always inert and idempotent", "[sanitize]") {
  // Every byte value, alone and before '[' and ']'.
  for (int b = 0; b < 256; ++b) {
    for (const std::string tail : {"", "[1m", "]0;x\x07", "\x9b"}) {
      const std::string in = std::string(1, static_cast<char>(b)) + tail + "z";
      const std::string out = sanitize(in);
      INFO("byte " << b);
      CHECK(inert(out));
      CHECK(sanitize(out) == out);
    }
  }
}
