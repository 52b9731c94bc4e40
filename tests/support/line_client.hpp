// LineClient: a blocking line-based TCP peer for tests, on 127.0.0.1. It plays a chat client
// against the server under test, or (wrapping an accepted socket) a scripted server against
// chatclient.
//
// Threads: not thread safe. One test thread creates, uses and destroys a LineClient. It owns
// its io_context and socket; nothing runs in the background.
//
// Every read waits with poll(2) and a deadline. The receive buffer is bounded (LineBuffer: a
// line over 1 MiB arrives in 1 MiB pieces).
#pragma once

#include "tests/support/line_buffer.hpp"

#include <asio.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace chat::test {

class LineClient {
 public:
  using LinePredicate = std::function<bool(const std::string&)>;

  // Connects to 127.0.0.1:`port`. Throws std::system_error when it cannot.
  explicit LineClient(std::uint16_t port);
  // Takes over a socket that is already connected (e.g. one a test's fake server accepted);
  // `accepted` may belong to any io_context.
  explicit LineClient(asio::ip::tcp::socket&& accepted);

  LineClient(const LineClient&) = delete;
  LineClient& operator=(const LineClient&) = delete;

  // Sends `line` plus LF (blocking until the kernel took it all). False on a socket error.
  bool send_line(std::string_view line);
  // Sends `bytes` exactly as given.
  bool send_raw(std::string_view bytes);

  // The next line (without CR LF), waiting at most `timeout`. nullopt on timeout, or once the
  // peer closed or reset the connection and every line was read (see closed(), read_error()).
  std::optional<std::string> read_line(std::chrono::milliseconds timeout);

  // Reads lines until one satisfies `match` (or contains `substring`), skipping the others, for
  // at most `timeout` overall. Returns the matching line. `seen` gets every line read, each
  // followed by LF.
  std::optional<std::string> expect_line(const LinePredicate& match, std::chrono::milliseconds timeout,
                                         std::string* seen = nullptr);
  std::optional<std::string> expect_line(std::string_view substring, std::chrono::milliseconds timeout,
                                         std::string* seen = nullptr);

  // Reads and discards until the peer closes or resets the connection, for at most `timeout`.
  // True if it did.
  bool wait_closed(std::chrono::milliseconds timeout);

  // True once the peer closed or reset the connection; read_error() then says which
  // (asio::error::eof, connection_reset, ...).
  bool closed() const { return static_cast<bool>(read_error_); }
  std::error_code read_error() const { return read_error_; }

  // Closes with SO_LINGER {1, 0}: the kernel sends RST instead of FIN, so the peer's next read
  // fails with ECONNRESET.
  void close_with_reset();
  // An orderly close (FIN).
  void close();

  asio::ip::tcp::socket& socket() { return socket_; }

 private:
  void no_delay();

  asio::io_context io_;
  asio::ip::tcp::socket socket_;
  LineBuffer lines_;
  std::error_code read_error_;  // what ended the stream; empty while it is open
};

}  // namespace chat::test
