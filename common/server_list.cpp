#include "common/server_list.hpp"

#include <charconv>
#include <stdexcept>

namespace chat {

std::string ServerAddress::text() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

namespace {

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

std::uint16_t port_of(std::string_view text, std::string_view entry) {
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value == 0 || value > 65535) {
    throw std::invalid_argument("'" + std::string(entry) + "': the port must be 1-65535");
  }
  return static_cast<std::uint16_t>(value);
}

ServerAddress parse_one(std::string_view entry, std::uint16_t default_port) {
  if (entry.empty()) throw std::invalid_argument("an empty server in the list");
  ServerAddress out{std::string(), default_port};
  if (entry.front() == '[') {
    const auto close = entry.find(']');
    if (close == std::string_view::npos || close == 1) {
      throw std::invalid_argument("'" + std::string(entry) + "': an IPv6 address goes in brackets, [fd00::2]:15600");
    }
    out.host = std::string(entry.substr(1, close - 1));
    const auto rest = entry.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') throw std::invalid_argument("'" + std::string(entry) + "': expected :PORT after ]");
      out.port = port_of(rest.substr(1), entry);
    }
    return out;
  }
  const auto colon = entry.find(':');
  if (colon == std::string_view::npos) {
    out.host = std::string(entry);
    return out;
  }
  if (entry.find(':', colon + 1) != std::string_view::npos) {
    throw std::invalid_argument("'" + std::string(entry) + "': an IPv6 address goes in brackets, [fd00::2]:15600");
  }
  out.host = std::string(entry.substr(0, colon));
  if (out.host.empty()) throw std::invalid_argument("'" + std::string(entry) + "': no host before the port");
  out.port = port_of(entry.substr(colon + 1), entry);
  return out;
}

}  // namespace

std::vector<ServerAddress> parse_server_list(std::string_view list, std::uint16_t default_port) {
  std::vector<ServerAddress> out;
  while (true) {
    const auto comma = list.find(',');
    out.push_back(parse_one(trimmed(list.substr(0, comma)), default_port));
    if (out.size() > max_servers) {
      throw std::invalid_argument("at most " + std::to_string(max_servers) + " servers");
    }
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace chat
