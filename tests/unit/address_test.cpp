// common/net: resolve_host (chatserver --bind) and network_addresses (the banner that tells
// people on the LAN where to join). No DNS: numeric addresses, "localhost" from /etc/hosts,
// and inputs refused before any lookup.
#include "common/net.hpp"

#include <catch2/catch.hpp>

#include <string>

TEST_CASE("resolve_host takes numeric addresses as they are", "[net][resolve]") {
  for (const char* text : {"127.0.0.1", "0.0.0.0", "192.168.1.20", "::", "::1", "fd00::2"}) {
    INFO(text);
    std::string error;
    const auto found = chat::resolve_host(text, &error);
    REQUIRE(found.size() == 1);
    CHECK(found.front() == asio::ip::make_address(text));
    CHECK(error.empty());
  }
}

TEST_CASE("resolve_host resolves a host name, IPv4 first", "[net][resolve]") {
  std::string error;
  const auto found = chat::resolve_host("localhost", &error);
  INFO(error);
  REQUIRE_FALSE(found.empty());
  for (const auto& a : found) CHECK(a.is_loopback());
  // What chatserver --bind localhost listens on: 127.0.0.1 when /etc/hosts has it (Debian's does).
  if (found.front().is_v4()) CHECK(found.front().to_string() == "127.0.0.1");
  for (std::size_t i = 1; i < found.size(); ++i) {
    CHECK_FALSE((found[i].is_v4() && found[i - 1].is_v6()));  // no IPv4 after an IPv6
    CHECK(found[i] != found[i - 1]);
  }
}

TEST_CASE("resolve_host refuses what is neither an address nor a name, without a lookup", "[net][resolve]") {
  struct Case {
    const char* text;
    const char* says;
  };
  for (const Case& c : {Case{"256.1.1.1", "not an IPv4 address"}, Case{"1.2.3", "not an IPv4 address"},
                        Case{"10", "not an IPv4 address"}, Case{"::zz", "not an IPv6 address"},
                        Case{"1:2:3", "not an IPv6 address"}, Case{"no such host", "neither an address nor a host name"},
                        Case{"host!", "neither an address nor a host name"},
                        Case{"-host", "neither an address nor a host name"}, Case{"", "empty"}}) {
    INFO(c.text);
    std::string error;
    CHECK(chat::resolve_host(c.text, &error).empty());
    CHECK(error.find(c.says) != std::string::npos);
    if (*c.text != '\0') CHECK(error.find(std::string("'") + c.text + "'") != std::string::npos);
  }
  CHECK(chat::resolve_host("300.0.0.1").empty());  // the error is optional
}

TEST_CASE("network_addresses leaves out loopback and link-local, IPv4 first", "[net][interfaces]") {
  const auto found = chat::network_addresses();
  for (std::size_t i = 0; i < found.size(); ++i) {
    const auto& a = found[i];
    INFO(a.to_string());
    CHECK_FALSE(a.is_loopback());
    CHECK_FALSE(a.is_unspecified());
    if (a.is_v4()) {
      CHECK_FALSE(a.to_string().starts_with("169.254."));
      if (i > 0) CHECK(found[i - 1].is_v4());
    } else {
      CHECK_FALSE(a.to_v6().is_link_local());
    }
    for (std::size_t j = 0; j < i; ++j) CHECK(found[j] != a);
  }
}
