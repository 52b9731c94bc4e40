#include "common/units.hpp"

#include <catch2/catch.hpp>

#include <string>

using chat::Millis;
using namespace std::chrono_literals;

TEST_CASE("parse_duration accepts a number with a unit", "[units]") {
  CHECK(chat::parse_duration("100ms") == Millis{100});
  CHECK(chat::parse_duration("250ms") == 250ms);
  CHECK(chat::parse_duration("1.5s") == 1500ms);
  CHECK(chat::parse_duration("10s") == 10'000ms);
  CHECK(chat::parse_duration("2m") == 120'000ms);
  CHECK(chat::parse_duration("2min") == 120'000ms);
  CHECK(chat::parse_duration("1h") == 3'600'000ms);
  CHECK(chat::parse_duration("0.5h") == 1'800'000ms);
  CHECK(chat::parse_duration("1d") == 86'400'000ms);
  CHECK(chat::parse_duration("30d") == 2'592'000'000ms);
  CHECK(chat::parse_duration(".5s") == 500ms);
  CHECK(chat::parse_duration("0s") == 0ms);
  CHECK(chat::parse_duration("0ms") == 0ms);
}

TEST_CASE("parse_duration: 0 alone needs no unit", "[units]") {
  CHECK(chat::parse_duration("0") == 0ms);
  CHECK(chat::parse_duration("0.0") == 0ms);
}

TEST_CASE("parse_duration rejects everything else, with a message", "[units]") {
  for (std::string_view bad : {"", "10", "1.5", "abc", "1.2.3s", "-1s", "+1s", "5x", "s", "ms", "1 s", " 1s",
                               "1s ", "1S", "1e3ms", "1sec", ".s", "1,5s"}) {
    INFO("input '" << bad << "'");
    std::string error;
    CHECK_FALSE(chat::parse_duration(bad, &error));
    CHECK_FALSE(error.empty());
    CHECK(error.find("'" + std::string(bad) + "'") != std::string::npos);
  }
  CHECK_FALSE(chat::parse_duration("abc"));  // the error pointer is optional
  std::string error;
  chat::parse_duration("10", &error);
  CHECK(error.find("unit") != std::string::npos);
}

TEST_CASE("parse_duration's message says what is wrong: the unit, its absence, a space, the number", "[units]") {
  struct Case {
    const char* text;
    const char* message;
  };
  for (const Case& c : {
           Case{"10x", "unknown unit 'x' in '10x' (use ms, s, m or h, e.g. 100ms, 1.5s, 2m)"},
           Case{"1S", "unknown unit 'S' in '1S' (use ms, s, m or h, e.g. 100ms, 1.5s, 2m)"},
           Case{"1sec", "unknown unit 'sec' in '1sec' (use ms, s, m or h, e.g. 100ms, 1.5s, 2m)"},
           Case{"10", "'10' needs a unit (use ms, s, m or h, e.g. 100ms, 1.5s, 2m)"},
           Case{"1 s", "'1 s': no space between the number and the unit (use ms, s, m or h, e.g. 100ms, 1.5s, 2m)"},
           Case{"1,5s", "'1,5s' is not a duration (use ms, s, m or h, e.g. 100ms, 1.5s, 2m)"},
           Case{"soon", "'soon' is not a duration (a number and a unit, e.g. 100ms, 1.5s, 2m)"},
       }) {
    INFO(c.text);
    std::string error;
    CHECK_FALSE(chat::parse_duration(c.text, &error));
    CHECK(error == c.message);
  }
  // The unit is what is wrong, so the message must not say one is missing.
  std::string error;
  chat::parse_duration("10x", &error);
  CHECK(error.find("needs a unit") == std::string::npos);
}

TEST_CASE("parse_duration leaves the error alone on success", "[units]") {
  std::string error = "previous";
  CHECK(chat::parse_duration("1s", &error) == 1000ms);
  CHECK(error == "previous");
}

TEST_CASE("parse_size accepts bytes and binary units", "[units]") {
  CHECK(chat::parse_size("65536") == std::size_t{65536});
  CHECK(chat::parse_size("0") == std::size_t{0});
  CHECK(chat::parse_size("100B") == std::size_t{100});
  CHECK(chat::parse_size("64KiB") == std::size_t{64 * 1024});
  CHECK(chat::parse_size("64K") == std::size_t{64 * 1024});
  CHECK(chat::parse_size("1MiB") == std::size_t{1024 * 1024});
  CHECK(chat::parse_size("1M") == std::size_t{1024 * 1024});
  CHECK(chat::parse_size("1GiB") == std::size_t{1024 * 1024 * 1024});
  CHECK(chat::parse_size("1G") == std::size_t{1024 * 1024 * 1024});
  CHECK(chat::parse_size("1.5KiB") == std::size_t{1536});
}

TEST_CASE("parse_size rejects bad input, with a message", "[units]") {
  for (std::string_view bad : {"", "abc", "-1", "64 KiB", "64KB", "64kib", "1TiB", "1.5", "0.3KiB", "KiB",
                               "1.2.3"}) {
    INFO("input '" << bad << "'");
    std::string error;
    CHECK_FALSE(chat::parse_size(bad, &error));
    CHECK_FALSE(error.empty());
  }
  CHECK_FALSE(chat::parse_size("x"));
}

TEST_CASE("parse_size's message says what is wrong", "[units]") {
  struct Case {
    const char* text;
    const char* message;
  };
  for (const Case& c : {
           Case{"12XB", "unknown unit 'XB' in '12XB' (use B, KiB, MiB or GiB, e.g. 4096, 64KiB, 1MiB)"},
           Case{"64KB", "unknown unit 'KB' in '64KB' (use B, KiB, MiB or GiB, e.g. 4096, 64KiB, 1MiB)"},
           Case{"64 KiB", "'64 KiB': no space between the number and the unit (use B, KiB, MiB or GiB, e.g. 4096, "
                          "64KiB, 1MiB)"},
           Case{"abc", "'abc' is not a size (bytes, or a number and a unit, e.g. 4096, 64KiB, 1MiB)"},
       }) {
    INFO(c.text);
    std::string error;
    CHECK_FALSE(chat::parse_size(c.text, &error));
    CHECK(error == c.message);
  }
}

TEST_CASE("format_duration", "[units]") {
  CHECK(chat::format_duration(16s) == "16.0 s");
  CHECK(chat::format_duration(250ms) == "250 ms");
  CHECK(chat::format_duration(0ms) == "0 ms");
  CHECK(chat::format_duration(1500ms) == "1.5 s");
  CHECK(chat::format_duration(1000ms) == "1.0 s");
  CHECK(chat::format_duration(2min) == "120.0 s");
  CHECK(chat::format_duration(std::chrono::nanoseconds(12'345'678)) == "12 ms");
}

TEST_CASE("parse_keepalive: IDLE,INTERVAL,COUNT", "[units][keepalive]") {
  auto k = chat::parse_keepalive("10s,2s,3");
  REQUIRE(k);
  CHECK(k->enabled);
  CHECK(k->idle == 10s);
  CHECK(k->interval == 2s);
  CHECK(k->count == 3);
  CHECK(k->budget() == 16s);

  k = chat::parse_keepalive("1m,5s,9");
  REQUIRE(k);
  CHECK(k->idle == 60s);
  CHECK(k->interval == 5s);
  CHECK(k->count == 9);
  CHECK(k->budget() == 105s);

  k = chat::parse_keepalive("1s,1s,1");
  REQUIRE(k);
  CHECK(k->budget() == 2s);
  CHECK(chat::parse_keepalive("1s,1s,127"));
}

TEST_CASE("parse_keepalive: off", "[units][keepalive]") {
  auto k = chat::parse_keepalive("off");
  REQUIRE(k);
  CHECK_FALSE(k->enabled);
}

TEST_CASE("KeepaliveConfig defaults to 10s,2s,3", "[units][keepalive]") {
  const chat::KeepaliveConfig k;
  CHECK(k.enabled);
  CHECK(k.budget() == 16s);
  CHECK(chat::format_keepalive(k) == "10s,2s,3");
}

TEST_CASE("parse_keepalive rejects bad specs, with a message", "[units][keepalive]") {
  for (std::string_view bad : {"", "on", "OFF", "10s", "10s,2s", "10s,2s,0", "10s,2s,128", "10s,2s,-1",
                               "1.5s,2s,3", "10s,2.5s,3", "500ms,2s,3", "10s,0s,3", "0,2s,3", "10s,2s,x",
                               "10s,2s,3,4", "10s,2s,3x", "10,2,3", "x,2s,3", "10s,,3", "10s,2s,"}) {
    INFO("spec '" << bad << "'");
    std::string error;
    CHECK_FALSE(chat::parse_keepalive(bad, &error));
    CHECK_FALSE(error.empty());
  }
  std::string error;
  chat::parse_keepalive("10s,x,3", &error);
  CHECK(error.find("INTERVAL") != std::string::npos);
  chat::parse_keepalive("x,2s,3", &error);
  CHECK(error.find("IDLE") != std::string::npos);
  chat::parse_keepalive("10s,2s,0", &error);
  CHECK(error.find("COUNT") != std::string::npos);
}

TEST_CASE("format_keepalive round-trips through parse_keepalive", "[units][keepalive]") {
  for (std::string_view spec : {"10s,2s,3", "1s,1s,1", "60s,5s,9", "32767s,32767s,127", "off"}) {
    INFO("spec " << spec);
    auto k = chat::parse_keepalive(spec);
    REQUIRE(k);
    CHECK(chat::format_keepalive(*k) == spec);
    auto again = chat::parse_keepalive(chat::format_keepalive(*k));
    REQUIRE(again);
    CHECK(again->enabled == k->enabled);
    CHECK(again->idle == k->idle);
    CHECK(again->interval == k->interval);
    CHECK(again->count == k->count);
  }
  // Other spellings come back in seconds.
  auto k = chat::parse_keepalive("2m,1500ms,3");
  CHECK_FALSE(k);  // 1500ms is not whole seconds
  k = chat::parse_keepalive("2m,2000ms,3");
  REQUIRE(k);
  CHECK(chat::format_keepalive(*k) == "120s,2s,3");
}
