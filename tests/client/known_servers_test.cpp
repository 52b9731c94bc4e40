// The known_servers file (client/known_servers.hpp) and the decision after a TLS handshake, on
// their own: parsing, bounds, the file's modes, and every row of check_certificate's rules. No
// network. Also the other pure pieces of chatclient's TLS: the clear-text password warning and
// what the screen model makes of `secured` and `certificate` events.
#include "client/chat_client.hpp"
#include "client/known_servers.hpp"
#include "client/screen_model.hpp"
#include "tests/support/files.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

using chat::check_certificate;
using chat::CertificateCheck;
using chat::parse_known_servers;
using chat::test::file_text;
using chat::test::mode_of;
using chat::test::TempDir;

namespace {

// Two fingerprints of the right shape (43 base64 characters after "SHA256:").
const std::string fp_a = "SHA256:" + std::string(42, 'A') + "0";
const std::string fp_b = "SHA256:" + std::string(42, 'b') + "+";

CertificateCheck unverified(const std::filesystem::path& file, const std::string& fingerprint, bool pin) {
  CertificateCheck c;
  c.host = "127.0.0.1";
  c.server = "127.0.0.1:15600";
  c.verify_error = "self-signed certificate";
  c.fingerprint = fingerprint;
  c.pin = pin;
  c.known_servers = file.string();
  return c;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

}  // namespace

TEST_CASE("known_servers: good lines are read, comments and blank lines skipped, bad lines ignored with a warning",
          "[known-servers]") {
  const auto k = parse_known_servers("# pinned by chatclient\n"
                                     "\n"
                                     "127.0.0.1:15600 " + fp_a + "\n"
                                     "Chat.LAN:15601\t" + fp_b + "\r\n"
                                     "[fd00::2]:15600 " + fp_a + "\n"
                                     "nohost " + fp_a + "\n"                 // no port
                                     "127.0.0.1:0 " + fp_a + "\n"            // port 0
                                     "127.0.0.1:15600 SHA256:short\n"        // not a fingerprint
                                     "127.0.0.1:15600 " + fp_a + " extra\n"  // a third field
                                     "a:1,b:2 " + fp_a + "\n"                // a list
                                     "fd00::3:15600 " + fp_a + "\n"          // IPv6 without brackets
                                     "   \n"
                                     "last:9 " + fp_b);                       // no LF at the end
  REQUIRE(k.entries.size() == 4);
  CHECK(k.entries[0].server == "127.0.0.1:15600");
  CHECK(k.entries[0].fingerprint == fp_a);
  CHECK(k.entries[0].line == 3);
  CHECK(k.entries[1].server == "chat.lan:15601");  // host names in lower case
  CHECK(k.entries[1].fingerprint == fp_b);          // CR LF tolerated
  CHECK(k.entries[2].server == "[fd00::2]:15600");
  CHECK(k.entries[3].server == "last:9");
  CHECK(k.entries[3].line == 13);
  REQUIRE(k.warnings.size() == 6);
  CHECK(k.warnings[0] == "line 6: not 'HOST:PORT SHA256:<fingerprint>'; ignored");
  CHECK(k.warnings[5].starts_with("line 11: "));
}

TEST_CASE("known_servers: fingerprints and keys have one shape", "[known-servers]") {
  CHECK(chat::looks_like_fingerprint(fp_a));
  CHECK_FALSE(chat::looks_like_fingerprint("sha256:" + fp_a.substr(7)));
  CHECK_FALSE(chat::looks_like_fingerprint(fp_a + "A"));
  CHECK_FALSE(chat::looks_like_fingerprint(fp_a.substr(0, 49) + "="));
  CHECK(chat::known_server_key("Chat.Lan", 15600) == "chat.lan:15600");
  CHECK(chat::known_server_key("::1", 15600) == "[::1]:15600");
}

TEST_CASE("known_servers: an absent file is empty, an oversized one is refused whole", "[known-servers]") {
  TempDir dir("known_servers_read");
  std::string error;
  auto none = chat::read_known_servers((dir.path() / "absent").string(), error);
  REQUIRE(none);
  CHECK(none->entries.empty());

  const auto big = dir.path() / "big";
  {
    std::ofstream out(big);
    const std::string line = "127.0.0.1:15600 " + fp_a + "\n";
    for (std::size_t n = 0; n <= chat::max_known_servers_bytes / line.size(); ++n) out << line;
  }
  REQUIRE(std::filesystem::file_size(big) > chat::max_known_servers_bytes);
  CHECK_FALSE(chat::read_known_servers(big.string(), error));
  CHECK(error == big.string() + " is larger than 1 MiB; not read (remove the lines you no longer need)");

  // The decision refuses then, even with --tls-pin: a pin it cannot read might be the one.
  const auto t = check_certificate(unverified(big, fp_a, true));
  CHECK_FALSE(t.accepted);
  CHECK(joined(t.lines).find("the pinned certificates cannot be checked: " + error) != std::string::npos);
}

TEST_CASE("known_servers: pinning makes the directory 0700 and the file 0600, and appends whole lines",
          "[known-servers]") {
  TempDir dir("known_servers_pin");
  const auto file = dir.path() / "config" / "chat" / "known_servers";
  std::string error;
  CHECK(chat::pin_known_server(file.string(), "127.0.0.1:15600", fp_a, error) == 1u);
  CHECK(mode_of(file) == 0600);
  CHECK(mode_of(file.parent_path()) == 0700);
  CHECK(mode_of(file.parent_path().parent_path()) == 0700);
  // A hand-edited file whose last line has no LF: the new line still starts a line of its own.
  {
    std::ofstream out(file, std::ios::app);
    out << "# mine";
  }
  CHECK(chat::pin_known_server(file.string(), "chat.lan:15601", fp_b, error) == 3u);
  CHECK(file_text(file) == "127.0.0.1:15600 " + fp_a + "\n# mine\nchat.lan:15601 " + fp_b + "\n");
  // A file that cannot be made: said, not thrown.
  CHECK_FALSE(chat::pin_known_server("/proc/nope/known_servers", "a:1", fp_a, error));
  CHECK(error.starts_with("cannot make /proc/nope"));
}

TEST_CASE("check_certificate: verified, pinned, changed, refused, and trusted on first use", "[known-servers]") {
  TempDir dir("known_servers_check");
  const auto file = dir.path() / "known_servers";

  SECTION("a certificate that verified is trusted without reading the file") {
    CertificateCheck c = unverified(dir.path() / "no" / "such" / "dir" / "file", fp_a, false);
    c.verify_error.clear();
    const auto t = check_certificate(c);
    CHECK(t.accepted);
    CHECK(t.how == "verified certificate");
    CHECK(t.lines.empty());
  }
  SECTION("without --tls-pin an unknown server's certificate is refused, with the reason, the fingerprint and "
          "the hint") {
    const auto t = check_certificate(unverified(file, fp_a, false));
    CHECK_FALSE(t.accepted);
    REQUIRE(t.lines.size() == 4);
    CHECK(t.lines[0] == "The certificate of 127.0.0.1:15600 did not verify: self-signed certificate.");
    CHECK(t.lines[1] == "The server's certificate is not signed by an authority this machine trusts.");
    CHECK(t.lines[2] == "Its fingerprint is " + fp_a);
    CHECK(t.lines[3].find("connect again with --tls-pin") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(file));
  }
  SECTION("a name that does not match is said in words") {
    CertificateCheck c = unverified(file, fp_a, false);
    c.host = "chat.lan";
    c.verify_error = "hostname mismatch";
    const auto t = check_certificate(c);
    CHECK(t.lines[1] == "The server's certificate is not made out to chat.lan.");
  }
  SECTION("with --tls-pin it is trusted and pinned; then it is trusted silently, with or without --tls-pin") {
    auto t = check_certificate(unverified(file, fp_a, true));
    CHECK(t.accepted);
    CHECK(t.how == "pinned certificate " + fp_a);
    REQUIRE(t.lines.size() == 4);
    CHECK(t.lines[1] == "The server's certificate is not signed by an authority this machine trusts.");
    CHECK(t.lines[2] == "Its fingerprint is " + fp_a);
    CHECK(t.lines[3] == "Trusted on first use (--tls-pin) and pinned in " + file.string() +
                            ", line 1: another certificate from 127.0.0.1:15600 will be refused.");
    CHECK(file_text(file) == "127.0.0.1:15600 " + fp_a + "\n");
    for (const bool pin : {false, true}) {
      t = check_certificate(unverified(file, fp_a, pin));
      CHECK(t.accepted);
      CHECK(t.lines.empty());
      CHECK(t.how == "pinned certificate " + fp_a);
    }
    CHECK(file_text(file) == "127.0.0.1:15600 " + fp_a + "\n");  // pinned once
  }
  SECTION("another certificate for a pinned server is refused loudly, and the pin stays") {
    std::ofstream(file) << "# comment\nbad line\nother:1 " << fp_b << "\n127.0.0.1:15600 " << fp_a << "\n";
    for (const bool pin : {false, true}) {
      const auto t = check_certificate(unverified(file, fp_b, pin));
      CHECK_FALSE(t.accepted);
      REQUIRE(t.lines.size() == 4);
      CHECK(t.lines[0] == "WARNING: the certificate of 127.0.0.1:15600 has changed since it was pinned!");
      CHECK(t.lines[1].starts_with("Someone could be listening in on this connection"));
      CHECK(t.lines[2] == "It now shows " + fp_b + "; line 4 of " + file.string() + " pinned " + fp_a + ".");
      CHECK(t.lines[3] == "Not connected. If you trust the change, remove line 4 of " + file.string() +
                              " and connect again with --tls-pin.");
      REQUIRE(t.warnings.size() == 1);
      CHECK(t.warnings[0] == file.string() + ": line 2: not 'HOST:PORT SHA256:<fingerprint>'; ignored");
    }
    CHECK(file_text(file).ends_with("127.0.0.1:15600 " + fp_a + "\n"));
  }
  SECTION("a pin for another port is another server") {
    std::ofstream(file) << "127.0.0.1:15601 " << fp_b << "\n";
    const auto t = check_certificate(unverified(file, fp_a, false));
    CHECK_FALSE(t.accepted);
    CHECK(t.lines[0].starts_with("The certificate of 127.0.0.1:15600 did not verify"));
  }
  SECTION("no file to pin in is said") {
    const auto t = check_certificate(unverified({}, fp_a, true));
    CHECK_FALSE(t.accepted);
    CHECK(t.lines.back().find("--known-servers FILE") != std::string::npos);
  }
}

TEST_CASE("chatclient warns about a room password in clear text only when it would cross the network",
          "[known-servers]") {
  chat::ClientOptions o;
  o.password = "secret";
  o.host = "192.168.1.20";
  CHECK(chat::clear_text_password_warning(o) ==
        "warning: the room password crosses the network in clear text (--tls encrypts it)");
  o.tls = true;
  CHECK_FALSE(chat::clear_text_password_warning(o));
  o.tls = false;
  for (const char* local : {"127.0.0.1", "127.1.2.3", "localhost", "::1"}) {
    o.host = local;
    CHECK_FALSE(chat::clear_text_password_warning(o));
  }
  o.servers = {{"127.0.0.1", 15600}, {"chat.lan", 15600}};  // one of several is enough
  CHECK(chat::clear_text_password_warning(o));
  o.password.clear();
  CHECK_FALSE(chat::clear_text_password_warning(o));
}

TEST_CASE("the screen model shows TLS in the status line and the certificate's lines in the pane",
          "[known-servers]") {
  chat::ScreenModel model("127.0.0.1:15600", "alice");
  const auto at = chat::Moment::now();
  chat::LinkEvent connecting;
  connecting.kind = chat::LinkEvent::Kind::connecting;
  connecting.text = "127.0.0.1:15600";
  model.apply(connecting, at);

  chat::LinkEvent pinned;
  pinned.kind = chat::LinkEvent::Kind::certificate;
  pinned.lines = {"The server's certificate is not signed by an authority this machine trusts.",
                  "Its fingerprint is " + fp_a};
  model.apply(pinned, at);
  chat::LinkEvent secured;
  secured.kind = chat::LinkEvent::Kind::secured;
  secured.server = "127.0.0.1:15600";
  secured.tls = "TLSv1.3 TLS_AES_256_GCM_SHA384";
  secured.text = "pinned certificate " + fp_a;
  model.apply(secured, at);
  chat::LinkEvent joined;
  joined.kind = chat::LinkEvent::Kind::joined;
  joined.nick = "alice";
  model.apply(joined, at);

  const auto& lines = model.lines();
  std::string text;
  for (const auto& line : lines) text += line.text + "\n";
  CHECK(text.find("*** The server's certificate is not signed by an authority this machine trusts.\n"
                  "*** Its fingerprint is " + fp_a + "\n"
                  "*** connected to 127.0.0.1:15600 over TLSv1.3 TLS_AES_256_GCM_SHA384 (pinned certificate " +
                  fp_a + ")\n") != std::string::npos);
  CHECK(model.status(std::chrono::steady_clock::now()).starts_with("127.0.0.1:15600 | alice | connected over TLSv1.3 | "));

  // A refusal is red; the next connection attempt forgets the TLS of the last one.
  chat::LinkEvent refused;
  refused.kind = chat::LinkEvent::Kind::certificate;
  refused.error = true;
  refused.lines = {"WARNING: the certificate of 127.0.0.1:15600 has changed since it was pinned!"};
  model.apply(refused, at);
  CHECK(model.lines().back().category == chat::Category::error);
  model.apply(connecting, at);
  model.apply(joined, at);
  CHECK(model.status(std::chrono::steady_clock::now()).starts_with("127.0.0.1:15600 | alice | connected | "));
}
