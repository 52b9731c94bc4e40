// The Swarm's choice of web clients (bench/swarm.hpp, is_web_client), pure: which client numbers
// are WebSocket clients for a --web-share, spread evenly, and how many of them there are.
//
// Threads: none but the test thread.
#include "bench/swarm.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <vector>

using chat::bench::is_web_client;

TEST_CASE("is_web_client: none at 0, all at 1", "[bench][swarm]") {
  for (std::size_t id = 0; id < 100; ++id) {
    CHECK_FALSE(is_web_client(id, 0.0));
    CHECK(is_web_client(id, 1.0));
  }
}

TEST_CASE("is_web_client: half is every second client from client 1", "[bench][swarm]") {
  for (std::size_t id = 0; id < 100; ++id) CHECK(is_web_client(id, 0.5) == (id % 2 == 1));
}

TEST_CASE("is_web_client: floor(n x share) of the first n clients, evenly spread", "[bench][swarm]") {
  for (const double share : {0.1, 0.25, 0.3, 0.5, 0.75, 0.9}) {
    std::size_t web = 0;
    std::size_t longest_gap = 0, gap = 0;
    for (std::size_t n = 1; n <= 10'000; ++n) {
      if (is_web_client(n - 1, share)) {
        ++web;
        gap = 0;
      } else {
        longest_gap = std::max(longest_gap, ++gap);
      }
      INFO("share " << share << ", n " << n);
      REQUIRE(web == static_cast<std::size_t>(std::floor(static_cast<double>(n) * share)));
    }
    // No run of TCP clients longer than the share allows.
    CHECK(static_cast<double>(longest_gap) <= std::ceil(1 / share));
  }
}
