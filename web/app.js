// chatserver's web page: the line protocol of docs/protocol.md over a WebSocket at /ws, one
// protocol line per text frame (without its newline), both ways.
//
// What chatclient does, in a browser: the conversation with time stamps, who is online, the
// input line with history and chatclient's commands, a status bar (connection, round-trip
// time, why the connection was lost, the reconnect countdown), and reconnecting with
// chatclient's policy (client/reconnect.hpp: 1 s doubling to 30 s, each delay cut by up to a
// quarter at random) and rejoining with the same nickname, or a suffixed one while our old
// connection still holds it (client/link.cpp).
//
// Nothing from the network is ever interpreted: every nickname, message and reason reaches
// the page as a text node (textContent, append(string)); there is no innerHTML here.
'use strict';

(() => {
  // ---- settings (chatclient's LinkOptions where it has one) -------------------------------

  const MAX_LINES = 5000; // lines kept in the conversation; older ones are dropped
  const MAX_NICK = 24;
  const BACKOFF_INITIAL_MS = 1000;
  const BACKOFF_CAP_MS = 30000;
  const BACKOFF_JITTER = 0.25;
  const CONNECT_TIMEOUT_MS = 10000;
  const PING_EVERY_MS = 5000; // our own PING, for the round-trip time and to notice a dead server
  const PONG_TIMEOUT_MS = 10000; // nothing heard this long after our PING: the server is gone
  const QUIT_WAIT_MS = 2000; // after QUIT, how long to wait for BYE
  const MAX_GHOST_TRIES = 5;
  const MAX_HISTORY = 200;
  const STORAGE_KEY = 'chat.nick';

  const $ = (id) => document.getElementById(id);
  const ui = {
    joinView: $('join-view'),
    joinForm: $('join-form'),
    joinHost: $('join-host'),
    nick: $('nick'),
    nickError: $('nick-error'),
    join: $('join'),
    chatView: $('chat-view'),
    topbar: document.querySelector('.topbar'),
    me: $('me'),
    toggle: $('users-toggle'),
    count: $('users-count'),
    count2: $('users-count-2'),
    logWrap: document.querySelector('.log-wrap'),
    log: $('log'),
    jump: $('jump'),
    scrim: $('scrim'),
    panel: $('users-panel'),
    close: $('users-close'),
    users: $('users'),
    usersEmpty: $('users-empty'),
    status: $('status'),
    statusState: $('status-state'),
    statusRtt: $('status-rtt'),
    statusLost: $('status-lost'),
    statusHost: $('status-host'),
    retry: $('retry'),
    sendForm: $('send-form'),
    input: $('input'),
  };

  const now = () => performance.now();
  const host = location.host;
  const wsUrl = () => (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';

  // ---- text rules (common/text.cpp, common/protocol.cpp) ---------------------------------

  function nickProblem(nick) {
    if (nick.length === 0) return 'a nickname needs 1 to 24 characters';
    if (!/^[A-Za-z0-9_!-]+$/.test(nick)) return 'only A-Z a-z 0-9 _ ! - are allowed';
    if (nick.length > MAX_NICK) return 'longer than 24 characters';
    return null;
  }

  // Nicknames are unique ignoring ASCII case.
  const fold = (nick) => nick.replace(/[A-Z]/g, (c) => c.toLowerCase());
  const mine = (nick) => S.nick !== '' && fold(nick) === fold(S.nick);

  // C0 but TAB, DEL, C1: the server refuses a line holding one (bad-char).
  const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/;

  // Splits at the first space: ["SAY", "hello world"]; the rest keeps its inner spacing.
  function splitWord(s) {
    const sp = s.indexOf(' ');
    return sp < 0 ? [s, ''] : [s.slice(0, sp), s.slice(sp + 1)];
  }

  // "alice", "alice_", "alice_2", ... shortened to stay a valid nickname (client/reconnect.cpp).
  function ghostNick(nick, n) {
    if (n <= 0) return nick;
    const suffix = n === 1 ? '_' : '_' + n;
    return nick.slice(0, MAX_NICK - suffix.length) + suffix;
  }

  // The words people read, from /wording.js: the tables of common/wording.cpp, the same the
  // server's text mode, chatclient and chatclient-qt use. In a phrase {nick}, {detail}, {quiet}
  // and {code} are filled in, and a [part] is left out when a placeholder in it is empty (fill()
  // does what common/wording.cpp's fill() does). The protocol's detail (which server thread
  // noticed, when) is shown on request: a hover, or a tap on the line.
  const WORDING = typeof CHAT_WORDING === 'object' ? CHAT_WORDING : { leave: {}, bye: {}, lost: {}, refusal: {} };

  function fill(words, values) {
    const plain = (text, seen) => text.replace(/\{(\w+)\}/g, (_, name) => {
      const value = values[name] || '';
      if (!value) seen.complete = false;
      return value;
    });
    let out = '';
    let rest = words;
    const whole = { complete: true }; // every placeholder outside brackets has a value
    for (;;) {
      const open = rest.indexOf('[');
      const close = open < 0 ? -1 : rest.indexOf(']', open);
      if (close < 0) {
        out += plain(rest, whole);
        return whole.complete ? out : '';
      }
      out += plain(rest.slice(0, open), whole);
      const seen = { complete: true };
      const part = plain(rest.slice(open + 1, close), seen);
      if (seen.complete) out += part;
      rest = rest.slice(close + 1);
    }
  }

  // The phrase for `key` in one of the tables (its fallback, key '', when unknown), filled.
  function say(table, key, values) {
    const phrases = WORDING[table] || {};
    for (const k of [key, '']) {
      if (!Object.prototype.hasOwnProperty.call(phrases, k)) continue;
      const words = fill(phrases[k], values);
      if (words) return words;
    }
    return values.code || key;
  }

  // "16 s" from "... (poller, 16.2 s after last traffic)" (common/wording.cpp: quiet_time).
  function quietTime(detail) {
    const m = /, ([0-9.]+) (ms|s) after last traffic\)$/.exec(detail || '');
    if (!m) return '';
    if (m[2] === 'ms') return `${m[1]} ms`;
    const seconds = Number(m[1]);
    return Number.isFinite(seconds) && seconds < 1e7 ? `${Math.round(seconds)} s` : '';
  }

  const leaveWords = (nick, cause, detail) =>
    say('leave', cause, { nick, detail: cause === 'quit' ? detail : '', quiet: quietTime(detail), code: cause });
  const byeWords = (reason, detail) => say('bye', reason, { detail: reason === 'flood' ? detail : '', code: reason });
  const lostWords = (cause, detail) => say('lost', cause, { quiet: quietTime(detail), code: cause });
  const refusalWords = (code, detail) => say('refusal', code, { detail, code });
  // What a tap or a hover shows: the protocol's token and detail.
  const details = (code, detail) => code + (detail ? ': ' + detail : '');
  const sentence = (words) => words.charAt(0).toUpperCase() + words.slice(1) + '.';
  // The same words as chatclient says them, for a look from the browser's console (and for
  // tests/web/browser_test.py, which holds them against common/wording.cpp's).
  window.chatWords = Object.freeze({ leave: leaveWords, bye: byeWords, lost: lostWords, refusal: refusalWords });

  // A WebSocket closed without a BYE before it: [cause, detail].
  function describeClose(ev) {
    const reason = ev.reason ? ': ' + ev.reason : '';
    const words = {
      1000: 'the server closed the connection',
      1001: 'the server is going away',
      1002: 'WebSocket protocol error',
      1003: 'the server refused the data',
      1005: 'the server closed the connection',
      1006: 'the connection dropped without a goodbye',
      1007: 'the server refused the data as invalid',
      1008: 'the server refused the connection (policy)',
      1009: 'a message was too big',
      1011: 'the server hit an error',
      1012: 'the server is restarting',
      1013: 'the server is busy: try again later',
      1015: 'TLS failure',
    }[ev.code] || 'the connection was closed';
    const cause = ev.code === 1006 ? 'closed' : ev.code === 1011 || ev.code === 1002 ? 'error' : 'closed';
    return [cause, `${words}, WebSocket code ${ev.code}${reason}`];
  }

  // format_duration (common/units.cpp): "250 ms", "1.5 s".
  const formatDuration = (ms) => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);

  // ---- what the user typed (common/protocol.cpp: parse_text_input; client: /clear) --------

  function usage(text) {
    return { kind: 'error', code: 'bad-args', detail: 'usage: ' + text };
  }

  function privCommand(rest, form) {
    const [to, text] = splitWord(rest);
    if (to === '' || text === '') return usage(form);
    if (nickProblem(to)) return { kind: 'error', code: 'no-such-nick', detail: to };
    return { kind: 'send', wire: `PRIV ${to} ${text}` };
  }

  function interpret(line) {
    if (/^[ \t]*$/.test(line)) return null; // a blank line: nothing
    if (CONTROL.test(line)) return { kind: 'error', code: 'bad-char', detail: 'line contains a control character' };
    if (line.startsWith('//')) return { kind: 'send', wire: 'SAY ' + line.slice(1) };
    if (line[0] === '@') return privCommand(line.slice(1), '@<nick> <text>');
    if (line[0] !== '/') return { kind: 'send', wire: 'SAY ' + line };
    const [word, rest] = splitWord(line.slice(1));
    switch (word.toLowerCase()) {
      case 'me': return rest === '' ? usage('/me <action>') : { kind: 'send', wire: 'ME ' + rest };
      case 'msg': return privCommand(rest, '/msg <nick> <text>');
      case 'nick': {
        const problem = nickProblem(rest);
        if (problem) return { kind: 'error', code: 'bad-nick', detail: `${rest || '(empty)'}: ${problem}` };
        return { kind: 'nick', nick: rest };
      }
      case 'who':
      case 'names': return { kind: 'send', wire: 'WHO' };
      case 'quit': return { kind: 'quit', reason: rest };
      case 'help': return { kind: 'help' };
      case 'clear': return { kind: 'clear' };
      default:
        return { kind: 'error', code: 'unknown-command', detail: `/${word} (type /help for the commands)` };
    }
  }

  const HELP = [
    ['<text>', 'say something to everyone'],
    ['/me <action>', '* you do something'],
    ['/msg <nick> <text>', 'a private message (also: @nick <text>)'],
    ['/nick <new>', 'change your nickname'],
    ['/who', 'who is online'],
    ['/quit [reason]', 'leave'],
    ['//text', 'say a line that starts with /'],
    ['/clear', 'clear the conversation'],
    ['/help', 'this list'],
    ['Up / Down', 'recall what you typed'],
    ['Page Up / Down', 'scroll the conversation'],
    ['a name in the list', 'write to them privately (Esc closes the list on a phone)'],
  ];

  // ---- remembered nickname ---------------------------------------------------------------

  function loadNick() {
    try {
      return localStorage.getItem(STORAGE_KEY) || '';
    } catch {
      return '';
    }
  }

  function saveNick(nick) {
    try {
      localStorage.setItem(STORAGE_KEY, nick);
    } catch {
      // storage refused (private mode, quota): the page works without it
    }
  }

  // ---- the conversation ------------------------------------------------------------------

  let stuck = true; // the reader is at the end: new lines keep it there
  let unseen = 0; // lines that arrived while the reader looked further up
  let unread = 0; // messages that arrived while the page was hidden
  let lastDay = '';

  const pad2 = (n) => String(n).padStart(2, '0');
  const clock = (d) => `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;

  function nickClass(nick) {
    let h = 5381;
    const f = fold(nick);
    for (let i = 0; i < f.length; i++) h = ((h * 33) ^ f.charCodeAt(i)) >>> 0;
    return 'nick-' + (h % 8);
  }

  function span(cls, text) {
    const s = document.createElement('span');
    s.className = cls;
    s.textContent = text;
    return s;
  }

  const who = (nick) => span('who ' + nickClass(nick), nick);

  function atEnd() {
    return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 32;
  }

  function scrollToEnd() {
    ui.log.scrollTop = ui.log.scrollHeight;
    stuck = true;
    unseen = 0;
    ui.jump.hidden = true;
  }

  // Scrolls to the end once per frame, however many lines came: a burst of thousands of lines
  // must not lay the pane out again for each one.
  let endPending = false;
  function followEnd() {
    if (endPending) return;
    endPending = true;
    requestAnimationFrame(() => {
      endPending = false;
      if (stuck) scrollToEnd();
    });
  }

  function addDateLine(d) {
    const day = `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
    if (day === lastDay) return;
    lastDay = day;
    const div = document.createElement('div');
    div.className = 'line info date';
    div.textContent = d.toLocaleDateString(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
    ui.log.append(div);
  }

  // Adds one line: `parts` are strings (text nodes) and elements. opts: own, mention, title,
  // extra (more classes).
  function addLine(category, parts, opts = {}) {
    const d = new Date();
    const follow = stuck;
    addDateLine(d);
    const div = document.createElement('div');
    div.className = 'line ' + category + (opts.own ? ' own' : '') + (opts.mention ? ' mention' : '') +
      (opts.extra ? ' ' + opts.extra : '');
    if (opts.title) div.title = opts.title;
    if (opts.detail) {
      // The protocol's detail, on request: a hover shows it (title), a tap or Enter on the
      // line shows it under the words.
      div.title = opts.detail;
      div.classList.add('has-detail');
      div.tabIndex = 0;
      const more = document.createElement('span');
      more.className = 'detail';
      more.textContent = opts.detail;
      const toggle = () => div.classList.toggle('show-detail');
      div.addEventListener('click', toggle);
      div.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter') toggle();
      });
      parts = [...(Array.isArray(parts) ? parts : [parts]), more];
    }
    const ts = document.createElement('time');
    ts.className = 'ts';
    ts.dateTime = d.toISOString();
    ts.textContent = clock(d);
    const body = document.createElement('span');
    body.className = 'body';
    body.append(...(Array.isArray(parts) ? parts : [parts]));
    div.append(ts, ' ', body);
    ui.log.append(div);
    trimLog(follow);
    if (follow) {
      followEnd();
    } else {
      unseen++;
      ui.jump.textContent = unseen === 1 ? '1 new line below' : `${unseen} new lines below`;
      ui.jump.hidden = false;
    }
    if (document.hidden && opts.counts) {
      unread++;
      updateTitle();
    }
    return div;
  }

  // At most MAX_LINES (plus a little slack, so the trimming is done in batches); a reader who
  // scrolled back keeps looking at the same lines.
  function trimLog(follow) {
    const extra = ui.log.childElementCount - MAX_LINES;
    if (extra < 100) return;
    if (follow) {
      for (let i = 0; i < extra; i++) ui.log.firstElementChild.remove();
      return;
    }
    const before = ui.log.scrollHeight;
    const top = ui.log.scrollTop;
    for (let i = 0; i < extra; i++) ui.log.firstElementChild.remove();
    ui.log.scrollTop = Math.max(0, top - (before - ui.log.scrollHeight));
  }

  function clearLog() {
    ui.log.replaceChildren();
    lastDay = '';
    scrollToEnd();
  }

  function updateTitle() {
    const base = S.nick && !S.onForm ? `chat · ${S.nick}` : 'chat';
    document.title = unread > 0 ? `(${unread}) ${base}` : base;
  }

  function mentions(text) {
    if (!S.nick) return false;
    // "maya!" and "@maya" count: a '!' or '@' next to the name is punctuation here.
    const n = S.nick.replace(/[-!]/g, '\\$&');
    return new RegExp(`(^|[^A-Za-z0-9_-])${n}($|[^A-Za-z0-9_-])`, 'i').test(text);
  }

  // ---- who is online ---------------------------------------------------------------------

  const users = new Map(); // folded nickname -> nickname

  function renderUsers() {
    const list = [...users.values()].sort((a, b) => {
      const fa = fold(a);
      const fb = fold(b);
      return fa < fb ? -1 : fa > fb ? 1 : 0;
    });
    const focused = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.nick : undefined;
    const items = list.map((nick) => {
      const li = document.createElement('li');
      const self = mine(nick);
      const b = document.createElement(self ? 'div' : 'button');
      b.className = 'user-btn ' + nickClass(nick) + (self ? ' self' : '');
      if (!self) {
        b.type = 'button';
        b.dataset.nick = nick;
        b.title = `Write to ${nick} privately`;
        b.addEventListener('click', () => startPrivate(nick));
      }
      const avatar = span('avatar', '');
      avatar.setAttribute('aria-hidden', 'true');
      avatar.append(span('avatar-letter', nick.charAt(0).toUpperCase()));
      b.append(avatar, span('user', nick));
      if (self) b.append(span('you', '(you)'));
      li.append(b);
      return li;
    });
    ui.users.replaceChildren(...items);
    const n = String(list.length);
    ui.count.textContent = n;
    ui.count2.textContent = n;
    ui.usersEmpty.hidden = list.length > 0;
    if (focused) {
      const again = [...ui.users.querySelectorAll('button.user-btn')].find((x) => x.dataset.nick === focused);
      if (again) again.focus();
    }
  }

  function startPrivate(nick) {
    const rest = ui.input.value.replace(/^@\S* ?/, '');
    ui.input.value = `@${nick} ` + rest;
    closeDrawer(false);
    ui.input.focus();
    const end = ui.input.value.length;
    ui.input.setSelectionRange(end, end);
  }

  // ---- the drawer (a phone) --------------------------------------------------------------

  const phone = window.matchMedia('(max-width: 759px)');
  const drawerOpen = () => ui.panel.classList.contains('open');
  const outside = () => [ui.topbar, ui.logWrap, ui.status, ui.sendForm];

  function openDrawer() {
    if (!phone.matches) return;
    ui.panel.classList.add('open');
    ui.scrim.hidden = false;
    ui.toggle.setAttribute('aria-expanded', 'true');
    for (const e of outside()) e.inert = true;
    const first = ui.panel.querySelector('button.user-btn') || ui.close;
    first.focus();
  }

  function closeDrawer(returnFocus) {
    if (!drawerOpen()) return;
    ui.panel.classList.remove('open');
    ui.scrim.hidden = true;
    ui.toggle.setAttribute('aria-expanded', 'false');
    for (const e of outside()) e.inert = false;
    if (returnFocus) ui.toggle.focus();
  }

  // ---- the connection --------------------------------------------------------------------

  // phase: idle (the join form), connecting, joining (HELLO sent), joined, choosing (our
  // nickname was refused on a rejoin: /nick picks another), waiting (for the next attempt).
  const S = {
    phase: 'idle',
    onForm: true, // not joined since the form was sent: failures are shown on the form
    everJoined: false, // joined at least once since the form: losses reconnect
    wanted: '', // the nickname the user chose; a rejoin asks for it
    trying: '', // the nickname of the HELLO in flight
    nick: '', // the nickname we are known by
    ws: null,
    gen: 0, // bumped whenever a socket is dropped: its late events are ignored
    opened: false,
    ghost: 0,
    failures: 0,
    attempt: 0,
    rtt: null,
    lost: '', // why the connection was lost, in words
    failed: '', // what the last attempt to reconnect met, if it failed
    retryAt: 0,
    retryTimer: 0,
    connectTimer: 0,
    lastHeard: 0,
    lastPing: 0,
    pingSent: 0,
    pingToken: '',
    nextToken: 1,
    quitting: false,
    quitTimer: 0,
  };

  function sendLine(line) {
    if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(line);
  }

  function dropSocket() {
    S.gen++;
    clearTimeout(S.connectTimer);
    const ws = S.ws;
    S.ws = null;
    S.opened = false;
    S.pingSent = 0;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
    }
  }

  function nextDelay() {
    let base = BACKOFF_INITIAL_MS;
    for (let i = 0; i < S.failures && base < BACKOFF_CAP_MS; i++) base *= 2;
    base = Math.min(base, BACKOFF_CAP_MS);
    S.failures++;
    return Math.round(base - base * BACKOFF_JITTER * Math.random());
  }

  function connect() {
    clearTimeout(S.retryTimer);
    dropSocket();
    const gen = S.gen;
    S.phase = 'connecting';
    S.attempt = S.failures; // 0: the first try; then the retries
    S.ghost = 0;
    S.trying = S.wanted;
    let ws;
    try {
      ws = new WebSocket(wsUrl());
    } catch (e) {
      connectFailed(String(e && e.message ? e.message : e));
      return;
    }
    S.ws = ws;
    S.connectTimer = setTimeout(() => {
      if (gen === S.gen && !S.opened) connectFailed('timed out');
    }, CONNECT_TIMEOUT_MS);
    ws.onopen = () => {
      if (gen !== S.gen) return;
      clearTimeout(S.connectTimer);
      S.opened = true;
      S.phase = 'joining';
      S.lastHeard = now();
      S.lastPing = now();
      sendLine('HELLO ' + S.trying);
      render();
    };
    ws.onmessage = (ev) => {
      if (gen !== S.gen) return;
      S.lastHeard = now();
      if (typeof ev.data === 'string') handleLine(ev.data);
    };
    ws.onclose = (ev) => {
      if (gen !== S.gen) return;
      if (S.quitting) return finishQuit();
      if (!S.opened) return connectFailed('');
      const [cause, detail] = describeClose(ev);
      lost(cause, detail);
    };
    ws.onerror = () => {}; // a close event follows, with what there is to know
    render();
  }

  function connectFailed(detail) {
    dropSocket();
    if (S.onForm) return formFailed(`Could not connect to the chat server at ${host}. Try again in a moment.`);
    S.failed = 'could not connect' + (detail ? ` (${detail})` : '');
    if (!S.lost) S.lost = S.failed;
    scheduleRetry(`could not connect to ${host}` + (detail ? ` (${detail})` : ''));
  }

  // The connection is gone: say why, forget who was online (a rejoin's USERS brings the room
  // back) and try again later.
  // `goodbye`: the server said BYE, `cause` is its reason.
  function lost(cause, detail, goodbye) {
    dropSocket();
    const words = goodbye ? byeWords(cause, detail) : lostWords(cause, detail);
    if (S.onForm) return formFailed(`The connection was lost before joining: ${words}. Try again.`);
    users.clear();
    renderUsers();
    S.rtt = null;
    S.lost = words;
    S.failed = '';
    addLine('lost', `disconnected: ${words}`, { detail: details(cause, detail) });
    scheduleRetry();
  }

  // `failure`: a failed attempt to say on the same line as the next one.
  function scheduleRetry(failure) {
    const delay = nextDelay();
    S.phase = 'waiting';
    S.attempt = S.failures; // the retry to come: 1, 2, ...
    S.retryAt = now() + delay;
    if (failure) addLine('lost', `${failure}; reconnecting in ${formatDuration(delay)}`);
    else addLine('info', `reconnecting in ${formatDuration(delay)}`);
    clearTimeout(S.retryTimer);
    S.retryTimer = setTimeout(connect, delay);
    render();
  }

  function retryNow() {
    if (S.phase === 'waiting') connect();
  }

  function startQuit(reason) {
    if (S.ws && S.opened && !S.quitting) {
      S.quitting = true;
      sendLine(reason ? 'QUIT ' + reason : 'QUIT');
      clearTimeout(S.quitTimer);
      S.quitTimer = setTimeout(finishQuit, QUIT_WAIT_MS);
      render();
      return;
    }
    finishQuit();
  }

  // After /quit: back to the join form, the conversation kept for a rejoin.
  function finishQuit() {
    clearTimeout(S.quitTimer);
    clearTimeout(S.retryTimer);
    dropSocket();
    S.quitting = false;
    S.phase = 'idle';
    S.onForm = true;
    S.everJoined = false;
    S.failures = 0;
    S.rtt = null;
    S.lost = '';
    S.failed = '';
    users.clear();
    renderUsers();
    addLine('info', 'you left the chat');
    closeDrawer(false);
    render();
    showForm('You left the chat. Join again?', false);
  }

  function welcome(nick) {
    const stillTaken = S.ghost > 0 && fold(S.wanted) !== fold(nick) ? S.wanted : '';
    S.nick = nick;
    S.phase = 'joined';
    S.failures = 0;
    S.lost = '';
    S.failed = '';
    S.lastPing = -Infinity; // measure the round trip at once
    if (S.onForm) {
      S.onForm = false;
      showChat();
      addLine('info', `welcome, ${nick} (type /help for commands)`);
      ui.input.focus();
    } else {
      addLine('info', `reconnected, rejoined as ${nick}` +
        (stillTaken ? ` (${stillTaken} is still taken, probably by our old connection)` : ''));
    }
    S.everJoined = true;
    render();
  }

  // An ERROR while joining. Returns true when it was about the nickname.
  function refused(code, detail) {
    if (code !== 'nick-in-use' && code !== 'bad-nick') return false;
    if (S.everJoined && code === 'nick-in-use' && S.ghost < MAX_GHOST_TRIES) {
      S.ghost++;
      const next = ghostNick(S.wanted, S.ghost);
      addLine('info', `${S.trying} is still taken (probably by our old connection); trying ${next}`);
      S.trying = next;
      sendLine('HELLO ' + next);
      return true;
    }
    if (S.onForm) {
      dropSocket();
      formFailed(`${sentence(refusalWords(code, detail || S.trying))} Choose another nickname.`, true);
      return true;
    }
    S.phase = 'choosing';
    addLine('error', refusalWords(code, detail || S.trying), { detail: details(code, detail) });
    addLine('info', 'type /nick <name> to try another nickname, or /quit');
    render();
    return true;
  }

  function handleLine(line) {
    if (line.startsWith('#')) return; // remarks for people
    const [verb, rest] = splitWord(line);
    const [first, afterFirst] = splitWord(rest);
    const [second, afterSecond] = splitWord(afterFirst);
    switch (verb) {
      case 'PING':
        sendLine(rest ? 'PONG ' + rest : 'PONG');
        return;
      case 'PONG':
        if (S.pingSent && rest === S.pingToken) {
          S.rtt = Math.max(0, Math.ceil(now() - S.pingSent));
          S.pingSent = 0;
          render();
        }
        return;
      case 'STATS':
        return;
      case 'WELCOME':
        if (rest === '') break;
        welcome(rest);
        return;
      case 'USERS': {
        users.clear();
        for (const u of rest.split(' ')) if (u) users.set(fold(u), u);
        renderUsers();
        const names = [...users.values()];
        addLine('info', `online (${names.length}): ${names.join(' ')}`);
        return;
      }
      case 'JOIN':
        if (rest === '') break;
        users.set(fold(rest), rest);
        renderUsers();
        addLine('join', [who(rest), ' joined']);
        return;
      case 'LEAVE': {
        if (first === '' || second === '') break;
        users.delete(fold(first));
        renderUsers();
        const words = leaveWords(first, second, afterSecond);
        // Every phrase starts with the nickname, which is shown as a name.
        const parts = words.startsWith(first) ? [who(first), words.slice(first.length)] : [words];
        addLine('leave', parts, { detail: details(second, afterSecond) });
        return;
      }
      case 'MSG':
        if (first === '') break;
        addLine('msg', [who(first), ' ', span('text', afterFirst)],
          { own: mine(first), mention: !mine(first) && mentions(afterFirst), counts: !mine(first) });
        return;
      case 'ME':
        if (first === '') break;
        addLine('me', ['* ', who(first), ' ', span('text', afterFirst)],
          { own: mine(first), mention: !mine(first) && mentions(afterFirst), counts: !mine(first) });
        return;
      case 'PRIV': {
        if (first === '' || second === '') break;
        const out = mine(first);
        const tag = span('tag', 'private');
        const parts = out
          ? [tag, ' you → ', span('who', second), ': ', span('text', afterSecond)]
          : [tag, ' ', span('who', first), ' → you: ', span('text', afterSecond)];
        addLine(out ? 'priv-out' : 'priv-in', parts, { title: `private: ${first} -> ${second}`, counts: !out });
        return;
      }
      case 'NICK': {
        if (first === '' || second === '') break;
        const key = fold(first);
        if (users.has(key)) {
          users.delete(key);
          users.set(fold(second), second);
        }
        if (mine(first)) {
          S.nick = second;
          S.wanted = second;
          saveNick(second);
          addLine('info', `you are now known as ${second}`);
        } else {
          addLine('info', [who(first), ' is now known as ', who(second)]);
        }
        renderUsers();
        render();
        return;
      }
      case 'ERROR': {
        if (first === '') break;
        if ((S.phase === 'joining' || S.phase === 'choosing') && refused(first, afterFirst)) return;
        addLine('error', refusalWords(first, afterFirst), { detail: details(first, afterFirst) });
        return;
      }
      case 'BYE': {
        if (first === '') break;
        if (S.quitting) return finishQuit(); // the goodbye we asked for
        if (S.onForm) {
          dropSocket();
          return formFailed(sentence(byeWords(first, afterFirst)));
        }
        lost(first, afterFirst, true);
        return;
      }
      default:
        break;
    }
    addLine('error', 'unrecognised line from server: ' + line);
  }

  // Twice a second: our PING for the round-trip time, the check that the server still
  // answers, and the countdown.
  function tick() {
    const t = now();
    if (S.ws && S.opened && !S.quitting) {
      if (S.pingSent) {
        if (t - S.pingSent >= PONG_TIMEOUT_MS) {
          if (S.lastHeard < S.pingSent) {
            // Said as the server's detectors say it, so that the words can tell how long.
            lost('timeout', `no reply to PING within ${formatDuration(PONG_TIMEOUT_MS)} ` +
              `(page, ${formatDuration(t - S.lastHeard)} after last traffic)`);
            return;
          }
          S.pingSent = 0; // it is talking, just not answering this PING: alive
        }
      } else if (t - S.lastPing >= PING_EVERY_MS) {
        S.pingToken = 'w' + S.nextToken++;
        S.pingSent = t;
        S.lastPing = t;
        sendLine('PING ' + S.pingToken);
      }
    }
    if (S.phase === 'waiting') {
      if (t >= S.retryAt + 1000) connect(); // a timer held back in a hidden tab
      else renderStatus();
    }
  }

  // ---- the screens -----------------------------------------------------------------------

  function showChat() {
    ui.joinView.hidden = true;
    ui.chatView.hidden = false;
    unread = 0;
    render();
    scrollToEnd();
  }

  function showForm(message, isError) {
    ui.chatView.hidden = true;
    ui.joinView.hidden = false;
    ui.join.disabled = false;
    ui.join.textContent = 'Join';
    ui.nickError.textContent = message || '';
    ui.nickError.classList.toggle('join-note', !isError);
    ui.nick.value = S.wanted || ui.nick.value;
    ui.nick.focus();
    ui.nick.select();
    updateTitle();
  }

  // badNick: the nickname itself was refused (not the connection).
  function formFailed(message, badNick = false) {
    S.phase = 'idle';
    if (badNick) ui.nick.setAttribute('aria-invalid', 'true');
    showForm(message, true);
  }

  function submitJoin(ev) {
    ev.preventDefault();
    if (S.phase !== 'idle') return;
    const nick = ui.nick.value.trim();
    const problem = nickProblem(nick);
    if (problem) {
      ui.nick.setAttribute('aria-invalid', 'true');
      ui.nickError.classList.remove('join-note');
      ui.nickError.textContent = `${nick === '' ? 'Type a nickname' : 'Not a nickname'}: ${problem}.`;
      ui.nick.focus();
      return;
    }
    ui.nick.removeAttribute('aria-invalid');
    ui.nickError.textContent = '';
    saveNick(nick);
    S.wanted = nick;
    S.nick = '';
    S.onForm = true;
    S.everJoined = false;
    S.failures = 0;
    ui.join.disabled = true;
    ui.join.textContent = 'Joining…';
    connect();
  }

  // The status bar is a live region: text that did not change is not written again (a screen
  // reader would read it again).
  function setText(element, text) {
    if (element.textContent !== text) element.textContent = text;
  }

  function renderStatus() {
    let state;
    switch (S.phase) {
      case 'connecting': state = S.attempt > 0 ? `reconnecting (attempt ${S.attempt})` : 'connecting'; break;
      case 'joining': state = `joining as ${S.trying}`; break;
      case 'joined': state = S.quitting ? 'leaving' : 'connected'; break;
      case 'choosing': state = 'nickname refused: /nick <name>'; break;
      case 'waiting': {
        const left = Math.max(0, Math.ceil((S.retryAt - now()) / 1000));
        state = `reconnecting in ${left} s (attempt ${S.attempt})`;
        break;
      }
      default: state = 'disconnected';
    }
    ui.status.className = 'status st-' + S.phase;
    setText(ui.statusState, state);
    setText(ui.statusRtt, S.phase === 'joined' ? (S.rtt === null ? 'rtt ?' : `rtt ${S.rtt} ms`) : '');
    let lostText = '';
    if (S.phase !== 'joined' && S.lost) {
      lostText = `lost: ${S.lost}`;
      if (S.failed && S.failed !== S.lost) lostText += ` · last attempt: ${S.failed}`;
    }
    setText(ui.statusLost, lostText);
    ui.retry.hidden = S.phase !== 'waiting';
  }

  function render() {
    ui.me.textContent = S.nick || S.wanted;
    ui.usersEmpty.textContent = S.phase === 'joined' ? 'Nobody here' : 'Not in the room';
    renderStatus();
    updateTitle();
  }

  // ---- the input line --------------------------------------------------------------------

  const history = [];
  let historyPos = 0;
  let draft = '';

  function remember(line) {
    if (line !== '' && history[history.length - 1] !== line) {
      history.push(line);
      if (history.length > MAX_HISTORY) history.shift();
    }
    historyPos = history.length;
    draft = '';
  }

  function recall(text) {
    ui.input.value = text;
    const end = text.length;
    ui.input.setSelectionRange(end, end);
  }

  function onInputKey(ev) {
    if (ev.isComposing || ev.altKey || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
    if (ev.key === 'ArrowUp') {
      if (historyPos === 0) return;
      if (historyPos === history.length) draft = ui.input.value;
      historyPos--;
      recall(history[historyPos]);
      ev.preventDefault();
    } else if (ev.key === 'ArrowDown') {
      if (historyPos >= history.length) return;
      historyPos++;
      recall(historyPos === history.length ? draft : history[historyPos]);
      ev.preventDefault();
    } else if (ev.key === 'PageUp' || ev.key === 'PageDown') {
      ui.log.scrollBy(0, (ev.key === 'PageUp' ? -1 : 1) * Math.max(40, ui.log.clientHeight - 40));
      ev.preventDefault();
    }
  }

  function submitInput(ev) {
    ev.preventDefault();
    const line = ui.input.value;
    const action = interpret(line);
    if (!action) return;
    remember(line);
    const clear = () => { ui.input.value = ''; };
    switch (action.kind) {
      case 'error':
        clear();
        addLine('error', refusalWords(action.code, action.detail));
        break;
      case 'help':
        clear();
        addLine('info', 'commands:');
        for (const [what, does] of HELP) addLine('info', [span('cmd', what), ' ', does], { extra: 'help' });
        break;
      case 'clear':
        clear();
        clearLog();
        break;
      case 'quit':
        clear();
        startQuit(action.reason);
        break;
      case 'nick':
        if (S.phase === 'choosing') {
          clear();
          S.wanted = action.nick;
          S.trying = action.nick;
          S.ghost = 0;
          saveNick(action.nick);
          S.phase = 'joining';
          sendLine('HELLO ' + action.nick);
          render();
        } else if (S.phase === 'joined') {
          clear();
          sendLine('NICK ' + action.nick);
        } else {
          addLine('error', 'not connected: not sent (it is still in the input line)');
        }
        break;
      case 'send':
        if (S.phase !== 'joined') {
          addLine('error', 'not connected: not sent (it is still in the input line)');
          break;
        }
        clear();
        sendLine(action.wire);
        break;
    }
    scrollToEnd();
  }

  // ---- wiring ----------------------------------------------------------------------------

  ui.joinHost.textContent = host;
  ui.statusHost.textContent = host;
  ui.nick.value = loadNick();
  ui.joinForm.addEventListener('submit', submitJoin);
  ui.nick.addEventListener('input', () => {
    ui.nick.removeAttribute('aria-invalid');
    ui.nickError.textContent = '';
  });
  ui.sendForm.addEventListener('submit', submitInput);
  ui.input.addEventListener('keydown', onInputKey);
  ui.toggle.addEventListener('click', () => (drawerOpen() ? closeDrawer(true) : openDrawer()));
  ui.close.addEventListener('click', () => closeDrawer(true));
  ui.scrim.addEventListener('click', () => closeDrawer(true));
  ui.retry.addEventListener('click', retryNow);
  ui.jump.addEventListener('click', () => {
    scrollToEnd();
    ui.input.focus();
  });
  // Only the reader lets go of the end, by scrolling up: a pane that merely got shorter (the
  // status bar wrapped, a phone's keyboard opened) keeps following.
  let lastTop = 0;
  ui.log.addEventListener('scroll', () => {
    const top = ui.log.scrollTop;
    if (atEnd()) {
      stuck = true;
      unseen = 0;
      ui.jump.hidden = true;
    } else if (top < lastTop) {
      stuck = false;
    }
    lastTop = top;
  }, { passive: true });
  // A phone's keyboard or a resized window: a reader at the end stays there.
  new ResizeObserver(() => {
    if (stuck) ui.log.scrollTop = ui.log.scrollHeight;
  }).observe(ui.log);
  phone.addEventListener('change', () => closeDrawer(false));
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape' && drawerOpen()) {
      ev.preventDefault();
      closeDrawer(true);
    }
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) {
      unread = 0;
      updateTitle();
      tick();
    }
  });
  window.addEventListener('online', retryNow);
  setInterval(tick, 500);

  render();
  renderUsers();
  ui.nick.focus();
  if (ui.nick.value) ui.nick.select();
})();
