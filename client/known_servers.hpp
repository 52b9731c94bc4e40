// Known servers: the TLS certificates chatclient trusts without an authority's signature,
// pinned on first use as ssh pins host keys in known_hosts (docs/tls.md, "chatclient and TLS").
//
// The file (default_known_servers_path(), or --known-servers FILE) holds one line per server:
//
//     127.0.0.1:15600 SHA256:mCz0u1...
//     [fd00::2]:15600 SHA256:4Lk9qQ...
//     chat.lan:15600 SHA256:Tq8c2w...
//
// the server as `host:port` (ServerAddress::text(); a host name in lower case) and the
// certificate's fingerprint (common/tls.hpp, tls::fingerprint). Blank lines and lines starting
// with '#' are skipped; any other line that does not have that shape is ignored, with a
// warning naming it. At most max_known_servers_bytes are read: a larger file is refused as a
// whole, not read in part (a pin past the cut would be missed, and its server taken for a new
// one).
//
// The decision (check_certificate) after each TLS handshake:
//   - a certificate that verified against the system's authorities and the host name: trusted;
//   - else one whose fingerprint a line pins for this server: trusted, silently;
//   - else one for a server that a line pins to another fingerprint: refused, loudly (ssh's
//     "REMOTE HOST IDENTIFICATION HAS CHANGED"), whatever the options: the user removes the
//     line if the change is theirs;
//   - else, with --tls-pin (the user's consent to trust on first use): trusted, and pinned;
//   - else refused, with the reason, the fingerprint and the hint to use --tls-pin.
//
// Threads: pure functions, but for the ones that read or write the file (any one thread at a
// time per file: chatclient's network thread, after a handshake). Several chatclients pinning
// at once each append one whole line (O_APPEND).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chat {

inline constexpr std::size_t max_known_servers_bytes = std::size_t{1} << 20;

struct KnownServer {
  std::string server;       // "host:port", host in lower case
  std::string fingerprint;  // "SHA256:<base64>"
  std::size_t line = 0;     // 1-based, in the file
};

struct KnownServers {
  std::vector<KnownServer> entries;
  // One per ignored line: "line 3: not 'HOST:PORT SHA256:<fingerprint>'; ignored".
  std::vector<std::string> warnings;
};

// "SHA256:" and 43 characters of base64 without padding (32 bytes), as tls::fingerprint makes.
bool looks_like_fingerprint(std::string_view text);

// The key a server has in the file: ServerAddress::text() with the host in lower case (host
// names are not case-sensitive).
std::string known_server_key(const std::string& host, std::uint16_t port);

// The lines of a known_servers file (any size: the caller bounds it).
KnownServers parse_known_servers(std::string_view text);

// $XDG_CONFIG_HOME/chat/known_servers, else $HOME/.config/chat/known_servers; "" when neither
// is set to an absolute path.
std::string default_known_servers_path();

// The file parsed; a file that does not exist is empty. nullopt, and `error` says why, when it
// cannot be read or is larger than max_known_servers_bytes.
std::optional<KnownServers> read_known_servers(const std::string& path, std::string& error);

// Appends "server fingerprint" as a line of its own, making the file (mode 0600) and missing
// directories (mode 0700) as needed. Returns the line's number; nullopt and `error` on failure.
std::optional<std::size_t> pin_known_server(const std::string& path, const std::string& server,
                                            const std::string& fingerprint, std::string& error);

// What the client knows after a handshake, for check_certificate.
struct CertificateCheck {
  std::string host;          // as the user gave it (the name the certificate should carry)
  std::string server;        // known_server_key(host, port)
  std::string verify_error;  // tls::Engine::verify_result(): "" if it verified
  std::string fingerprint;   // tls::Engine::peer_fingerprint()
  bool pin = false;          // --tls-pin: trust on first use
  std::string known_servers; // the file ("": none could be named)
};

struct Trust {
  bool accepted = false;
  // Accepted: for the connect message, "verified certificate" or "pinned certificate SHA256:...".
  std::string how;
  // What to tell the user, line by line (empty when a verified or pinned certificate is
  // accepted silently): the reason for a refusal, or that a certificate was pinned just now.
  std::vector<std::string> lines;
  // Lines of the file that were ignored, for a notice each ("FILE: line 3: ...").
  std::vector<std::string> warnings;
};

// The decision described above. Reads the file only when the certificate did not verify, and
// appends to it only when it pins.
Trust check_certificate(const CertificateCheck& check);

}  // namespace chat
