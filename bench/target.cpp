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
  if (options.port == 0) {
    if (options.protocol != Protocol::chat) {
      throw std::runtime_error("--protocol " + std::string(to_string(options.protocol)) +
                               " needs --port of a running server (chatbench starts only chatserver)");
    }
    if (host_ != "127.0.0.1") throw std::runtime_error("--host needs --port: chatbench starts chatserver on 127.0.0.1");
    std::vector<std::string> args{"--log-level", "warn", "--max-clients",
                                  std::to_string(std::max<std::size_t>(clients + 100, 1000))};
    args.insert(args.end(), options.server_args.begin(), options.server_args.end());
    server_ = std::make_unique<ServerProcess>(options.server_path, args);
    port_ = server_->port();
    pid_ = server_->pid();
    if (label_.empty()) label_ = "chatserver";
  } else if (label_.empty()) {
    label_ = protocol_name(options.protocol, options.web_share) + " server at " + host_ + ":" + std::to_string(port_);
  }
}

Target::~Target() = default;  // ServerProcess kills what it started

std::optional<ProcSample> Target::sample() const { return sample_process(pid_); }

std::string Target::stop() {
  if (!server_ || stopped_) return {};
  stopped_ = true;
  const int code = server_->stop();
  if (code == 0) return {};
  return "chatserver exited with status " + std::to_string(code);
}

std::vector<std::string> Target::stderr_tail() const {
  return server_ ? server_->stderr_tail() : std::vector<std::string>{};
}

SwarmOptions Target::swarm_options(std::size_t max_in_progress) const {
  SwarmOptions so;
  so.host = host_;
  so.port = port_;
  so.protocol = protocol_;
  so.web_share = web_share_;
  so.max_in_progress = max_in_progress;
  return so;
}

}  // namespace chat::bench
