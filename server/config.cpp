#include "server/config.hpp"

#include "common/cli.hpp"
#include "common/net.hpp"
#include "common/tls.hpp"
#include "server/password.hpp"
#include "server/redis.hpp"

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>

namespace chat {
namespace {

// chatserver --hash-password: the hash of a password read from the terminal (twice) or stdin.
int hash_password_command() {
  const auto password = cli::read_hidden_line(STDIN_FILENO, STDERR_FILENO, "room password: ");
  if (!password || password->empty()) {
    std::cerr << "chatserver: --hash-password: no password given\n";
    return 2;
  }
  if (::isatty(STDIN_FILENO) == 1) {
    const auto again = cli::read_hidden_line(STDIN_FILENO, STDERR_FILENO, "the same again: ");
    if (!again || *again != *password) {
      std::cerr << "chatserver: --hash-password: the two did not match\n";
      return 2;
    }
  }
  std::cout << hash_password(*password) << "\n";
  return 0;
}

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
                    cli::duration_type, default_text);
}

CLI::Option* add_size(CLI::App& app, const std::string& name, std::size_t& target, const std::string& help,
                      const std::string& default_text) {
  return add_parsed(app, name, target, help, [](std::string_view t, std::string* e) { return parse_size(t, e); },
                    cli::size_type, default_text);
}

// CLI11's own TOML/INI reader, which also remembers the line each key is on, so an error can
// name the file and line: CLI11 reports only the option. Keys are found the way CLI11's
// ConfigBase::from_config finds them (trimmed, comments skipped, the text before '=').
class NumberedConfig : public CLI::ConfigTOML {
 public:
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    const std::string text(std::istreambuf_iterator<char>(input), {});
    std::istringstream lines(text);
    std::string line;
    lines_.clear();
    values_.clear();
    for (int number = 1; std::getline(lines, line); ++number) {
      CLI::detail::trim(line);
      if (line.size() < 3 || line.front() == '#' || line.front() == ';') continue;
      if (line.front() == '[' && line.back() == ']') {
        // CLI11 would look for a subcommand of that name; chatserver has none.
        std::string section = CLI::detail::to_lower(line);
        if (section != "[default]" && section != "[[default]]") {
          throw LineError(number, "no sections here, only name = value lines");
        }
        continue;
      }
      const auto equals = line.find('=');
      std::string key = line.substr(0, equals);
      std::string value = equals == std::string::npos ? "" : CLI::detail::trim_copy(line.substr(equals + 1));
      if (equals == std::string::npos) key = key.substr(0, key.find('#'));  // "trace  # on", as CLI11 reads it
      CLI::detail::trim(key);
      CLI::detail::remove_quotes(key);
      if (key.starts_with("--")) key.erase(0, 2);  // CLI11 takes "--port = 1" too
      // CLI11 cuts a value at the first '#', even inside quotes: refused, not misread.
      if (!value.empty() && (value.front() == '"' || value.front() == '\'')) {
        const auto close = value.find(value.front(), 1);
        if (value.find('#') < close) throw LineError(number, key + ": a '#' inside a quoted value is read as a comment");
      }
      // CLI11 would quietly keep the first of two values; a file that says two things is a mistake.
      if (auto [it, fresh] = lines_.emplace(key, number); !fresh) {
        throw LineError(number, key + " is set again (first on line " + std::to_string(it->second) + ")");
      }
      values_[key] = value;
    }
    std::istringstream again(text);
    auto items = CLI::ConfigTOML::from_config(again);
    // CLI11 splits a value at commas, or else at spaces, into a list. Only web-origin and allow
    // take a list (web-origin = ["http://a", "http://b"]): for the others, pieces split at commas go
    // back together ("keepalive = 2s, 1s, 2" is one value), and a value split at spaces must
    // have been meant as one and needs quotes.
    for (auto& item : items) {
      if (item.inputs.size() < 2) continue;
      const std::string key = item.name.starts_with("--") ? item.name.substr(2) : item.name;
      if (key == "web-origin" || key == "allow") continue;
      if (values_[key].find(',') == std::string::npos) {
        throw LineError(lines_[key], key + ": a value with spaces must be in quotes");
      }
      item.inputs = {CLI::detail::join(item.inputs, ",")};
    }
    return items;
  }

  // Thrown by from_config for a line CLI11 would misread; the caller adds the file name.
  struct LineError : std::runtime_error {
    LineError(int line, const std::string& what) : std::runtime_error(what), line(line) {}
    int line;
  };

  // The line a key was read from, if the file sets it.
  std::optional<int> line_of(const std::string& key) const {
    auto it = lines_.find(key);
    return it == lines_.end() ? std::nullopt : std::optional<int>(it->second);
  }

 private:
  // from_config is const in CLI11's interface, hence mutable.
  mutable std::map<std::string, int> lines_;           // key -> line
  mutable std::map<std::string, std::string> values_;  // key -> its value as written
};

// True if the command line itself gives `option` ("--port 1" or "--port=1").
bool on_command_line(int argc, const char* const* argv, const std::string& option) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == option || arg.starts_with(option + "=")) return true;
  }
  return false;
}

// CLI11's message for an option's bad value starts with the option ("--port: ..."); if that
// value came from the config `file`, the message gets the file and line in front.
std::string locate(const CLI::App& app, const std::string& message, const std::string& file,
                   const NumberedConfig& config, int argc, const char* const* argv) {
  // "FILE:LINE" for a key the file sets, else "".
  const auto where = [&](const std::string& key) {
    const auto line = config.line_of(key);
    return line ? file + ":" + std::to_string(*line) : std::string();
  };
  static const std::string unknown = "INI was not able to parse ";
  if (message.rfind(unknown, 0) == 0) {
    const std::string key = message.substr(unknown.size());
    const std::string hint = cli::did_you_mean(app, key, "");
    return where(key) + ": unknown option '" + key + "'" + (hint.empty() ? " (chatserver --help lists them)" : hint);
  }
  // "print-config: This option is not allowed in a configuration file"
  if (const auto colon = message.find(": "); colon != std::string::npos) {
    if (const std::string at = where(message.substr(0, colon)); !at.empty()) return at + ": " + message;
  }
  const auto dashes = message.find("--");
  if (dashes == std::string::npos) return message;
  const auto end = message.find_first_of(": ", dashes);
  const std::string option = message.substr(dashes, end - dashes);
  const std::string at = where(option.substr(2));
  if (at.empty() || on_command_line(argc, argv, option)) return message;
  return at + ": " + message;
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
  // --config FILE: every long option below, one "name = value" per line (TOML; INI works too),
  // read with CLI11's own reader; the command line wins over the file. --print-config writes
  // the effective settings in that format.
  auto numbered = std::make_shared<NumberedConfig>();
  app.config_formatter(numbered);
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.set_config("--config", "", "Read options from FILE (name = value lines, as --print-config writes them)")
      ->type_name("FILE");
  bool print_config = false;
  app.add_flag("--print-config", print_config, "Write the effective settings in the --config format, then exit")
      ->configurable(false);
  bool hash_password_only = false;
  app.add_flag("--hash-password", hash_password_only,
               "Read a room password (asked twice on a terminal, without echo; else one line of stdin), write its "
               "hash for --password-file to stdout, then exit")
      ->configurable(false);

  // --help shows each value as people type it (DURATION, SIZE, N: the footer explains them),
  // not CLI11's types and checks ("UINT:UINT in [1 - 100000]"): hence the type names, and the
  // checks' descriptions left empty (a range the help should tell is in the option's text).
  // The groups are --help's sections, and --print-config's ("# Limits Options").
  const auto group = [&app](const char* name) { app.option_defaults()->group(name); };
  const auto quiet = [](CLI::Validator check) { return check.description(""); };

  group("Network");
  app.add_option("--bind", c.bind,
                 "Address to listen on: 0.0.0.0 every network, 127.0.0.1 this machine only, or a host name "
                 "(its first address, IPv4 first)")
      ->capture_default_str()
      ->type_name(cli::address_type);
  app.add_option("--port", c.port, "TCP port; 0 picks a free one")
      ->capture_default_str()
      ->type_name(cli::number_type);

  group("Limits");
  app.add_option("--max-clients", c.max_clients, "Most clients at once (1 to 100000); more get 'BYE server-full'")
      ->capture_default_str()
      ->type_name(cli::number_type)
      ->check(quiet(CLI::Range(std::size_t{1}, std::size_t{100'000})));
  add_size(app, "--max-line", c.max_line, "Longest line accepted, in bytes (64 to 1MiB)", "4096");
  add_duration(app, "--handshake-timeout", c.handshake_timeout, "Time a new client has to pick a nickname", "30s");

  group("Logging");
  app.add_option("--log-file", c.log_file, "Append a dated transcript (joins, leaves, public messages)")
      ->type_name("PATH")
      ->run_callback_for_default();  // --print-config shows it even when empty
  std::string level = "info";
  app.add_option("--log-level", level, "error, warn, info, debug or trace")
      ->capture_default_str()
      ->type_name("LEVEL")
      ->check(quiet(CLI::IsMember({"error", "warn", "info", "debug", "trace"})));
  bool trace = false;
  app.add_flag("--trace", trace,
               "Log each detector's decision with its inputs, one line each (--log-level trace; chatlab reads it)");

  group("Detection");
  add_duration(app, "--poll-interval", c.poll_interval, "How often the poller checks every socket", "100ms");
  std::string probe = "auto";
  app.add_option("--probe", probe,
                 "How the poller checks every socket: poll (one poll(2) over all), epoll (the same check, "
                 "cheaper with thousands of clients), or auto: poll up to " +
                     std::to_string(default_probe_auto_threshold) + " clients, epoll above")
      ->capture_default_str()
      ->type_name("auto|poll|epoll")
      ->check(quiet(CLI::IsMember({"auto", "poll", "epoll"})));
  std::string keepalive = format_keepalive(c.keepalive);
  app.add_option("--keepalive", keepalive,
                 "TCP keepalive IDLE,INTERVAL,COUNT, or 'off' (also sets TCP_USER_TIMEOUT to their budget)")
      ->capture_default_str()
      ->type_name(cli::keepalive_type);
  add_parsed(
      app, "--ping-interval", c.ping_interval, "Quiet time before a protocol client gets a PING; 'off' or 0: no heartbeat",
      [](std::string_view t, std::string* e) { return t == "off" ? std::optional<Millis>(Millis{0}) : parse_duration(t, e); },
      std::string(cli::duration_type) + "|off", "15s");
  add_duration(app, "--ping-timeout", c.ping_timeout, "No line this long after a PING: leave with no-pong", "10s");
  add_size(app, "--send-queue", c.send_queue, "Output queued for one client before it leaves too-slow", "1MiB");
  add_duration(app, "--send-timeout", c.send_timeout, "A write stuck this long: the client leaves too-slow", "30s");

  group("Network");
  app.add_option("--writers", c.writers, "Writer threads that send every client its bytes (1 to 64)")
      ->capture_default_str()
      ->type_name(cli::number_type)
      ->check(quiet(CLI::Range(std::size_t{1}, std::size_t{64})));

  group("Limits");
  app.add_option("--max-rate", c.max_rate,
                 "Lines per second one client may send (flood control); faster senders are slowed; 0: off")
      ->capture_default_str()
      ->type_name(cli::number_type)
      ->check(quiet(CLI::Range(0.0, 1e6)));
  app.add_option("--max-burst", c.max_burst, "Lines one client may send at once before flood control slows it")
      ->capture_default_str()
      ->type_name(cli::number_type)
      ->check(quiet(CLI::Range(std::size_t{1}, std::size_t{1'000'000})));
  add_duration(app, "--flood-grace", c.flood_grace,
               "A client slowed by flood control without a break this long leaves with cause flood", "10s");
  app.add_option("--allow", c.allow,
                 "Only addresses in this range may connect, e.g. 10.0.0.0/8 or 192.168.1.0/24 (repeatable; "
                 "others get 'BYE not-allowed'); default: any")
      ->type_name("CIDR")
      ->take_all();
  app.add_option("--password-file", c.password_file,
                 "A room password is needed to join; FILE holds its hash (chatserver --hash-password > FILE), "
                 "never the password itself")
      ->type_name("FILE");
  app.add_option("--admin-password-file", c.admin_password_file,
                 "Operators: whoever gives this password (/oper PASSWORD, or OPER) may remove people from the room "
                 "(/kick NICK [reason]) and keep them out for a time (/ban NICK 10m [reason], /unban, /bans); "
                 "FILE holds its hash (chatserver --hash-password > FILE)")
      ->type_name("FILE");
  app.add_option("--max-per-ip", c.max_per_ip,
                 "Connections from one address; more get 'BYE too-many' (loopback counts too); 0: no limit")
      ->capture_default_str()
      ->type_name(cli::number_type)
      ->check(quiet(CLI::Range(std::size_t{0}, std::size_t{100'000})));

  group("History");
  std::string db;  // "": the default, which depends on --port
  app.add_option("--db", db,
                 "The room's history and resumable seats, in SQLite (default: $XDG_STATE_HOME/chat/chat.db, "
                 "chat-PORT.db for another port than 15600; with --port 0, none); 'none': in memory only")
      ->type_name("FILE|none")
      ->run_callback_for_default();
  app.add_option("--history", c.history, "Earlier events a joining client is shown (0 to 1000)")
      ->capture_default_str()
      ->type_name(cli::number_type)
      ->check(quiet(CLI::Range(std::size_t{0}, std::size_t{1000})));
  std::string keep = "all";
  app.add_option("--history-keep", keep, "How much history the database keeps: N events, Nd days, or all")
      ->capture_default_str()
      ->type_name("N|Nd|all");
  add_duration(app, "--resume-window", c.resume_window,
               "How long a dropped client's nickname and missed messages are held for it to resume; 0: never", "2m");

  group("Several servers");
  app.add_option("--redis", c.redis,
                 "Share one room with the other chatservers started with the same Redis and --room: "
                 "redis://[:password@]host[:port][/db] or unix:///path/redis.sock (docs/scale-out.md)")
      ->type_name("URL")
      ->run_callback_for_default();
  app.add_option("--room", c.room, "With --redis: the room's name (letters, digits, _ - .; up to 64)")
      ->capture_default_str()
      ->type_name("NAME");
  add_duration(app, "--instance-timeout", c.instance_timeout,
               "With --redis: a chatserver silent this long is declared lost, and its members leave with cause "
               "instance-lost",
               "3s");

  group("TLS");
  app.add_option("--tls-cert", c.tls_cert,
                 "TLS on the chat port: the certificate chain (PEM); a connection that starts with a TLS "
                 "ClientHello is TLS (https://, wss://, chatclient's TLS); read again on SIGHUP")
      ->type_name("FILE");
  app.add_option("--tls-key", c.tls_key, "The certificate's private key (PEM), with --tls-cert")->type_name("FILE");
  std::string self_signed;
  app.add_option("--self-signed", self_signed,
                 "TLS with a self-signed certificate for a LAN, made in DIR on the first start and reused after "
                 "(DIR/cert.pem, DIR/key.pem); chatclient pins it on first use (docs/tls.md)")
      ->type_name("DIR");
  app.add_flag("--tls-only", c.tls_only,
               "Refuse clear-text connections (they are told how to connect with TLS: chatclient, openssl s_client)");

  group("Web");
  std::string web = "on";
  app.add_option("--web", web, "Serve the web page and its WebSocket (/ws) on the chat port")
      ->capture_default_str()
      ->type_name("on|off")
      ->check(quiet(CLI::IsMember({"on", "off"})));
  app.add_option("--web-root", c.web_root, "Serve the page's files from DIR instead of the copy built in")
      ->type_name("DIR")
      ->run_callback_for_default();
  app.add_option("--web-origin", c.web_origins,
                 "Another origin whose pages may open the WebSocket, e.g. http://chat.example.org (repeatable)")
      ->type_name("ORIGIN")
      ->take_all();

  app.footer(std::string("Formats:\n  ") + cli::duration_format + "\n  " + cli::size_format + "\n  " +
             cli::keepalive_format + "\n  " + cli::number_format + "\n  " + cli::address_format);

  try {
    app.parse(argc, argv);
    c.web = web == "on";
    // `web-origin=""`, as --print-config writes the default, is no origin (allow too).
    std::erase_if(c.web_origins, [](const std::string& o) { return o.empty(); });
    std::erase_if(c.allow, [](const std::string& a) { return a.empty(); });
    for (auto& range : c.allow) {
      std::string error;
      const auto parsed = parse_address_range(range, &error);
      if (!parsed) throw CLI::ValidationError("--allow", error);
      range = parsed->to_string();
    }
    if (!c.web_root.empty()) {
      if (const auto error = CLI::ExistingDirectory(c.web_root); !error.empty()) {
        throw CLI::ValidationError("--web-root", error);
      }
    }
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
    // A host name is resolved here, so that one that does not resolve is a usage error (exit 2)
    // like any other bad value; the listener resolves it again when it binds. A resolver that
    // cannot answer now (no DNS yet at boot) is not the user's mistake: that start-up failure is
    // the listener's (exit 1), which a service manager retries (exit 2 it does not).
    bool temporary = false;
    if (std::string why; resolve_host(c.bind, &why, &temporary).empty() && !temporary) {
      throw CLI::ValidationError("--bind", why);
    }
    parse_log_level(trace ? "trace" : level, c.log_level);
    if (!c.redis.empty()) {
      try {
        (void)parse_redis_url(c.redis);
      } catch (const std::invalid_argument& e) {
        throw CLI::ValidationError("--redis", e.what());
      }
    }
    if (c.room.empty() || c.room.size() > 64 ||
        !std::all_of(c.room.begin(), c.room.end(), [](unsigned char ch) {
          return std::isalnum(ch) != 0 || ch == '_' || ch == '-' || ch == '.';
        })) {
      throw CLI::ValidationError("--room", "'" + c.room + "': letters, digits, _ - . only, 1 to 64 of them");
    }
    if (c.instance_timeout < Millis(600) || c.instance_timeout > Millis(600'000)) {
      throw CLI::ValidationError("--instance-timeout", "must be between 600ms and 10m");
    }
    if (db.empty()) db = default_db_path(c.port);
    c.db = db == "none" ? std::string() : db;
    if (keep != "all") {
      const bool days = keep.ends_with('d');
      const std::string number = days ? keep.substr(0, keep.size() - 1) : keep;
      std::uint64_t n = 0;
      const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), n);
      if (number.empty() || ec != std::errc() || end != number.data() + number.size() || n == 0) {
        throw CLI::ValidationError("--history-keep", "'" + keep + "': give a number of events (10000), of days (30d), or all");
      }
      if (days) {
        c.history_keep_age = std::chrono::hours(24 * std::min<std::uint64_t>(n, 100'000));
      } else {
        c.history_keep_rows = n;
      }
    }
    c.probe = probe == "epoll" ? ProbeMethod::epoll : probe == "poll" ? ProbeMethod::poll : ProbeMethod::auto_;
    // The password files hold hashes (chatserver --hash-password), checked now.
    const auto read_hash = [](const std::string& option, const std::string& path) {
      std::ifstream file(path);
      std::string line;
      if (!file || !std::getline(file, line)) throw CLI::ValidationError(option, "cannot read " + path);
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      std::string error;
      if (!parse_password_hash(line, &error)) throw CLI::ValidationError(option, path + ": " + error);
      return line;
    };
    if (!c.password_file.empty()) c.password_hash = read_hash("--password-file", c.password_file);
    if (!c.admin_password_file.empty()) {
      c.admin_password_hash = read_hash("--admin-password-file", c.admin_password_file);
    }
    if (!self_signed.empty()) {
      if (!c.tls_cert.empty() || !c.tls_key.empty()) {
        throw CLI::ValidationError("--self-signed", "give either --self-signed or --tls-cert and --tls-key");
      }
      std::string error;
      const auto made = tls::make_self_signed(self_signed, tls::local_names(), error);
      if (!made) throw CLI::ValidationError("--self-signed", error);
      c.tls_cert = made->cert_file;
      c.tls_key = made->key_file;
      if (made->renewed) {
        c.tls_made = "the certificate in " + self_signed + " was about to expire: made a new one (clients that pinned "
                     "the old one will be warned that it changed)";
      } else if (made->created) {
        c.tls_made = "made a self-signed certificate in " + self_signed + " (kept for the next starts)";
      }
    }
    if (c.tls_cert.empty() != c.tls_key.empty()) {
      throw CLI::ValidationError(c.tls_cert.empty() ? "--tls-key" : "--tls-cert",
                                 "give both --tls-cert and --tls-key (or --self-signed DIR)");
    }
    if (!c.tls_cert.empty()) {
      // Read now, so that a wrong file is a usage error; the server reads them again to start.
      std::string error;
      if (!tls::server_context(c.tls_cert, c.tls_key, error)) throw CLI::ValidationError("--tls-cert", error);
    }
    if (c.tls_only && c.tls_cert.empty()) {
      throw CLI::ValidationError("--tls-only", "needs a certificate: --tls-cert and --tls-key, or --self-signed DIR");
    }
  } catch (const NumberedConfig::LineError& e) {
    std::cerr << "chatserver: " << app.get_config_ptr()->as<std::string>() << ":" << e.line << ": " << e.what()
              << "\n";
    return 2;
  } catch (const CLI::ParseError& e) {
    const auto* file = app.get_config_ptr();
    // An unknown option on the command line (ExtrasError; one in the file is a ConfigError) is
    // not the file's: it gets the suggestion, not a file and line.
    if (e.get_exit_code() == 0 || file->count() == 0 || dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr) {
      return cli::exit_for(app, e, "chatserver");  // the help, the version (0) or the error (2)
    }
    std::cerr << "chatserver: " << locate(app, e.what(), file->as<std::string>(), *numbered, argc, argv) << "\n";
    return 2;
  }
  if (print_config) {
    std::cout << app.config_to_str(true, true);
    return 0;
  }
  if (hash_password_only) return hash_password_command();
  return c;
}

std::string default_db_path(std::uint16_t port) {
  // A room is its port: two servers on two ports are two rooms with two histories. A port
  // picked at random (0) is a room for this run only (the tests' servers).
  if (port == 0) return "none";
  const std::string file = port == ServerConfig{}.port ? "chat.db" : "chat-" + std::to_string(port) + ".db";
  const char* state = std::getenv("XDG_STATE_HOME");
  if (state != nullptr && state[0] == '/') return std::string(state) + "/chat/" + file;
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] == '/') return std::string(home) + "/.local/state/chat/" + file;
  return "none";
}

}  // namespace chat
