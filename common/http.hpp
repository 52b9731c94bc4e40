// The little HTTP/1.1 the chat port speaks, without sockets: telling an HTTP client from a
// line-protocol client by its first bytes, reading one request head with hard limits, and
// writing whole responses (the web page, the WebSocket upgrade's 101, errors). Also the
// response head a WebSocket client (chatbench, chatlab) reads back.
//
// Threads: the free functions and Request/Response are pure and thread safe. A RequestReader
// belongs to one thread at a time (a session's reader thread); distinct objects are independent.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chat::http {

// Header fields in the order they came, names as sent, values trimmed of SP and HTAB.
using Fields = std::vector<std::pair<std::string, std::string>>;

// The value of field `name` (case-insensitive); several fields of that name are joined with
// ", " (RFC 9110 5.3). nullopt if absent.
std::optional<std::string> field_value(const Fields& fields, std::string_view name);
// Whether the comma-separated field `name` lists `token` (both case-insensitive), in any of
// its fields: "Connection: keep-alive, Upgrade" has "upgrade".
bool field_has_token(const Fields& fields, std::string_view name, std::string_view token);

// Whether `s` is a token (RFC 9110 5.6.2): 1 or more of A-Z a-z 0-9 !#$%&'*+-.^_`|~.
bool is_token(std::string_view s);

struct Request {
  std::string method, target, version;
  Fields headers;
  std::optional<std::string> header(std::string_view name) const { return field_value(headers, name); }
  bool header_has_token(std::string_view name, std::string_view token) const {
    return field_has_token(headers, name, token);
  }
};

// What the first bytes of a connection are:
//   http:      they begin an HTTP request line: an upper-case method of 1 to 16 letters, one
//              space, then '/' (origin-form), decided as soon as the '/' is in;
//   lines:     they cannot ("HELLO alice", "alice", "hello", "GET x");
//   undecided: they are still a strict prefix of that pattern ("GE", "GET", "GET ", and also
//              "HELLO " or "WHO"); the caller waits for more. Empty input is undecided.
enum class Sniff { http, lines, undecided };
Sniff sniff(std::string_view first_bytes);

// The most header fields a request may have (each costs two strings beyond its bytes).
constexpr std::size_t max_fields = 100;

// Reads one request head (request line and header fields up to the empty line) from bytes fed
// as they arrive. Both CRLF and a bare LF end a line. One thread at a time.
//
// Limits: the head, its final empty line included, may be max_head bytes; the reader fails
// with 431 as soon as byte max_head + 1 arrives without the head having ended, and also past
// max_fields fields. Lines are checked as each one ends, so the outcome does not depend on
// how the bytes are cut into feeds. Memory: at most the head's bytes (in the request, the line
// being read and the per-field overhead) plus max_head bytes of rest().
class RequestReader {
 public:
  explicit RequestReader(std::size_t max_head = 8192);

  enum class State { incomplete, complete, failed };
  // Takes the next bytes. Once complete or failed, further bytes (those after the head in the
  // same feed too) are kept in rest(), up to max_head of them; more are dropped.
  State feed(std::string_view bytes);
  State state() const { return state_; }

  // When complete: method (a token), target (starts with '/', visible ASCII), version
  // ("HTTP/1.0" or "HTTP/1.1"), and the fields. Partly filled before that.
  const Request& request() const { return request_; }
  // When failed:
  //   431: head over max_head bytes, or over max_fields fields;
  //   400: malformed: request line not "method SP target SP version", method not a token,
  //        target not starting with '/' or with bytes outside visible ASCII, version not
  //        HTTP/d.d, a field line without ':', a field name not a token (space before the
  //        ':' included), obs-fold (a line starting with SP or HTAB), a bare CR, a NUL, a
  //        control character in a field value;
  //   505: a version HTTP/d.d other than HTTP/1.0 and HTTP/1.1.
  // 0 otherwise.
  int status() const { return status_; }
  // When failed: why, for people and logs ("header line without ':'").
  const std::string& detail() const { return detail_; }
  // The bytes after the head (pipelined requests, or a WebSocket client's first frames), at
  // most max_head.
  std::string_view rest() const { return rest_; }
  // The head's size so far (the whole head once complete).
  std::size_t head_size() const { return head_size_; }
  std::size_t max_head() const { return max_head_; }

 private:
  void take_line(std::string_view line);  // one line of the head, without its line end
  void take_request_line(std::string_view line);
  void take_field_line(std::string_view line);
  void fail(int status, std::string detail);
  void keep_rest(std::string_view bytes);

  std::size_t max_head_;
  State state_ = State::incomplete;
  std::size_t head_size_ = 0;  // bytes of the head taken in, the current line's included
  std::string line_;           // the line being read, up to its LF
  bool have_request_line_ = false;
  Request request_;
  int status_ = 0;
  std::string detail_;
  std::string rest_;
};

// A whole response: the status line, `headers` (names are tokens, values hold no CR, LF or
// NUL), Content-Length (always, 0 included, but for 1xx and 204 which RFC 9110 8.6 forbids it),
// the empty line, and `body` unless head_only (a HEAD request) or the status has no body
// (1xx, 204). `headers` must not hold Content-Length.
std::string response(int status, const Fields& headers, std::string_view body, bool head_only = false);

// "OK", "Switching Protocols", "Upgrade Required", ...; "" for a status it does not know.
std::string_view reason_phrase(int status);

// A response head as a client reads it.
struct Response {
  std::string version;  // "HTTP/1.1"
  int status = 0;
  std::string reason;
  Fields headers;
  std::optional<std::string> header(std::string_view name) const { return field_value(headers, name); }
  bool header_has_token(std::string_view name, std::string_view token) const {
    return field_has_token(headers, name, token);
  }
};

// Parses a response head: status line and fields (CRLF or LF line ends), up to the empty line
// or the end of `head`; anything after the empty line is ignored. nullopt if malformed (by the
// RequestReader's rules for fields; the status line is "HTTP/d.d SP 3DIGIT [SP reason]").
std::optional<Response> parse_response_head(std::string_view head);

}  // namespace chat::http
