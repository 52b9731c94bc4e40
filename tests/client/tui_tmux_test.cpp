// End-to-end tests of interactive chatclient: the real binary (CHATCLIENT_PATH) in a tmux
// session against a real chatserver (tests/process/server_process.hpp) or a FakeServer, driven
// with send-keys and read with capture-pane (tests/client/tmux_session.hpp).
//
// Everything runs on 127.0.0.1 with kernel-chosen ports. No test sleeps to wait for a state: it
// polls the screen until what it expects is there, with a deadline of kWait (generous: CI has
// two busy cores). Colours are checked by category through capture-pane -e: green joins and
// leaves (SGR 32), red errors (31), orange private messages in (38;5;208), blue out (38;5;33);
// the client runs with TERM=screen-256color.
#include "tests/client/fake_server.hpp"
#include "tests/client/tmux_session.hpp"
#include "tests/process/server_process.hpp"
#include "tests/support/line_client.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/tls_servers.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <csignal>
#include <thread>
#include <fstream>
#include <sstream>

using namespace std::chrono_literals;
using chat::test::FakeServer;
using chat::test::LineClient;
using chat::test::row_with;
using chat::test::screen_rows;
using chat::test::ServerProcess;
using chat::test::sets_colour;
using chat::test::Stream;
using chat::test::Subprocess;
using chat::test::TmuxSession;

namespace {

constexpr auto kWait = 10000ms;

std::string client_command(std::uint16_t port, const std::string& extra) {
  return std::string("env LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=screen-256color ") + CHATCLIENT_PATH +
         " --host 127.0.0.1 --port " + std::to_string(port) + " " + extra;
}

// A LineClient joined in protocol mode as `nick`, its welcome read.
std::unique_ptr<LineClient> join(std::uint16_t port, const std::string& nick) {
  auto c = std::make_unique<LineClient>(port);
  REQUIRE(c->send_line("HELLO " + nick));
  REQUIRE(c->expect_line("USERS", kWait));
  return c;
}

// The status line: the second row from the bottom.
std::string status_row(const std::string& screen) {
  const auto rows = screen_rows(screen);
  return rows.size() >= 2 ? rows[rows.size() - 2] : std::string();
}

std::string input_row(const std::string& screen) {
  const auto rows = screen_rows(screen);
  return rows.empty() ? std::string() : rows.back();
}

// The user list pane: what follows the last '│' on each row.
std::vector<std::string> user_pane(const std::string& screen) {
  std::vector<std::string> out;
  const std::string bar = "\xE2\x94\x82";  // U+2502, ncurses' ACS_VLINE in UTF-8
  for (const auto& row : screen_rows(screen)) {
    const auto at = row.rfind(bar);
    if (at == std::string::npos) continue;
    std::string cell = row.substr(at + bar.size());
    while (!cell.empty() && cell.back() == ' ') cell.pop_back();
    while (!cell.empty() && cell.front() == ' ') cell.erase(0, 1);
    if (!cell.empty()) out.push_back(cell);
  }
  return out;
}

// How many times `text` appears on the screen.
std::size_t count(const std::string& screen, const std::string& text) {
  std::size_t n = 0;
  for (auto at = screen.find(text); at != std::string::npos; at = screen.find(text, at + text.size())) ++n;
  return n;
}

bool has_user(const std::string& screen, const std::string& nick) {
  for (const auto& u : user_pane(screen)) {
    if (u == nick) return true;
  }
  return false;
}

// The next line from chatclient that is not a PING (the full-screen client measures the round
// trip every few seconds; each PING is answered so that the client keeps the fake server).
std::optional<std::string> next_request(LineClient& conn, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto line = conn.read_line(left);
    if (!line) return std::nullopt;
    if (!line->starts_with("PING ")) return line;
    conn.send_line("PONG " + line->substr(5));
  }
}

}  // namespace

TEST_CASE("tui: user list, messages, colour categories and status line", "[tui]") {
  ServerProcess server;
  TmuxSession tui(client_command(server.port(), "--nick alice"));
  std::string screen;
  REQUIRE(tui.wait_for_text("welcome, alice", kWait, &screen));

  auto bob = join(server.port(), "bob");
  REQUIRE(tui.wait_for([](const std::string& s) { return has_user(s, "bob") && has_user(s, "alice"); }, kWait, false,
                       &screen));
  CHECK(row_with(screen, "online (2)") != "");

  REQUIRE(bob->send_line("SAY hello alice"));
  REQUIRE(bob->send_line("PRIV alice psst"));
  REQUIRE(tui.wait_for_text("[private] bob -> alice: psst", kWait, &screen));
  CHECK(row_with(screen, "<bob> hello alice") != "");

  REQUIRE(tui.type("@bob hi there"));
  REQUIRE(tui.keys({"Enter"}));
  REQUIRE(bob->expect_line("PRIV alice bob hi there", kWait));
  REQUIRE(tui.type("/msg nobody x"));
  REQUIRE(tui.keys({"Enter"}));
  REQUIRE(tui.wait_for_text("nobody called nobody is online", kWait, &screen));

  REQUIRE(bob->send_line("QUIT gone fishing"));
  REQUIRE(tui.wait_for_text("bob left (gone fishing)", kWait, &screen));
  CHECK_FALSE(has_user(screen, "bob"));

  // The status line: server, nick, connected, and a measured round trip.
  REQUIRE(tui.wait_for([](const std::string& s) { return status_row(s).find("rtt ?") == std::string::npos; }, kWait,
                       false, &screen));
  const std::string status = status_row(screen);
  CHECK(status.find("127.0.0.1:" + std::to_string(server.port()) + " | alice | connected | rtt ") != std::string::npos);
  CHECK(status.find(" ms") != std::string::npos);

  const std::string coloured = tui.capture(true);
  INFO("with escapes:\n" << coloured);
  CHECK(sets_colour(row_with(coloured, "bob joined"), "32"));
  CHECK(sets_colour(row_with(coloured, "bob left (gone fishing)"), "32"));
  CHECK(sets_colour(row_with(coloured, "nobody called nobody is online"), "31"));
  CHECK(sets_colour(row_with(coloured, "[private] bob -> alice: psst"), "38;5;208"));
  CHECK(sets_colour(row_with(coloured, "[private] alice -> bob: hi there"), "38;5;33"));
  const std::string plain = row_with(coloured, "<bob> hello alice");
  CHECK_FALSE(sets_colour(plain, "32"));
  CHECK_FALSE(sets_colour(plain, "31"));
}

TEST_CASE("tui: a half-typed line survives incoming messages", "[tui]") {
  ServerProcess server;
  TmuxSession tui(client_command(server.port(), "--nick alice"));
  std::string screen;
  REQUIRE(tui.wait_for_text("welcome, alice", kWait, &screen));
  auto bob = join(server.port(), "bob");

  REQUIRE(tui.type("half typed wor"));
  REQUIRE(tui.keys({"Left", "Left", "Left"}));  // the cursor inside the line
  REQUIRE(tui.wait_for([](const std::string& s) { return input_row(s) == "> half typed wor"; }, kWait, false, &screen));
  for (int i = 0; i < 60; ++i) REQUIRE(bob->send_line("SAY noise " + std::to_string(i)));
  REQUIRE(tui.wait_for_text("<bob> noise 59", kWait, &screen));
  CHECK(input_row(screen) == "> half typed wor");
  CHECK(tui.display("#{cursor_y}") == "39");
  CHECK(tui.display("#{cursor_x}") == std::to_string(2 + 11));

  REQUIRE(tui.type("d "));
  REQUIRE(tui.keys({"End"}));
  REQUIRE(tui.type("!"));
  REQUIRE(tui.keys({"Enter"}));
  CHECK(bob->expect_line("MSG alice half typed d wor!", kWait));
  REQUIRE(tui.wait_for([](const std::string& s) { return input_row(s) == ">"; }, kWait, false, &screen));

  // Up brings the line back; Page Up scrolls the message pane and says so.
  REQUIRE(tui.keys({"Up"}));
  REQUIRE(tui.wait_for([](const std::string& s) { return input_row(s) == "> half typed d wor!"; }, kWait, false, &screen));
  REQUIRE(tui.keys({"PageUp"}));
  REQUIRE(tui.wait_for_text("more below (Page Down)", kWait, &screen));
  CHECK(row_with(screen, "<bob> noise 59") == "");
  REQUIRE(tui.keys({"PageDown"}));
  REQUIRE(tui.wait_for_text("<bob> noise 59", kWait, &screen));
}

TEST_CASE("tui: a server restart on the same port is followed by an automatic rejoin", "[tui]") {
  auto server = std::make_unique<ServerProcess>();
  const std::uint16_t port = server->port();
  TmuxSession tui(client_command(port, "--nick alice"));
  std::string screen;
  REQUIRE(tui.wait_for_text("welcome, alice", kWait, &screen));

  REQUIRE(tui.type("draft"));
  REQUIRE(server->process().signal(SIGTERM));
  REQUIRE(server->process().wait_exit(kWait) == 0);
  server.reset();
  REQUIRE(tui.wait_for_text("disconnected: the server has stopped", kWait, &screen));
  // The first reconnect is attempt 1 (shown for about a second: a busy machine may show the
  // screen after it, at attempt 2; screen_model_test checks the numbers exactly); a failed one
  // adds one line, and the status counts.
  REQUIRE(tui.wait_for([](const std::string& s) { return status_row(s).find("(attempt ") != std::string::npos; },
                       kWait, false, &screen));
  CHECK((status_row(screen).find("(attempt 1)") != std::string::npos ||
         status_row(screen).find("(attempt 2)") != std::string::npos));
  REQUIRE(tui.wait_for_text("Connection refused; trying again in ", kWait, &screen));
  REQUIRE(tui.wait_for([](const std::string& s) { return status_row(s).find("(attempt 2)") != std::string::npos; },
                       kWait, false, &screen));
  INFO(screen);
  // The shutdown is told once, in words; the server's detail stays out of the pane.
  CHECK(count(screen, "disconnected: ") == 1);
  CHECK(count(screen, "server closed the connection") == 0);
  CHECK(count(screen, "shutting down") == 0);
  CHECK(count(screen, "connecting to") == 0);
  CHECK(status_row(screen).find("lost: the server has stopped") != std::string::npos);
  CHECK(sets_colour(row_with(tui.capture(true), "disconnected: the server has stopped"), "31"));

  Subprocess again({CHATSERVER_PATH, "--bind", "127.0.0.1", "--port", std::to_string(port), "--db", "none"});
  REQUIRE(again.wait_for_line(Stream::err, "chatserver listening on", kWait));
  // 1 s doubling: at most about 1 + 2 + 4 s after the loss.
  REQUIRE(tui.wait_for_text("rejoined as alice", kWait, &screen));
  REQUIRE(tui.wait_for([](const std::string& s) { return status_row(s).find("| alice | connected") != std::string::npos; },
                       kWait, false, &screen));
  CHECK(has_user(screen, "alice"));
  CHECK(input_row(screen) == "> draft");

  LineClient bob(port);
  REQUIRE(bob.send_line("HELLO bob"));
  REQUIRE(bob.expect_line("USERS alice bob", kWait));
  REQUIRE(tui.keys({"Enter"}));
  CHECK(bob.expect_line("MSG alice draft", kWait));
  again.signal(SIGTERM);
  again.wait_exit(kWait);
}

TEST_CASE("tui: a ghost holding the nickname gets a suffixed rejoin", "[tui]") {
  FakeServer fake;
  TmuxSession tui(client_command(fake.port(), "--nick alice"));
  std::string screen;
  auto first = fake.accept_and_join("alice", {}, kWait);
  REQUIRE(first);
  REQUIRE(tui.wait_for_text("welcome, alice", kWait, &screen));
  first->close();
  REQUIRE(tui.wait_for_text("disconnected: ", kWait, &screen));  // reset: our PING was unread

  auto second = fake.accept(kWait);
  REQUIRE(second);
  REQUIRE(second->send_line("# greeting"));
  REQUIRE(second->expect_line("HELLO alice", kWait));
  REQUIRE(second->send_line("ERROR nick-in-use alice"));
  REQUIRE(second->expect_line("HELLO alice_", kWait));
  REQUIRE(second->send_line("WELCOME alice_"));
  REQUIRE(second->send_line("USERS alice alice_"));
  REQUIRE(tui.wait_for_text("rejoined as alice_ (alice is still taken", kWait, &screen));
  REQUIRE(tui.wait_for([](const std::string& s) { return status_row(s).find("| alice_ | connected") != std::string::npos; },
                       kWait, false, &screen));
}

TEST_CASE("tui: escape sequences from a malicious server never reach the terminal", "[tui]") {
  FakeServer fake;
  TmuxSession tui(client_command(fake.port(), "--nick alice"));
  std::string screen;
  auto conn = fake.accept_and_join("alice", {"bob"}, kWait);
  REQUIRE(conn);
  REQUIRE(tui.wait_for_text("welcome, alice", kWait, &screen));
  REQUIRE(tui.type("still here"));

  // Clear screen + home, window title (OSC 0), red, alternate screen, 8-bit CSI, a carriage
  // return that would overwrite the line with a fake client notice, bidi override, bad UTF-8.
  REQUIRE(conn->send_raw("MSG bob A\x1b[2J\x1b[HB\x1b]0;pwned\x07" "C\x1b[31mD\x1b[?1049hE\xC2\x9B" "2JF\n"));
  REQUIRE(conn->send_raw("MSG bob hi\r*** connection to server lost (fake)\n"));
  REQUIRE(conn->send_raw("ME bob \xE2\x80\xAEgnp.exe\xFF\n"));
  REQUIRE(conn->send_raw("JOIN \x1b[32mmallory\x1b[0m\n"));
  REQUIRE(conn->send_raw("MSG bob end\n"));
  REQUIRE(tui.wait_for_text("<bob> end", kWait, &screen));

  const std::string r = "\xEF\xBF\xBD";
  CHECK(row_with(screen, "welcome, alice") != "");  // not cleared
  CHECK(row_with(screen, "<bob> A" + r + r + "B" + r + "C" + r + "D" + r + "E" + r + "F") != "");
  const std::string spoof = row_with(screen, "<bob> hi");
  CHECK(spoof.find("<bob> hi" + r + "*** connection to server lost (fake)") != std::string::npos);
  CHECK(row_with(screen, "* bob " + r + "gnp.exe" + r) != "");
  CHECK(row_with(screen, r + "mallory" + r + " joined") != "");
  CHECK(tui.display("#{pane_title}").find("pwned") == std::string::npos);
  CHECK(input_row(screen) == "> still here");

  const std::string coloured = tui.capture(true);
  INFO("with escapes:\n" << coloured);
  CHECK_FALSE(sets_colour(row_with(coloured, "<bob> A"), "31"));  // the server's red did nothing
}

TEST_CASE("tui: /save writes the transcript, /quit leaves and tells the room", "[tui]") {
  ServerProcess server;
  auto bob = join(server.port(), "bob");
  TmuxSession tui(client_command(server.port(), "--nick alice"));
  std::string screen;
  REQUIRE(tui.wait_for_text("online (2)", kWait, &screen));
  REQUIRE(bob->send_line("SAY for the record"));
  REQUIRE(tui.wait_for_text("<bob> for the record", kWait, &screen));

  char dir_template[] = "/tmp/chat-tui-save-XXXXXX";
  REQUIRE(::mkdtemp(dir_template) != nullptr);
  const std::string file = std::string(dir_template) + "/transcript.txt";
  REQUIRE(tui.type("/save " + file));
  REQUIRE(tui.keys({"Enter"}));
  REQUIRE(tui.wait_for_text("transcript saved to", kWait, &screen));
  std::ifstream in(file);
  std::stringstream saved;
  saved << in.rdbuf();
  CHECK(saved.str().find("] <bob> for the record\n") != std::string::npos);
  CHECK(saved.str().find("] *** welcome, alice") != std::string::npos);
  CHECK(saved.str().find("\x1b") == std::string::npos);
  ::unlink(file.c_str());
  ::rmdir(dir_template);

  REQUIRE(tui.type("/clear"));
  REQUIRE(tui.keys({"Enter"}));
  REQUIRE(tui.wait_for([](const std::string& s) { return s.find("for the record") == std::string::npos; }, kWait, false,
                       &screen));

  REQUIRE(tui.type("/quit see you"));
  REQUIRE(tui.keys({"Enter"}));
  CHECK(bob->expect_line("LEAVE alice quit see you", kWait));
  CHECK(tui.wait_gone(kWait));
}

TEST_CASE("tui: asks for a nickname when --nick is missing, and redraws on resize", "[tui]") {
  ServerProcess server;
  TmuxSession tui(client_command(server.port(), ""));
  std::string screen;
  REQUIRE(tui.wait_for_text("nickname (", kWait, &screen));
  REQUIRE(tui.type("bad nick"));
  REQUIRE(tui.keys({"Enter"}));
  REQUIRE(tui.wait_for_text("only A-Z", kWait, &screen));
  REQUIRE(tui.type("carol"));
  REQUIRE(tui.keys({"Enter"}));
  REQUIRE(tui.wait_for_text("welcome, carol", kWait, &screen));

  REQUIRE(tui.resize(70, 15));
  REQUIRE(tui.wait_for([](const std::string& s) {
    const auto rows = screen_rows(s);
    // The user list too: USERS arrives just after WELCOME, so it may still be on its way.
    return rows.size() == 15 && status_row(s).find("| carol | connected") != std::string::npos &&
           has_user(s, "carol");
  }, kWait, false, &screen));
  CHECK(row_with(screen, "welcome, carol") != "");
  // Ctrl-C leaves politely too.
  REQUIRE(tui.keys({"C-c"}));
  CHECK(tui.wait_gone(kWait));
}

TEST_CASE("tui: --no-reconnect stays on screen after the loss", "[tui]") {
  auto server = std::make_unique<ServerProcess>();
  TmuxSession tui(client_command(server->port(), "--nick alice --no-reconnect"));
  std::string screen;
  REQUIRE(tui.wait_for_text("welcome, alice", kWait, &screen));
  server->process().signal(SIGTERM);
  REQUIRE(server->process().wait_exit(kWait) == 0);
  REQUIRE(tui.wait_for_text("not reconnecting", kWait, &screen));
  CHECK(status_row(screen).find("| disconnected") != std::string::npos);
  CHECK(screen.find("reconnecting in") == std::string::npos);
  // SIGTERM to the server: its shutdown is told once.
  CHECK(count(screen, "the server has stopped") == 2);  // the pane's line and the status line
  CHECK(count(screen, "disconnected: the server has stopped") == 1);
  CHECK(count(screen, "shut") == 0);
  CHECK(tui.alive());
}

TEST_CASE("tui: history dimmed between separators, Page Up at the top pages back, a resume shows the marker",
          "[tui][history]") {
  using chat::test::tagged;
  using chat::test::test_token;
  // The history was said a minute ago: no date line comes between it and now (but at midnight).
  const std::int64_t then = std::chrono::duration_cast<std::chrono::milliseconds>(
                                (std::chrono::system_clock::now() - 1min).time_since_epoch())
                                .count();
  FakeServer fake;
  TmuxSession tui(client_command(fake.port(), "--nick alice"));
  std::string screen;
  auto conn = fake.accept_and_join_ids("alice", {"bob"}, test_token(1),
                                       {tagged(10, "MSG bob from before", then), tagged(11, "MSG bob also before", then)},
                                       kWait);
  REQUIRE(conn);
  REQUIRE(conn->send_line(tagged(12, "MSG bob live now")));
  REQUIRE(tui.wait_for_text("<bob> live now", kWait, &screen));
  INFO(screen);
  const auto rows = screen_rows(screen);
  const auto row_of = [&](const std::string& text) {
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (rows[i].find(text) != std::string::npos) return static_cast<int>(i);
    }
    return -1;
  };
  const int first = row_of("--- earlier messages (2) ---");
  REQUIRE(first >= 0);
  CHECK(row_of("<bob> from before") == first + 1);
  CHECK(row_of("<bob> also before") == first + 2);
  CHECK(row_of("--- now ---") == first + 3);
  CHECK(row_of("<bob> live now") == first + 4);
  // History is dimmed (SGR 2); what happens now is not.
  const std::string coloured = tui.capture(true);
  CHECK(sets_colour(row_with(coloured, "<bob> from before"), "2"));
  CHECK_FALSE(sets_colour(row_with(coloured, "<bob> live now"), "2"));

  // Page Up with the first line on screen asks for what came before the oldest id held.
  REQUIRE(tui.keys({"PageUp"}));
  CHECK(next_request(*conn, kWait) == "HISTORY BEFORE 10 50");
  REQUIRE(tui.wait_for([](const std::string& s) { return status_row(s).find("loading earlier messages") != std::string::npos; },
                       kWait, false, &screen));
  REQUIRE(conn->send_raw("HISTORY before 1\n" + tagged(4, "MSG bob ancient words", then) + "\nHISTORY END before\n"));
  REQUIRE(tui.wait_for_text("<bob> ancient words", kWait, &screen));
  CHECK(row_with(screen, "--- the start of what the server keeps ---") != "");
  // The start was reached: Page Up again asks nothing more.
  REQUIRE(tui.keys({"PageUp"}));
  CHECK_FALSE(next_request(*conn, 500ms));  // quiet period: a request would come within it

  // Back to the bottom, then a drop: the client resumes by itself and marks what was missed.
  REQUIRE(tui.keys({"PageDown", "PageDown", "PageDown"}));
  conn->close_with_reset();
  auto again = fake.accept(kWait);
  REQUIRE(again);
  CHECK(next_request(*again, kWait) == "RESUME " + test_token(1) + " 12");
  REQUIRE(again->send_raw("RESUMED alice 41000 1\nTOKEN " + test_token(2) + " 120\nUSERS alice bob\nHISTORY missed 1\n" +
                          tagged(13, "MSG bob you missed this", then) + "\nHISTORY END missed\n"));
  REQUIRE(tui.wait_for_text("--- away 41 s, 1 message you missed ---", kWait, &screen));
  REQUIRE(tui.wait_for_text("<bob> you missed this", kWait, &screen));
  CHECK(row_with(screen, "back in the room as alice") != "");
  CHECK(count(screen, "<bob> you missed this") == 1);
  REQUIRE(tui.wait_for([](const std::string& s) { return status_row(s).find("| alice | connected") != std::string::npos; },
                       kWait, false, &screen));
}

TEST_CASE("tui: a refused TLS certificate is said in red, not retried, and said again on the terminal after /quit",
          "[tui][tls]") {
  chat::test::TestCertificate cert("tui_tls");
  chat::test::OpensslServer server(cert);
  chat::test::TempDir home("tui_tls_home");
  // The shell stays after chatclient, so that what it left on the terminal can be read.
  TmuxSession tui(client_command(server.port(), "--nick alice --tls --known-servers " +
                                                    (home.path() / "known_servers").string()) +
                      "; echo chatclient exited $?; read x",
                  150, 30);
  std::string screen;
  REQUIRE(tui.wait_for_text("not reconnecting", kWait, &screen));
  INFO(screen);
  CHECK(row_with(screen, "The server's certificate is not signed by an authority this machine trusts.") != "");
  CHECK(status_row(screen).find(" | alice | disconnected") != std::string::npos);
  const std::string coloured = tui.capture(true);
  CHECK(sets_colour(row_with(coloured, "Its fingerprint is " + cert.fingerprint()), "31"));

  REQUIRE(tui.type("/quit"));
  REQUIRE(tui.keys({"Enter"}));
  REQUIRE(tui.wait_for_text("chatclient exited 1", kWait, &screen));
  // The full screen is gone; the warning stays, as ssh's does.
  CHECK(screen.find(" | alice | ") == std::string::npos);
  CHECK(row_with(screen, "Its fingerprint is " + cert.fingerprint()) != "");
  CHECK(row_with(screen, "The server's certificate is not signed by an authority this machine trusts.") != "");
}
