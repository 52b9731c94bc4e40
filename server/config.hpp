// ServerConfig: every chatserver setting, and the command line that fills it.
//
// Made once by the main thread before any other thread starts; read-only afterwards, so
// every thread may read it without a lock.
#pragma once

#include "common/log.hpp"
#include "common/units.hpp"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace chat {

// How the poller asks "readable within 1 ms?" of every socket: one poll(2) over all of them
// (PoshChat's Poll, as taught), or one epoll_wait over a set that holds them all (the same
// answer; the kernel's work grows with the sockets that are ready, not with all of them), or
// (auto, the default) poll while the room is small and epoll once it is large.
enum class ProbeMethod { auto_, poll, epoll };

// --probe auto: the poller switches to epoll above this many sockets and back to poll below
// three quarters of it (so a room at the edge does not switch on every sweep). Measured in
// docs/performance.md ("10,000 clients"): below it, poll(2)'s sweep is already well inside the
// 5 ms target; above it, its cost per socket grows past what epoll costs in all.
inline constexpr std::size_t default_probe_auto_threshold = 1000;

struct ServerConfig {
  std::string bind = "0.0.0.0";       // an address, or a host name (the listener takes its first address)
  std::uint16_t port = 15600;          // 0: any free port (read it back from the first log line)
  std::size_t max_clients = 1000;      // connected clients, joined or not
  std::size_t max_line = 4096;         // bytes per line, not counting CR LF
  Millis handshake_timeout{30'000};    // connect to joined
  std::string log_file;                // transcript; empty: none
  LogLevel log_level = LogLevel::info;

  // Dead-peer detection (docs/detection.md).
  Millis poll_interval{100};           // the poller's sweep period
  ProbeMethod probe = ProbeMethod::auto_;
  std::size_t probe_auto_threshold = default_probe_auto_threshold;  // not an option: the tests lower it
  KeepaliveConfig keepalive{};         // 10s,2s,3 and TCP_USER_TIMEOUT = 16 s
  Millis ping_interval{15'000};        // quiet time before a protocol client gets PING; 0: no heartbeat
  Millis ping_timeout{10'000};         // no line at all this long after a PING: no-pong
  std::size_t send_queue = 1 << 20;    // bytes a client may be behind (queued here and in the kernel) before too-slow
  Millis send_timeout{30'000};         // a write making no progress this long: too-slow
  Millis goodbye_timeout{2'000};       // how long a leaving client's last lines may take

  // Delivery (docs/threads.md).
  std::size_t writers = 2;             // writer threads sending every client its bytes

  // Limits (docs/protocol.md, "Limits"): one client, or one address, cannot take the room.
  double max_rate = 20;                // lines per second a client may send, sustained; 0: no flood control
  std::size_t max_burst = 50;          // lines a client may send at once before it is slowed
  Millis flood_grace{10'000};          // slowed without a break this long: leaves with cause flood
  std::size_t max_per_ip = 16;         // connections from one address; 0: no limit
  // --allow: only addresses in these ranges may connect ("10.0.0.0/8", checked and written in
  // that form by parse_config; the listener turns them into AddressRanges); empty: any.
  std::vector<std::string> allow;
  // --password-file: the room password's scrypt hash (server/password.hpp), read and checked by
  // parse_config ("" no password: anyone who reaches the port joins).
  std::string password_file;
  std::string password_hash;
  // --admin-password-file: the operators' password's hash, the same way (OPER, then KICK, BAN).
  std::string admin_password_file;
  std::string admin_password_hash;

  // TLS on the chat port (server/tls_transport.hpp): a connection that begins with a ClientHello
  // is TLS. Both files PEM, read again on SIGHUP; "" no TLS. --self-signed DIR fills them with
  // a certificate made (once) in DIR.
  std::string tls_cert;
  std::string tls_key;
  bool tls_only = false;               // clear-text connections are refused (tls-required)
  std::string tls_made;                // --self-signed: what was made now, for the log ("" nothing)

  // The web side (server/web.hpp): the page and its WebSocket on the chat port.
  bool web = true;
  std::string web_root;                // serve the page from here instead of the built-in copy
  std::vector<std::string> web_origins;  // other origins whose pages may open the WebSocket

  // History and resume (docs/reliability.md).
  std::string db;                      // the database file; "": memory only (--db none). The command
                                       // line's default is default_db_path(port); a library user's is none
  std::size_t history = 50;            // events a joining client is shown (HISTORY recent)
  std::uint64_t history_keep_rows = 0; // --history-keep N: keep at most N events; 0: no limit
  std::chrono::hours history_keep_age{0};  // --history-keep Nd: keep N days; 0: no limit
  Millis resume_window{120'000};       // a dropped client's seat (nickname, missed events) is held this long; 0: no resume

  // One room on several chatservers (docs/scale-out.md, server/backplane.hpp).
  std::string redis;                   // --redis URL; "": this server's room is its own
  std::string room = "main";           // --room: the shared room's name (its Redis keys)
  Millis instance_timeout{3000};       // --instance-timeout: a silent chatserver's members are lost after this

  // What the kernel may hold unsent for one client beyond what is in flight (TCP_NOTSENT_LOWAT),
  // a part of --send-queue: without a cap, Linux grows a non-reader's send buffer to ~4 MB, where
  // the server's queue never sees it and the too-slow rule cannot count it.
  std::size_t kernel_unsent_limit() const { return std::min<std::size_t>(send_queue / 4, 64 * 1024); }
};

// Where --db puts the database unless told: $XDG_STATE_HOME/chat/chat.db (or
// ~/.local/state/chat/), chat-PORT.db for another port than the default; "none" (memory only)
// for --port 0 and when neither HOME nor XDG_STATE_HOME is set.
std::string default_db_path(std::uint16_t port);

// Parses chatserver's command line. Returns the config, or the exit code to use right away
// (0 after --help / --version, 2 after a usage error: the message is already printed).
std::variant<ServerConfig, int> parse_server_args(int argc, const char* const* argv);

}  // namespace chat
