// The victim: the client that chatlab breaks. It is a process of its own (`chatlab victim
// ADDRESS PORT`, the same executable started again), so that a scenario can kill it, stop it,
// or take its host away while its socket stays exactly as the kernel leaves it.
//
// It joins as "victim" in protocol mode, prints "joined from port <local port>" on stdout, and
// answers PINGs. Every stdout line starts with the wall-clock time in microseconds since 1970. chatlab steers it with one command per line on its stdin:
//   quit          send "QUIT lab" (a polite goodbye)
//   close         close the socket without a word (a FIN), then exit
//   stop-reading  stop reading the socket (prints "stopped reading"; then "unread <bytes> ..."
//                 once bytes wait unread in its receive queue)
//   flood         send "SAY" lines as fast as the connection takes them
// It prints "gone: <what it saw>" and exits when the server closes the connection, and exits
// when its stdin ends (chatlab is done with it, or died).
//
// Threads: single-threaded (the process's main thread).
#pragma once

#include <cstdint>
#include <string>

namespace chat::lab {

// Returns the exit code: 0 after a normal end, 1 if it could not join.
int run_victim(const std::string& address, std::uint16_t port);

}  // namespace chat::lab
