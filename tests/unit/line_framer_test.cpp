#include "common/line_framer.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using chat::LineFramer;
using Kind = LineFramer::Piece::Kind;

namespace {

// What the framer reported, copied out of the callback (Piece::text dies with it).
struct Got {
  Kind kind;
  std::string text;
  bool operator==(const Got&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Got& g) {
  return os << (g.kind == Kind::line ? "line '" + g.text + "'" : std::string("too_long"));
}

Got line(std::string text) { return Got{Kind::line, std::move(text)}; }
const Got too_long{Kind::too_long, {}};

std::vector<Got> feed(LineFramer& framer, std::string_view bytes) {
  std::vector<Got> out;
  framer.feed(bytes, [&](const LineFramer::Piece& p) { out.push_back(Got{p.kind, std::string(p.text)}); });
  return out;
}

// Feeds one byte at a time. A breach of the memory bound after any byte shows up as a piece
// that no comparison expects.
std::vector<Got> feed_bytewise(LineFramer& framer, std::string_view bytes) {
  std::vector<Got> out;
  for (char c : bytes) {
    auto got = feed(framer, std::string_view(&c, 1));
    out.insert(out.end(), got.begin(), got.end());
    if (framer.buffered() > framer.max_line() + 1) out.push_back(line("<buffered() above max_line + 1>"));
  }
  return out;
}

}  // namespace

TEST_CASE("LineFramer delivers a single line", "[framer]") {
  LineFramer f(100);
  CHECK(f.max_line() == 100);
  CHECK(f.buffered() == 0);
  CHECK(feed(f, "hello\n") == std::vector<Got>{line("hello")});
  CHECK(f.buffered() == 0);
}

TEST_CASE("LineFramer delivers several lines from one feed, in order", "[framer]") {
  LineFramer f(100);
  CHECK(feed(f, "one\ntwo\r\nthree\n") == std::vector<Got>{line("one"), line("two"), line("three")});
  CHECK(f.buffered() == 0);
  // A trailing partial line stays buffered until its LF.
  CHECK(feed(f, "four\nfi") == std::vector<Got>{line("four")});
  CHECK(f.buffered() == 2);
  CHECK(feed(f, "ve\n") == std::vector<Got>{line("five")});
}

TEST_CASE("LineFramer joins a line split across many feeds", "[framer]") {
  LineFramer f(100);
  SECTION("byte by byte") {
    CHECK(feed_bytewise(f, "hello world\r\nsecond\n") == std::vector<Got>{line("hello world"), line("second")});
  }
  SECTION("uneven chunks, CR and LF in different feeds") {
    CHECK(feed(f, "he").empty());
    CHECK(feed(f, "llo wo").empty());
    CHECK(feed(f, "rld\r").empty());
    CHECK(f.buffered() == 12);
    CHECK(feed(f, "\nnext") == std::vector<Got>{line("hello world")});
    CHECK(feed(f, "\n") == std::vector<Got>{line("next")});
  }
  SECTION("empty feeds change nothing") {
    CHECK(feed(f, "").empty());
    CHECK(feed(f, "ab").empty());
    CHECK(feed(f, "").empty());
    CHECK(f.buffered() == 2);
    CHECK(feed(f, "\n") == std::vector<Got>{line("ab")});
  }
}

TEST_CASE("LineFramer strips only a CR right before the LF", "[framer]") {
  LineFramer f(100);
  CHECK(feed(f, "a\r\n") == std::vector<Got>{line("a")});
  CHECK(feed(f, "a\rb\n") == std::vector<Got>{line("a\rb")});
  CHECK(feed(f, "\ra\n") == std::vector<Got>{line("\ra")});
  CHECK(feed(f, "ab\r\r\n") == std::vector<Got>{line("ab\r")});
  CHECK(feed(f, "\r\n") == std::vector<Got>{line("")});
}

TEST_CASE("LineFramer delivers empty lines", "[framer]") {
  LineFramer f(10);
  CHECK(feed(f, "\n") == std::vector<Got>{line("")});
  CHECK(feed(f, "\n\r\n\n") == std::vector<Got>{line(""), line(""), line("")});
  CHECK(feed(f, "x\n\ny\n") == std::vector<Got>{line("x"), line(""), line("y")});
}

TEST_CASE("LineFramer accepts a line of exactly max_line bytes", "[framer]") {
  constexpr std::size_t max = 16;
  LineFramer f(max);
  const std::string full(max, 'a');
  CHECK(feed(f, full + "\n") == std::vector<Got>{line(full)});
  CHECK(feed(f, full + "\r\n") == std::vector<Got>{line(full)});
  CHECK(feed_bytewise(f, full + "\r\n") == std::vector<Got>{line(full)});
  // A line whose last byte is a CR kept as text ("...\r" then CR LF) still counts that CR.
  const std::string with_cr = std::string(max - 1, 'b') + "\r";
  CHECK(feed(f, with_cr + "\r\n") == std::vector<Got>{line(with_cr)});
}

TEST_CASE("LineFramer rejects a line of max_line + 1 bytes", "[framer]") {
  constexpr std::size_t max = 16;
  LineFramer f(max);
  const std::string over(max + 1, 'a');
  SECTION("with LF") {
    CHECK(feed(f, over + "\n") == std::vector<Got>{too_long});
  }
  SECTION("with CR LF") {
    CHECK(feed(f, over + "\r\n") == std::vector<Got>{too_long});
  }
  SECTION("byte by byte, with CR LF") {
    CHECK(feed_bytewise(f, over + "\r\n") == std::vector<Got>{too_long});
  }
  SECTION("byte by byte, with LF") {
    CHECK(feed_bytewise(f, over + "\n") == std::vector<Got>{too_long});
  }
  // Either way the framer is ready for the next line.
  CHECK(f.buffered() == 0);
  CHECK(feed(f, "ok\n") == std::vector<Got>{line("ok")});
}

TEST_CASE("LineFramer reports too_long once, before the LF, then resumes after it", "[framer]") {
  constexpr std::size_t max = 8;
  LineFramer f(max);
  // max + 2 bytes cannot be a line of max bytes plus CR: too long before any LF is seen.
  CHECK(feed(f, std::string(max + 2, 'x')) == std::vector<Got>{too_long});
  CHECK(f.buffered() <= max + 1);
  // The rest of the over-long line is discarded silently, however much of it comes.
  CHECK(feed(f, std::string(1000, 'y')).empty());
  CHECK(feed(f, "still the same line\r").empty());
  CHECK(f.buffered() <= max + 1);
  // Its LF ends it; the next good line is delivered.
  CHECK(feed(f, "\ngood\n") == std::vector<Got>{line("good")});
  CHECK(f.buffered() == 0);
}

TEST_CASE("LineFramer: over-long line, its end and the next line in one feed", "[framer]") {
  LineFramer f(4);
  CHECK(feed(f, "abcdefgh\nok\nabcdefghij\r\n\nfine\r\n") ==
        std::vector<Got>{too_long, line("ok"), too_long, line(""), line("fine")});
  CHECK(f.buffered() == 0);
}

TEST_CASE("LineFramer: too_long fires once per over-long line, byte by byte", "[framer]") {
  LineFramer f(4);
  CHECK(feed_bytewise(f, "0123456789abcdef\nabc\n0123456\r\n") ==
        std::vector<Got>{too_long, line("abc"), too_long});
}

TEST_CASE("LineFramer memory stays bounded without any LF", "[framer]") {
  constexpr std::size_t max = 1024;
  LineFramer f(max);
  int too_long_count = 0;
  int lines = 0;
  auto count = [&](const LineFramer::Piece& p) { (p.kind == Kind::too_long ? too_long_count : lines)++; };
  SECTION("one megabyte-sized feed at a time") {
    const std::string megabyte(1 << 20, 'z');
    for (int i = 0; i < 8; ++i) {
      f.feed(megabyte, count);
      CHECK(f.buffered() <= max + 1);
    }
  }
  SECTION("small feeds adding up to megabytes") {
    const std::string chunk(1000, 'z');
    for (int i = 0; i < 3000; ++i) {
      f.feed(chunk, count);
      REQUIRE(f.buffered() <= max + 1);
    }
  }
  CHECK(too_long_count == 1);
  CHECK(lines == 0);
  f.feed("\nafter\n", count);
  CHECK(too_long_count == 1);
  CHECK(lines == 1);
}

TEST_CASE("LineFramer::take_partial returns the unterminated last line at EOF", "[framer]") {
  LineFramer f(16);
  std::string out = "untouched";
  SECTION("nothing buffered") {
    CHECK_FALSE(f.take_partial(out));
    CHECK(out == "untouched");
  }
  SECTION("after complete lines only") {
    CHECK(feed(f, "done\n").size() == 1);
    CHECK_FALSE(f.take_partial(out));
    CHECK(out == "untouched");
  }
  SECTION("a partial line") {
    CHECK(feed(f, "hi\nbye").size() == 1);
    REQUIRE(f.take_partial(out));
    CHECK(out == "bye");
    CHECK(f.buffered() == 0);
    CHECK_FALSE(f.take_partial(out));  // emptied
  }
  SECTION("a partial line ending in CR") {
    feed(f, "bye\r");
    REQUIRE(f.take_partial(out));
    CHECK(out == "bye");
  }
  SECTION("a lone CR is no line") {
    feed(f, "\r");
    CHECK_FALSE(f.take_partial(out));
    CHECK(out == "untouched");
  }
  SECTION("a partial of exactly max_line bytes") {
    feed(f, std::string(16, 'm'));
    REQUIRE(f.take_partial(out));
    CHECK(out == std::string(16, 'm'));
  }
  SECTION("not after an over-long partial (max_line + 1 bytes)") {
    feed(f, std::string(17, 'm'));
    CHECK_FALSE(f.take_partial(out));
    CHECK(out == "untouched");
    CHECK(f.buffered() == 0);
  }
  SECTION("not while discarding an over-long line") {
    CHECK(feed(f, std::string(100, 'm')) == std::vector<Got>{too_long});
    CHECK_FALSE(f.take_partial(out));
    CHECK(out == "untouched");
  }
  // take_partial leaves the framer clean for reuse.
  CHECK(f.buffered() == 0);
  CHECK(feed(f, "again\n") == std::vector<Got>{line("again")});
}
