#include "tests/support/deadline.hpp"
#include "tests/support/line_client.hpp"

#include <poll.h>

#include <cerrno>

namespace chat::test {
namespace {

using Clock = std::chrono::steady_clock;


}  // namespace

LineClient::LineClient(std::uint16_t port) : socket_(io_) {
  socket_.connect({asio::ip::make_address_v4("127.0.0.1"), port});
  no_delay();
}

LineClient::LineClient(asio::ip::tcp::socket&& accepted) : socket_(io_) {
  // release() detaches the descriptor from the other io_context; assign() adopts it here.
  const auto protocol = accepted.local_endpoint().protocol();
  socket_.assign(protocol, accepted.release());
  no_delay();
}

// Tests send a line and wait for its effect: Nagle would hold a second small line back for a
// delayed ACK (40 ms) and make every exchange slow.
void LineClient::no_delay() {
  std::error_code ignored;
  socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
}

bool LineClient::send_line(std::string_view line) {
  std::string wire(line);
  wire.push_back('\n');
  return send_raw(wire);
}

bool LineClient::send_raw(std::string_view bytes) {
  std::error_code ec;
  asio::write(socket_, asio::buffer(bytes.data(), bytes.size()), ec);  // asio sends with MSG_NOSIGNAL
  return !ec;
}

std::optional<std::string> LineClient::read_line(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  char buf[65536];
  while (true) {
    if (auto line = lines_.pop(closed())) return line;
    if (closed() || !socket_.is_open()) return std::nullopt;
    pollfd p{socket_.native_handle(), POLLIN, 0};
    const int n = ::poll(&p, 1, millis_until(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::system_error(errno, std::generic_category(), "poll");
    if (n == 0) return std::nullopt;
    // poll said readable (data, FIN, RST or an error), so this read does not block.
    std::error_code ec;
    const std::size_t got = socket_.read_some(asio::buffer(buf), ec);
    if (ec) {
      read_error_ = ec;
    } else {
      lines_.append({buf, got});
    }
  }
}

std::optional<std::string> LineClient::expect_line(const LinePredicate& match, std::chrono::milliseconds timeout,
                                                   std::string* seen) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    auto line = read_line(std::chrono::milliseconds(millis_until(deadline)));
    if (!line) return std::nullopt;
    if (seen) seen->append(*line).push_back('\n');
    if (match(*line)) return line;
  }
}

std::optional<std::string> LineClient::expect_line(std::string_view substring, std::chrono::milliseconds timeout,
                                                   std::string* seen) {
  return expect_line(
      [substring](const std::string& line) { return line.find(substring) != std::string::npos; }, timeout, seen);
}

bool LineClient::wait_closed(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!closed()) {
    if (!read_line(std::chrono::milliseconds(millis_until(deadline))) && !closed()) return false;
  }
  return true;
}

void LineClient::close_with_reset() {
  std::error_code ec;
  socket_.set_option(asio::socket_base::linger(true, 0), ec);
  socket_.close(ec);
}

void LineClient::close() {
  std::error_code ec;
  socket_.close(ec);
}

}  // namespace chat::test
