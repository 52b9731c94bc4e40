#!/usr/bin/python3
"""Draws the web page's pictures for the README: OUTDIR/web-desktop.png (1280x800, light
theme) and OUTDIR/web-phone.png (360x740 at 2x, dark theme), each of a scripted conversation
against a real chatserver, in headless Chromium.

    /usr/bin/python3 tests/web/screenshot.py --server build/release/server/chatserver docs/pictures
    /usr/bin/python3 tests/web/screenshot.py --url http://127.0.0.1:PORT/ --chat-port P docs/pictures

The browser's user is maya; alice, bob and carol are TCP clients in protocol mode. bob joins
while maya is there, there are a few lines, a /me, a private message each way, a message with
markup in it (shown as text), and carol stops answering the server's heartbeat and is dropped
(cause no-pong). With --server the script starts chatserver itself (`--port 0 --bind 127.0.0.1
--max-per-ip 0`, and `--ping-interval 2s --ping-timeout 2s` so that carol goes in seconds) and
stops it by pid; with --url the server's own heartbeat settings apply (by default carol is gone
25 s after her last line).

Needs Debian's chromium, chromium-driver and python3-selenium (run it with /usr/bin/python3);
with optipng on the PATH the pictures are also losslessly compressed. The server, the TCP
clients and the browser's set-up are chatweb.py's (next to this file), shared with
browser_test.py.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

sys.dont_write_bytecode = True  # no __pycache__ in the source tree for chatweb
import chatweb  # noqa: E402 (this folder)
from chatweb import WAIT  # noqa: E402


class Peer(chatweb.Peer):
    """chatweb's TCP client as a person in the picture: a pause after each line it sends, and a
    line that does not come ends the script."""

    def send(self, line):
        super().send(line)
        time.sleep(0.15)  # one line after another, as people type

    def expect(self, pattern, timeout=WAIT, since=0):
        try:
            return super().expect(pattern, timeout, since)
        except AssertionError:
            sys.exit(f'{self.nick}: no /{pattern}/ within {timeout} s: {self.lines[-5:]}')


def joined(port, nick):
    """A Peer that has joined as nick, trying again for a while: the same nickname may still be
    leaving from the previous picture."""
    deadline = time.monotonic() + WAIT
    while True:
        peer = Peer(nick, port, join=False)
        peer.send('HELLO ' + nick)
        if peer.expect(r'(WELCOME|ERROR)').startswith('WELCOME'):
            return peer
        peer.close()
        if time.monotonic() > deadline:
            sys.exit(f'{nick}: cannot join')
        time.sleep(0.3)


def browser(phone, dark):
    return chatweb.chromium(phone=phone, dark=dark, args=('--hide-scrollbars',))


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

        alice = joined(port, 'alice')
        carol = joined(port, 'carol')
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
        bob = joined(port, 'bob')
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
        shown('carol stopped answering', timeout=leave_wait)
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
            try:
                server = chatweb.ChatServer(args.server, extra=['--ping-interval', '2s', '--ping-timeout', '2s'])
            except RuntimeError as e:  # it did not say where it listens
                sys.exit(str(e))
            try:
                picture(f'http://127.0.0.1:{server.port}/', server.port, out, phone, dark, leave_wait=15)
            finally:
                server.stop()
        else:
            picture(args.url, args.chat_port, out, phone, dark, leave_wait=40)


if __name__ == '__main__':
    main()
