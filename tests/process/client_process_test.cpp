// chatclient and chatserver, both real processes, driven through pipes; plus a text-mode
// peer (what nc would be) on the same server.
#include "tests/process/server_process.hpp"
#include "tests/support/chatclient_args.hpp"
#include "tests/support/line_client.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>

using namespace chat::test;

namespace {

std::unique_ptr<Subprocess> start_client(std::uint16_t port, const std::string& nick,
                                         std::vector<std::string> extra = {}) {
  auto p = std::make_unique<Subprocess>(chatclient_args(port, nick, std::move(extra)));
  std::string seen;
  const bool welcomed = p->wait_for_line(Stream::out, "*** welcome, " + nick, patience, &seen);
  INFO(seen);
  REQUIRE(welcomed);
  return p;
}

bool stamped(const std::string& line) { return std::regex_search(line, std::regex(R"(^\[\d\d:\d\d:\d\d\] )")); }

}  // namespace

TEST_CASE("two chatclients and a text-mode peer chat through a real chatserver", "[process][client]") {
  ServerProcess server;
  auto alice = start_client(server.port(), "alice");
  auto bob = start_client(server.port(), "bob");
  REQUIRE(alice->wait_for_line(Stream::out, "*** bob joined (2 online)", patience));

  LineClient carol(server.port());  // like `nc 127.0.0.1 PORT`
  REQUIRE(carol.send_line("carol"));
  REQUIRE(carol.expect_line("*** welcome, carol", patience));
  REQUIRE(bob->wait_for_line(Stream::out, "*** carol joined (3 online)", patience));

  REQUIRE(alice->write("hello everyone\n"));
  std::string seen;
  REQUIRE(bob->wait_for_line(Stream::out, "<alice> hello everyone", patience, &seen));
  auto at_carol = carol.expect_line("<alice> hello everyone", patience);
  REQUIRE(at_carol);
  CHECK(stamped(*at_carol));

  REQUIRE(bob->write("/me waves\n@alice psst\n"));
  REQUIRE(alice->wait_for_line(Stream::out, "* bob waves", patience));
  REQUIRE(alice->wait_for_line(Stream::out, "[private] bob -> alice: psst", patience));
  REQUIRE(carol.expect_line("* bob waves", patience));

  REQUIRE(carol.send_line("/nick caroline"));
  REQUIRE(alice->wait_for_line(Stream::out, "*** carol is now known as caroline", patience));
  REQUIRE(carol.send_line("hi from nc"));
  REQUIRE(bob->wait_for_line(Stream::out, "<caroline> hi from nc", patience));

  // stdin EOF: chatclient says QUIT and exits 0; the others see why it left.
  alice->close_stdin();
  CHECK(alice->wait_exit(patience) == 0);
  REQUIRE(bob->wait_for_line(Stream::out, "*** alice left (2 online)", patience));
  REQUIRE(carol.expect_line("*** alice left (", patience));

  REQUIRE(bob->write("/quit see you\n"));
  CHECK(bob->wait_exit(patience) == 0);
  REQUIRE(carol.expect_line("*** bob left (see you)", patience));
}

TEST_CASE("chatclient says the server is gone, and why, when it shuts down", "[process][client]") {
  ServerProcess server;
  auto alice = start_client(server.port(), "alice");
  REQUIRE(server.process().signal(SIGTERM));
  std::string seen;
  const bool lost = alice->wait_for_line(Stream::out, "*** disconnected: the server has stopped", patience, &seen);
  INFO(seen);
  CHECK(lost);
  CHECK(alice->wait_exit(patience) == 1);
  CHECK(server.process().wait_exit(patience) == 0);
}

TEST_CASE("chatclient cannot join with a nickname in use", "[process][client]") {
  ServerProcess server;
  LineClient alice(server.port());
  REQUIRE(alice.send_line("HELLO Alice"));
  REQUIRE(alice.expect_line("WELCOME Alice", patience));
  Subprocess p({CHATCLIENT_PATH, "--host", "127.0.0.1", "--port", std::to_string(server.port()), "--nick", "alice"});
  CHECK(p.wait_exit(patience) == 1);
}

TEST_CASE("chatclient --tls: refused unpinned, pinned on first use, then chatting over TLS with an nc user",
          "[process][client][tls]") {
  TempDir dir("chat_client_tls");
  const auto tls_dir = (dir.path() / "tls").string();
  const auto known = (dir.path() / "known_servers").string();
  ServerProcess server({"--self-signed", tls_dir});
  {
    // A self-signed certificate is not trusted by itself: refused, with its fingerprint.
    Subprocess refused(chatclient_args(server.port(), "alice", {"--tls", "--known-servers", known}));
    refused.close_stdin();
    std::string seen;
    while (auto line = refused.read_line(Stream::err, patience)) seen += *line + "\n";
    INFO(seen);
    CHECK(seen.find("Its fingerprint is SHA256:") != std::string::npos);
    CHECK(refused.wait_exit(patience) == 1);
    CHECK_FALSE(std::filesystem::exists(known));
  }
  auto alice = start_client(server.port(), "alice", {"--tls-pin", "--known-servers", known});
  std::ifstream pins(known);
  std::string pin;
  REQUIRE(std::getline(pins, pin));
  CHECK(pin.find(":" + std::to_string(server.port()) + " SHA256:") != std::string::npos);
  LineClient carol(server.port());  // nc, in clear text, on the same port
  REQUIRE(carol.send_line("carol"));
  REQUIRE(carol.expect_line("*** welcome, carol", patience));
  REQUIRE(alice->write("hello over TLS\n"));
  REQUIRE(carol.expect_line("<alice> hello over TLS", patience));
  REQUIRE(carol.send_line("hi from clear text"));
  REQUIRE(alice->wait_for_line(Stream::out, "<carol> hi from clear text", patience));
  // The server closes politely (BYE, close_notify, FIN): said as the server having stopped.
  REQUIRE(server.process().signal(SIGTERM));
  std::string seen;
  const bool lost = alice->wait_for_line(Stream::out, "*** disconnected: the server has stopped", patience, &seen);
  INFO(seen);
  CHECK(lost);
  CHECK(alice->wait_exit(patience) == 1);
}
