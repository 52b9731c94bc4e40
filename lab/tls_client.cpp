#include "lab/tls_client.hpp"

#include "lab/observer.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace chat::lab {

LabCertificate::LabCertificate() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/chatlab-tls-XXXXXX";
  std::vector<char> path(pattern.begin(), pattern.end());
  path.push_back('\0');
  if (::mkdtemp(path.data()) == nullptr) {
    throw std::system_error(errno, std::generic_category(), "cannot make a directory for the lab's certificate (" +
                                                                pattern + ")");
  }
  dir_ = path.data();
  std::string error;
  // The names do not matter (the lab's clients verify nothing); these say what it is for.
  const auto made = tls::make_self_signed(dir_, {"chatlab", "127.0.0.1", "localhost"}, error);
  if (!made) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    throw std::runtime_error("cannot make the lab's TLS certificate in " + dir_ + ": " + error);
  }
  cert_file_ = made->cert_file;
  key_file_ = made->key_file;
  fingerprint_ = tls::file_fingerprint(cert_file_).value_or("?");
}

LabCertificate::~LabCertificate() {
  std::error_code ignored;  // nothing to do about a directory that will not go; /tmp is cleaned
  std::filesystem::remove_all(dir_, ignored);
}

tls::Context lab_client_context() {
  static const tls::Context context = [] {
    std::string error;
    auto made = tls::client_context(error);
    if (!made) throw std::runtime_error("cannot make a TLS client context: " + error);
    return made;
  }();
  return context;
}

std::unique_ptr<tls::Engine> ready_client(const std::string& host) {
  auto engine = std::make_unique<tls::Engine>(lab_client_context(), tls::Engine::Role::client, host);
  if (engine->start_handshake() == tls::Engine::Status::failed) {
    throw std::runtime_error("TLS handshake: " + engine->error());
  }
  return engine;
}

std::string client_handshake(tls::Engine& engine, int fd, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // Again after ready_client: a handshake under way only waits for the server (no new output).
  if (engine.start_handshake() == tls::Engine::Status::failed) {
    throw std::runtime_error("TLS handshake: " + engine.error());
  }
  std::string plain;
  char chunk[16384];
  while (true) {
    if (engine.output_size() > 0 && !send_all(fd, engine.take_output())) {
      throw std::runtime_error(std::string("TLS handshake: send: ") + std::strerror(errno));
    }
    if (engine.established()) return plain;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    int ready = 0;
    if (left.count() > 0) {
      do {
        ready = ::poll(&p, 1, static_cast<int>(left.count()));
      } while (ready < 0 && errno == EINTR);
    }
    if (ready <= 0) throw std::runtime_error("TLS handshake: no answer within " + std::to_string(timeout.count()) + " ms");
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      throw std::runtime_error(std::string("TLS handshake: the server closed the connection (") +
                               (n == 0 ? "end of stream" : std::strerror(errno)) + ")");
    }
    engine.put_input(std::string_view(chunk, static_cast<std::size_t>(n)));
    const auto status = engine.read(plain, 1u << 20);
    if (status == tls::Engine::Status::failed) throw std::runtime_error("TLS handshake: " + engine.error());
    if (status == tls::Engine::Status::closed) throw std::runtime_error("TLS handshake: the server sent close_notify");
  }
}

}  // namespace chat::lab
