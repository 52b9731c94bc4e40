// The command line of the real chatclient for process tests: only in test executables built
// with chat_binary_test (tests/CMakeLists.txt), which defines CHATCLIENT_PATH. Pure; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace chat::test {

// chatclient --host 127.0.0.1 --port <port> --nick <nick>, then `extra`.
inline std::vector<std::string> chatclient_args(std::uint16_t port, const std::string& nick,
                                                std::vector<std::string> extra = {}) {
  std::vector<std::string> args{CHATCLIENT_PATH, "--host", "127.0.0.1", "--port", std::to_string(port), "--nick", nick};
  args.insert(args.end(), std::make_move_iterator(extra.begin()), std::make_move_iterator(extra.end()));
  return args;
}

}  // namespace chat::test
