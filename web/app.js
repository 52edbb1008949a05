/*
 * imgate chat page — plain JavaScript, no build step, no dependencies.
 *
 * What it does: picks a display name, logs in over the WebSocket (/acc), sends a heartbeat every
 * 30 s, shows who is online in the room and the room's messages. Room messages go out through
 * POST /user/sendMessageAll, private ones through POST /user/sendMessage (as goWebSocket's page
 * did); a switch sends both over the WebSocket instead (cmd sendMessageAll / sendMessage). When
 * the connection drops it reconnects with exponential backoff and says so on screen. Pushes:
 * msg (target "" = room, else private), enter, exit, and presence (big rooms: one batched push
 * per interval with joins/leaves and the exact online count).
 *
 * Nodes behind keys (README "Chat page behind keys"): /home/config says apiKeyRequired when the
 * push API wants auth.apiKey — a key for servers, which the page never has — and the page then
 * sends only over the WebSocket (the switch is hidden, a note says why). It says tokenRequired
 * when logins need a JWT: the site hands the page one in the fragment, /home/index#token=<jwt>
 * (a fragment reaches neither the server's logs nor a Referer). The page takes it out of the
 * address bar at once, keeps it in memory only, uses its `sub` as the name (locked) and sends it
 * as serviceToken with every login, reconnects included. It does not verify the token; the node
 * does. A refused token (expired, wrong key, another room) is said on screen and retried only
 * every 30 s … 5 min: the same token keeps being refused until the site issues a new one.
 *
 * Safety: every piece of text that came from the network or the user is put into the DOM with
 * textContent / createTextNode, never as HTML (goWebSocket's page had an XSS hole there), and the
 * page's Content-Security-Policy forbids inline scripts on top of that.
 *
 * URLs: the page asks GET <root>home/config for {appIds, httpUrl, webSocketUrl, apiKeyRequired?,
 * tokenRequired?} (a missing flag is false: older nodes). Empty URLs mean
 * "the page's own origin" (so it works behind a reverse proxy, also under a path prefix): HTTP
 * calls go to <root>user/…, the WebSocket to ws(s)://<host><root>acc. A configured "host:port"
 * becomes http(s)://host:port/ and ws(s)://host:port/acc, matching the page's scheme.
 * <root> is the part of the page's path before /home/ or /web/ ("/" normally).
 *
 * Test hooks (stable; tests/e2e/chat.test.mjs relies on them):
 *   [data-testid=conn-state]      data-state = connecting | connected | reconnecting | refused;
 *                                 its text: "Connecting…", "Connected", "Reconnecting…",
 *                                 "Not signed in" (no usable token, or the node refused it)
 *   [data-testid=conn-banner]     shown while not connected after a failure; explains and counts down
 *                                 (a refused token: "Your sign-in token was refused or has
 *                                 expired — reload from the site." …)
 *   [data-testid=retry-now]       button in the banner: reconnect at once
 *   [data-testid=room-name]       "Room 101"; data-app-id = the appID
 *   [data-testid=room-link]       one per configured appID, data-app-id; the current one has
 *                                 aria-current="page"
 *   [data-testid=user-list]       the online list; children [data-testid=user-item] with
 *                                 data-user = name, data-self = "true" | "false"; others contain a
 *                                 button (click = send privately to that user); own item shows "you"
 *   [data-testid=user-more]       "and N more" below the list when a big room's list is cut short
 *   [data-testid=user-count]      number of users online in the room (self included)
 *   [data-testid=messages]        the message pane; children [data-testid=message] with
 *                                 data-kind = room | private | notice,
 *                                 data-from = sender (notices: the user who entered/left, or ""),
 *                                 data-to = receiver of a private message ("" otherwise),
 *                                 data-self = "true" for messages this page sent,
 *                                 data-notice = enter | exit | info | error (notices only),
 *                                 data-status = pending | sent | undelivered | failed (own only);
 *                                 inside: [data-testid=message-sender], [data-testid=message-text],
 *                                 [data-testid=message-status]
 *   [data-testid=message-input], [data-testid=send-button]   the composer (Enter sends)
 *   [data-testid=dm-target]       name of the private-message receiver while one is chosen;
 *                                 [data-testid=dm-cancel] goes back to the room
 *   [data-testid=ws-toggle]       checkbox "Send via WebSocket" (off by default: HTTP); checked,
 *                                 disabled and hidden when the node requires an API key, with
 *                                 [data-testid=ws-only] shown instead (the reason)
 *   [data-testid=self-name]       own display name; [data-testid=name-edit] opens the name dialog:
 *                                 [data-testid=name-input], name-save, name-cancel, name-random,
 *                                 name-error (why a name is refused), name-bytes (UTF-8 byte count);
 *                                 name-edit is disabled (data-locked="true") when the name comes
 *                                 from the site's token
 *   [data-testid=people-toggle]   opens the rooms/people drawer on narrow screens
 */
(() => {
  'use strict';

  /* ---- limits and timings ---------------------------------------------------------------- */

  const NAME_MAX_BYTES = 19;        // the server refuses a userID of 20 bytes or more (1002)
  const HEARTBEAT_MS = 30000;       // the server closes after 360 s without one; goWebSocket's page beat every 30 s
  const REQUEST_TIMEOUT_MS = 10000; // a reply that takes longer means the socket is dead
  const BACKOFF_FIRST_MS = 500;     // first retry soon: a restart takes about a second
  const BACKOFF_MAX_MS = 10000;     // then double up to 10 s, so a long outage costs little
  // A refused token is refused again until the site issues a new one: retry seldom (a node that
  // was restarted with the right key lets the page back in), never in the 10-s loop above.
  const TOKEN_RETRY_FIRST_MS = 30000;
  const TOKEN_RETRY_MAX_MS = 300000;
  const MAX_MESSAGES = 500;         // the pane keeps the newest 500 entries
  const MAX_LISTED = 300;           // online users drawn in the list; the count stays exact
  const DEFAULT_APP_IDS = [101, 102, 103, 104];
  const TOKEN_REFUSED = 'Your sign-in token was refused or has expired — reload from the site.';
  const TOKEN_UNREADABLE = 'The sign-in token in the link cannot be read — reload from the site.';
  const TOKEN_MISSING = 'This chat needs a sign-in from the site: open it through the site’s link.';

  /* ---- small helpers --------------------------------------------------------------------- */

  const $ = (id) => document.getElementById(id);
  const encoder = new TextEncoder();
  const utf8Bytes = (s) => encoder.encode(s).length;

  /* Creates an element. `props` may hold className, text (set as textContent, never HTML),
     data (dataset entries), attrs (attributes) and on (event listeners). */
  function h(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    if (props.className) node.className = props.className;
    if (props.text !== undefined) node.textContent = String(props.text);
    for (const [k, v] of Object.entries(props.data || {})) node.dataset[k] = String(v);
    for (const [k, v] of Object.entries(props.attrs || {})) node.setAttribute(k, String(v));
    for (const [k, v] of Object.entries(props.on || {})) node.addEventListener(k, v);
    for (const c of children) if (c) node.append(c);
    return node;
  }

  /* "<ms timestamp>-<6 random digits>", the seq/msgID shape of goWebSocket's page. */
  function newId() {
    const r = crypto.getRandomValues(new Uint32Array(1))[0] % 1000000;
    return `${Date.now()}-${String(r).padStart(6, '0')}`;
  }

  function store(kind, key, value) {
    try {
      if (value === null) window[kind].removeItem(key); else window[kind].setItem(key, value);
    } catch { /* storage may be disabled; names then last as long as the page */ }
  }
  function load(kind, key) {
    try { return window[kind].getItem(key); } catch { return null; }
  }

  /* ---- names ----------------------------------------------------------------------------- */

  // Adjectives ≤ 7 letters, animals ≤ 8, two digits: at most 17 ASCII bytes, always a valid userID.
  const ADJECTIVES = ['Amber', 'Bold', 'Brave', 'Bright', 'Calm', 'Clever', 'Cosmic', 'Crisp',
    'Daring', 'Eager', 'Fancy', 'Fuzzy', 'Gentle', 'Golden', 'Happy', 'Jolly', 'Keen', 'Kind',
    'Lucky', 'Lunar', 'Mellow', 'Merry', 'Misty', 'Noble', 'Plucky', 'Polar', 'Quick', 'Quiet',
    'Rapid', 'Rosy', 'Rusty', 'Shiny', 'Silent', 'Snowy', 'Solar', 'Sunny', 'Swift', 'Tidy',
    'Vivid', 'Witty', 'Zesty'];
  const ANIMALS = ['Badger', 'Beaver', 'Bison', 'Crane', 'Dingo', 'Dolphin', 'Eagle', 'Falcon',
    'Ferret', 'Finch', 'Fox', 'Gecko', 'Heron', 'Ibis', 'Koala', 'Lemur', 'Lynx', 'Marmot',
    'Moose', 'Narwhal', 'Ocelot', 'Otter', 'Owl', 'Panda', 'Pelican', 'Puffin', 'Quokka',
    'Raven', 'Robin', 'Seal', 'Sparrow', 'Stoat', 'Tapir', 'Tiger', 'Toucan', 'Walrus',
    'Wombat', 'Yak', 'Zebra'];

  function randomName() {
    const r = crypto.getRandomValues(new Uint32Array(3));
    return ADJECTIVES[r[0] % ADJECTIVES.length] + ANIMALS[r[1] % ANIMALS.length] +
      String(r[2] % 100).padStart(2, '0');
  }

  /* Returns why `name` can't be a userID, or "" if it can. */
  function nameProblem(name) {
    if (!name) return 'Enter a name.';
    if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return 'Control characters are not allowed.';
    const bytes = utf8Bytes(name);
    if (bytes > NAME_MAX_BYTES) {
      return `Too long: ${bytes} bytes in UTF-8, at most ${NAME_MAX_BYTES} (about 6 Chinese characters).`;
    }
    return '';
  }

  function initials(name) {
    const caps = name.match(/[A-Z]/g);
    if (caps && caps.length >= 2) return caps[0] + caps[1];
    const chars = Array.from(name.replace(/[\s\d]/g, '') || name);
    return (chars[0] || '?').toUpperCase();
  }

  function hue(name) {
    let x = 2166136261;
    for (const c of name) x = Math.imul(x ^ c.codePointAt(0), 16777619);
    return (x >>> 0) % 360;
  }

  function avatar(name, extra = '') {
    const node = h('span', { className: `avatar ${extra}`.trim(), text: initials(name),
      attrs: { 'aria-hidden': 'true' } });
    node.style.setProperty('--hue', String(hue(name)));
    return node;
  }

  /* ---- configuration --------------------------------------------------------------------- */

  /* The page's root: the path before /home/ or /web/, so that a proxy prefix is kept. */
  function rootUrl() {
    const m = location.pathname.match(/^(.*?\/)(?:home|web)\//);
    return new URL(m ? m[1] : '/', location.href);
  }

  function configuredUrl(value, secureScheme, plainScheme) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value.replace(/\/*$/, '/');
    const scheme = location.protocol === 'https:' ? secureScheme : plainScheme;
    return `${scheme}://${value.replace(/\/*$/, '')}/`;
  }

  async function loadConfig() {
    const root = rootUrl();
    let data = {};
    try {
      const res = await fetch(new URL('home/config', root), { cache: 'no-store' });
      const body = await res.json();
      if (body && body.code === 200 && body.data && typeof body.data === 'object') data = body.data;
    } catch { /* an older server or a static copy of the page: use the defaults */ }
    const ids = Array.isArray(data.appIds)
      ? data.appIds.map(Number).filter((n) => Number.isInteger(n) && n > 0) : [];
    const httpBase = typeof data.httpUrl === 'string' && data.httpUrl
      ? configuredUrl(data.httpUrl, 'https', 'http') : root.href;
    let wsUrl;
    if (typeof data.webSocketUrl === 'string' && data.webSocketUrl) {
      wsUrl = configuredUrl(data.webSocketUrl, 'wss', 'ws');
      if (!/\/acc$/.test(new URL(wsUrl).pathname.replace(/\/$/, ''))) wsUrl += 'acc';
      else wsUrl = wsUrl.replace(/\/$/, '');
    } else {
      const u = new URL('acc', root);
      u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
      wsUrl = u.href;
    }
    return { appIds: ids.length ? ids : DEFAULT_APP_IDS, httpBase, wsUrl,
      apiKeyRequired: data.apiKeyRequired === true, tokenRequired: data.tokenRequired === true };
  }

  function appIdFromUrl(appIds) {
    const q = new URLSearchParams(location.search);
    let raw = null;
    for (const [k, v] of q) if (k.toLowerCase() === 'appid') raw = v;
    const n = Number(raw);
    return appIds.includes(n) ? n : appIds[0];
  }

  /* ---- the site's sign-in token ---------------------------------------------------------- */

  /* Takes `token` out of the fragment (#token=<jwt>, other fragment parameters stay) and out of
     the address bar, so that it is not bookmarked, copied or shown. Returns the token, "" for an
     empty one, or null if the fragment has none. */
  function takeTokenFromUrl() {
    const frag = location.hash.replace(/^#/, '');
    if (!frag) return null;
    const params = new URLSearchParams(frag);
    if (!params.has('token')) return null;
    const token = params.get('token') || '';
    params.delete('token');
    const rest = params.toString();
    history.replaceState(history.state, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
    return token;
  }

  /* The payload of a compact JWS as an object, or null. Not verified: the node verifies the
     signature at login; the page only needs `sub` for the name it shows. */
  function tokenClaims(token) {
    const parts = token.split('.');
    if (parts.length !== 3 || !/^[A-Za-z0-9_-]+$/.test(parts[1])) return null;
    try {
      const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
      const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
      const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
      const claims = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
      return claims && typeof claims === 'object' && !Array.isArray(claims) ? claims : null;
    } catch {
      return null;
    }
  }

  /* ---- state ----------------------------------------------------------------------------- */

  const S = {
    config: null,
    appID: 0,
    name: '',
    nameChosen: false,        // chosen by the person (true) or generated (false)
    ws: null,
    gen: 0,                   // bumps on every new socket; events of older sockets are ignored
    loggedIn: false,
    everLoggedIn: false,      // in this room: decides between "welcome" and "reconnected"
    attempt: 0,               // failed attempts in a row, for the backoff
    retryTimer: 0,
    retryAt: 0,
    countdownTimer: 0,
    heartbeatTimer: 0,
    lastClose: null,          // {code, reason} of the last unexpected close
    pending: new Map(),       // seq -> {cmd, resolve, reject, timer}
    users: new Set(),
    onlineCount: null,        // exact count from a `presence` push, when the list may be partial
    listLoading: false,
    listBuffer: [],           // enter/exit seen while /user/list was on its way
    dmTarget: '',
    viaWs: load('localStorage', 'imgate.viaWs') === '1',
    unseen: 0,
    stick: true,              // the pane is scrolled to the bottom: new messages keep it there
    joinNote: '',             // said at the next login instead of "Reconnected." (after a rename)
    lastSent: null,           // the newest own message marked sent: only it shows "Sent"
    token: '',                // the site's JWT, sent as serviceToken; memory only, never stored
    tokenRefused: false,      // the node refused it: say so, retry seldom
  };

  const ui = {};

  /* ---- connection state on screen -------------------------------------------------------- */

  const CONN_TEXT = { connecting: 'Connecting…', connected: 'Connected', reconnecting: 'Reconnecting…',
    refused: 'Not signed in' };

  function setConn(state) {
    ui.conn.dataset.state = state;
    ui.connText.textContent = CONN_TEXT[state];
    ui.app.dataset.conn = state;
    updateComposer();
  }

  function showBanner(text, retry = true) {
    ui.bannerText.textContent = text;
    ui.retry.hidden = !retry;
    ui.banner.hidden = false;
  }

  function hideBanner() {
    ui.banner.hidden = true;
    clearInterval(S.countdownTimer);
    S.countdownTimer = 0;
  }

  function closeExplanation() {
    const c = S.lastClose;
    if (!navigator.onLine) return 'You are offline.';
    if (!c) return 'Cannot reach the server.';
    if (c.reason === 'token') return TOKEN_REFUSED;
    if (c.code === 1001) return 'The server is restarting.';
    if (c.code === 1008) return 'The server closed the connection (too slow).';
    if (c.code === 1006 || c.code === 1005) return S.everLoggedIn ? 'Connection lost.' : 'Cannot reach the server.';
    return `Connection closed (${c.code}${c.reason ? `: ${c.reason}` : ''}).`;
  }

  function renderCountdown() {
    const secs = Math.max(0, Math.ceil((S.retryAt - Date.now()) / 1000));
    const verb = S.tokenRefused ? 'Trying again' : 'Reconnecting';
    const when = secs > 0 ? `${verb} in ${secs} s` : `${verb} now`;
    showBanner(`${closeExplanation()} ${when}… (attempt ${S.attempt})`);
  }

  /* ---- the WebSocket --------------------------------------------------------------------- */

  function connect() {
    clearTimeout(S.retryTimer);
    S.retryTimer = 0;
    clearInterval(S.countdownTimer);
    S.countdownTimer = 0;
    const gen = ++S.gen;
    setConn(S.attempt > 0 || S.everLoggedIn ? 'reconnecting' : 'connecting');
    if (S.attempt > 0) showBanner(`${closeExplanation()} Reconnecting now… (attempt ${S.attempt})`);
    let ws;
    try {
      ws = new WebSocket(S.config.wsUrl);
    } catch (err) {
      S.lastClose = { code: 0, reason: String(err && err.message) };
      scheduleReconnect();
      return;
    }
    S.ws = ws;
    // A handshake that hangs (a dead proxy, a black-holed SYN) would otherwise wait for minutes.
    const openTimer = setTimeout(() => {
      if (ws.readyState === WebSocket.CONNECTING) ws.close();
    }, REQUEST_TIMEOUT_MS);
    ws.onopen = () => {
      clearTimeout(openTimer);
      if (gen === S.gen) login(gen);
    };
    ws.onmessage = (ev) => { if (gen === S.gen) onFrame(ev.data); };
    ws.onclose = (ev) => {
      clearTimeout(openTimer);
      if (gen === S.gen) onClosed(ev);
    };
    ws.onerror = () => { /* a close event follows */ };
  }

  /* Ends the current socket on purpose (rename, room switch): no reconnect from its close. */
  function dropSocket() {
    const ws = S.ws;
    S.gen++;
    S.ws = null;
    endSession();
    if (ws && ws.readyState <= WebSocket.OPEN) {
      try { ws.close(1000, 'bye'); } catch { /* already closing */ }
    }
  }

  function endSession() {
    S.loggedIn = false;
    clearInterval(S.heartbeatTimer);
    S.heartbeatTimer = 0;
    for (const p of S.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new Error('Connection lost'));
    }
    S.pending.clear();
    ui.app.classList.add('is-stale');
  }

  function onClosed(ev) {
    S.ws = null;
    S.lastClose = { code: ev.code, reason: ev.reason };
    const wasLoggedIn = S.loggedIn;
    endSession();
    if (wasLoggedIn) notice('info', `${closeExplanation()} Reconnecting…`);
    scheduleReconnect();
  }

  function scheduleReconnect() {
    clearTimeout(S.retryTimer);
    const [first, max] = S.tokenRefused ? [TOKEN_RETRY_FIRST_MS, TOKEN_RETRY_MAX_MS]
      : [BACKOFF_FIRST_MS, BACKOFF_MAX_MS];
    const base = Math.min(max, first * 2 ** S.attempt);
    const delay = Math.round(base * (0.8 + Math.random() * 0.4)); // jitter: not all pages at once
    S.attempt++;
    S.retryAt = Date.now() + delay;
    setConn(S.tokenRefused ? 'refused' : 'reconnecting');
    renderCountdown();
    clearInterval(S.countdownTimer);
    S.countdownTimer = setInterval(renderCountdown, 1000);
    S.retryTimer = setTimeout(connect, delay);
  }

  /* Coming back online or to the tab retries at once, except with a refused token: that would
     only be refused again. "Retry now" still does it. */
  function retrySoon() {
    if (!S.loggedIn && S.retryTimer && !S.tokenRefused) connect();
  }

  /* Sends one request and resolves with its `response` ({code, codeMsg, data}). */
  function request(cmd, data) {
    return new Promise((resolve, reject) => {
      const ws = S.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        reject(new Error('Not connected'));
        return;
      }
      const seq = newId();
      const timer = setTimeout(() => {
        S.pending.delete(seq);
        reject(new Error('No reply from the server'));
        // A socket that does not answer is dead even if the browser has not noticed yet.
        if (S.ws === ws) { try { ws.close(4000, 'no reply'); } catch { /* closing */ } }
      }, REQUEST_TIMEOUT_MS);
      S.pending.set(seq, { cmd, resolve, reject, timer });
      ws.send(JSON.stringify({ seq, cmd, data }));
    });
  }

  async function login(gen) {
    let res;
    const data = { userID: S.name, appID: S.appID };
    if (S.token) data.serviceToken = S.token;
    try {
      res = await request('login', data);
    } catch {
      return; // the close that follows reconnects
    }
    if (gen !== S.gen) return;
    if (res.code === 200) {
      onLoggedIn();
      return;
    }
    // With a token the name is the token's: 1002 (its sub is no userID) and 1003 (refused) are
    // the token's fault, and another name would not help.
    if (S.token && (res.code === 1002 || res.code === 1003)) {
      tokenRefused();
      return;
    }
    if (res.code === 1002) { // the server disliked the name: take a generated one
      const old = S.name;
      setName(randomName(), false);
      notice('error', `The server refused the name “${old}”; you are now ${S.name}.`);
    } else if (res.code === 1003) {
      notice('error', `Room ${S.appID} is not open on this server.`);
    } else {
      notice('error', `Login failed: ${res.codeMsg || res.code}.`);
    }
    S.lastClose = { code: 0, reason: `login ${res.code}` };
    dropSocket();
    scheduleReconnect();
  }

  /* Says once that the token was refused, then retries on the slow schedule. */
  function tokenRefused() {
    if (!S.tokenRefused) {
      S.tokenRefused = true;
      S.attempt = 0;
      notice('error', TOKEN_REFUSED);
    }
    S.lastClose = { code: 0, reason: 'token' };
    dropSocket();
    scheduleReconnect();
  }

  /* No token to log in with on a node that needs one: say so and wait for one (a new link from
     the site in this tab arrives as a hashchange). */
  function signInNeeded(text) {
    dropSocket();
    clearTimeout(S.retryTimer);
    S.retryTimer = 0;
    hideBanner();
    setConn('refused');
    showBanner(text, false);
    notice('error', text);
  }

  function onLoggedIn() {
    S.loggedIn = true;
    S.tokenRefused = false;
    S.attempt = 0;
    S.lastClose = null;
    hideBanner();
    ui.app.classList.remove('is-stale');
    setConn('connected');
    if (S.joinNote) {
      notice('info', S.joinNote);
      S.joinNote = '';
      S.everLoggedIn = true;
    } else if (S.everLoggedIn) {
      notice('info', 'Reconnected.');
    } else {
      noticeWelcome();
      S.everLoggedIn = true;
    }
    clearInterval(S.heartbeatTimer);
    S.heartbeatTimer = setInterval(heartbeat, HEARTBEAT_MS);
    refreshUsers();
  }

  async function heartbeat() {
    try {
      const res = await request('heartbeat', {});
      // 1000: the server no longer knows this login (e.g. it timed us out): log in again.
      if (res.code === 1000 && S.ws) S.ws.close(4001, 'login again');
    } catch { /* the close that follows reconnects */ }
  }

  function onFrame(text) {
    let m;
    try { m = JSON.parse(text); } catch { return; }
    if (!m || typeof m !== 'object') return;
    const res = m.response && typeof m.response === 'object' ? m.response : null;
    if (!res) return;
    const p = S.pending.get(m.seq);
    if (p && p.cmd === m.cmd) {
      S.pending.delete(m.seq);
      clearTimeout(p.timer);
      p.resolve(res);
      return;
    }
    const d = res.data && typeof res.data === 'object' ? res.data : {};
    const from = typeof d.from === 'string' ? d.from : '';
    const msg = typeof d.msg === 'string' ? d.msg : '';
    const target = typeof d.target === 'string' ? d.target : '';
    if (m.cmd === 'msg') {
      if (target) chatMessage({ kind: 'private', from, to: target, text: msg });
      else chatMessage({ kind: 'room', from, to: '', text: msg });
    } else if (m.cmd === 'enter' && from && from !== S.name) {
      presence('enter', from);
      notice('enter', `${from} joined the room`, from);
    } else if (m.cmd === 'exit' && from && from !== S.name) {
      presence('exit', from);
      notice('exit', `${from} left the room`, from);
    } else if (m.cmd === 'presence') {
      presenceBatch(d);
    }
  }

  /* Big rooms get one `presence` push per interval instead of enter/exit per user: up to 500
     names in each list, exact counts. */
  function presenceBatch(d) {
    const names = (v) => (Array.isArray(v) ? v.filter((x) => typeof x === 'string' && x !== S.name) : []);
    const joins = names(d.joins);
    const leaves = names(d.leaves);
    for (const n of leaves) presence('exit', n, true);
    for (const n of joins) presence('enter', n, true);
    const joined = Number.isInteger(d.joined) ? d.joined : joins.length;
    const left = Number.isInteger(d.left) ? d.left : leaves.length;
    if (Number.isInteger(d.online) && d.online >= 0) S.onlineCount = d.online;
    renderUsers();
    const parts = [];
    if (joined) parts.push(`${summary(joins, joined)} joined`);
    if (left) parts.push(`${summary(leaves, left)} left`);
    if (parts.length) notice(joined ? 'enter' : 'exit', parts.join(' · '));
  }

  /* "ann", "ann and bob", "ann, bob and 3 others" */
  function summary(list, count) {
    const shown = list.slice(0, 2);
    const rest = count - shown.length;
    if (!shown.length) return `${count} ${count === 1 ? 'person' : 'people'}`;
    if (rest <= 0) return shown.join(' and ');
    return `${shown.join(', ')} and ${rest} ${rest === 1 ? 'other' : 'others'}`;
  }

  /* ---- HTTP ------------------------------------------------------------------------------ */

  async function api(method, path, params) {
    const url = new URL(path, S.config.httpBase);
    const init = { method, cache: 'no-store' };
    if (method === 'GET') {
      for (const [k, v] of Object.entries(params)) url.searchParams.set(k, String(v));
    } else {
      init.body = new URLSearchParams(params); // application/x-www-form-urlencoded, as goWebSocket
    }
    const res = await fetch(url, init);
    let body = null;
    try { body = await res.json(); } catch { /* not JSON */ }
    if (!res.ok || !body || body.code !== 200) {
      const err = new Error((body && body.msg) || `HTTP ${res.status}`);
      err.status = res.status;
      throw err;
    }
    return body.data || {};
  }

  async function fetchUsers(appID) {
    const data = await api('GET', 'user/list', { appID });
    return Array.isArray(data.userList) ? data.userList.filter((u) => typeof u === 'string') : [];
  }

  /* ---- who is online --------------------------------------------------------------------- */

  function presence(kind, name, batched = false) {
    if (kind === 'enter') S.users.add(name); else S.users.delete(name);
    if (S.listLoading) S.listBuffer.push([kind, name]);
    if (!batched) {
      S.onlineCount = null;
      renderUsers();
    }
  }

  /* Loads the list after login. enter/exit pushes that arrive while it is on its way are
     replayed over it, so the list is right whichever of the two the server handled first. */
  async function refreshUsers() {
    const gen = S.gen;
    S.listLoading = true;
    S.listBuffer = [];
    try {
      const list = await fetchUsers(S.appID);
      if (gen !== S.gen) return;
      S.users = new Set(list);
      S.onlineCount = null;
      for (const [kind, name] of S.listBuffer) {
        if (kind === 'enter') S.users.add(name); else S.users.delete(name);
      }
    } catch { /* keep what we know; pushes still update it */ }
    finally {
      if (gen === S.gen) {
        S.listLoading = false;
        S.listBuffer = [];
        renderUsers();
      }
    }
  }

  function renderUsers() {
    S.users.add(S.name);
    const names = [...S.users].sort((a, b) => {
      if (a === S.name) return -1;
      if (b === S.name) return 1;
      return a.localeCompare(b, undefined, { sensitivity: 'base' });
    });
    // A big room's list is cut short: thousands of rows help nobody and cost a lot to draw.
    const items = names.slice(0, MAX_LISTED).map((name) => {
      const self = name === S.name;
      const li = h('li', { className: 'user', data: { testid: 'user-item', user: name, self } });
      if (self) {
        li.append(h('div', { className: 'user-row is-self' },
          avatar(name),
          h('span', { className: 'user-name', text: name }),
          h('span', { className: 'you', text: 'you' })));
      } else {
        const selected = name === S.dmTarget;
        li.append(h('button', {
          className: 'user-row', attrs: { type: 'button', 'aria-pressed': selected,
            title: `Send a private message to ${name}` },
          on: { click: () => setDmTarget(selected ? '' : name) },
        }, avatar(name), h('span', { className: 'user-name', text: name }),
        h('span', { className: 'user-action', text: selected ? 'private' : 'message',
          attrs: { 'aria-hidden': 'true' } })));
      }
      return li;
    });
    const n = Math.max(S.onlineCount ?? names.length, 1);
    if (n > items.length) {
      items.push(h('li', { className: 'user-more', text: `and ${n - items.length} more`,
        data: { testid: 'user-more' } }));
    }
    ui.userList.replaceChildren(...items);
    ui.userCount.textContent = String(n);
    ui.userCountTop.textContent = `${n} online`;
    ui.peopleBadge.textContent = String(n);
    updateDmBar();
  }

  /* ---- messages -------------------------------------------------------------------------- */

  function timeNow() {
    return new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function nearBottom() {
    const el = ui.messages;
    return el.scrollHeight - el.scrollTop - el.clientHeight < 80;
  }

  function append(li, forceScroll) {
    const stick = forceScroll || S.stick;
    ui.messages.append(li);
    while (ui.messages.childElementCount > MAX_MESSAGES) ui.messages.firstElementChild.remove();
    if (stick) {
      ui.messages.scrollTop = ui.messages.scrollHeight;
      ui.jump.hidden = true;
    } else {
      ui.jump.hidden = false;
    }
    if (document.hidden && li.dataset.kind !== 'notice') {
      S.unseen++;
      updateTitle();
    }
  }

  function notice(kind, text, from = '') {
    const li = h('li', { className: `notice notice-${kind}`,
      data: { testid: 'message', kind: 'notice', notice: kind, from, to: '', self: false } },
    h('span', { className: 'notice-text', text, data: { testid: 'message-text' } }),
    h('time', { className: 'notice-time', text: timeNow() }));
    append(li, false);
    return li;
  }

  function noticeWelcome() {
    notice('info', `Welcome to Room ${S.appID}, ${S.name}! Say hello, or pick someone in the ` +
      'list to message them privately.');
  }

  /* A chat bubble. `self` marks the ones this page sent; they carry a delivery status. */
  function chatMessage({ kind, from, to, text, self = false }) {
    const priv = kind === 'private';
    let label;
    if (self) label = priv ? `You → ${to}` : 'You';
    else label = from || 'unknown';
    const meta = h('div', { className: 'meta' },
      h('span', { className: 'sender', text: label, data: { testid: 'message-sender' } }));
    if (priv) {
      meta.append(h('span', { className: 'tag-private', text: 'private' }));
    }
    meta.append(h('time', { className: 'time', text: timeNow() }));
    const bubble = h('div', { className: 'bubble' },
      h('p', { className: 'text', text, data: { testid: 'message-text' } }));
    const body = h('div', { className: 'msg-body' }, meta, bubble);
    if (priv && !self && from) {
      body.append(h('button', { className: 'link-btn reply', text: 'Reply privately',
        attrs: { type: 'button', title: `Reply privately to ${from}` },
        on: { click: () => setDmTarget(from) } }));
    }
    const li = h('li', {
      className: `msg ${self ? 'msg-out' : 'msg-in'}${priv ? ' msg-private' : ''}`,
      data: { testid: 'message', kind, from: self ? S.name : from, to: to || '', self },
    });
    if (!self) li.append(avatar(from || '?'));
    li.append(body);
    if (self) {
      const status = h('div', { className: 'status', data: { testid: 'message-status' } });
      body.append(status);
    }
    append(li, self);
    return li;
  }

  function setStatus(li, status, text = '', retry = null) {
    li.dataset.status = status;
    if (status === 'sent' && li.isConnected) {
      if (S.lastSent) S.lastSent.classList.remove('is-last-sent');
      li.classList.add('is-last-sent');
      S.lastSent = li;
    }
    const el = li.querySelector('.status');
    const label = { pending: 'Sending…', sent: '✓ Sent', undelivered: text, failed: text }[status];
    el.replaceChildren(h('span', { text: label }));
    if (retry) {
      el.append(' ', h('button', { className: 'link-btn', text: 'Retry',
        attrs: { type: 'button' }, on: { click: retry } }));
    }
  }

  /* ---- sending --------------------------------------------------------------------------- */

  async function sendHttp({ text, msgID, to }) {
    const data = to
      ? await api('POST', 'user/sendMessage',
        { appID: S.appID, userID: to, from: S.name, msgID, message: text })
      : await api('POST', 'user/sendMessageAll',
        { appID: S.appID, userID: S.name, msgID, message: text });
    return data.sendResults; // undefined for a repeated msgID: it went out the first time
  }

  async function sendWs({ text, msgID, to }) {
    const res = to
      ? await request('sendMessage', { userID: to, message: text, msgID })
      : await request('sendMessageAll', { message: text, msgID });
    if (res.code === 1010) {
      const err = new Error('the server does not take messages over the WebSocket');
      err.unsupported = true;
      throw err;
    }
    if (res.code !== 200) throw new Error(res.codeMsg || `error ${res.code}`);
    return res.data && typeof res.data === 'object' ? res.data.sendResults : undefined;
  }

  async function deliver(m) {
    setStatus(m.li, 'pending');
    let result;
    try {
      if (S.viaWs) {
        try {
          result = await sendWs(m);
        } catch (err) {
          // Behind an API key HTTP is no way out: the page has no key (and must not have one).
          if (!err.unsupported || S.config.apiKeyRequired) throw err;
          setViaWs(false);
          hint('The server does not take messages over the WebSocket; sent over HTTP.');
          result = await sendHttp(m);
        }
      } else {
        try {
          result = await sendHttp(m);
        } catch (err) {
          // 401: the node wants an API key although /home/config did not say so (unreadable,
          // an older node behind a proxy that adds one). A 401 sent nothing: the WebSocket may.
          if (err.status !== 401) throw err;
          S.config.apiKeyRequired = true;
          applySendRule();
          hint('This server takes the page’s messages over the WebSocket only.');
          result = await sendWs(m);
        }
      }
    } catch (err) {
      setStatus(m.li, 'failed', `Not sent: ${err.message}.`, () => deliver(m));
      return;
    }
    if (m.to && result === false) {
      setStatus(m.li, 'undelivered', `Not delivered: ${m.to} is not online.`);
    } else {
      setStatus(m.li, 'sent');
    }
  }

  function send() {
    const text = ui.input.value;
    if (!text.trim() || !S.loggedIn) return;
    const to = S.dmTarget;
    const li = chatMessage({ kind: to ? 'private' : 'room', from: S.name, to, text, self: true });
    ui.input.value = '';
    updateComposer();
    deliver({ text, msgID: newId(), to, li });
  }

  function setViaWs(on) {
    S.viaWs = on;
    ui.wsToggle.checked = on;
    store('localStorage', 'imgate.viaWs', on ? '1' : null);
  }

  /* A node that requires auth.apiKey on its push API gets everything over the WebSocket, which
     needs only the login. The switch goes away (not stored: the person's own choice stays for
     open nodes) and a note says why. */
  function applySendRule() {
    if (!S.config.apiKeyRequired) return;
    S.viaWs = true;
    ui.wsToggle.checked = true;
    ui.wsToggle.disabled = true;
    ui.wsSwitch.hidden = true;
    ui.wsOnly.hidden = false;
  }

  let hintTimer = 0;
  function hint(text) {
    ui.hint.textContent = text;
    clearTimeout(hintTimer);
    if (text) hintTimer = setTimeout(() => { ui.hint.textContent = ''; }, 8000);
  }

  function updateComposer() {
    if (!ui.send) return;
    ui.send.disabled = !S.loggedIn || !ui.input.value.trim();
    const waiting = ui.app.dataset.conn === 'refused' ? 'Not signed in' : 'Waiting for the connection…';
    ui.input.placeholder = !S.loggedIn ? waiting
      : S.dmTarget ? `Private message to ${S.dmTarget}` : `Message Room ${S.appID}`;
  }

  function setDmTarget(name) {
    S.dmTarget = name;
    renderUsers();
    updateComposer();
    closeDrawer();
    ui.input.focus();
  }

  function updateDmBar() {
    const t = S.dmTarget;
    ui.dmBar.hidden = !t;
    ui.composer.classList.toggle('is-private', !!t);
    ui.dmTarget.textContent = t;
    ui.dmTarget.dataset.user = t;
    ui.dmBar.classList.toggle('is-offline', !!t && !S.users.has(t));
    ui.dmOffline.hidden = !t || S.users.has(t);
  }

  /* ---- rooms, names, joining ------------------------------------------------------------- */

  function setName(name, chosen, keep = true) {
    S.name = name;
    S.nameChosen = chosen;
    if (keep) store('sessionStorage', 'imgate.name', name);
    if (keep && chosen) store('localStorage', 'imgate.name', name);
    ui.selfName.textContent = name;
    ui.meAvatar.textContent = initials(name);
    ui.meAvatar.style.setProperty('--hue', String(hue(name)));
  }

  /* Signs the page in with the site's token: its `sub` is the name, which can't be changed here
     (the node accepts no other with this token). Returns false, changing nothing, if the
     token can't be read or its sub can't be a userID. */
  function useToken(token) {
    const claims = tokenClaims(token);
    const sub = claims && typeof claims.sub === 'string' ? claims.sub : '';
    if (!sub || nameProblem(sub)) return false;
    S.token = token;
    S.tokenRefused = false;
    setName(sub, false, false);
    ui.nameEdit.disabled = true;
    ui.nameEdit.dataset.locked = 'true';
    ui.nameEdit.title = 'Your name comes from your sign-in on the site';
    ui.nameEditLabel.textContent = '(signed in by the site)';
    return true;
  }

  /* A new link from the site opened in this tab changes only the fragment: log in again with
     the new token. */
  function onHashChange() {
    const token = takeTokenFromUrl();
    if (token === null) return;
    const old = S.name;
    if (!useToken(token)) { // a session with an earlier token goes on
      if (S.config.tokenRequired && !S.token) signInNeeded(TOKEN_UNREADABLE);
      else notice('error', TOKEN_UNREADABLE);
      return;
    }
    dropSocket();
    hideBanner();
    S.users.delete(old);
    renderUsers();
    if (S.name !== old) S.joinNote = `You are now ${S.name}.`;
    S.attempt = 0;
    setConn('connecting');
    join();
  }

  function updateTitle() {
    const unseen = S.unseen ? `(${S.unseen}) ` : '';
    document.title = `${unseen}Room ${S.appID} · imgate chat`;
  }

  function renderRoom() {
    ui.roomName.textContent = `Room ${S.appID}`;
    ui.roomName.dataset.appId = String(S.appID);
    updateTitle();
    const items = S.config.appIds.map((id) => {
      const current = id === S.appID;
      const a = h('a', { className: 'room', attrs: { href: `?appID=${id}` },
        data: { testid: 'room-link', appId: id },
        on: { click: (ev) => {
          if (ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
          ev.preventDefault();
          switchRoom(id, true);
        } } },
      h('span', { className: 'room-hash', text: '#', attrs: { 'aria-hidden': 'true' } }),
      h('span', { text: `Room ${id}` }));
      if (current) a.setAttribute('aria-current', 'page');
      return h('li', {}, a);
    });
    ui.roomList.replaceChildren(...items);
  }

  /* Makes sure our name is not already online in the room (the same name would merge two
     people into one multi-device user), then connects. */
  async function join() {
    S.everLoggedIn = false;
    if (S.token) { // the token's user may well be online already: that is this person elsewhere
      connect();
      return;
    }
    const gen = S.gen;
    try {
      const list = await fetchUsers(S.appID);
      if (gen !== S.gen) return;
      if (list.includes(S.name)) {
        const old = S.name;
        const wasChosen = S.nameChosen;
        let name = randomName();
        for (let i = 0; i < 20 && list.includes(name); i++) name = randomName();
        setName(name, false);
        if (wasChosen) {
          notice('info', `“${old}” is already online in this room, so you joined as ${name}. ` +
            'You can change your name at the top.');
        }
      }
    } catch { /* the server is not reachable: connect() will say so and retry */ }
    if (gen !== S.gen) return;
    connect();
  }

  function switchRoom(id, pushHistory) {
    closeDrawer();
    if (id === S.appID) return;
    if (pushHistory) history.pushState({ appID: id }, '', `?appID=${id}`);
    dropSocket();
    hideBanner();
    S.appID = id;
    S.attempt = 0;
    S.tokenRefused = false; // the new room's refusal (a token's appIds) is said in its own pane
    S.users = new Set();
    S.onlineCount = null;
    S.dmTarget = '';
    ui.messages.replaceChildren();
    ui.jump.hidden = true;
    renderRoom();
    renderUsers();
    if (S.config.tokenRequired && !S.token) {
      signInNeeded(TOKEN_MISSING);
      return;
    }
    setConn('connecting');
    join();
  }

  /* ---- the name dialog ------------------------------------------------------------------- */

  function openNameDialog() {
    ui.nameInput.value = S.name;
    ui.nameError.textContent = '';
    updateNameBytes();
    if (typeof ui.nameDialog.showModal === 'function') ui.nameDialog.showModal();
    else ui.nameDialog.setAttribute('open', '');
    ui.nameInput.select();
  }

  function closeNameDialog() {
    if (typeof ui.nameDialog.close === 'function') ui.nameDialog.close();
    else ui.nameDialog.removeAttribute('open');
  }

  function updateNameBytes() {
    const value = ui.nameInput.value.trim();
    const bytes = utf8Bytes(value);
    ui.nameBytes.textContent = String(bytes);
    ui.nameHelp.classList.toggle('is-over', bytes > NAME_MAX_BYTES);
  }

  async function saveName() {
    const name = ui.nameInput.value.trim();
    const problem = nameProblem(name);
    if (problem) {
      ui.nameError.textContent = problem;
      ui.nameInput.setAttribute('aria-invalid', 'true');
      ui.nameInput.focus();
      return;
    }
    ui.nameInput.removeAttribute('aria-invalid');
    if (name === S.name) {
      closeNameDialog();
      return;
    }
    ui.nameSave.disabled = true;
    try {
      const list = await fetchUsers(S.appID);
      if (list.includes(name)) {
        ui.nameError.textContent = `Someone called “${name}” is already online in this room. ` +
          'Pick another name.';
        ui.nameInput.setAttribute('aria-invalid', 'true');
        ui.nameInput.focus();
        return;
      }
    } catch { /* can't check now; the server is down and we'll reconnect with it anyway */ }
    finally {
      ui.nameSave.disabled = false;
    }
    closeNameDialog();
    const old = S.name;
    dropSocket();
    S.users.delete(old);
    setName(name, true);
    renderUsers();
    S.joinNote = `You are now ${name}.`;
    S.attempt = 0;
    connect();
  }

  /* ---- the drawer (narrow screens) ------------------------------------------------------- */

  function openDrawer() {
    ui.app.classList.add('drawer-open');
    ui.peopleToggle.setAttribute('aria-expanded', 'true');
    ui.scrim.hidden = false;
  }

  function closeDrawer() {
    ui.app.classList.remove('drawer-open');
    ui.peopleToggle.setAttribute('aria-expanded', 'false');
    ui.scrim.hidden = true;
  }

  /* ---- start ----------------------------------------------------------------------------- */

  function bindUi() {
    for (const id of ['app', 'messages', 'composer', 'jump', 'scrim']) ui[id] = $(id);
    ui.banner = $('conn-banner');
    Object.assign(ui, {
      conn: $('conn-state'), connText: $('conn-text'), bannerText: $('conn-banner-text'),
      retry: $('retry-now'), roomName: $('room-name'), roomList: $('room-list'),
      userList: $('user-list'), userCount: $('user-count'), userCountTop: $('user-count-top'),
      peopleBadge: $('people-badge'), peopleToggle: $('people-toggle'), input: $('message-input'),
      send: $('send-button'), dmBar: $('dm-bar'), dmTarget: $('dm-target'),
      dmOffline: $('dm-offline'), dmCancel: $('dm-cancel'), wsToggle: $('ws-toggle'),
      hint: $('composer-hint'), selfName: $('self-name'), meAvatar: $('me-avatar'),
      nameEdit: $('name-edit'), nameDialog: $('name-dialog'), nameForm: $('name-form'),
      nameInput: $('name-input'), nameError: $('name-error'), nameBytes: $('name-bytes'),
      nameHelp: $('name-help'), nameSave: $('name-save'), nameCancel: $('name-cancel'),
      nameRandom: $('name-random'), wsSwitch: $('ws-switch'), wsOnly: $('ws-only'),
    });
    ui.nameEditLabel = ui.nameEdit.querySelector('.visually-hidden');

    ui.composer.addEventListener('submit', (ev) => { ev.preventDefault(); send(); });
    ui.input.addEventListener('input', updateComposer);
    ui.input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && S.dmTarget) setDmTarget('');
    });
    ui.dmCancel.addEventListener('click', () => setDmTarget(''));
    ui.wsToggle.checked = S.viaWs;
    ui.wsToggle.addEventListener('change', () => {
      setViaWs(ui.wsToggle.checked);
      hint(S.viaWs ? 'Sending over the WebSocket.' : 'Sending over HTTP.');
    });
    ui.retry.addEventListener('click', () => { if (!S.loggedIn) connect(); });
    ui.jump.addEventListener('click', () => {
      ui.messages.scrollTop = ui.messages.scrollHeight;
      ui.jump.hidden = true;
    });
    ui.messages.addEventListener('scroll', () => {
      S.stick = nearBottom();
      if (S.stick) ui.jump.hidden = true;
    });
    // The pane shrinks when the banner or the private-message bar appears: stay at the bottom.
    if (typeof ResizeObserver === 'function') {
      new ResizeObserver(() => {
        if (S.stick) ui.messages.scrollTop = ui.messages.scrollHeight;
      }).observe(ui.messages);
    }

    ui.nameEdit.addEventListener('click', openNameDialog);
    ui.nameCancel.addEventListener('click', closeNameDialog);
    ui.nameRandom.addEventListener('click', () => {
      ui.nameInput.value = randomName();
      ui.nameError.textContent = '';
      ui.nameInput.removeAttribute('aria-invalid');
      updateNameBytes();
      ui.nameInput.focus();
    });
    ui.nameInput.addEventListener('input', () => {
      updateNameBytes();
      ui.nameError.textContent = '';
      ui.nameInput.removeAttribute('aria-invalid');
    });
    ui.nameForm.addEventListener('submit', (ev) => { ev.preventDefault(); saveName(); });

    ui.peopleToggle.addEventListener('click', () => {
      if (ui.app.classList.contains('drawer-open')) closeDrawer(); else openDrawer();
    });
    ui.scrim.addEventListener('click', closeDrawer);
    document.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape' && ui.app.classList.contains('drawer-open')) closeDrawer();
    });

    window.addEventListener('online', retrySoon);
    window.addEventListener('offline', () => { if (!S.loggedIn && S.retryTimer) renderCountdown(); });
    document.addEventListener('visibilitychange', () => {
      if (document.hidden) return;
      S.unseen = 0;
      updateTitle();
      retrySoon();
    });
    window.addEventListener('popstate', () => switchRoom(appIdFromUrl(S.config.appIds), false));
    window.addEventListener('pagehide', () => dropSocket());
    window.addEventListener('pageshow', (ev) => { // back from the back/forward cache
      if (!ev.persisted || (S.config.tokenRequired && !S.token)) return;
      S.attempt = 0;
      join();
    });
  }

  async function start() {
    bindUi();
    const token = takeTokenFromUrl(); // before anything waits: out of the address bar at once
    S.config = await loadConfig();
    S.appID = appIdFromUrl(S.config.appIds);
    applySendRule();
    const tokenOk = token !== null && useToken(token);
    if (!tokenOk) {
      const saved = load('sessionStorage', 'imgate.name') || load('localStorage', 'imgate.name');
      if (saved && !nameProblem(saved)) setName(saved, saved === load('localStorage', 'imgate.name'));
      else setName(randomName(), false);
    }
    renderRoom();
    renderUsers();
    window.addEventListener('hashchange', onHashChange);
    if (S.config.tokenRequired && !tokenOk) {
      signInNeeded(token === null ? TOKEN_MISSING : TOKEN_UNREADABLE);
      return;
    }
    // An open node ignores serviceToken; a link with an unreadable one still gets a chat.
    if (token !== null && !tokenOk) notice('error', TOKEN_UNREADABLE);
    setConn('connecting');
    join();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
