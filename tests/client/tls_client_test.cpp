// chatclient --tls against real TLS servers that nobody here wrote: Debian's `openssl s_server`
// (the certificate checks, trust on first use, a changed certificate, chatting through it, and
// our close_notify on quit) and a tiny server on Python's ssl module (tls_line_server.py: the
// server's close_notify told from a bare FIN). The certificates are made by
// tls::make_self_signed, as chatserver --self-signed makes them.
//
// Everything runs on 127.0.0.1 with kernel-chosen ports; each server and client is a
// Subprocess, ended by pid. No test sleeps: each waits for a line or an exit, with a deadline.
#include "tests/support/chatclient_args.hpp"
#include "tests/support/files.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/tls_servers.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using chat::test::chatclient_args;
using chat::test::OpensslServer;
using chat::test::Stream;
using chat::test::Subprocess;
using chat::test::file_text;
using chat::test::mode_of;
using chat::test::TempDir;
using chat::test::TestCertificate;

namespace {

constexpr auto kWait = 10'000ms;  // a TLS handshake under a sanitizer on two busy cores

// Everything left on a stream until the process closed it (after it exited).
std::string rest_of(Subprocess& process, Stream which) {
  std::string all;
  while (auto line = process.read_line(which, kWait)) all += *line + "\n";
  return all;
}

// chatclient over TLS to 127.0.0.1:`port` as alice, pins in `known_servers`, then `extra`.
Subprocess tls_client(std::uint16_t port, const std::filesystem::path& known_servers,
                      std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"--tls", "--known-servers", known_servers.string()};
  args.insert(args.end(), extra.begin(), extra.end());
  return Subprocess(chatclient_args(port, "alice", std::move(args)));
}

// Plays the server's part of the join through s_server's stdin, once the HELLO arrived.
void welcome_through(OpensslServer& server) {
  REQUIRE(server.process().wait_for_line(Stream::out, "HELLO alice ids", kWait));
  REQUIRE(server.process().write("WELCOME alice\nUSERS alice bob\n"));
}

// The client quits (stdin ends), the server says goodbye; the client exits 0 and, before its
// FIN, sends close_notify, which s_server reports as "DONE" (a bare FIN would be "ERROR").
void quit_through(OpensslServer& server, Subprocess& client) {
  client.close_stdin();
  REQUIRE(server.process().wait_for_line(Stream::out, "QUIT", kWait));
  REQUIRE(server.process().write("BYE quit\n"));
  CHECK(client.wait_exit(kWait) == 0);
  std::string seen;
  CHECK(server.process().wait_for_line(
      Stream::out, [](const std::string& line) { return line == "DONE" || line == "ERROR"; }, kWait, &seen));
  CHECK(seen.ends_with("DONE\n"));
}

}  // namespace

TEST_CASE("chatclient --tls refuses a certificate no authority signed, shows its fingerprint and the --tls-pin "
          "hint, and does not try again",
          "[chatclient][tls]") {
  TestCertificate cert("tls_refuse");
  OpensslServer server(cert);
  TempDir home("tls_refuse_home");
  const auto known = home.path() / "known_servers";
  // --reconnect: a refused certificate is not a lost server; the user must act, so it exits.
  Subprocess client = tls_client(server.port(), known, {"--reconnect"});
  std::string seen;
  CHECK(client.wait_for_line(Stream::err, "The server's certificate is not signed by an authority this machine trusts.",
                             kWait, &seen));
  INFO(seen);
  CHECK(client.wait_for_line(Stream::err, "Its fingerprint is " + cert.fingerprint(), kWait, &seen));
  CHECK(client.wait_for_line(Stream::err, "connect again with --tls-pin", kWait, &seen));
  CHECK(client.wait_exit(kWait) == 1);
  CHECK(rest_of(client, Stream::out).empty());  // nothing joined, nothing said
  CHECK_FALSE(std::filesystem::exists(known));  // nothing pinned without --tls-pin
}

TEST_CASE("chatclient --tls-pin trusts a certificate on first use, pins it, chats through openssl s_server, and "
          "ends with close_notify",
          "[chatclient][tls]") {
  TestCertificate cert("tls_pin");
  OpensslServer server(cert);
  TempDir home("tls_pin_home");
  const auto known = home.path() / "chat" / "known_servers";  // its directory is made too
  const std::string where = "127.0.0.1:" + std::to_string(server.port());
  {
    Subprocess client = tls_client(server.port(), known, {"--tls-pin"});
    CHECK(client.wait_for_line(Stream::err,
                               "The server's certificate is not signed by an authority this machine trusts.", kWait));
    CHECK(client.wait_for_line(Stream::err, "Its fingerprint is " + cert.fingerprint(), kWait));
    CHECK(client.wait_for_line(Stream::err, "Trusted on first use (--tls-pin) and pinned in " + known.string() + ", line 1",
                               kWait));
    welcome_through(server);
    std::string seen;
    // "[14:02:07] *** connected to 127.0.0.1:N over TLSv1.3 TLS_AES_256_GCM_SHA384 (pinned ...)":
    // the cipher is the two OpenSSLs' choice.
    CHECK(client.wait_for_line(
        Stream::out,
        [&](const std::string& line) {
          return line.find("] *** connected to " + where + " over TLSv1.3 TLS_") != std::string::npos &&
                 line.ends_with(" (pinned certificate " + cert.fingerprint() + ")");
        },
        kWait, &seen));
    CHECK(client.wait_for_line(Stream::out, "*** welcome, alice", kWait, &seen));
    INFO(seen);
    // What s_server's user types reaches the client; what the client's user types reaches it.
    REQUIRE(server.process().write("MSG bob hello over TLS\n"));
    CHECK(client.wait_for_line(Stream::out, "<bob> hello over TLS", kWait));
    REQUIRE(client.write("hi from alice\n"));
    CHECK(server.process().wait_for_line(Stream::out, "SAY hi from alice", kWait));
    quit_through(server, client);
  }
  CHECK(file_text(known) == where + " " + cert.fingerprint() + "\n");
  CHECK(mode_of(known) == 0600);
  CHECK(mode_of(known.parent_path()) == 0700);

  // Next time the pin is enough, without --tls-pin and without a word about the certificate.
  Subprocess again = tls_client(server.port(), known);
  welcome_through(server);
  CHECK(again.wait_for_line(Stream::out, "(pinned certificate " + cert.fingerprint() + ")", kWait));
  quit_through(server, again);
  CHECK(rest_of(again, Stream::err).empty());
  CHECK(file_text(known) == where + " " + cert.fingerprint() + "\n");
}

TEST_CASE("chatclient refuses a server whose certificate changed since it was pinned, even with --tls-pin",
          "[chatclient][tls]") {
  TestCertificate first("tls_changed_a");
  TestCertificate second("tls_changed_b");
  REQUIRE(first.fingerprint() != second.fingerprint());
  TempDir home("tls_changed_home");
  const auto known = home.path() / "known_servers";

  std::uint16_t port = 0;
  {
    OpensslServer server(first);
    port = server.port();
    Subprocess client = tls_client(port, known, {"--tls-pin"});
    CHECK(client.wait_for_line(Stream::err, "Trusted on first use", kWait));
    welcome_through(server);
    quit_through(server, client);
    REQUIRE(server.stop());
  }
  const std::string where = "127.0.0.1:" + std::to_string(port);
  REQUIRE(file_text(known) == where + " " + first.fingerprint() + "\n");

  // Another certificate on the same address (s_server sets SO_REUSEADDR).
  OpensslServer impostor(second, port);
  Subprocess client = tls_client(port, known, {"--tls-pin", "--reconnect"});
  std::string seen;
  CHECK(client.wait_for_line(Stream::err, "WARNING: the certificate of " + where + " has changed since it was pinned!",
                             kWait, &seen));
  INFO(seen);
  CHECK(client.wait_for_line(Stream::err, "Someone could be listening in on this connection", kWait, &seen));
  CHECK(client.wait_for_line(Stream::err,
                             "It now shows " + second.fingerprint() + "; line 1 of " + known.string() + " pinned " +
                                 first.fingerprint() + ".",
                             kWait, &seen));
  CHECK(client.wait_for_line(Stream::err,
                             "Not connected. If you trust the change, remove line 1 of " + known.string() +
                                 " and connect again with --tls-pin.",
                             kWait, &seen));
  CHECK(client.wait_exit(kWait) == 1);
  CHECK(rest_of(client, Stream::out).empty());
  CHECK(file_text(known) == where + " " + first.fingerprint() + "\n");  // never replaced
}

TEST_CASE("chatclient over TLS tells the server's close_notify from a FIN without it", "[chatclient][tls]") {
  TestCertificate cert("tls_close");
  TempDir home("tls_close_home");
  const auto known = home.path() / "known_servers";
  const bool clean = GENERATE(true, false);
  INFO((clean ? "close_notify, then FIN" : "FIN alone"));
  Subprocess server({"/usr/bin/python3", TLS_LINE_SERVER, cert.cert_file(), cert.key_file()});
  auto port_line = server.read_line(Stream::out, kWait);
  REQUIRE(port_line);
  REQUIRE(port_line->starts_with("PORT "));
  const auto port = static_cast<std::uint16_t>(std::stoi(port_line->substr(5)));

  Subprocess client = tls_client(port, known, {"--tls-pin", "--verbose"});
  CHECK(server.wait_for_line(Stream::out, "HANDSHAKE TLSv1.3", kWait));
  CHECK(server.wait_for_line(Stream::out, "GOT HELLO alice ids", kWait));
  REQUIRE(server.write("send WELCOME alice\nsend USERS alice bob\n"));
  CHECK(client.wait_for_line(Stream::out, "*** welcome, alice", kWait));
  REQUIRE(server.write(clean ? "close_notify\n" : "fin\n"));
  std::string seen;
  CHECK(client.wait_for_line(Stream::out,
                             clean ? "*** disconnected: the server closed the connection [closed: connection closed by "
                                     "peer with close_notify]"
                                   : "*** disconnected: the server closed the connection [closed: connection closed by "
                                     "peer without close_notify (TLS: what came last may be cut short)]",
                             kWait, &seen));
  INFO(seen);
  CHECK(client.wait_exit(kWait) == 1);
  if (!clean) {
    // The client's own end still says close_notify before its FIN.
    CHECK(server.wait_for_line(Stream::out, "EOF close_notify", kWait));
  }
}

TEST_CASE("chatclient --tls says why when the server does not speak TLS", "[chatclient][tls]") {
  // A plain line server: the ClientHello gets a clear-text line back.
  Subprocess server({"/usr/bin/python3", "-c",
                     "import socket,sys\n"
                     "s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(1)\n"
                     "print('PORT', s.getsockname()[1], flush=True)\n"
                     "c,_=s.accept(); c.recv(4096); c.sendall(b'# chatserver 0.1.0: type a nickname to join\\n')\n"
                     "sys.stdin.read()\n"});
  auto port_line = server.read_line(Stream::out, kWait);
  REQUIRE(port_line);
  REQUIRE(port_line->starts_with("PORT "));
  TempDir home("tls_plain_home");
  Subprocess client = tls_client(static_cast<std::uint16_t>(std::stoi(port_line->substr(5))),
                                 home.path() / "known_servers");
  std::string seen;
  CHECK(client.wait_for_line(
      Stream::err,
      [](const std::string& line) {
        return line.starts_with("chatclient: cannot connect to 127.0.0.1:") && line.find(" over TLS: ") != std::string::npos &&
               line.ends_with("(does the server take TLS?)");
      },
      kWait, &seen));
  INFO(seen);
  CHECK(client.wait_exit(kWait) == 1);
}
