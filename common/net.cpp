#include "common/net.hpp"

#include <ifaddrs.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netdb.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace chat {

namespace {

// An IPv4 address in IPv6 clothes (::ffff:a.b.c.d) as the IPv4 address it is.
asio::ip::address unmapped(const asio::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  return a;
}

// The address's bytes with every bit past `prefix` cleared.
template <typename Bytes>
Bytes masked(Bytes bytes, unsigned prefix) {
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const unsigned first_bit = static_cast<unsigned>(i) * 8;
    if (prefix >= first_bit + 8) continue;
    const unsigned keep = prefix > first_bit ? prefix - first_bit : 0;  // 0..7 bits of this byte
    bytes[i] = static_cast<unsigned char>(bytes[i] & (0xFF00u >> keep));
  }
  return bytes;
}

asio::ip::address masked(const asio::ip::address& a, unsigned prefix) {
  if (a.is_v4()) return asio::ip::address_v4(masked(a.to_v4().to_bytes(), prefix));
  return asio::ip::address_v6(masked(a.to_v6().to_bytes(), prefix));
}

}  // namespace

bool AddressRange::contains(const asio::ip::address& address) const {
  const auto a = unmapped(address);
  if (a.is_v4() != network.is_v4()) return false;
  return masked(a, prefix) == network;
}

std::string AddressRange::to_string() const { return network.to_string() + "/" + std::to_string(prefix); }

std::optional<AddressRange> parse_address_range(std::string_view text, std::string* error) {
  const auto fail = [&](std::string why) -> std::optional<AddressRange> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  const auto slash = text.find('/');
  std::error_code ec;
  const auto address = asio::ip::make_address(std::string(text.substr(0, slash)), ec);
  if (ec) return fail("'" + std::string(text) + "' is not an address or a range like 10.0.0.0/8 or fd00::/8");
  AddressRange range;
  const auto a = unmapped(address);
  const unsigned bits = a.is_v4() ? 32 : 128;
  range.prefix = bits;
  if (slash != std::string_view::npos) {
    const auto digits = text.substr(slash + 1);
    unsigned prefix = 0;
    const auto [end, pec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (digits.empty() || pec != std::errc() || end != digits.data() + digits.size() || prefix > bits) {
      return fail("'" + std::string(text) + "': the prefix length after '/' must be 0 to " + std::to_string(bits));
    }
    range.prefix = prefix;
  }
  range.network = masked(a, range.prefix);
  return range;
}

std::error_code apply_keepalive(asio::ip::tcp::socket& socket, const KeepaliveConfig& config) {
  std::error_code ec;
  socket.set_option(asio::socket_base::keep_alive(config.enabled), ec);
  if (ec) return ec;
  if (!config.enabled) {
    socket.set_option(TcpUserTimeout(0), ec);  // 0: the kernel default (tcp_retries2)
    return ec;
  }
  const auto seconds = [](Millis m) { return static_cast<int>(m.count() / 1000); };
  socket.set_option(TcpKeepIdle(seconds(config.idle)), ec);
  if (!ec) socket.set_option(TcpKeepInterval(seconds(config.interval)), ec);
  if (!ec) socket.set_option(TcpKeepCount(config.count), ec);
  // Keepalive only probes an idle connection. With data in flight to a dead peer the kernel
  // retransmits instead, for ~15 minutes by default (tcp_retries2). TCP_USER_TIMEOUT caps
  // that at the same budget, so both kinds of silence are caught in the same time.
  if (!ec) socket.set_option(TcpUserTimeout(static_cast<int>(config.budget().count())), ec);
  return ec;
}

LeaveCause cause_of(const std::error_code& ec) {
  if (ec == asio::error::eof) return LeaveCause::closed;
  if (ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
      ec == asio::error::connection_aborted) {
    return LeaveCause::reset;
  }
  // A connection to an unreachable host fails when its timer runs out, with the last ICMP or
  // ARP failure as the error instead of ETIMEDOUT (tcp_write_err uses sk_err_soft): the same
  // event, "no reply in time", seen through a different errno.
  if (ec == asio::error::timed_out || ec == asio::error::host_unreachable ||
      ec == asio::error::network_unreachable) {
    return LeaveCause::timeout;
  }
  return LeaveCause::error;
}

std::string what_was_seen(const std::error_code& ec) {
  if (ec == asio::error::eof) return "connection closed by peer";
  if (ec == asio::error::connection_reset) return "connection reset by peer";
  if (ec == asio::error::broken_pipe) return "broken pipe";
  if (ec == asio::error::timed_out) return "no keepalive reply";
  if (ec == asio::error::host_unreachable) return "no keepalive reply (host unreachable)";
  if (ec == asio::error::network_unreachable) return "no keepalive reply (network unreachable)";
  return ec.message();
}

std::optional<std::error_code> peek_for_departure(int fd) {
  char byte;
  const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return std::nullopt;  // unread data: the peer was alive when it sent it
  if (n == 0) return std::error_code(asio::error::eof);
  const int err = errno;
  if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) return std::nullopt;
  return std::error_code(err, asio::error::get_system_category());
}

std::optional<TcpHealth> tcp_health(int fd) {
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return std::nullopt;
  return TcpHealth{std::chrono::milliseconds(info.tcpi_last_ack_recv), info.tcpi_unacked, info.tcpi_probes,
                   info.tcpi_retransmits};
}

std::string describe_tcp_health(const std::optional<TcpHealth>& h) {
  if (!h) return "TCP_INFO: unavailable";
  return "TCP_INFO: last ACK " + format_duration(h->since_last_ack) + " ago, " + std::to_string(h->keepalive_probes) +
         " keepalive probes unanswered, " + std::to_string(h->unacked) + " unacked, " +
         std::to_string(h->retransmits) + " retransmits";
}

std::optional<std::string> no_ack_for_budget(const std::optional<TcpHealth>& h, const KeepaliveConfig& config,
                                             std::chrono::milliseconds* ack_age) {
  if (!config.enabled) return std::nullopt;
  if (h && ack_age) *ack_age = h->since_last_ack;
  if (!h || h->since_last_ack < config.budget()) return std::nullopt;
  return "no ACK from peer for " + format_duration(h->since_last_ack);
}

std::optional<std::string> ping_not_acked(const std::optional<TcpHealth>& h,
                                          std::chrono::steady_clock::duration since_ping) {
  if (!h || h->unacked == 0 || h->since_last_ack < since_ping) return std::nullopt;
  return "no ACK from peer for " + format_duration(h->since_last_ack) + ", not even for the PING";
}

std::error_code pending_socket_error(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  return std::error_code(err, asio::error::get_system_category());
}

std::size_t unsent_bytes(int fd) {
  int bytes = 0;
  return ::ioctl(fd, SIOCOUTQNSD, &bytes) == 0 && bytes > 0 ? static_cast<std::size_t>(bytes) : 0;
}

std::error_code limit_unsent(int fd, std::size_t bytes) {
  const int value = static_cast<int>(std::min<std::size_t>(bytes, INT32_MAX));
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &value, sizeof value) != 0) {
    return std::error_code(errno, asio::error::get_system_category());
  }
  return {};
}

namespace {

// IPv4 first, then IPv6, each address once, otherwise in the order given.
std::vector<asio::ip::address> v4_first(const std::vector<asio::ip::address>& found) {
  std::vector<asio::ip::address> out;
  for (const bool v4 : {true, false}) {
    for (const auto& a : found) {
      if (a.is_v4() == v4 && std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
    }
  }
  return out;
}

}  // namespace

std::vector<asio::ip::address> resolve_host(const std::string& host, std::string* error, bool* temporary) {
  if (temporary) *temporary = false;
  const auto fail = [&](std::string why) {
    if (error) *error = std::move(why);
    return std::vector<asio::ip::address>{};
  };
  const std::string quoted = "'" + host + "'";
  std::error_code ec;
  const auto numeric = asio::ip::make_address(host, ec);
  if (!ec) return {numeric};
  // What is not a numeric address must be a name; these are neither, and asking the resolver
  // (which may wait for DNS) about them would only say so later.
  if (host.empty()) return fail("an empty address");
  if (host.find(':') != std::string::npos) return fail(quoted + " is not an IPv6 address");
  const auto last_dot = host.rfind('.');
  const std::string_view last_label = std::string_view(host).substr(last_dot == std::string::npos ? 0 : last_dot + 1);
  if (!last_label.empty() &&
      std::all_of(last_label.begin(), last_label.end(), [](unsigned char c) { return std::isdigit(c); })) {
    return fail(quoted + " is not an IPv4 address (four numbers from 0 to 255, e.g. 192.168.1.20)");
  }
  const bool name_chars = std::all_of(host.begin(), host.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '.' || c == '_';
  });
  if (!name_chars || host.size() > 253 || host.front() == '.' || host.front() == '-') {
    return fail(quoted + " is neither an address nor a host name (e.g. 0.0.0.0, 127.0.0.1, ::, localhost)");
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  // No AI_ADDRCONFIG: on a machine whose only network is loopback it would hide "localhost".
  if (const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &list); rc != 0) {
    if (temporary) *temporary = rc == EAI_AGAIN || rc == EAI_FAIL || rc == EAI_SYSTEM || rc == EAI_MEMORY;
    return fail(quoted + ": " + (rc == EAI_SYSTEM ? std::string(std::strerror(errno)) : ::gai_strerror(rc)));
  }
  const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owner(list, &::freeaddrinfo);
  std::vector<asio::ip::address> found;
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(ai->ai_addr);
      asio::ip::address_v4::bytes_type bytes;
      std::memcpy(bytes.data(), &in->sin_addr, bytes.size());
      found.emplace_back(asio::ip::address_v4(bytes));
    } else if (ai->ai_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(ai->ai_addr);
      asio::ip::address_v6::bytes_type bytes;
      std::memcpy(bytes.data(), &in6->sin6_addr, bytes.size());
      found.emplace_back(asio::ip::address_v6(bytes, in6->sin6_scope_id));
    }
  }
  if (found.empty()) return fail(quoted + ": no IPv4 or IPv6 address");
  return v4_first(found);
}

std::vector<asio::ip::address> network_addresses() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return {};
  const std::unique_ptr<ifaddrs, decltype(&::freeifaddrs)> owner(list, &::freeifaddrs);
  std::vector<asio::ip::address> found;
  for (const ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || (i->ifa_flags & IFF_UP) == 0 || (i->ifa_flags & IFF_LOOPBACK) != 0) continue;
    if (i->ifa_addr->sa_family == AF_INET) {
      asio::ip::address_v4::bytes_type bytes;
      std::memcpy(bytes.data(), &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr, bytes.size());
      const asio::ip::address_v4 a(bytes);
      const bool link_local = bytes[0] == 169 && bytes[1] == 254;
      if (!a.is_loopback() && !a.is_unspecified() && !link_local) found.emplace_back(a);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      asio::ip::address_v6::bytes_type bytes;
      std::memcpy(bytes.data(), &reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr, bytes.size());
      const asio::ip::address_v6 a(bytes);
      if (!a.is_loopback() && !a.is_unspecified() && !a.is_link_local() && !a.is_v4_mapped()) found.emplace_back(a);
    }
  }
  return v4_first(found);
}

Wakeup::Wakeup() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
}

Wakeup::~Wakeup() { ::close(fd_); }

void Wakeup::signal() {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(fd_, &one, sizeof one);
}

void Wakeup::clear() {
  std::uint64_t value;
  [[maybe_unused]] auto n = ::read(fd_, &value, sizeof value);
}

}  // namespace chat
