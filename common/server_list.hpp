// The servers a client may use, from --host: "a", "a,b,c", "a:15601,b:15602", "[fd00::2]:15600".
// With several, the client fails over to the next one when a connection is lost or cannot be
// made, with its usual backoff (client/link.hpp); with one room shared by several chatservers
// (docs/scale-out.md) the room is the same on each.
//
// Threads: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace chat {

struct ServerAddress {
  std::string host;  // a name or a numeric address, without brackets
  std::uint16_t port = 0;

  // "host:port", "[fd00::2]:port" for an IPv6 address.
  std::string text() const;
  bool operator==(const ServerAddress&) const = default;
};

// Parses a comma-separated list; an entry without a port takes `default_port`. Spaces around
// entries are ignored. Throws std::invalid_argument naming the bad entry: an empty one, a port
// that is not 1-65535, an IPv6 address without brackets, more than max_servers.
std::vector<ServerAddress> parse_server_list(std::string_view list, std::uint16_t default_port);

inline constexpr std::size_t max_servers = 16;

}  // namespace chat
