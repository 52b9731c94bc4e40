#include "common/http.hpp"

#include "common/websocket.hpp"

#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

using chat::http::RequestReader;
using chat::http::Sniff;
using State = RequestReader::State;
using namespace std::string_literals;

namespace {

// What Chromium 120 sends to open ws://127.0.0.1:7000/ws from http://127.0.0.1:7000/.
const std::string chromium_upgrade =
    "GET /ws HTTP/1.1\r\n"
    "Host: 127.0.0.1:7000\r\n"
    "Connection: Upgrade\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
    "Safari/537.36\r\n"
    "Upgrade: websocket\r\n"
    "Origin: http://127.0.0.1:7000\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "\r\n";

std::string sniff_name(Sniff s) {
  switch (s) {
    case Sniff::http: return "http";
    case Sniff::lines: return "lines";
    case Sniff::undecided: return "undecided";
  }
  return "?";
}

// The reader's outcome, to compare two ways of feeding the same bytes.
struct Outcome {
  State state;
  int status;
  std::string detail;
  std::string method, target, version;
  chat::http::Fields headers;
  std::string rest;
  bool operator==(const Outcome&) const = default;
};

Outcome outcome(const RequestReader& r) {
  const auto& q = r.request();
  return {r.state(), r.status(), r.detail(), q.method, q.target, q.version, q.headers, std::string(r.rest())};
}

Outcome read_whole(std::string_view in, std::size_t max_head = 8192) {
  RequestReader r(max_head);
  r.feed(in);
  return outcome(r);
}

Outcome read_bytewise(std::string_view in, std::size_t max_head = 8192) {
  RequestReader r(max_head);
  for (const char c : in) r.feed(std::string_view(&c, 1));
  return outcome(r);
}

// status() and detail() of a head that must fail.
std::pair<int, std::string> failure_of(std::string_view head) {
  RequestReader r;
  const State state = r.feed(head);
  INFO(head);
  CHECK(state == State::failed);
  CHECK(read_bytewise(head) == outcome(r));
  return {r.status(), r.detail()};
}

}  // namespace

TEST_CASE("RequestReader reads a Chromium WebSocket upgrade", "[http]") {
  RequestReader r;
  REQUIRE(r.feed(chromium_upgrade) == State::complete);
  CHECK(r.state() == State::complete);
  CHECK(r.status() == 0);
  CHECK(r.head_size() == chromium_upgrade.size());
  CHECK(r.rest().empty());
  const auto& q = r.request();
  CHECK(q.method == "GET");
  CHECK(q.target == "/ws");
  CHECK(q.version == "HTTP/1.1");
  CHECK(q.headers.size() == 12);
  CHECK(q.headers.front() == std::pair<std::string, std::string>{"Host", "127.0.0.1:7000"});
  CHECK(q.header("host") == "127.0.0.1:7000");
  CHECK(q.header("USER-AGENT")->starts_with("Mozilla/5.0 (X11"));
  CHECK(q.header_has_token("Upgrade", "websocket"));
  CHECK(q.header_has_token("connection", "upgrade"));
  CHECK(q.header("Sec-WebSocket-Version") == "13");
  CHECK(q.header("Origin") == "http://127.0.0.1:7000");
  CHECK(q.header("Sec-WebSocket-Extensions") == "permessage-deflate; client_max_window_bits");
  CHECK(q.header_has_token("Accept-Encoding", "br"));
  CHECK_FALSE(q.header_has_token("Accept-Encoding", "zstd"));
  CHECK_FALSE(q.header("Cookie"));
  const auto key = q.header("Sec-WebSocket-Key");
  REQUIRE(key);
  CHECK(chat::ws::valid_client_key(*key));
  CHECK(chat::ws::accept_key(*key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

  CHECK(read_bytewise(chromium_upgrade) == outcome(r));
  std::mt19937 rng(1);
  for (int round = 0; round < 20; ++round) {
    RequestReader split;
    std::string_view in = chromium_upgrade;
    while (!in.empty()) {
      const std::size_t n = std::min<std::size_t>(rng() % 40, in.size());
      split.feed(in.substr(0, n));
      in.remove_prefix(n);
    }
    CHECK(outcome(split) == outcome(r));
  }
}

TEST_CASE("Request::header joins repeated fields, header_has_token reads lists", "[http]") {
  RequestReader r;
  REQUIRE(r.feed("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nAccept: a/b\r\n"
                 "accept: c/d\r\nX-Empty:\r\nX-Spaces: \t padded value \t \r\n\r\n") == State::complete);
  const auto& q = r.request();
  CHECK(q.header("Accept") == "a/b, c/d");
  CHECK(q.header("X-Empty") == "");
  CHECK(q.header("X-Spaces") == "padded value");
  CHECK(q.header_has_token("Connection", "Upgrade"));
  CHECK(q.header_has_token("Connection", "KEEP-ALIVE"));
  CHECK_FALSE(q.header_has_token("Connection", "close"));
  CHECK_FALSE(q.header_has_token("Connection", "keep"));
  CHECK(q.header_has_token("Accept", "c/d"));
  CHECK_FALSE(q.header_has_token("X-Empty", "x"));
}

TEST_CASE("RequestReader accepts bare LF line ends, and HTTP/1.0", "[http]") {
  RequestReader r;
  REQUIRE(r.feed("GET /index.html?x=1 HTTP/1.0\nHost: example\r\nAccept: */*\n\n") == State::complete);
  CHECK(r.request().target == "/index.html?x=1");
  CHECK(r.request().version == "HTTP/1.0");
  CHECK(r.request().header("Accept") == "*/*");
  CHECK(read_whole("HEAD / HTTP/1.1\n\r\n").state == State::complete);
  CHECK(read_whole("GET / HTTP/1.1\r\n\n").state == State::complete);
  CHECK(read_whole("GET / HTTP/1.1\r\n\r").state == State::incomplete);
}

TEST_CASE("sniff tells an HTTP request from the line protocol by its first bytes", "[http]") {
  const auto prefixes = [](std::string_view s, std::size_t decided_at, Sniff then) {
    for (std::size_t n = 0; n <= s.size(); ++n) {
      INFO("'" << s.substr(0, n) << "'");
      CHECK(sniff_name(chat::http::sniff(s.substr(0, n))) == sniff_name(n < decided_at ? Sniff::undecided : then));
    }
  };
  prefixes("GET /ws HTTP/1.1\r\n", 5, Sniff::http);  // decided at "GET /"
  prefixes("HELLO alice\n", 7, Sniff::lines);        // "HELLO " could still be a method
  prefixes("alice\n", 1, Sniff::lines);
  prefixes("hello\n", 1, Sniff::lines);
  prefixes("WHO\n", 4, Sniff::lines);
  prefixes("OPTIONS * HTTP/1.1", 9, Sniff::lines);  // not origin-form
  prefixes("GET http://x/ HTTP/1.1", 5, Sniff::lines);
  CHECK(chat::http::sniff("") == Sniff::undecided);
  CHECK(chat::http::sniff("ABCDEFGHIJKLMNOP") == Sniff::undecided);  // 16 letters
  CHECK(chat::http::sniff("ABCDEFGHIJKLMNOP /") == Sniff::http);
  CHECK(chat::http::sniff("ABCDEFGHIJKLMNOPQ") == Sniff::lines);  // 17 letters
  CHECK(chat::http::sniff("GET  /") == Sniff::lines);
  CHECK(chat::http::sniff("get /") == Sniff::lines);
  CHECK(chat::http::sniff(" GET /") == Sniff::lines);
  CHECK(chat::http::sniff("\r\n") == Sniff::lines);
  CHECK(chat::http::sniff("G3T /") == Sniff::lines);
  CHECK(chat::http::sniff("POST /x") == Sniff::http);
  CHECK(chat::http::sniff(chromium_upgrade) == Sniff::http);
}

TEST_CASE("RequestReader fails with 431 at exactly max_head + 1 bytes", "[http]") {
  constexpr std::size_t max = 64;
  const std::string start = "GET / HTTP/1.1\r\nX: ";
  for (const std::string end : {"\r\n\r\n", "\n\n"}) {
    const std::string exact = start + std::string(max - start.size() - end.size(), 'v') + end;
    REQUIRE(exact.size() == max);
    INFO("line end '" << (end.size() == 2 ? "LF" : "CRLF") << "'");
    CHECK(read_whole(exact, max).state == State::complete);
    CHECK(read_bytewise(exact, max) == read_whole(exact, max));

    const std::string over = start + std::string(max - start.size() - end.size() + 1, 'v') + end;
    const Outcome whole = read_whole(over, max);
    CHECK(whole.state == State::failed);
    CHECK(whole.status == 431);
    CHECK(whole.detail == "request head over 64 bytes");
    CHECK(whole.rest == over.substr(max));
    CHECK(read_bytewise(over, max) == whole);

    // Decided as byte max + 1 arrives, before any line end.
    RequestReader r(max);
    CHECK(r.feed(over.substr(0, max)) == State::incomplete);
    CHECK(r.feed(over.substr(max, 1)) == State::failed);
    CHECK(r.status() == 431);
  }
  SECTION("a flood without any LF") {
    RequestReader r(max);
    CHECK(r.feed(std::string(max, 'G')) == State::incomplete);
    CHECK(r.feed(std::string(10000, 'G')) == State::failed);
    CHECK(r.status() == 431);
    CHECK(r.rest().size() == max);  // what follows is bounded too
    CHECK(r.feed(std::string(10000, 'G')) == State::failed);
    CHECK(r.rest().size() == max);
  }
  SECTION("the default is 8192") {
    const std::string head = "GET / HTTP/1.1\r\nX: " + std::string(8192 - 23, 'v') + "\r\n\r\n";
    CHECK(read_whole(head).state == State::complete);
    CHECK(read_whole(head.substr(0, 20) + "v" + head.substr(20)).status == 431);
  }
}

TEST_CASE("RequestReader fails with 431 past max_fields fields", "[http]") {
  std::string head = "GET / HTTP/1.1\r\n";
  for (std::size_t i = 0; i < chat::http::max_fields; ++i) head += "X-" + std::to_string(i) + ": v\r\n";
  CHECK(read_whole(head + "\r\n").state == State::complete);
  const Outcome over = read_whole(head + "X-last: v\r\n\r\n");
  CHECK(over.status == 431);
  CHECK(over.detail == "more than 100 header fields");
}

TEST_CASE("RequestReader keeps pipelined bytes in rest(), bounded", "[http]") {
  const std::string first = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string second = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  RequestReader r;
  CHECK(r.feed(first + second.substr(0, 10)) == State::complete);
  CHECK(r.request().target == "/a");
  CHECK(r.rest() == second.substr(0, 10));
  CHECK(r.feed(second.substr(10)) == State::complete);
  CHECK(r.rest() == second);
  CHECK(r.head_size() == first.size());
  // A WebSocket client's first frame may follow its handshake at once.
  const std::array<std::uint8_t, 4> mask{1, 2, 3, 4};
  const std::string frame = chat::ws::make_frame(chat::ws::Opcode::text, "HELLO alice", &mask);
  CHECK(read_whole(chromium_upgrade + frame).rest == frame);
  CHECK(read_bytewise(chromium_upgrade + frame).rest == frame);
  // At most max_head bytes of rest.
  RequestReader small(32);
  CHECK(small.feed("GET / HTTP/1.1\n\n" + std::string(100, 'r')) == State::complete);
  CHECK(small.rest() == std::string(32, 'r'));
  CHECK(small.feed("more") == State::complete);
  CHECK(small.rest().size() == 32);
}

TEST_CASE("RequestReader refuses malformed heads with 400, other versions with 505", "[http]") {
  struct Case {
    std::string head;
    int status;
    std::string detail;
  };
  const std::vector<Case> cases{
      {"\r\n\r\n", 400, "bad request line"},
      {"GET\r\n\r\n", 400, "bad request line"},
      {"GET /\r\n\r\n", 400, "bad request line"},
      {"G(T / HTTP/1.1\r\n\r\n", 400, "method is not a token"},
      {" GET / HTTP/1.1\r\n\r\n", 400, "method is not a token"},
      {"GET  / HTTP/1.1\r\n\r\n", 400, "target does not start with '/'"},
      {"GET http://x/ HTTP/1.1\r\n\r\n", 400, "target does not start with '/'"},
      {"OPTIONS * HTTP/1.1\r\n\r\n", 400, "target does not start with '/'"},
      {"GET /a\x7f HTTP/1.1\r\n\r\n", 400, "bad character in the target"},
      {"GET /\xC3\xA9 HTTP/1.1\r\n\r\n", 400, "bad character in the target"},
      {"GET / HTTP/1.1 \r\n\r\n", 400, "bad HTTP version"},
      {"GET / http/1.1\r\n\r\n", 400, "bad HTTP version"},
      {"GET / HTTP/1.10\r\n\r\n", 400, "bad HTTP version"},
      {"GET / HTTP/2\r\n\r\n", 400, "bad HTTP version"},
      {"GET / HTTP/2.0\r\n\r\n", 505, "HTTP version 2.0 not supported"},
      {"GET / HTTP/0.9\r\n\r\n", 505, "HTTP version 0.9 not supported"},
      {"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400, "header line without ':'"},
      {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, "header name is not a token"},
      {"GET / HTTP/1.1\r\n: x\r\n\r\n", 400, "header name is not a token"},
      {"GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n", 400, "obs-fold (a header line starting with whitespace)"},
      {"GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n", 400, "obs-fold (a header line starting with whitespace)"},
      {"GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", 400, "bare CR in the head"},
      {"GET / HTTP/1.1\r\r\n\r\n", 400, "bare CR in the head"},
      {"GET / HTTP/1.1\r\n\r\r\n", 400, "bare CR in the head"},
      {"GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n"s, 400, "NUL byte in the head"},
      {"GET / HTTP/1.1\r\nX-A: a\x1b[31m\r\n\r\n", 400, "control character in header X-A"},
  };
  for (const auto& c : cases) {
    CHECK(failure_of(c.head) == std::pair{c.status, c.detail});
  }
  // The first fault in the stream decides, and is reported at its line's end.
  RequestReader r;
  CHECK(r.feed("GET / HTTP/1.1\r\nbad\r\n") == State::failed);
  CHECK(r.status() == 400);
  CHECK(r.rest().empty());
}

TEST_CASE("response writes the status line, fields, Content-Length and body", "[http]") {
  using chat::http::response;
  CHECK(response(200, {{"Content-Type", "text/html; charset=utf-8"}}, "<p>hi</p>") ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 9\r\n\r\n<p>hi</p>");
  CHECK(response(200, {{"Content-Type", "text/plain"}}, "body", true) ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\n");
  CHECK(response(404, {}, "") == "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  CHECK(response(426, {{"Sec-WebSocket-Version", "13"}}, "") ==
        "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n");
  // No Content-Length or body for 1xx and 204.
  CHECK(response(101, {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}}, "") ==
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
  CHECK(response(204, {}, "ignored") == "HTTP/1.1 204 No Content\r\n\r\n");
  CHECK(response(599, {}, "") == "HTTP/1.1 599 \r\nContent-Length: 0\r\n\r\n");
}

TEST_CASE("reason_phrase", "[http]") {
  using chat::http::reason_phrase;
  CHECK(reason_phrase(101) == "Switching Protocols");
  CHECK(reason_phrase(200) == "OK");
  CHECK(reason_phrase(400) == "Bad Request");
  CHECK(reason_phrase(403) == "Forbidden");
  CHECK(reason_phrase(404) == "Not Found");
  CHECK(reason_phrase(405) == "Method Not Allowed");
  CHECK(reason_phrase(426) == "Upgrade Required");
  CHECK(reason_phrase(431) == "Request Header Fields Too Large");
  CHECK(reason_phrase(500) == "Internal Server Error");
  CHECK(reason_phrase(503) == "Service Unavailable");
  CHECK(reason_phrase(505) == "HTTP Version Not Supported");
  CHECK(reason_phrase(299).empty());
}

TEST_CASE("parse_response_head", "[http]") {
  using chat::http::parse_response_head;
  const auto r = parse_response_head(chat::http::response(503, {{"Retry-After", "5"}}, "full") + "ignored");
  REQUIRE(r);
  CHECK(r->version == "HTTP/1.1");
  CHECK(r->status == 503);
  CHECK(r->reason == "Service Unavailable");
  CHECK(r->header("retry-after") == "5");
  CHECK(r->header("Content-Length") == "4");
  CHECK(r->headers.size() == 2);
  CHECK(parse_response_head("HTTP/1.0 200\n")->status == 200);
  CHECK(parse_response_head("HTTP/1.1 200 \r\n\r\n")->reason.empty());
  CHECK(parse_response_head("HTTP/1.1 101 Switching Protocols")->status == 101);
  CHECK_FALSE(parse_response_head(""));
  CHECK_FALSE(parse_response_head("HTTP/1.1 20 OK\r\n\r\n"));
  CHECK_FALSE(parse_response_head("HTTP/1.1 2000 OK\r\n\r\n"));
  CHECK_FALSE(parse_response_head("HTTP/1.1  200 OK\r\n\r\n"));
  CHECK_FALSE(parse_response_head("ICY 200 OK\r\n\r\n"));
  CHECK_FALSE(parse_response_head("HTTP/1.1 200 OK\r\nno colon\r\n\r\n"));
  CHECK_FALSE(parse_response_head("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n"));
}

TEST_CASE("is_token", "[http]") {
  CHECK(chat::http::is_token("GET"));
  CHECK(chat::http::is_token("Sec-WebSocket-Key"));
  CHECK(chat::http::is_token("!#$%&'*+-.^_`|~09azAZ"));
  CHECK_FALSE(chat::http::is_token(""));
  CHECK_FALSE(chat::http::is_token("a b"));
  CHECK_FALSE(chat::http::is_token("a:b"));
  CHECK_FALSE(chat::http::is_token("\xC3\xA9"));
  CHECK_FALSE(chat::http::is_token("(x)"));
}
