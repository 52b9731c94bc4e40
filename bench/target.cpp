#include "bench/target.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace chat::bench {

std::string protocol_name(Protocol protocol, double web_share) {
  if (protocol == Protocol::chat && web_share >= 1) return "ws";
  if (protocol == Protocol::chat && web_share > 0) return "mixed";
  return std::string(to_string(protocol));
}

std::string describe_protocol(Protocol protocol, double web_share) {
  const auto name = protocol_name(protocol, web_share);
  if (name != "mixed") return name;
  const auto percent = [](double share) {
    const double p = std::round(share * 1000) / 10;
    char text[32];
    std::snprintf(text, sizeof text, p == std::floor(p) ? "%.0f%%" : "%.1f%%", p);
    return std::string(text);
  };
  return "mixed (" + percent(web_share) + " ws, " + percent(1 - web_share) + " chat)";
}

Target::Target(const TargetOptions& options, std::size_t clients)
    : host_(options.host),
      port_(static_cast<std::uint16_t>(options.port)),
      protocol_(options.protocol),
      web_share_(options.web_share),
      pid_(options.pid),
      label_(options.label) {
  if (options.tls) {
    std::string error;
    tls_context_ = tls::client_context(error);
    if (!tls_context_) throw std::runtime_error("--tls: " + error);
  }
  if (options.port == 0) {
    if (options.protocol != Protocol::chat) {
      throw std::runtime_error("--protocol " + std::string(to_string(options.protocol)) +
                               " needs --port of a running server (chatbench starts only chatserver)");
    }
    if (host_ != "127.0.0.1") throw std::runtime_error("--host needs --port: chatbench starts chatserver on 127.0.0.1");
    std::vector<std::string> args{"--log-level", "warn", "--max-clients",
                                  std::to_string(std::max<std::size_t>(clients + 100, 1000))};
    if (options.instances > 1) {
      redis_ = std::make_unique<RedisServer>();  // of our own, on a unix socket, nothing saved
      args.insert(args.end(), {"--redis", redis_->url(), "--room", "bench", "--db", "none"});
    }
    if (options.tls || options.tls_server) {
      // A certificate of this run's own, made by chatserver itself (its --self-signed path);
      // the other instances find it there and reuse it.
      tls_dir_ = std::make_unique<TempDir>("chatbench-tls");
      args.insert(args.end(), {"--self-signed", tls_dir_->path()});
    }
    args.insert(args.end(), options.server_args.begin(), options.server_args.end());
    server_ = std::make_unique<ServerProcess>(options.server_path, args);
    port_ = server_->port();
    pid_ = server_->pid();
    ports_.push_back(port_);
    for (int i = 1; i < options.instances; ++i) {
      more_servers_.push_back(std::make_unique<ServerProcess>(options.server_path, args));
      ports_.push_back(more_servers_.back()->port());
    }
    if (label_.empty()) {
      label_ = options.instances > 1 ? std::to_string(options.instances) + " chatservers (one room, redis)" : "chatserver";
    }
  } else {
    if (options.instances > 1) throw std::runtime_error("--instances starts its chatservers itself: no --port");
    ports_.push_back(port_);
    if (label_.empty()) {
      label_ = protocol_name(options.protocol, options.web_share) + " server at " + host_ + ":" + std::to_string(port_);
    }
  }
}

Target::~Target() = default;  // ServerProcess and RedisServer end what they started

std::optional<ProcSample> Target::sample() const {
  auto sum = sample_process(pid_);
  for (const auto& s : more_servers_) {
    const auto one = sample_process(s->pid());
    if (!sum || !one) return std::nullopt;
    sum->rss_mib += one->rss_mib;
    sum->threads += one->threads;
    sum->cpu_seconds += one->cpu_seconds;
  }
  return sum;
}

std::optional<double> Target::redis_cpu_seconds() const {
  if (!redis_) return std::nullopt;
  const auto s = sample_process(redis_->pid());
  if (!s) return std::nullopt;
  return s->cpu_seconds;
}

std::string Target::stop() {
  if (!server_ || stopped_) return {};
  stopped_ = true;
  std::string error;
  int code = server_->stop();
  for (auto& s : more_servers_) code = std::max(code, s->stop());
  if (code != 0) error = "chatserver exited with status " + std::to_string(code);
  if (redis_) redis_->stop();
  tls_dir_.reset();  // the certificate and key go with the server
  return error;
}

std::vector<std::string> Target::stderr_tail() const {
  return server_ ? server_->stderr_tail() : std::vector<std::string>{};
}

SwarmOptions Target::swarm_options(std::size_t max_in_progress, std::size_t instance) const {
  SwarmOptions so;
  so.host = host_;
  so.port = ports_.empty() ? port_ : ports_[instance % ports_.size()];
  so.protocol = protocol_;
  so.web_share = web_share_;
  so.max_in_progress = max_in_progress;
  so.tls = tls_context_;
  return so;
}

}  // namespace chat::bench
