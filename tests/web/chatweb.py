"""What the web page's browser test (browser_test.py) and its pictures (screenshot.py) share: a
chatserver of their own, a TCP client in protocol mode on the other side of the conversation,
and headless Chromium set up as a desktop or a phone.

    import chatweb   # from a script in this folder, which Python puts on sys.path first

Needs Debian's chromium, chromium-driver and python3-selenium for the browser (run with
/usr/bin/python3); without selenium the module still imports, and missing_browser() says why.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

WAIT = 10  # seconds, for any one thing to happen
CHROMEDRIVER = '/usr/bin/chromedriver'

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    SELENIUM_ERROR = None
except ImportError as e:  # pragma: no cover - depends on the machine
    SELENIUM_ERROR = f'python3-selenium is not installed ({e}); apt-get install python3-selenium'


# ---- chatserver ------------------------------------------------------------------------------

class ChatServer:
    """A chatserver of our own: started with --port 0 (or a given port), `--bind 127.0.0.1
    --max-per-ip 0`, `--db none` (unless extra gives a --db: a restart on a fixed port must not
    write a database in the user's state directory) and any extra arguments; its port read from
    its first stderr line; stopped by pid. A server that does not say where it listens is a
    RuntimeError."""

    def __init__(self, path, port=0, extra=()):
        self.path = path
        self.extra = list(extra)
        if '--db' not in self.extra:
            self.extra += ['--db', 'none']
        self.proc = None
        self.port = None
        self.log = []
        self.start(port)

    def start(self, port=0):
        self.proc = subprocess.Popen(
            [self.path, '--port', str(port), '--bind', '127.0.0.1', '--max-per-ip', '0', *self.extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        first = self.proc.stderr.readline()
        m = re.match(r'chatserver listening on 127\.0\.0\.1:(\d+)', first)
        if not m:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f'{self.path}: expected "chatserver listening on 127.0.0.1:PORT", got {first!r}')
        self.port = int(m.group(1))
        # The log must be read, or a full pipe would stop the server.
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()

    def _drain(self, proc):
        for line in proc.stderr:
            self.log.append(line)
            del self.log[:-200]
        proc.stderr.close()

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # in case a test left it stopped
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def drop_connections(port, keep=()):
    """Destroys every established TCP connection from this machine to 127.0.0.1:port but those
    whose local port is in `keep`, with `ss -K` (the server sees ECONNABORTED, the client a
    reset): a lost network, as a test can make one. Needs root and ss (iproute2); see
    ../shared/NOTES.md. Returns the local ports of the connections dropped."""
    listing = subprocess.run(['ss', '-Htn', 'state', 'established', 'dst', '127.0.0.1', 'dport', '=', f':{port}'],
                             capture_output=True, text=True, check=True).stdout
    dropped = []
    for line in listing.splitlines():
        local = int(line.split()[2].rsplit(':', 1)[1])  # Recv-Q Send-Q Local:Port Peer:Port
        if local in keep:
            continue
        subprocess.run(['ss', '-K', '-Htn', 'state', 'established', 'src', '127.0.0.1', 'sport', '=', f':{local}',
                        'dst', '127.0.0.1', 'dport', '=', f':{port}'], capture_output=True, check=True)
        dropped.append(local)
    return dropped


def can_drop_connections():
    """Why drop_connections() cannot run here, or None."""
    if os.geteuid() != 0:
        return 'ss -K needs root'
    if not shutil.which('ss'):
        return 'ss (iproute2) is not installed'
    return None


# ---- the other side: a TCP client in protocol mode -------------------------------------------

class Peer:
    """A protocol-mode client on 127.0.0.1:port: sends lines, keeps every line received, and
    answers PING while answer_pings is true (set it false and the server drops the client for
    not answering). With join, it says HELLO nick and waits for WELCOME."""

    def __init__(self, nick, port, join=True):
        self.nick = nick
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=WAIT)
        self.sock.settimeout(None)
        self.lines = []
        self.cond = threading.Condition()
        self.closed = False
        self.answer_pings = True
        threading.Thread(target=self._read, daemon=True).start()
        if join:
            self.send('HELLO ' + nick)
            self.expect(r'WELCOME ')

    def _recv(self):
        """Some bytes; b'' at the end; None if nothing came yet (a subclass that polls)."""
        try:
            return self.sock.recv(65536)
        except OSError:
            return b''

    def _read(self):
        buf = b''
        while True:
            data = self._recv()
            if data is None:
                continue
            if not data:
                break
            buf += data
            while b'\n' in buf:
                raw, buf = buf.split(b'\n', 1)
                line = raw.decode('utf-8', 'replace')
                if line.startswith('PING') and self.answer_pings:
                    self.send('PONG' + line[4:])
                with self.cond:
                    self.lines.append(line)
                    self.cond.notify_all()
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def send(self, line):
        try:
            self.sock.sendall(line.encode() + b'\n')
        except OSError:
            pass

    def mark(self):
        with self.cond:
            return len(self.lines)

    def expect(self, pattern, timeout=WAIT, since=0):
        """The first line from `since` on that matches `pattern` (re.match); an AssertionError
        if none has come within `timeout` seconds or the connection is closed."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines[since:]:
                    if rx.match(line):
                        return line
                left = end - time.monotonic()
                if left <= 0 or self.closed:
                    raise AssertionError(f'{self.nick} did not receive /{pattern}/ within {timeout} s; '
                                         f'last lines: {self.lines[-8:]}')
                self.cond.wait(left)

    def local_port(self):
        return self.sock.getsockname()[1]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---- headless Chromium -----------------------------------------------------------------------

def missing_browser():
    """Why headless Chromium cannot run here, or None."""
    if SELENIUM_ERROR:
        return SELENIUM_ERROR
    if not (shutil.which('chromium') or shutil.which('chromium-browser') or shutil.which('google-chrome')):
        return 'chromium is not installed; apt-get install chromium'
    if not os.access(CHROMEDRIVER, os.X_OK):
        return f'{CHROMEDRIVER} is missing; apt-get install chromium-driver'
    return None


def chromium(phone=False, dark=None, args=()):
    """A Selenium driver for one headless Chromium: a desktop (1280x800) or a phone (360x740 at
    2x); in the dark or the light theme, or as it comes with dark None. `args` are more
    command-line switches for Chromium."""
    options = webdriver.ChromeOptions()
    for arg in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--window-size=1280,800',
                '--no-first-run', *args):
        options.add_argument(arg)
    if phone:
        # Headless windows are never narrower than 500 px: a phone has to be emulated.
        options.add_experimental_option('mobileEmulation', {
            'deviceMetrics': {'width': 360, 'height': 740, 'pixelRatio': 2.0}})
    options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    if not phone:
        driver.execute_cdp_cmd('Emulation.setDeviceMetricsOverride', {
            'width': 1280, 'height': 800, 'deviceScaleFactor': 1, 'mobile': False})
    if dark is not None:
        driver.execute_cdp_cmd('Emulation.setEmulatedMedia', {
            'features': [{'name': 'prefers-color-scheme', 'value': 'dark' if dark else 'light'}]})
    return driver
