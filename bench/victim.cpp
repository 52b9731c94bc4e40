#include "bench/victim.hpp"

#include "bench/line_conn.hpp"

#include <unistd.h>

#include <exception>
#include <iostream>

namespace chat::bench {

int run_victim(std::uint16_t port, const std::string& nick, std::chrono::milliseconds lifetime) {
  const auto deadline = Clock::now() + lifetime;
  try {
    LineConn conn(port, Clock::now() + std::chrono::seconds(5));
    join(conn, nick, Clock::now() + std::chrono::seconds(5));
    std::cout << "joined" << std::endl;
    LineConn* const self[] = {&conn};
    while (Clock::now() < deadline && conn.live()) {
      pollfd in{STDIN_FILENO, POLLIN, 0};
      pump(self, deadline, std::span<pollfd>(&in, 1));
      while (auto line = conn.next_line()) answer_ping(conn, *line);
      if (in.revents != 0) {
        char byte;
        if (::read(STDIN_FILENO, &byte, 1) <= 0) break;  // chatbench closed our stdin, or died
      }
    }
    return 0;
  } catch (const Interrupted&) {
    return 0;
  } catch (const std::exception& e) {
    std::cout << "error: " << e.what() << std::endl;
    return 1;
  }
}

}  // namespace chat::bench
