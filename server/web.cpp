#include "server/web.hpp"

#include "common/log.hpp"
#include "common/wording.hpp"
#include "common/websocket.hpp"
#include "server/session.hpp"
#include "server/websocket_framing.hpp"
#include "web/web_assets.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
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

// A short answer in words, after which the connection closes.
WebSite::Answer plain(int status, std::string_view text, Headers extra = {}) {
  auto headers = common_headers(false);
  if (status == 426) headers.back().second = "Upgrade, close";  // RFC 9110 7.8: Upgrade is named in Connection
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
// empty segment and no segment starting with '.' (so neither ".." nor hidden files).
bool safe_path(std::string_view path) {
  if (path.empty() || path.front() != '/' || path.back() == '/') return false;
  for (std::size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' || c == '/')) return false;
    if ((c == '.' || c == '/') && i > 0 && path[i - 1] == '/') return false;
  }
  return true;
}

}  // namespace

// ---- WebSite --------------------------------------------------------------------------------

WebSite::Answer WebSite::answer(const http::Request& request, bool may_keep_alive) const {
  const bool head = request.method == "HEAD";
  if (request.method != "GET" && !head) {
    return plain(405, "only GET is served here", {{"Allow", "GET, HEAD"}});
  }
  if (!request.header("Host")) return plain(400, "a Host header is required");
  // A GET has no body; one that says it has would leave its body to be read as the next
  // request (RFC 9112 6.3).
  if (request.header("Transfer-Encoding") || request.header("Content-Length").value_or("0") != "0") {
    return plain(400, "a request body is not accepted here");
  }
  std::string_view path = request.target;
  path = path.substr(0, path.find('?'));
  if (path == "/ws") {
    if (head) return plain(405, "the WebSocket is opened with GET", {{"Allow", "GET"}});
    return websocket(request);
  }
  return file(request, path, may_keep_alive);
}

WebSite::Answer WebSite::websocket(const http::Request& request) const {
  // RFC 6455 4.2.1 and 4.2.2, in the order a client can do something about.
  if (!request.header_has_token("Upgrade", "websocket") || !request.header_has_token("Connection", "upgrade")) {
    return plain(426, "this is the chat's WebSocket: open it with a WebSocket client, or the page at /",
                 {{"Upgrade", "websocket"}, {"Sec-WebSocket-Version", "13"}});
  }
  if (request.version != "HTTP/1.1") return plain(400, "a WebSocket is opened with HTTP/1.1");
  if (request.header("Sec-WebSocket-Version").value_or("") != "13") {
    return plain(426, "only WebSocket version 13 is spoken here",
                 {{"Upgrade", "websocket"}, {"Sec-WebSocket-Version", "13"}});
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

WebSite::Answer WebSite::file(const http::Request& request, std::string_view path, bool may_keep_alive) const {
  const bool head = request.method == "HEAD";
  const bool keep_alive =
      may_keep_alive && request.version == "HTTP/1.1" && !request.header_has_token("Connection", "close");
  std::string body;
  std::string_view type;
  if (path == "/wording.js") {
    // The words people read (common/wording.hpp), made from the same tables as the server's
    // text mode and chatclient's; served with or without --web-root.
    body = wording::wording_script();
    type = "text/javascript; charset=utf-8";
  } else if (!config_.web_root.empty()) {
    const std::string name = path == "/" ? "/index.html" : std::string(path);
    if (!safe_path(name)) return plain(404, "not found");
    // Only a regular file of a size we serve: a directory or a device is not a page.
    const std::filesystem::path file = config_.web_root + name;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec)) return plain(404, "not found");
    const auto size = std::filesystem::file_size(file, ec);
    if (ec || size > max_file) return plain(500, "the file cannot be served");
    std::ifstream in(file, std::ios::binary);
    body.resize(size);
    if (!in || !in.read(body.data(), static_cast<std::streamsize>(size))) return plain(500, "the file cannot be read");
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

void WebDoor::await_first_bytes(std::chrono::milliseconds waited) {
  if (session_.wait_readable(std::max(first_bytes_wait - waited, std::chrono::milliseconds(0)))) return;
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
  // A loop, not a recursion: a client may pipeline many requests in one segment, and the
  // reader's stack is small.
  std::string pending(bytes);
  while (!session_.ended()) {
    if (state_ == State::sniffing) {
      sniffed_ += pending;
      switch (http::sniff(sniffed_)) {
        case http::Sniff::undecided: return;  // a few bytes at most: "GE", "GET "
        case http::Sniff::lines: {
          const std::string first = std::move(sniffed_);
          sniffed_.clear();
          open_for_lines(first);
          return;
        }
        case http::Sniff::http:
          state_ = State::http;
          // From now on a polite end from any thread (shutdown, the handshake timeout) sends
          // no BYE line, which a browser would read as the response to its next request.
          session_.upgrade(std::make_unique<HttpFraming>());
          request_.emplace(max_head);
          pending = std::move(sniffed_);
          sniffed_.clear();
          break;
      }
    }
    if (state_ != State::http || pending.empty()) return;  // closed: what follows a last response is not read
    switch (request_->feed(pending)) {
      case http::RequestReader::State::incomplete: return;
      case http::RequestReader::State::failed: {
        state_ = State::closed;
        log_info("HTTP request refused: ", request_->status(), " ", request_->detail());
        session_.end_with(LeaveCause::quit, "HTTP: " + std::to_string(request_->status()) + " " + request_->detail(),
                          plain(request_->status(), request_->detail()).bytes);
        return;
      }
      case http::RequestReader::State::complete: break;
    }
    pending = std::string(request_->rest());
    handle_request();
    if (state_ == State::open) {
      if (!pending.empty()) session_.receive(pending);  // WebSocket frames sent with the upgrade
      return;
    }
  }
}

void WebDoor::handle_request() {
  const http::Request request = request_->request();
  ++requests_;
  auto answer = site_.answer(request, requests_ < max_requests);
  // A page's files are fetched over several connections, some of them spares. (A WebSocket
  // never is: browsers open one connection for it and leave no spare.)
  if (!answer.upgrade) site_.note_browser(session_.address());
  log_info(session_.tls() ? "HTTPS " : "HTTP ", request.method, " ", request.target, ": ", answer.status);
  if (answer.upgrade) {
    // The 101 goes out as it is; every line after it is a frame.
    session_.send_raw(std::move(answer.bytes));
    session_.upgrade(std::make_unique<WebSocketFraming>(session_.config().max_line));
    state_ = State::open;
    session_.greet();
    return;
  }
  if (answer.keep_alive) {
    // One answer at a time: the next request is read once this one has gone out (a client
    // that pipelines is slowed by its own socket, and the outbox holds one answer at most).
    session_.send_raw(std::move(answer.bytes));
    session_.outbox().wait_below(0, [this] { return session_.ended(); });
    request_.emplace(max_head);
    return;
  }
  state_ = State::closed;
  session_.end_with(LeaveCause::quit, "HTTP " + request.method + " " + request.target + ": " + std::to_string(answer.status),
                    std::move(answer.bytes));
}

}  // namespace chat
