// --host lists (common/server_list.hpp): one server or several, ports, IPv6 in brackets, and a
// clear refusal for each kind of mistake.
#include "common/server_list.hpp"

#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <vector>

using chat::parse_server_list;
using chat::ServerAddress;

TEST_CASE("server list: one host, several, with and without ports, IPv6 in brackets", "[server_list]") {
  CHECK(parse_server_list("127.0.0.1", 15600) == std::vector<ServerAddress>{{"127.0.0.1", 15600}});
  CHECK(parse_server_list("a,b:15602, c ", 15600) ==
        std::vector<ServerAddress>{{"a", 15600}, {"b", 15602}, {"c", 15600}});
  CHECK(parse_server_list("[fd00::2]:15601,[::1]", 15600) ==
        std::vector<ServerAddress>{{"fd00::2", 15601}, {"::1", 15600}});
  CHECK(ServerAddress{"fd00::2", 15601}.text() == "[fd00::2]:15601");
  CHECK(ServerAddress{"chat.lan", 15600}.text() == "chat.lan:15600");
}

TEST_CASE("server list: every mistake is refused with the entry named", "[server_list]") {
  const std::vector<std::pair<std::string, std::string>> bad{
      {"", "empty"},           {"a,,b", "empty"},         {"a:0", "'a:0'"},      {"a:65536", "1-65535"},
      {"a:x", "'a:x'"},        {":15600", "no host"},     {"fd00::2", "brackets"}, {"[fd00::2", "brackets"},
      {"[fd00::2]x", ":PORT"}, {"[]:1", "brackets"},
  };
  for (const auto& [list, says] : bad) {
    INFO("'" << list << "'");
    try {
      parse_server_list(list, 15600);
      FAIL("accepted");
    } catch (const std::invalid_argument& e) {
      CHECK(std::string(e.what()).find(says) != std::string::npos);
    }
  }
  std::string many;
  for (int i = 0; i < 17; ++i) many += (i ? "," : "") + std::string("h") + std::to_string(i);
  CHECK_THROWS_AS(parse_server_list(many, 15600), std::invalid_argument);
}
