// chatclient-qt: the desktop window. The command line (--host, --port, --nick, --tls, --keepalive),
// a connect dialog for whatever it does not give, then the
// window until it is closed (or SIGINT / SIGTERM). The network side is chatclient's Link
// (client/link.hpp). Threads: the GUI thread (this one) and the Link's network thread
// (client/qt/chat_window.hpp says how they talk).
#include "client/qt/chat_window.hpp"
#include "client/qt/connect_dialog.hpp"
#include "common/server_list.hpp"
#include "common/text.hpp"
#include "common/units.hpp"

#include <CLI/CLI.hpp>
#include <QApplication>
#include <QSocketNotifier>

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <iostream>
#include <stdexcept>

int main(int argc, char** argv) {
  // The command line first, so --help, --version and a usage error work without a display.
  // Qt's own options (-platform, -style, ...) start with one dash and are left for QApplication.
  chat::LinkOptions options;
  chat::qt::ConnectChoice given{{}, 0, {}, {}, false, false};
  std::string keepalive = chat::format_keepalive(options.keepalive);
  CLI::App cli{"chatclient-qt: a desktop window for the chat server (the connect dialog asks for what is not given)",
               "chatclient-qt"};
  cli.set_version_flag("--version", std::string("chatclient-qt ") + CHAT_VERSION);
  cli.allow_extras();
  cli.add_option("--host", given.host,
                 "Server address; several, comma-separated (a,b:15602), to fail over from one to the next");
  cli.add_option("--port", given.port, "Server TCP port")->check(CLI::Range(1, 65535));
  cli.add_option("--nick", given.nick, "Nickname to join as (1-24 of A-Z a-z 0-9 _ ! -)")
      ->check(CLI::Validator(
          [](std::string& nick) -> std::string {
            auto problem = chat::nick_problem(nick);
            return problem ? "'" + nick + "': " + *problem : std::string();
          },
          "NICK"));
  std::string password_file;
  cli.add_option("--password-file", password_file,
                 "The room's password is the first line of FILE (else the connect dialog has a field for it)")
      ->check(CLI::ExistingFile);
  cli.add_flag("--tls", given.tls, "Connect over TLS (the connect dialog has the same choice)");
  cli.add_flag("--tls-pin", given.tls_pin,
               "Implies --tls. Trust a certificate no authority signed the first time a server shows it, and pin it");
  cli.add_option("--known-servers", options.known_servers,
                 "The pinned certificates (default: $XDG_CONFIG_HOME/chat/known_servers, else "
                 "~/.config/chat/known_servers)");
  cli.add_option("--keepalive", keepalive, "TCP keepalive IDLE,INTERVAL,COUNT, or off")->capture_default_str();
  bool verbose = false;
  cli.add_flag("--verbose", verbose,
               "After each leave, goodbye and refusal, show the server's detail (which thread noticed, when)");
  cli.footer("Qt's own options (-platform offscreen, -style Fusion, ...) are passed on to Qt.");
  try {
    cli.parse(argc, argv);
    if (given.tls_pin) given.tls = true;
    for (const auto& extra : cli.remaining()) {
      if (extra.starts_with("--")) throw CLI::ExtrasError({extra});
    }
    std::string error;
    auto k = chat::parse_keepalive(keepalive, &error);
    if (!k) throw CLI::ValidationError("--keepalive", error);
    options.keepalive = *k;
    if (!password_file.empty()) {
      std::ifstream file(password_file);
      if (!std::getline(file, given.password) || given.password.empty()) {
        throw CLI::ValidationError("--password-file", password_file + " holds no password on its first line");
      }
      if (given.password.back() == '\r') given.password.pop_back();
    }
    if (!given.host.empty()) {
      try {
        (void)chat::parse_server_list(given.host, given.port != 0 ? given.port : options.port);
      } catch (const std::invalid_argument& e) {
        throw CLI::ValidationError("--host", e.what());
      }
    }
  } catch (const CLI::ParseError& e) {
    return cli.exit(e) == 0 ? 0 : 2;
  }

  std::signal(SIGPIPE, SIG_IGN);  // a send to a vanished server is an error, not the end
  // SIGINT and SIGTERM end the program politely (the dialog is cancelled; the window says QUIT,
  // then exit 0): blocked here, before any thread exists so that every thread inherits the
  // mask, and read from a signalfd by the GUI thread's event loop. No signal handler runs.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  const int signal_fd = signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK);

  QApplication app(argc, argv);  // takes Qt's own options (-platform, ...) out of argv
  QApplication::setOrganizationName("chat");
  QApplication::setApplicationName("chatclient-qt");  // QSettings: ~/.config/chat/chatclient-qt.conf
  QApplication::setApplicationVersion(CHAT_VERSION);

  QWidget* open = nullptr;  // the dialog, then the window: what a signal closes
  bool stopped = false;
  QSocketNotifier stop_notifier(signal_fd, QSocketNotifier::Read);
  QObject::connect(&stop_notifier, &QSocketNotifier::activated, [&] {
    signalfd_siginfo info{};
    while (::read(signal_fd, &info, sizeof info) > 0) {
    }
    stopped = true;
    if (open) open->close();  // a dialog: cancelled; the window: QUIT, a bounded wait, then the end
  });

  if (given.host.empty() || given.port == 0 || given.nick.empty()) {
    chat::qt::ConnectDialog dialog(given);
    open = &dialog;
    const bool accepted = dialog.exec() == QDialog::Accepted;
    open = nullptr;
    if (!accepted || stopped) return 0;
    given = dialog.choice();
  }
  try {
    options.servers = chat::parse_server_list(given.host, given.port);
  } catch (const std::invalid_argument& e) {  // typed in the dialog
    std::cerr << "chatclient-qt: " << e.what() << std::endl;
    return 2;
  }
  options.host = options.servers.front().host;
  options.port = options.servers.front().port;
  if (options.servers.size() == 1) options.servers.clear();  // one server: host and port say it
  options.nick = given.nick;
  options.password = given.password;
  options.tls = given.tls || given.tls_pin;
  options.tls_pin = given.tls_pin;
  chat::qt::ChatWindow window(options, verbose);
  open = &window;
  window.show();
  return QApplication::exec();
}
