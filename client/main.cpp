// chatclient: command-line parsing, then one of two modes does the work:
//   - interactive (stdin and stdout are both a terminal): the full-screen client,
//     run_interactive() in client/tui.hpp, with reconnection on by default (--no-reconnect);
//   - script (anything else): ChatClient (client/chat_client.hpp), line in, line out, with
//     reconnection off by default (--reconnect).
// Runs on the main thread; both modes drive the same network side, a Link (client/link.hpp),
// which starts and joins its own network thread.
#include "client/chat_client.hpp"
#include "client/tui.hpp"

#include "common/cli.hpp"
#include "common/log.hpp"
#include "common/server_list.hpp"
#include "common/text.hpp"
#include "common/units.hpp"

#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <clocale>
#include <fstream>
#include <optional>
#include <string>
#include <csignal>
#include <exception>
#include <iostream>
#include <stdexcept>

namespace {

// A CLI11 check built from one of common/units.hpp's parsers: the parser's own message
// becomes the usage error. No description: --help shows the option's type name alone.
template <typename Parse>
CLI::Validator parsed_by(Parse parse) {
  return CLI::Validator(
      [parse](std::string& text) -> std::string {
        std::string error;
        return parse(text, &error) ? std::string() : error;
      },
      "");
}

// A line typed on the controlling terminal after `prompt`, without echo; nullopt without one.
std::optional<std::string> read_password(const char* prompt) {
  const int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  auto line = chat::cli::read_hidden_line(fd, fd, prompt);
  ::close(fd);
  return line;
}

}  // namespace

int main(int argc, char** argv) {
  // A server that vanishes mid-send must give EPIPE, not kill us before we can say so.
  std::signal(SIGPIPE, SIG_IGN);
  chat::set_thread_role("main");

  chat::ClientOptions options;
  std::string keepalive = "10s,2s,3";
  std::string ping_interval = "15s";
  std::string ping_timeout = "10s";
  std::string max_line = "4096";
  int port = options.port;
  bool no_reconnect = false;
  bool reconnect = false;
  // Decided before parsing: --nick is optional only where we can ask for it.
  const bool interactive = ::isatty(STDIN_FILENO) == 1 && ::isatty(STDOUT_FILENO) == 1;

  CLI::App app{"chatclient: a terminal client for the chat server.\n"
               "On a terminal: a full-screen client (messages, who is online, status, input line; /help).\n"
               "Otherwise (script mode): reads lines from stdin (type /help once joined), prints the room's\n"
               "events to stdout, and exits 1 if the server goes away (with --reconnect: reconnects).",
               "chatclient"};
  // --help shows each value as people type it (the footer explains DURATION, SIZE, ...), not
  // CLI11's types and checks ("INT:INT in [1 - 65535]"); the groups are its sections.
  const auto group = [&app](const char* name) { app.option_defaults()->group(name); };
  app.get_formatter()->column_width(34);  // two spaces after the longest, for help2man
  group("Server");
  app.add_option("--host", options.host,
                 "Server address or host name; several, comma-separated (a,b:15602,[fd00::2]), to fail over "
                 "from one to the next when a connection is lost")
      ->capture_default_str()
      ->type_name(chat::cli::address_type);
  app.add_option("--port", port, "Server TCP port")
      ->check(CLI::Range(1, 65535).description(""))
      ->capture_default_str()
      ->type_name(chat::cli::number_type);
  app.add_option("--nick", options.nick,
                 "Nickname to join as (1-24 of A-Z a-z 0-9 _ ! -); required in script mode, asked for on a terminal")
      ->check(CLI::Validator(
          [](std::string& nick) -> std::string {
            // Checked here because the nickname goes into the HELLO line as given.
            auto problem = chat::nick_problem(nick);
            return problem ? "'" + nick + "': " + *problem : std::string();
          },
          ""))
      ->type_name("NICK");
  std::string password_file;
  bool ask_password = false;
  app.add_option("--password-file", password_file,
                 "The room's password is the first line of FILE (for a server started with --password-file)")
      ->check(CLI::ExistingFile.description(""))
      ->type_name("FILE");
  app.add_flag("--ask-password", ask_password, "Ask for the room's password on the terminal (not echoed) before joining");
  group("TLS");
  app.add_flag("--tls", options.tls,
               "Connect over TLS (the server's certificate must be signed by an authority this machine trusts, "
               "or pinned: --tls-pin)");
  app.add_flag("--tls-pin", options.tls_pin,
               "Implies --tls. Trust a certificate no authority signed the first time a server shows it, as ssh does, "
               "and pin it: another certificate from that server is refused from then on");
  app.add_option("--known-servers", options.known_servers,
                 "The pinned certificates, one 'host:port SHA256:...' a line (default: "
                 "$XDG_CONFIG_HOME/chat/known_servers, else ~/.config/chat/known_servers)")
      ->type_name("FILE");
  group("Connection");
  app.add_option("--keepalive", keepalive, "TCP keepalive IDLE,INTERVAL,COUNT, or off")
      ->check(parsed_by(chat::parse_keepalive))
      ->capture_default_str()
      ->type_name(chat::cli::keepalive_type);
  app.add_option("--ping-interval", ping_interval, "PING the server after this much silence; 0: never")
      ->check(parsed_by(chat::parse_duration))
      ->capture_default_str()
      ->type_name(chat::cli::duration_type);
  app.add_option("--ping-timeout", ping_timeout, "Server is dead if silent this long after our PING")
      ->check(parsed_by(
          [](std::string_view text, std::string* error) -> std::optional<chat::Millis> {
            auto d = chat::parse_duration(text, error);
            if (d && *d <= chat::Millis::zero()) {
              *error = "'" + std::string(text) + "': the ping timeout must be more than 0";
              return std::nullopt;
            }
            return d;
          }))
      ->capture_default_str()
      ->type_name(chat::cli::duration_type);
  app.add_option("--max-line", max_line, "Longest line either way, in bytes (64 to 16MiB)")
      ->check(parsed_by(
          [](std::string_view text, std::string* error) -> std::optional<std::size_t> {
            auto size = chat::parse_size(text, error);
            if (size && (*size < 64 || *size > (std::size_t{16} << 20))) {
              *error = "'" + std::string(text) + "': must be from 64 bytes to 16MiB";
              return std::nullopt;
            }
            return size;
          }))
      ->capture_default_str()
      ->type_name(chat::cli::size_type);
  auto* no_reconnect_flag = app.add_flag("--no-reconnect", no_reconnect,
                                         "On a terminal: when the connection is lost, do not reconnect");
  app.add_flag("--reconnect", reconnect,
               "In script mode: when the connection is lost, reconnect with backoff instead of exiting 1")
      ->excludes(no_reconnect_flag);
  group("Output");
  app.add_flag("--verbose", options.verbose,
               "After each leave, goodbye and refusal, show the server's detail (which thread noticed, when)");
  app.set_version_flag("--version", std::string("chatclient ") + CHAT_VERSION);
  app.get_version_ptr()->group("Options");  // with --help, not in the last group above
  app.footer(std::string("Formats:\n  ") + chat::cli::duration_format + "\n  " + chat::cli::size_format + "\n  " +
             chat::cli::keepalive_format + "\n  " + chat::cli::address_format);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version "fail" with exit code 0; every real usage error exits 2 (an unknown
    // option with "did you mean --nick?" when one is close).
    return chat::cli::exit_for(app, e, "chatclient") == chat::cli::exit_help ? chat::exit_ok : chat::exit_usage;
  }

  if (!interactive && options.nick.empty()) {
    std::cerr << "--nick is required (in script mode, when stdin or stdout is not a terminal)\n"
              << "Run with --help for more information." << std::endl;
    return chat::exit_usage;
  }

  if (!password_file.empty()) {
    std::ifstream file(password_file);
    if (!std::getline(file, options.password) || options.password.empty()) {
      std::cerr << "--password-file: " << password_file << " holds no password on its first line\n";
      return chat::exit_usage;
    }
    if (options.password.back() == '\r') options.password.pop_back();
  } else if (ask_password) {
    auto password = read_password("room password: ");
    if (!password) {
      std::cerr << "--ask-password: no terminal to ask on\n";
      return chat::exit_usage;
    }
    options.password = std::move(*password);
  }

  // The checks above have accepted these already.
  options.port = static_cast<std::uint16_t>(port);
  try {
    options.servers = chat::parse_server_list(options.host, options.port);
  } catch (const std::invalid_argument& e) {
    std::cerr << "--host: " << e.what() << "\nRun with --help for more information." << std::endl;
    return chat::exit_usage;
  }
  options.host = options.servers.front().host;
  options.port = options.servers.front().port;
  if (options.servers.size() == 1) options.servers.clear();  // one server: host and port say it
  options.keepalive = *chat::parse_keepalive(keepalive);
  options.ping_interval = *chat::parse_duration(ping_interval);
  options.ping_timeout = *chat::parse_duration(ping_timeout);
  options.max_line = *chat::parse_size(max_line);
  options.reconnect = interactive ? !no_reconnect : reconnect;
  if (options.tls_pin) options.tls = true;
  if (auto warning = chat::clear_text_password_warning(options)) std::cerr << "chatclient: " << *warning << std::endl;

  if (interactive) {
    // ncursesw draws UTF-8 (and wcwidth() measures it) only under the user's locale.
    std::setlocale(LC_ALL, "");
    if (options.nick.empty()) {
      auto nick = chat::ask_nick(std::cin, std::cout);
      if (!nick) return chat::exit_ok;
      options.nick = *nick;
    }
    try {
      return chat::run_interactive(chat::link_options(options), options.verbose);
    } catch (const std::exception& e) {
      std::cerr << "chatclient: error: " << e.what() << std::endl;
      return chat::exit_failure;
    }
  }

  try {
    chat::ChatClient client(std::move(options), STDIN_FILENO, std::cout, std::cerr);
    return client.run();
  } catch (const std::exception& e) {
    std::cerr << "chatclient: error: " << e.what() << std::endl;
    return chat::exit_failure;
  }
}
