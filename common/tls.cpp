#include "common/tls.hpp"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <functional>
#include <new>

namespace chat::tls {
namespace {

// Mozilla's "intermediate" TLS 1.2 list without the finite-field DHE suites: ECDHE key
// exchange (forward secrecy) and AEAD ciphers only. TLS 1.3's suites are OpenSSL's defaults
// (all AEAD).
constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* groups = "X25519:P-256:P-384";

struct CtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

Context limited_context(const SSL_METHOD* method, std::string& error) {
  std::unique_ptr<SSL_CTX, CtxFree> ctx(SSL_CTX_new(method));
  if (!ctx) {
    error = last_error("cannot make a TLS context");
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Idle connections give their read and write buffers back (tens of KiB each).
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(ctx.get(), tls12_ciphers) != 1 || SSL_CTX_set1_groups_list(ctx.get(), groups) != 1) {
    error = last_error("cannot set the TLS ciphers");
    return nullptr;
  }
  return Context(ctx.release(), CtxFree{});
}

std::unique_ptr<X509, X509Free> read_certificate(const std::string& file) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_file(file.c_str(), "r"));
  if (!bio) return nullptr;
  return std::unique_ptr<X509, X509Free>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

std::string base64_unpadded(const unsigned char* data, int size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, size);
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  return out;
}

std::string asn1_date(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return "?";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

bool is_ip_address(const std::string& name) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

bool write_file(const std::string& path, mode_t mode, const std::function<bool(BIO*)>& body) {
  // Made with its mode from the start (a key is never readable by others, not even briefly).
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return false;
  ::fchmod(fd, mode);  // a file that was there keeps its mode through O_CREAT
  FILE* f = ::fdopen(fd, "w");
  if (f == nullptr) {
    ::close(fd);
    return false;
  }
  std::unique_ptr<BIO, BioFree> bio(BIO_new_fp(f, BIO_CLOSE));
  if (!bio) {
    std::fclose(f);
    return false;
  }
  return body(bio.get()) && BIO_flush(bio.get()) == 1;
}

}  // namespace

bool looks_like_client_hello(std::string_view first) {
  if (first.empty()) return false;
  const auto b0 = static_cast<unsigned char>(first[0]);
  // An SSL 2 style hello (a scanner's: a two-byte length with the top bit set, then type 1) is
  // no text either: OpenSSL refuses it, with an alert, rather than the client being greeted.
  if ((b0 & 0x80) != 0 && first.size() >= 3 && first[2] == 1) return true;
  if (b0 != handshake_record) return false;
  // A TLS record's version is 3.1 (TLS 1.0, what a ClientHello's record says) to 3.4.
  return first.size() < 2 || first[1] == 3;
}

std::string last_error(std::string_view fallback) {
  std::string text;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!text.empty()) text += "; ";
    // "error:0A000086:SSL routines::certificate verify failed": the reason is what people read.
    const char* reason = ERR_reason_error_string(e);
    text += reason != nullptr ? reason : buf;
  }
  return text.empty() ? std::string(fallback) : text;
}

Context server_context(const std::string& cert_file, const std::string& key_file, std::string& error) {
  Context ctx = limited_context(TLS_server_method(), error);
  if (!ctx) return nullptr;
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1) {
    error = cert_file + ": " + last_error("cannot read the certificate");
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    error = key_file + ": " + last_error("cannot read the key");
    return nullptr;
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    error = key_file + " is not the key of " + cert_file;
    ERR_clear_error();
    return nullptr;
  }
  return ctx;
}

Context client_context(std::string& error) {
  Context ctx = limited_context(TLS_client_method(), error);
  if (!ctx) return nullptr;
  SSL_CTX_set_default_verify_paths(ctx.get());
  // Verified after the handshake (Engine::verify_result): a pinned certificate may stand in.
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  return ctx;
}

std::string fingerprint(X509* cert) {
  if (cert == nullptr) return {};
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (X509_digest(cert, EVP_sha256(), md, &n) != 1) return {};
  return "SHA256:" + base64_unpadded(md, static_cast<int>(n));
}

std::optional<std::string> file_fingerprint(const std::string& cert_file) {
  auto cert = read_certificate(cert_file);
  if (!cert) {
    ERR_clear_error();
    return std::nullopt;
  }
  return fingerprint(cert.get());
}

std::string describe_certificate(X509* cert) {
  if (cert == nullptr) return "no certificate";
  char name[256] = "?";
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, name, sizeof name);
  return std::string("CN=") + name + ", expires " + asn1_date(X509_get0_notAfter(cert));
}

std::optional<std::string> describe_certificate_file(const std::string& cert_file) {
  auto cert = read_certificate(cert_file);
  if (!cert) {
    ERR_clear_error();
    return std::nullopt;
  }
  return describe_certificate(cert.get());
}

std::vector<std::string> local_names() {
  std::vector<std::string> names;
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0 && host[0] != '\0') names.emplace_back(host);
  names.emplace_back("localhost");
  names.emplace_back("127.0.0.1");
  names.emplace_back("::1");
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) == 0) {
    for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
      if (a->ifa_addr == nullptr || (a->ifa_flags & IFF_LOOPBACK) != 0) continue;
      char text[INET6_ADDRSTRLEN] = {};
      if (a->ifa_addr->sa_family == AF_INET) {
        inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, text, sizeof text);
      } else if (a->ifa_addr->sa_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<sockaddr_in6*>(a->ifa_addr);
        if (IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr)) continue;  // needs a zone: no use in a URL
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
      } else {
        continue;
      }
      if (std::find(names.begin(), names.end(), text) == names.end()) names.emplace_back(text);
    }
    ::freeifaddrs(list);
  }
  return names;
}

std::optional<SelfSigned> make_self_signed(const std::string& dir, const std::vector<std::string>& names,
                                           std::string& error) {
  namespace fs = std::filesystem;
  SelfSigned out{(fs::path(dir) / "cert.pem").string(), (fs::path(dir) / "key.pem").string(), false};
  std::error_code ec;
  if (fs::exists(out.cert_file, ec) && fs::exists(out.key_file, ec)) {
    auto cert = read_certificate(out.cert_file);
    ERR_clear_error();
    int days = 0, seconds = 0;
    if (cert && ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(cert.get())) == 1 && days >= 30) return out;
    // Unreadable, or it expires soon: a new one, the old kept beside it.
    fs::rename(out.cert_file, out.cert_file + ".old", ec);
    fs::rename(out.key_file, out.key_file + ".old", ec);
    out.renewed = true;
  }
  if (!fs::exists(dir, ec)) {
    if (!fs::create_directories(dir, ec)) {
      error = "cannot make " + dir + ": " + ec.message();
      return std::nullopt;
    }
    ::chmod(dir.c_str(), 0700);
  }
  std::unique_ptr<EVP_PKEY, PkeyFree> key(EVP_EC_gen("P-256"));
  std::unique_ptr<X509, X509Free> cert(X509_new());
  if (!key || !cert) {
    error = last_error("cannot make a key");
    return std::nullopt;
  }
  X509_set_version(cert.get(), 2);  // v3
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);  // a clock a little behind still accepts it
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 397L * 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  const std::string cn = names.empty() ? std::string("chatserver") : names.front();
  X509_NAME* subject = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("chat"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(cert.get(), subject);
  std::string san;
  for (const auto& name : names) {
    if (!san.empty()) san += ',';
    san += (is_ip_address(name) ? "IP:" : "DNS:") + name;
  }
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
  const std::vector<std::pair<int, std::string>> extensions = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, "serverAuth"},
      {NID_subject_alt_name, san},
      {NID_subject_key_identifier, "hash"},
  };
  for (const auto& [nid, value] : extensions) {
    if (value.empty()) continue;
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
    if (ext == nullptr || X509_add_ext(cert.get(), ext, -1) != 1) {
      X509_EXTENSION_free(ext);
      error = last_error("cannot make the certificate's extensions");
      return std::nullopt;
    }
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
    error = last_error("cannot sign the certificate");
    return std::nullopt;
  }
  EVP_PKEY* k = key.get();
  X509* c = cert.get();
  if (!write_file(out.key_file, 0600,
                  [k](BIO* b) { return PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr) == 1; })) {
    error = "cannot write " + out.key_file + ": " + std::strerror(errno);
    return std::nullopt;
  }
  if (!write_file(out.cert_file, 0644, [c](BIO* b) { return PEM_write_bio_X509(b, c) == 1; })) {
    error = "cannot write " + out.cert_file + ": " + std::strerror(errno);
    return std::nullopt;
  }
  out.created = true;
  return out;
}

void release_thread_state() { OPENSSL_thread_stop(); }

// ---- Engine ----------------------------------------------------------------------------------

// The BIO between OpenSSL and an Engine's two strings.
struct EngineBio {
  // Strings keep their capacity when emptied; one that grew for a large batch gives it back.
  static constexpr std::size_t keep_capacity = 16 * 1024;

  static Engine* of(BIO* b) { return static_cast<Engine*>(BIO_get_data(b)); }
  static int read(BIO* b, char* to, int size) {
    BIO_clear_retry_flags(b);
    Engine* e = of(b);
    const std::size_t left = e->in_.size() - e->in_at_;
    if (left == 0) {
      BIO_set_retry_read(b);  // nothing yet: "try again later", not the end of the stream
      return -1;
    }
    const std::size_t n = std::min<std::size_t>(left, static_cast<std::size_t>(size));
    std::memcpy(to, e->in_.data() + e->in_at_, n);
    e->in_at_ += n;
    if (e->in_at_ == e->in_.size()) {
      e->in_at_ = 0;
      if (e->in_.capacity() > keep_capacity) {
        std::string().swap(e->in_);
      } else {
        e->in_.clear();
      }
    }
    return static_cast<int>(n);
  }
  static int write(BIO* b, const char* from, int size) {
    BIO_clear_retry_flags(b);
    of(b)->out_.append(from, static_cast<std::size_t>(size));
    return size;
  }
  static long ctrl(BIO*, int cmd, long, void*) {
    // OpenSSL flushes after each flight of handshake messages: the bytes are already in out_.
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
  }
  static int create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
  }
  static const BIO_METHOD* method() {
    static BIO_METHOD* m = [] {
      BIO_METHOD* made = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "chat tls engine");
      BIO_meth_set_read(made, &EngineBio::read);
      BIO_meth_set_write(made, &EngineBio::write);
      BIO_meth_set_ctrl(made, &EngineBio::ctrl);
      BIO_meth_set_create(made, &EngineBio::create);
      return made;
    }();
    return m;
  }
};

Engine::Engine(const Context& context, Role role, const std::string& host) {
  ssl_ = SSL_new(context.get());
  BIO* bio = EngineBio::method() != nullptr ? BIO_new(EngineBio::method()) : nullptr;
  if (ssl_ == nullptr || bio == nullptr) {
    BIO_free(bio);
    SSL_free(ssl_);
    throw std::bad_alloc();
  }
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);  // one BIO both ways: SSL_free frees it
  if (role == Role::server) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
    if (!host.empty()) {
      unsigned char ip[sizeof(in6_addr)];
      const bool is_ip = inet_pton(AF_INET, host.c_str(), ip) == 1 || inet_pton(AF_INET6, host.c_str(), ip) == 1;
      if (is_ip) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str());
      } else {
        SSL_set_tlsext_host_name(ssl_, host.c_str());  // SNI is for names only
        SSL_set1_host(ssl_, host.c_str());
      }
    }
  }
}

Engine::~Engine() { SSL_free(ssl_); }

Engine::Status Engine::fail(std::string_view what) {
  error_ = last_error(what);
  return Status::failed;
}

void Engine::put_input(std::string_view bytes) { in_.append(bytes); }

Engine::Status Engine::start_handshake() {
  ERR_clear_error();  // SSL_get_error reads this thread's queue: nothing from before may be in it
  const int r = SSL_do_handshake(ssl_);
  if (r == 1) return Status::ok;
  const int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return Status::ok;
  return fail("the TLS handshake failed");
}

bool Engine::established() const { return SSL_is_init_finished(ssl_) == 1; }

Engine::Status Engine::read(std::string& plain, std::size_t max) {
  if (peer_closed_) return Status::closed;
  if (!error_.empty()) return Status::failed;
  ERR_clear_error();
  if (!established()) {
    const int r = SSL_do_handshake(ssl_);
    if (r != 1) {
      const int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return Status::ok;
      return fail("the TLS handshake failed");
    }
  }
  std::size_t got = 0;
  char buf[16 * 1024];
  while (got < max) {
    const int want = static_cast<int>(std::min(sizeof buf, max - got));
    const int r = SSL_read(ssl_, buf, want);
    if (r > 0) {
      plain.append(buf, static_cast<std::size_t>(r));
      got += static_cast<std::size_t>(r);
      continue;
    }
    const int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return Status::ok;
    if (e == SSL_ERROR_ZERO_RETURN) {
      peer_closed_ = true;
      return Status::closed;
    }
    return fail("bad TLS data");
  }
  return Status::ok;
}

bool Engine::write(std::string_view plain) {
  if (!error_.empty() || !established()) return false;
  ERR_clear_error();
  while (!plain.empty()) {
    // A memory BIO takes everything: SSL_write returns the whole piece (records of 16 KiB).
    const int n = std::min<std::size_t>(plain.size(), 1 << 30);
    const int r = SSL_write(ssl_, plain.data(), n);
    if (r <= 0) {
      fail("cannot encrypt");
      return false;
    }
    plain.remove_prefix(static_cast<std::size_t>(r));
  }
  return true;
}

void Engine::close_notify() {
  if (sent_close_ || !established()) return;
  sent_close_ = true;
  SSL_shutdown(ssl_);
  ERR_clear_error();
}

void Engine::consume_output(std::size_t bytes) {
  out_at_ += std::min(bytes, out_.size() - out_at_);
  if (out_at_ == out_.size()) {
    out_at_ = 0;
    out_.clear();
  }
}

void Engine::trim_output() {
  if (out_.empty() && out_.capacity() > EngineBio::keep_capacity) std::string().swap(out_);
}

std::string Engine::take_output() {
  std::string out(output());
  consume_output(out.size());
  return out;
}

std::string Engine::describe() const {
  if (!established()) return "TLS (handshake not finished)";
  return std::string(SSL_get_version(ssl_)) + " " + SSL_CIPHER_get_name(SSL_get_current_cipher(ssl_));
}

std::string Engine::peer_fingerprint() const {
  X509* cert = SSL_get0_peer_certificate(ssl_);
  return fingerprint(cert);
}

std::string Engine::verify_result() const {
  if (SSL_get0_peer_certificate(ssl_) == nullptr) return "the server sent no certificate";
  const long r = SSL_get_verify_result(ssl_);
  if (r == X509_V_OK) return {};
  return X509_verify_cert_error_string(r);
}

}  // namespace chat::tls
