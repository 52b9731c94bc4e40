// LineBuffer: splits a byte stream into LF-terminated lines for the test helpers (Subprocess,
// LineClient), with a hard bound on what it holds.
//
// Not thread safe: owned and used by one test thread. Memory is bounded: the helpers only read
// more bytes when no line can be popped, and a line longer than `max_line` is handed out in
// `max_line`-byte pieces, so a misbehaving peer cannot make a test's memory grow.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace chat::test {

class LineBuffer {
 public:
  explicit LineBuffer(std::size_t max_line = std::size_t{1} << 20) : max_line_(max_line) {}

  void append(std::string_view bytes) { data_.append(bytes); }

  // The next complete line without its LF (and without a CR before it), or a `max_line`
  // piece of an over-long one. With `at_eof`, an unterminated last line is returned too.
  std::optional<std::string> pop(bool at_eof = false) {
    std::size_t lf = data_.find('\n');
    std::size_t take;  // bytes of the line itself
    std::size_t skip;  // bytes removed, including the LF
    if (lf != std::string::npos && lf <= max_line_) {
      take = lf;
      skip = lf + 1;
    } else if (data_.size() >= max_line_) {
      take = skip = max_line_;
    } else if (at_eof && !data_.empty()) {
      take = skip = data_.size();
    } else {
      return std::nullopt;
    }
    std::string line = data_.substr(0, take);
    data_.erase(0, skip);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
  }

  std::size_t buffered() const { return data_.size(); }

 private:
  std::size_t max_line_;
  std::string data_;
};

}  // namespace chat::test
