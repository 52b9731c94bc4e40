#!/usr/bin/python3
"""Draws the web page's pictures for the README: OUTDIR/web-desktop.png (1280x800, light
theme) and OUTDIR/web-phone.png (360x740 at 2x, dark theme), each of a scripted conversation
against a real chatserver, in headless Chromium.

    /usr/bin/python3 web/screenshot.py --server build/release/server/chatserver docs/pictures
    /usr/bin/python3 web/screenshot.py --url http://127.0.0.1:PORT/ --chat-port P docs/pictures

The browser's user is maya; alice, bob and carol are TCP clients in protocol mode. bob joins
while maya is there, there are a few lines, a /me, a private message each way, a message with
markup in it (shown as text), and carol stops answering the server's heartbeat and is dropped
(cause no-pong). With --server the script starts chatserver itself (`--port 0 --bind 127.0.0.1
--max-per-ip 0`, and `--ping-interval 2s --ping-timeout 2s` so that carol goes in seconds) and
stops it by pid; with --url the server's own heartbeat settings apply (by default carol is gone
25 s after her last line).

Needs Debian's chromium, chromium-driver and python3-selenium (run it with /usr/bin/python3);
with optipng on the PATH the pictures are also losslessly compressed.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

CHROMEDRIVER = '/usr/bin/chromedriver'
WAIT = 10


class ChatServer:
    def __init__(self, path, extra=()):
        self.proc = subprocess.Popen(
            [path, '--port', '0', '--bind', '127.0.0.1', '--max-per-ip', '0', *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        first = self.proc.stderr.readline()
        m = re.match(r'chatserver listening on 127\.0\.0\.1:(\d+)', first)
        if not m:
            self.stop()
            sys.exit(f'{path}: expected "chatserver listening on 127.0.0.1:PORT", got {first!r}')
        self.port = int(m.group(1))
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Peer:
    """A protocol-mode client that answers PING until told to stop (then the server drops it)."""

    def __init__(self, port, nick):
        self.nick = nick
        self.answer_pings = True
        self.lines = []
        self.cond = threading.Condition()
        deadline = time.monotonic() + WAIT
        while True:  # the same nickname may still be leaving from the previous picture
            self.sock = socket.create_connection(('127.0.0.1', port), timeout=WAIT)
            self.sock.settimeout(None)
            self.lines = []
            threading.Thread(target=self._read, args=(self.sock,), daemon=True).start()
            self.send('HELLO ' + nick)
            if self.expect(r'(WELCOME|ERROR)') .startswith('WELCOME'):
                return
            self.sock.close()
            if time.monotonic() > deadline:
                sys.exit(f'{nick}: cannot join')
            time.sleep(0.3)

    def _read(self, sock):
        buf = b''
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b''
            if not data:
                return
            buf += data
            while b'\n' in buf:
                raw, buf = buf.split(b'\n', 1)
                line = raw.decode('utf-8', 'replace')
                if line.startswith('PING') and self.answer_pings:
                    self.send('PONG' + line[4:])
                with self.cond:
                    self.lines.append(line)
                    self.cond.notify_all()

    def send(self, line):
        self.sock.sendall(line.encode() + b'\n')
        time.sleep(0.15)  # one line after another, as people type

    def expect(self, pattern, timeout=WAIT):
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if rx.match(line):
                        return line
                left = end - time.monotonic()
                if left <= 0:
                    sys.exit(f'{self.nick}: no /{pattern}/ within {timeout} s: {self.lines[-5:]}')
                self.cond.wait(left)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def browser(phone, dark):
    options = webdriver.ChromeOptions()
    for arg in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--window-size=1280,800',
                '--hide-scrollbars', '--no-first-run'):
        options.add_argument(arg)
    if phone:
        options.add_experimental_option('mobileEmulation', {
            'deviceMetrics': {'width': 360, 'height': 740, 'pixelRatio': 2.0}})
    options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    if not phone:
        driver.execute_cdp_cmd('Emulation.setDeviceMetricsOverride', {
            'width': 1280, 'height': 800, 'deviceScaleFactor': 1, 'mobile': False})
    driver.execute_cdp_cmd('Emulation.setEmulatedMedia', {
        'features': [{'name': 'prefers-color-scheme', 'value': 'dark' if dark else 'light'}]})
    return driver


def picture(url, port, out, phone, dark, leave_wait):
    peers = []
    driver = browser(phone, dark)
    try:
        def until(what, timeout=WAIT):
            return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: what())

        def shown(text, timeout=WAIT):
            until(lambda: text in driver.execute_script("return document.getElementById('log').textContent"),
                  timeout)

        def type_(text):
            driver.find_element(By.ID, 'input').send_keys(text, Keys.ENTER)
            time.sleep(0.15)

        alice = Peer(port, 'alice')
        carol = Peer(port, 'carol')
        peers += [alice, carol]
        driver.get(url)
        try:  # app.js has run when it has written the host into the form
            until(lambda: driver.execute_script(
                "return document.getElementById('join-host').textContent === location.host"))
        except Exception:
            sys.exit(f'the page did not start; console: {driver.get_log("browser")}')
        driver.find_element(By.ID, 'nick').clear()
        driver.find_element(By.ID, 'nick').send_keys('maya', Keys.ENTER)
        until(lambda: driver.find_element(By.ID, 'status-state').text == 'connected')
        alice.send("SAY hi maya! we're picking teams for Codenames")
        bob = Peer(port, 'bob')
        peers.append(bob)
        bob.send("SAY evening all, sorry I'm late")
        type_("no worries, we haven't started yet")
        alice.send('ME shuffles the word cards')
        alice.send('PRIV maya want to be on my team? bob always guesses too fast')
        shown('bob always guesses too fast')
        type_("@alice deal, I'll give the clues")
        bob.send('SAY what happens if I type <img src=x onerror=alert(1)> here?')
        alice.send('SAY it shows up as plain text. nice try, bob')
        carol.send('SAY my wifi is acting up again, back in a sec')
        carol.answer_pings = False  # from here on she is "hung": the heartbeat drops her
        shown('carol left', timeout=leave_wait)
        bob.send('SAY carol dropped again, classic')
        type_('red team goes first!')
        shown('red team goes first!')
        until(lambda: 'rtt' in driver.find_element(By.ID, 'status').text
              and '?' not in driver.find_element(By.ID, 'status-rtt').text)
        time.sleep(0.5)  # the last scroll and paint
        if driver.execute_script('return window.__xss') is not None:
            sys.exit('the markup in a message ran: the page is broken')
        driver.save_screenshot(out)
        if shutil.which('optipng'):  # lossless, about a quarter smaller
            subprocess.run(['optipng', '-quiet', '-o2', '-strip', 'all', out], check=False)
        print(f'wrote {out} ({os.path.getsize(out)} bytes)')
    finally:
        driver.quit()
        for p in peers:
            p.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--server', metavar='PATH', help='a chatserver binary to start (it serves the page)')
    group.add_argument('--url', metavar='URL', help='a page already served, e.g. http://127.0.0.1:PORT/')
    parser.add_argument('--chat-port', type=int, metavar='P', help="with --url: the chat's TCP port")
    parser.add_argument('outdir', help='where to write web-desktop.png and web-phone.png (docs/pictures)')
    args = parser.parse_args()
    if args.url and not args.chat_port:
        parser.error('--url needs --chat-port')
    os.makedirs(args.outdir, exist_ok=True)
    for name, phone, dark in (('web-desktop.png', False, False), ('web-phone.png', True, True)):
        out = os.path.join(args.outdir, name)
        if args.server:
            server = ChatServer(args.server, ['--ping-interval', '2s', '--ping-timeout', '2s'])
            try:
                picture(f'http://127.0.0.1:{server.port}/', server.port, out, phone, dark, leave_wait=15)
            finally:
                server.stop()
        else:
            picture(args.url, args.chat_port, out, phone, dark, leave_wait=40)


if __name__ == '__main__':
    main()
