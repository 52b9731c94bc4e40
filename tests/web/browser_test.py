#!/usr/bin/python3
"""The web page (web/) in headless Chromium against a real chatserver.

    /usr/bin/python3 tests/web/browser_test.py --server build/release/server/chatserver
    /usr/bin/python3 tests/web/browser_test.py --url http://127.0.0.1:PORT/ --chat-port P

With --server the test starts chatserver itself (`--port 0 --bind 127.0.0.1 --max-per-ip 0`),
reads the port from its first stderr line and stops it by pid; the page is served by that
server at http://127.0.0.1:PORT/ and speaks on ws://127.0.0.1:PORT/ws. With --url it uses a
page and a chat port that are already there (e.g. a bridge in front of a chatserver); the
tests that must kill or stop the server are then skipped. Other arguments go to unittest
(`-v`, `-k drawer`, a test name).

The other side of every conversation is a plain TCP client in protocol mode (HELLO, SAY, ...):
what the page sends must reach it, and what it sends must show on the page.

Needs Debian's chromium, chromium-driver and python3-selenium (run with /usr/bin/python3, whose
modules they are); without them every test is skipped and says why. Each test is bounded in
time (TEST_TIMEOUT); the server's and the browser's processes are stopped by pid. The server,
the TCP client and the browser's set-up are chatweb.py's (next to this file), shared with the
pictures' screenshot.py.
"""

import argparse
import base64
import hashlib
import shutil
import os
import signal
import subprocess
import sys
import re
import tempfile
import time
import unittest
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree for chatweb
from chatweb import (WAIT, ChatServer, Peer, can_drop_connections, chromium, drop_connections,  # noqa: E402
                     missing_browser)

TEST_TIMEOUT = 120  # seconds, for any one test

try:
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - missing_browser() says why, and every test is skipped
    pass


MISSING = missing_browser()
OPTS = None  # the command line: set in main()

SERVER = None  # the shared one, with --server


def page_url():
    return OPTS.url if OPTS.url else f'http://127.0.0.1:{SERVER.port}/'


def chat_port():
    return OPTS.chat_port if OPTS.url else SERVER.port


# ---- the page in Chromium ------------------------------------------------------------------

class Page:
    """One headless Chromium on the page: a desktop (1280x800) or a phone (360x740)."""

    def __init__(self, phone=False, dark=None):
        self.driver = chromium(phone=phone, dark=dark, args=('--no-default-browser-check',))
        self.driver.set_page_load_timeout(WAIT * 2)
        self.driver.set_script_timeout(WAIT)
        self.quitted = False

    def open(self, url=None):
        # app.js has run when it has written the host into the form; if it has not, say why
        # (a file that failed to load shows in the console).
        #
        # On a busy 2-core machine (load average 10) Chromium's first request to a server now and
        # then came more than 100 ms after its connection, which the server had then greeted as a
        # line client (docs/protocol.md, "The door"): ERR_INVALID_HTTP_RESPONSE, the browser's
        # error page, nothing in the console. A page file fetched from this address just before
        # makes the server wait up to 12 s on a silent connection, as it does for a browser that
        # is loading the page; and two more tries are allowed, said on stderr.
        ready = ("return !!document.getElementById('join-host')"
                 " && document.getElementById('join-host').textContent === location.host")
        target = url or page_url()
        for attempt in (1, 2, 3):
            try:
                with urllib.request.urlopen(target.rstrip('/') + '/icon.svg', timeout=WAIT) as r:
                    r.read()
            except OSError:
                pass  # the page's own load says what is wrong
            self.driver.get(target)
            try:
                WebDriverWait(self.driver, WAIT * 2, poll_frequency=0.1).until(lambda d: d.execute_script(ready))
                break
            except Exception:
                where = self.driver.execute_script(
                    'return [location.href, document.readyState, (document.body || {}).innerText || ""]')
                where[2] = ' '.join(where[2].split())[:300]
                if attempt == 3 or not where[0].startswith('chrome-error:'):
                    raise AssertionError(f'the page did not start ({where}); console: '
                                         f'{self.driver.get_log("browser")}') from None
                sys.stderr.write(f'note: the page did not load ({where}); loading it again\n')
        # Content Security Policy violations, counted from here on.
        self.driver.execute_script(
            "window.__csp = []; document.addEventListener('securitypolicyviolation',"
            " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")
        return self

    def el(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def until(self, what, timeout=WAIT, message=''):
        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(lambda d: what(), message)

    def state(self):
        return self.el('#status-state').text

    def status(self):
        return self.js("return document.getElementById('status').textContent")

    def join(self, nick):
        box = self.el('#nick')
        box.clear()
        box.send_keys(nick, Keys.ENTER)
        self.until(lambda: self.state() == 'connected', message=f'{nick} did not join: {self.status()!r}')
        return self

    def type(self, text):
        self.el('#input').send_keys(text, Keys.ENTER)

    def lines(self):
        """[(classes, textContent)] of every line of the conversation."""
        return self.js("return [...document.querySelectorAll('#log .line')].map(e => [e.className, e.textContent])")

    def wait_line(self, category, text, timeout=WAIT):
        def found():
            for cls, content in self.lines():
                if category in cls.split() and text in content:
                    return content
            return None
        return self.until(found, timeout, f'no .{category} line with {text!r}; lines: {self.lines()[-8:]}')

    def users(self):
        return self.js("return [...document.querySelectorAll('#users .user')].map(e => e.textContent)")

    def errors(self):
        """Console entries at SEVERE level (a CSP violation is one) and CSP violation events."""
        logs = [e for e in self.driver.get_log('browser') if e.get('level') == 'SEVERE']
        return logs + (self.js('return window.__csp || []') or [])

    def quit(self):
        if not self.quitted:
            self.quitted = True
            try:
                self.driver.quit()
            except WebDriverException:
                pass


# ---- the tests ----------------------------------------------------------------------------

class TimeLimit(Exception):
    pass


def _alarm(signum, frame):
    raise TimeLimit(f'the test took more than {TEST_TIMEOUT} s')


@unittest.skipIf(MISSING, MISSING or '')
class WebPageTest(unittest.TestCase):

    def setUp(self):
        signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(TEST_TIMEOUT)
        self.addCleanup(signal.alarm, 0)
        self.tag = self._testMethodName.replace('test_', '')[:10]

    def page(self, phone=False, dark=None):
        p = Page(phone=phone, dark=dark)
        self.addCleanup(p.quit)
        return p.open()

    def peer(self, nick, port=None, **kw):
        p = Peer(nick, port or chat_port(), **kw)
        self.addCleanup(p.close)
        return p

    def nick(self, who='w'):
        return f'{who}-{self.tag}'[:24]

    # -- joining

    def test_http_headers(self):
        """The page and its files come with their content types, the CSP and nosniff."""
        base = page_url().rstrip('/')
        expected = {'/': 'text/html; charset=utf-8', '/index.html': 'text/html; charset=utf-8',
                    '/app.js': 'text/javascript; charset=utf-8', '/style.css': 'text/css; charset=utf-8',
                    '/wording.js': 'text/javascript; charset=utf-8',
                    '/icon.svg': 'image/svg+xml'}
        for path, ctype in expected.items():
            with urllib.request.urlopen(base + path, timeout=WAIT) as r:
                self.assertEqual(r.status, 200, path)
                self.assertEqual(r.headers['Content-Type'], ctype, path)
                # default-src 'self' at least; more directives may tighten it, none loosen it.
                csp = r.headers['Content-Security-Policy'] or ''
                directives = {d.split()[0]: d.split()[1:] for d in csp.split(';') if d.strip()}
                self.assertEqual(directives.get('default-src'), ["'self'"], f'{path}: {csp!r}')
                self.assertNotIn('unsafe', csp, path)
                self.assertEqual(r.headers['X-Content-Type-Options'], 'nosniff', path)
                self.assertGreater(len(r.read()), 100, path)

    def test_words_are_the_servers(self):
        """The page words every leave, goodbye, lost connection and refusal as chatclient does:
        app.js fills common/wording.cpp's table (from /wording.js) as the C++ does, row for row
        of tests/unit/wording_cases.tsv (which tests/unit/wording_test.cpp checks too)."""
        page = self.page()
        cases = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'unit', 'wording_cases.tsv')
        rows = 0
        with open(cases, encoding='utf-8') as f:
            for line in f:
                line = line.rstrip('\n')
                if not line or line.startswith('#'):
                    continue
                table, key, nick, detail, words = ['' if c == '-' else c for c in line.split('\t')]
                args = [nick, key, detail] if table == 'leave' else [key, detail]
                got = page.js('return window.chatWords[arguments[0]](...arguments[1])', table, args)
                self.assertEqual(got, words, line)
                rows += 1
        self.assertGreaterEqual(rows, 40)

    def test_join_send_and_receive(self):
        """The page joins, what it says reaches a TCP client, and what that client says shows."""
        other = self.peer(self.nick('p'))
        page = self.page()
        self.assertEqual(page.js('return document.activeElement.id'), 'nick', 'focus starts in the nickname')
        mark = other.mark()
        nick = self.nick()
        page.join(nick)
        other.expect(f'JOIN {nick}$', since=mark)
        self.assertEqual(page.js('return document.activeElement.id'), 'input', 'then in the input line')
        page.type('hello')
        other.expect(f'MSG {nick} hello$', since=mark)
        page.wait_line('msg', 'hello')
        other.send('SAY hi from a TCP client')
        line = page.wait_line('msg', 'hi from a TCP client')
        self.assertRegex(line, r'^\d\d:\d\d:\d\d ', 'each line starts with HH:MM:SS')
        self.assertIn(other.nick, line)
        self.assertEqual(page.errors(), [], 'no console errors, no CSP violations')

    def test_room_password(self):
        """A room with a password (chatserver --password-file): the form asks for it once the
        server says so, a wrong one is said in words, the right one joins."""
        if OPTS.url:
            self.skipTest('needs --server (a chatserver of its own, with a password)')
        hashed = subprocess.run([OPTS.server, '--hash-password'], input='open sesame\n', capture_output=True,
                                text=True, check=True, timeout=WAIT).stdout.strip()
        with tempfile.NamedTemporaryFile('w', suffix='.pass', delete=False) as f:
            f.write(hashed + '\n')
        self.addCleanup(os.unlink, f.name)
        server = ChatServer(OPTS.server, extra=['--password-file', f.name])
        self.addCleanup(server.stop)
        page = Page()
        self.addCleanup(page.quit)
        page.open(f'http://127.0.0.1:{server.port}/')
        self.assertTrue(page.js("return document.getElementById('password-row').hidden"), 'no password field at first')
        page.el('#nick').send_keys(self.nick(), Keys.ENTER)
        page.until(lambda: not page.js("return document.getElementById('password-row').hidden"),
                   message='the form did not ask for the password')
        self.assertIn('This room has a password', page.el('#nick-error').text)
        self.assertEqual(page.js('return document.activeElement.id'), 'password')
        page.el('#password').send_keys('open says me', Keys.ENTER)
        page.until(lambda: 'Wrong password' in page.el('#nick-error').text, message='a wrong one was not said')
        page.el('#password').send_keys('open sesame', Keys.ENTER)
        page.until(lambda: page.state() == 'connected', message=f'did not join: {page.status()!r}')
        self.assertEqual(page.errors(), [], 'no console errors, no CSP violations')

    def test_https_with_a_self_signed_certificate(self):
        """TLS (chatserver --self-signed DIR): the page over https:// and its WebSocket over
        wss://, in a Chromium told to accept exactly that certificate (its key's SPKI hash), as a
        person accepts it once; a TCP client in clear text on the same port reads the page's line."""
        if OPTS.url:
            self.skipTest('needs --server (a chatserver of its own, with TLS)')
        tls_dir = tempfile.mkdtemp(prefix='chat-browser-tls-')
        self.addCleanup(shutil.rmtree, tls_dir, True)
        server = ChatServer(OPTS.server, extra=['--self-signed', tls_dir])
        self.addCleanup(server.stop)
        pubkey = subprocess.run(['openssl', 'x509', '-pubkey', '-noout', '-in', os.path.join(tls_dir, 'cert.pem')],
                                capture_output=True, check=True).stdout
        der = subprocess.run(['openssl', 'pkey', '-pubin', '-outform', 'der'], input=pubkey, capture_output=True,
                             check=True).stdout
        spki = base64.b64encode(hashlib.sha256(der).digest()).decode()
        other = self.peer(self.nick('p'), port=server.port)
        page = Page.__new__(Page)
        page.driver = chromium(args=('--no-default-browser-check', '--ignore-certificate-errors-spki-list=' + spki))
        page.driver.set_page_load_timeout(WAIT * 2)
        page.driver.set_script_timeout(WAIT)
        page.quitted = False
        self.addCleanup(page.quit)
        page.open(f'https://127.0.0.1:{server.port}/')
        self.assertEqual(page.js('return location.protocol'), 'https:')
        mark = other.mark()
        nick = self.nick()
        page.join(nick)
        other.expect(f'JOIN {nick}$', since=mark)
        page.type('over wss')
        other.expect(f'MSG {nick} over wss$', since=mark)
        other.send('SAY clear text reaches TLS')
        page.wait_line('msg', 'clear text reaches TLS')
        self.assertTrue(any('websocket over TLS' in line for line in server.log), 'the server saw a wss:// join')
        self.assertEqual(page.errors(), [], 'no console errors, no CSP violations')

    def test_nickname_checked_refused_and_remembered(self):
        """A bad nickname is caught before connecting; a taken one is refused by the server in
        words; the one that joined is remembered for the next visit."""
        holder = self.peer(self.nick('taken'))
        page = self.page()
        box = page.el('#nick')
        mark = holder.mark()
        box.send_keys('two words', Keys.ENTER)
        self.assertIn('only A-Z a-z 0-9 _ ! - are allowed', page.el('#nick-error').text)
        box.clear()
        box.send_keys(holder.nick.upper(), Keys.ENTER)
        page.until(lambda: f'The nickname {holder.nick.upper()} is taken' in page.el('#nick-error').text,
                   message='a taken nickname is refused in words')
        self.assertTrue(page.el('#join-view').is_displayed())
        nick = self.nick()
        page.join(nick)
        holder.expect(f'JOIN {nick}$', since=mark)
        self.assertFalse([line for line in holder.lines[mark:] if line.startswith('JOIN two')])
        page.open()
        self.assertEqual(page.el('#nick').get_attribute('value'), nick)

    def test_xss_line_shown_literally(self):
        """A message with markup in it shows as the characters it is made of."""
        other = self.peer(self.nick('p'))
        page = self.page()
        page.join(self.nick())
        evil = '<img src=x onerror=window.__xss=1>'
        other.send('SAY ' + evil)
        other.send('ME <b>bold</b> & <script>window.__xss=2</script>')
        line = page.wait_line('msg', evil)
        self.assertIn(evil, line)
        page.wait_line('me', '<b>bold</b> & <script>window.__xss=2</script>')
        self.assertEqual(page.js("return document.querySelectorAll('#log img, #log b, #log script').length"), 0)
        time.sleep(0.3)
        self.assertIsNone(page.js('return window.__xss'))

    def test_me_and_private_both_ways(self):
        """/me, a private message received, and one sent both as @nick and /msg."""
        other = self.peer(self.nick('p'))
        page = self.page()
        nick = self.nick()
        page.join(nick)
        mark = other.mark()
        page.type('/me waves')
        other.expect(f'ME {nick} waves$', since=mark)
        page.wait_line('me', 'waves')
        other.send(f'PRIV {nick} psst, a secret')
        page.wait_line('priv-in', 'psst, a secret')
        page.type(f'@{other.nick} got it')
        other.expect(f'PRIV {nick} {other.nick} got it$', since=mark)
        page.wait_line('priv-out', 'got it')
        page.type(f'/msg {other.nick} and again')
        other.expect(f'PRIV {nick} {other.nick} and again$', since=mark)
        page.type('//slash text')
        other.expect(f'MSG {nick} /slash text$', since=mark)
        page.type('@nobody-here hello?')
        page.wait_line('error', 'nobody-here')

    def test_user_list_follows_joins_and_leaves(self):
        """Who is online follows JOIN, NICK and LEAVE; a leave says its cause in words; a
        name in the list starts a private message."""
        page = self.page()
        nick = self.nick()
        page.join(nick)
        self.assertIn(nick, page.users())
        other = self.peer(self.nick('p'))
        page.until(lambda: other.nick in page.users(), message='the list shows who joined')
        page.wait_line('join', f'{other.nick} joined')
        renamed = self.nick('q')
        other.send('NICK ' + renamed)
        page.until(lambda: renamed in page.users() and other.nick not in page.users(),
                   message='the list follows a rename')
        page.driver.find_element(By.XPATH, f"//*[@id='users']//*[contains(@class,'user') and text()='{renamed}']").click()
        self.assertEqual(page.el('#input').get_attribute('value'), f'@{renamed} ')
        self.assertEqual(page.js('return document.activeElement.id'), 'input')
        other.send('QUIT see you')
        page.until(lambda: renamed not in page.users(), message='the list drops who left')
        page.wait_line('leave', f'{renamed} left (see you)')
        # The words for people (common/wording.hpp, through /wording.js); the protocol's detail
        # on request: a tap shows it under the words.
        shown = "return [...document.querySelectorAll('#log .line.leave')].pop()"
        self.assertEqual(page.js(shown + '.innerText').split(' ', 1)[1], f'{renamed} left (see you)')
        self.assertEqual(page.js(shown + '.title'), 'quit: see you')
        page.js(shown + '.click()')
        page.until(lambda: 'quit: see you' in page.js(shown + '.innerText'), message='a tap shows the detail')

    def test_closing_the_browser_is_a_leave(self):
        """driver.quit(): the others get LEAVE <nick> closed within 10 s."""
        other = self.peer(self.nick('p'))
        page = self.page()
        nick = self.nick()
        mark = other.mark()
        page.join(nick)
        other.expect(f'JOIN {nick}$', since=mark)
        started = time.monotonic()
        page.quit()
        line = other.expect(f'LEAVE {nick} ', timeout=10, since=mark)
        self.assertRegex(line, f'^LEAVE {nick} closed ')
        self.assertLess(time.monotonic() - started, 10)

    def test_phone_no_sideways_scroll_and_drawer(self):
        """At 360 px: nothing scrolls sideways, even a 300-character word; the list of people is
        a drawer that the button opens and Esc closes, focus going in and back."""
        other = self.peer(self.nick('p'))
        for dark in (False, True):
            page = self.page(phone=True, dark=dark)
            self.assertEqual(page.js('return innerWidth'), 360)
            nick = self.nick('d' if dark else 'l')
            page.join(nick)
            other.send('SAY ' + 'x' * 300)
            other.send('SAY https://example.com/a/very/long/path/that/goes/on/and/on/and/on/without/any/spaces')
            page.wait_line('msg', 'without/any/spaces')
            self.assertLessEqual(page.js('return document.documentElement.scrollWidth'), 360)
            panel = page.el('#users-panel')
            toggle = page.el('#users-toggle')
            self.assertTrue(toggle.is_displayed())
            self.assertFalse(panel.is_displayed(), 'the drawer starts closed')
            toggle.click()
            page.until(lambda: panel.is_displayed(), message='the button opens the drawer')
            self.assertEqual(toggle.get_attribute('aria-expanded'), 'true')
            self.assertTrue(page.js("return document.getElementById('users-panel').contains(document.activeElement)"))
            self.assertIn(other.nick, page.users())
            self.assertLessEqual(page.js('return document.documentElement.scrollWidth'), 360)
            page.driver.switch_to.active_element.send_keys(Keys.ESCAPE)
            page.until(lambda: not panel.is_displayed(), message='Esc closes the drawer')
            self.assertEqual(toggle.get_attribute('aria-expanded'), 'false')
            self.assertEqual(page.js('return document.activeElement.id'), 'users-toggle')
            self.assertEqual(page.errors(), [])
            page.quit()

    def test_desktop_has_a_side_column(self):
        """At 1280 px the list of people is a column beside the conversation, no button."""
        page = self.page()
        page.join(self.nick())
        self.assertTrue(page.el('#users-panel').is_displayed())
        self.assertFalse(page.el('#users-toggle').is_displayed())
        self.assertLessEqual(page.js('return document.documentElement.scrollWidth'), page.js('return innerWidth'))

    def test_commands_history_and_scrolling(self):
        """/help, /clear, /who, Up/Down history; a reader who scrolled back stays put; sending
        scrolls to the end."""
        other = self.peer(self.nick('p'))
        page = self.page()
        page.join(self.nick())
        page.type('/help')
        page.wait_line('info', '/msg <nick> <text>')
        page.type('/clear')
        page.until(lambda: page.lines() == [], message='/clear empties the conversation')
        page.type('/who')
        page.wait_line('info', other.nick)
        box = page.el('#input')
        box.send_keys(Keys.ARROW_UP)
        self.assertEqual(box.get_attribute('value'), '/who')
        box.send_keys(Keys.ARROW_UP)
        self.assertEqual(box.get_attribute('value'), '/clear')
        box.send_keys(Keys.ARROW_DOWN, Keys.ARROW_DOWN)
        self.assertEqual(box.get_attribute('value'), '')
        for i in range(80):
            other.send(f'SAY filler line {i}')
        page.wait_line('msg', 'filler line 79')
        at_end = "const l = document.getElementById('log'); return l.scrollHeight - l.scrollTop - l.clientHeight < 40"
        page.until(lambda: page.js(at_end), message='new lines keep a reader at the end')
        # At the top, earlier messages are loaded above: the lines in view stay where they are,
        # and stay there while new lines come below.
        page.js("document.getElementById('log').scrollTop = 0")
        time.sleep(0.3)
        page.until(lambda: not page.js("return document.getElementById('more-button').disabled"),
                   message='earlier messages loaded')
        where = ("return [...document.querySelectorAll('#log .line')].find(e => e.textContent.endsWith('filler line 0'))"
                 ".getBoundingClientRect().top")
        top = page.js(where)
        other.send('SAY while you were reading')
        page.wait_line('msg', 'while you were reading')
        self.assertAlmostEqual(page.js(where), top, delta=1, msg='the reader stays put')
        self.assertTrue(page.el('#jump').is_displayed(), 'and is told there is more below')
        page.type('back at the end')
        page.until(lambda: page.js(at_end), message='sending scrolls to the end')

    def test_answers_the_servers_ping(self):
        """A server that PINGs every second and ends silent clients after one more: the page
        answers at once and stays."""
        if not OPTS.server:
            self.skipTest('needs --server (a chatserver of its own with --ping-interval 1s)')
        server = ChatServer(OPTS.server, extra=['--ping-interval', '1s', '--ping-timeout', '1s'])
        self.addCleanup(server.stop)
        other = self.peer(self.nick('p'), port=server.port)
        page = Page()
        self.addCleanup(page.quit)
        page.open(f'http://127.0.0.1:{server.port}/')
        nick = self.nick()
        page.join(nick)
        time.sleep(6)
        self.assertFalse([line for line in other.lines if line.startswith(f'LEAVE {nick} ')], other.lines)
        self.assertEqual(page.state(), 'connected')
        # The peer stops answering: the page says so in the words of common/wording.cpp (filled by
        # app.js from /wording.js), with the time of silence the server's detail gives.
        other.answer_pings = False
        line = page.wait_line('leave', f'{other.nick} stopped answering (no reply for ', timeout=20)
        self.assertRegex(line, re.escape(other.nick) + r' stopped answering \(no reply for \d+ s\)')
        self.assertIn('no-pong: no reply to PING within 1.0 s (poller, ', line)  # the detail, for a tap

    def test_conversation_is_capped(self):
        """The conversation keeps about 5000 lines: the oldest go."""
        if not OPTS.server:
            self.skipTest('needs --server (a chatserver of its own with --max-rate 0)')
        server = ChatServer(OPTS.server, extra=['--max-rate', '0'])
        self.addCleanup(server.stop)
        page = Page()
        self.addCleanup(page.quit)
        page.open(f'http://127.0.0.1:{server.port}/')
        page.join(self.nick())
        other = self.peer(self.nick('p'), port=server.port)
        other.sock.sendall(''.join(f'SAY number {i}\n' for i in range(5300)).encode())
        page.wait_line('msg', 'number 5299', timeout=60)
        count = page.js("return document.querySelectorAll('#log .line').length")
        self.assertGreaterEqual(count, 5000)
        self.assertLessEqual(count, 5100)
        self.assertNotIn('number 0', page.js("return document.getElementById('log').textContent"))

    # -- ids, resume and history (docs/protocol.md, "Ids, resume and history")

    def history_server(self, *extra):
        """A chatserver of the test's own, so that its history is the test's alone."""
        if not OPTS.server:
            self.skipTest('needs --server: a chatserver whose history is the test\'s own')
        server = ChatServer(OPTS.server, extra=list(extra))
        self.addCleanup(server.stop)
        return server

    def page_on(self, server, phone=False):
        page = Page(phone=phone)
        self.addCleanup(page.quit)
        return page.open(f'http://127.0.0.1:{server.port}/')

    def rows(self, page):
        """[(classes, textContent, the time element's dateTime)] of every line of the conversation."""
        return page.js("return [...document.querySelectorAll('#log .line')].map(e =>"
                       " [e.className.split(' '), e.textContent, (e.querySelector('time') || {}).dateTime || ''])")

    @staticmethod
    def index(rows, text, cls=None):
        """The index of the only row holding `text` (and of class `cls`); an AssertionError when
        there is none or more than one."""
        found = [i for i, (c, t, _) in enumerate(rows) if text in t and (cls is None or cls in c)]
        if len(found) != 1:
            raise AssertionError(f'{len(found)} lines hold {text!r}: {[r[1] for r in rows][-20:]}')
        return found[0]

    def test_history_shown_apart(self):
        """Joining a room with earlier messages: the last ones are shown as history, dimmed, at
        the time they were said, between "earlier messages" and "now"; live lines after."""
        server = self.history_server('--history', '20')
        other = self.peer(self.nick('p'), port=server.port)
        for i in range(3):
            other.send(f'SAY said before you came {i}')
        other.expect(r'MSG \S+ said before you came 2$')
        time.sleep(0.3)  # the page's own lines come later than these, by the clock
        page = self.page_on(server)
        page.join(self.nick())
        page.wait_line('history', 'said before you came 2')
        other.send('SAY said after you came')
        page.wait_line('msg', 'said after you came')
        rows = self.rows(page)
        earlier = self.index(rows, 'earlier messages', 'sep-earlier')
        now = self.index(rows, 'now', 'sep-now')
        said = [self.index(rows, f'said before you came {i}') for i in range(3)]
        after = self.index(rows, 'said after you came')
        self.assertEqual(rows[earlier][1], 'earlier messages')
        self.assertEqual(rows[now][1], 'now')
        self.assertTrue(earlier < said[0] < said[1] < said[2] < now < after, [r[1] for r in rows])
        for i in said:
            self.assertIn('history', rows[i][0])
            # At their own time (the tag's), before the page joined: ISO strings sort by time.
            self.assertLess(rows[i][2], rows[self.index(rows, 'welcome, ')][2])
        self.assertNotIn('history', rows[after][0])
        colour = ("return getComputedStyle([...document.querySelectorAll('#log .line')]"
                  ".find(e => e.textContent.includes(arguments[0])).querySelector('.text')).color")
        self.assertNotEqual(page.js(colour, 'said before you came 2'), page.js(colour, 'said after you came'),
                            'history is dimmed')
        self.assertEqual(page.errors(), [])

    def test_resume_after_a_dropped_connection(self):
        """The page's connection is destroyed (ss -K, a lost network as the server sees one):
        the page resumes by itself, marks where what it missed starts ("away 1 s, 1 message
        you missed"), shows the missed line once, as history, then live lines; the others see it
        come back (JOIN, for a client without ids)."""
        why = can_drop_connections()
        if why:
            self.skipTest(why)
        server = self.history_server()
        other = self.peer(self.nick('p'), port=server.port)
        page = self.page_on(server)
        nick = self.nick()
        mark = other.mark()
        page.join(nick)
        other.expect(f'JOIN {nick}$', since=mark)
        other.send('SAY before the drop')
        page.wait_line('msg', 'before the drop')
        mark = other.mark()
        self.assertTrue(drop_connections(server.port, keep=[other.local_port()]), 'the page had a connection')
        other.expect(f'LEAVE {nick} ', since=mark)
        # Said while the page is away: it waits at least 0.75 s before it reconnects.
        other.send('SAY said while you were away')
        marker = page.wait_line('sep-marker', 'you missed', timeout=40)
        self.assertRegex(marker, r'^away \d+ s, (1 message|\d+ messages) you missed$')
        page.until(lambda: page.state() == 'connected', timeout=20, message=page.status())
        other.expect(f'JOIN {nick}$', since=mark)  # a BACK, said to a client without ids
        other.send('SAY after the resume')
        page.wait_line('msg', 'after the resume')
        rows = self.rows(page)
        before = self.index(rows, 'before the drop')
        at = self.index(rows, 'you missed', 'sep-marker')
        away = self.index(rows, 'said while you were away')
        after = self.index(rows, 'after the resume')
        self.assertTrue(before < at < away < after, [r[1] for r in rows])
        self.assertIn('history', rows[away][0])
        self.assertNotIn('history', rows[after][0])
        self.assertFalse([t for _, t, _ in rows if 'rejoined as' in t], 'it resumed, not joined afresh')
        self.assertIn(other.nick, page.users())
        self.assertEqual(page.errors(), [])

    def test_reload_resumes(self):
        """Reloading the tab within the resume window resumes the seat (the token waits in
        sessionStorage): no form, no new nickname, the marker, and the conversation before it
        loaded again above."""
        server = self.history_server()
        other = self.peer(self.nick('p'), port=server.port)
        page = self.page_on(server)
        nick = self.nick()
        page.join(nick)
        other.send('SAY before the reload')
        page.wait_line('msg', 'before the reload')
        mark = other.mark()
        page.driver.refresh()
        page.until(lambda: page.js("return document.getElementById('status-state').textContent") == 'connected'
                   and not page.js("return document.getElementById('chat-view').hidden"),
                   timeout=30, message='the reloaded page resumes by itself')
        page.wait_line('sep-marker', 'you missed')
        page.wait_line('info', f'welcome back, {nick}')
        page.wait_line('history', 'before the reload')
        other.expect(f'JOIN {nick}$', since=mark)
        self.assertFalse([line for line in other.lines[mark:] if re.match(f'LEAVE {nick} quit', line)])
        self.assertEqual(page.el('#me').text, nick)

    def test_search_shows_a_result(self):
        """/search <words>: the answer in a box of its own, from "found 1 for …" to "end of
        search", the message found in it; on a phone (360 px) nothing scrolls sideways."""
        other = self.peer(self.nick('p'))
        page = self.page(phone=True)
        page.join(self.nick())
        word = f'zebra{os.getpid()}x{int(time.time())}'
        other.send(f'SAY a {word} crossed the road')
        page.wait_line('msg', f'a {word} crossed the road')
        page.type(f'/search {word}')
        page.wait_line('sep-found', f'found 1 for “{word}”')
        box = page.js("return [...document.querySelectorAll('#log .found')].pop().innerText")
        self.assertIn(f'a {word} crossed the road', box)
        self.assertTrue(box.rstrip().endswith('end of search'), box)
        self.assertEqual(page.js("return [...document.querySelectorAll('#log .found')].pop()"
                                 ".querySelectorAll('.line.history').length"), 1)
        page.type(f'/search {word}-nowhere')
        page.wait_line('sep-found', f'found nothing for “{word}-nowhere”')
        page.type('/search')
        page.wait_line('error', 'usage: /search <words>')
        self.assertLessEqual(page.js('return document.documentElement.scrollWidth'), 360)
        self.assertEqual(page.errors(), [])

    def test_scroll_back_loads_earlier(self):
        """Scrolling to the top (or the button there) loads earlier messages above, the lines in
        view staying where they are, until the server has no more: then the page says so. Every
        line once, in order."""
        server = self.history_server('--history', '10', '--max-rate', '0')
        other = self.peer(self.nick('p'), port=server.port)
        other.sock.sendall(''.join(f'SAY line number {i:03d}.\n' for i in range(120)).encode())
        other.expect(r'MSG \S+ line number 119\.$')
        page = self.page_on(server)
        page.join(self.nick())
        page.wait_line('history', 'line number 119.')
        oldest = "return document.querySelector('#log > .line[data-id]').textContent"
        where = ("return [...document.querySelectorAll('#log > .line')].find(e => e.textContent === arguments[0])"
                 ".getBoundingClientRect().top")
        note = "return !document.getElementById('more-note').hidden"
        for _ in range(10):
            if page.js(note):
                break
            first = page.js(oldest)
            scrolls = page.js("const l = document.getElementById('log'); return l.scrollHeight > l.clientHeight")
            if scrolls:
                # At the top, the reader sees `first` at `top`; after the load it is still there.
                top = page.js("document.getElementById('log').scrollTop = 0; " + where, first)
            else:
                page.el('#more-button').click()
            page.until(lambda: page.js(oldest) != first or page.js(note), message='earlier messages come')
            if scrolls:
                self.assertAlmostEqual(page.js(where, first), top, delta=2, msg='the reader stays put')
        self.assertTrue(page.js(note), 'the start of the history is said')
        self.assertFalse(page.el('#more-button').is_displayed())
        said = [t.split('line number ')[1] for _, t, _ in self.rows(page) if 'line number ' in t]
        self.assertEqual(said, [f'{i:03d}.' for i in range(120)])
        self.assertEqual(len([1 for c, _, _ in self.rows(page) if 'sep-earlier' in c]), 1)
        self.assertEqual(page.errors(), [])

    # -- losing the server (a chatserver of the test's own)

    def own_server(self, port=0):
        if not OPTS.server:
            self.skipTest('needs --server: the test stops and restarts chatserver')
        server = ChatServer(OPTS.server, port=port)
        self.addCleanup(server.stop)
        return server

    def test_server_killed_then_back(self):
        """The server is killed: the status bar says the connection was lost and counts down;
        it comes back on the same port: the page rejoins with the same nickname."""
        server = self.own_server()
        page = Page()
        self.addCleanup(page.quit)
        page.open(f'http://127.0.0.1:{server.port}/')
        nick = self.nick()
        page.join(nick)
        server.kill()
        page.until(lambda: 'reconnecting in' in page.status() and 'lost:' in page.status(),
                   message='the status bar says it is lost and counts down')
        page.wait_line('lost', 'disconnected: ')
        self.assertRegex(page.el('#status-state').text, r'reconnecting in \d+ s')
        port = server.port
        server.start(port)
        watcher = self.peer(self.nick('p'), port=port)
        page.until(lambda: page.state() == 'connected', timeout=40, message='the page rejoins')
        page.wait_line('info', f'rejoined as {nick}')
        self.assertIn(nick, page.users())
        self.assertIn(watcher.nick, page.users())

    def test_server_shutdown_said_in_words(self):
        """SIGTERM: BYE shutdown, shown as the server's reason in words."""
        server = self.own_server()
        page = Page()
        self.addCleanup(page.quit)
        page.open(f'http://127.0.0.1:{server.port}/')
        page.join(self.nick())
        server.signal(signal.SIGTERM)
        page.until(lambda: 'lost: the server has stopped' in page.status(), message=page.status())
        page.wait_line('lost', 'disconnected: the server has stopped')
        # Said once (a failed reconnect that may follow within a second is a line of its own).
        said = [t for c, t in page.lines() if 'lost' in c.split() and 'disconnected:' in t]
        self.assertEqual(len(said), 1, page.lines())
        self.assertFalse([t for _, t in page.lines() if 'server closed the connection' in t], page.lines())

    def test_dead_server_noticed(self):
        """A server that stops answering (SIGSTOP) is given up within about 15 s: 'the server
        stopped answering (no reply for N s)'; once it answers again the page is back."""
        server = self.own_server()
        page = Page()
        self.addCleanup(page.quit)
        page.open(f'http://127.0.0.1:{server.port}/')
        page.join(self.nick())
        server.signal(signal.SIGSTOP)
        started = time.monotonic()
        page.until(lambda: 'the server stopped answering (no reply for' in page.status(), timeout=25,
                   message=page.status())
        self.assertLess(time.monotonic() - started, 20)
        server.signal(signal.SIGCONT)
        page.until(lambda: page.state() == 'connected', timeout=45, message=page.status())

    def test_quit(self):
        """/quit with a reason: the others get LEAVE <nick> quit <reason>; the page is back at
        the form, ready to join again."""
        other = self.peer(self.nick('p'))
        page = self.page()
        nick = self.nick()
        mark = other.mark()
        page.join(nick)
        page.type('/quit good night')
        other.expect(f'LEAVE {nick} quit good night$', since=mark)
        page.until(lambda: page.el('#join-view').is_displayed(), message='back at the form')
        self.assertEqual(page.js('return document.activeElement.id'), 'nick')


def main():
    global OPTS, SERVER
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], add_help=True)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument('--server', metavar='PATH', help='a chatserver binary to start (it serves the page)')
    group.add_argument('--url', metavar='URL', help='a page already served, e.g. http://127.0.0.1:PORT/')
    parser.add_argument('--chat-port', type=int, metavar='P', help="with --url: the chat's TCP port")
    OPTS, rest = parser.parse_known_args()
    if OPTS.url and not OPTS.chat_port:
        parser.error('--url needs --chat-port')
    if OPTS.server:
        if not os.access(OPTS.server, os.X_OK):
            parser.error(f'{OPTS.server}: not an executable')
        OPTS.server = os.path.abspath(OPTS.server)
        SERVER = ChatServer(OPTS.server)
    try:
        program = unittest.main(argv=[sys.argv[0], *rest], exit=False)
    finally:
        if SERVER:
            SERVER.stop()
    sys.exit(0 if program.result.wasSuccessful() else 1)


if __name__ == '__main__':
    main()
