// For chatclient's TLS tests: a self-signed certificate made the way chatserver makes one
// (tls::make_self_signed), and a real TLS server that nobody here wrote, Debian's
// `openssl s_server`, as a Subprocess.
//
// s_server prints "ACCEPT 127.0.0.1:<port>" once it listens on port 0 (so the kernel may pick
// it; "ACCEPT" alone for a port given), writes
// what the client sends on its stdout, and sends its stdin's lines to the client. Its stdin is
// also read for one-letter commands: a line starting with Q, q, P or S, or "r", "R", "k", "K",
// "c" alone, is a command and not sent, so tests never script protocol lines that start with
// those (PING, QUIT, ...). When the client's stream ends it prints "DONE" after a close_notify,
// "ERROR" (and "unexpected eof while reading" on stderr) after a bare FIN.
//
// Header only: for test executables that link chat_common (tls) and chat_test_support.
// Not thread safe: one test thread makes, uses and destroys each object.
#pragma once

#include "common/tls.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

#include <chrono>
#include <csignal>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace chat::test {

// A key and a self-signed certificate for 127.0.0.1 and localhost, in a directory of the
// test's own, and the certificate's fingerprint ("SHA256:...").
class TestCertificate {
 public:
  explicit TestCertificate(std::string_view name) : dir_(name) {
    std::string error;
    const auto made = tls::make_self_signed((dir_.path() / "tls").string(), {"127.0.0.1", "localhost"}, error);
    if (!made) throw std::runtime_error("make_self_signed: " + error);
    cert_file_ = made->cert_file;
    key_file_ = made->key_file;
    const auto fingerprint = tls::file_fingerprint(cert_file_);
    if (!fingerprint) throw std::runtime_error("cannot read " + cert_file_);
    fingerprint_ = *fingerprint;
  }
  const std::string& cert_file() const { return cert_file_; }
  const std::string& key_file() const { return key_file_; }
  const std::string& fingerprint() const { return fingerprint_; }

 private:
  TempDir dir_;
  std::string cert_file_;
  std::string key_file_;
  std::string fingerprint_;
};

// `openssl s_server` with `certificate`, on 127.0.0.1:`port` (0: the kernel picks one).
// Throws when it does not say it listens within `timeout`. The destructor kills it by pid.
class OpensslServer {
 public:
  explicit OpensslServer(const TestCertificate& certificate, std::uint16_t port = 0,
                         std::chrono::milliseconds timeout = std::chrono::seconds(10))
      : process_({"openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(port), "-cert",
                  certificate.cert_file(), "-key", certificate.key_file()}) {
    // "ACCEPT 127.0.0.1:<port>" for port 0; for a port given, "ACCEPT" alone.
    constexpr std::string_view accept = "ACCEPT 127.0.0.1:";
    std::string seen;
    std::string listening;
    const bool ok = process_.wait_for_line(
        Stream::out,
        [&](const std::string& line) {
          if (!line.starts_with(accept) && !(port != 0 && line == "ACCEPT")) return false;
          listening = line;
          return true;
        },
        timeout, &seen);
    if (!ok) throw std::runtime_error("openssl s_server did not start listening; it said:\n" + seen);
    port_ = port != 0 ? port : static_cast<std::uint16_t>(std::stoi(listening.substr(accept.size())));
  }

  std::uint16_t port() const { return port_; }
  Subprocess& process() { return process_; }

  // Ends it (SIGTERM, by pid) and waits for it to exit: its port is free again.
  bool stop(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    process_.signal(SIGTERM);
    return process_.wait_exit(timeout).has_value();
  }

 private:
  Subprocess process_;
  std::uint16_t port_ = 0;
};

}  // namespace chat::test
