// chatlab over TLS (chatlab --tls, and the tls-* scenarios): the certificate the lab's
// chatserver gets for one run, and the client side of a handshake for the observer and the
// victim.
//
// The clients run a tls::Engine on their own blocking sockets and move its ciphertext with the
// same recv(2)/send(2) they use for clear text (OpenSSL never touches a socket, common/tls.hpp).
// They talk only to the chatserver chatlab started a moment before with a certificate chatlab
// made for that run, so they verify nothing, on purpose: tls::client_context() checks nothing
// during the handshake, and the lab never asks Engine::verify_result(). A client that talks to
// a server it did not start must verify or pin the certificate (chatclient --tls-pin).
//
// Threads: a LabCertificate is made and removed by the thread that runs the scenario (the main
// thread). client_handshake() runs on the thread that owns the engine at that moment: the
// victim's only thread, or the thread that constructs an Observer, before its reader starts.
#pragma once

#include "common/tls.hpp"

#include <chrono>
#include <memory>
#include <string>

namespace chat::lab {

// A self-signed certificate and its key (tls::make_self_signed) in a directory of their own
// under $TMPDIR (or /tmp), removed with everything in it by the destructor. Throws
// std::runtime_error with the reason if it cannot be made.
class LabCertificate {
 public:
  LabCertificate();
  ~LabCertificate();
  LabCertificate(const LabCertificate&) = delete;
  LabCertificate& operator=(const LabCertificate&) = delete;

  const std::string& dir() const { return dir_; }
  const std::string& cert_file() const { return cert_file_; }
  const std::string& key_file() const { return key_file_; }
  // "SHA256:...", as chatserver's log and chatclient --tls-pin show it.
  const std::string& fingerprint() const { return fingerprint_; }

 private:
  std::string dir_;
  std::string cert_file_;
  std::string key_file_;
  std::string fingerprint_;
};

// tls::client_context(), made once and shared (a context is immutable and thread safe). Throws
// std::runtime_error if OpenSSL cannot make it.
tls::Context lab_client_context();

// A client engine with its ClientHello already made, waiting in its output: made before the
// connection, so that the ClientHello follows the connect at once. (chatserver takes a client
// that says nothing for 100 ms for a clear-text one and greets it, in clear text: a TLS client
// that is late with its ClientHello fails its handshake with "wrong version number".) Throws
// std::runtime_error.
std::unique_ptr<tls::Engine> ready_client(const std::string& host);

// Runs the client side of the handshake on the connected blocking socket `fd`: the ClientHello
// out (made now unless ready_client made it), the server's flights in, until the engine is
// established or `timeout` has passed. Returns the plaintext that came with the handshake's
// last bytes (usually none). Throws std::runtime_error saying what went wrong (the server
// closed, bad records, the timeout).
std::string client_handshake(tls::Engine& engine, int fd, std::chrono::milliseconds timeout);

}  // namespace chat::lab
