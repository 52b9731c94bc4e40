#include "common/http.hpp"

#include <algorithm>
#include <cassert>

namespace chat::http {

namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

bool is_tchar(char c) {
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string_view trim(std::string_view s) {
  const auto blank = [](char c) { return c == ' ' || c == '\t'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

// "HTTP/d.d", case-sensitive (RFC 9112 2.3).
bool is_http_version(std::string_view v) {
  return v.size() == 8 && v.substr(0, 5) == "HTTP/" && is_digit(v[5]) && v[6] == '.' && is_digit(v[7]);
}

// The line of a head without its line end; a CR left inside is a bare CR.
std::string_view strip_cr(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// What is wrong with a line's bytes, whatever the line: a bare CR or a NUL.
std::optional<std::string> bad_bytes(std::string_view line) {
  if (line.find('\r') != std::string_view::npos) return "bare CR in the head";
  if (line.find('\0') != std::string_view::npos) return "NUL byte in the head";
  return std::nullopt;
}

// One field line into `fields`; the reason it is malformed, if it is.
std::optional<std::string> parse_field_line(std::string_view line, Fields& fields) {
  // RFC 9112 5.2: a server must reject obs-fold or replace it; rejecting is the safe half.
  if (line.front() == ' ' || line.front() == '\t') return "obs-fold (a header line starting with whitespace)";
  const auto colon = line.find(':');
  if (colon == std::string_view::npos) return "header line without ':'";
  const std::string_view name = line.substr(0, colon);
  // A space before the ':' lands here too: RFC 9112 5.1 requires a 400 for it, as proxies
  // have read such names differently (request smuggling).
  if (!is_token(name)) return "header name is not a token";
  const std::string_view value = trim(line.substr(colon + 1));
  for (const char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return "control character in header " + std::string(name);
  }
  fields.emplace_back(name, value);
  return std::nullopt;
}

}  // namespace

std::optional<std::string> field_value(const Fields& fields, std::string_view name) {
  std::optional<std::string> out;
  for (const auto& [n, v] : fields) {
    if (!iequals(n, name)) continue;
    if (out) {
      *out += ", ";
      *out += v;
    } else {
      out = v;
    }
  }
  return out;
}

bool field_has_token(const Fields& fields, std::string_view name, std::string_view token) {
  for (const auto& [n, v] : fields) {
    if (!iequals(n, name)) continue;
    std::string_view list = v;
    for (;;) {
      const auto comma = list.find(',');
      if (iequals(trim(list.substr(0, comma)), token)) return true;
      if (comma == std::string_view::npos) break;
      list.remove_prefix(comma + 1);
    }
  }
  return false;
}

bool is_token(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar); }

Sniff sniff(std::string_view first_bytes) {
  constexpr std::size_t max_method = 16;
  std::size_t i = 0;
  while (i < first_bytes.size() && i <= max_method && first_bytes[i] >= 'A' && first_bytes[i] <= 'Z') ++i;
  if (i > max_method) return Sniff::lines;
  if (i == first_bytes.size()) return Sniff::undecided;  // empty, or letters so far
  if (i == 0 || first_bytes[i] != ' ') return Sniff::lines;
  if (i + 1 == first_bytes.size()) return Sniff::undecided;
  return first_bytes[i + 1] == '/' ? Sniff::http : Sniff::lines;
}

RequestReader::RequestReader(std::size_t max_head) : max_head_(max_head) {}

RequestReader::State RequestReader::feed(std::string_view bytes) {
  while (state_ == State::incomplete && !bytes.empty()) {
    const auto lf = bytes.find('\n');
    const std::size_t take = lf == std::string_view::npos ? bytes.size() : lf + 1;
    // Whatever these bytes are, the head would pass max_head with them: its end, if it comes,
    // is too late. Checked before the line is read, so a long malformed line is a 431 however
    // it is cut; the head's first max_head bytes are dropped, rest() starts after them.
    if (const std::size_t room = max_head_ - head_size_; take > room) {
      head_size_ = max_head_;
      bytes.remove_prefix(room);
      fail(431, "request head over " + std::to_string(max_head_) + " bytes");
      break;
    }
    line_.append(bytes.substr(0, take));
    head_size_ += take;
    bytes.remove_prefix(take);
    if (lf == std::string_view::npos) break;
    line_.pop_back();  // the LF
    take_line(line_);
    line_.clear();
  }
  if (state_ != State::incomplete) keep_rest(bytes);
  return state_;
}

void RequestReader::keep_rest(std::string_view bytes) { rest_.append(bytes.substr(0, max_head_ - rest_.size())); }

void RequestReader::take_line(std::string_view raw) {
  const std::string_view line = strip_cr(raw);
  if (const auto bad = bad_bytes(line)) return fail(400, *bad);
  if (!have_request_line_) {
    have_request_line_ = true;
    return take_request_line(line);
  }
  if (line.empty()) {
    state_ = State::complete;
    std::string().swap(line_);
    return;
  }
  take_field_line(line);
}

void RequestReader::take_request_line(std::string_view line) {
  // request-line = method SP request-target SP HTTP-version (RFC 9112 3), single spaces.
  const auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return fail(400, "bad request line");
  const std::string_view method = line.substr(0, sp1);
  if (!is_token(method)) return fail(400, "method is not a token");
  const std::string_view after = line.substr(sp1 + 1);
  const auto sp2 = after.find(' ');
  if (sp2 == std::string_view::npos) return fail(400, "bad request line");
  const std::string_view target = after.substr(0, sp2);
  const std::string_view version = after.substr(sp2 + 1);
  if (target.empty() || target.front() != '/') return fail(400, "target does not start with '/'");
  for (const char c : target) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return fail(400, "bad character in the target");
  }
  if (!is_http_version(version)) return fail(400, "bad HTTP version");
  if (version != "HTTP/1.1" && version != "HTTP/1.0") {
    return fail(505, "HTTP version " + std::string(version.substr(5)) + " not supported");
  }
  request_.method = method;
  request_.target = target;
  request_.version = version;
}

void RequestReader::take_field_line(std::string_view line) {
  if (request_.headers.size() == max_fields) {
    return fail(431, "more than " + std::to_string(max_fields) + " header fields");
  }
  if (const auto problem = parse_field_line(line, request_.headers)) fail(400, *problem);
}

void RequestReader::fail(int status, std::string detail) {
  state_ = State::failed;
  status_ = status;
  detail_ = std::move(detail);
  std::string().swap(line_);
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
  }
  return "";
}

std::string response(int status, const Fields& headers, std::string_view body, bool head_only) {
  // RFC 9110 8.6 and 6.4.1: no Content-Length and no content in a 1xx or 204 response.
  const bool has_content = !(status < 200 || status == 204);
  std::string out = "HTTP/1.1 " + std::to_string(status) + " ";
  out += reason_phrase(status);
  out += "\r\n";
  for (const auto& [name, value] : headers) {
    assert(is_token(name) && value.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos);
    assert(!iequals(name, "Content-Length"));
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  if (has_content) out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  out += "\r\n";
  if (has_content && !head_only) out += body;
  return out;
}

std::optional<Response> parse_response_head(std::string_view head) {
  Response r;
  bool first = true;
  while (!head.empty()) {
    const auto lf = head.find('\n');
    const std::string_view line = strip_cr(head.substr(0, lf));
    head.remove_prefix(lf == std::string_view::npos ? head.size() : lf + 1);
    if (bad_bytes(line)) return std::nullopt;
    if (first) {
      // status-line = HTTP-version SP status-code SP [reason-phrase]; the second SP is often
      // left out when there is no reason, so it is optional here.
      first = false;
      if (line.size() < 12 || !is_http_version(line.substr(0, 8)) || line[8] != ' ') return std::nullopt;
      if (!is_digit(line[9]) || !is_digit(line[10]) || !is_digit(line[11])) return std::nullopt;
      if (line.size() > 12 && line[12] != ' ') return std::nullopt;
      r.version = line.substr(0, 8);
      r.status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
      if (line.size() > 13) r.reason = line.substr(13);
      continue;
    }
    if (line.empty()) break;
    if (parse_field_line(line, r.headers)) return std::nullopt;
  }
  if (first) return std::nullopt;
  return r;
}

}  // namespace chat::http
