// A catalogue of hostile input, each case with the answer it must get, against a real
// chat::Server on 127.0.0.1:0 in this process: NUL bytes, invalid UTF-8, a 10 MB line, binary
// noise before HELLO, HELLO twice, every command before HELLO, unknown commands, blank lines,
// CR/LF/CRLF mixed, awkward nicknames, PRIV to oneself, NICK to one's own nick in another
// case, flooding, 17 connections from one address, slow attackers, and lines made to look like
// the server's. The answers come from docs/protocol.md, common/protocol.cpp, common/text.cpp,
// common/line_framer.hpp, server/session.cpp and server/room.cpp.
//
// Not repeated here, because another file already covers it:
//   protocol_test.cpp: 0xFF, a truncated sequence at the end of a line, C0 AF, a high surrogate,
//     C0/ESC/DEL/C1 controls in SAY, ME and PRIV; FROB; SAY, ME and PRIV without arguments; HELLO
//     once joined (its code); 25-character and non-ASCII nicknames in HELLO and NICK (their code);
//     SAY, ME, PRIV, NICK, WHO, PING, PONG, HELP and QUIT after a failed HELLO; one byte over
//     max_line.
//   text_mode_test.cpp: CR LF and an empty first line; 0xFF and BEL in a message; /frob; an empty
//     line once joined; bad and taken nicknames; /who, /help and /quit before a nickname.
//   lifecycle_test.cpp: over-long lines in one piece, in pieces and of 200 kB; clients that stay
//     silent or stop halfway through HELLO without delaying a join (30 s timeout); the handshake
//     timeout of a silent client; --max-clients.
//
// Proving that something did not happen: a later marker goes through the room, and the client
// that must not have seen the event gets the marker as its very next line (protocol_test.cpp).
// For a line meant for the sender alone, a PING does the same: its PONG is the next line.
//
// Threads: slow attackers and the flooder run on std::jthreads that own their LineClient and
// record what they saw; every check is made on the test thread after the join.
#include "common/wording.hpp"
#include "tests/server/test_server.hpp"

#include "tests/support/deadline.hpp"

#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <latch>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

using namespace chat::test;
using namespace std::string_literals;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// What the server answers to refused input (common/protocol.cpp, common/text.cpp).
const std::string bad_utf8 = "ERROR bad-utf8 line is not valid UTF-8";
const std::string bad_char = "ERROR bad-char line contains a control character";
const std::string only_allowed = "only A-Z a-z 0-9 _ ! - are allowed";
const std::string too_long_nick = "longer than 24 characters";
// The hint a text-mode client gets after a refused nickname (server/session.cpp).
const std::string nick_hint = "# type a nickname to join (1-24 characters: A-Z a-z 0-9 _ ! -)";
const std::string already_joined_as = "ERROR bad-args already joined as ";

// An ERROR as a text-mode client sees it, without the stamp, in the words of
// common/wording.hpp: "*** that nickname is not allowed: b@d: ...".
std::string text_error(std::string_view code, std::string_view detail) {
  return "*** " + chat::wording::refusal(code, detail);
}
const std::string text_bad_utf8 = text_error("bad-utf8", "line is not valid UTF-8");
const std::string text_bad_char = text_error("bad-char", "line contains a control character");

// Protocol mode: nothing more is on its way to `c` for what it sent so far (the PONG comes
// after every reply made before it).
void expect_nothing_more(LineClient& c, const std::string& token) {
  REQUIRE(c.send_line("PING " + token));
  CHECK(next_line(c) == "PONG " + token);
}

// Sends all of `bytes` with ::send(2) in pieces of at most `chunk` bytes, blocking.
bool send_in_chunks(int fd, std::string_view bytes, std::size_t chunk) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), std::min(chunk, bytes.size()), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// A field of /proc/self/status in bytes ("VmRSS:   12345 kB"), or nullopt.
std::optional<std::int64_t> proc_status_bytes(std::string_view key) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ':') {
      return static_cast<std::int64_t>(std::stoll(line.substr(key.size() + 1))) * 1024;
    }
  }
  return std::nullopt;
}

// Sets this process's VmHWM (peak RSS) back to its current RSS (Linux 4.0+); false if /proc
// does not let us, and then only VmRSS is compared.
bool reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5" << std::flush;
  return static_cast<bool>(out);
}

// Random bytes from a fixed seed (mt19937's output is the same everywhere), without LF.
std::string noise(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto b = static_cast<char>(rng() & 0xFFu);
    out.push_back(b == '\n' ? 'x' : b);
  }
  return out;
}

// A slow attacker on its own thread: sends `steps` (bytes, then a pause during which it reads
// whatever arrives), then only reads, until the server closes the connection or `deadline`
// passes. No Catch2 in here: the test thread checks the record after join().
class SlowClient {
 public:
  struct Step {
    std::string bytes;
    milliseconds pause;
  };
  struct Record {
    std::vector<std::string> lines;         // every line received, in order
    std::vector<std::size_t> sent_before;   // bytes sent when each line was read
    std::vector<Clock::duration> received;  // when each line was read, since connecting
    std::size_t sent = 0;                   // bytes sent in all
    std::error_code end;                    // how the stream ended; empty: open at the deadline
    std::string problem;                    // what went wrong on the thread, if anything
  };

  SlowClient(std::uint16_t port, std::vector<Step> steps, Clock::time_point deadline, std::latch& started)
      : thread_([this, port, steps = std::move(steps), deadline, &started](std::stop_token stop) {
          run(stop, port, steps, deadline, started);
        }) {}
  SlowClient(const SlowClient&) = delete;
  SlowClient& operator=(const SlowClient&) = delete;

  // Joins the thread; the record is the test thread's from then on.
  const Record& finish() {
    if (thread_.joinable()) thread_.join();
    return record_;
  }

 private:
  void run(std::stop_token stop, std::uint16_t port, const std::vector<Step>& steps, Clock::time_point deadline,
           std::latch& started) {
    std::optional<LineClient> c;
    try {
      connected_at_ = Clock::now();  // before the server can have accepted it
      c.emplace(port);
    } catch (const std::exception& e) {
      record_.problem = std::string("connect: ") + e.what();
      started.count_down();
      return;
    }
    bool counted = false;
    auto read_until = [&](Clock::time_point until) {
      while (!c->closed()) {
        auto line = c->read_line(milliseconds(millis_until(std::min(until, deadline))));
        if (!line) break;
        record_.lines.push_back(*line);
        record_.sent_before.push_back(record_.sent);
        record_.received.push_back(Clock::now() - connected_at_);
      }
    };
    bool sending = true;
    for (const auto& step : steps) {
      if (stop.stop_requested() || c->closed() || Clock::now() >= deadline) break;
      if (sending) {
        if (c->send_raw(step.bytes)) {
          record_.sent += step.bytes.size();
        } else {
          sending = false;  // the server has gone; read what it said
        }
      }
      if (!counted) {
        started.count_down();  // the attack is under way
        counted = true;
      }
      read_until(Clock::now() + step.pause);
    }
    if (!counted) started.count_down();
    while (!stop.stop_requested() && !c->closed() && Clock::now() < deadline) read_until(deadline);
    record_.end = c->read_error();
  }

  Clock::time_point connected_at_{};  // thread_ only
  Record record_;       // written by thread_, read after finish()
  std::jthread thread_;  // last: starts after everything it uses
};

}  // namespace

// ---- NUL bytes and invalid UTF-8 ----------------------------------------------------------

TEST_CASE("hostile: NUL bytes are control characters: ERROR bad-char, in both modes, joined or not", "[hostile]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_text(server.port(), "bob");
  CHECK(next_line(*alice) == "JOIN bob");

  // Protocol mode, joined: wherever the NUL is, the line is refused as a whole.
  for (const auto& line : {"SAY a\0b"s, "\0"s, "SAY \0"s, "\0SAY hi"s, "SAY\0 hi"s, "PRIV bob \0"s,
                           "NICK al\0ce"s, "ME \0\0\0"s, "QUIT \0"s, "PING \0"s}) {
    INFO("alice sent: " << line.size() << " bytes");
    REQUIRE(alice->send_line(line));
    CHECK(next_line(*alice) == bad_char);
  }
  // A NUL and malformed UTF-8 in one line: bad-utf8 wins.
  REQUIRE(alice->send_line("SAY \0\xFF"s));
  CHECK(next_line(*alice) == bad_utf8);

  // Text mode, joined.
  for (const auto& line : {"hi\0there"s, "\0"s, "/me \0"s, "@alice \0"s, "/nick b\0b"s, "/quit \0"s}) {
    INFO("bob sent: " << line.size() << " bytes");
    REQUIRE(bob->send_line(line));
    CHECK(next_text(*bob) == text_bad_char);
  }

  // Before joining: protocol mode (HELLO chose it) and text mode (the first line was a NUL).
  auto carol = connect_client(server.port());
  REQUIRE(carol->send_line("HELLO ca\0rol"s));
  CHECK(next_line(*carol) == bad_char);
  auto dave = connect_client(server.port());
  REQUIRE(dave->send_line("\0"s));
  CHECK(next_text(*dave) == text_bad_char);
  CHECK(next_line(*dave) == nick_hint);
  REQUIRE(dave->send_line("dave\0"s));
  CHECK(next_text(*dave) == text_bad_char);
  CHECK(next_line(*dave) == nick_hint);

  // Nothing of that reached anyone, and everyone is still connected.
  REQUIRE(alice->send_line("SAY marker"));
  CHECK(next_line(*alice) == "MSG alice marker");
  CHECK(next_text(*bob) == "<alice> marker");
  REQUIRE(carol->send_line("HELLO carol"));
  CHECK(next_line(*carol) == "WELCOME carol");
  CHECK(next_line(*carol) == "USERS alice bob carol");
  REQUIRE(dave->send_line("dave"));
  CHECK(next_text(*dave) == "*** welcome, dave (type /help for commands)");
  CHECK(next_line(*alice) == "JOIN carol");
  CHECK(next_line(*alice) == "JOIN dave");
}

TEST_CASE("hostile: invalid UTF-8 of every kind is refused with ERROR bad-utf8, the boundaries pass", "[hostile]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_text(server.port(), "bob");
  CHECK(next_line(*alice) == "JOIN bob");

  struct Bad {
    const char* what;
    std::string bytes;
  };
  const Bad cases[] = {
      {"overlong 2-byte NUL (C0 80, 'modified UTF-8')", "\xC0\x80"},
      {"overlong 2-byte with C1 (C1 BF)", "\xC1\xBF"},
      {"overlong 3-byte '/' (E0 80 AF)", "\xE0\x80\xAF"},
      {"overlong 3-byte U+07FF (E0 9F BF)", "\xE0\x9F\xBF"},
      {"overlong 4-byte '/' (F0 80 80 AF)", "\xF0\x80\x80\xAF"},
      {"overlong 4-byte U+FFFF (F0 8F BF BF)", "\xF0\x8F\xBF\xBF"},
      {"low surrogate U+DFFF (ED BF BF)", "\xED\xBF\xBF"},
      {"a surrogate pair as two 3-byte forms (CESU-8)", "\xED\xA0\xBD\xED\xB8\x80"},
      {"above U+10FFFF (F4 90 80 80)", "\xF4\x90\x80\x80"},
      {"lead byte F5", "\xF5\x80\x80\x80"},
      {"old 5-byte form (F8 88 80 80 80)", "\xF8\x88\x80\x80\x80"},
      {"old 6-byte form (FC 84 80 80 80 80)", "\xFC\x84\x80\x80\x80\x80"},
      {"a lone continuation byte", "caf\x80"},
      {"a 2-byte sequence cut short by ASCII", "\xC3("},
      {"a 3-byte sequence cut short in mid-line", "\xE2\x82 euro"},
      {"a 4-byte sequence cut short at the end", "smile \xF0\x9F\x98"},
      {"0xFE", "\xFE"},
      {"a UTF-16 byte order mark (FF FE)", "\xFF\xFEh\0i\0"s},
      {"a Latin-1 e-acute (E9) between ASCII", "caf\xE9 au lait"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    REQUIRE(alice->send_line("SAY " + c.bytes));
    CHECK(next_line(*alice) == bad_utf8);
    REQUIRE(bob->send_line("text " + c.bytes));
    CHECK(next_text(*bob) == text_bad_utf8);
  }

  // In any verb and any field, also where the verb itself is not valid UTF-8: the text rules
  // come before the verb is looked at, and a refused QUIT or PING does nothing at all.
  for (const auto& line : {"NICK al\xFFice"s, "PRIV b\xC0\x80ob hi"s, "PRIV bob \xED\xA0\x80"s, "QUIT \xC3"s,
                           "PING \xF4\x90\x80\x80"s, "\xFF"s, "FR\xC3OB"s, "WHO \xE0\x80\x80"s}) {
    INFO("alice sent: " << line);
    REQUIRE(alice->send_line(line));
    CHECK(next_line(*alice) == bad_utf8);
  }
  expect_nothing_more(*alice, "after-bad-utf8");

  // Before joining: in a HELLO, and as a text-mode nickname.
  auto carol = connect_client(server.port());
  REQUIRE(carol->send_line("HELLO car\xC3"));
  CHECK(next_line(*carol) == bad_utf8);
  auto dave = connect_client(server.port());
  REQUIRE(dave->send_line("d\xC0\xA1ve"));
  CHECK(next_text(*dave) == text_bad_utf8);
  CHECK(next_line(*dave) == nick_hint);

  // The edges of what is valid pass unchanged: U+0080 is a C1 control (bad-char, in
  // protocol_test.cpp); these are not.
  const std::string valid[] = {
      "\xC2\xA0",          // U+00A0, the first after C1
      "\xE0\xA0\x80",      // U+0800, the first 3-byte form
      "\xED\x9F\xBF",      // U+D7FF, just below the surrogates
      "\xEE\x80\x80",      // U+E000, just above them
      "\xEF\xBB\xBF",      // U+FEFF, a byte order mark
      "\xEF\xBF\xBD",      // U+FFFD, the replacement character
      "\xF0\x90\x80\x80",  // U+10000, the first 4-byte form
      "\xF4\x8F\xBF\xBF",  // U+10FFFF, the last code point
  };
  for (const auto& v : valid) {
    INFO("valid: " << v);
    REQUIRE(alice->send_line("SAY [" + v + "]"));
    CHECK(next_line(*alice) == "MSG alice [" + v + "]");
    CHECK(next_text(*bob) == "<alice> [" + v + "]");
  }
  // bob saw none of the refused lines, and carol and dave can still join.
  REQUIRE(bob->send_line("marker"));
  CHECK(next_text(*bob) == "<bob> marker");
  CHECK(next_line(*alice) == "MSG bob marker");
  REQUIRE(carol->send_line("HELLO carol"));
  CHECK(next_line(*carol) == "WELCOME carol");
  REQUIRE(dave->send_line("dave"));
  CHECK(next_text(*dave) == "*** welcome, dave (type /help for commands)");
}

// ---- a 10 MB line ------------------------------------------------------------------------

TEST_CASE("hostile: a 10 MB line without a newline gets one ERROR too-long, costs the server no memory, "
          "and the client chats on", "[hostile]") {
  const auto config = TestServer::config();
  const std::size_t max_line = config.max_line;  // the default, 4096
  TestServer server(config);
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_and_join(server.port(), "bob");
  CHECK(next_line(*alice) == "JOIN bob");

  // Allocated and written before the first measurement, so it is in both.
  std::string payload = "SAY ";
  payload.append(10u << 20, 'x');

  const bool peak_known = reset_peak_rss();
  const auto before = proc_status_bytes("VmRSS");
  REQUIRE(before.has_value());

  REQUIRE(send_in_chunks(alice->socket().native_handle(), payload, 64 * 1024));
  // The line is still open (no LF yet), and the server has answered it already.
  CHECK(next_line(*alice) == "ERROR too-long lines are at most " + std::to_string(max_line) + " bytes");
  // End it, and make sure the server has read every byte of it: a PONG comes after them.
  REQUIRE(alice->send_raw("\nPING after-10MB\n"));
  CHECK(next_line(*alice) == "PONG after-10MB");  // one ERROR only: the next line is the PONG

  const auto after = proc_status_bytes("VmRSS");
  const auto peak = proc_status_bytes("VmHWM");
  REQUIRE(after.has_value());
  const std::int64_t growth = *after - *before;
  const std::int64_t peak_growth = peak_known && peak ? *peak - *before : growth;
  // A few lines' worth, plus room for what else this process did meanwhile (the server's
  // other threads, Catch2); a server that kept the line would have grown by 10 MB.
  const std::int64_t slack = sanitized ? (6 << 20) : (2 << 20);
  const std::int64_t bound = 4 * static_cast<std::int64_t>(max_line) + slack;
  WARN("10 MB line: RSS grew by " << growth / 1024 << " KiB, peak by " << peak_growth / 1024 << " KiB"
                                  << (peak_known ? "" : " (peak not resettable: RSS only)") << "; bound "
                                  << bound / 1024 << " KiB");
  CHECK(growth < bound);
  CHECK(peak_growth < bound);

  // The connection goes on as if nothing happened.
  REQUIRE(alice->send_line("SAY still here"));
  CHECK(next_line(*alice) == "MSG alice still here");
  CHECK(next_line(*bob) == "MSG alice still here");
}

// ---- before HELLO ------------------------------------------------------------------------

TEST_CASE("hostile: binary noise before HELLO: refused line by line, and the client may still join", "[hostile]") {
  TestServer server;
  auto watcher = connect_and_join(server.port(), "watcher");

  SECTION("noise with a newline chooses text mode; HELLO is then a nickname with a space") {
    // The start of a TLS ClientHello (someone pointed an HTTPS client at the port), then random
    // bytes: 0xA5 cannot start a UTF-8 sequence, so the line is bad-utf8, not bad-char.
    const std::string tls = "\x16\x03\x01\x00\xA5\x01\x00\x00\xA1\x03\x03"s + noise(300, 20260101);
    auto c = connect_client(server.port());
    REQUIRE(c->send_raw(tls + "\n"));
    CHECK(next_text(*c) == text_bad_utf8);
    CHECK(next_line(*c) == nick_hint);
    // The mode never changes: "HELLO alice" is a try at the nickname "HELLO alice".
    REQUIRE(c->send_line("HELLO alice"));
    CHECK(next_text(*c) == text_error("bad-nick", "HELLO alice: " + only_allowed));
    CHECK(next_line(*c) == nick_hint);
    REQUIRE(c->send_line("alice"));
    CHECK(next_text(*c) == "*** welcome, alice (type /help for commands)");
    CHECK(next_text(*c) == "*** online (2): alice watcher");
    CHECK(next_line(*watcher) == "JOIN alice");  // one JOIN, nothing for the refused lines
    REQUIRE(c->send_line("/quit"));
    CHECK(next_text(*c) == "*** you left; press Ctrl-C");
    CHECK(next_line(*watcher) == "LEAVE alice quit");
  }
  SECTION("over-long noise does not choose the mode: ERROR too-long in protocol form, then HELLO works") {
    auto c = connect_client(server.port());
    REQUIRE(c->send_raw(noise(3 * TestServer::config().max_line, 7)));
    CHECK(next_line(*c) == "ERROR too-long lines are at most " + std::to_string(TestServer::config().max_line) +
                               " bytes");
    REQUIRE(c->send_raw("\nHELLO alice\n"));
    CHECK(next_line(*c) == "WELCOME alice");
    CHECK(next_line(*c) == "USERS alice watcher");
    CHECK(next_line(*watcher) == "JOIN alice");
    REQUIRE(c->send_line("QUIT"));
    CHECK(next_line(*c) == "BYE quit");
    CHECK(next_line(*watcher) == "LEAVE alice quit");
  }
  SECTION("an HTTP request: each header line is a refused nickname, the blank line is ignored") {
    auto c = connect_client(server.port());
    REQUIRE(c->send_raw("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/7.88.1\r\n\r\n"));
    for (const char* header : {"GET / HTTP/1.1", "Host: 127.0.0.1", "User-Agent: curl/7.88.1"}) {
      INFO(header);
      CHECK(next_text(*c) == text_error("bad-nick", std::string(header) + ": " + only_allowed));
      CHECK(next_line(*c) == nick_hint);
    }
    REQUIRE(c->send_line("/quit"));
    CHECK(next_text(*c) == "*** you left; press Ctrl-C");
    require_closed(*c);
  }
  SECTION("many lines of noise: each gets one error and one hint, and none joins") {
    constexpr int lines = 20;
    std::string blob;
    for (int i = 0; i < lines; ++i) blob += "\xFF" + noise(50, static_cast<std::uint32_t>(i)) + "\n";
    auto c = connect_client(server.port());
    REQUIRE(c->send_raw(blob));
    for (int i = 0; i < lines; ++i) {
      INFO("noise line " << i);
      CHECK(next_text(*c) == text_bad_utf8);
      CHECK(next_line(*c) == nick_hint);
    }
    REQUIRE(c->send_line("/quit"));
    CHECK(next_text(*c) == "*** you left; press Ctrl-C");
    require_closed(*c);
  }
  // The watcher heard nothing else (no JOIN but the one checked, no LEAVE for a client that
  // never joined): its next line is its own marker.
  REQUIRE(watcher->send_line("SAY marker"));
  CHECK(next_line(*watcher) == "MSG watcher marker");
}

TEST_CASE("hostile: HELLO twice: ERROR bad-args already joined, name and room unchanged", "[hostile]") {
  TestServer server;
  auto watcher = connect_and_join(server.port(), "watcher");

  // Pipelined in one write, before the first WELCOME could have been read.
  auto c = connect_client(server.port());
  REQUIRE(c->send_raw("HELLO alice\nHELLO alice\nHELLO bob\nhello ALICE\n"));
  CHECK(next_line(*c) == "WELCOME alice");
  CHECK(next_line(*c) == "USERS alice watcher");
  for (int i = 0; i < 3; ++i) {
    CHECK(next_line(*c) == already_joined_as + "alice; use NICK to change nickname");
  }
  CHECK(next_line(*watcher) == "JOIN alice");
  REQUIRE(c->send_line("WHO"));
  CHECK(next_line(*c) == "USERS alice watcher");
  // A malformed second HELLO gets its own error first, as any malformed command does.
  REQUIRE(c->send_line("HELLO b@d"));
  CHECK(next_line(*c) == "ERROR bad-nick b@d: " + only_allowed);
  REQUIRE(c->send_line("SAY marker"));
  CHECK(next_line(*watcher) == "MSG alice marker");  // no JOIN, NICK or LEAVE came before it
  CHECK(next_line(*c) == "MSG alice marker");

  // Once joined in text mode, "HELLO ..." is just something to say.
  auto t = connect_text(server.port(), "tess");
  CHECK(next_line(*watcher) == "JOIN tess");
  CHECK(next_line(*c) == "JOIN tess");
  REQUIRE(t->send_line("HELLO tess"));
  CHECK(next_text(*t) == "<tess> HELLO tess");
  CHECK(next_line(*watcher) == "MSG tess HELLO tess");
  CHECK(next_line(*c) == "MSG tess HELLO tess");
}

TEST_CASE("hostile: every command as the first line: not HELLO, so text mode, and the line is a nickname",
          "[hostile]") {
  TestServer server;
  auto watcher = connect_and_join(server.port(), "watcher");

  SECTION("a command with an argument is a nickname with a space: bad-nick, then the hint") {
    struct Case {
      const char* first;  // the first line
      const char* nick;   // the nickname it tries: the line with spaces and tabs around it trimmed
    };
    const Case cases[] = {
        {"SAY hi", "SAY hi"},         {"ME waves", "ME waves"},       {"PRIV watcher psst", "PRIV watcher psst"},
        {"NICK bob", "NICK bob"},     {"PING 1", "PING 1"},           {"PONG p1", "PONG p1"},
        {"QUIT bye", "QUIT bye"},     {"HELP me", "HELP me"},         {"WHO is there", "WHO is there"},
        {"STATS please", "STATS please"}, {"@watcher psst", "@watcher psst"},
        {" HELLO bob", "HELLO bob"},  // a leading space: not HELLO (documented)
        {"HELLO\tbob", "HELLO\tbob"},  // only a space may follow HELLO
    };
    for (const auto& c : cases) {
      INFO("first line: " << c.first);
      auto client = connect_client(server.port());
      REQUIRE(client->send_line(c.first));
      CHECK(next_text(*client) == text_error("bad-nick", std::string(c.nick) + ": " + only_allowed));
      CHECK(next_line(*client) == nick_hint);
      REQUIRE(client->send_line("/quit"));
      CHECK(next_text(*client) == "*** you left; press Ctrl-C");
      require_closed(*client);
    }
  }
  SECTION("a bare verb is a valid nickname: the client joins under that name (documented)") {
    for (const char* verb : {"QUIT", "WHO", "STATS", "SAY"}) {
      INFO("first line: " << verb);
      auto c = connect_client(server.port());
      REQUIRE(c->send_line(verb));
      CHECK(next_text(*c) == "*** welcome, " + std::string(verb) + " (type /help for commands)");
      CHECK(next_text(*c).starts_with("*** online (2): "));
      CHECK(next_line(*watcher) == "JOIN " + std::string(verb));
      REQUIRE(c->send_line("/quit"));
      CHECK(next_text(*c) == "*** you left; press Ctrl-C");
      require_closed(*c);
      CHECK(next_line(*watcher) == "LEAVE " + std::string(verb) + " quit");
    }
  }
  SECTION("text mode before a nickname: / commands other than /help and /quit get not-joined") {
    auto c = connect_client(server.port());
    REQUIRE(c->send_line("b@d"));  // chooses text mode
    CHECK(next_text(*c) == text_error("bad-nick", "b@d: " + only_allowed));
    CHECK(next_line(*c) == nick_hint);
    for (const char* line : {"/me waves", "/msg watcher psst", "/nick bob", "/names", "//etc/passwd", "/frob",
                             "/stats", "/"}) {
      INFO(line);
      REQUIRE(c->send_line(line));
      CHECK(next_text(*c) == text_error("not-joined", "type a nickname first"));
    }
    REQUIRE(c->send_line("/quit"));
    CHECK(next_text(*c) == "*** you left; press Ctrl-C");
    require_closed(*c);
  }
  SECTION("protocol mode before joining: STATS works, a malformed command gets its own error first") {
    auto c = connect_client(server.port());
    REQUIRE(c->send_line("HELLO b@d"));  // chooses protocol mode, does not join
    CHECK(next_line(*c).starts_with("ERROR bad-nick b@d"));
    REQUIRE(c->send_line("STATS"));
    CHECK(next_line(*c).starts_with("STATS "));
    REQUIRE(c->send_line("FROB"));
    CHECK(next_line(*c) == "ERROR unknown-command FROB");
    REQUIRE(c->send_line("SAY"));
    CHECK(next_line(*c) == "ERROR bad-args usage: SAY <text>");
    REQUIRE(c->send_line("PRIV watcher"));
    CHECK(next_line(*c) == "ERROR bad-args usage: PRIV <nick> <text>");
    REQUIRE(c->send_line("NICK b@d"));
    CHECK(next_line(*c) == "ERROR bad-nick b@d: " + only_allowed);
    REQUIRE(c->send_line(""));  // the mode is chosen: an empty line is no longer ignored
    CHECK(next_line(*c) == "ERROR unknown-command (empty line)");
    REQUIRE(c->send_line("/quit"));  // not text mode: not a command
    CHECK(next_line(*c) == "ERROR unknown-command /quit");
    expect_nothing_more(*c, "pre-join");
  }
  // None of that reached the room.
  REQUIRE(watcher->send_line("SAY marker"));
  CHECK(next_line(*watcher) == "MSG watcher marker");
}

// ---- unknown commands, blank lines, line ends ---------------------------------------------

TEST_CASE("hostile: unknown commands, server verbs and near misses get ERROR unknown-command <verb>", "[hostile]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_text(server.port(), "bob");
  CHECK(next_line(*alice) == "JOIN bob");

  struct Case {
    std::string line;
    std::string answer;
  };
  const Case protocol_cases[] = {
      {"frob", "ERROR unknown-command frob"},  // the verb as sent
      {"SAYX hi", "ERROR unknown-command SAYX"},
      {"SAY\thi", "ERROR unknown-command SAY\thi"},  // only a space separates words
      {"S A Y hi", "ERROR unknown-command S"},
      // What the server sends is not what a client may send.
      {"MSG alice hi", "ERROR unknown-command MSG"},
      {"JOIN mallory", "ERROR unknown-command JOIN"},
      {"LEAVE bob quit", "ERROR unknown-command LEAVE"},
      {"BYE shutdown", "ERROR unknown-command BYE"},
      {"WELCOME mallory", "ERROR unknown-command WELCOME"},
      {"USERS mallory", "ERROR unknown-command USERS"},
      {"ERROR bad-args", "ERROR unknown-command ERROR"},
      {"# a remark", "ERROR unknown-command #"},
      // Text-mode commands are not protocol verbs.
      {"/who", "ERROR unknown-command /who"},
      {"@bob hi", "ERROR unknown-command @bob"},
      {std::string(1000, 'X'), "ERROR unknown-command " + std::string(1000, 'X')},
  };
  for (const auto& c : protocol_cases) {
    INFO("alice sent: " << c.line);
    REQUIRE(alice->send_line(c.line));
    CHECK(next_line(*alice) == c.answer);
  }
  // A leading space leaves the verb empty; the detail says so (it said "(empty line)" before).
  REQUIRE(alice->send_line(" SAY hi"));
  CHECK(next_line(*alice) == "ERROR unknown-command (line starts with a space)");

  const Case text_cases[] = {
      {"/FROB", "/FROB (type /help for the commands)"},
      {"/", "/ (type /help for the commands)"},
      {"/ me waves", "/ (type /help for the commands)"},
      {"/stats", "/stats (type /help for the commands)"},  // protocol mode only
      {"/HELLO bob", "/HELLO (type /help for the commands)"},
      {"/ping", "/ping (type /help for the commands)"},
  };
  for (const auto& c : text_cases) {
    INFO("bob typed: " << c.line);
    REQUIRE(bob->send_line(c.line));
    CHECK(next_text(*bob) == text_error("unknown-command", c.answer));
  }
  // Nobody heard any of it.
  REQUIRE(alice->send_line("SAY marker"));
  CHECK(next_line(*alice) == "MSG alice marker");
  CHECK(next_text(*bob) == "<alice> marker");
}

TEST_CASE("hostile: empty and whitespace-only lines: ignored before the mode and in text mode, "
          "refused in protocol mode", "[hostile]") {
  TestServer server;
  auto watcher = connect_and_join(server.port(), "watcher");

  // Before the mode is chosen, blank lines of every kind are skipped.
  auto alice = connect_client(server.port());
  REQUIRE(alice->send_raw("\n \n\t\n \t \t\n\r\n   \r\nHELLO alice\n"));
  CHECK(next_line(*alice) == "WELCOME alice");  // the very next line: no errors before it
  CHECK(next_line(*alice) == "USERS alice watcher");
  CHECK(next_line(*watcher) == "JOIN alice");

  // Protocol mode, joined.
  REQUIRE(alice->send_line(""));
  CHECK(next_line(*alice) == "ERROR unknown-command (empty line)");
  REQUIRE(alice->send_line("    "));
  CHECK(next_line(*alice) == "ERROR unknown-command (empty line)");
  REQUIRE(alice->send_line("\t"));
  CHECK(next_line(*alice).starts_with("ERROR unknown-command"));  // the detail is the TAB itself: see the report
  REQUIRE(alice->send_line("SAY"));
  CHECK(next_line(*alice) == "ERROR bad-args usage: SAY <text>");
  REQUIRE(alice->send_line("SAY "));
  CHECK(next_line(*alice) == "ERROR bad-args usage: SAY <text>");
  REQUIRE(alice->send_line("ME "));
  CHECK(next_line(*alice) == "ERROR bad-args usage: ME <text>");
  REQUIRE(alice->send_line("PRIV watcher "));
  CHECK(next_line(*alice) == "ERROR bad-args usage: PRIV <nick> <text>");
  REQUIRE(alice->send_line("PRIV  hi"));
  CHECK(next_line(*alice) == "ERROR bad-args usage: PRIV <nick> <text>");
  // The rest of a SAY keeps its spacing, so two spaces say one space (documented).
  REQUIRE(alice->send_line("SAY  "));
  CHECK(next_line(*alice) == "MSG alice  ");
  CHECK(next_line(*watcher) == "MSG alice  ");

  // Text mode: blank lines before and after the nickname are ignored.
  auto bob = connect_client(server.port());
  REQUIRE(bob->send_raw("\n\t\nb@d\n  \n\t \n"));
  CHECK(next_text(*bob) == text_error("bad-nick", "b@d: " + only_allowed));
  CHECK(next_line(*bob) == nick_hint);
  REQUIRE(bob->send_line("  bob\t"));  // trimmed
  CHECK(next_text(*bob) == "*** welcome, bob (type /help for commands)");
  CHECK(next_text(*bob) == "*** online (3): alice bob watcher");
  CHECK(next_line(*watcher) == "JOIN bob");
  CHECK(next_line(*alice) == "JOIN bob");
  REQUIRE(bob->send_raw("   \n\t\t\n \t \n\r\n"));
  REQUIRE(bob->send_line("@watcher "));
  CHECK(next_text(*bob) == text_error("bad-args", "usage: @<nick> <text>"));
  REQUIRE(bob->send_line("@ hi"));
  CHECK(next_text(*bob) == text_error("bad-args", "usage: @<nick> <text>"));
  REQUIRE(bob->send_line("marker"));
  CHECK(next_text(*bob) == "<bob> marker");  // nothing for the blank lines
  CHECK(next_line(*watcher) == "MSG bob marker");
  CHECK(next_line(*alice) == "MSG bob marker");
}

TEST_CASE("hostile: CR, LF and CRLF mixed: LF ends a line, one CR before it is dropped, any other CR is bad-char",
          "[hostile]") {
  auto config = TestServer::config();
  config.max_line = 64;
  TestServer server(config);
  auto watcher = connect_and_join(server.port(), "watcher");

  // The handshake in CR LF, after blank CR LF lines.
  auto alice = connect_client(server.port());
  REQUIRE(alice->send_raw("\r\n\r\nHELLO alice\r\n"));
  CHECK(next_line(*alice) == "WELCOME alice");
  CHECK(next_line(*alice) == "USERS alice watcher");
  CHECK(next_line(*watcher) == "JOIN alice");
  auto bob = connect_text(server.port(), "bob");
  CHECK(next_line(*watcher) == "JOIN bob");
  CHECK(next_line(*alice) == "JOIN bob");

  // Protocol mode.
  REQUIRE(alice->send_raw("SAY one\r\nSAY two\nSAY three\r\n"));
  for (const char* word : {"one", "two", "three"}) {
    CHECK(next_line(*alice) == "MSG alice " + std::string(word));
    CHECK(next_line(*watcher) == "MSG alice " + std::string(word));
    CHECK(next_text(*bob) == "<alice> " + std::string(word));
  }
  REQUIRE(alice->send_raw("SAY a\rb\n"));  // a CR inside
  CHECK(next_line(*alice) == bad_char);
  REQUIRE(alice->send_raw("SAY c\r\r\n"));  // only the last CR is part of the line end
  CHECK(next_line(*alice) == bad_char);
  REQUIRE(alice->send_raw("SAY g\rSAY h\r"));  // CR alone ends nothing ...
  REQUIRE(alice->send_raw("\n"));              // ... so this is one line with a CR inside
  CHECK(next_line(*alice) == bad_char);
  REQUIRE(alice->send_raw("SAY split\r"));  // CR and LF in separate writes
  REQUIRE(alice->send_raw("\n"));
  CHECK(next_line(*alice) == "MSG alice split");
  REQUIRE(alice->send_raw("SAY d\n\rSAY e\n"));  // LF CR: the CR starts the next line
  CHECK(next_line(*alice) == "MSG alice d");
  CHECK(next_line(*alice) == bad_char);
  REQUIRE(alice->send_raw("\r\n"));
  CHECK(next_line(*alice) == "ERROR unknown-command (empty line)");
  // The CR of a CR LF does not count toward max_line (64): 64 bytes + CR LF pass, 65 do not.
  REQUIRE(alice->send_raw("SAY " + std::string(60, 'L') + "\r\n"));
  CHECK(next_line(*alice) == "MSG alice " + std::string(60, 'L'));
  REQUIRE(alice->send_raw("SAY " + std::string(61, 'M') + "\r\n"));
  CHECK(next_line(*alice) == "ERROR too-long lines are at most 64 bytes");
  expect_nothing_more(*alice, "crlf");
  CHECK(next_line(*watcher) == "MSG alice split");
  CHECK(next_line(*watcher) == "MSG alice d");
  CHECK(next_line(*watcher) == "MSG alice " + std::string(60, 'L'));
  CHECK(next_text(*bob) == "<alice> split");
  CHECK(next_text(*bob) == "<alice> d");
  CHECK(next_text(*bob) == "<alice> " + std::string(60, 'L'));

  // Text mode.
  REQUIRE(bob->send_raw("x1\r\nx2\nx3\r\n\r\n\r\n"));  // the blank CR LF lines are ignored
  for (const char* word : {"x1", "x2", "x3"}) {
    CHECK(next_text(*bob) == "<bob> " + std::string(word));
    CHECK(next_line(*watcher) == "MSG bob " + std::string(word));
  }
  REQUIRE(bob->send_raw("y\rz\n"));
  CHECK(next_text(*bob) == text_bad_char);
  REQUIRE(bob->send_raw("\r\r\n"));  // a lone CR is not blank: it is a control character
  CHECK(next_text(*bob) == text_bad_char);
  REQUIRE(bob->send_raw("marker\r\n"));
  CHECK(next_text(*bob) == "<bob> marker");
  CHECK(next_line(*watcher) == "MSG bob marker");  // nothing refused reached the room
}

// ---- nicknames -------------------------------------------------------------------------------

TEST_CASE("hostile: a 25-character nickname and nicknames with non-ASCII letters are refused", "[hostile]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  const std::string n25(25, 'n');
  const std::string n24(24, 'n');

  // Text mode: refused with the reason and the hint; the same connection may retry.
  auto c = connect_client(server.port());
  REQUIRE(c->send_line(n25));
  CHECK(next_text(*c) == text_error("bad-nick", n25 + ": " + too_long_nick));
  CHECK(next_line(*c) == nick_hint);
  for (const std::string& nick : {
           "Zo\xC3\xAB"s,                                     // Zoë
           "\xD0\xB0lice"s,                                   // Cyrillic a + "lice": looks like alice
           "\xEF\xBD\x81\xEF\xBD\x8C\xEF\xBD\x89"s,           // fullwidth "ali"
           "\xE5\x90\x8D\xE5\x89\x8D"s,                       // two CJK characters
           "al\xC2\xADice"s,                                  // a soft hyphen inside, invisible
           "alice\xE2\x80\x8B"s,                              // a zero-width space after
       }) {
    INFO("nickname: " << nick);
    REQUIRE(c->send_line(nick));
    CHECK(next_text(*c) == text_error("bad-nick", nick + ": " + only_allowed));
    CHECK(next_line(*c) == nick_hint);
  }
  REQUIRE(c->send_line(n24));
  CHECK(next_text(*c) == "*** welcome, " + n24 + " (type /help for commands)");
  CHECK(next_text(*c) == "*** online (2): alice " + n24);
  CHECK(next_line(*alice) == "JOIN " + n24);

  // Renaming to them, in both modes; and a private message to one is to nobody.
  REQUIRE(alice->send_line("NICK " + n25));
  CHECK(next_line(*alice) == "ERROR bad-nick " + n25 + ": " + too_long_nick);
  REQUIRE(alice->send_line("NICK Zo\xC3\xAB"));
  CHECK(next_line(*alice) == "ERROR bad-nick Zo\xC3\xAB: " + only_allowed);
  REQUIRE(alice->send_line("NICK \xD0\xB0lice"));
  CHECK(next_line(*alice) == "ERROR bad-nick \xD0\xB0lice: " + only_allowed);
  REQUIRE(alice->send_line("PRIV Zo\xC3\xAB hi"));
  CHECK(next_line(*alice) == "ERROR no-such-nick Zo\xC3\xAB");
  REQUIRE(c->send_line("/nick " + n25));
  CHECK(next_text(*c) == text_error("bad-nick", n25 + ": " + too_long_nick));
  REQUIRE(c->send_line("/nick Zo\xC3\xAB"));
  CHECK(next_text(*c) == text_error("bad-nick", "Zo\xC3\xAB: " + only_allowed));

  // Nobody was renamed.
  REQUIRE(alice->send_line("WHO"));
  CHECK(next_line(*alice) == "USERS alice " + n24);
  REQUIRE(c->send_line("marker"));
  CHECK(next_line(*alice) == "MSG " + n24 + " marker");
}

TEST_CASE("hostile: PRIV to oneself arrives once, to nobody else", "[hostile]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_text(server.port(), "bob");
  auto carol = connect_and_join(server.port(), "carol");
  CHECK(next_line(*alice) == "JOIN bob");
  CHECK(next_line(*alice) == "JOIN carol");
  CHECK(next_text(*bob) == "*** carol joined (3 online)");

  REQUIRE(alice->send_line("PRIV alice note to self"));
  CHECK(next_line(*alice) == "PRIV alice alice note to self");
  expect_nothing_more(*alice, "self-1");  // once: the PONG is next
  REQUIRE(alice->send_line("PRIV ALICE shouting at myself"));  // found ignoring case, real spelling shown
  CHECK(next_line(*alice) == "PRIV alice alice shouting at myself");
  expect_nothing_more(*alice, "self-2");

  REQUIRE(bob->send_line("/msg bob memo"));
  CHECK(next_text(*bob) == "[private] bob -> bob: memo");
  REQUIRE(bob->send_line("@BOB memo two"));
  CHECK(next_text(*bob) == "[private] bob -> bob: memo two");
  REQUIRE(bob->send_line("marker"));
  CHECK(next_text(*bob) == "<bob> marker");  // each once

  // carol and alice saw none of bob's, carol none of alice's.
  CHECK(next_line(*carol) == "MSG bob marker");
  CHECK(next_line(*alice) == "MSG bob marker");
}

TEST_CASE("hostile: NICK to one's own nickname: the same does nothing, another case renames", "[hostile]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_text(server.port(), "bob");
  CHECK(next_line(*alice) == "JOIN bob");

  REQUIRE(alice->send_line("NICK alice"));  // exactly the same: no reply, nothing to the room
  expect_nothing_more(*alice, "same");
  REQUIRE(alice->send_line("NICK ALICE"));
  CHECK(next_line(*alice) == "NICK alice ALICE");
  CHECK(next_text(*bob) == "*** alice is now known as ALICE");
  REQUIRE(alice->send_line("NICK ALICE"));  // the same again
  expect_nothing_more(*alice, "same-again");
  REQUIRE(alice->send_line("WHO"));
  CHECK(next_line(*alice) == "USERS ALICE bob");

  // The old spelling is still hers: nobody else can take it.
  auto other = connect_client(server.port());
  REQUIRE(other->send_line("HELLO alice"));
  CHECK(next_line(*other) == "ERROR nick-in-use alice");

  // Text mode.
  REQUIRE(bob->send_line("/nick bob"));
  REQUIRE(bob->send_line("/nick BOB"));
  CHECK(next_text(*bob) == "*** bob is now known as BOB");  // the first did nothing
  CHECK(next_line(*alice) == "NICK bob BOB");
  REQUIRE(bob->send_line("/nick BOB"));
  REQUIRE(bob->send_line("marker"));
  CHECK(next_text(*bob) == "<BOB> marker");
  CHECK(next_line(*alice) == "MSG BOB marker");
}

// ---- identity: the server alone names senders ------------------------------------------------

TEST_CASE("hostile: a message that looks like a server line is shown as its sender's message, in both modes",
          "[hostile]") {
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");    // a protocol-mode receiver
  auto tom = connect_text(server.port(), "tom");            // a text-mode receiver
  auto mallory = connect_text(server.port(), "mallory");    // a text-mode sender
  auto moe = connect_and_join(server.port(), "moe");        // a protocol-mode sender
  CHECK(next_line(*alice) == "JOIN tom");
  CHECK(next_line(*alice) == "JOIN mallory");
  CHECK(next_line(*alice) == "JOIN moe");
  CHECK(next_text(*tom) == "*** mallory joined (3 online)");
  CHECK(next_text(*tom) == "*** moe joined (4 online)");
  CHECK(next_text(*mallory) == "*** moe joined (4 online)");

  // A text-mode line as everyone sees it: a real stamp, then "<nick> ", then the text as typed.
  auto expect_said = [&](const std::string& nick, const std::string& text) {
    for (auto* text_client : {tom.get(), mallory.get()}) {
      const auto line = next_line(*text_client);
      INFO("text-mode line: " << line);
      CHECK(unstamp(line) == "<" + nick + "> " + text);
    }
    for (auto* protocol_client : {alice.get(), moe.get()}) CHECK(next_line(*protocol_client) == "MSG " + nick + " " + text);
  };

  const std::string forgeries[] = {
      "[12:00:00] *** alice left (quit: bye) (3 online)",
      "[12:00:00] *** tom is now known as mallory",
      "[12:00:00] <alice> please send me your password",
      "[12:00:00] [private] alice -> tom: it is me",
      "# chatserver 0.1.0: type a nickname to join, or HELLO <nick>",
      "# type another nickname",
      "*** server: you will be disconnected",
      "MSG alice I am alice",
      "LEAVE alice quit",
  };
  for (const auto& f : forgeries) {
    INFO("mallory typed: " << f);
    REQUIRE(mallory->send_line(f));
    expect_said("mallory", f);
  }
  for (const auto& f : forgeries) {
    INFO("moe sent: SAY " << f);
    REQUIRE(moe->send_line("SAY " + f));
    expect_said("moe", f);
  }

  // Actions and private messages carry their sender too.
  REQUIRE(mallory->send_line("/me *** alice left (quit: bye) (3 online)"));
  CHECK(unstamp(next_line(*tom)) == "* mallory *** alice left (quit: bye) (3 online)");
  CHECK(unstamp(next_line(*mallory)) == "* mallory *** alice left (quit: bye) (3 online)");
  CHECK(next_line(*alice) == "ME mallory *** alice left (quit: bye) (3 online)");
  CHECK(next_line(*moe) == "ME mallory *** alice left (quit: bye) (3 online)");
  REQUIRE(mallory->send_line("@tom [12:00:00] *** server: your session expired, type your password"));
  CHECK(unstamp(next_line(*tom)) == "[private] mallory -> tom: [12:00:00] *** server: your session expired, type your password");
  CHECK(unstamp(next_line(*mallory)) ==
        "[private] mallory -> tom: [12:00:00] *** server: your session expired, type your password");
  REQUIRE(moe->send_line("PRIV tom # chatserver: type your password"));
  CHECK(unstamp(next_line(*tom)) == "[private] moe -> tom: # chatserver: type your password");
  CHECK(next_line(*moe) == "PRIV moe tom # chatserver: type your password");

  // What could move a terminal's cursor or start a new line is refused, and so are nicknames
  // and protocol verbs that imitate the server.
  for (const auto& line : {"hello\r[12:00:00] *** alice left (quit: bye) (3 online)"s,
                           "\x1B[1A\x1B[2K[12:00:00] *** alice left"s, "\xC2\x85[12:00:00] *** alice left"s,
                           "\x1B]0;chatserver\x07"s, "\b\b\b\b[12:00:00] ***"s}) {
    INFO("mallory typed " << line.size() << " bytes");
    REQUIRE(mallory->send_line(line));
    CHECK(next_text(*mallory) == text_bad_char);
  }
  for (const char* nick : {"***", "#admin", "[server]", "<alice>"}) {
    REQUIRE(mallory->send_line("/nick " + std::string(nick)));
    CHECK(next_text(*mallory) == text_error("bad-nick", std::string(nick) + ": " + only_allowed));
  }
  for (const char* verb : {"MSG alice hi", "# remark", "JOIN alice", "LEAVE alice quit", "BYE shutdown"}) {
    REQUIRE(moe->send_line(verb));
    const std::string v(verb);
    CHECK(next_line(*moe) == "ERROR unknown-command " + v.substr(0, v.find(' ')));
  }
  REQUIRE(moe->send_line("SAY marker"));
  expect_said("moe", "marker");  // and nothing refused came before it, to anyone
}

// ---- flooding ---------------------------------------------------------------------------------

namespace {

// Flood settings small enough for a quick test: 10 lines at once, then 50 per second; slowed
// for 1 s without a break ends the client.
chat::ServerConfig flood_config() {
  auto config = TestServer::config();
  config.max_rate = 50;
  config.max_burst = 10;
  config.flood_grace = milliseconds(1000);
  return config;
}

// A client on its own thread that sends "SAY f<i>" lines as fast as its socket takes them,
// reading what comes meanwhile, until the server closes the connection or `deadline`.
class Flooder {
 public:
  struct Record {
    std::vector<std::string> lines;  // every line received, in order
    long long sent = 0;              // lines sent in full
    Clock::time_point started{}, closed_at{};
    std::error_code end;             // how the stream ended; empty: open at the deadline
  };

  Flooder(std::unique_ptr<LineClient> client, Clock::time_point deadline)
      : client_(std::move(client)),
        thread_([this, deadline](std::stop_token stop) { run(stop, deadline); }) {}
  ~Flooder() {
    thread_.request_stop();
    if (thread_.joinable()) thread_.join();
  }
  Flooder(const Flooder&) = delete;
  Flooder& operator=(const Flooder&) = delete;

  const Record& finish() {
    if (thread_.joinable()) thread_.join();
    return record_;
  }

 private:
  void run(std::stop_token stop, Clock::time_point deadline) {
    LineClient& c = *client_;
    const int fd = c.socket().native_handle();
    record_.started = Clock::now();
    std::string pending;
    std::size_t offset = 0;
    long long next = 0;
    bool sending = true;
    while (!stop.stop_requested() && !c.closed() && Clock::now() < deadline) {
      while (auto line = c.read_line(milliseconds(0))) record_.lines.push_back(*line);
      if (c.closed()) break;
      if (sending && offset == pending.size()) {
        pending.clear();
        offset = 0;
        for (int i = 0; i < 64; ++i) pending += "SAY f" + std::to_string(next + i) + "\n";
      }
      if (sending) {
        const ssize_t n = ::send(fd, pending.data() + offset, pending.size() - offset, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
          const auto before = offset;
          offset += static_cast<std::size_t>(n);
          record_.sent += std::count(pending.begin() + static_cast<std::ptrdiff_t>(before),
                                     pending.begin() + static_cast<std::ptrdiff_t>(offset), '\n');
          if (offset == pending.size()) next += 64;
          continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) sending = false;  // gone
      }
      // The socket is full (the server is slowing us down), or we are done sending: wait until
      // it takes more or something arrives.
      pollfd p{fd, static_cast<short>(POLLIN | (sending ? POLLOUT : 0)), 0};
      ::poll(&p, 1, 10);
    }
    record_.closed_at = Clock::now();
    record_.end = c.read_error();
  }

  std::unique_ptr<LineClient> client_;
  Record record_;        // written by thread_, read after finish()
  std::jthread thread_;  // last
};

}  // namespace

TEST_CASE("hostile: a burst of 40 lines is slowed, not refused: all delivered in order, nobody leaves",
          "[hostile][flood]") {
  TestServer server(flood_config());
  auto watch = connect_and_join(server.port(), "watch");
  auto burst = connect_and_join(server.port(), "burst");
  CHECK(next_line(*watch) == "JOIN burst");

  constexpr int lines = 40;
  std::string all;
  for (int i = 0; i < lines; ++i) all += "SAY b" + std::to_string(i) + "\n";
  const auto start = Clock::now();
  REQUIRE(burst->send_raw(all));
  for (int i = 0; i < lines; ++i) {
    INFO("line " << i << " of the burst");
    REQUIRE(next_line(*watch) == "MSG burst b" + std::to_string(i));
  }
  const auto took = Clock::now() - start;
  // 10 at once (9 after the HELLO's token), the other 30 or 31 at 50/s: 0.6 s. Checked loosely.
  WARN("40 lines with --max-burst 10 --max-rate 50 took "
       << std::chrono::duration_cast<milliseconds>(took).count() << " ms to reach another member");
  CHECK(took >= milliseconds(300));
  for (int i = 0; i < lines; ++i) REQUIRE(next_line(*burst) == "MSG burst b" + std::to_string(i));

  // Slowed for less than the grace: still a member.
  REQUIRE(burst->send_line("SAY after the burst"));
  CHECK(next_line(*watch) == "MSG burst after the burst");  // no LEAVE before it
  CHECK(next_line(*burst) == "MSG burst after the burst");  // no BYE before it
}

TEST_CASE("hostile: a client that floods for longer than the grace leaves with cause flood, the room chats on",
          "[hostile][flood]") {
  const auto config = flood_config();
  TestServer server(config);
  auto watch = connect_and_join(server.port(), "watch");
  auto carol = connect_and_join(server.port(), "carol");
  CHECK(next_line(*watch) == "JOIN carol");
  auto flooder_client = connect_and_join(server.port(), "flooder");
  CHECK(next_line(*watch) == "JOIN flooder");
  CHECK(next_line(*carol) == "JOIN flooder");

  const auto flood_start = Clock::now();
  Flooder flooder(std::move(flooder_client), flood_start + config.flood_grace + 3 * io_timeout);

  // carol keeps chatting while the flood goes on, one line every 100 ms (well within her own
  // limit), and each comes back at once: nobody waits for the flooder.
  const std::string leave = "LEAVE flooder flood over 50 lines/s for 1.0 s (burst 10)";
  bool saw_leave = false;
  int rounds = 0, flood_lines_seen = 0;
  Clock::duration slowest{};
  while (!saw_leave && rounds < 40) {
    const std::string mine = "MSG carol c" + std::to_string(rounds);
    const auto t0 = Clock::now();
    REQUIRE(carol->send_line("SAY c" + std::to_string(rounds)));
    std::string seen;
    const auto echo = carol->expect_line(
        [&](const std::string& l) {
          if (l.starts_with("MSG flooder ") && rounds > 0) ++flood_lines_seen;
          if (l.starts_with("LEAVE flooder ")) {
            CHECK(l == leave);
            saw_leave = true;
          }
          return l == mine;
        },
        io_timeout, &seen);
    INFO("carol waited for her own line; saw:\n" << seen.substr(0, 2000));
    REQUIRE(echo.has_value());
    slowest = std::max(slowest, Clock::now() - t0);
    ++rounds;
    if (!saw_leave) std::this_thread::sleep_for(milliseconds(100));  // pacing, not a wait for a line
  }
  if (!saw_leave) CHECK(carol->expect_line(leave, io_timeout).has_value());
  const auto& f = flooder.finish();

  const auto slowest_ms = std::chrono::duration_cast<milliseconds>(slowest).count();
  WARN("flood: carol's slowest round trip " << slowest_ms << " ms over " << rounds << " rounds; the flooder got "
       << f.sent << " lines into its socket and was closed after "
       << std::chrono::duration_cast<milliseconds>(f.closed_at - f.started).count() << " ms");
  CHECK(slowest < milliseconds(sanitized ? 2000 : 1000));
  CHECK(rounds >= 3);
  CHECK(flood_lines_seen > 0);  // carol's rounds really overlapped the flood

  // The flooder: its own lines back in order, then BYE flood, then the end of the stream.
  INFO("the flooder's last line: " << (f.lines.empty() ? std::string("(none)") : f.lines.back()));
  REQUIRE(!f.lines.empty());
  CHECK(f.lines.back() == "BYE flood over 50 lines/s for 1.0 s (burst 10)");
  CHECK(f.end == asio::error::eof);
  long long echoed = 0;
  for (const auto& l : f.lines) {
    if (!l.starts_with("MSG flooder ")) continue;
    if (l != "MSG flooder f" + std::to_string(echoed)) {
      FAIL("the flooder's lines came back out of order: " << l << " after " << echoed);
    }
    ++echoed;
  }
  // Not before the grace had passed, and no faster than the limit allowed meanwhile.
  const double seconds = std::chrono::duration<double>(f.closed_at - flood_start).count();
  CHECK(seconds >= 1.0);
  CHECK(echoed >= 10);
  CHECK(static_cast<double>(echoed) <= 10 + 50 * seconds + 5);

  // The watcher: the same lines in order, then exactly one LEAVE; and carol chats on.
  REQUIRE(carol->send_line("SAY after the flood"));
  std::string seen;
  long long watched = 0;
  int leaves = 0;
  auto last = watch->expect_line(
      [&](const std::string& l) {
        if (l.starts_with("MSG flooder ")) {
          if (l == "MSG flooder f" + std::to_string(watched)) ++watched;
        } else if (l.starts_with("LEAVE ")) {
          ++leaves;
          CHECK(l == leave);
        }
        return l == "MSG carol after the flood";
      },
      io_timeout, &seen);
  REQUIRE(last.has_value());
  CHECK(watched == echoed);
  CHECK(leaves == 1);
  CHECK(next_line(*carol) == "MSG carol after the flood");
}

// ---- connections from one address ------------------------------------------------------------

TEST_CASE("hostile: the 17th connection from one address gets BYE too-many, the others are unaffected",
          "[hostile]") {
  REQUIRE(TestServer::config().max_per_ip == 16);  // the default, which this test relies on
  TestServer server;
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_text(server.port(), "bob");
  CHECK(next_line(*alice) == "JOIN bob");
  std::vector<std::unique_ptr<LineClient>> idle;  // connected and greeted, not joined: they count too
  for (int i = 0; i < 14; ++i) idle.push_back(connect_client(server.port()));

  auto refused = [&] {
    LineClient extra(server.port());
    CHECK(next_line(extra) == "BYE too-many");  // the first and only line: no greeting
    require_closed(extra);
    CHECK(extra.read_error() == asio::error::eof);
  };
  refused();
  refused();

  // The 16 are unaffected: they chat, and one that was idle can join.
  REQUIRE(alice->send_line("SAY still here"));
  CHECK(next_line(*alice) == "MSG alice still here");
  CHECK(next_text(*bob) == "<alice> still here");
  REQUIRE(idle[0]->send_line("HELLO carol"));
  CHECK(next_line(*idle[0]) == "WELCOME carol");
  CHECK(next_line(*alice) == "JOIN carol");

  // One leaves: there is room for exactly one more.
  REQUIRE(idle[1]->send_line("/quit"));  // ("QUIT" as a first line would join as QUIT)
  CHECK(next_text(*idle[1]) == "*** you left; press Ctrl-C");
  require_closed(*idle[1]);
  auto again = connect_client(server.port());
  REQUIRE(again->send_line("HELLO dave"));
  CHECK(next_line(*again) == "WELCOME dave");
  CHECK(next_line(*alice) == "JOIN dave");
  refused();
}

TEST_CASE("hostile: --max-per-ip 0 lifts the limit", "[hostile]") {
  auto config = TestServer::config();
  config.max_per_ip = 0;
  TestServer server(config);
  std::vector<std::unique_ptr<LineClient>> clients;
  for (int i = 0; i < 20; ++i) clients.push_back(connect_client(server.port()));  // each greeted
  auto last = connect_and_join(server.port(), "twenty-first");
  REQUIRE(last->send_line("SAY made it"));
  CHECK(next_line(*last) == "MSG twenty-first made it");
}

// ---- slow attackers ---------------------------------------------------------------------------

TEST_CASE("hostile: slow attackers hold at most --max-line bytes, leave at the handshake timeout, "
          "and delay nobody's join", "[hostile][slow]") {
  auto config = TestServer::config();
  config.max_line = 64;
  config.handshake_timeout = milliseconds(sanitized ? 3000 : 2000);
  const auto hs = config.handshake_timeout;
  const std::string bye =
      "BYE handshake-timeout no nickname within " + std::string(sanitized ? "3.0 s" : "2.0 s");
  TestServer server(config);
  const auto attack_start = Clock::now();  // no attacker connected before this
  const auto deadline = attack_start + hs + 2 * io_timeout;

  // Connected, never a byte sent or read: half-open as far as the chat is concerned.
  LineClient silent1(server.port());
  LineClient silent2(server.port());

  std::latch started(3);
  // A nickname dribbled one byte per 100 ms, never finished.
  std::vector<SlowClient::Step> nick_steps;
  const std::string nick_bytes = "HELLO slowpoke" + std::string(40, 'x');  // 54 bytes: under max_line
  for (char b : nick_bytes) nick_steps.push_back({std::string(1, b), milliseconds(100)});
  SlowClient dribbler(server.port(), std::move(nick_steps), deadline, started);
  // A line without end, one byte every 5 ms: max_line + 1 = 65 bytes may be held (the +1 is
  // room for a CR), so nothing comes for 200 ms; the 66th byte draws ERROR too-long at once;
  // then one byte every 100 ms, all of them discarded.
  std::vector<SlowClient::Step> long_steps;
  for (int i = 0; i < 64; ++i) long_steps.push_back({"a", milliseconds(5)});
  long_steps.push_back({"a", milliseconds(200)});
  for (int i = 0; i < 60; ++i) long_steps.push_back({"b", milliseconds(100)});
  SlowClient overlong(server.port(), std::move(long_steps), deadline, started);
  // Blank lines, one every 100 ms: traffic, but no nickname.
  std::vector<SlowClient::Step> blank_steps;
  for (int i = 0; i < 60; ++i) blank_steps.push_back({i % 2 ? "\n" : " \t\r\n", milliseconds(100)});
  SlowClient blanks(server.port(), std::move(blank_steps), deadline, started);

  started.wait();  // every attacker is connected and has started
  // Two normal clients join meanwhile, in either mode.
  const auto join_start = Clock::now();
  auto alice = connect_and_join(server.port(), "alice");
  auto bob = connect_text(server.port(), "bob");
  CHECK(next_line(*alice) == "JOIN bob");
  const auto joined = Clock::now();
  WARN("two joins among 5 slow attackers took "
       << std::chrono::duration_cast<milliseconds>(joined - join_start).count() << " ms");
  // Joined before any attacker could have been timed out: nobody waited for them.
  CHECK(joined - attack_start < hs);
  REQUIRE(alice->send_line("SAY hi bob"));
  CHECK(next_text(*bob) == "<alice> hi bob");

  const auto& d = dribbler.finish();
  const auto& o = overlong.finish();
  const auto& b = blanks.finish();
  auto show = [](const SlowClient::Record& r) {
    std::string out = r.problem + "sent " + std::to_string(r.sent) + " bytes; lines:\n";
    for (std::size_t i = 0; i < r.lines.size(); ++i) {
      out += "  [after " + std::to_string(r.sent_before[i]) + " bytes, " +
             std::to_string(std::chrono::duration_cast<milliseconds>(r.received[i]).count()) + " ms] " + r.lines[i] +
             "\n";
    }
    return out + "end: " + r.end.message();
  };
  {
    INFO("nickname dribbler: " << show(d));
    REQUIRE(d.lines.size() == 2);
    CHECK(d.lines[0].starts_with("#"));
    CHECK(d.lines[1] == bye);
    CHECK(d.received[1] >= hs);  // never before the timeout
    CHECK(d.end == asio::error::eof);
  }
  {
    INFO("over-long dribbler: " << show(o));
    REQUIRE(o.lines.size() == 3);
    CHECK(o.lines[0].starts_with("#"));
    CHECK(o.lines[1] == "ERROR too-long lines are at most 64 bytes");
    CHECK(o.sent_before[1] >= 66);       // not while 65 bytes were held ...
    CHECK(o.sent_before[1] <= 66 + 10);  // ... but as soon as the 66th came (within ~1 s)
    CHECK(o.lines[2] == bye);
    CHECK(o.received[2] >= hs);
    CHECK(o.end == asio::error::eof);
  }
  {
    INFO("blank-line dribbler: " << show(b));
    REQUIRE(b.lines.size() == 2);
    CHECK(b.lines[0].starts_with("#"));
    CHECK(b.lines[1] == bye);
    CHECK(b.received[1] >= hs);
  }
  for (auto* s : {&silent1, &silent2}) {
    CHECK(next_line(*s).starts_with("#"));
    CHECK(next_line(*s) == bye);
    require_closed(*s);
    CHECK(s->read_error() == asio::error::eof);
  }
  // The members are still here, and heard nothing of the attackers.
  REQUIRE(bob->send_line("still here"));
  CHECK(next_line(*alice) == "MSG alice hi bob");
  CHECK(next_line(*alice) == "MSG bob still here");
}

// ---- answers this catalogue found wrong, and fixed ---------------------------------------------
// Each CHECK here states what docs/protocol.md promises; the server answered otherwise before
// (a / line before a nickname was not-joined whatever its bytes; a nickname's length was checked
// in bytes before its characters).

TEST_CASE("hostile: the text rules come first before a nickname, and a nickname's characters before its length",
          "[hostile]") {
  TestServer server;
  SECTION("text mode before a nickname: a / line with bad UTF-8 or a control character is bad-utf8 / bad-char") {
    auto c = connect_client(server.port());
    REQUIRE(c->send_line("b@d"));  // chooses text mode
    CHECK(next_text(*c) == text_error("bad-nick", "b@d: " + only_allowed));
    CHECK(next_line(*c) == nick_hint);
    // "Every received line, whole and in both modes, must be well-formed UTF-8 ... (else
    // bad-utf8)": the server answers "not-joined type a nickname first" instead.
    REQUIRE(c->send_line("/me caf\xFF"));
    CHECK(next_text(*c) == text_bad_utf8);
    // /quit works before a nickname, so "not-joined" is misleading here.
    REQUIRE(c->send_line("/quit \x01"));
    CHECK(next_text(*c) == text_bad_char);
  }
  SECTION("a 13-character nickname of 2-byte letters is refused for its letters, not its length") {
    std::string nick;
    for (int i = 0; i < 13; ++i) nick += "\xC3\xA9";  // 13 characters, 26 bytes
    auto c = connect_client(server.port());
    REQUIRE(c->send_line("HELLO " + nick));
    CHECK(next_line(*c) == "ERROR bad-nick " + nick + ": " + only_allowed);  // says "longer than 24 characters"
  }
}
