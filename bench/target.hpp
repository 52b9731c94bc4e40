// The server a side-by-side mode measures: a running one (--host/--port, any protocol, with
// --server-pid for the figures /proc gives), or a chatserver that chatbench starts itself on
// 127.0.0.1 port 0 when no port is given; or, with --instances N, N chatservers sharing one
// room through a redis-server (/usr/bin/redis-server) that chatbench starts on a unix socket in
// a temporary folder of its own (docs/scale-out.md). Client i then goes to instance i mod N.
//
// With TLS (--tls) the clients speak TLS (swarm.hpp); a chatserver started here gets
// `--self-signed DIR`, DIR a folder of this Target's own under $TMPDIR (bench/temp_dir.hpp),
// removed once the server has stopped. chatserver makes the key and certificate there at start.
//
// Threads: one thread creates, uses and destroys it (chatbench's main thread).
#pragma once

#include "bench/child_process.hpp"
#include "bench/proc_stats.hpp"
#include "bench/redis_server.hpp"
#include "bench/swarm.hpp"
#include "bench/temp_dir.hpp"
#include "bench/wire.hpp"

#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace chat::bench {

struct TargetOptions {
  std::string host = "127.0.0.1";
  int port = 0;                           // 0: start a chatserver here
  int pid = 0;                            // a running server's pid, for /proc (0: unknown)
  Protocol protocol = Protocol::chat;
  // The share of clients (0..1) that speak the chat protocol over a WebSocket (chat only): 1
  // for --protocol ws, 0.5 (or --web-share) for --protocol mixed. swarm.hpp says which ones.
  double web_share = 0;
  std::string label;                      // the name in reports; default: chatserver / host:port
  std::string server_path;                // the chatserver to start
  std::vector<std::string> server_args;   // extra options for it (--server-arg, repeatable)
  int instances = 1;                      // chatservers started here, sharing one room (--redis)
  bool tls = false;                       // the clients speak TLS (a server started here: --self-signed)
  // A server started here gets --self-signed even when the clients speak clear text (tls
  // false): the side-by-side runs (tls_compare.hpp) measure one server configuration.
  bool tls_server = false;
};

// The protocol as the command line names it: "chat", "ws" (every client a WebSocket), "mixed"
// (some of them), "line", "irc", "asio".
std::string protocol_name(Protocol protocol, double web_share);
// The same for a report: "ws", "mixed (50% ws, 50% chat)", ...
std::string describe_protocol(Protocol protocol, double web_share);

class Target {
 public:
  // Starts chatserver when options.port is 0, sized for `clients` connections. Throws
  // std::runtime_error when the options make no sense (a port-less non-chat protocol) or the
  // server does not start.
  Target(const TargetOptions& options, std::size_t clients);
  ~Target();

  const std::string& host() const { return host_; }
  std::uint16_t port() const { return port_; }
  const std::string& label() const { return label_; }
  int pid() const { return pid_; }  // 0: unknown
  bool tls() const { return tls_context_ != nullptr; }
  // Options for a Swarm aimed at this server (at instance `instance` mod N), in its protocol,
  // with at most `max_in_progress` connections being set up at once (0: all at once).
  SwarmOptions swarm_options(std::size_t max_in_progress, std::size_t instance = 0) const;
  std::size_t instances() const { return ports_.size(); }
  // With several instances: redis-server's CPU seconds so far (nullopt when not started here).
  std::optional<double> redis_cpu_seconds() const;
  bool started_here() const { return server_ != nullptr; }
  // The server's /proc figures now (with several instances: their sum); nullopt when a pid is
  // unknown or gone.
  std::optional<ProcSample> sample() const;
  // A server started here: SIGTERM, and its exit code (or a description of what went wrong);
  // empty when all is well or the server is not ours. Idempotent.
  std::string stop();
  // The last lines a server started here wrote to stderr.
  std::vector<std::string> stderr_tail() const;

 private:
  std::string host_;
  std::uint16_t port_ = 0;
  Protocol protocol_ = Protocol::chat;
  double web_share_ = 0;
  int pid_ = 0;
  std::string label_;
  tls::Context tls_context_;             // --tls: the clients' context (no verification)
  std::unique_ptr<TempDir> tls_dir_;     // --tls, server started here: its --self-signed DIR
                                         // (declared before the servers: removed after they end)
  std::unique_ptr<ServerProcess> server_;
  // --instances N > 1: the other N - 1 chatservers, and the redis-server they share.
  std::vector<std::unique_ptr<ServerProcess>> more_servers_;
  std::vector<std::uint16_t> ports_;
  std::unique_ptr<RedisServer> redis_;
  bool stopped_ = false;
};

}  // namespace chat::bench
