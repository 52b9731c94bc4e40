// Socket helpers shared by the server and chatclient: TCP keepalive through Asio socket
// options, turning socket errors into leave causes, the poller's dead-peer probe, and a
// Wakeup that lets one thread interrupt another's poll(2).
#pragma once

#include "common/protocol.hpp"
#include "common/units.hpp"

#include <asio.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <chrono>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

namespace chat {

// An address range in CIDR notation: 10.0.0.0/8, 192.168.1.7 (one address: /32), 2001:db8::/32,
// fd00::1 (/128). IPv4 addresses seen as IPv6 (::ffff:10.0.0.5, on a dual-stack socket) are
// matched as IPv4. Pure value type.
struct AddressRange {
  asio::ip::address network;  // with the bits past the prefix cleared
  unsigned prefix = 0;
  bool contains(const asio::ip::address& address) const;
  std::string to_string() const;  // "10.0.0.0/8"
};
// nullopt (and `error` says why) if `text` is not one.
std::optional<AddressRange> parse_address_range(std::string_view text, std::string* error = nullptr);

// An integer socket option at (Level, Name) in the shape Asio's set_option() takes
// (SettableSocketOption): how TCP_KEEPIDLE & co. are set without leaving Asio.
template <int Level, int Name>
class IntSocketOption {
 public:
  IntSocketOption() = default;
  explicit IntSocketOption(int value) : value_(value) {}
  int value() const { return value_; }
  template <typename Protocol> int level(const Protocol&) const { return Level; }
  template <typename Protocol> int name(const Protocol&) const { return Name; }
  template <typename Protocol> int* data(const Protocol&) { return &value_; }
  template <typename Protocol> const int* data(const Protocol&) const { return &value_; }
  template <typename Protocol> std::size_t size(const Protocol&) const { return sizeof(value_); }
  template <typename Protocol> void resize(const Protocol&, std::size_t) {}

 private:
  int value_ = 0;
};

using TcpKeepIdle = IntSocketOption<IPPROTO_TCP, TCP_KEEPIDLE>;
using TcpKeepInterval = IntSocketOption<IPPROTO_TCP, TCP_KEEPINTVL>;
using TcpKeepCount = IntSocketOption<IPPROTO_TCP, TCP_KEEPCNT>;
using TcpUserTimeout = IntSocketOption<IPPROTO_TCP, TCP_USER_TIMEOUT>;  // milliseconds

// Enables keepalive with `config` and sets TCP_USER_TIMEOUT to its budget, or turns both off.
// Call from the thread that owns the socket, before other threads use it.
std::error_code apply_keepalive(asio::ip::tcp::socket& socket, const KeepaliveConfig& config);

// Why a connection ended, and what was seen, e.g. {timeout, "no keepalive reply (reader, ...)"}.
struct Departure {
  LeaveCause cause;
  std::string detail;
};

// The cause that a socket error stands for: eof -> closed, ECONNRESET/EPIPE -> reset,
// ETIMEDOUT (and EHOSTUNREACH / ENETUNREACH, what a timeout reports after ARP or ICMP
// failures) -> timeout, anything else -> error.
LeaveCause cause_of(const std::error_code& ec);

// The readable part of a detail for `ec`: "connection closed by peer", "connection reset by
// peer", "no keepalive reply" (ETIMEDOUT), or the system's message.
std::string what_was_seen(const std::error_code& ec);

// The poller's confirmation step: a non-blocking recv(MSG_PEEK) on `fd`. Returns the departure
// it proves (0 bytes: closed; ECONNRESET: reset; ETIMEDOUT: timeout; other errno: error) or
// nullopt when the peer is alive (data waiting, or EAGAIN: a false alarm).
std::optional<std::error_code> peek_for_departure(int fd);

// What the kernel knows about a TCP connection's health (TCP_INFO), for telling "the peer's
// host is gone" (its kernel stopped ACKing) from "the peer's process is hung" (its kernel
// ACKs, the process does not answer).
struct TcpHealth {
  std::chrono::milliseconds since_last_ack;  // since any ACK arrived (data, PING, keepalive probe)
  unsigned unacked = 0;                      // segments sent and not yet acknowledged
  unsigned keepalive_probes = 0;             // keepalive probes sent without an answer
  unsigned retransmits = 0;                  // retransmissions of the oldest unacked segment
};
// nullopt if `fd` is not a TCP socket or TCP_INFO fails. Thread safe (reads kernel state).
std::optional<TcpHealth> tcp_health(int fd);
// "TCP_INFO: last ACK 4.1 s ago, 2 keepalive probes unanswered, 1 unacked, 3 retransmits", for
// trace lines; "TCP_INFO: unavailable" when it could not be read.
std::string describe_tcp_health(const std::optional<TcpHealth>& health);

// The two judgements a heartbeat makes from TCP_INFO (`health`, one read of tcp_health(fd), so
// that a trace line can show exactly what was judged), shared by the server's poller and
// chatclient. Linux sends keepalive probes only while no data is in flight: once anything
// is queued to a dead peer (a PING, a message) it retransmits instead, and TCP_USER_TIMEOUT
// counts from the first retransmission, so a heartbeat can delay the keepalive's verdict.
//
// The keepalive budget: the peer's kernel has ACKed nothing (data, PING or keepalive probe)
// for all of `config.budget()`. A healthy idle connection is never that quiet with keepalive
// on, since its probes are ACKed every `config.idle`. Returns the detail for a `timeout`
// departure ("no ACK from peer for 16.1 s"), or nullopt. If `ack_age` is given, it receives
// how long ago the last ACK came (unchanged if TCP_INFO fails): a caller watching many sockets
// need not ask again before `config.budget() - *ack_age` has passed.
std::optional<std::string> no_ack_for_budget(const std::optional<TcpHealth>& health, const KeepaliveConfig& config,
                                             std::chrono::milliseconds* ack_age = nullptr);

// A PING sent `since_ping` ago got no answer. If the peer's kernel did not even ACK it, the
// host or the path is gone, not the process: returns the detail for a `timeout` departure
// ("no ACK from peer for 10.0 s, not even for the PING"). nullopt: the kernel ACKs and the
// process does not answer, which is `no-pong`.
std::optional<std::string> ping_not_acked(const std::optional<TcpHealth>& health,
                                          std::chrono::steady_clock::duration since_ping);

// Bytes the kernel holds for `fd`'s peer and has not sent yet (SIOCOUTQNSD; bytes in flight,
// sent and not yet acknowledged, are not counted: the client's window bounds those). 0 if it
// cannot be read. Thread safe (reads kernel state).
std::size_t unsent_bytes(int fd);

// Caps what the kernel takes into `fd`'s send queue beyond what is in flight (TCP_NOTSENT_LOWAT):
// past `bytes` unsent, a write takes nothing more (EAGAIN) and EPOLLOUT waits until the peer has
// taken some. Without it the kernel grows a non-reader's send buffer to megabytes.
std::error_code limit_unsent(int fd, std::size_t bytes);

// The pending error of `fd` (SO_ERROR), read after POLLERR/POLLHUP; clears it.
std::error_code pending_socket_error(int fd);

// The addresses `host` stands for, IPv4 before IPv6, each once: a numeric address (IPv4 or
// IPv6) as it is, without a lookup; else a host name through getaddrinfo (/etc/hosts, then
// DNS: it may block for the resolver's timeout). Empty when there is none, with `error` (if
// given) saying why: "'256.1.1.1' is not an IPv4 address", "'no-such-host': Name or service
// not known". `temporary` (if given) says whether the failure may pass (the resolver could
// not be asked: EAI_AGAIN, EAI_FAIL, EAI_SYSTEM, EAI_MEMORY) rather than being the name's.
// Thread safe.
std::vector<asio::ip::address> resolve_host(const std::string& host, std::string* error = nullptr,
                                            bool* temporary = nullptr);

// The addresses others on the network can reach this machine at: every address of every
// interface that is up (getifaddrs), without loopback (127.0.0.0/8, ::1) and link-local
// addresses (169.254.0.0/16, fe80::/10), IPv4 before IPv6, each once, in the interfaces' order.
// Empty when there is none (or getifaddrs fails). Thread safe.
std::vector<asio::ip::address> network_addresses();

// An eventfd that one thread signals to wake another thread's poll(2). Thread safe.
class Wakeup {
 public:
  Wakeup();
  ~Wakeup();
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;

  int fd() const { return fd_; }  // poll it for POLLIN
  void signal();                   // any thread
  void clear();                    // the polling thread, after it woke

 private:
  int fd_;
};

}  // namespace chat
