// The victim: a tiny chat client that chatbench starts as a child process of its own (the same
// executable, `chatbench victim ...`), so that a detection scenario can SIGKILL or SIGSTOP a
// real process while its socket stays exactly as the kernel leaves it.
//
// It joins in protocol mode, prints "joined" on stdout, then behaves (answers PING) until the
// server closes the connection, its stdin reaches EOF (chatbench closed it or died), or
// `lifetime` runs out. Single-threaded: main thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace chat::bench {

// Returns the process exit code: 0 after a normal end, 1 if it could not join.
int run_victim(std::uint16_t port, const std::string& nick, std::chrono::milliseconds lifetime);

}  // namespace chat::bench
