// The victim: the client that chatlab breaks. It is a process of its own (`chatlab victim
// [--web | --ids] [--tls] ADDRESS PORT`, the same executable started again), so that a scenario
// can kill it, stop it, or take its host away while its socket stays exactly as the kernel
// leaves it.
//
// It joins as "victim" in protocol mode, prints "joined from port <local port>" on stdout, and
// answers PINGs. With --web it is a browser's page instead: it opens the WebSocket at /ws
// (RFC 6455, the handshake with an Origin as a browser sends it, masked frames), waits for the
// greeting, and then sends and receives each protocol line as one text frame, as web/ does;
// it answers the PING lines (and any ping frame) as the page's JavaScript would. Every stdout
// line starts with the wall-clock time in microseconds since 1970.
//
// With --tls it speaks TLS first (the lab's own server: nothing verified, lab/tls_client.hpp),
// prints "TLS: <version> <cipher>, the server's certificate SHA256:...", and then does all of
// the above through its tls::Engine, moving the ciphertext with the same blocking send(2) and
// recv(2) as clear text: a kill, a SIGSTOP or a pulled cable meet the same socket. The server's
// close_notify ends its stream as the end of the stream does.
//
// chatlab steers it with one command per line on its stdin:
//   quit          send "QUIT lab" (a polite goodbye)
//   close         lines: close the socket without a word (a FIN; over TLS, no close_notify
//                 first), then exit.
//                 --web: close as a browser tab does: a close frame 1001 (going away), then
//                 (over TLS) a close_notify, then a FIN (shutdown); it then reads what the server
//                 still sends (its close frame) until the end of the stream, and exits
//   close-notify  send "SAY my last words" without its LF, then TLS's goodbye, a close_notify
//                 (none in clear text), then a FIN (shutdown); then read until the end, and exit
//   cut           send "SAY my last words" without its LF, then close the socket: a FIN, no
//                 close_notify (what a cut connection, or an attacker truncating it, looks like)
//   stop-reading  stop reading the socket (prints "stopped reading"; then "unread <bytes> ..."
//                 once bytes wait unread in its receive queue)
//   flood         send "SAY" lines as fast as the connection takes them
//   reconnect     --ids: close its socket if it still has one, connect anew and send
//                 "RESUME <token> <last id>" (prints "reconnected from port <port> ...")
// It prints "gone: <what it saw>" and exits when the server closes the connection, and exits
// when its stdin ends (chatlab is done with it, or died).
//
// With --ids it joins with `HELLO victim ids` (docs/protocol.md, "Ids, resume and history"),
// keeps the TOKEN and the id of the last tagged line it read, and prints every line it reads
// but PING and PONG as "read: <line>" (the token's digits left out), so that chatlab can check
// a resume's replay line by line. When its connection ends it prints "gone: ..." and stays,
// waiting for `reconnect`.
//
// Threads: single-threaded (the process's main thread).
#pragma once

#include <cstdint>
#include <string>

namespace chat::lab {

// Returns the exit code: 0 after a normal end, 1 if it could not join (or reconnect). `web`:
// join over the WebSocket at /ws instead of plain lines. `ids`: join with ids and be able to
// resume (not with `web`). `tls`: over TLS.
int run_victim(const std::string& address, std::uint16_t port, bool web = false, bool ids = false, bool tls = false);

}  // namespace chat::lab
