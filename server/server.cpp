#include "server/server.hpp"

#include "common/log.hpp"
#include "server/session.hpp"

#include <chrono>
#include <thread>

namespace chat {

Server::Server(ServerConfig config)
    : config_(std::move(config)),
      transcript_(config_.log_file),
      room_(config_, transcript_, stats_, writers_),  // keeps a reference; writers_ is built next
      writers_(config_, room_.history(), stats_),
      web_(config_),
      listener_(std::make_unique<Listener>(io_, config_, room_, sessions_, writers_, stats_,
                                           config_.web ? &web_ : nullptr)),
      poller_(config_, sessions_, stats_) {}

Server::~Server() { stop(); }

void Server::start() {
  const auto ep = local_endpoint();
  // Exactly this line, first: scripts and tests read the port from it (--port 0).
  log_raw("chatserver listening on " + ep.address().to_string() + ":" + std::to_string(ep.port()));
  log_info("max ", config_.max_clients, " clients, lines up to ", config_.max_line, " bytes, keepalive ",
           format_keepalive(config_.keepalive), ", poll every ", format_duration(config_.poll_interval), ", ",
           config_.writers, " writer thread", config_.writers == 1 ? "" : "s",
           config_.web ? ", the web page and its WebSocket on the same port" : "");
  transcript_.note("*** chatserver started on " + ep.address().to_string() + ":" + std::to_string(ep.port()));
  writers_.start();
  poller_.start();
  listener_->start();
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
  writers_.stop();       // lets go of every session it still held
  sessions.clear();
  sessions_.take_all();  // destroyed here: each ~Session joins its reader
  transcript_.stop();
  log_info("stopped");
}

}  // namespace chat
