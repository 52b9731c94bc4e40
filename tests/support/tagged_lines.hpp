// Reading the protocol's ids, resume and history lines (docs/protocol.md, "Ids, resume and
// history") in tests: tagged lines "@<id>/<ms> <line>", the HISTORY blocks, and a client that
// joined with ids. Shared by the in-process resume tests (tests/server/resume_test.cpp) and the
// process tests of persistence (tests/process/persistence_test.cpp).
//
// Every read waits at most the `timeout` the caller passes (each suite has its own patience).
// The helpers REQUIRE/CHECK with Catch2, so (Catch2 v2 not being thread safe) they may only be
// called on the test thread.
#pragma once

#include "tests/support/line_client.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace chat::test {

// A decimal number and nothing else; nullopt otherwise.
inline std::optional<std::uint64_t> to_u64(std::string_view s) {
  std::uint64_t v = 0;
  if (s.empty()) return std::nullopt;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// "@<id>/<ms> <line>"
struct Tagged {
  std::uint64_t id = 0;
  std::int64_t ms = 0;
  std::string body;  // the line without its tag
};

inline std::optional<Tagged> parse_tagged(std::string_view line) {
  if (line.empty() || line.front() != '@') return std::nullopt;
  const auto slash = line.find('/');
  const auto space = line.find(' ');
  if (slash == std::string_view::npos || space == std::string_view::npos || slash > space) return std::nullopt;
  const auto id = to_u64(line.substr(1, slash - 1));
  const auto ms = to_u64(line.substr(slash + 1, space - slash - 1));
  if (!id || !ms || *id == 0) return std::nullopt;
  return Tagged{*id, static_cast<std::int64_t>(*ms), std::string(line.substr(space + 1))};
}

// parse_tagged, failing the test when `line` is not tagged.
inline Tagged must_tag(const std::string& line) {
  const auto t = parse_tagged(line);
  INFO("not a tagged line: " << line);
  REQUIRE(t.has_value());
  return *t;
}

// A tagged line whose body starts with `prefix`.
inline std::function<bool(const std::string&)> tagged_starting(std::string prefix) {
  return [prefix = std::move(prefix)](const std::string& l) {
    const auto t = parse_tagged(l);
    return t && t->body.starts_with(prefix);
  };
}

// The next line within `timeout`; `log`, when given, gets it too.
inline std::string read_line_within(LineClient& c, std::chrono::milliseconds timeout,
                                    std::vector<std::string>* log = nullptr) {
  auto line = c.read_line(timeout);
  INFO("no line within " << timeout.count() << " ms"
                         << (c.closed() ? " (connection closed: " + c.read_error().message() + ")" : std::string()));
  REQUIRE(line.has_value());
  if (log) log->push_back(*line);
  return *line;
}

// Reads until a line satisfies `match` (returned), for at most `timeout` overall; every line read
// goes to `log` when given. `what` names the awaited line in the failure message.
inline std::string read_until_within(LineClient& c, std::chrono::milliseconds timeout,
                                     const std::function<bool(const std::string&)>& match,
                                     std::vector<std::string>* log = nullptr, std::string_view what = "") {
  std::string seen;
  auto line = c.expect_line(
      [&](const std::string& l) {
        if (log) log->push_back(l);
        return match(l);
      },
      timeout, &seen);
  INFO("waiting for " << what << "; saw:\n" << seen);
  REQUIRE(line.has_value());
  return *line;
}

// HISTORY <what> <n> [partial], n tagged lines, HISTORY END <what>.
struct HistoryBlock {
  std::size_t count = 0;
  bool partial = false;
  std::vector<std::string> lines;  // as received, tags included
};

// Reads one HISTORY <what> block, each line within `timeout`.
inline HistoryBlock read_block_within(LineClient& c, const std::string& what, std::chrono::milliseconds timeout) {
  HistoryBlock b;
  const auto header = read_line_within(c, timeout);
  INFO("block header: " << header);
  REQUIRE(header.starts_with("HISTORY " + what + " "));
  std::string rest = header.substr(("HISTORY " + what + " ").size());
  if (rest.ends_with(" partial")) {
    b.partial = true;
    rest.resize(rest.size() - std::string(" partial").size());
  }
  const auto n = to_u64(rest);
  REQUIRE(n.has_value());
  b.count = static_cast<std::size_t>(*n);
  for (std::size_t i = 0; i < b.count; ++i) {
    auto line = read_line_within(c, timeout);
    INFO("line " << i << " of the " << what << " block");
    must_tag(line);
    b.lines.push_back(std::move(line));
  }
  CHECK(read_line_within(c, timeout) == "HISTORY END " + what);
  return b;
}

// A client that joined with ids (HELLO <nick> ids), and what it was told on joining.
struct IdClient {
  std::unique_ptr<LineClient> c;
  std::string token;
  std::string window;
  std::string users;
  HistoryBlock recent;
  // The highest id this client has read (what it would RESUME from).
  std::uint64_t last_id = 0;
};

// PING, then every line up to its PONG (each wait within `timeout`): the highest tagged id among
// them raises `last_id`. Returns the lines read.
inline std::vector<std::string> drain_ids_within(IdClient& m, std::chrono::milliseconds timeout) {
  static int counter = 0;
  const std::string token = "sync-" + std::to_string(++counter);
  REQUIRE(m.c->send_line("PING " + token));
  std::vector<std::string> lines;
  read_until_within(*m.c, timeout, [&](const std::string& l) { return l == "PONG " + token; }, &lines,
                    "PONG " + token);
  for (const auto& l : lines) {
    if (const auto t = parse_tagged(l)) m.last_id = std::max(m.last_id, t->id);
  }
  return lines;
}

}  // namespace chat::test
