#include "common/log.hpp"

#include <catch2/catch.hpp>

using chat::LogLevel;

TEST_CASE("parse_log_level accepts the five level names", "[log]") {
  LogLevel level = LogLevel::error;
  REQUIRE(chat::parse_log_level("trace", level));
  CHECK(level == LogLevel::trace);
  REQUIRE(chat::parse_log_level("debug", level));
  CHECK(level == LogLevel::debug);
  REQUIRE(chat::parse_log_level("info", level));
  CHECK(level == LogLevel::info);
  REQUIRE(chat::parse_log_level("warn", level));
  CHECK(level == LogLevel::warn);
  REQUIRE(chat::parse_log_level("error", level));
  CHECK(level == LogLevel::error);
}

TEST_CASE("parse_log_level rejects anything else and leaves the level alone", "[log]") {
  for (std::string_view bad : {"", "INFO", "Info", "warning", "err", "TRACE", " info", "info ", "debug2"}) {
    INFO("text '" << bad << "'");
    LogLevel level = LogLevel::warn;
    CHECK_FALSE(chat::parse_log_level(bad, level));
    CHECK(level == LogLevel::warn);
  }
}

TEST_CASE("LogLevel order: error < warn < info < debug < trace", "[log]") {
  CHECK(static_cast<int>(LogLevel::error) < static_cast<int>(LogLevel::warn));
  CHECK(static_cast<int>(LogLevel::warn) < static_cast<int>(LogLevel::info));
  CHECK(static_cast<int>(LogLevel::info) < static_cast<int>(LogLevel::debug));
  CHECK(static_cast<int>(LogLevel::debug) < static_cast<int>(LogLevel::trace));
}
