#!/usr/bin/python3
"""TLS on chatserver's chat port, checked against clients nobody here wrote.

`openssl s_client`, Python's ssl module, and Python's websockets over wss:// (Debian's
python3-websockets), next to clear-text clients on the same port: the handshake (TLS 1.2 at
least, AEAD ciphers), chat across TLS and clear text, the causes a TLS client leaves with
(close_notify, a FIN without it, a reset, no PONG, too-slow), a handshake that never finishes,
garbage instead of a ClientHello, --tls-only, and a certificate read again on SIGHUP while
clients are connected.

    /usr/bin/python3 tests/web/tls_test.py --server build/release/server/chatserver [-k PATTERN] [-v]

Each test starts its own chatserver on 127.0.0.1 (--port 0) and stops it by pid. Every wait is
bounded; nothing sleeps for readiness: each step waits for the line it expects.
"""

import argparse
import os
import re
import select
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chatweb  # noqa: E402

SERVER = None  # --server
WAIT = chatweb.WAIT


def make_certificate(directory, name, cn='127.0.0.1'):
    """A self-signed ECDSA certificate for 127.0.0.1 made by the openssl command (not by the
    server's own code): (cert path, key path)."""
    cert = os.path.join(directory, name + '.pem')
    key = os.path.join(directory, name + '.key')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
                    '-subj', '/CN=' + cn, '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '2',
                    '-keyout', key, '-out', cert], check=True, capture_output=True)
    return cert, key


def fingerprint(der):
    import hashlib
    return hashlib.sha256(der).hexdigest()


def client_context(cafile=None):
    ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if not cafile:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class TlsPeer(chatweb.Peer):
    """chatweb.Peer over TLS (Python's ssl): the same lines, PING answers and expectations.

    One SSL object must not be used by two threads at once (OpenSSL's rule, which Python's ssl
    module leaves to its user), so the socket is non-blocking and every SSL call, the reader
    thread's and the sender's, is made under self.lock; the waiting is done in select()
    without it."""

    def __init__(self, nick, port, join=True, cafile=None, context=None):
        self.nick = nick
        # The context first: a ClientHello later than 100 ms after the connect is clear text to
        # chatserver (it greets nc users then), and loading a CA file takes a while.
        ctx = context or client_context(cafile)
        raw = socket.create_connection(('127.0.0.1', port), timeout=WAIT)
        self.sock = ctx.wrap_socket(raw, server_hostname='127.0.0.1')
        self.sock.setblocking(False)
        self.lock = threading.Lock()
        self.lines = []
        self.cond = threading.Condition()
        self.closed = False
        self.answer_pings = True
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        if join:
            self.send('HELLO ' + nick)
            self.expect(r'WELCOME ')

    def _recv(self):
        """Some bytes, b'' at the end, None if nothing yet (chatweb.Peer._read calls it)."""
        try:
            select.select([self.sock], [], [], 0.1)
        except (OSError, ValueError):
            return b''
        with self.lock:
            try:
                data = self.sock.recv(65536)
                while self.sock.pending():
                    data += self.sock.recv(65536)
                return data
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return None
            except (OSError, ValueError):
                return b''

    def send(self, line):
        data = line.encode() + b'\n'
        end = time.monotonic() + WAIT
        while data and time.monotonic() < end:
            with self.lock:
                try:
                    n = self.sock.send(data)
                    data = data[n:]
                    continue
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    pass
                except (OSError, ValueError):
                    return
            try:
                select.select([], [self.sock], [], 0.1)
            except (OSError, ValueError):
                return

    def close_notify(self):
        """TLS's goodbye (close_notify), not waiting for the server's."""
        with self.lock:
            try:
                self.sock.unwrap()
            except (ssl.SSLError, OSError, ValueError):
                pass  # sent; the server's answer is not waited for here


class SlowReader:
    """A TLS client that joins and then reads nothing until told: its server-side queue fills."""

    def __init__(self, nick, port):
        ctx = client_context()
        raw = socket.create_connection(('127.0.0.1', port), timeout=WAIT)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock = ctx.wrap_socket(raw, server_hostname='127.0.0.1')
        self.buf = b''
        self.sock.sendall(b'HELLO ' + nick.encode() + b'\n')
        self.read_until(b'WELCOME ')

    def read_until(self, marker, timeout=WAIT):
        end = time.monotonic() + timeout
        while marker not in self.buf:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError('closed before %r' % marker)
            self.buf += data
        return self.buf


class TlsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix='chat-tls-')
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        self.dir.cleanup()

    def server(self, *extra):
        s = chatweb.ChatServer(SERVER, extra=list(extra))
        self.servers.append(s)
        return s

    def tls_server(self, *extra):
        return self.server('--self-signed', os.path.join(self.dir.name, 'self'), *extra)

    def cert(self):
        return os.path.join(self.dir.name, 'self', 'cert.pem')

    def wait_log(self, server, pattern, timeout=WAIT):
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in list(server.log):
                if rx.search(line):
                    return line
            time.sleep(0.02)
        raise AssertionError('chatserver did not log /%s/ within %s s; last lines:\n%s'
                             % (pattern, timeout, ''.join(server.log[-15:])))

    # ---- clients nobody here wrote ---------------------------------------------------------

    def test_openssl_s_client_chats_with_a_clear_text_client(self):
        s = self.tls_server()
        plain = chatweb.Peer('plain', s.port)
        client = subprocess.Popen(['openssl', 's_client', '-quiet', '-connect', '127.0.0.1:%d' % s.port,
                                   '-CAfile', self.cert(), '-verify_return_error', '-verify_ip', '127.0.0.1'],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            client.stdin.write(b'HELLO tlsuser\nSAY over TLS\n')
            client.stdin.flush()
            plain.expect(r'JOIN tlsuser$')
            plain.expect(r'MSG tlsuser over TLS$')
            plain.send('SAY clear text')
            got = b''
            end = time.monotonic() + WAIT
            os.set_blocking(client.stdout.fileno(), False)
            while b'MSG plain clear text' not in got and time.monotonic() < end:
                try:
                    chunk = os.read(client.stdout.fileno(), 4096)
                except BlockingIOError:
                    time.sleep(0.02)
                    continue
                if not chunk:
                    break
                got += chunk
            self.assertIn(b'# chatserver ', got)  # the greeting, inside TLS
            self.assertIn(b'MSG plain clear text', got)
            client.stdin.write(b'QUIT\n')
            client.stdin.flush()
            plain.expect(r'LEAVE tlsuser quit')
        finally:
            if client.poll() is None:
                client.kill()
            client.wait()
        self.wait_log(s, r'joined from 127\.0\.0\.1:\d+ as #\d+ \(protocol mode, lines over TLS\)')

    def test_python_ssl_verifies_the_self_signed_certificate_and_gets_tls12_or_better_with_aead(self):
        s = self.tls_server('--log-level', 'debug')  # failed handshakes without an alert are debug
        ctx = ssl.create_default_context(cafile=self.cert())  # verifies chain and IP
        with socket.create_connection(('127.0.0.1', s.port), timeout=WAIT) as raw:
            with ctx.wrap_socket(raw, server_hostname='127.0.0.1') as c:
                self.assertIn(c.version(), ('TLSv1.2', 'TLSv1.3'))
                name = c.cipher()[0]
                self.assertTrue('GCM' in name or 'CHACHA20' in name, name)
                c.settimeout(WAIT)
                self.assertTrue(c.recv(4096).startswith(b'# chatserver '))
        # TLS 1.2 with only CBC ciphers, and TLS 1.1: refused.
        for setup in ('cbc', 'tls11'):
            ctx = client_context()
            if setup == 'cbc':
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
                ctx.set_ciphers('ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA')
            else:
                try:
                    ctx.set_ciphers('DEFAULT:@SECLEVEL=0')
                    ctx.minimum_version = ssl.TLSVersion.TLSv1_1
                    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
                except (ValueError, ssl.SSLError):
                    continue  # this OpenSSL cannot even offer it
            with socket.create_connection(('127.0.0.1', s.port), timeout=WAIT) as raw:
                with self.assertRaises((ssl.SSLError, ConnectionError, OSError), msg=setup):
                    with ctx.wrap_socket(raw, server_hostname='127.0.0.1') as c:
                        c.settimeout(WAIT)
                        c.recv(10)
        self.wait_log(s, r'TLS handshake failed, from 127\.0\.0\.1')

    def test_websockets_over_wss_and_the_page_over_https(self):
        import asyncio
        import urllib.request
        import websockets
        s = self.tls_server()
        plain = chatweb.Peer('plain', s.port)
        ctx = ssl.create_default_context(cafile=self.cert())
        page = urllib.request.urlopen('https://127.0.0.1:%d/' % s.port, context=ctx, timeout=WAIT).read()
        self.assertIn(b'<html', page)

        async def talk():
            origin = 'https://127.0.0.1:%d' % s.port
            async with websockets.connect('wss://127.0.0.1:%d/ws' % s.port, ssl=ctx, origin=origin) as ws:
                self.assertTrue((await asyncio.wait_for(ws.recv(), WAIT)).startswith('# chatserver '))
                await ws.send('HELLO webtls')
                self.assertEqual(await asyncio.wait_for(ws.recv(), WAIT), 'WELCOME webtls')
                await ws.send('SAY from wss')
                while (await asyncio.wait_for(ws.recv(), WAIT)) != 'MSG webtls from wss':
                    pass
        asyncio.run(talk())
        plain.expect(r'MSG webtls from wss$')
        plain.expect(r'LEAVE webtls closed')
        self.wait_log(s, r'websocket over TLS')

    # ---- why a TLS client left ---------------------------------------------------------------

    def leave_of(self, watcher, nick):
        line = watcher.expect(r'LEAVE %s ' % nick)
        parts = line.split(' ', 3)
        return parts[2], parts[3] if len(parts) > 3 else ''

    def test_close_notify_fin_reset_and_no_pong_each_have_their_cause(self):
        s = self.tls_server('--ping-interval', '300ms', '--ping-timeout', '500ms')
        watcher = chatweb.Peer('watcher', s.port)
        # close_notify, then FIN: a polite end.
        polite = TlsPeer('polite', s.port)
        polite.close_notify()
        cause, detail = self.leave_of(watcher, 'polite')
        self.assertEqual(cause, 'closed')
        self.assertIn('close_notify', detail)
        self.assertNotIn('without', detail)
        # A FIN with no close_notify first: closed, and said to be without it.
        cut = TlsPeer('cut', s.port)
        cut.answer_pings = True
        socket.socket.shutdown(cut.sock, socket.SHUT_WR)  # the TCP socket's, not TLS's
        cause, detail = self.leave_of(watcher, 'cut')
        self.assertEqual(cause, 'closed')
        self.assertIn('without close_notify', detail)
        # An RST.
        reset = TlsPeer('reset', s.port)
        reset.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        socket.socket.close(reset.sock)
        cause, _ = self.leave_of(watcher, 'reset')
        self.assertEqual(cause, 'reset')
        # A peer whose kernel ACKs but whose program does not answer: no-pong.
        hung = TlsPeer('hung', s.port)
        hung.answer_pings = False
        cause, _ = self.leave_of(watcher, 'hung')
        self.assertEqual(cause, 'no-pong')

    def test_a_tls_client_that_stops_reading_leaves_too_slow(self):
        # --send-queue 256 KiB: the clear-text clients (Python threads) keep up; `stuck` never reads.
        s = self.tls_server('--send-queue', '256KiB', '--max-rate', '0', '--send-timeout', '3s')
        talker = chatweb.Peer('talker', s.port)
        watcher = chatweb.Peer('watcher', s.port)
        stuck = SlowReader('stuck', s.port)
        for i in range(3000):
            talker.send('SAY %d %s' % (i, 'x' * 200))
        cause, _ = self.leave_of(watcher, 'stuck')
        self.assertEqual(cause, 'too-slow')
        watcher.expect(r'MSG talker 2999 ', timeout=WAIT * 2)
        self.assertIsNotNone(stuck)

    def test_many_lines_through_a_full_socket_arrive_whole_and_in_order(self):
        s = self.tls_server('--max-rate', '0')
        talker = chatweb.Peer('talker', s.port)
        reader = SlowReader('reader', s.port)
        for i in range(600):
            talker.send('SAY %d %s' % (i, 'y' * 300))
        talker.expect(r'MSG talker 599 ')
        data = reader.read_until(b'MSG talker 599 ', timeout=WAIT * 2)
        numbers = [int(m.group(1)) for m in re.finditer(rb'MSG talker (\d+) y+\n', data)]
        self.assertEqual(numbers, list(range(600)))

    # ---- what is not TLS, or not finished ----------------------------------------------------

    def test_a_handshake_that_never_finishes_times_out_and_garbage_is_refused(self):
        s = self.tls_server('--handshake-timeout', '500ms', '--log-level', 'debug')
        watcher = chatweb.Peer('watcher', s.port)
        # Half a ClientHello, then silence.
        with socket.create_connection(('127.0.0.1', s.port), timeout=WAIT) as c:
            c.sendall(b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03')
            c.settimeout(WAIT)
            start = time.monotonic()
            data = c.recv(4096)
            self.assertEqual(data, b'')  # a FIN, no BYE line it could not read
            self.assertLess(time.monotonic() - start, WAIT)
        self.wait_log(s, r'no TLS handshake within')
        # 0x16 and then nonsense: an alert, and the connection closed.
        with socket.create_connection(('127.0.0.1', s.port), timeout=WAIT) as c:
            c.sendall(b'\x16\x03\x01\x00\x10' + b'not a hello at all' * 4)
            c.settimeout(WAIT)
            got = b''
            while True:
                try:
                    chunk = c.recv(4096)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                got += chunk
            self.assertTrue(got == b'' or got[0] == 0x15, got)  # nothing, or a TLS alert record
        self.wait_log(s, r'TLS handshake failed, from 127\.0\.0\.1')
        # The room is untouched.
        watcher.send('SAY still here')
        watcher.expect(r'MSG watcher still here$')

    def test_tls_only_refuses_clear_text_with_a_hint_and_sends_browsers_to_https(self):
        s = self.tls_server('--tls-only')
        with socket.create_connection(('127.0.0.1', s.port), timeout=WAIT) as c:
            c.settimeout(WAIT)
            data = b''
            while not data.endswith(b'\n'):
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
            self.assertTrue(data.startswith(b'BYE tls-required '), data)
            self.assertIn(b'openssl s_client', data)
            self.assertIn(b'chatclient --tls', data)
        with socket.create_connection(('127.0.0.1', s.port), timeout=WAIT) as c:
            c.sendall(b'GET /room HTTP/1.1\r\nHost: chat.lan:15600\r\n\r\n')
            c.settimeout(WAIT)
            data = b''
            while b'\r\n\r\n' not in data:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
            self.assertTrue(data.startswith(b'HTTP/1.1 301 '), data)
            self.assertIn(b'\r\nLocation: https://chat.lan:15600/\r\n', data)
        # TLS still gets in.
        TlsPeer('secure', s.port, cafile=self.cert())

    def test_sighup_reads_the_certificate_again_while_clients_stay_connected(self):
        first = make_certificate(self.dir.name, 'first')
        second = make_certificate(self.dir.name, 'second')
        live = os.path.join(self.dir.name, 'live.pem')
        live_key = os.path.join(self.dir.name, 'live.key')
        for src, dst in ((first[0], live), (first[1], live_key)):
            with open(src, 'rb') as f, open(dst, 'wb') as g:
                g.write(f.read())
        s = self.server('--tls-cert', live, '--tls-key', live_key)
        old = TlsPeer('old', s.port, cafile=first[0])
        der_old = old.sock.getpeercert(binary_form=True)
        for src, dst in ((second[0], live), (second[1], live_key)):
            with open(src, 'rb') as f, open(dst, 'wb') as g:
                g.write(f.read())
        s.signal(signal.SIGHUP)
        self.wait_log(s, r'TLS certificate read again')
        new = TlsPeer('new', s.port, cafile=second[0])
        self.assertNotEqual(fingerprint(new.sock.getpeercert(binary_form=True)), fingerprint(der_old))
        # The client from before the reload is still in the room, both ways.
        old.send('SAY still on the old certificate')
        new.expect(r'MSG old still on the old certificate$')
        new.send('SAY hello old')
        old.expect(r'MSG new hello old$')
        # A broken file: the certificate in use stays, and that is logged.
        with open(live_key, 'w') as f:
            f.write('not a key\n')
        s.signal(signal.SIGHUP)
        self.wait_log(s, r'TLS certificate not reloaded \(the old one stays\)')
        TlsPeer('after', s.port, cafile=second[0])


def main():
    global SERVER
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--server', required=True)
    args, rest = parser.parse_known_args()
    SERVER = os.path.abspath(args.server)
    unittest.main(argv=[sys.argv[0]] + rest)


if __name__ == '__main__':
    main()
