#!/usr/bin/python3
"""The web side of chatserver's chat port, checked against clients nobody here wrote.

Python's websockets (Debian's python3-websockets 10.4) and raw sockets with this file's own
frame encoder, never the server's code: the WebSocket at /ws (one text frame per protocol line,
both ways), its close codes, the frames RFC 6455 refuses, the HTTP answers around the upgrade,
nc-style clients on the same port, the limits (max-per-ip, flood, too-slow, no-pong) and a
mixed room of web and TCP clients under load.

    /usr/bin/python3 tests/web/websocket_test.py --server build/release/server/chatserver [-k PATTERN] [-v]

Each test starts its own chatserver on 127.0.0.1 (--port 0) and stops it by pid. Every wait is
bounded; nothing sleeps for readiness: each step waits for the line or frame it expects. The
last line printed is "N passed, N failed" (", N skipped" when some were skipped).
"""

import argparse
import asyncio
import base64
import hashlib
import os
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

import websockets
import websockets.exceptions as wse

SERVER = None        # --server
T = 10.0             # the default bound for one expected line, frame or handshake
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HOST = "127.0.0.1"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10

# What the tests observed that the brief leaves open (printed at the end, for the report).
OBSERVATIONS = []


def observe(text):
    OBSERVATIONS.append(text)


# ---- the server -----------------------------------------------------------------------------

class Server:
    """One chatserver process; its stderr is drained by a thread so it never blocks."""

    LISTENING = re.compile(r"chatserver listening on 127\.0\.0\.1:(\d+)")

    def __init__(self, args):
        self.cmd = [SERVER, "--bind", HOST, "--port", "0"] + list(args)
        self.lines = []
        self._q = queue.Queue()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()
        try:
            first = self._q.get(timeout=T)
        except queue.Empty:
            self.stop()
            raise AssertionError("chatserver printed nothing on stderr within %.0f s: %s" % (T, self.cmd))
        m = self.LISTENING.search(first or "")
        if not m:
            self.stop()
            raise AssertionError("chatserver's first stderr line is not 'chatserver listening on ...': %r "
                                 "(command %s; stderr %s)" % (first, self.cmd, self.lines[-10:]))
        self.port = int(m.group(1))

    def _drain(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            self._q.put(line)
        self._q.put(None)

    def terminate(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=T)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=T)
        self._thread.join(timeout=5)
        self.proc.stderr.close()
        if os.environ.get("WS_TEST_LOG"):
            sys.stderr.write("---- chatserver %s stderr (last 40 lines):\n  %s\n"
                             % (" ".join(self.cmd[1:]), "\n  ".join(self.lines[-40:])))


# ---- matching lines -------------------------------------------------------------------------

def matcher(p):
    """str: the exact line; compiled regex: search; callable: as is."""
    if callable(p) and not isinstance(p, re.Pattern):
        return p
    if isinstance(p, re.Pattern):
        return lambda line: p.search(line) is not None
    return lambda line: line == p


def prefix(p):
    return lambda line: line.startswith(p)


def leave_fields(line):
    """'LEAVE nick cause detail...' -> (nick, cause, detail)."""
    parts = line.split(" ", 3)
    assert parts[0] == "LEAVE", line
    return parts[1], parts[2] if len(parts) > 2 else "", parts[3] if len(parts) > 3 else ""


# ---- a plain TCP client (sync) ----------------------------------------------------------------

class LineClient:
    """A line-protocol (or nc-style) client over a blocking socket. Answers PING with PONG
    while it waits in expect() (auto_pong), as a protocol client should."""

    def __init__(self, port, rcvbuf=None, auto_pong=True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(T)
        self.sock.connect((HOST, port))
        self.buf = bytearray()
        self.eof = False
        self.reset = False
        self.seen = []
        self.auto_pong = auto_pong

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def send_line(self, text):
        self.send(text.encode() + b"\n")

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError
        except ConnectionResetError:
            self.eof = self.reset = True
            return
        if not data:
            self.eof = True
        self.buf += data

    def read_line(self, timeout=T):
        """The next line without its LF; None at end of stream; TimeoutError."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            if self.eof:
                return None
            self._fill(deadline)
        i = self.buf.index(b"\n")
        line = bytes(self.buf[:i]).decode("utf-8", "replace")
        del self.buf[:i + 1]
        self.seen.append(line)
        return line

    def expect(self, pred, timeout=T, what=None):
        match = matcher(pred)
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.read_line(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise AssertionError("timed out after %.1f s waiting for %s; last lines: %r"
                                     % (timeout, what or pred, self.seen[-12:]))
            if line is None:
                raise AssertionError("end of stream while waiting for %s; last lines: %r; unfinished: %r"
                                     % (what or pred, self.seen[-12:], bytes(self.buf[:200])))
            if self.auto_pong and line.startswith("PING "):
                self.send_line("PONG " + line[5:])
            if match(line):
                return line

    def read_to_eof(self, timeout=T):
        """Everything until the end of stream (bytes)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                self._fill(deadline)
            except TimeoutError:
                raise AssertionError("the connection was not closed within %.1f s; got %r"
                                     % (timeout, bytes(self.buf[:300])))
        data = bytes(self.buf)
        self.buf.clear()
        return data


def tcp_join(port, nick):
    c = LineClient(port)
    c.send_line("HELLO " + nick)
    c.expect("WELCOME " + nick)
    c.expect(prefix("USERS "))
    return c


# ---- RFC 6455 frames, our own ---------------------------------------------------------------

def encode_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, announce=None, key=None):
    """One client frame. `rsv`: the 3 reserved bits (4 = RSV1). `announce`: the length put in
    the header (default: the payload's). With `mask` the payload is masked with `key` (random)."""
    n = len(payload) if announce is None else announce
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n < 65536:
        head = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    if mask:
        key = key or os.urandom(4)
        head += key
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + payload


class Frame:
    def __init__(self, fin, rsv, opcode, payload):
        self.fin, self.rsv, self.opcode, self.payload = fin, rsv, opcode, payload

    def close_code(self):
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else 1005

    def __repr__(self):
        return "Frame(op=%d fin=%d %r)" % (self.opcode, self.fin, self.payload[:80])


class RawWS(LineClient):
    """A WebSocket client on a raw socket: the opening handshake by hand, frames with
    encode_frame(), the server's frames parsed here. Checks every server frame: not masked,
    no reserved bit, FIN set on text frames, and no '\\n' in a text frame."""

    def __init__(self, port, rcvbuf=None, origin=None, auto_pong=True):
        super().__init__(port, rcvbuf=rcvbuf, auto_pong=auto_pong)
        self.texts = []
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (HOST, port, key))
        if origin:
            req += "Origin: %s\r\n" % origin
        self.send((req + "\r\n").encode())
        deadline = time.monotonic() + T
        while b"\r\n\r\n" not in self.buf:
            if self.eof:
                raise AssertionError("connection closed during the WebSocket handshake: %r" % bytes(self.buf))
            self._fill(deadline)
        i = self.buf.index(b"\r\n\r\n")
        head = bytes(self.buf[:i]).decode("latin-1")
        del self.buf[:i + 4]
        self.response_head = head
        lines = head.split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101 "):
            raise AssertionError("WebSocket handshake refused: %r" % head)
        fields = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if fields.get("sec-websocket-accept") != want:
            raise AssertionError("bad Sec-WebSocket-Accept in %r (want %s)" % (head, want))

    def send_frame(self, opcode, payload=b"", **kw):
        self.send(encode_frame(opcode, payload, **kw))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text.encode())

    def send_line(self, text):  # a protocol line is one text message
        self.send_text(text)

    def _need(self, n, deadline):
        while len(self.buf) < n:
            if self.eof:
                return False
            self._fill(deadline)
        return True

    def read_frame(self, timeout=T):
        """The next frame, or None at end of stream; TimeoutError."""
        deadline = time.monotonic() + timeout
        if not self._need(2, deadline):
            if self.buf:
                raise AssertionError("stream ended inside a frame header: %r" % bytes(self.buf))
            return None
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        hl = 2 + (2 if n == 126 else 8 if n == 127 else 0) + (4 if b1 & 0x80 else 0)
        if not self._need(hl, deadline):
            raise AssertionError("stream ended inside a frame header: %r" % bytes(self.buf))
        if n == 126:
            n = struct.unpack("!H", self.buf[2:4])[0]
        elif n == 127:
            n = struct.unpack("!Q", self.buf[2:10])[0]
        if not self._need(hl + n, deadline):
            raise AssertionError("stream ended inside a frame's payload")
        payload = bytes(self.buf[hl:hl + n])
        del self.buf[:hl + n]
        f = Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload)
        if b1 & 0x80:
            raise AssertionError("the server sent a masked frame: %r" % f)
        if f.rsv:
            raise AssertionError("the server set reserved bits: %r" % f)
        if f.opcode == OP_TEXT:
            if not f.fin:
                raise AssertionError("the server fragmented a text message: %r" % f)
            text = payload.decode("utf-8")
            if "\n" in text:
                raise AssertionError("a text frame from the server holds a newline: %r" % text)
            self.texts.append(text)
            self.seen.append(text)
        return f

    def read_line(self, timeout=T):
        """The next text message (control frames in between: a ping is answered, a pong
        skipped); None at a close frame or end of stream."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.read_frame(max(0.0, deadline - time.monotonic()))
            if f is None:
                return None
            if f.opcode == OP_TEXT:
                return f.payload.decode("utf-8")
            if f.opcode == OP_CLOSE:
                self.pending_close = f
                return None
            if f.opcode == OP_PING:
                self.send_frame(OP_PONG, f.payload)
            elif f.opcode != OP_PONG:
                raise AssertionError("unexpected frame from the server: %r" % f)

    def expect_frame(self, opcode, timeout=T):
        """Reads frames until one with `opcode`; text frames before it are kept in self.texts."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                f = self.read_frame(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise AssertionError("timed out waiting for a frame of opcode %d; texts: %r"
                                     % (opcode, self.texts[-10:]))
            if f is None:
                raise AssertionError("end of stream waiting for a frame of opcode %d; texts: %r%s"
                                     % (opcode, self.texts[-10:], " (reset)" if self.reset else ""))
            if f.opcode == opcode:
                return f
            if f.opcode not in (OP_TEXT, OP_PONG, OP_PING):
                raise AssertionError("frame %r while waiting for opcode %d" % (f, opcode))

    def expect_close(self, timeout=T):
        f = self.expect_frame(OP_CLOSE, timeout)
        return f.close_code(), f.payload[2:].decode("utf-8")

    def expect_eof(self, timeout=T):
        deadline = time.monotonic() + timeout
        while True:
            try:
                f = self.read_frame(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise AssertionError("the server did not close the TCP connection within %.1f s" % timeout)
            if f is None:
                return
            if f.opcode not in (OP_TEXT, OP_PING, OP_PONG):
                raise AssertionError("frame %r after the close frame" % f)


# ---- raw HTTP ----------------------------------------------------------------------------------

class HttpReply:
    def __init__(self, status, reason, headers, body):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body

    def header(self, name):
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(vals) if vals else None

    def __repr__(self):
        return "HTTP %d %s %r %r" % (self.status, self.reason, self.headers, self.body[:120])


def read_http_response(c, timeout=T, head_only=False):
    """One response from LineClient `c`: the head, then Content-Length bytes of body (or until
    end of stream when there is none)."""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in c.buf:
        if c.eof:
            raise AssertionError("no HTTP response head before end of stream: %r" % bytes(c.buf[:300]))
        try:
            c._fill(deadline)
        except TimeoutError:
            raise AssertionError("no HTTP response head within %.1f s: %r" % (timeout, bytes(c.buf[:300])))
    i = c.buf.index(b"\r\n\r\n")
    head = bytes(c.buf[:i]).decode("latin-1").split("\r\n")
    del c.buf[:i + 4]
    m = re.match(r"HTTP/1\.[01] (\d{3}) ?(.*)$", head[0])
    if not m:
        raise AssertionError("not an HTTP status line: %r" % head[0])
    headers = [(k.strip(), v.strip()) for k, v in (l.split(":", 1) for l in head[1:])]
    status = int(m.group(1))
    r = HttpReply(status, m.group(2), headers, b"")
    if status == 101 or head_only:
        return r
    length = r.header("Content-Length")
    if length is not None:
        n = int(length)
        while len(c.buf) < n:
            if c.eof:
                raise AssertionError("body cut short: %d of %d bytes" % (len(c.buf), n))
            c._fill(deadline)
        r.body = bytes(c.buf[:n])
        del c.buf[:n]
    else:
        r.body = c.read_to_eof(max(0.1, deadline - time.monotonic()))
    return r


def http_get(port, request, head_only=False):
    """Sends the raw `request` (str or bytes) on a new connection; returns (reply, client)."""
    c = LineClient(port)
    c.send(request.encode() if isinstance(request, str) else request)
    try:
        return read_http_response(c, head_only=head_only), c
    except BaseException:
        c.close()
        raise


def upgrade_request(port, version="13", origin=None, host=None, upgrade=True):
    key = base64.b64encode(os.urandom(16)).decode()
    req = "GET /ws HTTP/1.1\r\nHost: %s\r\n" % (host or "%s:%d" % (HOST, port))
    if upgrade:
        req += "Upgrade: websocket\r\nConnection: Upgrade\r\n"
    req += "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: %s\r\n" % (key, version)
    if origin:
        req += "Origin: %s\r\n" % origin
    return req + "\r\n"


# ---- websockets (asyncio) helpers ---------------------------------------------------------------

def run(coro, timeout=120):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def ws_connect(port, **kw):
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", T)
    kw.setdefault("close_timeout", T)
    return await asyncio.wait_for(websockets.connect("ws://%s:%d/ws" % (HOST, port), **kw), T)


class WebClient:
    """A websockets connection with expect(): every message is checked for '\\n'."""

    def __init__(self, ws):
        self.ws = ws
        self.seen = []

    @classmethod
    async def open(cls, port, **kw):
        return cls(await ws_connect(port, **kw))

    async def recv(self, timeout=T):
        msg = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(msg, str), "a binary message from the server: %r" % (msg,)
        assert "\n" not in msg, "a message from the server holds a newline: %r" % msg
        self.seen.append(msg)
        return msg

    async def send(self, text):
        await asyncio.wait_for(self.ws.send(text), T)

    async def expect(self, pred, timeout=T, what=None):
        match = matcher(pred)
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = await self.recv(max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise AssertionError("timed out waiting for %s; last messages: %r" % (what or pred, self.seen[-12:]))
            except wse.ConnectionClosed as e:
                raise AssertionError("connection closed (%s) waiting for %s; last messages: %r"
                                     % (e, what or pred, self.seen[-12:]))
            if msg.startswith("PING "):
                await self.send("PONG " + msg[5:])
            if match(msg):
                return msg

    async def until_closed(self, timeout=T):
        """Messages until the server closes; returns them (the close code is then ws.close_code)."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                got.append(await self.recv(max(0.0, deadline - time.monotonic())))
            except wse.ConnectionClosed:
                return got
            except asyncio.TimeoutError:
                raise AssertionError("the server did not close within %.1f s; messages: %r" % (timeout, got[-12:]))

    async def close(self):
        try:
            await asyncio.wait_for(self.ws.close(), T)
        except Exception:
            pass


async def web_join(port, nick, **kw):
    w = await WebClient.open(port, **kw)
    greeting = await w.recv()
    assert greeting.startswith("# chatserver "), greeting
    await w.send("HELLO " + nick)
    await w.expect("WELCOME " + nick)
    await w.expect(prefix("USERS "))
    return w


class AsyncLine:
    """A protocol client on asyncio streams (for tests that also run websockets clients)."""

    def __init__(self, reader, writer):
        self.r, self.w = reader, writer
        self.seen = []

    @classmethod
    async def open(cls, port):
        r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port, limit=1 << 20), T)
        return cls(r, w)

    async def send_line(self, text):
        self.w.write(text.encode() + b"\n")
        await asyncio.wait_for(self.w.drain(), T)

    async def read_line(self, timeout=T):
        raw = await asyncio.wait_for(self.r.readline(), timeout)
        if not raw:
            return None
        line = raw.decode("utf-8", "replace").rstrip("\n")
        self.seen.append(line)
        return line

    async def expect(self, pred, timeout=T, what=None):
        match = matcher(pred)
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = await self.read_line(max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise AssertionError("timed out waiting for %s; last lines: %r" % (what or pred, self.seen[-12:]))
            if line is None:
                raise AssertionError("end of stream waiting for %s; last lines: %r" % (what or pred, self.seen[-12:]))
            if line.startswith("PING "):
                await self.send_line("PONG " + line[5:])
            if match(line):
                return line

    def close(self):
        self.w.close()


async def async_tcp_join(port, nick):
    c = await AsyncLine.open(port)
    await c.send_line("HELLO " + nick)
    await c.expect("WELCOME " + nick)
    await c.expect(prefix("USERS "))
    return c


# ---- the tests --------------------------------------------------------------------------------

class WebSocketTest(unittest.TestCase):
    maxDiff = None

    def start_server(self, *args, per_ip=True):
        args = list(args)
        if per_ip and "--max-per-ip" not in args:
            args += ["--max-per-ip", "0"]
        srv = Server(args)
        self.addCleanup(srv.stop)
        return srv

    def client(self, c):
        self.addCleanup(c.close)
        return c

    def assert_leave(self, line, nick, cause, detail_has=()):
        n, c, d = leave_fields(line)
        self.assertEqual(n, nick, line)
        self.assertEqual(c, cause, line)
        for part in detail_has:
            self.assertIn(part, d, line)
        return d

    # -- 1. a web client and a TCP client chat ----------------------------------------------------

    def test_01_web_and_tcp_chat(self):
        srv = self.start_server()

        async def go():
            tcp = await async_tcp_join(srv.port, "tcp1")
            w = await WebClient.open(srv.port)
            try:
                first = await w.recv()
                self.assertTrue(first.startswith("# chatserver 0.1.0: "), first)
                await w.send("HELLO web1")
                self.assertEqual(await w.recv(), "WELCOME web1")
                self.assertEqual(await w.recv(), "USERS tcp1 web1")
                await tcp.expect("JOIN web1")
                await w.send("SAY hi from web")
                await tcp.expect("MSG web1 hi from web")
                self.assertEqual(await w.recv(), "MSG web1 hi from web")  # its own echo, in order
                await tcp.send_line("SAY hi from tcp")
                self.assertEqual(await w.recv(), "MSG tcp1 hi from tcp")
                await w.send("PRIV tcp1 psst from web")
                await tcp.expect("PRIV web1 tcp1 psst from web")
                self.assertEqual(await w.recv(), "PRIV web1 tcp1 psst from web")
                await tcp.send_line("PRIV web1 psst from tcp")
                self.assertEqual(await w.recv(), "PRIV tcp1 web1 psst from tcp")
                await w.send("ME waves")
                await tcp.expect("ME web1 waves")
                self.assertEqual(await w.recv(), "ME web1 waves")
                await w.send("WHO")
                self.assertEqual(await w.recv(), "USERS tcp1 web1")
                await w.send("PING 42")
                self.assertEqual(await w.recv(), "PONG 42")
                # Every message so far was one line without its newline (checked in recv()).
                self.assertTrue(all("\n" not in m for m in w.seen))
            finally:
                await w.close()
                tcp.close()

        run(go())

    # -- 2. text mode over a WebSocket ------------------------------------------------------------

    def test_02_text_mode(self):
        srv = self.start_server()
        stamp = r"^\[\d\d:\d\d:\d\d\] "

        async def go():
            tcp = await async_tcp_join(srv.port, "tcp1")
            w = await WebClient.open(srv.port)
            try:
                self.assertTrue((await w.recv()).startswith("# chatserver "))
                await w.send("maya")
                self.assertRegex(await w.recv(), stamp + re.escape("*** welcome, maya (type /help for commands)") + "$")
                self.assertRegex(await w.recv(), stamp + re.escape("*** online (2): maya tcp1") + "$")
                # The last messages before joining, between "--- earlier messages (N) ---" and
                # "--- now ---" (here: tcp1's join).
                self.assertEqual(await w.recv(), "--- earlier messages (1) ---")
                self.assertRegex(await w.recv(), stamp + re.escape("*** tcp1 joined") + "( \\(\\d+ online\\))?$")
                self.assertEqual(await w.recv(), "--- now ---")
                await tcp.expect("JOIN maya")
                await w.send("hello all")
                await tcp.expect("MSG maya hello all")
                self.assertRegex(await w.recv(), stamp + re.escape("<maya> hello all") + "$")
                await tcp.send_line("SAY hi maya")
                self.assertRegex(await w.recv(), stamp + re.escape("<tcp1> hi maya") + "$")
                await w.send("/quit bye")
                msgs = await w.until_closed()
                self.assertTrue(msgs and re.match(stamp + re.escape("*** you left") + "$", msgs[-1]),
                                msgs)
                self.assertEqual(w.ws.close_code, 1000)
                line = await tcp.expect(prefix("LEAVE maya "))
                self.assertEqual(line, "LEAVE maya quit bye")
            finally:
                await w.close()
                tcp.close()

        run(go())

    # -- 3. WebSocket ping -----------------------------------------------------------------------

    def test_03_ping_pong(self):
        srv = self.start_server()

        async def go():
            w = await WebClient.open(srv.port)
            try:
                self.assertTrue((await w.recv()).startswith("# chatserver "))
                for payload in (b"abc123", b"", os.urandom(125)):
                    waiter = await w.ws.ping(payload)
                    await asyncio.wait_for(waiter, T)  # websockets matches the pong's payload
                await w.send("HELLO web1")
                await w.expect("WELCOME web1")
                waiter = await w.ws.ping("joined")
                await asyncio.wait_for(waiter, T)
            finally:
                await w.close()

        run(go())

    # -- 4. close codes ----------------------------------------------------------------------------

    def test_04a_client_close_1001(self):
        srv = self.start_server()

        async def go():
            tcp = await async_tcp_join(srv.port, "tcp1")
            w = await web_join(srv.port, "web1")
            await tcp.expect("JOIN web1")
            await asyncio.wait_for(w.ws.close(1001, "tab closed"), T)
            self.assertEqual(w.ws.close_code, 1001)  # echoed
            line = await tcp.expect(prefix("LEAVE web1 "))
            d = self.assert_leave(line, "web1", "closed", ["1001"])
            self.assertTrue(d.startswith("WebSocket close 1001 (going away)"), line)
            self.assertIn("tab closed", d)
            tcp.close()

        run(go())

    def test_04b_quit_1000(self):
        srv = self.start_server()

        async def go():
            tcp = await async_tcp_join(srv.port, "tcp1")
            w = await web_join(srv.port, "web1")
            await tcp.expect("JOIN web1")
            await w.send("QUIT bye")
            msgs = await w.until_closed()
            self.assertEqual(msgs, ["BYE quit"])
            self.assertEqual(w.ws.close_code, 1000)
            self.assertEqual(await tcp.expect(prefix("LEAVE web1 ")), "LEAVE web1 quit bye")
            tcp.close()

        run(go())

    def test_04c_shutdown_1001(self):
        srv = self.start_server()

        async def go():
            w = await web_join(srv.port, "web1")
            srv.terminate()
            msgs = await w.until_closed()
            self.assertEqual(msgs, ["BYE shutdown server shutting down"])
            self.assertEqual(w.ws.close_code, 1001)

        run(go())
        self.assertEqual(srv.proc.wait(timeout=T), 0)

    # -- 5. frames a server must refuse -------------------------------------------------------------

    def raw_pair(self, *server_args):
        """A server, a TCP observer tcp1 and a raw web client web1, both joined."""
        srv = self.start_server(*server_args)
        obs = self.client(tcp_join(srv.port, "tcp1"))
        web = self.client(RawWS(srv.port))
        self.assertTrue(web.expect(prefix("# chatserver ")))
        web.send_text("HELLO web1")
        web.expect("WELCOME web1")
        web.expect(prefix("USERS "))
        obs.expect("JOIN web1")
        return srv, obs, web

    def refused(self, bad, code, *server_args):
        srv, obs, web = self.raw_pair(*server_args)
        web.send(bad)
        got, reason = web.expect_close()
        self.assertEqual(got, code, "close reason %r" % reason)
        web.expect_eof()
        self.assert_leave(obs.expect(prefix("LEAVE web1 ")), "web1", "error", [str(code)])
        return reason

    def test_05a_unmasked_frame_1002(self):
        self.refused(encode_frame(OP_TEXT, b"SAY hi", mask=False), 1002)

    def test_05b_binary_frame_1003(self):
        self.refused(encode_frame(OP_BINARY, b"SAY hi"), 1003)

    def test_05c_invalid_utf8_1007(self):
        self.refused(encode_frame(OP_TEXT, b"SAY \xc3\x28"), 1007)

    def test_05d_invalid_utf8_across_fragments_1007(self):
        self.refused(encode_frame(OP_TEXT, b"SAY caf\xc3", fin=False) + encode_frame(OP_CONT, b"\x28"), 1007)

    def test_05e_code_point_split_across_fragments_accepted(self):
        srv, obs, web = self.raw_pair()
        web.send(encode_frame(OP_TEXT, b"SAY caf\xc3", fin=False) + encode_frame(OP_CONT, b"\xa9!"))
        obs.expect("MSG web1 caf\u00e9!")
        web.expect("MSG web1 caf\u00e9!")
        # A 4-byte code point cut in three pieces.
        emoji = "\U0001F600".encode()
        web.send(encode_frame(OP_TEXT, b"SAY x" + emoji[:1], fin=False) +
                 encode_frame(OP_CONT, emoji[1:3], fin=False) + encode_frame(OP_CONT, emoji[3:] + b"y"))
        obs.expect("MSG web1 x\U0001F600y")

    def test_05f_over_max_line_1009_before_payload(self):
        srv, obs, web = self.raw_pair("--max-line", "100")
        # Exactly 100 bytes pass.
        line = "SAY " + "a" * 96
        web.send_text(line)
        obs.expect("MSG web1 " + "a" * 96)
        # A header announcing 101 bytes; the payload is never sent.
        web.send(encode_frame(OP_TEXT, b"", announce=101))
        got, reason = web.expect_close()
        self.assertEqual(got, 1009, reason)
        web.expect_eof()
        self.assert_leave(obs.expect(prefix("LEAVE web1 ")), "web1", "error", ["1009"])

    def test_05g_over_max_line_across_fragments_1009(self):
        self.refused(encode_frame(OP_TEXT, b"SAY " + b"a" * 60, fin=False) + encode_frame(OP_CONT, b"", announce=41),
                     1009, "--max-line", "100")

    def test_05h_three_fragments_one_message(self):
        srv, obs, web = self.raw_pair()
        web.send(encode_frame(OP_TEXT, b"SAY par", fin=False) + encode_frame(OP_CONT, b"ts of ", fin=False) +
                 encode_frame(OP_CONT, b"one"))
        obs.expect("MSG web1 parts of one")
        web.send_text("SAY next")
        obs.expect("MSG web1 next")
        # Exactly one MSG for the fragmented message, then the next one.
        msgs = [l for l in obs.seen if l.startswith("MSG web1 ")]
        self.assertEqual(msgs, ["MSG web1 parts of one", "MSG web1 next"])

    def test_05i_ping_between_fragments(self):
        srv, obs, web = self.raw_pair()
        web.send(encode_frame(OP_TEXT, b"SAY pi", fin=False))
        web.send(encode_frame(OP_PING, b"mid-message"))
        pong = web.expect_frame(OP_PONG)
        self.assertEqual(pong.payload, b"mid-message")
        web.send(encode_frame(OP_CONT, b"nged"))
        obs.expect("MSG web1 pinged")
        web.expect("MSG web1 pinged")

    def test_05j_unknown_opcode_1002(self):
        self.refused(encode_frame(3, b"SAY hi"), 1002)

    def test_05k_rsv1_1002(self):
        self.refused(encode_frame(OP_TEXT, b"SAY hi", rsv=4), 1002)

    def test_05l_fragmented_ping_1002(self):
        self.refused(encode_frame(OP_PING, b"abc", fin=False), 1002)

    def test_05m_control_frame_over_125_1002(self):
        self.refused(encode_frame(OP_PING, b"p" * 126), 1002)

    def test_05n_continuation_without_start_1002(self):
        self.refused(encode_frame(OP_CONT, b"SAY orphan"), 1002)

    def test_05o_refusal_before_joining(self):
        # Not joined: nobody is told anything, the frame is still refused with its code.
        srv = self.start_server()
        obs = self.client(tcp_join(srv.port, "tcp1"))
        web = self.client(RawWS(srv.port))
        web.expect(prefix("# chatserver "))
        web.send(encode_frame(OP_BINARY, b"\x00\x01"))
        got, _ = web.expect_close()
        self.assertEqual(got, 1003)
        web.expect_eof()
        # The observer hears no JOIN or LEAVE: its next line is the answer to its own PING.
        obs.send_line("PING after")
        self.assertEqual(obs.expect(lambda l: True), "PONG after")

    # -- 6. HTTP around the upgrade ---------------------------------------------------------------

    def test_06a_version_8_is_426(self):
        srv = self.start_server()
        r, c = http_get(srv.port, upgrade_request(srv.port, version="8"))
        self.client(c)
        self.assertEqual(r.status, 426, r)
        self.assertEqual(r.header("Sec-WebSocket-Version"), "13", r)

    def test_06b_origins(self):
        srv = self.start_server()
        r, c = http_get(srv.port, upgrade_request(srv.port, origin="http://evil.example"))
        self.client(c)
        self.assertEqual(r.status, 403, r)
        r, c = http_get(srv.port, upgrade_request(srv.port, origin="http://127.0.0.1:%d" % srv.port))
        self.client(c)
        self.assertEqual(r.status, 101, r)

        async def go():
            with self.assertRaises(wse.InvalidStatusCode) as cm:
                await ws_connect(srv.port, origin="http://evil.example")
            self.assertEqual(cm.exception.status_code, 403)
            w = await WebClient.open(srv.port, origin="http://127.0.0.1:%d" % srv.port)
            self.assertTrue((await w.recv()).startswith("# chatserver "))
            await w.close()

        run(go())

    def test_06c_web_origin_allows(self):
        srv = self.start_server("--web-origin", "http://evil.example")
        r, c = http_get(srv.port, upgrade_request(srv.port, origin="http://evil.example"))
        self.client(c)
        self.assertEqual(r.status, 101, r)
        r, c = http_get(srv.port, upgrade_request(srv.port, origin="http://other.example"))
        self.client(c)
        self.assertEqual(r.status, 403, r)

        async def go():
            w = await WebClient.open(srv.port, origin="http://evil.example")
            self.assertTrue((await w.recv()).startswith("# chatserver "))
            await w.send("HELLO evil1")
            await w.expect("WELCOME evil1")
            await w.close()

        run(go())

    def test_06d_head_over_8k_is_431(self):
        srv = self.start_server()
        req = "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Filler: %s\r\n\r\n" % (srv.port, "a" * 9000)
        r, c = http_get(srv.port, req)
        self.client(c)
        self.assertEqual(r.status, 431, r)

    def test_06e_post_405_nope_404(self):
        srv = self.start_server()
        r, c = http_get(srv.port, "POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 0\r\n\r\n" % srv.port)
        self.client(c)
        self.assertEqual(r.status, 405, r)
        r, c = http_get(srv.port, "GET /nope HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % srv.port)
        self.client(c)
        self.assertEqual(r.status, 404, r)

    def test_06f_page(self):
        srv = self.start_server()
        r, c = http_get(srv.port, "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % srv.port)
        self.client(c)
        self.assertEqual(r.status, 200, r)
        self.assertIn("default-src 'self'", r.header("Content-Security-Policy") or "", r)
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff", r)
        self.assertTrue((r.header("Content-Type") or "").startswith("text/html"), r)
        self.assertGreater(len(r.body), 0)
        self.assertIn(b"<html", r.body.lower())

    def test_06g_ws_without_upgrade_426(self):
        srv = self.start_server()
        r, c = http_get(srv.port, upgrade_request(srv.port, upgrade=False))
        self.client(c)
        self.assertEqual(r.status, 426, r)
        r, c = http_get(srv.port, "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % srv.port)
        self.client(c)
        self.assertEqual(r.status, 426, r)

    def test_06h_slow_http_client_handshake_timeout(self):
        srv = self.start_server("--handshake-timeout", "1s")
        start = time.monotonic()
        c = self.client(LineClient(srv.port))
        c.send(b"GET /ws HT")
        data = c.read_to_eof(timeout=8)
        took = time.monotonic() - start
        observe("slow HTTP client (half a request line, --handshake-timeout 1s): closed after %.2f s, "
                "received %r" % (took, data))
        self.assertGreater(took, 0.9)
        self.assertLess(took, 3.0)

    def test_06i_keep_alive(self):
        srv = self.start_server()
        c = self.client(LineClient(srv.port))
        req = ("GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % srv.port).encode()
        c.send(req)
        r1 = read_http_response(c)
        self.assertEqual(r1.status, 200, r1)
        c.send(req)
        r2 = read_http_response(c)
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(r1.body, r2.body)
        # Pipelined: two requests in one write, two responses.
        c.send(req + req)
        self.assertEqual(read_http_response(c).status, 200)
        self.assertEqual(read_http_response(c).status, 200)

    # -- 7. nc-style clients on the same port --------------------------------------------------------

    def test_07a_silent_client_greeted(self):
        srv = self.start_server()
        start = time.monotonic()
        c = self.client(LineClient(srv.port))
        g = c.read_line(timeout=T)
        took = time.monotonic() - start
        self.assertEqual(g, "# chatserver 0.1.0: type a nickname to join, or HELLO <nick>")
        self.assertLess(took, 1.0)
        c.send_line("HELLO late")
        self.assertEqual(c.read_line(), "WELCOME late")
        self.assertEqual(c.read_line(), "USERS late")

    def test_07b_hello_at_once(self):
        srv = self.start_server()
        c = self.client(LineClient(srv.port))
        c.send(b"HELLO x\n")
        self.assertTrue(c.read_line().startswith("# chatserver "))
        self.assertEqual(c.read_line(), "WELCOME x")
        self.assertEqual(c.read_line(), "USERS x")
        # and nc's text mode, the nickname sent at once
        t = self.client(LineClient(srv.port))
        t.send(b"bob\n")
        self.assertTrue(t.read_line().startswith("# chatserver "))
        self.assertRegex(t.read_line(), r"^\[\d\d:\d\d:\d\d\] \*\*\* welcome, bob ")

    def test_07e_patient_door_after_a_page_fetch(self):
        # A browser's spare connection stays silent: after a page file from this address, a
        # silent connection is not greeted at 100 ms (a greeting would be read as the response to
        # the request the browser sends on it later), and a request on it is served.
        srv = self.start_server()
        r, c = http_get(srv.port, "GET /app.js HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % srv.port)
        self.client(c)
        self.assertEqual(r.status, 200, r)
        spare = self.client(LineClient(srv.port))
        time.sleep(1.0)  # pacing a browser's late request, not waiting for readiness
        spare.send(b"GET /style.css HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % srv.port)
        r = read_http_response(spare)
        self.assertEqual(r.status, 200, r)
        self.assertTrue((r.header("Content-Type") or "").startswith("text/css"), r)
        # Typing does not wait for the patient door: a nickname is answered at once.
        t = self.client(LineClient(srv.port))
        start = time.monotonic()
        t.send(b"HELLO typist\n")
        self.assertTrue(t.read_line().startswith("# chatserver "))
        self.assertEqual(t.read_line(), "WELCOME typist")
        self.assertLess(time.monotonic() - start, 1.0)

    def test_07f_web_root(self):
        import tempfile
        root = tempfile.mkdtemp(prefix="chat-web-root-")
        self.addCleanup(lambda: __import__("shutil").rmtree(root, ignore_errors=True))
        with open(os.path.join(root, "index.html"), "w") as f:
            f.write("<!doctype html><title>restyled</title>")
        with open(os.path.join(root, ".secret"), "w") as f:
            f.write("hidden")
        os.mkdir(os.path.join(root, "css"))
        with open(os.path.join(root, "css", "room.css"), "w") as f:
            f.write("body{}")
        srv = self.start_server("--web-root", root)
        def get(path):
            r, c = http_get(srv.port, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (path, srv.port))
            self.client(c)
            return r
        r = get("/")
        self.assertEqual(r.status, 200, r)
        self.assertIn(b"restyled", r.body)
        r = get("/css/room.css")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("Content-Type").startswith("text/css"), r)
        for path in ("/app.js", "/.secret", "/../etc/passwd", "/css/../.secret", "/%2e%2e/etc/passwd"):
            self.assertEqual(get(path).status, 404, path)
        # The words people read come from the server's own table, --web-root or not.
        r = get("/wording.js")
        self.assertEqual(r.status, 200, r)
        self.assertIn(b'"nick-in-use": "the nickname {detail} is taken"', r.body)
        # The WebSocket is there as ever.
        async def go():
            w = await web_join(srv.port, "rooted")
            await w.close()
        run(go())
        # A --web-root that is not a directory is a usage error.
        p = subprocess.run([SERVER, "--port", "0", "--web-root", os.path.join(root, "nope")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(b"--web-root", p.stderr)

    def test_07g_http_connection_never_gets_a_bye_line(self):
        # While a connection speaks HTTP, a polite end is a FIN alone: the handshake timeout of
        # an idle keep-alive connection, and the server's shutdown, send no BYE line that a
        # browser would read as the answer to its next request.
        srv = self.start_server("--handshake-timeout", "1s")
        r, c = http_get(srv.port, "GET /icon.svg HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % srv.port)
        self.client(c)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Connection"), "keep-alive", r)
        self.assertEqual(c.read_to_eof(timeout=8), b"")
        srv2 = self.start_server()
        r, c2 = http_get(srv2.port, "GET /icon.svg HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % srv2.port)
        self.client(c2)
        half = self.client(LineClient(srv2.port))
        half.send(b"GET /app.js HTTP/1.1\r\n")  # half a request
        time.sleep(0.3)  # pacing: let the server read it before it shuts down
        srv2.terminate()
        self.assertEqual(c2.read_to_eof(timeout=8), b"")
        self.assertEqual(half.read_to_eof(timeout=8), b"")

    def test_07h_keep_alive_pipelining_and_large_answers(self):
        # 100 requests in one segment: answered in order, one at a time, without the answers
        # counting as a client behind on its output (--send-queue 16 KiB, the script is bigger);
        # the 100th says Connection: close, and the connection closes.
        srv = self.start_server("--send-queue", "16KiB")
        c = self.client(LineClient(srv.port))
        req = "GET /app.js HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % srv.port
        c.send((req * 100).encode())
        for i in range(100):
            r = read_http_response(c, timeout=20)
            self.assertEqual(r.status, 200, (i, r))
            self.assertGreater(len(r.body), 16 * 1024)
            self.assertEqual(r.header("Connection"), "close" if i == 99 else "keep-alive", (i, r))
        self.assertEqual(c.read_to_eof(), b"")
        # A GET with a body would leave the body to be read as the next request: refused.
        r, c = http_get(srv.port, "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 5\r\n\r\nhello" % srv.port)
        self.client(c)
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.header("Connection"), "close", r)

    def test_07i_web_root_directories_and_http_1_0_upgrade(self):
        import tempfile
        root = tempfile.mkdtemp(prefix="chat-web-root-")
        self.addCleanup(lambda: __import__("shutil").rmtree(root, ignore_errors=True))
        os.mkdir(os.path.join(root, "sub"))
        srv = self.start_server("--web-root", root)
        for path in ("//", "/sub", "/sub/", "/"):  # a directory, or no index.html: not found
            r, c = http_get(srv.port, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (path, srv.port))
            self.client(c)
            self.assertEqual(r.status, 404, (path, r))
        # RFC 6455 4.1: the opening handshake is HTTP/1.1 at least.
        r, c = http_get(srv.port, upgrade_request(srv.port).replace("HTTP/1.1", "HTTP/1.0"))
        self.client(c)
        self.assertEqual(r.status, 400, r)
        # A 426 says what to upgrade to.
        r, c = http_get(srv.port, upgrade_request(srv.port, version="8"))
        self.client(c)
        self.assertEqual(r.status, 426, r)
        self.assertEqual(r.header("Upgrade"), "websocket", r)
        self.assertIn("upgrade", r.header("Connection").lower(), r)

    def test_07c_web_off(self):
        srv = self.start_server("--web", "off")
        c = self.client(LineClient(srv.port))
        start = time.monotonic()
        c.send(b"GET / HTTP/1.1\r\n")
        g = c.read_line()
        took = time.monotonic() - start
        self.assertTrue(g.startswith("# chatserver "), g)
        self.assertLess(took, 1.0)
        answer = c.read_line()
        self.assertFalse(answer.startswith("HTTP/"), answer)
        self.assertIn("that nickname is not allowed", answer)
        observe("--web off, 'GET / HTTP/1.1' as a first line: %r" % answer)
        # A silent client is greeted at once (no 100 ms wait for a request).
        start = time.monotonic()
        s = self.client(LineClient(srv.port))
        s.read_line()
        observe("--web off: greeting of a silent client after %.0f ms" % ((time.monotonic() - start) * 1000))
        # and a WebSocket handshake fails
        async def go():
            with self.assertRaises((wse.InvalidHandshake, wse.ConnectionClosed, OSError, EOFError)):
                w = await ws_connect(srv.port)
                await w.close()

        run(go())

    # -- 8. limits hold for web clients ---------------------------------------------------------------

    def test_08a_max_per_ip(self):
        srv = self.start_server("--max-per-ip", "2", per_ip=False)

        async def go():
            w1 = await web_join(srv.port, "web1")
            t1 = await async_tcp_join(srv.port, "tcp1")
            # A third connection, TCP: BYE too-many and FIN, no greeting.
            t3 = await AsyncLine.open(srv.port)
            self.assertEqual(await t3.read_line(), "BYE too-many")
            self.assertIsNone(await t3.read_line())
            t3.close()
            # A third connection, websockets: the handshake fails.
            try:
                w3 = await ws_connect(srv.port)
            except Exception as e:  # noqa: BLE001 -- what it is is the observation
                observe("--max-per-ip 2, third connection by websockets.connect: %s: %s" % (type(e).__name__, e))
            else:
                await w3.close()
                self.fail("a third WebSocket from the same address was accepted")
            # The same, raw: what an HTTP client is answered.
            r3 = await AsyncLine.open(srv.port)
            r3.w.write(upgrade_request(srv.port).encode())
            raw = await asyncio.wait_for(r3.r.read(), T)
            r3.close()
            observe("--max-per-ip 2, third connection with a WebSocket upgrade request: got %r" % raw)
            self.assertFalse(raw.startswith(b"HTTP/1.1 101"), raw)
            # The room did not notice any of it; a leaving web client frees its place.
            await t1.send_line("PING still")
            await t1.expect("PONG still")
            await w1.close()
            await t1.expect(prefix("LEAVE web1 "))
            deadline = time.monotonic() + T
            while True:
                try:
                    w2 = await web_join(srv.port, "web2")
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)
            await t1.expect("JOIN web2")
            await w2.close()
            t1.close()

        run(go())

    def test_08b_flood(self):
        srv = self.start_server("--max-rate", "5", "--max-burst", "5", "--flood-grace", "1s")

        async def go():
            tcp = await async_tcp_join(srv.port, "tcp1")
            w = await web_join(srv.port, "web1")
            await tcp.expect("JOIN web1")
            start = time.monotonic()
            for i in range(200):
                await w.send("SAY flood %d" % i)
            msgs = await w.until_closed(timeout=20)
            byes = [m for m in msgs if m.startswith("BYE")]
            self.assertEqual(byes, ["BYE flood over 5 lines/s for 1.0 s (burst 5)"], msgs[-5:])
            self.assertEqual(msgs[-1], byes[0])
            self.assertEqual(w.ws.close_code, 1008)
            line = await tcp.expect(prefix("LEAVE web1 "), timeout=20)
            self.assert_leave(line, "web1", "flood", ["over 5 lines/s"])
            observe("flood: web client left after %.1f s with close code %s" % (time.monotonic() - start,
                                                                               w.ws.close_code))
            tcp.close()

        run(go())

    def test_08c_too_slow(self):
        srv = self.start_server("--send-queue", "65536", "--max-rate", "0", "--max-per-ip", "0")
        flooder = self.client(tcp_join(srv.port, "tcp1"))
        web = self.client(RawWS(srv.port, rcvbuf=4096))
        web.expect(prefix("# chatserver "))
        web.send_text("HELLO web1")
        web.expect("WELCOME web1")
        web.expect(prefix("USERS "))
        flooder.expect("JOIN web1")
        # From now on web1 reads nothing. tcp1 floods the room and reads its own echoes (flow
        # control slows it when it falls behind, so it never leaves too-slow itself).
        found = {}
        stop = threading.Event()

        def drain():
            try:
                while not stop.is_set():
                    line = flooder.read_line(timeout=60)
                    if line is None:
                        found["eof"] = True
                        break
                    if line.startswith("LEAVE web1 "):
                        found["leave"] = line
                        break
                    if line.startswith("PING "):
                        flooder.send_line("PONG " + line[5:])
                    flooder.seen.clear()
            except Exception as e:  # noqa: BLE001
                found["error"] = repr(e)
            stop.set()

        def flood():
            chunk = b"".join(b"SAY %d %s\n" % (i, b"x" * 1000) for i in range(64))
            try:
                while not stop.is_set():
                    flooder.sock.sendall(chunk)
            except OSError as e:
                found.setdefault("send_error", repr(e))

        threads = [threading.Thread(target=drain, daemon=True), threading.Thread(target=flood, daemon=True)]
        start = time.monotonic()
        for t in threads:
            t.start()
        stop.wait(60)
        stop.set()
        for t in threads:
            t.join(T)
        self.assertIn("leave", found, found)
        self.assert_leave(found["leave"], "web1", "too-slow")
        observe("too-slow: %r after %.1f s" % (found["leave"], time.monotonic() - start))

    def test_08d_no_pong(self):
        srv = self.start_server("--ping-interval", "1s", "--ping-timeout", "1s")
        obs = self.client(tcp_join(srv.port, "tcp1"))  # answers its own PINGs in expect()
        web = self.client(RawWS(srv.port, auto_pong=False))
        web.expect(prefix("# chatserver "))
        web.send_text("HELLO web1")
        start = time.monotonic()
        obs.expect("JOIN web1")
        line = obs.expect(prefix("LEAVE web1 "), timeout=15)
        took = time.monotonic() - start
        self.assert_leave(line, "web1", "no-pong")
        self.assertLess(took, 5.0, line)
        # What web1 was sent meanwhile: a PING line as a text message, BYE no-pong, a close frame.
        got, _ = web.expect_close()
        self.assertTrue(any(t.startswith("PING p") for t in web.texts), web.texts)
        self.assertEqual(web.texts[-1], "BYE no-pong")
        self.assertEqual(got, 1008)
        web.expect_eof()
        observe("no-pong: %r after %.1f s" % (line, took))

    # -- 9. a mixed room under load -------------------------------------------------------------------

    def test_09_mixed_room_under_load(self):
        srv = self.start_server("--max-rate", "0", "--max-per-ip", "0")
        n_web, n_tcp, n_lines = 10, 10, 200
        webs = ["w%d" % i for i in range(n_web)]
        tcps = ["t%d" % i for i in range(n_tcp)]
        everyone = webs + tcps

        async def go():
            start = time.monotonic()
            clients = {}
            for nick in webs:
                clients[nick] = await web_join(srv.port, nick)
            for nick in tcps:
                clients[nick] = await async_tcp_join(srv.port, nick)

            async def recv_line(nick):
                c = clients[nick]
                if isinstance(c, WebClient):
                    return await c.recv(timeout=30)
                line = await c.read_line(timeout=30)
                assert line is not None, "%s: end of stream" % nick
                return line

            async def send_lines(nick, lines):
                c = clients[nick]
                if isinstance(c, WebClient):
                    for l in lines:
                        await c.ws.send(l)
                else:
                    c.w.write("".join(l + "\n" for l in lines).encode())
                    await asyncio.wait_for(c.w.drain(), 30)

            # Everybody waits until it knows the whole room, so no one misses a line.
            async def await_room(nick):
                c = clients[nick]
                known = set(c.seen[-1].split()[1:]) if c.seen and c.seen[-1].startswith("USERS ") else set()
                while known != set(everyone):
                    line = await recv_line(nick)
                    if line.startswith("JOIN "):
                        known.add(line.split()[1])
                    elif line.startswith("USERS "):
                        known = set(line.split()[1:])
                return nick

            await asyncio.gather(*(await_room(n) for n in everyone))

            async def receive(nick):
                got = {s: [] for s in everyone}
                done = set()
                while len(done) < len(everyone):
                    line = await recv_line(nick)
                    if not line.startswith("MSG "):
                        if line.startswith("PING "):
                            await send_lines(nick, ["PONG " + line[5:]])
                        continue
                    _, frm, who, n = line.split(" ", 3)
                    assert frm == who, line
                    if n == "done":
                        done.add(frm)
                    else:
                        got[frm].append(int(n))
                return nick, got

            async def send(nick):
                await send_lines(nick, ["SAY %s %d" % (nick, i) for i in range(n_lines)] + ["SAY %s done" % nick])

            results = await asyncio.gather(*(receive(n) for n in everyone), *(send(n) for n in everyone))
            took = time.monotonic() - start
            want = list(range(n_lines))
            for nick, got in results[:len(everyone)]:
                for frm in everyone:
                    self.assertEqual(got[frm], want, "%s received from %s: %d lines, out of order or "
                                                     "duplicated" % (nick, frm, len(got[frm])))
            for c in clients.values():
                if isinstance(c, WebClient):
                    await c.close()
                else:
                    c.close()
            observe("mixed room: %d web + %d TCP clients x %d lines, every line to every client once and in "
                    "order, in %.1f s" % (n_web, n_tcp, n_lines, took))
            self.assertLess(took, 60.0)

        run(go(), timeout=90)

    # -- 10. beyond the brief: more of RFC 6455 and HTTP against the server ----------------------------

    def test_10a_frames_and_handshake_in_one_write(self):
        # The upgrade request and the first frame in one segment: the greeting still comes first.
        srv = self.start_server()
        c = self.client(LineClient(srv.port))
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (srv.port, key)).encode()
        c.send(req + encode_frame(OP_TEXT, b"HELLO eager"))
        r = read_http_response(c)
        self.assertEqual(r.status, 101, r)
        ws = RawWS.__new__(RawWS)  # reuse the frame reader on this socket
        ws.__dict__.update(c.__dict__)
        ws.texts = []
        self.assertTrue(ws.read_line().startswith("# chatserver "))
        self.assertEqual(ws.read_line(), "WELCOME eager")
        self.assertEqual(ws.read_line(), "USERS eager")

    def test_10b_newline_inside_a_message_refused(self):
        srv, obs, web = self.raw_pair()
        web.send_text("SAY a\nSAY b")
        err = web.expect(prefix("ERROR "))
        self.assertTrue(err.startswith("ERROR bad-char "), err)
        web.send_text("")
        self.assertEqual(web.expect(prefix("ERROR ")), "ERROR unknown-command (empty line)")
        web.send_text("SAY fine")
        obs.expect("MSG web1 fine")
        self.assertFalse([l for l in obs.seen if l.startswith("MSG web1 a")], obs.seen)

    def test_10c_long_lines_both_ways(self):
        # Server frames with a 16-bit and a 64-bit length, read by websockets.
        srv = self.start_server("--max-line", "100000")

        async def go():
            tcp = await async_tcp_join(srv.port, "tcp1")
            w = await web_join(srv.port, "web1")
            for n in (120, 126, 4000, 65535 - 9, 70000):
                text = "".join(chr(ord("a") + i % 26) for i in range(n))
                await w.send("SAY " + text)
                self.assertEqual(await w.expect(prefix("MSG web1 ")), "MSG web1 " + text)
                await tcp.expect("MSG web1 " + text)
                await tcp.send_line("SAY " + text[::-1])
                self.assertEqual(await w.expect(prefix("MSG tcp1 ")), "MSG tcp1 " + text[::-1])
            await w.close()
            tcp.close()

        run(go())

    def test_10d_new_message_inside_fragmented_1002(self):
        self.refused(encode_frame(OP_TEXT, b"SAY a", fin=False) + encode_frame(OP_TEXT, b"SAY b"), 1002)

    def test_10e_close_frame_of_one_byte_1002(self):
        self.refused(encode_frame(OP_CLOSE, b"\x03"), 1002)

    def test_10f_close_code_not_for_the_wire_1002(self):
        self.refused(encode_frame(OP_CLOSE, struct.pack("!H", 1005)), 1002)

    def test_10g_close_without_code(self):
        srv, obs, web = self.raw_pair()
        web.send_frame(OP_CLOSE, b"")
        got, _ = web.expect_close()
        self.assertEqual(got, 1000)
        web.expect_eof()
        self.assert_leave(obs.expect(prefix("LEAVE web1 ")), "web1", "closed", ["1005"])

    def test_10h_byte_at_a_time(self):
        srv, obs, web = self.raw_pair()
        web.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        frames = encode_frame(OP_TEXT, b"SAY one byte", fin=False) + encode_frame(OP_PING, b"pp") + \
            encode_frame(OP_CONT, b" at a time " + "\u00e9".encode())
        for i in range(len(frames)):
            web.send(frames[i:i + 1])
            time.sleep(0.002)  # separate segments, not a readiness wait
        obs.expect("MSG web1 one byte at a time \u00e9")
        self.assertEqual(web.expect_frame(OP_PONG).payload, b"pp")

    def test_10i_head_and_bad_key(self):
        srv = self.start_server()
        r, c = http_get(srv.port, "HEAD / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % srv.port,
                        head_only=True)
        self.client(c)
        self.assertGreater(int(r.header("Content-Length")), 0, r)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(c.read_to_eof(), b"")  # no body after the head
        req = upgrade_request(srv.port).replace("Sec-WebSocket-Key: ", "Sec-WebSocket-Key: x")
        r, c = http_get(srv.port, req)
        self.client(c)
        self.assertEqual(r.status, 400, r)
        r, c = http_get(srv.port, upgrade_request(srv.port, origin="null"))
        self.client(c)
        self.assertEqual(r.status, 403, r)

    def test_10j_websocket_handshake_timeout(self):
        # Upgraded but never joined: --handshake-timeout still ends it, politely.
        srv = self.start_server("--handshake-timeout", "1s")

        async def go():
            w = await WebClient.open(srv.port)
            msgs = await w.until_closed(timeout=5)
            self.assertEqual(len(msgs), 2, msgs)
            self.assertTrue(msgs[0].startswith("# chatserver "), msgs)
            self.assertEqual(msgs[1], "BYE handshake-timeout no nickname within 1.0 s")
            self.assertEqual(w.ws.close_code, 1008)

        run(go())

    # -- 11. ids, resume and history (docs/protocol.md, "Ids, resume and history") ----------------

    TAGGED = re.compile(r"^@(\d+)/(\d+) (.+)$")

    def tagged(self, line):
        """'@<id>/<ms> <line>' -> (id, ms, line); an AssertionError for a line without a tag."""
        m = self.TAGGED.match(line)
        self.assertIsNotNone(m, "not a tagged line: %r" % line)
        return int(m.group(1)), int(m.group(2)), m.group(3)

    def next_line(self, c, timeout=T):
        """The next line of `c` that is neither a PING (answered) nor a '#' remark for people
        (the greeting)."""
        return c.expect(lambda line: not line.startswith(("PING ", "#")), timeout)

    def read_block(self, c, what):
        """Reads `HISTORY <what> <n> [partial]`, its lines and `HISTORY END <what>`: (n,
        partial, [(id, ms, line)])."""
        head = self.next_line(c)
        m = re.match(r"^HISTORY %s (\d+)( partial)?$" % what, head)
        self.assertIsNotNone(m, "expected HISTORY %s, got %r (last lines %r)" % (what, head, c.seen[-8:]))
        n = int(m.group(1))
        lines = [self.tagged(self.next_line(c)) for _ in range(n)]
        self.assertEqual(self.next_line(c), "HISTORY END " + what)
        return n, bool(m.group(2)), lines

    def ids_join(self, c, nick):
        """HELLO <nick> ids on `c` (after its greeting): WELCOME, TOKEN, USERS, the recent block.
        Returns (token, window, recent lines)."""
        c.send_line("HELLO %s ids" % nick)
        self.assertEqual(self.next_line(c), "WELCOME " + nick)
        token_line = self.next_line(c)
        m = re.match(r"^TOKEN ([0-9a-f]{32}) (\d+)$", token_line)
        self.assertIsNotNone(m, "TOKEN <32 hex> <window> right after WELCOME, got %r" % token_line)
        self.assertTrue(self.next_line(c).startswith("USERS "))
        _, _, recent = self.read_block(c, "recent")
        return m.group(1), int(m.group(2)), recent

    def web_ids(self, port, nick):
        """A raw WebSocket client joined with ids: (client, token, window, recent lines)."""
        w = self.client(RawWS(port))
        self.assertTrue(w.read_line().startswith("# chatserver "))
        token, window, recent = self.ids_join(w, nick)
        return w, token, window, recent

    def line_ids(self, port, nick):
        """A TCP protocol client joined with ids (it sends HELLO before the greeting)."""
        c = self.client(LineClient(port))
        token, window, recent = self.ids_join(c, nick)
        return c, token, recent

    def kill(self, c):
        """Ends `c`'s connection with a reset (SO_LINGER 0), as a lost network would: no QUIT, no
        close frame. The server holds the seat (cause `reset`)."""
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.sock.close()

    def until_tagged(self, c, pred, timeout=T):
        """Lines of `c` up to the tagged one whose line matches `pred`: [(id, ms, line)] of the
        tagged ones (untagged lines in between are skipped)."""
        match = matcher(pred)
        got = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.next_line(c, max(0.1, deadline - time.monotonic()))
            m = self.TAGGED.match(line)
            if not m:
                continue
            got.append((int(m.group(1)), int(m.group(2)), m.group(3)))
            if match(m.group(3)):
                return got

    def test_11a_hello_ids_token_and_tagged_lines(self):
        # HELLO <nick> ids: WELCOME, TOKEN, USERS, the recent block (what was said before,
        # oldest first, tagged); then every room event and PRIV tagged, ids growing. A client
        # without ids sees the same events untagged.
        srv = self.start_server("--db", "none", "--history", "50")
        plain = self.client(tcp_join(srv.port, "plain"))
        plain.send_line("SAY said before 1")
        plain.send_line("ME waves before")
        plain.expect("ME plain waves before")
        started = time.time() * 1000
        web, token, window, recent = self.web_ids(srv.port, "web1")
        self.assertEqual(window, 120, "the default --resume-window")
        said = [line for _, _, line in recent]
        self.assertEqual(said[-2:], ["MSG plain said before 1", "ME plain waves before"], recent)
        ids = [i for i, _, _ in recent]
        self.assertEqual(ids, sorted(set(ids)), "recent: oldest first, each once")
        for _, ms, _ in recent:
            self.assertLess(abs(ms - started), 60000, "the tag's time is Unix milliseconds")
        plain.expect("JOIN web1")
        plain.send_line("SAY live one")
        plain.send_line("PRIV web1 psst")
        plain.expect("PRIV plain web1 psst")
        web.send_line("SAY from web")
        got = self.until_tagged(web, "MSG web1 from web")
        lines = [line for _, _, line in got]
        self.assertIn("MSG plain live one", lines)
        self.assertIn("PRIV plain web1 psst", lines)
        live_ids = [i for i, _, _ in got]
        self.assertEqual(live_ids, sorted(set(live_ids)), "ids only grow")
        self.assertGreater(live_ids[0], ids[-1], "live lines come after the recent block")
        # The client without ids: the same events, no tags.
        plain.expect("MSG web1 from web")
        self.assertFalse([l for l in plain.seen if l.startswith("@")], plain.seen)
        # Untagged lines stay untagged with ids.
        web.send_line("PING x1")
        self.assertEqual(web.expect(prefix("PONG ")), "PONG x1")
        self.assertNotEqual(token, self.line_ids(srv.port, "other")[1], "a token per client")

    def test_11b_resume_replays_exactly_what_was_missed(self):
        # A web client with ids is killed (a reset); while it is away the room goes on, and
        # goes on talking while it resumes. RESUME <token> <last id> gives RESUMED, a new
        # TOKEN, USERS, the missed block, then live lines: every event after the last id once,
        # in order, the same ids a second client with ids saw, nothing twice at the seam.
        srv = self.start_server("--db", "none", "--max-rate", "0")
        obs, _, _ = self.line_ids(srv.port, "obs")
        talk = self.client(tcp_join(srv.port, "talk"))
        web, token, _, _ = self.web_ids(srv.port, "web1")
        talk.send_line("SAY before the drop")
        last = self.until_tagged(web, "MSG talk before the drop")[-1][0]
        self.kill(web)
        # What obs sees, all of it, from here to the end (its tagged lines).
        seen = self.until_tagged(obs, re.compile(r"^LEAVE web1 "))
        self.assertRegex(seen[-1][2], r"^LEAVE web1 (reset|closed) ")
        for i in range(5):
            talk.send_line("SAY missed %d" % i)
        talk.send_line("PRIV web1 a private word while away")
        talk.expect("MSG talk missed 4")
        priv_kept = not talk.expect(re.compile(r"^(PRIV talk web1 |ERROR no-such-nick)")).startswith("ERROR")
        if not priv_kept:
            observe("a PRIV to a nickname whose seat is held is refused (no-such-nick), not kept")
        # The seam: the room keeps talking while the client resumes.
        stop = threading.Event()

        def chatter():
            n = 0
            while not stop.is_set() and n < 400:
                talk.send_line("SAY seam %d" % n)
                n += 1
                time.sleep(0.005)

        t = threading.Thread(target=chatter, daemon=True)
        t.start()
        time.sleep(0.1)
        again = self.client(RawWS(srv.port))
        self.assertTrue(again.read_line().startswith("# chatserver "))
        again.send_line("RESUME %s %d" % (token, last))
        resumed = self.next_line(again)
        m = re.match(r"^RESUMED web1 (\d+) (\d+)$", resumed)
        self.assertIsNotNone(m, resumed)
        away_ms, missed_n = int(m.group(1)), int(m.group(2))
        self.assertGreater(away_ms, 0)
        new_token = re.match(r"^TOKEN ([0-9a-f]{32}) \d+$", self.next_line(again))
        self.assertIsNotNone(new_token, again.seen[-1])
        self.assertNotEqual(new_token.group(1), token, "the old token is spent")
        users = self.next_line(again)
        self.assertTrue(users.startswith("USERS ") and "web1" in users.split(), users)
        n, partial, missed = self.read_block(again, "missed")
        self.assertEqual(n, missed_n, "RESUMED's count is the block's")
        self.assertFalse(partial)
        time.sleep(0.3)
        stop.set()
        t.join(timeout=T)
        talk.send_line("SAY final")
        live = self.until_tagged(again, "MSG talk final", timeout=30)
        replay = missed + live
        ids = [i for i, _, _ in replay]
        self.assertEqual(ids, sorted(set(ids)), "in id order, each once (no duplicate at the seam)")
        self.assertGreater(ids[0], last, "nothing at or before the last id seen")
        missed_lines = [line for _, _, line in missed]
        for i in range(5):
            self.assertIn("MSG talk missed %d" % i, missed_lines)
        if priv_kept:
            self.assertIn("PRIV talk web1 a private word while away", missed_lines)
        # What the observer saw between the two ids, less what is about web1 itself (its own
        # LEAVE and BACK) and private messages (obs sees none of web1's): the same, id for id.
        seen += self.until_tagged(obs, "MSG talk final", timeout=30)
        about_web1 = re.compile(r"^(LEAVE|BACK|JOIN) web1( |$)")
        public = lambda evs: [(i, line) for i, _, line in evs
                              if last < i <= ids[-1] and not about_web1.match(line) and not line.startswith("PRIV ")]
        self.assertEqual(public(replay), public(seen))
        seam = [line for _, _, line in live if line.startswith("MSG talk seam ")]
        observe("resume: %d missed, %d seam lines live after the block, away %d ms" % (n, len(seam), away_ms))
        # The others: BACK web1 <ms> with ids, JOIN web1 without.
        self.assertTrue([line for _, _, line in seen if re.match(r"^BACK web1 \d+$", line)], seen[-20:])
        talk.expect("JOIN web1")

    def greeted(self, port):
        """A raw WebSocket client that has read the greeting."""
        c = self.client(RawWS(port))
        self.assertTrue(c.read_line().startswith("# chatserver "))
        return c

    def test_11c_bad_expired_and_reused_tokens(self):
        # A token works once; a wrong one, a used one or an expired one is `bad-token`, and the
        # connection stays open for a HELLO. While a seat is held its nickname is `nick-held`.
        # Each RESUME is the first line of a connection of its own, as the page sends it.
        srv = self.start_server("--db", "none", "--resume-window", "3s")
        obs = self.client(tcp_join(srv.port, "obs"))
        web, token, window, _ = self.web_ids(srv.port, "web1")
        self.assertEqual(window, 3)
        self.kill(web)
        obs.expect(prefix("LEAVE web1 "))
        taker = self.greeted(srv.port)
        taker.send_line("HELLO web1 ids")
        self.assertTrue(self.next_line(taker).startswith("ERROR nick-held web1"), taker.seen[-1])
        wrong = self.greeted(srv.port)
        wrong.send_line("RESUME %s 0" % ("0" * 32))
        self.assertTrue(self.next_line(wrong).startswith("ERROR bad-token "), wrong.seen[-1])
        malformed = self.greeted(srv.port)
        malformed.send_line("RESUME not-a-token")
        self.assertTrue(self.next_line(malformed).startswith("ERROR bad-args "), malformed.seen[-1])
        # The right token, once.
        back = self.greeted(srv.port)
        back.send_line("RESUME %s 0" % token)
        self.assertTrue(re.match(r"^RESUMED web1 \d+ \d+$", self.next_line(back)), back.seen[-1])
        m = re.match(r"^TOKEN ([0-9a-f]{32}) 3$", self.next_line(back))
        self.assertIsNotNone(m, back.seen[-1])
        reused = self.greeted(srv.port)
        reused.send_line("RESUME %s 0" % token)
        line = self.next_line(reused)
        self.assertTrue(line.startswith("ERROR bad-token "), line)
        if line != "ERROR bad-token unknown or already used":
            observe("a reused token: %r (docs/protocol.md: 'ERROR bad-token unknown or already used')" % line)
        # Still open: a HELLO joins.
        reused.send_line("HELLO web2 ids")
        self.assertEqual(self.next_line(reused), "WELCOME web2")
        # Expired: past the window the new token is refused, and the nickname is free again.
        self.kill(back)
        obs.expect(prefix("LEAVE web1 "))
        time.sleep(4.0)  # the window (3 s) must pass: nothing to wait for but time
        late = self.greeted(srv.port)
        late.send_line("RESUME %s 0" % m.group(1))
        line = self.next_line(late)
        self.assertTrue(line.startswith("ERROR bad-token "), line)
        observe("a token past its window: %r" % line)
        late.send_line("HELLO web1")
        self.assertEqual(self.next_line(late), "WELCOME web1")

    def test_11d_history_before_and_search(self):
        # HISTORY BEFORE <id> <n> pages back from the recent block to the start, each page just
        # before the last, the ids a client with ids saw live; SEARCH finds messages and actions
        # holding every word. Both are answers: tagged, oldest first, apart from the live order.
        srv = self.start_server("--db", "none", "--history", "5", "--max-rate", "0")
        obs, _, _ = self.line_ids(srv.port, "obs")
        talk = self.client(tcp_join(srv.port, "talk"))
        for i in range(40):
            talk.send_line("SAY number %d" % i)
        talk.send_line("SAY a needle in a haystack")
        talk.send_line("ME looks for the needle too")
        talk.send_line("SAY the end")
        seen = self.until_tagged(obs, "MSG talk the end", timeout=30)
        web, _, _, recent = self.web_ids(srv.port, "web1")
        self.assertEqual([line for _, _, line in recent],
                         [line for _, _, line in seen[-5:]], "--history 5: the last five events")
        self.assertEqual([i for i, _, _ in recent], [i for i, _, _ in seen[-5:]], "with the ids obs saw")
        # Paging back, 10 at a time, until a page is short.
        pages = []
        oldest = recent[0][0]
        while True:
            web.send_line("HISTORY BEFORE %d 10" % oldest)
            n, _, page = self.read_block(web, "before")
            self.assertLessEqual(n, 10)
            if page:
                self.assertLess(page[-1][0], oldest)
                oldest = page[0][0]
            pages = page + pages
            if n < 10:
                break
            self.assertLess(len(pages), 200, "paging back must end")
        everything = pages + recent
        ids = [i for i, _, _ in everything]
        self.assertEqual(ids, sorted(set(ids)))
        # All obs saw, in the same order with the same ids (obs's own JOIN it never saw).
        self.assertEqual([(i, line) for i, _, line in everything if line != "JOIN obs"],
                         [(i, line) for i, _, line in seen])
        # Over 500 is 500 at most.
        web.send_line("HISTORY BEFORE %d 600" % (recent[-1][0] + 1))
        n, _, _ = self.read_block(web, "before")
        self.assertEqual(n, len(everything), "all of them: fewer than the cap of 500")
        # SEARCH: every word, any case; oldest first; the ids obs saw.
        web.send_line("SEARCH needle")
        n, _, found = self.read_block(web, "search")
        self.assertEqual([line for _, _, line in found],
                         ["MSG talk a needle in a haystack", "ME talk looks for the needle too"], found)
        by_line = {line: i for i, _, line in seen}
        self.assertEqual([i for i, _, line in found], [by_line[line] for _, _, line in found])
        web.send_line("SEARCH haystack needle")
        self.assertEqual([line for _, _, line in self.read_block(web, "search")[2]],
                         ["MSG talk a needle in a haystack"])
        web.send_line("SEARCH NEEDLE")
        observe("SEARCH NEEDLE (upper case) with --db none finds %d of 2" % self.read_block(web, "search")[0])
        web.send_line("SEARCH nothing-like-this")
        self.assertEqual(self.read_block(web, "search")[0], 0)
        web.send_line("SEARCH")
        self.assertTrue(self.next_line(web).startswith("ERROR bad-args "), web.seen[-1])
        # The answers are not the live order: a live line after them still comes, tagged with a
        # higher id than any before.
        talk.send_line("SAY after the answers")
        live = self.until_tagged(web, "MSG talk after the answers")
        self.assertGreater(live[-1][0], seen[-1][0])
        # Without ids, a joined client may ask too (the answer is tagged); not joined, it may not.
        plain = self.client(LineClient(srv.port))
        plain.send_line("HELLO not.a.nick")  # protocol mode, not joined
        self.assertTrue(plain.expect(prefix("ERROR ")).startswith("ERROR bad-nick"), plain.seen[-1])
        plain.send_line("HISTORY BEFORE %d 3" % (recent[-1][0] + 1))
        self.assertTrue(plain.expect(prefix("ERROR ")).startswith("ERROR not-joined"), plain.seen[-1])
        plain.send_line("SEARCH needle")
        self.assertTrue(plain.expect(prefix("ERROR ")).startswith("ERROR not-joined"), plain.seen[-1])
        plain.send_line("HELLO plain")
        plain.expect("WELCOME plain")
        plain.send_line("HISTORY BEFORE %d 3" % (recent[-1][0] + 1))
        plain.expect(prefix("HISTORY before "))
        n = int(plain.seen[-1].split()[2])
        self.assertEqual(n, 3)
        lines = [self.tagged(self.next_line(plain)) for _ in range(n)]
        self.assertEqual([line for _, _, line in lines], [line for _, _, line in recent[-3:]])
        self.assertEqual(self.next_line(plain), "HISTORY END before")


def main():
    global SERVER
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", required=True, help="the chatserver binary")
    args, rest = ap.parse_known_args()
    SERVER = os.path.abspath(args.server)
    if not os.access(SERVER, os.X_OK):
        print("not an executable: %s" % SERVER, file=sys.stderr)
        print("0 passed, 1 failed")
        return 1
    start = time.monotonic()
    prog = unittest.main(argv=[sys.argv[0], "-v"] + rest, exit=False)
    r = prog.result
    failed = len(r.failures) + len(r.errors) + len(getattr(r, "unexpectedSuccesses", []))
    skipped = len(r.skipped)
    passed = r.testsRun - failed - skipped
    if OBSERVATIONS:
        print("observed:")
        for o in OBSERVATIONS:
            print("  " + o)
    print("runtime %.1f s" % (time.monotonic() - start))
    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print(line)
    return 0 if failed == 0 and r.testsRun > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
