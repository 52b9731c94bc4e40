// TLS with OpenSSL, for the server and the clients alike, without OpenSSL touching a socket.
//
//   Engine        one connection's TLS state (an SSL with two memory BIOs): ciphertext the
//                 caller received goes in (put_input), plaintext comes out (read); plaintext
//                 goes in (write), ciphertext for the caller to send comes out (take_output).
//                 OpenSSL never reads or writes the socket, so it never blocks and never waits:
//                 the caller's own recv(2)/send(2)/poll(2) do, as they do for clear text. That is
//                 what lets the server's reader and writer threads share one SSL object with a
//                 lock held only for the crypto (server/tls_transport.hpp, docs/threads.md).
//   server_context()  TLS 1.2 minimum, forward-secret AEAD ciphers only, no renegotiation, no
//                 compression; the certificate chain and key from PEM files.
//   client_context()  the same limits; verification against the system's authorities is
//                 checked after the handshake (Engine::verify_result) so that a client may pin
//                 a self-signed certificate instead (client/link.cpp, --tls-pin).
//   make_self_signed  an ECDSA P-256 key and a self-signed certificate for a LAN server
//                 (chatserver --self-signed DIR).
//   fingerprint   "SHA256:<base64>", the way ssh shows a host key.
//
// Threads: a Context is immutable once made and may be shared by every thread (OpenSSL's
// SSL_CTX is reference counted and thread safe for making SSL objects). An Engine is used by one
// thread at a time: its owner serialises the calls (the server's TlsTransport holds a mutex
// around each one; a client's network thread is its only user).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct ssl_ctx_st;
struct ssl_st;
struct x509_st;

namespace chat::tls {

using Context = std::shared_ptr<ssl_ctx_st>;

// The first byte of a TLS record that carries a handshake message (a ClientHello).
constexpr unsigned char handshake_record = 0x16;
// Do these first bytes of a connection begin a TLS ClientHello? (0x16, then version 3.x; the
// first byte alone counts as yes: no line or HTTP request starts with 0x16.)
bool looks_like_client_hello(std::string_view first_bytes);

// A server context with the certificate chain and key in PEM files. nullptr and `error` set if
// they cannot be read or do not match.
Context server_context(const std::string& cert_file, const std::string& key_file, std::string& error);
// A client context: the system's certificate authorities, the same protocol limits.
Context client_context(std::string& error);

// OpenSSL's error queue as one line (and emptied): "error:0A000086:SSL routines::certificate
// verify failed". `fallback` if the queue is empty.
std::string last_error(std::string_view fallback = "unknown TLS error");

// "SHA256:mCz0...", base64 without padding, as ssh-keygen -l shows a key: of the DER certificate.
std::string fingerprint(x509_st* cert);
// The same fingerprint of the first certificate in a PEM file (nullopt: unreadable).
std::optional<std::string> file_fingerprint(const std::string& cert_file);
// "CN=chat.lan, expires 2029-03-04": for logs.
std::string describe_certificate(x509_st* cert);
std::optional<std::string> describe_certificate_file(const std::string& cert_file);

struct SelfSigned {
  std::string cert_file;  // DIR/cert.pem
  std::string key_file;   // DIR/key.pem (mode 0600)
  bool created = false;   // false: they were there already and are reused
  bool renewed = false;   // created because the one there expires within 30 days (kept as *.old)
};
// Makes DIR (0700) and a key and certificate in it for `names` (host names, and IP addresses
// written as such: they become the certificate's subjectAltName entries), valid for 397 days
// (what browsers accept of a server certificate), unless DIR already holds both files and the
// certificate is good for 30 days more. nullopt and `error` set on failure.
std::optional<SelfSigned> make_self_signed(const std::string& dir, const std::vector<std::string>& names,
                                           std::string& error);
// This machine's names for a certificate: its host name, localhost, 127.0.0.1, ::1 and the
// addresses of its network interfaces.
std::vector<std::string> local_names();

// The calling thread's OpenSSL state (its random generators, error queue) is given back; made
// again if the thread calls OpenSSL later. A reader thread that has done its handshake calls it:
// with 10,000 readers each keeping it, it adds up.
void release_thread_state();

class Engine {
 public:
  enum class Role { server, client };
  enum class Status {
    ok,      // go on: more plaintext may come with more input
    closed,  // the peer sent close_notify: nothing more will come
    failed,  // a protocol error or a failed handshake: error() says which
  };

  // `host`: the client's server name (SNI, and the name the certificate must carry); unused
  // by a server.
  Engine(const Context& context, Role role, const std::string& host = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Ciphertext from the peer, as received.
  void put_input(std::string_view bytes);
  // Runs the handshake as far as the input allows and then decrypts: appends at most
  // `max` bytes of plaintext to `plain` (call again while it appends `max`: more is there).
  Status read(std::string& plain, std::size_t max);
  // A client starts the handshake with this (its ClientHello goes to the output).
  Status start_handshake();
  bool established() const;
  // Plaintext to send: all of it is encrypted into the output. False (error() says why) if the
  // connection failed or is not established yet.
  bool write(std::string_view plain);
  // The polite end: a close_notify alert into the output. Once.
  void close_notify();
  bool peer_closed() const { return peer_closed_; }

  // Ciphertext waiting to be sent: look at it, then say how much the socket took.
  std::string_view output() const { return std::string_view(out_).substr(out_at_); }
  void consume_output(std::size_t bytes);
  // Gives the output string's memory back if it is empty and large (a busy connection keeps it
  // from batch to batch; an idle one should not).
  void trim_output();
  // Room for `bytes` more output: a batch's records are appended without the string doubling
  // (64 KiB doubled is 128 KiB, where malloc maps and unmaps fresh pages every time).
  void reserve_output(std::size_t bytes) { out_.reserve(out_.size() + bytes); }
  std::size_t output_size() const { return out_.size() - out_at_; }
  std::string take_output();

  const std::string& error() const { return error_; }
  // "TLSv1.3 TLS_AES_256_GCM_SHA384" once established.
  std::string describe() const;
  // The peer's certificate (a client's view of its server): its fingerprint ("" if none), and
  // the verification against the system's authorities and `host`: "" if it passed, else why.
  std::string peer_fingerprint() const;
  std::string verify_result() const;

 private:
  friend struct EngineBio;
  Status fail(std::string_view what);

  // OpenSSL reads the input and writes the output through a BIO of ours (EngineBio): the
  // bytes are kept in these strings, which give their memory back once empty (an idle
  // connection keeps no buffer; OpenSSL's own go with SSL_MODE_RELEASE_BUFFERS).
  ssl_st* ssl_ = nullptr;
  std::string in_;          // received, not yet read by OpenSSL, from in_at_ on
  std::size_t in_at_ = 0;
  std::string out_;         // to send, from out_at_ on
  std::size_t out_at_ = 0;
  bool peer_closed_ = false;
  bool sent_close_ = false;
  std::string error_;
};

}  // namespace chat::tls
