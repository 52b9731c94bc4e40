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
// Ids, resume and history (docs/protocol.md, "Ids, resume and history"): the page joins with
// `HELLO <nick> ids`, so every room event and private message comes tagged `@<id>/<ms> <line>`
// and the server hands out a resume TOKEN. The page keeps the token and the highest id it has
// seen; after a lost connection it sends `RESUME <token> <last id>` and the server replays what
// was missed, each event once. Earlier events (on joining, on resuming, when the reader
// scrolls to the top, and /search's answers) are shown as history: dimmed, at their own time,
// between separators.
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
  const MAX_HISTORY = 200; // lines typed, kept for Up / Down (not the room's history)
  const STORAGE_KEY = 'chat.nick';
  const SESSION_KEY = 'chat.session'; // the resume token and the last id, for a reload (sessionStorage)
  const PAGE_SIZE = 50; // events asked for at a time when the reader scrolls back (HISTORY BEFORE)
  const NEAR_TOP_PX = 48; // this close to the top of the conversation, scrolling up loads more

  const $ = (id) => document.getElementById(id);
  const ui = {
    joinView: $('join-view'),
    joinForm: $('join-form'),
    joinHost: $('join-host'),
    nick: $('nick'),
    nickError: $('nick-error'),
    password: $('password'),
    passwordRow: $('password-row'),
    join: $('join'),
    chatView: $('chat-view'),
    topbar: document.querySelector('.topbar'),
    me: $('me'),
    toggle: $('users-toggle'),
    count: $('users-count'),
    count2: $('users-count-2'),
    logWrap: document.querySelector('.log-wrap'),
    log: $('log'),
    more: $('more'),
    moreButton: $('more-button'),
    moreNote: $('more-note'),
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
    say('leave', cause, {
      nick,
      detail: ['quit', 'kicked', 'banned', 'instance-lost'].includes(cause) ? detail : '',
      quiet: quietTime(detail),
      code: cause,
    });
  const byeWords = (reason, detail) =>
    say('bye', reason, { detail: ['flood', 'kicked', 'banned', 'tls-required'].includes(reason) ? detail : '', code: reason });
  const lostWords = (cause, detail) => say('lost', cause, { quiet: quietTime(detail), code: cause });
  const refusalWords = (code, detail) => say('refusal', code, { detail, code });
  // What a tap or a hover shows: the protocol's token and detail.
  const details = (code, detail) => code + (detail ? ': ' + detail : '');
  const sentence = (words) => words.charAt(0).toUpperCase() + words.slice(1) + '.';
  // The same words as chatclient says them, for a look from the browser's console (and for
  // tests/web/browser_test.py, which holds them against common/wording.cpp's).
  window.chatWords = Object.freeze({
    leave: leaveWords, bye: byeWords, lost: lostWords, refusal: refusalWords, away: awayTime, missed: missedWords,
  });

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

  // How long someone was away, from the milliseconds of BACK and RESUMED: "41 s", "3 min 5 s",
  // "2 h 10 min" (common/render.cpp: away_time, the words of chatclient and text mode).
  function awayTime(milliseconds) {
    if (!/^[0-9]{1,15}$/.test(milliseconds)) return 'a while';
    const s = Math.floor((Number(milliseconds) + 500) / 1000);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min` + (s % 60 ? ` ${s % 60} s` : '');
    const min = Math.floor((s % 3600) / 60);
    return `${Math.floor(s / 3600)} h` + (min ? ` ${min} min` : '');
  }

  // "12 messages you missed" (common/render.cpp: missed_words).
  function missedWords(count) {
    if (count === '0') return 'nothing you missed';
    if (count === '1') return '1 message you missed';
    return `${count} messages you missed`;
  }

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
      case 'search': return /^[ \t]*$/.test(rest) ? usage('/search <words>') : { kind: 'search', words: rest.trim() };
      // Operators (chatserver --admin-password-file): the server checks who may.
      case 'oper': return rest === '' ? usage('/oper <password>') : { kind: 'send', wire: 'OPER ' + rest };
      case 'kick': {
        const [who] = splitWord(rest);
        return who === '' ? usage('/kick <nick> [reason]') : { kind: 'send', wire: 'KICK ' + rest };
      }
      case 'ban': {
        // The duration (30s, 10m, 2h, 1d; at most 30d) is the server's to check.
        const [who, more] = splitWord(rest);
        const [length] = splitWord(more);
        return who === '' || length === ''
          ? usage('/ban <nick> <duration> [reason] (duration: 30s, 10m, 2h or 1d; at most 30d)')
          : { kind: 'send', wire: 'BAN ' + rest };
      }
      case 'unban':
        return rest === '' || rest.includes(' ') ? usage('/unban <nick or address>') : { kind: 'send', wire: 'UNBAN ' + rest };
      case 'bans': return { kind: 'send', wire: 'BANS' };
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
    ['/search <words>', 'find earlier messages holding every word'],
    ['/oper <password>', 'become an operator (a server with operators)'],
    ['/kick <nick> [reason]', 'operators: remove someone from the room'],
    ['/ban <nick> <duration> [reason]', 'operators: remove someone and keep their nickname and address out (10m, 2h, 1d)'],
    ['/unban <nick or address>', 'operators: lift a ban'],
    ['/bans', 'operators: list the bans'],
    ['/clear', 'clear the conversation'],
    ['/help', 'this list'],
    ['Up / Down', 'recall what you typed'],
    ['Page Up / Down', 'scroll the conversation; at the top, earlier messages are loaded'],
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

  // ---- the resume token, kept for a reload --------------------------------------------------

  // The token and the last id live in the page's memory (S.token, S.lastId), and a copy in
  // sessionStorage, so that reloading the tab within the resume window resumes the seat instead
  // of joining afresh: the new page finds them there and sends RESUME. sessionStorage belongs
  // to this tab alone (other tabs have their own) and is gone when the tab is closed, which is
  // what a seat is. `at` is when it was written: the window counts from the drop, and a page
  // that goes away writes it once more as it goes (pagehide).
  function saveSession() {
    try {
      if (!S.token) {
        sessionStorage.removeItem(SESSION_KEY);
        return;
      }
      sessionStorage.setItem(SESSION_KEY, JSON.stringify({
        nick: S.nick || S.wanted, token: S.token, window: S.tokenWindow, lastId: String(S.lastId), at: Date.now(),
      }));
    } catch {
      // storage refused: a reload joins afresh instead of resuming
    }
  }

  // The session a previous page of this tab left, if its window has not passed; or null.
  function loadSession() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
      if (!saved || !/^[0-9a-f]{32}$/.test(saved.token) || nickProblem(saved.nick || '') ||
          !/^[0-9]{1,20}$/.test(saved.lastId)) return null;
      if (Date.now() - saved.at > (Number(saved.window) || 0) * 1000) return null; // too late
      return saved;
    } catch {
      return null;
    }
  }

  // The seat is gone (we quit) or refused: a later connection joins afresh.
  function forgetToken() {
    S.token = '';
    saveSession();
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

  const dayKey = (d) => `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;

  // The line that names the day, above the first line of each day.
  function dateLine(d) {
    const div = document.createElement('div');
    div.className = 'line info date';
    div.dataset.day = dayKey(d);
    div.textContent = d.toLocaleDateString(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' });
    return div;
  }

  function addDateLine(d) {
    const day = dayKey(d);
    if (day === lastDay) return;
    lastDay = day;
    ui.log.append(dateLine(d));
  }

  // One line of the conversation, not yet placed: `parts` are strings (text nodes) and elements.
  // opts: own, mention, title, detail, extra (more classes). An event from the history also has
  // time (when it happened, from its tag), history (shown dimmed) and id (its event id: scrolling
  // back asks for what came before the oldest one shown).
  function makeLine(category, parts, opts = {}) {
    const d = opts.time || new Date();
    const div = document.createElement('div');
    div.className = 'line ' + category + (opts.own ? ' own' : '') + (opts.mention ? ' mention' : '') +
      (opts.history ? ' history' : '') + (opts.extra ? ' ' + opts.extra : '');
    if (opts.id !== undefined) div.dataset.id = String(opts.id);
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
    // An earlier event may be from another day: its full date on a hover.
    if (opts.history) ts.title = d.toLocaleString();
    const body = document.createElement('span');
    body.className = 'body';
    body.append(...(Array.isArray(parts) ? parts : [parts]));
    div.append(ts, ' ', body);
    return div;
  }

  // Puts an element at the end of the conversation: a reader at the end stays there; one who
  // scrolled back is told how many lines came below.
  function place(element, opts = {}) {
    const follow = stuck;
    ui.log.append(element);
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
    return element;
  }

  // Adds one line at the end (see makeLine for `parts` and `opts`; opts.counts: it is a message
  // to count in the tab's title while the page is hidden).
  function addLine(category, parts, opts = {}) {
    addDateLine(opts.time || new Date());
    return place(makeLine(category, parts, opts), opts);
  }

  // A separator across the conversation: "earlier messages" and "now" around events from the
  // history, the marker where what we missed starts, the head and foot of search results.
  // `kind` names it for the code (and the style): earlier, now, end, marker, note, found.
  function makeSeparator(text, kind) {
    const div = document.createElement('div');
    div.className = `line sep sep-${kind}`;
    div.append(span('sep-text', text));
    return div;
  }

  const addSeparator = (text, kind) => place(makeSeparator(text, kind));

  // At most MAX_LINES (plus a little slack, so the trimming is done in batches). A reader at the
  // end loses the oldest lines. One who scrolled back (perhaps into earlier messages just
  // loaded) keeps them until there are twice as many, and keeps looking at the same lines.
  function trimLog(follow) {
    const extra = ui.log.childElementCount - 1 - MAX_LINES; // the first child is the bar at the top
    if (extra < 100 || (!follow && extra < MAX_LINES)) return;
    const before = ui.log.scrollHeight;
    const top = ui.log.scrollTop;
    for (let i = 0; i < extra; i++) ui.more.nextElementSibling.remove();
    S.historyStart = false; // what was dropped can be loaded again
    renderMore();
    if (!follow) ui.log.scrollTop = Math.max(0, top - (before - ui.log.scrollHeight));
  }

  function clearLog() {
    ui.log.replaceChildren(ui.more);
    lastDay = '';
    S.historyStart = false;
    renderMore();
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

  // ---- earlier events: history blocks, scrolling back, search -----------------------------

  // A tagged line, "@<id>/<unix ms> <line>" (docs/protocol.md, "Joining with ids"): { id, time,
  // line }, or null. Ids are BigInts: they only grow, and may pass 2^53, past which a Number
  // would round them (and two ids could compare equal).
  function parseTag(raw) {
    const m = /^@([0-9]{1,20})\/([0-9]{1,16}) (.+)$/.exec(raw);
    if (!m) return null;
    return { id: BigInt(m[1]), time: new Date(Number(m[2])), line: m[3] };
  }

  // The oldest event of the conversation shown here (live lines and the history blocks around
  // them; search answers sit in boxes of their own and do not count): scrolling back asks for
  // what came before it. With none shown (a cleared conversation, a reload that missed nothing),
  // the last id seen stands in: "before last + 1" is the last events, that one included.
  function oldestShown() {
    const first = ui.log.querySelector(':scope > .line[data-id]');
    if (first) return { id: BigInt(first.dataset.id), line: first };
    return S.lastId > 0n ? { id: S.lastId + 1n, line: null } : null;
  }

  // The bar at the top of the conversation: a button that loads earlier messages (scrolling to
  // the top does the same), or a note that the server keeps nothing earlier.
  function renderMore() {
    ui.moreButton.hidden = S.historyStart || S.phase !== 'joined' || oldestShown() === null;
    ui.moreButton.disabled = S.loadingEarlier;
    setText(ui.moreButton, S.loadingEarlier ? 'loading earlier messages…' : 'load earlier messages');
    ui.moreNote.hidden = !S.historyStart;
  }

  // Asks for the PAGE_SIZE events before the oldest one shown; insertEarlier() puts the answer
  // above it. One request at a time: scrolling fires many events.
  function loadEarlier() {
    if (S.phase !== 'joined' || S.loadingEarlier || S.historyStart) return;
    const oldest = oldestShown();
    if (!oldest) return;
    S.loadingEarlier = true;
    sendLine(`HISTORY BEFORE ${oldest.id} ${PAGE_SIZE}`);
    renderMore();
  }

  // `HISTORY <what> <n> [partial]` opens a block of n tagged lines; `HISTORY END <what>` closes
  // it. What it is decides where its lines go:
  //   recent: the last events before we joined      missed: what happened while we were away
  //   before: the answer to HISTORY BEFORE          search: the answer to SEARCH
  // recent and missed are part of the live order: their ids count as seen, and a resume goes on
  // from them. before and search are answers about the past: their ids must not.
  function openBlock(what, count, partial) {
    if (S.block) closeBlock(S.block.what); // blocks never nest: one left open ends here
    S.block = { what, count, partial, shown: 0, events: [] };
    if (what === 'missed') {
      addSeparator(S.marker || `${missedWords(String(count))}`, 'marker');
      S.marker = '';
      if (partial) addLine('info', 'the oldest part of what you missed is no longer kept');
    }
  }

  function closeBlock(what) {
    const block = S.block;
    if (!block || block.what !== what) return; // an END without its start: nothing to close
    S.block = null;
    if (what === 'recent' || what === 'missed') {
      if (block.shown > 0) addSeparator('now', 'now');
      if (what === 'missed' && S.fillAfterResume) {
        // A reloaded tab resumed into an empty page: some context above what was missed.
        S.fillAfterResume = false;
        loadEarlier();
      }
    } else if (what === 'before') {
      insertEarlier(block);
    } else if (what === 'search') {
      showFound(block);
    }
    renderMore();
  }

  // One tagged line (a room event or a private message, with its id and time). Returns false
  // when it is not one.
  function handleTagged(raw) {
    const tag = parseTag(raw);
    if (!tag) return false;
    const block = S.block;
    if (block && (block.what === 'before' || block.what === 'search')) {
      block.events.push(tag); // an answer about the past: shown when the block ends
      return true;
    }
    // Live, or in a recent / missed block: in id order, each once. One whose id we have seen
    // already is dropped: the server never repeats one, and this keeps a mistake (ours or its)
    // from showing a line twice at the seam of a resume.
    if (tag.id <= S.lastId) return true;
    S.lastId = tag.id;
    saveSession();
    if (block) {
      // After a rejoin (not a resume) the recent events may be on the screen already, from
      // before the connection was lost: those are not shown again.
      if (tag.id <= S.shownId) return true;
      S.shownId = tag.id;
      if (block.shown++ === 0 && block.what === 'recent') {
        addSeparator('earlier messages' + (block.partial ? ' (older ones are no longer kept)' : ''), 'earlier');
      }
      const view = describe(tag.line, false);
      if (view) addLine(view.category, view.parts, { ...view.opts, time: tag.time, id: tag.id, history: true, counts: false });
      return true;
    }
    S.shownId = tag.id;
    if (!liveEvent(tag.line, { id: tag.id })) addLine('error', 'unrecognised line from server: ' + raw);
    if (ui.moreButton.hidden && !S.historyStart) renderMore(); // the first id: there is an "earlier"
    return true;
  }

  // The elements for a block of earlier events: a date line where the day changes, each event
  // dimmed at its own time. `ids`: keep the events' ids on the lines (not for search answers).
  // Returns { lines, lastDay } (the day of the last one).
  function historyLines(events, ids) {
    const out = [];
    let day = '';
    for (const e of events) {
      const view = describe(e.line, false);
      if (!view) continue;
      if (dayKey(e.time) !== day) {
        day = dayKey(e.time);
        out.push(dateLine(e.time));
      }
      out.push(makeLine(view.category, view.parts,
        { ...view.opts, time: e.time, history: true, ...(ids ? { id: e.id } : {}) }));
    }
    return { lines: out, lastDay: day };
  }

  // The day of the last date line above `element` (above the end when it is null), or ''.
  function dayAbove(element) {
    let e = element ? element.previousElementSibling : ui.log.lastElementChild;
    while (e && !e.classList.contains('date')) e = e.previousElementSibling;
    return e ? e.dataset.day : '';
  }

  // Runs change(), which alters the conversation above `anchor`, and scrolls by as much as that
  // moves `anchor` on the screen: the reader keeps looking at the same lines (the log has
  // overflow-anchor: none, so the browser does not do it for us). A reader at the end stays there.
  function keepInPlace(anchor, change) {
    const before = anchor ? anchor.getBoundingClientRect().top : 0;
    change();
    if (stuck) followEnd();
    else if (anchor) ui.log.scrollTop += anchor.getBoundingClientRect().top - before;
  }

  // The answer to HISTORY BEFORE: the events just before the oldest shown, put above it.
  function insertEarlier(block) {
    S.loadingEarlier = false;
    // Fewer than asked for: that is the start of what the server keeps.
    if (block.count < PAGE_SIZE) S.historyStart = true;
    const oldest = oldestShown();
    // All older than the oldest shown, by the protocol; one that is not would show twice.
    const events = block.events.filter((e) => !oldest || e.id < oldest.id);
    keepInPlace(oldest && oldest.line, () => {
      if (events.length > 0) putAbove(oldest && oldest.line, events);
      renderMore(); // the bar at the top changes too: "loading…", or the start of the history
    });
  }

  // Puts earlier events above `oldest` (the oldest line shown; null: at the end), under an
  // "earlier messages" separator, and above the date line and separators that head it (its own
  // "earlier messages", or the marker where what we missed starts).
  function putAbove(oldest, events) {
    const { lines, lastDay: fragmentDay } = historyLines(events, true);
    let at = oldest;
    const heads = (e) => e && e !== ui.more && (e.classList.contains('date') || e.classList.contains('sep'));
    while (at && heads(at.previousElementSibling)) at = at.previousElementSibling;
    // Above earlier messages already shown: one run of history under one "earlier messages"
    // separator (theirs goes, ours heads both), and one date line per day.
    const continues = at !== null && at.classList.contains('sep-earlier');
    if (continues) {
      const next = at.nextElementSibling;
      at.remove();
      at = next;
    }
    if (at && at.classList.contains('date') && at.dataset.day === fragmentDay) {
      const next = at.nextElementSibling;
      at.remove();
      at = next;
    }
    // The day of their first line may be named just above already.
    if (lines.length > 0 && lines[0].dataset.day === dayAbove(at)) lines.shift();
    const fragment = document.createDocumentFragment();
    fragment.append(makeSeparator('earlier messages', 'earlier'), ...lines);
    // Below them: a line that is no separator (a live line, a date) needs one to end the run.
    if (!at) fragment.append(makeSeparator('now', 'now'));
    else if (!continues && !at.classList.contains('sep')) fragment.append(makeSeparator('end of earlier messages', 'end'));
    ui.log.insertBefore(fragment, at); // at null: at the end
    if (!at) lastDay = fragmentDay;
  }

  // The answer to SEARCH: the messages found, oldest first, in a box of their own at the end of
  // the conversation, from "found 7 for …" to "end of search": answers, not part of the talk.
  function showFound(block) {
    const words = S.searches.shift() || '';
    const box = document.createElement('div');
    box.className = 'found';
    box.setAttribute('role', 'group');
    const head = block.events.length === 0 ? `found nothing for “${words}”` : `found ${block.events.length} for “${words}”`;
    box.setAttribute('aria-label', head);
    box.append(makeSeparator(head, 'found'), ...historyLines(block.events, false).lines,
      makeSeparator('end of search', 'found'));
    place(box);
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

  // phase: idle (the join form), connecting, joining (HELLO sent), resuming (RESUME sent),
  // joined, choosing (our nickname was refused on a rejoin: /nick picks another), waiting (for
  // the next attempt).
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
    // Ids and resuming (docs/protocol.md, "Ids, resume and history"):
    token: '', // the resume token of our seat ('' when we hold none)
    tokenWindow: 0, // how long the server holds the seat after a drop, in seconds
    lastId: 0n, // the highest id of a tagged line seen live (or in a recent / missed block)
    shownId: 0n, // the highest id shown on this page: a rejoin does not show those again
    block: null, // the HISTORY block being received: { what, count, partial, shown, events }
    loadingEarlier: false, // a HISTORY BEFORE is on its way
    historyStart: false, // the server keeps nothing before the oldest line shown
    searches: [], // the words of each SEARCH not yet answered, oldest first
    fillAfterResume: false, // a reloaded tab resumed: load what came before the missed part
    marker: '', // after RESUMED: "away 41 s, 12 messages you missed", shown where they start
    password: '', // the room's password, once the server asked for one (memory only)
  };

  function sendLine(line) {
    if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(line);
  }

  // The room password (chatserver --password-file), if the server asked for one: before each
  // HELLO or RESUME. Kept in this tab's memory only, never stored.
  function pass() {
    if (S.password) sendLine(`PASS ${S.password}`);
  }

  // Joining always asks for ids: tagged lines, a resume token, and the recent history.
  function hello(nick) {
    pass();
    sendLine(`HELLO ${nick} ids`);
  }

  // ERROR bad-password: back to the form, which now asks for the room's password too.
  function passwordRefused() {
    const had = S.password !== '';
    dropSocket();
    S.password = '';
    S.onForm = true;
    ui.passwordRow.hidden = false;
    formFailed(had ? 'Wrong password: try again.' : 'This room has a password: type it below.');
    ui.password.value = '';
    ui.password.focus();
  }

  function dropSocket() {
    S.gen++;
    clearTimeout(S.connectTimer);
    const ws = S.ws;
    S.ws = null;
    S.opened = false;
    S.pingSent = 0;
    // Answers still on their way over this socket will not come.
    S.block = null;
    S.loadingEarlier = false;
    S.searches.length = 0;
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
      S.lastHeard = now();
      S.lastPing = now();
      if (S.token) {
        // We held a seat: ask for it back, with everything after the last event we saw.
        S.phase = 'resuming';
        pass();
        sendLine(`RESUME ${S.token} ${S.lastId}`);
      } else {
        S.phase = 'joining';
        hello(S.trying);
      }
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
    forgetToken(); // after QUIT the server keeps no seat for us
    S.fillAfterResume = false;
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

  // In the room as `nick`, by WELCOME or by RESUMED: the reconnect state starts over.
  function seated(nick) {
    S.nick = nick;
    S.phase = 'joined';
    S.failures = 0;
    S.lost = '';
    S.failed = '';
    S.lastPing = -Infinity; // measure the round trip at once
  }

  function welcome(nick) {
    const stillTaken = S.ghost > 0 && fold(S.wanted) !== fold(nick) ? S.wanted : '';
    // A new session: its tagged lines come in order from its recent block on, whatever ids the
    // previous one saw (shownId still hides those already on the screen).
    S.lastId = 0n;
    S.fillAfterResume = false;
    seated(nick);
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

  // RESUMED <nick> <ms away> <missed>: the server kept our seat. The marker line says where
  // what we missed starts; the HISTORY missed block that follows brings it, then live lines.
  function resumed(nick, ms, missed) {
    seated(nick);
    if (S.onForm) {
      // A reloaded tab: the conversation is empty, so some of what came before is loaded too.
      S.onForm = false;
      S.fillAfterResume = true;
      showChat();
      ui.input.focus();
    }
    addLine('info', `welcome back, ${nick}`);
    // The marker goes where the missed part starts: at its HISTORY line, after USERS.
    S.marker = `away ${awayTime(ms)}, ${missedWords(/^[0-9]+$/.test(missed) ? missed : '0')}`;
    S.everJoined = true;
    saveSession();
    render();
  }

  // RESUME refused: the window passed, the token was used already, or it is not one. Forget it
  // and join afresh, as a page that never had one: the seat is gone, so the nickname is free
  // again (unless someone took it meanwhile: then the ghost retries below take over).
  function resumeRefused(code, detail) {
    forgetToken();
    addLine('info', refusalWords('bad-token', detail), { detail: details(code, detail) });
    S.phase = 'joining';
    hello(S.trying);
    render();
  }

  // An ERROR while joining. Returns true when it was about the nickname (or a ban: banned, of
  // the nickname or of the address; trying the same again would be refused again).
  function refused(code, detail) {
    if (!['nick-in-use', 'nick-held', 'bad-nick', 'banned'].includes(code)) return false;
    // nick-held: the server keeps the nickname for a seat that may be resumed, most likely our
    // own old one whose token we lost; like nick-in-use, a suffixed nickname gets us back in.
    if (S.everJoined && (code === 'nick-in-use' || code === 'nick-held') && S.ghost < MAX_GHOST_TRIES) {
      S.ghost++;
      const next = ghostNick(S.wanted, S.ghost);
      addLine('info', `${S.trying} is still taken (probably by our old connection); trying ${next}`);
      S.trying = next;
      hello(next);
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

  // What a room event or private message looks like: { category, parts, opts } for addLine, or
  // null for a line that is not one. `live`: it happens now, so our own nickname change is said
  // as "you are now known as"; an event from the history is said the same way for everyone.
  // Nothing here changes the page's state: history must not (who is online comes from USERS).
  function describe(line, live) {
    const view = (category, parts, opts = {}) => ({ category, parts, opts });
    // A room notice from the server ("# ..."): for people, as it is.
    if (line.startsWith('#')) return view('info', line.replace(/^# ?/, ''));
    const [verb, rest] = splitWord(line);
    const [first, afterFirst] = splitWord(rest);
    const [second, afterSecond] = splitWord(afterFirst);
    switch (verb) {
      case 'JOIN':
        return rest === '' ? null : view('join', [who(rest), ' joined']);
      case 'BACK': // someone's connection dropped and they resumed their seat
        return first === '' ? null : view('join', [who(first), ` is back (away ${awayTime(second)})`]);
      case 'LEAVE': {
        if (first === '' || second === '') return null;
        const words = leaveWords(first, second, afterSecond);
        // Every phrase starts with the nickname, which is shown as a name.
        const parts = words.startsWith(first) ? [who(first), words.slice(first.length)] : [words];
        return view('leave', parts, { detail: details(second, afterSecond) });
      }
      case 'MSG':
        if (first === '') return null;
        return view('msg', [who(first), ' ', span('text', afterFirst)],
          { own: mine(first), mention: !mine(first) && mentions(afterFirst), counts: !mine(first) });
      case 'ME':
        if (first === '') return null;
        return view('me', ['* ', who(first), ' ', span('text', afterFirst)],
          { own: mine(first), mention: !mine(first) && mentions(afterFirst), counts: !mine(first) });
      case 'PRIV': {
        if (first === '' || second === '') return null;
        const out = mine(first);
        const tag = span('tag', 'private');
        const parts = out
          ? [tag, ' you → ', span('who', second), ': ', span('text', afterSecond)]
          : [tag, ' ', span('who', first), ' → you: ', span('text', afterSecond)];
        return view(out ? 'priv-out' : 'priv-in', parts, { title: `private: ${first} -> ${second}`, counts: !out });
      }
      case 'NICK':
        if (first === '' || second === '') return null;
        if (live && mine(first)) return view('info', `you are now known as ${second}`);
        return view('info', [who(first), ' is now known as ', who(second)]);
      default:
        return null;
    }
  }

  // A room event or private message as it happens: what it changes (who is online, our own
  // nickname), then its line. `opts` go to the line (the event's id). False: not an event.
  function liveEvent(line, opts = {}) {
    const view = describe(line, true);
    if (!view) return false;
    const [verb, rest] = splitWord(line);
    const [first, afterFirst] = splitWord(rest);
    const [second] = splitWord(afterFirst);
    switch (verb) {
      case 'JOIN':
        users.set(fold(rest), rest);
        renderUsers();
        break;
      case 'BACK':
        users.set(fold(first), first);
        renderUsers();
        break;
      case 'LEAVE':
        users.delete(fold(first));
        renderUsers();
        break;
      case 'NICK': {
        const key = fold(first);
        if (users.has(key)) {
          users.delete(key);
          users.set(fold(second), second);
        }
        if (mine(first)) {
          S.nick = second;
          S.wanted = second;
          saveNick(second);
          saveSession();
        }
        renderUsers();
        render();
        break;
      }
      default:
        break;
    }
    addLine(view.category, view.parts, { ...view.opts, ...opts });
    return true;
  }

  function handleLine(line) {
    if (line.startsWith('@')) {
      if (!handleTagged(line)) addLine('error', 'unrecognised line from server: ' + line);
      return;
    }
    // Remarks for people: before joining, the greeting and hints (not shown); once in the room,
    // a remark about this server for its members alone (the room is split from the other
    // servers, a line not sent), shown as it is.
    if (line.startsWith('#')) {
      if (S.phase === 'joined') addLine('info', line.replace(/^# ?/, ''));
      return;
    }
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
      case 'RESUMED': // RESUMED <nick> <ms away> <missed>
        if (first === '') break;
        resumed(first, second, afterSecond);
        return;
      case 'TOKEN': // TOKEN <token> <window in seconds>: kept to resume after a drop
        if (first === '') break;
        S.token = first;
        S.tokenWindow = Number(second) || 0;
        saveSession();
        return;
      case 'USERS': {
        users.clear();
        for (const u of rest.split(' ')) if (u) users.set(fold(u), u);
        renderUsers();
        const names = [...users.values()];
        addLine('info', `online (${names.length}): ${names.join(' ')}`);
        return;
      }
      case 'HISTORY': // HISTORY <what> <n> [partial] ... HISTORY END <what>
        if (first === 'END') {
          closeBlock(second);
          return;
        }
        if (first === '' || !/^[0-9]+$/.test(second)) break;
        openBlock(first, Number(second), afterSecond === 'partial');
        return;
      case 'ERROR': {
        if (first === '') break;
        if (first === 'bad-password' && S.phase !== 'joined') return passwordRefused();
        if (S.phase === 'resuming' && first === 'banned') {
          // The seat's nickname (or our address) is banned: joining afresh as it would be too.
          forgetToken();
          S.phase = 'joining';
        }
        if (S.phase === 'resuming') return resumeRefused(first, afterFirst);
        if ((S.phase === 'joining' || S.phase === 'choosing') && refused(first, afterFirst)) return;
        if (first === 'no-history') {
          // A HISTORY BEFORE or SEARCH the server cannot answer now: nothing more will come.
          S.loadingEarlier = false;
          S.searches.length = 0;
          renderMore();
        }
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
        // A room event without a tag (from a server that does not give ids).
        if (liveEvent(line)) return;
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
    if (!ui.passwordRow.hidden) S.password = ui.password.value;
    saveNick(nick);
    if (S.token && fold(nick) !== fold(S.wanted)) forgetToken(); // a seat is resumed under its own name
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
      case 'resuming': state = `resuming as ${S.nick || S.trying}`; break;
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
    renderMore();
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
          hello(action.nick);
          render();
        } else if (S.phase === 'joined') {
          clear();
          sendLine('NICK ' + action.nick);
        } else {
          addLine('error', 'not connected: not sent (it is still in the input line)');
        }
        break;
      case 'search':
        if (S.phase !== 'joined') {
          addLine('error', 'not connected: not sent (it is still in the input line)');
          break;
        }
        clear();
        S.searches.push(action.words); // for the head of its answer ("found 3 for …")
        sendLine('SEARCH ' + action.words);
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
  ui.moreButton.addEventListener('click', loadEarlier);
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
    // Scrolling up to the top loads earlier messages, as the button there does; they go in
    // above and the position moves down by as much, so this fires again only on more scrolling.
    // A pane that cannot scroll was not scrolled: its content shrank (/clear), and the reader
    // who wants more has the button.
    const scrolls = ui.log.scrollHeight > ui.log.clientHeight;
    if (scrolls && top < lastTop && top <= NEAR_TOP_PX) loadEarlier();
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
  // The tab is going away (a reload, a closed tab, a page in the back/forward cache): the
  // resume window starts about now, so the saved session says so.
  window.addEventListener('pagehide', saveSession);
  setInterval(tick, 500);

  render();
  renderUsers();
  const saved = loadSession();
  if (saved) {
    // This tab held a seat a moment ago (a reload): resume it at once, without the form. The
    // form stays in view, busy, until RESUMED; if the server refuses the token the page joins
    // afresh with the same nickname, and if that fails the form says why.
    S.token = saved.token;
    S.tokenWindow = Number(saved.window) || 0;
    S.lastId = BigInt(saved.lastId);
    S.wanted = saved.nick;
    ui.nick.value = saved.nick;
    ui.join.disabled = true;
    ui.join.textContent = 'Resuming…';
    connect();
  } else {
    ui.nick.focus();
    if (ui.nick.value) ui.nick.select();
  }
})();
