#include "tests/client/fake_server.hpp"

#include <poll.h>

namespace chat::test {

namespace {

// accept(), the greeting, then "HELLO <nick> ids" from the client; nullptr if any step did not
// happen within `timeout`.
std::unique_ptr<LineClient> accept_hello(FakeServer& server, const std::string& nick,
                                         std::chrono::milliseconds timeout) {
  auto conn = server.accept(timeout);
  if (!conn) return nullptr;
  conn->send_line("# fake chat server; say HELLO <nick>");
  auto hello = conn->read_line(timeout);
  if (!hello || *hello != "HELLO " + nick + " ids") return nullptr;
  return conn;
}

// "USERS <nick> <others...>"
std::string users_line(const std::string& nick, const std::vector<std::string>& others) {
  std::string users = "USERS " + nick;
  for (const auto& o : others) users += " " + o;
  return users;
}

}  // namespace

FakeServer::FakeServer() : acceptor_(io_, {asio::ip::make_address_v4("127.0.0.1"), 0}) {
  port_ = acceptor_.local_endpoint().port();
}

std::unique_ptr<LineClient> FakeServer::accept(std::chrono::milliseconds timeout) {
  pollfd p{acceptor_.native_handle(), POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return nullptr;
  return std::make_unique<LineClient>(acceptor_.accept());
}

std::unique_ptr<LineClient> FakeServer::accept_and_join(const std::string& nick,
                                                        const std::vector<std::string>& others,
                                                        std::chrono::milliseconds timeout) {
  auto conn = accept_hello(*this, nick, timeout);
  if (!conn) return nullptr;
  conn->send_line("WELCOME " + nick);
  conn->send_line(users_line(nick, others));
  return conn;
}

std::unique_ptr<LineClient> FakeServer::accept_and_join_ids(const std::string& nick,
                                                            const std::vector<std::string>& others,
                                                            const std::string& token,
                                                            const std::vector<std::string>& recent,
                                                            std::chrono::milliseconds timeout) {
  auto conn = accept_hello(*this, nick, timeout);
  if (!conn) return nullptr;
  std::string out = "WELCOME " + nick + "\n";
  if (!token.empty()) out += "TOKEN " + token + " 120\n";
  out += users_line(nick, others) + "\n";
  out += "HISTORY recent " + std::to_string(recent.size()) + "\n";
  for (const auto& line : recent) out += line + "\n";
  out += "HISTORY END recent\n";
  if (!conn->send_raw(out)) return nullptr;
  return conn;
}

std::string tagged(std::uint64_t id, const std::string& line, std::int64_t time_ms) {
  return "@" + std::to_string(id) + "/" + std::to_string(time_ms) + " " + line;
}

std::string test_token(int n) {
  static const char hex[] = "0123456789abcdef";
  std::string token(32, '0');
  for (std::size_t i = 0; i < token.size(); ++i) token[i] = hex[(static_cast<std::size_t>(n) * 7 + i * 3) % 16];
  return token;
}

}  // namespace chat::test
