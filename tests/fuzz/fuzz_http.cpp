// Fuzzes the HTTP side of the chat port (common/http.hpp):
//   - RequestReader: however a byte stream is cut into feeds, the outcome is the one of the
//     stream fed whole (state, status, detail, request, rest); the head never passes max_head
//     and rest() never holds more than max_head bytes; a complete request has a token for a
//     method, a target starting with '/' in visible ASCII, HTTP/1.0 or 1.1, token field names
//     and trimmed values without CR, LF or NUL, and its head ends with an empty line; a failure
//     is 400, 431 or 505 with a reason; an unfinished head is all of the stream;
//   - sniff: agrees with a model of its pattern on every prefix of the stream, and once it has
//     decided, longer prefixes do not change its mind;
//   - parse_response_head: whatever it accepts has a 3-digit status and token field names.
//
// Input: byte 0 picks max_head (0 to 127, or 8192 when bit 7 is set), byte 1 seeds how the
// stream is cut into feeds (empty feeds included), the rest is the stream.
#include "common/http.hpp"
#include "tests/fuzz/fuzz_support.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

using chat::fuzz::escaped;
using chat::http::RequestReader;
using chat::http::Sniff;
using State = RequestReader::State;

namespace {

struct Outcome {
  State state;
  int status;
  std::string detail;
  std::string method, target, version;
  chat::http::Fields headers;
  std::string rest;
  std::size_t head_size;
  bool operator==(const Outcome&) const = default;
};

std::string describe(const Outcome& o) {
  std::string out = "state " + std::to_string(static_cast<int>(o.state)) + ", status " + std::to_string(o.status) +
                    " (" + o.detail + "), '" + escaped(o.method) + "' '" + escaped(o.target) + "' '" +
                    escaped(o.version) + "', " + std::to_string(o.headers.size()) + " fields, head " +
                    std::to_string(o.head_size) + ", rest '" + escaped(o.rest) + "'";
  return out;
}

bool tchar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}
bool token(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), tchar); }

// sniff's pattern: [A-Z]{1,16} SP '/'.
Sniff model_sniff(std::string_view s) {
  const std::string_view pattern_end = " /";
  std::size_t letters = 0;
  while (letters < s.size() && s[letters] >= 'A' && s[letters] <= 'Z') ++letters;
  if (letters > 16) return Sniff::lines;
  if (letters == s.size()) return Sniff::undecided;
  if (letters == 0) return Sniff::lines;
  const std::string_view after = s.substr(letters);
  if (after.size() >= 2) return after.substr(0, 2) == pattern_end ? Sniff::http : Sniff::lines;
  return pattern_end.starts_with(after) ? Sniff::undecided : Sniff::lines;
}

// Small deterministic cut sizes, 0 (an empty feed) to 19 bytes.
class Cutter {
 public:
  explicit Cutter(std::uint8_t seed) : state_(seed * 2654435761u + 1) {}
  std::size_t next() {
    state_ = state_ * 1103515245u + 12345u;
    return (state_ >> 16) % 20;
  }

 private:
  std::uint32_t state_;
};

template <typename NextSize>
Outcome read_stream(std::size_t max_head, std::string_view stream, NextSize next_size) {
  RequestReader reader(max_head);
  FUZZ_CHECK(reader.max_head() == max_head, "max_head()");
  std::size_t pos = 0;
  State last = State::incomplete;
  do {
    const std::size_t n = std::min(next_size(), stream.size() - pos);
    const State state = reader.feed(stream.substr(pos, n));
    pos += n;
    FUZZ_CHECK(state == reader.state(), "feed() and state() disagree");
    FUZZ_CHECK(last == State::incomplete || state == last, "the state changed after the end");
    last = state;
    FUZZ_CHECK(reader.head_size() <= max_head && reader.rest().size() <= max_head,
               "head " + std::to_string(reader.head_size()) + ", rest " + std::to_string(reader.rest().size()));
  } while (pos < stream.size());
  const auto& r = reader.request();
  return {reader.state(),    reader.status(), reader.detail(), r.method,
          r.target,          r.version,       r.headers,       std::string(reader.rest()),
          reader.head_size()};
}

void check_outcome(std::size_t max_head, std::string_view stream, const Outcome& o) {
  const auto context = [&] { return describe(o) + "; stream '" + escaped(stream.substr(0, 300)) + "'"; };
  switch (o.state) {
    case State::incomplete:
      FUZZ_CHECK(o.head_size == stream.size() && o.rest.empty() && o.status == 0, context());
      break;
    case State::failed:
      FUZZ_CHECK(o.status == 400 || o.status == 431 || o.status == 505, context());
      FUZZ_CHECK(!o.detail.empty(), context());
      // 431 only for a head that went past max_head or had too many fields.
      if (o.status == 431 && o.head_size == max_head) {
        FUZZ_CHECK(stream.size() > max_head && o.rest == stream.substr(max_head, max_head), context());
      }
      break;
    case State::complete: {
      FUZZ_CHECK(o.status == 0 && o.detail.empty(), context());
      FUZZ_CHECK(token(o.method), context());
      FUZZ_CHECK(!o.target.empty() && o.target.front() == '/', context());
      for (const char c : o.target) FUZZ_CHECK(c > 0x20 && c < 0x7f, context());
      FUZZ_CHECK(o.version == "HTTP/1.1" || o.version == "HTTP/1.0", context());
      FUZZ_CHECK(o.headers.size() <= chat::http::max_fields, context());
      for (const auto& [name, value] : o.headers) {
        FUZZ_CHECK(token(name), context());
        FUZZ_CHECK(value.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos, context());
        if (!value.empty()) {
          FUZZ_CHECK(value.front() != ' ' && value.front() != '\t', context());
          FUZZ_CHECK(value.back() != ' ' && value.back() != '\t', context());
        }
      }
      // The head ends with an empty line and the rest is what follows it.
      const std::string_view head = stream.substr(0, o.head_size);
      FUZZ_CHECK(head.ends_with("\n\n") || head.ends_with("\n\r\n"), context());
      FUZZ_CHECK(o.rest == stream.substr(o.head_size, max_head), context());
      // A request whose method sniff's pattern allows was sniffed as HTTP.
      const bool upper = o.method.size() <= 16 &&
                         std::all_of(o.method.begin(), o.method.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
      if (upper) FUZZ_CHECK(chat::http::sniff(stream) == Sniff::http, context());
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t max_head = (data[0] & 0x80) ? 8192 : data[0];
  const std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);

  const Outcome whole = read_stream(max_head, stream, [&] { return stream.size(); });
  check_outcome(max_head, stream, whole);
  Cutter cutter(data[1]);
  const Outcome cut = read_stream(max_head, stream, [&] { return cutter.next(); });
  FUZZ_CHECK(cut == whole, "whole: " + describe(whole) + "\ncut: " + describe(cut));

  Sniff decided = Sniff::undecided;
  for (std::size_t n = 0; n <= std::min<std::size_t>(stream.size(), 24); ++n) {
    const Sniff s = chat::http::sniff(stream.substr(0, n));
    FUZZ_CHECK(s == model_sniff(stream.substr(0, n)), "sniff of '" + escaped(stream.substr(0, n)) + "'");
    FUZZ_CHECK(decided == Sniff::undecided || s == decided, "sniff changed its mind at " + std::to_string(n));
    decided = s;
  }

  if (const auto response = chat::http::parse_response_head(stream)) {
    FUZZ_CHECK(response->status >= 0 && response->status <= 999, "status " + std::to_string(response->status));
    for (const auto& [name, value] : response->headers) FUZZ_CHECK(token(name), "field '" + escaped(name) + "'");
  }
  return 0;
}
