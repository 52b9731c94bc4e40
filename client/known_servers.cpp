#include "client/known_servers.hpp"

#include "common/server_list.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace chat {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string errno_text(int e) { return std::strerror(e); }

// The fields of a line, split on spaces and tabs.
std::vector<std::string_view> fields_of(std::string_view line) {
  std::vector<std::string_view> out;
  while (!line.empty()) {
    const auto start = line.find_first_not_of(" \t");
    if (start == std::string_view::npos) break;
    line.remove_prefix(start);
    const auto end = std::min(line.find_first_of(" \t"), line.size());
    out.push_back(line.substr(0, end));
    line.remove_prefix(end);
  }
  return out;
}

// "host:port" with an explicit port, as known_server_key() writes it; nullopt otherwise.
std::optional<std::string> server_of(std::string_view text) {
  if (text.find(',') != std::string_view::npos) return std::nullopt;
  try {
    const auto list = parse_server_list(text, 0);  // 0: no port given, which is not allowed here
    if (list.size() != 1 || list.front().port == 0) return std::nullopt;
    return known_server_key(list.front().host, list.front().port);
  } catch (const std::invalid_argument&) {
    return std::nullopt;
  }
}

// Makes the missing directories above `file`, each with mode 0700 (the others are left as
// they are).
bool make_parents(const std::filesystem::path& file, std::string& error) {
  const auto dir = file.parent_path();
  if (dir.empty()) return true;
  std::filesystem::path so_far;
  for (const auto& part : dir) {
    so_far /= part;
    if (::mkdir(so_far.c_str(), 0700) != 0 && errno != EEXIST) {
      error = "cannot make " + so_far.string() + ": " + errno_text(errno);
      return false;
    }
  }
  return true;
}

// The words for a verification failure that people read first, from OpenSSL's reason
// (X509_verify_cert_error_string's text); "" when the reason says it well enough alone.
std::string plain_words(const std::string& reason, const std::string& host) {
  const auto has = [&](std::string_view what) { return reason.find(what) != std::string::npos; };
  if (has("self-signed") || has("self signed") || has("issuer certificate") || has("verify the first certificate") ||
      has("unable to get local issuer")) {
    return "The server's certificate is not signed by an authority this machine trusts.";
  }
  if (has("hostname mismatch") || has("IP address mismatch")) {
    return "The server's certificate is not made out to " + host + ".";
  }
  if (has("has expired")) return "The server's certificate has expired.";
  if (has("not yet valid")) return "The server's certificate is not valid yet (is this machine's clock right?).";
  return {};
}

}  // namespace

bool looks_like_fingerprint(std::string_view text) {
  constexpr std::string_view prefix = "SHA256:";
  if (!text.starts_with(prefix)) return false;
  text.remove_prefix(prefix.size());
  // 32 bytes of SHA-256 are 43 base64 characters without the padding.
  if (text.size() != 43) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
  });
}

std::string known_server_key(const std::string& host, std::uint16_t port) {
  return ServerAddress{lower(host), port}.text();
}

KnownServers parse_known_servers(std::string_view text) {
  KnownServers out;
  std::size_t number = 0;
  while (!text.empty()) {
    const auto end = std::min(text.find('\n'), text.size());
    std::string_view line = text.substr(0, end);
    text.remove_prefix(std::min(end + 1, text.size()));
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto fields = fields_of(line);
    if (fields.empty() || fields.front().starts_with('#')) continue;
    std::optional<std::string> server;
    if (fields.size() == 2 && looks_like_fingerprint(fields[1])) server = server_of(fields[0]);
    if (!server) {
      out.warnings.push_back("line " + std::to_string(number) + ": not 'HOST:PORT SHA256:<fingerprint>'; ignored");
      continue;
    }
    out.entries.push_back(KnownServer{std::move(*server), std::string(fields[1]), number});
  }
  return out;
}

std::string default_known_servers_path() {
  const char* config = std::getenv("XDG_CONFIG_HOME");
  if (config != nullptr && config[0] == '/') return std::string(config) + "/chat/known_servers";
  const char* home = std::getenv("HOME");
  if (home != nullptr && home[0] == '/') return std::string(home) + "/.config/chat/known_servers";
  return {};
}

std::optional<KnownServers> read_known_servers(const std::string& path, std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return KnownServers{};
    error = "cannot read " + path + ": " + errno_text(errno);
    return std::nullopt;
  }
  std::string text;
  char buf[8192];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = "cannot read " + path + ": " + errno_text(errno);
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    if (text.size() + static_cast<std::size_t>(n) > max_known_servers_bytes) {
      error = path + " is larger than " + std::to_string(max_known_servers_bytes >> 20) +
              " MiB; not read (remove the lines you no longer need)";
      ::close(fd);
      return std::nullopt;
    }
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return parse_known_servers(text);
}

std::optional<std::size_t> pin_known_server(const std::string& path, const std::string& server,
                                            const std::string& fingerprint, std::string& error) {
  if (!make_parents(path, error)) return std::nullopt;
  // Made with its mode from the start; O_APPEND: a line written by another chatclient at the
  // same time is not overwritten.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = "cannot write " + path + ": " + errno_text(errno);
    return std::nullopt;
  }
  // The new line's number, and whether the last line lacks its LF (a hand-edited file).
  std::size_t lines = 0;
  char last = '\n';
  std::size_t size = 0;
  char buf[8192];
  while (size <= max_known_servers_bytes) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    size += static_cast<std::size_t>(n);
    lines += static_cast<std::size_t>(std::count(buf, buf + n, '\n'));
    last = buf[n - 1];
  }
  std::string line = (last == '\n' ? "" : "\n") + server + " " + fingerprint + "\n";
  if (last != '\n') ++lines;
  std::string_view rest = line;
  while (!rest.empty()) {
    const ssize_t n = ::write(fd, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = "cannot write " + path + ": " + errno_text(n < 0 ? errno : EIO);
      ::close(fd);
      return std::nullopt;
    }
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  if (::close(fd) != 0) {
    error = "cannot write " + path + ": " + errno_text(errno);
    return std::nullopt;
  }
  return lines + 1;
}

Trust check_certificate(const CertificateCheck& c) {
  Trust trust;
  if (c.verify_error.empty()) {
    trust.accepted = true;
    trust.how = "verified certificate";
    return trust;
  }
  const std::string fingerprint_line = "Its fingerprint is " + c.fingerprint;
  const auto explain = [&] {
    trust.lines.push_back("The certificate of " + c.server + " did not verify: " + c.verify_error + ".");
    if (auto words = plain_words(c.verify_error, c.host); !words.empty()) trust.lines.push_back(std::move(words));
    trust.lines.push_back(fingerprint_line);
  };

  if (c.known_servers.empty()) {
    explain();
    trust.lines.push_back(
        "Not connected: no file to pin certificates in (neither XDG_CONFIG_HOME nor HOME is set; name one with "
        "--known-servers FILE).");
    return trust;
  }
  std::string error;
  const auto known = read_known_servers(c.known_servers, error);
  if (!known) {
    explain();
    trust.lines.push_back("Not connected: the pinned certificates cannot be checked: " + error + ".");
    return trust;
  }
  for (const auto& warning : known->warnings) trust.warnings.push_back(c.known_servers + ": " + warning);

  std::vector<const KnownServer*> pins;
  for (const auto& entry : known->entries) {
    if (entry.server != c.server) continue;
    if (entry.fingerprint == c.fingerprint) {
      trust.accepted = true;
      trust.how = "pinned certificate " + c.fingerprint;
      return trust;
    }
    pins.push_back(&entry);
  }

  if (!pins.empty()) {
    // ssh's "REMOTE HOST IDENTIFICATION HAS CHANGED", never accepted here: the user decides.
    std::string numbers;
    for (const auto* pin : pins) numbers += (numbers.empty() ? "" : ", ") + std::to_string(pin->line);
    const std::string which = (pins.size() == 1 ? "line " : "lines ") + numbers + " of " + c.known_servers;
    trust.lines = {
        "WARNING: the certificate of " + c.server + " has changed since it was pinned!",
        "Someone could be listening in on this connection (a man-in-the-middle attack), or the server was given a "
        "new certificate.",
        "It now shows " + c.fingerprint + "; " + which + " pinned " + pins.front()->fingerprint + ".",
        "Not connected. If you trust the change, remove " + which + " and connect again with --tls-pin.",
    };
    return trust;
  }

  explain();
  if (!c.pin) {
    trust.lines.push_back("Not connected. If you know this is your server's certificate (compare the fingerprint with "
                          "whoever runs it), connect again with --tls-pin to trust it from now on (trust on first "
                          "use, as ssh does).");
    return trust;
  }
  trust.accepted = true;
  trust.how = "pinned certificate " + c.fingerprint;
  if (const auto line = pin_known_server(c.known_servers, c.server, c.fingerprint, error)) {
    trust.lines.push_back("Trusted on first use (--tls-pin) and pinned in " + c.known_servers + ", line " +
                          std::to_string(*line) + ": another certificate from " + c.server + " will be refused.");
  } else {
    trust.lines.push_back("Trusted for this connection (--tls-pin), but not pinned: " + error + ".");
  }
  return trust;
}

}  // namespace chat
