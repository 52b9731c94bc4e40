#include "server/config.hpp"

#include <CLI/CLI.hpp>

#include <iostream>

namespace chat {
namespace {

// An option whose text goes through one of common/units.hpp's parsers: the parser's own
// message becomes the usage error, the parsed value lands in `target`.
template <typename T, typename Parse>
CLI::Option* add_parsed(CLI::App& app, const std::string& name, T& target, const std::string& help, Parse parse,
                        const std::string& type, const std::string& default_text) {
  auto* opt = app.add_option_function<std::string>(
      name,
      [&target, name, parse](const std::string& text) {
        std::string error;
        auto value = parse(text, &error);
        if (!value) throw CLI::ValidationError(name, error);
        target = *value;
      },
      help);
  opt->type_name(type)->default_str(default_text);
  return opt;
}

CLI::Option* add_duration(CLI::App& app, const std::string& name, Millis& target, const std::string& help,
                          const std::string& default_text) {
  return add_parsed(app, name, target, help, [](std::string_view t, std::string* e) { return parse_duration(t, e); },
                    "DUR", default_text);
}

CLI::Option* add_size(CLI::App& app, const std::string& name, std::size_t& target, const std::string& help,
                      const std::string& default_text) {
  return add_parsed(app, name, target, help, [](std::string_view t, std::string* e) { return parse_size(t, e); },
                    "SIZE", default_text);
}

}  // namespace

std::variant<ServerConfig, int> parse_server_args(int argc, const char* const* argv) {
  ServerConfig c;
  CLI::App app{"chatserver: a chat server that notices, fast and for the right reason, when a peer is gone.\n"
               "Clients: chatclient, or nc/telnet (type a nickname, then chat). Protocol: docs/protocol.md"};
  app.set_version_flag("--version", std::string("chatserver ") + CHAT_VERSION);
  app.get_formatter()->column_width(34);
  // An option given twice takes its last value, as in most Unix programs: a wrapper (chatlab,
  // a service file) can add its own defaults and still let the user's options win.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);

  app.add_option("--bind", c.bind, "Address to listen on")->capture_default_str();
  app.add_option("--port", c.port, "TCP port; 0 picks a free one")->capture_default_str();
  app.add_option("--max-clients", c.max_clients, "Most clients at once; more get 'BYE server-full'")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{100'000}));
  add_size(app, "--max-line", c.max_line, "Longest line accepted, in bytes (64..1MiB)", "4096");
  add_duration(app, "--handshake-timeout", c.handshake_timeout, "Time a new client has to pick a nickname", "30s");
  app.add_option("--log-file", c.log_file, "Append a dated transcript (joins, leaves, public messages)");
  std::string level = "info";
  app.add_option("--log-level", level, "error, warn, info, debug or trace")->capture_default_str()
      ->check(CLI::IsMember({"error", "warn", "info", "debug", "trace"}));
  bool trace = false;
  app.add_flag("--trace", trace,
               "Log each detector's decision with its inputs, one line each (--log-level trace; chatlab reads it)");

  add_duration(app, "--poll-interval", c.poll_interval, "How often the poller checks every socket", "100ms");
  std::string probe = "poll";
  app.add_option("--probe", probe,
                 "How the poller checks every socket: poll (one poll(2) over all) or epoll (the same check, "
                 "cheaper with thousands of clients)")
      ->capture_default_str()
      ->check(CLI::IsMember({"poll", "epoll"}));
  std::string keepalive = format_keepalive(c.keepalive);
  app.add_option("--keepalive", keepalive,
                 "TCP keepalive IDLE,INTERVAL,COUNT, or 'off' (also sets TCP_USER_TIMEOUT to their budget)")
      ->capture_default_str()
      ->type_name("SPEC");
  add_parsed(
      app, "--ping-interval", c.ping_interval, "Quiet time before a protocol client gets a PING; 'off' or 0: no heartbeat",
      [](std::string_view t, std::string* e) { return t == "off" ? std::optional<Millis>(Millis{0}) : parse_duration(t, e); },
      "DUR|off", "15s");
  add_duration(app, "--ping-timeout", c.ping_timeout, "No line this long after a PING: leave with no-pong", "10s");
  add_size(app, "--send-queue", c.send_queue, "Output queued for one client before it leaves too-slow", "1MiB");
  add_duration(app, "--send-timeout", c.send_timeout, "A write stuck this long: the client leaves too-slow", "30s");
  app.add_option("--writers", c.writers, "Writer threads that send every client its bytes")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{64}));

  app.add_option("--max-rate", c.max_rate,
                 "Lines per second one client may send (flood control); faster senders are slowed; 0: off")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--max-burst", c.max_burst, "Lines one client may send at once before flood control slows it")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1'000'000}));
  add_duration(app, "--flood-grace", c.flood_grace,
               "A client slowed by flood control without a break this long leaves with cause flood", "10s");
  app.add_option("--max-per-ip", c.max_per_ip,
                 "Connections from one address; more get 'BYE too-many' (loopback counts too); 0: no limit")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{0}, std::size_t{100'000}));

  try {
    app.parse(argc, argv);
    std::string error;
    auto k = parse_keepalive(keepalive, &error);
    if (!k) throw CLI::ValidationError("--keepalive", error);
    c.keepalive = *k;
    if (c.max_line < 64 || c.max_line > (1u << 20)) {
      throw CLI::ValidationError("--max-line", "must be from 64 to 1048576 bytes");
    }
    if (c.send_queue < 2 * c.max_line) {
      throw CLI::ValidationError("--send-queue", "must hold at least two lines (2 x --max-line)");
    }
    if (c.poll_interval < Millis{10}) throw CLI::ValidationError("--poll-interval", "must be at least 10ms");
    for (auto [name, value] : {std::pair{"--handshake-timeout", c.handshake_timeout},
                               std::pair{"--ping-timeout", c.ping_timeout},
                               std::pair{"--send-timeout", c.send_timeout},
                               std::pair{"--flood-grace", c.flood_grace}}) {
      if (value < Millis{10}) throw CLI::ValidationError(name, "must be at least 10ms");
    }
    if (c.ping_interval != Millis{0} && c.ping_interval < Millis{10}) {
      throw CLI::ValidationError("--ping-interval", "must be at least 10ms, or off");
    }
    parse_log_level(trace ? "trace" : level, c.log_level);
    c.probe = probe == "epoll" ? ProbeMethod::epoll : ProbeMethod::poll;
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help/version (0) or the error (non-zero)
    return code == 0 ? 0 : 2;
  }
  return c;
}

}  // namespace chat
