// In-process tests of ChatClient (chat_client_lib) without a terminal: input from a pipe,
// output into string streams, the FakeServer scripted on the test thread.
#include "client/chat_client.hpp"
#include "tests/client/fake_server.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <sstream>
#include <thread>

using namespace std::chrono_literals;
using chat::test::FakeServer;

namespace {

constexpr auto kWait = 5000ms;

// A pipe whose read end is the client's input. Closed by the destructor (test thread).
struct InputPipe {
  int fds[2] = {-1, -1};
  InputPipe() { REQUIRE(::pipe(fds) == 0); }
  ~InputPipe() {
    close_write();
    ::close(fds[0]);
  }
  void write(std::string_view s) { REQUIRE(::write(fds[1], s.data(), s.size()) == static_cast<ssize_t>(s.size())); }
  void close_write() {
    if (fds[1] >= 0) ::close(fds[1]);
    fds[1] = -1;
  }
};

}  // namespace

TEST_CASE("ChatClient runs a whole session from a pipe into streams", "[chat_client]") {
  FakeServer server;
  InputPipe input;
  std::ostringstream out, err;  // read only after the join below
  chat::ClientOptions options;
  options.port = server.port();
  options.nick = "alice";
  chat::ChatClient client(options, input.fds[0], out, err);

  int exit_code = -1;
  {
    // run() blocks like main() would; the test thread plays the server meanwhile.
    std::jthread runner([&] { exit_code = client.run(); });
    auto conn = server.accept_and_join("alice", {"bob"}, kWait);
    REQUIRE(conn);
    conn->send_line("MSG bob hey");
    input.write("hi bob\n");
    CHECK(conn->read_line(kWait) == "SAY hi bob");
    input.close_write();
    CHECK(conn->read_line(kWait) == "QUIT");
    conn->send_line("BYE quit");
    // ~jthread joins: run() returns once it has seen BYE.
  }
  CHECK(exit_code == 0);
  const std::string printed = out.str();
  CHECK(printed.find("] *** welcome, alice (type /help for commands)\n") != std::string::npos);
  CHECK(printed.find("] *** online (2): alice bob\n") != std::string::npos);
  CHECK(printed.find("] <bob> hey\n") != std::string::npos);
  // Our goodbye is said once, as ours.
  CHECK(printed.find("] *** you left\n") != std::string::npos);
  CHECK(printed.find("disconnected") == std::string::npos);
  CHECK(printed.find("server") == printed.rfind("server"));  // nothing said of the server closing
  CHECK(err.str().empty());
}

TEST_CASE("ChatClient::run returns 1 when nothing listens", "[chat_client]") {
  std::uint16_t port;
  {
    FakeServer gone;  // bound, read back, closed
    port = gone.port();
  }
  InputPipe input;
  std::ostringstream out, err;
  chat::ClientOptions options;
  options.port = port;
  options.nick = "alice";
  chat::ChatClient client(options, input.fds[0], out, err);
  CHECK(client.run() == 1);
  CHECK(err.str() == "chatclient: cannot connect to 127.0.0.1:" + std::to_string(port) + ": Connection refused\n");
  CHECK(out.str().empty());
}
