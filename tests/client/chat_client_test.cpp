// In-process tests of ChatClient (chat_client_lib) without a terminal: input from a pipe,
// output into string streams, the FakeServer scripted on the test thread.
#include "client/chat_client.hpp"
#include "common/render.hpp"
#include "tests/client/fake_server.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
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

// An output stream the test thread may watch while ChatClient::run() writes to it on another
// thread: every write appends under a mutex and wakes wait_for().
class WatchedOutput : public std::streambuf {
 public:
  std::string text() {
    std::lock_guard lock(mutex_);
    return text_;
  }
  // Waits (bounded) until the output holds `what`.
  bool wait_for(std::string_view what, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return text_.find(what) != std::string::npos; });
  }

 protected:
  int_type overflow(int_type c) override {
    if (c != traits_type::eof()) {
      const char ch = traits_type::to_char_type(c);
      xsputn(&ch, 1);
    }
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    {
      std::lock_guard lock(mutex_);
      text_.append(s, static_cast<std::size_t>(n));
    }
    changed_.notify_all();
    return n;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string text_;  // guarded by mutex_
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

TEST_CASE("ChatClient prints history apart, /history and /search as blocks, and the marker after a resume",
          "[chat_client][history]") {
  using chat::test::tagged;
  using chat::test::test_token;
  FakeServer server;
  InputPipe input;
  WatchedOutput watched;
  std::ostream out(&watched);
  std::ostringstream err;
  chat::ClientOptions options;
  options.port = server.port();
  options.nick = "alice";
  options.reconnect = true;
  options.ping_interval = chat::Millis::zero();
  chat::ChatClient client(options, input.fds[0], out, err);
  // The times the history lines were said, as the client prints them.
  const std::int64_t t1 = 1'700'000'000'000, t2 = 1'700'000'060'000, t3 = 1'699'990'000'000;
  const auto stamp = [](std::int64_t ms) {
    return "[" + chat::clock_stamp(std::chrono::system_clock::time_point(std::chrono::milliseconds(ms))) + "] ";
  };

  int exit_code = -1;
  {
    std::jthread runner([&] { exit_code = client.run(); });
    auto conn = server.accept_and_join_ids("alice", {"bob"}, test_token(1),
                                           {tagged(10, "MSG bob before you came", t1), tagged(11, "JOIN carol", t2)}, kWait);
    REQUIRE(conn);
    REQUIRE(conn->send_line(tagged(12, "MSG bob live")));
    REQUIRE(watched.wait_for("<bob> live", kWait));
    // The id of the oldest line printed (10): /history asks before it.
    input.write("/history 2\n");
    CHECK(conn->read_line(kWait) == "HISTORY BEFORE 10 2");
    REQUIRE(conn->send_raw("HISTORY before 1\n" + tagged(4, "MSG bob long ago", t3) + "\nHISTORY END before\n"));
    REQUIRE(watched.wait_for("<bob> long ago", kWait));
    input.write("/history\n");  // on from the oldest now printed
    CHECK(conn->read_line(kWait) == "HISTORY BEFORE 4 50");
    REQUIRE(conn->send_raw("HISTORY before 0\nHISTORY END before\n"));
    input.write("/search cats\n");
    CHECK(conn->read_line(kWait) == "SEARCH cats");
    REQUIRE(conn->send_raw("HISTORY search 1\n" + tagged(3, "ME carol likes cats", t3) + "\nHISTORY END search\n"));
    REQUIRE(watched.wait_for("--- end of search ---", kWait));
    input.write("/history 0\n");  // refused here, nothing sent
    input.write("sync\n");
    CHECK(conn->read_line(kWait) == "SAY sync");

    // A drop: the client resumes by itself and marks where the missed part starts.
    conn->close_with_reset();
    auto again = server.accept(10000ms);  // the first retry comes after about a second
    REQUIRE(again);
    CHECK(again->read_line(kWait) == "RESUME " + test_token(1) + " 12");
    REQUIRE(again->send_raw("RESUMED alice 41000 2\nTOKEN " + test_token(2) + " 120\nUSERS alice bob carol\n" +
                            "HISTORY missed 2\n" + tagged(13, "MSG bob are you there?", t2) + "\n" +
                            tagged(14, "ME carol shrugs", t2) + "\nHISTORY END missed\n" + tagged(15, "MSG bob welcome back") +
                            "\n"));
    input.write("thanks\n");
    CHECK(again->read_line(kWait) == "SAY thanks");
    input.close_write();
    CHECK(again->read_line(kWait) == "QUIT");
    again->send_line("BYE quit");
  }
  CHECK(exit_code == 0);
  const std::string printed = watched.text();
  INFO(printed);
  // Lines in the order printed, stamps cut off where they are "now".
  std::vector<std::string> lines;
  std::istringstream in(printed);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  const auto at = [&](const std::string& text) {
    const auto it = std::find(lines.begin(), lines.end(), text);
    return it == lines.end() ? -1 : static_cast<int>(it - lines.begin());
  };
  const int recent = at("--- earlier messages (2) ---");
  REQUIRE(recent >= 0);
  CHECK(lines[recent + 1] == stamp(t1) + "<bob> before you came");
  CHECK(lines[recent + 2] == stamp(t2) + "*** carol joined");  // no count: a past join
  CHECK(lines[recent + 3] == "--- now ---");
  CHECK(lines[recent + 4].ends_with("] <bob> live"));

  const int earlier = at("--- earlier messages (1) ---");
  REQUIRE(earlier > recent);
  CHECK(lines[earlier + 1] == stamp(t3) + "<bob> long ago");
  CHECK(lines[earlier + 2] == "--- end of earlier messages ---");
  CHECK(lines[earlier + 3] == "--- earlier messages (0) ---");
  CHECK(lines[earlier + 4] == "--- end of earlier messages ---");
  CHECK(lines[earlier + 5] == "--- found (1) ---");
  CHECK(lines[earlier + 6] == stamp(t3) + "* carol likes cats");
  CHECK(lines[earlier + 7] == "--- end of search ---");
  CHECK(lines[earlier + 8].ends_with("] *** usage: /history [n] (n: 1 to 500)"));

  const int marker = at("--- away 41 s, 2 messages you missed ---");
  REQUIRE(marker > earlier);
  CHECK(lines[marker - 2].ends_with("] *** reconnected to 127.0.0.1:" + std::to_string(server.port()) +
                                    ", back in the room as alice"));
  CHECK(lines[marker - 1].ends_with("] *** online (3): alice bob carol"));
  CHECK(lines[marker + 1] == stamp(t2) + "<bob> are you there?");
  CHECK(lines[marker + 2] == stamp(t2) + "* carol shrugs");
  CHECK(lines[marker + 3] == "--- now ---");
  CHECK(lines[marker + 4].ends_with("] <bob> welcome back"));
  CHECK(printed.find("not shown twice") == std::string::npos);
  CHECK(err.str().empty());
}
