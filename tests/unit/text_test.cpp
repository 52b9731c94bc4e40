#include "common/text.hpp"

#include <catch2/catch.hpp>

#include <string>

using chat::check_text;
using chat::TextProblem;

namespace {
// Builds a string from raw bytes, so that test inputs can hold any byte (NUL included).
std::string bytes(std::initializer_list<int> list) {
  std::string out;
  for (int b : list) out += static_cast<char>(b);
  return out;
}
}  // namespace

TEST_CASE("check_text accepts plain ASCII, spaces and TAB", "[text]") {
  CHECK(check_text("") == TextProblem::none);
  CHECK(check_text("hello world") == TextProblem::none);
  CHECK(check_text("  leading and trailing  ") == TextProblem::none);
  CHECK(check_text("a\tb") == TextProblem::none);
  CHECK(check_text("\t") == TextProblem::none);
  CHECK(check_text("~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./") == TextProblem::none);
  std::string printable;
  for (int c = 0x20; c < 0x7f; ++c) printable += static_cast<char>(c);
  CHECK(check_text(printable) == TextProblem::none);
}

TEST_CASE("check_text rejects every C0 control but TAB, and DEL", "[text]") {
  for (int c = 0x00; c < 0x20; ++c) {
    if (c == '\t') continue;
    INFO("byte " << c);
    CHECK(check_text(bytes({c})) == TextProblem::bad_char);
    CHECK(check_text("ab" + bytes({c}) + "cd") == TextProblem::bad_char);
  }
  CHECK(check_text(bytes({0x7f})) == TextProblem::bad_char);
  CHECK(check_text("x" + bytes({0x7f})) == TextProblem::bad_char);
  CHECK(check_text("line\r") == TextProblem::bad_char);
  CHECK(check_text("line\n") == TextProblem::bad_char);
}

TEST_CASE("check_text rejects C1 controls U+0080..U+009F", "[text]") {
  for (int second = 0x80; second <= 0x9f; ++second) {
    INFO("C2 " << second);
    CHECK(check_text(bytes({0xc2, second})) == TextProblem::bad_char);
    CHECK(check_text("x" + bytes({0xc2, second}) + "y") == TextProblem::bad_char);
  }
  // U+00A0 (NO-BREAK SPACE) is the first code point after C1: fine.
  CHECK(check_text(bytes({0xc2, 0xa0})) == TextProblem::none);
  CHECK(check_text(bytes({0xc2, 0xbf})) == TextProblem::none);
}

TEST_CASE("check_text accepts well-formed 2, 3 and 4 byte UTF-8", "[text]") {
  CHECK(check_text("h\xc3\xa9llo") == TextProblem::none);                 // héllo
  CHECK(check_text("\xe6\x97\xa5\xe6\x9c\xac") == TextProblem::none);     // 日本
  CHECK(check_text("\xf0\x9f\x98\x80") == TextProblem::none);             // U+1F600
  CHECK(check_text("hi \xf0\x9f\x91\x8b there") == TextProblem::none);    // U+1F44B
  CHECK(check_text(bytes({0xdf, 0xbf})) == TextProblem::none);            // U+07FF
  CHECK(check_text(bytes({0xe0, 0xa0, 0x80})) == TextProblem::none);      // U+0800
  CHECK(check_text(bytes({0xed, 0x9f, 0xbf})) == TextProblem::none);      // U+D7FF
  CHECK(check_text(bytes({0xee, 0x80, 0x80})) == TextProblem::none);      // U+E000
  CHECK(check_text(bytes({0xef, 0xbf, 0xbf})) == TextProblem::none);      // U+FFFF
  CHECK(check_text(bytes({0xf0, 0x90, 0x80, 0x80})) == TextProblem::none);  // U+10000
  CHECK(check_text(bytes({0xf4, 0x8f, 0xbf, 0xbf})) == TextProblem::none);  // U+10FFFF
}

TEST_CASE("check_text rejects malformed UTF-8", "[text]") {
  SECTION("lone continuation bytes") {
    CHECK(check_text(bytes({0x80})) == TextProblem::bad_utf8);
    CHECK(check_text(bytes({0xbf})) == TextProblem::bad_utf8);
    CHECK(check_text("ab" + bytes({0xa9}) + "cd") == TextProblem::bad_utf8);
    // A valid 2-byte sequence followed by one continuation too many.
    CHECK(check_text(bytes({0xc3, 0xa9, 0xa9})) == TextProblem::bad_utf8);
  }
  SECTION("truncated sequences") {
    CHECK(check_text(bytes({0xc3})) == TextProblem::bad_utf8);
    CHECK(check_text(bytes({0xe6, 0x97})) == TextProblem::bad_utf8);
    CHECK(check_text(bytes({0xf0, 0x9f, 0x98})) == TextProblem::bad_utf8);
    CHECK(check_text("end " + bytes({0xf0, 0x9f})) == TextProblem::bad_utf8);
    // Truncated in the middle of the text: the next byte is not a continuation.
    CHECK(check_text(bytes({0xc3, 'a'})) == TextProblem::bad_utf8);
    CHECK(check_text(bytes({0xe6, 0x97, 'a'})) == TextProblem::bad_utf8);
    CHECK(check_text(bytes({0xf0, 0x9f, 0x98, ' '})) == TextProblem::bad_utf8);
  }
  SECTION("overlong forms") {
    CHECK(check_text(bytes({0xc0, 0xaf})) == TextProblem::bad_utf8);              // '/'
    CHECK(check_text(bytes({0xc1, 0xbf})) == TextProblem::bad_utf8);
    CHECK(check_text(bytes({0xc0, 0x80})) == TextProblem::bad_utf8);              // NUL
    CHECK(check_text(bytes({0xe0, 0x80, 0xaf})) == TextProblem::bad_utf8);
    CHECK(check_text(bytes({0xe0, 0x9f, 0xbf})) == TextProblem::bad_utf8);        // U+07FF
    CHECK(check_text(bytes({0xf0, 0x80, 0x80, 0xaf})) == TextProblem::bad_utf8);
    CHECK(check_text(bytes({0xf0, 0x8f, 0xbf, 0xbf})) == TextProblem::bad_utf8);  // U+FFFF
  }
  SECTION("UTF-16 surrogates") {
    CHECK(check_text(bytes({0xed, 0xa0, 0x80})) == TextProblem::bad_utf8);  // U+D800
    CHECK(check_text(bytes({0xed, 0xbf, 0xbf})) == TextProblem::bad_utf8);  // U+DFFF
    // A CESU-8 style surrogate pair is still two surrogates.
    CHECK(check_text(bytes({0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80})) == TextProblem::bad_utf8);
  }
  SECTION("beyond U+10FFFF") {
    CHECK(check_text(bytes({0xf4, 0x90, 0x80, 0x80})) == TextProblem::bad_utf8);
    CHECK(check_text(bytes({0xf4, 0xbf, 0xbf, 0xbf})) == TextProblem::bad_utf8);
  }
  SECTION("bytes F5..FF never occur") {
    for (int b = 0xf5; b <= 0xff; ++b) {
      INFO("byte " << b);
      CHECK(check_text(bytes({b})) == TextProblem::bad_utf8);
      CHECK(check_text(bytes({b, 0x80, 0x80, 0x80})) == TextProblem::bad_utf8);
    }
  }
}

TEST_CASE("check_text: malformed UTF-8 wins over a control character", "[text]") {
  CHECK(check_text("\x01" + bytes({0x80})) == TextProblem::bad_utf8);
  CHECK(check_text(bytes({0xc2, 0x85, 0xff})) == TextProblem::bad_utf8);
  CHECK(check_text(bytes({0xff}) + "\x7f") == TextProblem::bad_utf8);
}

TEST_CASE("nick_problem accepts 1 to 24 characters from A-Z a-z 0-9 _ ! -", "[text][nick]") {
  CHECK_FALSE(chat::nick_problem("a"));
  CHECK_FALSE(chat::nick_problem("alice"));
  CHECK_FALSE(chat::nick_problem("Alice_42"));
  CHECK_FALSE(chat::nick_problem("x-y!z_"));
  CHECK_FALSE(chat::nick_problem("0"));
  CHECK_FALSE(chat::nick_problem("_"));
  CHECK_FALSE(chat::nick_problem("!"));
  CHECK_FALSE(chat::nick_problem("-"));
  CHECK_FALSE(chat::nick_problem("ABCDEFGHIJKLMNOPQRSTUVWX"));
  CHECK_FALSE(chat::nick_problem("abcdefghijklmnopqrstuvwx"));
  CHECK_FALSE(chat::nick_problem("0123456789_!-0123456789_"));
  CHECK_FALSE(chat::nick_problem(std::string(chat::max_nick_length, 'n')));
  STATIC_REQUIRE(chat::max_nick_length == 24);
}

TEST_CASE("nick_problem rejects empty, too long and other characters", "[text][nick]") {
  auto empty = chat::nick_problem("");
  REQUIRE(empty);
  CHECK_FALSE(empty->empty());

  auto too_long = chat::nick_problem(std::string(25, 'n'));
  REQUIRE(too_long);
  CHECK_FALSE(too_long->empty());
  CHECK(chat::nick_problem(std::string(100, 'n')));

  for (std::string_view bad : {"al ice", " alice", "alice ", "al@ice", "@alice", "alice.", "a/b", "a:b",
                               "a#b", "a,b", "a\tb", "a*b", "h\xc3\xa9llo", "\xe6\x97\xa5", "a\x01"}) {
    INFO("nick '" << bad << "'");
    auto problem = chat::nick_problem(bad);
    REQUIRE(problem);
    CHECK_FALSE(problem->empty());
  }
  // Every ASCII byte outside the allowed set, on its own.
  for (int c = 0; c < 0x80; ++c) {
    const bool allowed = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                         c == '_' || c == '!' || c == '-';
    INFO("byte " << c);
    CHECK(chat::nick_problem(std::string(1, static_cast<char>(c))).has_value() == !allowed);
  }
}

TEST_CASE("fold_nick lowercases ASCII letters only", "[text][nick]") {
  CHECK(chat::fold_nick("Alice") == "alice");
  CHECK(chat::fold_nick("ALICE") == "alice");
  CHECK(chat::fold_nick("alice") == "alice");
  CHECK(chat::fold_nick("A_B-C!9") == "a_b-c!9");
  CHECK(chat::fold_nick("") == "");
  CHECK(chat::fold_nick("ABCDEFGHIJKLMNOPQRSTUVWXYZ") == "abcdefghijklmnopqrstuvwxyz");
  CHECK(chat::fold_nick("0123456789_!-") == "0123456789_!-");
  CHECK(chat::fold_nick("BoB") == chat::fold_nick("bOb"));
  CHECK(chat::fold_nick("bob") != chat::fold_nick("bob_"));
  CHECK(chat::fold_nick("[\\]^@`{") == "[\\]^@`{");  // neighbours of the letter ranges are untouched
}
