#include "server/server.hpp"

#include "common/log.hpp"
#include "common/net.hpp"
#include "server/session.hpp"
#include "server/tls_transport.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include <unistd.h>

namespace chat {
namespace {

std::unique_ptr<TlsServer> load_tls(const ServerConfig& config) {
  if (config.tls_cert.empty()) return nullptr;
  std::string error;
  auto tls = TlsServer::load(config.tls_cert, config.tls_key, error);
  if (!tls) throw std::runtime_error("cannot start TLS: " + error);
  return tls;
}

}  // namespace

Server::Server(ServerConfig config)
    : config_(std::move(config)),
      transcript_(config_.log_file),
      archive_(ArchiveOptions{config_.db, std::max<std::size_t>(4096, config_.history), config_.history_keep_rows,
                              config_.history_keep_age}),
      room_(config_, transcript_, stats_, writers_, archive_),  // keeps a reference; writers_ is built next
      writers_(config_, room_.history(), stats_),
      web_(config_),
      tls_(load_tls(config_)),
      listener_(std::make_unique<Listener>(io_, config_, room_, sessions_, writers_, stats_,
                                           config_.web ? &web_ : nullptr, tls_.get())),
      poller_(config_, sessions_, stats_) {
  if (config_.redis.empty()) return;
  BackplaneOptions o;
  o.url = parse_redis_url(config_.redis);
  o.room = config_.room;
  o.instance_timeout = config_.instance_timeout;
  o.resume_window = config_.resume_window;  // a lost instance's seats are held this long
  o.id_floor = archive_.last_id();  // the ids this server's clients hold stay below the room's next ones
  o.preload = 10'000;  // the room's recent past, for newcomers' history and resumes here
  // How the others name this server in an instance-lost LEAVE: host:port, with the host's name
  // when it listens on every address.
  const auto ep = listener_->local_endpoint();
  std::string host = ep.address().to_string();
  if (ep.address().is_unspecified()) {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) == 0) host = name;
  }
  o.label = host + ":" + std::to_string(ep.port());
  try {
    backplane_ = std::make_unique<Backplane>(
        std::move(o), Backplane::Callbacks{
                          [this](std::vector<StreamEvent> events) { room_.enter(std::move(events)); },
                          [this](bool whole, std::string detail) { room_.link_changed(whole, detail); },
                          [this] { room_.announce_members(); },
                      });
  } catch (const RedisError& e) {
    throw RedisError(std::string("cannot reach Redis (--redis): ") + e.what());
  }
  room_.share(*backplane_, backplane_->start_roster(), backplane_->take_start_events(), backplane_->start_id());
}

Server::~Server() { stop(); }

namespace {

// "192.168.1.20:15600" as a browser wants it ("[fd00::2]:15600" for IPv6).
std::string host_port(const asio::ip::address& a, std::uint16_t port) {
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(port);
}

// How to join at `a`: "http://192.168.1.20:15600/ (a browser) or nc 192.168.1.20 15600"; with
// TLS, https:// and chatclient --tls (and nc no more, with --tls-only).
std::string how_to_join(const asio::ip::address& a, std::uint16_t port, bool web, bool tls, bool tls_only) {
  const std::string nc = "nc " + a.to_string() + " " + std::to_string(port);
  const std::string tls_client = "chatclient --tls --host " + a.to_string() + " --port " + std::to_string(port);
  if (tls) {
    const std::string programs = tls_client + (tls_only ? "" : ", or " + nc);
    return web ? "at https://" + host_port(a, port) + "/ (a browser) or " + programs : "with " + programs;
  }
  return web ? "at http://" + host_port(a, port) + "/ (a browser) or " + nc : "with " + nc;
}

}  // namespace

void Server::start() {
  const auto ep = local_endpoint();
  // Exactly this line, first: scripts and tests read the port from it (--port 0). A host name
  // is named after the address it stood for, with the addresses not listened on.
  std::string listening = "chatserver listening on " + ep.address().to_string() + ":" + std::to_string(ep.port());
  std::error_code numeric;
  asio::ip::make_address(config_.bind, numeric);
  if (numeric) {
    const auto& all = listener_->bind_addresses();
    listening += " (" + config_.bind;
    for (std::size_t i = 1; i < all.size(); ++i) {
      listening += (i == 1 ? "; not on its other address" + std::string(all.size() > 2 ? "es " : " ") : ", ") +
                   all[i].to_string();
    }
    listening += ")";
  }
  log_raw(listening);
  if (ep.address().is_unspecified()) announce_addresses(ep);
  log_info("max ", config_.max_clients, " clients, lines up to ", config_.max_line, " bytes, keepalive ",
           format_keepalive(config_.keepalive), ", poll every ", format_duration(config_.poll_interval), ", ",
           config_.writers, " writer thread", config_.writers == 1 ? "" : "s",
           config_.web ? ", the web page and its WebSocket on the same port" : "");
  if (!config_.tls_made.empty()) log_info(config_.tls_made);
  if (tls_) {
    log_info("TLS on the same port", config_.tls_only ? " (and only TLS: --tls-only)" : "", ": ", tls_->describe());
  }
  if (archive_.on_disk()) {
    log_info("history in ", archive_.path(), " (--db; run ", archive_.run(), "), ", config_.history,
             " events shown to a newcomer, seats held ", format_duration(config_.resume_window), " for a resume");
    if (const auto held = room_.held_seats(); held > 0) log_info(held, " seat(s) from the last run may resume");
  } else {
    log_info("history in memory only (--db none): lost on restart; seats held ",
             format_duration(config_.resume_window), " for a resume");
  }
  transcript_.note("*** chatserver started on " + ep.address().to_string() + ":" + std::to_string(ep.port()));
  // A write that fails (disk full) or works again is told to everyone, as a room notice: the
  // room goes on, but people should know their words are not being kept.
  archive_.on_trouble([this](std::string text) { room_.notice(text); });
  archive_.start();
  if (backplane_) {
    log_info("one room with the other chatservers on ", parse_redis_url(config_.redis).display(), " (room ",
             config_.room, ", ", backplane_->start_roster().size(), " in it now; a silent server is lost after ",
             format_duration(config_.instance_timeout), ")");
    backplane_->start();
  }
  writers_.start();
  poller_.start();
  listener_->start();
}

void Server::announce_addresses(const asio::ip::tcp::endpoint& ep) const {
  // 0.0.0.0 takes IPv4 clients only; :: takes both (Linux's default, net.ipv6.bindv6only = 0).
  std::vector<asio::ip::address> reachable;
  for (const auto& a : network_addresses()) {
    if (a.is_v4() || ep.address().is_v6()) reachable.push_back(a);
  }
  const auto port = ep.port();
  if (reachable.empty()) {
    log_info("only this machine can join for now (it has no network address but loopback), ",
             how_to_join(asio::ip::address_v4::loopback(), port, config_.web, tls_ != nullptr, config_.tls_only));
  } else {
    log_info("people on your network can join ", how_to_join(reachable.front(), port, config_.web, tls_ != nullptr, config_.tls_only));
    std::string others;
    for (std::size_t i = 1; i < reachable.size(); ++i) others += (i == 1 ? "" : ", ") + reachable[i].to_string();
    if (!others.empty()) log_info("this machine's other addresses work too: ", others);
  }
  log_info("to keep the chat to this machine: --bind 127.0.0.1");
}

void Server::reload_tls() {
  if (!tls_) return;
  std::string error;
  if (tls_->reload(error)) {
    log_info("TLS certificate read again: ", tls_->describe());
  } else {
    log_error("TLS certificate not reloaded (the old one stays): ", error);
  }
}

void Server::stop() {
  if (stopped_) return;
  stopped_ = true;
  using Clock = std::chrono::steady_clock;
  listener_->stop();  // no new sessions from here on
  room_.close();      // no LEAVE storm: everybody is leaving
  auto sessions = sessions_.snapshot();
  log_info("shutting down: ", sessions.size(), " clients");
  for (auto& s : sessions) s->end(LeaveCause::shutdown, "server shutting down", "shutdown");
  // The writers send the BYE and a FIN; give them a moment, then cut off whoever is not reading.
  const auto deadline = Clock::now() + std::min<Clock::duration>(config_.goodbye_timeout, std::chrono::seconds(1));
  for (auto& s : sessions) {
    while (!s->finished() && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (!s->finished()) s->force_close();
  }
  poller_.stop();
  // After room_.close() queued this instance's members' LEAVEs: they go out, then it deregisters.
  if (backplane_) backplane_->stop();
  writers_.stop();       // lets go of every session it still held
  sessions.clear();
  sessions_.take_all();  // destroyed here: each ~Session joins its reader
  transcript_.stop();
  archive_.stop();       // the last batch, and the seats close() kept for a restart
  log_info("stopped");
}

}  // namespace chat
