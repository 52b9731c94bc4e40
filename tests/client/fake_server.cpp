#include "tests/client/fake_server.hpp"

#include <poll.h>

namespace chat::test {

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
  auto conn = accept(timeout);
  if (!conn) return nullptr;
  conn->send_line("# fake chat server; say HELLO <nick>");
  auto hello = conn->read_line(timeout);
  if (!hello || *hello != "HELLO " + nick) return nullptr;
  std::string users = "USERS " + nick;
  for (const auto& o : others) users += " " + o;
  conn->send_line("WELCOME " + nick);
  conn->send_line(users);
  return conn;
}

}  // namespace chat::test
