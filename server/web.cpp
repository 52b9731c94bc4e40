#include "server/web.hpp"

#include "common/log.hpp"
#include "common/websocket.hpp"
#include "server/session.hpp"
#include "server/websocket_framing.hpp"
#include "web/web_assets.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <memory>
#include <utility>
#include <vector>

namespace chat {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr std::size_t max_head = 8192;                // request line and headers (else 431)
constexpr std::size_t max_file = 16u << 20;           // a file under --web-root
// How long a request for a page's file marks its address as a browser's: a browser uses or
// closes its spare connections within seconds of a page load.
constexpr auto browser_memory = std::chrono::seconds(15);
constexpr std::size_t max_browsers = 4096;            // addresses remembered

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Every answer carries these: the page runs only its own script (no inline script, nothing from
// elsewhere), no one may frame it, and no browser second-guesses a content type.
Headers common_headers(bool keep_alive) {
  return {{"Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"},
          {"X-Content-Type-Options", "nosniff"},
          {"Referrer-Policy", "no-referrer"},
          {"Cache-Control", "no-cache"},
          {"Connection", keep_alive ? "keep-alive" : "close"}};
}

WebSite::Answer plain(int status, std::string_view text, Headers extra = {}) {
  auto headers = common_headers(false);
  headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
  for (auto& h : extra) headers.push_back(std::move(h));
  WebSite::Answer a;
  a.status = status;
  a.bytes = http::response(status, headers, std::string(text) + "\n");
  return a;
}

std::string_view content_type_of(std::string_view path) {
  static const std::pair<std::string_view, std::string_view> types[] = {
      {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},   {".svg", "image/svg+xml"},
      {".png", "image/png"},                 {".ico", "image/x-icon"},
      {".json", "application/json"},         {".webmanifest", "application/manifest+json"},
      {".txt", "text/plain; charset=utf-8"},
  };
  for (const auto& [ext, type] : types) {
    if (path.size() > ext.size() && path.substr(path.size() - ext.size()) == ext) return type;
  }
  return "application/octet-stream";
}

// A path under --web-root that cannot leave it: letters, digits, '.', '-', '_' and '/', no
// segment starting with '.' (so neither ".." nor hidden files).
bool safe_path(std::string_view path) {
  if (path.empty() || path.front() != '/') return false;
  for (std::size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' || c == '/')) return false;
    if (c == '.' && path[i - 1] == '/') return false;
  }
  return true;
}

}  // namespace

// ---- WebSite --------------------------------------------------------------------------------

WebSite::Answer WebSite::answer(const http::Request& request) const {
  const bool head = request.method == "HEAD";
  if (request.method != "GET" && !head) {
    return plain(405, "only GET is served here", {{"Allow", "GET, HEAD"}});
  }
  if (!request.header("Host")) return plain(400, "a Host header is required");
  std::string_view path = request.target;
  path = path.substr(0, path.find('?'));
  if (path == "/ws") {
    if (head) return plain(405, "the WebSocket is opened with GET", {{"Allow", "GET"}});
    return websocket(request);
  }
  return file(request, path);
}

WebSite::Answer WebSite::websocket(const http::Request& request) const {
  // RFC 6455 4.2.1 and 4.2.2, in the order a client can do something about.
  if (!request.header_has_token("Upgrade", "websocket") || !request.header_has_token("Connection", "upgrade")) {
    return plain(426, "this is the chat's WebSocket: open it with a WebSocket client, or the page at /",
                 {{"Upgrade", "websocket"}, {"Sec-WebSocket-Version", "13"}});
  }
  if (request.header("Sec-WebSocket-Version").value_or("") != "13") {
    return plain(426, "only WebSocket version 13 is spoken here", {{"Sec-WebSocket-Version", "13"}});
  }
  const auto key = request.header("Sec-WebSocket-Key");
  if (!key || !ws::valid_client_key(*key)) return plain(400, "Sec-WebSocket-Key is missing or not 16 bytes in base64");
  // A page from another site must not join the room in its visitor's name: a browser always
  // says where the page that opens a WebSocket came from. Programs that send no Origin are not
  // browsers, and nobody's credentials ride along with them.
  if (const auto origin = request.header("Origin"); origin && !origin_allowed(*origin, *request.header("Host"))) {
    return plain(403, "this page may not join the chat: its origin " + *origin +
                          " is not this server (chatserver --web-origin allows others)");
  }
  Answer a;
  a.status = 101;
  a.upgrade = true;
  a.bytes = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
            ws::accept_key(*key) + "\r\n\r\n";
  return a;
}

void WebSite::note_browser(const asio::ip::address& address) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  if (browsers_.size() >= max_browsers && !browsers_.contains(address)) {
    std::erase_if(browsers_, [now](const auto& entry) { return now - entry.second > browser_memory; });
    // Still full (a flood of addresses): forgetting costs a slower greeting now and then, no more.
    if (browsers_.size() >= max_browsers) browsers_.clear();
  }
  browsers_[address] = now;
}

bool WebSite::browser_at(const asio::ip::address& address) const {
  std::lock_guard lock(mutex_);
  const auto it = browsers_.find(address);
  return it != browsers_.end() && std::chrono::steady_clock::now() - it->second < browser_memory;
}

bool WebSite::origin_allowed(std::string_view origin, std::string_view host) const {
  const auto o = lower(origin);
  for (const auto& allowed : config_.web_origins) {
    if (lower(allowed) == o) return true;
  }
  // Same host and port as the browser used to reach this server: "http://HOST[:PORT]" against
  // the Host header "HOST[:PORT]" (https too, for a TLS proxy in front).
  const auto h = lower(host);
  return o == "http://" + h || o == "https://" + h;
}

WebSite::Answer WebSite::file(const http::Request& request, std::string_view path) const {
  const bool head = request.method == "HEAD";
  const bool keep_alive = request.version == "HTTP/1.1" && !request.header_has_token("Connection", "close");
  std::string body;
  std::string_view type;
  if (!config_.web_root.empty()) {
    const std::string name = path == "/" ? "/index.html" : std::string(path);
    if (!safe_path(name)) return plain(404, "not found");
    std::ifstream in(config_.web_root + name, std::ios::binary);
    if (!in) return plain(404, "not found");
    body.assign(std::istreambuf_iterator<char>(in), {});
    if (body.size() > max_file) return plain(500, "file too large to serve");
    type = content_type_of(name);
  } else {
    const auto* asset = web::find_asset(path);
    if (asset == nullptr) return plain(404, "not found");
    body = asset->body;
    type = asset->content_type;
  }
  auto headers = common_headers(keep_alive);
  headers.emplace_back("Content-Type", std::string(type));
  Answer a;
  a.status = 200;
  a.keep_alive = keep_alive;
  a.bytes = http::response(200, headers, body, head);
  return a;
}

// ---- WebDoor (the reader thread) --------------------------------------------------------------

void WebDoor::await_first_bytes() {
  if (session_.wait_readable(first_bytes_wait)) return;
  if (site_.browser_at(session_.address())) {
    log_debug("no bytes within ", format_duration(first_bytes_wait), " from an address that spoke HTTP: waiting up to ",
              format_duration(patient_wait), " (a browser's spare connection?)");
    if (session_.wait_readable(patient_wait - first_bytes_wait)) return;
  }
  open_for_lines({});
}

void WebDoor::open_for_lines(std::string_view bytes) {
  state_ = State::open;
  session_.greet();
  if (!bytes.empty()) session_.receive(bytes);
}

void WebDoor::feed(std::string_view bytes) {
  if (state_ == State::sniffing) {
    sniffed_.append(bytes);
    switch (http::sniff(sniffed_)) {
      case http::Sniff::undecided: return;  // a few bytes at most: "GE", "GET "
      case http::Sniff::lines: {
        const std::string first = std::move(sniffed_);
        sniffed_.clear();
        open_for_lines(first);
        return;
      }
      case http::Sniff::http: {
        state_ = State::http;
        request_.emplace(max_head);
        bytes = sniffed_;
        break;
      }
    }
  }
  if (state_ != State::http) return;  // closed: what follows a last response is not read
  const std::string copy(bytes);     // request_ may be replaced below, and `bytes` may be sniffed_
  sniffed_.clear();
  switch (request_->feed(copy)) {
    case http::RequestReader::State::incomplete: return;
    case http::RequestReader::State::failed: {
      state_ = State::closed;
      log_info("HTTP request refused: ", request_->status(), " ", request_->detail());
      auto headers = common_headers(false);
      headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
      session_.end_with(LeaveCause::quit, "HTTP: " + std::to_string(request_->status()) + " " + request_->detail(),
                        http::response(request_->status(), headers, request_->detail() + "\n"));
      return;
    }
    case http::RequestReader::State::complete: handle_request(); return;
  }
}

void WebDoor::handle_request() {
  const http::Request request = request_->request();
  const std::string rest(request_->rest());
  auto answer = site_.answer(request);
  // A page's files are fetched over several connections, some of them spares. (A WebSocket
  // never is: browsers open one connection for it and leave no spare.)
  if (!answer.upgrade) site_.note_browser(session_.address());
  ++requests_;
  log_info("HTTP ", request.method, " ", request.target, ": ", answer.status);
  if (answer.upgrade) {
    // The 101 goes out as it is; every line after it is a frame.
    session_.send_raw(std::move(answer.bytes));
    session_.upgrade(std::make_unique<WebSocketFraming>(session_.config().max_line));
    state_ = State::open;
    session_.greet();
    if (!rest.empty()) session_.receive(rest);
    return;
  }
  if (answer.keep_alive && requests_ < max_requests) {
    session_.send_raw(std::move(answer.bytes));
    request_.emplace(max_head);
    if (!rest.empty()) feed(rest);
    return;
  }
  state_ = State::closed;
  session_.end_with(LeaveCause::quit, "HTTP " + request.method + " " + request.target + ": " + std::to_string(answer.status),
                    std::move(answer.bytes));
}

}  // namespace chat
