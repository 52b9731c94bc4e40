#!/usr/bin/python3
"""A one-connection TLS line server for chatclient's tests, on Python's ssl module.

    tls_line_server.py CERT KEY

Listens on 127.0.0.1, port 0, and prints "PORT <n>". Accepts one connection, runs the TLS
handshake ("HANDSHAKE TLSv1.3"), then, in one thread (an SSL object is not for two threads):
  - every line the client sends is printed as "GOT <line>";
  - the end of the client's stream is printed as "EOF close_notify" (it sent close_notify),
    "EOF without close_notify" (a bare FIN) or "EOF error <why>";
  - each line on stdin is a command: "send <line>" sends the line (plus LF); "close_notify"
    sends close_notify, then the TCP FIN ("CLOSED close_notify"); "fin" sends the FIN alone
    ("CLOSED fin"); the end of stdin ends the program.
Every answer is a flushed line. The test ends it by pid.
"""
import os
import select
import socket
import ssl
import sys


def say(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main():
    cert, key = sys.argv[1], sys.argv[2]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    say("PORT %d" % listener.getsockname()[1])
    raw, _ = listener.accept()  # wrap_socket takes it over (raw is closed then)
    listener.close()
    # suppress_ragged_eofs=False: a FIN without close_notify raises SSLEOFError, so the two
    # ends are told apart.
    tls = context.wrap_socket(raw, server_side=True, suppress_ragged_eofs=False)
    say("HANDSHAKE " + (tls.version() or "?"))
    tls.setblocking(False)

    received = b""
    commands = b""
    client_done = False
    stdin_done = False
    while not stdin_done:
        watch = [0] + ([] if client_done else [tls])
        ready = [tls] if not client_done and tls.pending() > 0 else select.select(watch, [], [])[0]
        if tls in ready:
            try:
                data = tls.recv(4096)
                if not data:
                    say("EOF close_notify")
                    client_done = True
                received += data
                while b"\n" in received:
                    line, received = received.split(b"\n", 1)
                    say("GOT " + line.decode("utf-8", "replace"))
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except ssl.SSLEOFError:
                say("EOF without close_notify")
                client_done = True
            except (OSError, ValueError) as e:
                say("EOF error " + str(e).replace("\n", " "))
                client_done = True
        if 0 in ready:
            chunk = os.read(0, 4096)
            if not chunk:
                stdin_done = True
            commands += chunk
            while b"\n" in commands:
                command, commands = commands.split(b"\n", 1)
                command = command.decode()
                if command.startswith("send "):
                    tls.setblocking(True)
                    tls.sendall(command[5:].encode() + b"\n")
                    tls.setblocking(False)
                elif command == "close_notify":
                    try:
                        tls.unwrap()  # sends close_notify; waiting for the answer would block
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, OSError, ValueError):
                        pass
                    socket.socket.shutdown(tls, socket.SHUT_WR)  # the FIN; tls keeps its SSL
                    say("CLOSED close_notify")
                elif command == "fin":
                    socket.socket.shutdown(tls, socket.SHUT_WR)  # the FIN; tls keeps its SSL
                    say("CLOSED fin")
    os._exit(0)


if __name__ == "__main__":
    main()
