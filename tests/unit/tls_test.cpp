// common/tls: two Engines talking through memory (no sockets): the handshake, data both ways,
// close_notify, garbage; the ClientHello sniff; self-signed certificates and fingerprints.
#include "common/tls.hpp"

#include "tests/support/files.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

using chat::tls::Engine;

namespace {

// Moves each side's output to the other until neither has anything to say.
void pump(Engine& a, Engine& b, std::string& a_got, std::string& b_got) {
  for (int round = 0; round < 20; ++round) {
    const std::string to_b = a.take_output();
    const std::string to_a = b.take_output();
    if (to_a.empty() && to_b.empty()) return;
    b.put_input(to_b);
    a.put_input(to_a);
    a.read(a_got, 1 << 20);
    b.read(b_got, 1 << 20);
  }
}

struct Pair {
  chat::test::TempDir dir{"chat_tls_unit"};
  chat::tls::Context server_ctx;
  chat::tls::Context client_ctx;
  std::string cert_file;
  Pair() {
    std::string error;
    const auto made = chat::tls::make_self_signed((dir.path() / "tls").string(), {"chat.test", "127.0.0.1"}, error);
    REQUIRE(made);
    cert_file = made->cert_file;
    server_ctx = chat::tls::server_context(made->cert_file, made->key_file, error);
    REQUIRE(server_ctx);
    client_ctx = chat::tls::client_context(error);
    REQUIRE(client_ctx);
  }
};

}  // namespace

TEST_CASE("tls: a ClientHello's first bytes are told from text and HTTP", "[tls]") {
  CHECK(chat::tls::looks_like_client_hello(std::string("\x16\x03\x01\x02\x00", 5)));
  CHECK(chat::tls::looks_like_client_hello(std::string("\x16", 1)));
  CHECK(chat::tls::looks_like_client_hello(std::string("\x80\x2e\x01", 3)));  // SSL 2 style, a scanner's
  CHECK_FALSE(chat::tls::looks_like_client_hello("HELLO alice"));
  CHECK_FALSE(chat::tls::looks_like_client_hello("GET / HTTP/1.1"));
  CHECK_FALSE(chat::tls::looks_like_client_hello(std::string("\x16\x41", 2)));
  CHECK_FALSE(chat::tls::looks_like_client_hello(""));
}

TEST_CASE("tls: two engines shake hands through memory and carry lines both ways", "[tls]") {
  Pair p;
  Engine server(p.server_ctx, Engine::Role::server);
  Engine client(p.client_ctx, Engine::Role::client, "127.0.0.1");
  REQUIRE(client.start_handshake() == Engine::Status::ok);
  std::string at_server, at_client;
  pump(client, server, at_client, at_server);
  REQUIRE(client.established());
  REQUIRE(server.established());
  CHECK(client.describe().rfind("TLSv1.3 ", 0) == 0);
  // Self-signed: not trusted by the system, but the name matches and the fingerprint is the file's.
  CHECK_FALSE(client.verify_result().empty());
  CHECK(client.peer_fingerprint() == chat::tls::file_fingerprint(p.cert_file).value_or("?"));
  CHECK(client.peer_fingerprint().rfind("SHA256:", 0) == 0);
  CHECK(client.peer_fingerprint().size() == 7 + 43);  // 32 bytes, base64 without padding

  REQUIRE(client.write("HELLO alice\n"));
  const std::string big(100'000, 'x');  // several records
  REQUIRE(server.write(big));
  pump(client, server, at_client, at_server);
  CHECK(at_server == "HELLO alice\n");
  CHECK(at_client == big);
  // Output strings give their memory back once taken.
  CHECK(server.output_size() == 0);

  client.close_notify();
  std::string more;
  server.put_input(client.take_output());
  CHECK(server.read(more, 1024) == Engine::Status::closed);
  CHECK(server.peer_closed());
}

TEST_CASE("tls: garbage instead of a ClientHello fails with a reason, and an alert to send", "[tls]") {
  Pair p;
  Engine server(p.server_ctx, Engine::Role::server);
  server.put_input(std::string("\x16\x03\x01\x00\x10", 5) + std::string(16, 'z'));
  std::string plain;
  CHECK(server.read(plain, 1024) == Engine::Status::failed);
  CHECK_FALSE(server.error().empty());
  CHECK(server.output_size() > 0);  // the alert
  CHECK_FALSE(server.write("x"));
}

TEST_CASE("tls: --self-signed makes a key only its owner reads, and reuses it", "[tls]") {
  chat::test::TempDir dir("chat_tls_self");
  const auto where = (dir.path() / "made").string();
  std::string error;
  const auto first = chat::tls::make_self_signed(where, chat::tls::local_names(), error);
  REQUIRE(first);
  CHECK(first->created);
  CHECK(chat::test::mode_of(first->key_file) == 0600);
  CHECK(chat::test::mode_of(where) == 0700);
  const auto print = chat::tls::file_fingerprint(first->cert_file);
  const auto again = chat::tls::make_self_signed(where, chat::tls::local_names(), error);
  REQUIRE(again);
  CHECK_FALSE(again->created);
  CHECK(chat::tls::file_fingerprint(again->cert_file) == print);
  CHECK(chat::tls::describe_certificate_file(first->cert_file).value_or("").find("expires ") != std::string::npos);
  // A key that is not the certificate's is refused with a reason.
  const auto other = chat::tls::make_self_signed((dir.path() / "other").string(), {"x"}, error);
  REQUIRE(other);
  CHECK_FALSE(chat::tls::server_context(first->cert_file, other->key_file, error));
  CHECK(error.find("mismatch") != std::string::npos);
  CHECK_FALSE(chat::tls::server_context((dir.path() / "none.pem").string(), first->key_file, error));
  CHECK(error.find("none.pem") != std::string::npos);
}
