// Browser test of the chat page (web/): Debian's chromium driven by playwright-core, against a
// real imgate node on free loopback ports.
//
//   node --test tests/e2e/chat.test.mjs
//
// Environment:
//   IMGATE_BIN              the node to start (default: build/imgate in the repository)
//   IMGATE_SCREENSHOT_DIR   where screenshots go (default: build/screenshots)
//   CHROMIUM                the browser (default: /usr/bin/chromium)
//
// Two pages (A: desktop size, B: phone size) join room 101, a third (C) joins room 102. They
// exchange room and private messages over HTTP and over the WebSocket; the test checks what each
// page shows (bubbles, senders, private marks, delivery status, enter/exit notices, the online
// list with its own-name mark), that an <img onerror> probe stays text, that switching rooms
// (links, Back) reconnects, that names are checked (too long, already online) and can be changed,
// that the node's restart on the same ports is survived ("Reconnecting…", then "Connected", and
// sending works again), and that room 102 saw none of room 101's traffic. A second node batches
// presence (app.noticeBatchAbove 0) and sets app.webSocketUrl, which the page must follow. A third
// requires auth.apiKey and a JWT: pages signed in by the site's #token link send over the
// WebSocket only, and an expired token is refused on screen.
// Screenshots for a human: chat-desktop.png (1280x800), chat-phone.png (390x844), and a dark,
// a drawer and a reconnecting one; failure-<page>.png when a step fails.
// Every wait is bounded; the nodes are stopped in `after` / `finally` whatever happens.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

import {
  HOST, WAIT, canConnect, freePort, messages, selfName, sleep, tid, users, waitConnected,
  waitMessage, waitUsers,
} from './chatpage.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.IMGATE_BIN || path.join(ROOT, 'build', 'imgate');
const SHOTS = process.env.IMGATE_SCREENSHOT_DIR || path.join(ROOT, 'build', 'screenshots');
const BROWSER = process.env.CHROMIUM || '/usr/bin/chromium';
const XSS = '<img src=x onerror="window.__xss=1;document.title=\'pwned\'">';

/* ---- the node -------------------------------------------------------------------------------- */


class Node {
  constructor(httpPort, wsPort, extraArgs = []) {
    this.httpPort = httpPort;
    this.wsPort = wsPort;
    this.extraArgs = extraArgs;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgate-e2e-'));
    this.proc = null;
    this.output = '';
  }

  get url() { return `http://${HOST}:${this.httpPort}`; }

  async start() {
    const args = ['--app.httpPort', this.httpPort, '--app.webSocketPort', this.wsPort,
      '--app.bindAddress', HOST, '--app.logFile', path.join(this.dir, 'access.log'),
      '--app.appIds', '101,102,103,104', '--app.workers', '2', ...this.extraArgs].map(String);
    // cwd is a temp dir, so no config/app.yaml from elsewhere is read.
    const proc = spawn(BIN, args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    proc.stdout.on('data', (d) => { this.output += d; });
    proc.stderr.on('data', (d) => { this.output += d; });
    proc.exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve({ code, sig })));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`imgate exited early (${proc.exitCode}):\n${this.output}`);
      if (await canConnect(this.httpPort) && await canConnect(this.wsPort)) return;
      await sleep(50);
    }
    throw new Error(`imgate did not start listening:\n${this.output}`);
  }

  /* SIGTERM; returns the exit code (the node drains and exits 0), or kills it after 10 s. */
  async stop() {
    const proc = this.proc;
    if (!proc) return null;
    this.proc = null;
    if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
    proc.kill('SIGTERM');
    let timer;
    const timeout = new Promise((resolve) => { timer = setTimeout(resolve, 10_000, null); });
    const res = await Promise.race([proc.exited, timeout]);
    clearTimeout(timer);
    if (!res) {
      proc.kill('SIGKILL');
      await proc.exited;
      return null;
    }
    return res.code;
  }
}

/* ---- page helpers ---------------------------------------------------------------------------- */

async function connState(page) {
  return page.locator(tid('conn-state')).getAttribute('data-state');
}

async function sendText(page, text, { enter = false } = {}) {
  const input = page.locator(tid('message-input'));
  await input.fill(text);
  if (enter) await input.press('Enter');
  else await page.locator(tid('send-button')).click({ timeout: WAIT });
}

/* Opens the drawer on narrow pages when a sidebar element is needed. */
async function withSidebar(page, fn) {
  const toggle = page.locator(tid('people-toggle'));
  const narrow = await toggle.isVisible();
  if (narrow && (await toggle.getAttribute('aria-expanded')) !== 'true') await toggle.click();
  return fn();
}

/* ---- the run ----------------------------------------------------------------------------------- */

let node;
let browser;
const pages = {};
const pageErrors = [];
let A, B, C;        // pages
let nameA, nameB, nameC;

before(async () => {
  assert.ok(fs.existsSync(BIN), `no imgate binary at ${BIN} (set IMGATE_BIN)`);
  assert.ok(fs.existsSync(BROWSER), `no browser at ${BROWSER} (apt-get install chromium)`);
  fs.mkdirSync(SHOTS, { recursive: true });
  node = new Node(await freePort(), await freePort());
  await node.start();
  browser = await chromium.launch({
    executablePath: BROWSER,
    headless: true,
    timeout: 30_000,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
});

after(async () => {
  try { if (browser) await browser.close(); } catch { /* already gone */ }
  const code = node ? await node.stop() : 0;
  if (node) fs.rmSync(node.dir, { recursive: true, force: true });
  assert.equal(code, 0, `imgate exit code ${code}; its output:\n${node && node.output}`);
});

/* `hash` is appended to the page's URL (e.g. "#token=…"). The page records its WebSocket URLs
   (page.sockets), the text frames it sent (page.sentFrames) and its HTTP requests (page.requests). */
async function openPage(label, room, viewport, on = node, hash = '') {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('pageerror', (err) => pageErrors.push(`${label}: ${err.message}`));
  page.sockets = [];
  page.sentFrames = [];
  page.requests = [];
  page.on('websocket', (ws) => {
    page.sockets.push(ws.url());
    ws.on('framesent', (f) => { if (typeof f.payload === 'string') page.sentFrames.push(f.payload); });
  });
  page.on('request', (req) => page.requests.push(`${req.method()} ${req.url()}`));
  pages[label] = page;
  await page.goto(`${on.url}/home/index?appID=${room}${hash}`, { timeout: WAIT });
  return page;
}

/* Runs one step as a subtest. Once a step fails the later ones are skipped (they build on it),
   and a picture of every page is saved so a human can see what went wrong. */
let failed = false;
async function step(t, name, fn) {
  if (failed) {
    await t.test(name, { skip: 'an earlier step failed' }, () => {});
    return;
  }
  await t.test(name, async () => {
    try {
      await fn();
    } catch (err) {
      failed = true;
      for (const [label, page] of Object.entries(pages)) {
        try {
          await page.screenshot({ path: path.join(SHOTS, `failure-${label}.png`), timeout: 5000 });
        } catch { /* the page may be gone */ }
      }
      if (pageErrors.length) err.message += `\nscript errors on the pages:\n${pageErrors.join('\n')}`;
      throw err;
    }
  });
}

test('chat page: rooms, private messages, notices, XSS, names, restart', { timeout: 110_000 }, async (t) => {
  await step(t, 'GET / redirects to the page; the page has its assets', async () => {
    const res = await fetch(`${node.url}/`, { redirect: 'manual' });
    assert.equal(res.status, 302);
    // relative ("home/index"), so that it stays under a reverse proxy's prefix
    const loc = res.headers.get('location') || '';
    assert.equal(new URL(loc, `${node.url}/`).pathname, '/home/index', loc);
    for (const [file, type] of [['app.js', /javascript/], ['style.css', /text\/css/],
      ['favicon.svg', /image\/svg\+xml/]]) {
      const r = await fetch(`${node.url}/web/${file}`);
      assert.equal(r.status, 200, file);
      assert.match(r.headers.get('content-type') || '', type, file);
    }
    // An open node (no auth.apiKey, no JWT key) asks the page for nothing: it works as before.
    const { data } = await (await fetch(`${node.url}/home/config`)).json();
    assert.equal('apiKeyRequired' in data || 'tokenRequired' in data, false, JSON.stringify(data));
  });

  await step(t, 'A joins room 101 with a generated name', async () => {
    A = await openPage('A', 101, { width: 1280, height: 800 });
    await waitConnected(A);
    nameA = await selfName(A);
    assert.ok(nameA.length > 0 && Buffer.byteLength(nameA) <= 19, `name ${nameA}`);
    assert.equal(await A.locator(tid('room-name')).innerText(), 'Room 101');
    assert.equal(await A.title(), 'Room 101 · imgate chat');
    await waitUsers(A, [nameA], nameA);
    // No webSocketUrl configured: the page derives it from its own origin (the HTTP port).
    assert.deepEqual(A.sockets, [`ws://${HOST}:${node.httpPort}/acc`]);
    const rooms = await A.locator(tid('room-link')).evaluateAll((els) =>
      els.map((e) => [e.dataset.appId, e.getAttribute('aria-current')]));
    assert.deepEqual(rooms, [['101', 'page'], ['102', null], ['103', null], ['104', null]]);
  });

  await step(t, 'B joins room 101 (phone size): A gets its enter notice and list entry', async () => {
    B = await openPage('B', 101, { width: 390, height: 844 });
    await waitConnected(B);
    nameB = await selfName(B);
    assert.notEqual(nameB, nameA);
    await waitUsers(B, [nameA, nameB], nameB);
    await waitMessage(A, { kind: 'notice', notice: 'enter', from: nameB });
    await waitUsers(A, [nameA, nameB], nameA);
    // The page does not get its own enter.
    assert.equal((await messages(B)).filter((m) => m.notice === 'enter').length, 0);
  });

  await step(t, 'C joins room 102 by a URL and sees only itself', async () => {
    C = await openPage('C', 102, { width: 1280, height: 800 });
    await waitConnected(C);
    nameC = await selfName(C);
    assert.equal(await C.locator(tid('room-name')).innerText(), 'Room 102');
    await waitUsers(C, [nameC], nameC);
  });

  await step(t, 'a room message from A (Enter, over HTTP) reaches B; A sees its own bubble', async () => {
    await sendText(A, 'Hello room 101 from A', { enter: true });
    const own = await waitMessage(A, { kind: 'room', self: true, text: 'Hello room 101 from A', status: 'sent' });
    assert.equal(own.from, nameA);
    const got = await waitMessage(B, { kind: 'room', text: 'Hello room 101 from A' });
    assert.equal(got.from, nameA);
    assert.equal(got.sender, nameA);
    assert.equal(got.self, false);
    assert.equal(await A.locator(tid('message-input')).inputValue(), '', 'input cleared');
  });

  await step(t, 'the XSS probe from B (send button) is shown as text on both sides', async () => {
    await sendText(B, XSS);
    await waitMessage(B, { kind: 'room', self: true, text: XSS, status: 'sent' });
    await waitMessage(A, { kind: 'room', from: nameB, text: XSS });
    for (const page of [A, B]) {
      assert.equal(await page.locator(`${tid('messages')} img`).count(), 0, 'no <img> in the pane');
      assert.equal(await page.evaluate(() => window.__xss), undefined, 'onerror did not run');
      assert.equal(await page.title(), 'Room 101 · imgate chat');
    }
  });

  await step(t, 'a private message A → B (click in the list) is private on both sides', async () => {
    await A.locator(`${tid('user-item')}[data-user="${nameB}"] button`).click();
    assert.equal(await A.locator(tid('dm-target')).innerText(), nameB);
    await sendText(A, 'psst, only for B', { enter: true });
    const own = await waitMessage(A, { kind: 'private', self: true, text: 'psst, only for B', status: 'sent' });
    assert.equal(own.to, nameB);
    const got = await waitMessage(B, { kind: 'private', text: 'psst, only for B' });
    assert.equal(got.from, nameA);
    assert.equal(got.to, nameB);
    await A.locator(tid('dm-cancel')).click();
    assert.equal(await A.locator(tid('dm-target')).isVisible(), false);
  });

  await step(t, 'room and private messages over the WebSocket (toggle)', async () => {
    await B.locator(tid('ws-toggle')).check({ force: true });
    await sendText(B, 'room message over the WebSocket');
    await waitMessage(B, { kind: 'room', self: true, text: 'room message over the WebSocket', status: 'sent' });
    await waitMessage(A, { kind: 'room', from: nameB, text: 'room message over the WebSocket' });
    await withSidebar(B, () => B.locator(`${tid('user-item')}[data-user="${nameA}"] button`).click());
    await sendText(B, 'private over the WebSocket');
    await waitMessage(B, { kind: 'private', self: true, to: nameA, text: 'private over the WebSocket', status: 'sent' });
    const got = await waitMessage(A, { kind: 'private', text: 'private over the WebSocket' });
    assert.equal(got.from, nameB);
    await B.locator(tid('dm-cancel')).click();
    await B.locator(tid('ws-toggle')).uncheck({ force: true });
  });

  await step(t, 'room 102 is separate', async () => {
    await sendText(C, 'only for room 102', { enter: true });
    await waitMessage(C, { kind: 'room', self: true, text: 'only for room 102', status: 'sent' });
    // A later message in 101 has arrived, so anything from 102 would have too.
    await sendText(B, 'sync point after 102');
    await waitMessage(A, { kind: 'room', text: 'sync point after 102' });
    for (const page of [A, B]) {
      const texts = (await messages(page)).map((m) => m.text);
      assert.ok(!texts.includes('only for room 102'), 'room 101 saw a 102 message');
      assert.ok(!texts.some((x) => x.includes(nameC)), 'room 101 saw a notice about C');
    }
    const seenByC = await messages(C);
    assert.deepEqual(seenByC.filter((m) => m.kind !== 'notice' || m.notice !== 'info').map((m) => m.text),
      ['only for room 102'], 'C saw traffic of room 101');
    await waitUsers(C, [nameC], nameC);
  });

  await step(t, 'C switches rooms with the room links and the Back button', async () => {
    await C.locator(`${tid('room-link')}[data-app-id="103"]`).click();
    await C.locator(`${tid('room-name')}[data-app-id="103"]`).waitFor();
    await waitConnected(C);
    assert.match(C.url(), /[?&]appID=103\b/);
    assert.equal(await C.locator(`${tid('room-link')}[aria-current="page"]`).getAttribute('data-app-id'), '103');
    await waitUsers(C, [nameC], nameC);
    assert.ok(!(await messages(C)).some((m) => m.text === 'only for room 102'), 'pane not cleared');
    await C.goBack();
    await C.locator(`${tid('room-name')}[data-app-id="102"]`).waitFor();
    await waitConnected(C);
    assert.match(C.url(), /[?&]appID=102\b/);
    await waitUsers(C, [nameC], nameC);
    // The sockets: the first one, then one per room switch, all to the page's origin.
    assert.deepEqual(C.sockets, Array(3).fill(`ws://${HOST}:${node.httpPort}/acc`));
  });

  await step(t, 'names: too long and already-online names are refused', async () => {
    await C.locator(tid('name-edit')).click();
    const input = C.locator(tid('name-input'));
    await input.fill('北宋善画的李伯时'); // 8 CJK characters = 24 bytes: the original page's bug
    assert.equal(await C.locator(tid('name-bytes')).innerText(), '24');
    await C.locator(tid('name-save')).click();
    assert.match(await C.locator(tid('name-error')).innerText(), /Too long/);
    assert.equal(await selfName(C), nameC);
    await C.locator(tid('name-cancel')).click();

    // In room 101, B may not take A's name.
    await B.locator(tid('name-edit')).click();
    await B.locator(tid('name-input')).fill(nameA);
    await B.locator(tid('name-save')).click();
    await B.locator(`${tid('name-error')}:has-text("already online")`).waitFor();
    assert.equal(await selfName(B), nameB);
    await B.locator(tid('name-cancel')).click();
  });

  await step(t, 'B renames itself (6 CJK characters): A sees exit + enter and the list follows', async () => {
    const newName = '北宋画家李公'; // 18 bytes
    await B.locator(tid('name-edit')).click();
    await B.locator(tid('name-input')).fill(newName);
    assert.equal(await B.locator(tid('name-bytes')).innerText(), '18');
    await B.locator(tid('name-save')).click();
    await B.locator(tid('name-dialog')).waitFor({ state: 'hidden' });
    await waitConnected(B);
    assert.equal(await selfName(B), newName);
    await waitMessage(A, { kind: 'notice', notice: 'exit', from: nameB });
    await waitMessage(A, { kind: 'notice', notice: 'enter', from: newName });
    await waitUsers(A, [nameA, newName], nameA);
    await waitUsers(B, [nameA, newName], newName);
    await waitMessage(B, { kind: 'notice', notice: 'info', text: `You are now ${newName}.` });
    nameB = newName;
    await sendText(A, `welcome ${newName}`, { enter: true });
    await waitMessage(B, { kind: 'room', from: nameA, text: `welcome ${newName}` });
  });

  await step(t, 'screenshots: desktop and phone, light and dark', async () => {
    await sendText(B, 'Looks good on a phone too!', { enter: true });
    await waitMessage(A, { kind: 'room', text: 'Looks good on a phone too!' });
    await A.screenshot({ path: path.join(SHOTS, 'chat-desktop.png'), animations: 'disabled' });
    await B.screenshot({ path: path.join(SHOTS, 'chat-phone.png'), animations: 'disabled' });
    await A.emulateMedia({ colorScheme: 'dark' });
    await A.screenshot({ path: path.join(SHOTS, 'chat-desktop-dark.png'), animations: 'disabled' });
    await A.emulateMedia({ colorScheme: 'light' });
    await withSidebar(B, async () => {
      await B.locator(tid('user-list')).waitFor({ state: 'visible' });
      await sleep(300); // the drawer slides in
      await B.screenshot({ path: path.join(SHOTS, 'chat-phone-drawer.png'), animations: 'disabled' });
    });
    await B.keyboard.press('Escape');
  });

  await step(t, 'the node restarts on the same ports: pages say so, reconnect and can send', async () => {
    assert.equal(await node.stop(), 0, `imgate exit code; output:\n${node.output}`);
    for (const page of [A, B, C]) {
      await page.locator(`${tid('conn-state')}[data-state="reconnecting"]`).waitFor({ timeout: WAIT });
      assert.equal((await page.locator(tid('conn-state')).innerText()).trim(), 'Reconnecting…');
    }
    await A.locator(tid('conn-banner')).waitFor({ state: 'visible' });
    assert.match(await A.locator(tid('conn-banner')).innerText(), /reconnect/i);
    assert.equal(await A.locator(tid('send-button')).isDisabled(), true);
    await A.screenshot({ path: path.join(SHOTS, 'chat-reconnecting.png'), animations: 'disabled' });
    await node.start();
    for (const page of [A, B, C]) await waitConnected(page, 20_000);
    assert.equal(await A.locator(tid('conn-banner')).isVisible(), false);
    await waitMessage(A, { kind: 'notice', notice: 'info', text: 'Reconnected.' });
    await waitUsers(A, [nameA, nameB], nameA);
    await waitUsers(C, [nameC], nameC);
    await sendText(A, 'still here after the restart', { enter: true });
    await waitMessage(A, { kind: 'room', self: true, text: 'still here after the restart', status: 'sent' });
    await waitMessage(B, { kind: 'room', from: nameA, text: 'still here after the restart' });
  });

  await step(t, 'B closes: A gets its exit notice and the list drops it; a private message to it is not delivered', async () => {
    const exitsBefore = (await messages(A)).filter((m) => m.notice === 'exit' && m.from === nameB).length;
    await A.locator(`${tid('user-item')}[data-user="${nameB}"] button`).click();
    await B.context().close();
    delete pages.B;
    const deadline = Date.now() + WAIT;
    while ((await messages(A)).filter((m) => m.notice === 'exit' && m.from === nameB).length === exitsBefore) {
      assert.ok(Date.now() < deadline, 'no exit notice for B');
      await sleep(50);
    }
    await waitUsers(A, [nameA], nameA);
    // The private target stays chosen (falling back to the room could leak a private text); the
    // server answers sendResults false and the page says so.
    assert.equal(await A.locator(tid('dm-target')).innerText(), nameB);
    await sendText(A, 'are you still there?', { enter: true });
    const m = await waitMessage(A, { kind: 'private', self: true, text: 'are you still there?', status: 'undelivered' });
    assert.equal(m.to, nameB);
    assert.match(await A.locator(`${tid('message')}[data-status="undelivered"] ${tid('message-status')}`).innerText(),
      /not online/);
    // Room 102 still heard nothing of room 101.
    const texts = (await messages(C)).map((m) => m.text).join('\n');
    for (const s of ['Hello room 101', 'psst', 'WebSocket', nameA, nameB]) {
      assert.ok(!texts.includes(s), `room 102 saw "${s}"`);
    }
  });

  await step(t, 'no script errors on any page', async () => {
    assert.deepEqual(pageErrors, []);
  });
});

// Rooms above app.noticeBatchAbove users get one `presence` push per interval instead of
// enter/exit per user; with 0 every room is such a room. The page turns it into one notice and
// keeps the list right. This node also sets app.webSocketUrl / app.httpUrl, which the page must use.
test('chat page: batched presence pushes of big rooms; configured URLs', { timeout: 40_000 }, async (t) => {
  failed = false;
  const [httpPort, wsPort] = [await freePort(), await freePort()];
  const big = new Node(httpPort, wsPort, ['--app.noticeBatchAbove', '0',
    '--app.noticeBatchInterval', '100',
    '--app.webSocketUrl', `${HOST}:${wsPort}`, '--app.httpUrl', `${HOST}:${httpPort}`]);
  try {
    await big.start();
    let D, E, nameD, nameE;
    await step(t, 'D sees E join through a presence push', async () => {
      D = await openPage('D', 103, { width: 1024, height: 700 }, big);
      await waitConnected(D);
      nameD = await selfName(D);
      E = await openPage('E', 103, { width: 390, height: 700 }, big);
      await waitConnected(E);
      nameE = await selfName(E);
      // app.webSocketUrl is set: the page uses it (the WebSocket port) instead of its origin.
      assert.deepEqual(E.sockets, [`ws://${HOST}:${wsPort}/acc`]);
      await waitMessage(D, { kind: 'notice', notice: 'enter', text: `${nameE} joined` });
      await waitUsers(D, [nameD, nameE], nameD);
      await waitUsers(E, [nameD, nameE], nameE);
    });
    await step(t, 'D sees E leave through a presence push', async () => {
      await E.context().close();
      delete pages.E;
      await waitMessage(D, { kind: 'notice', notice: 'exit', text: `${nameE} left` });
      await waitUsers(D, [nameD], nameD);
      await D.context().close();
      delete pages.D;
    });
    await step(t, 'no script errors on any page', async () => {
      assert.deepEqual(pageErrors, []);
    });
  } finally {
    assert.equal(await big.stop(), 0, `imgate exit code; output:\n${big.output}`);
    fs.rmSync(big.dir, { recursive: true, force: true });
  }
});

// A node behind both keys (issue 8): auth.apiKey guards the HTTP push API and auth.jwtSecret
// makes every login carry a JWT. The page must work without ever holding the API key: the site
// links to /home/index?appID=101#token=<jwt>, the page takes the name from the token's sub, logs
// in with it (again after a restart) and sends room and private messages over the WebSocket. An
// expired token is refused with a clear message, without a reconnect loop.
// Screenshots: chat-keys.png and chat-keys-phone.png (signed in by token), chat-token-refused.png.
test('chat page behind keys: signed in by the site\'s token, sends over the WebSocket', { timeout: 60_000 }, async (t) => {
  failed = false;
  const API_KEY = 'e2e-push-api-key-0123456789';
  const SECRET = 'e2e-hs256-secret-of-the-site-0123456789abcdef';
  const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
  // What the site's backend does: sign {"sub": userId, "exp": now + 300} with the shared secret.
  const jwt = (claims) => {
    const signed = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url(claims)}`;
    return `${signed}.${createHmac('sha256', SECRET).update(signed).digest('base64url')}`;
  };
  const now = Math.floor(Date.now() / 1000);
  const tokens = {
    alice: jwt({ sub: 'alice', exp: now + 300 }),
    bob: jwt({ sub: 'bob', exp: now + 300, appIds: [101] }),
    carol: jwt({ sub: 'carol', exp: now - 60 }),
  };
  const REFUSED = 'Your sign-in token was refused or has expired — reload from the site.';
  const [httpPort, wsPort] = [await freePort(), await freePort()];
  // drainSeconds 0: the restart below closes the pages at once instead of over 10 s.
  const keyed = new Node(httpPort, wsPort, ['--auth.apiKey', API_KEY, '--auth.jwtSecret', SECRET,
    '--app.drainSeconds', '0']);
  const onlineIn101 = async () => {
    const body = await (await fetch(`${keyed.url}/user/list?appID=101`)).json();
    return body.data.userList;
  };
  const logins = (page) => page.sentFrames.map((f) => JSON.parse(f)).filter((m) => m.cmd === 'login');
  try {
    await keyed.start();
    let alice, bob, carol;

    await step(t, '/home/config says what is required, never with what', async () => {
      const raw = await (await fetch(`${keyed.url}/home/config`)).text();
      const { data } = JSON.parse(raw);
      assert.equal(data.apiKeyRequired, true);
      assert.equal(data.tokenRequired, true);
      assert.ok(!raw.includes(API_KEY) && !raw.includes(SECRET), raw);
    });

    await step(t, 'alice and bob open the site\'s links: signed in as the token\'s sub, token out of the address bar', async () => {
      alice = await openPage('alice', 101, { width: 1280, height: 800 }, keyed, `#token=${tokens.alice}`);
      await waitConnected(alice);
      bob = await openPage('bob', 101, { width: 390, height: 844 }, keyed, `#token=${tokens.bob}`);
      await waitConnected(bob);
      for (const [page, name] of [[alice, 'alice'], [bob, 'bob']]) {
        assert.equal(await selfName(page), name);
        assert.equal(await page.locator(tid('name-edit')).isDisabled(), true, 'name locked');
        assert.ok(!page.url().includes('token') && new URL(page.url()).hash === '', page.url());
        assert.equal(await page.evaluate(() => location.href.includes('token')), false);
        assert.deepEqual(logins(page).map((m) => m.data.serviceToken), [tokens[name]]);
        // The HTTP option is gone, with the reason in its place.
        assert.equal(await page.locator(tid('ws-toggle')).isChecked(), true);
        assert.equal(await page.locator(tid('ws-toggle')).isDisabled(), true);
        assert.equal(await page.locator(tid('ws-toggle')).isVisible(), false);
        assert.match(await page.locator(tid('ws-only')).innerText(), /WebSocket/);
      }
      await waitUsers(alice, ['alice', 'bob'], 'alice');
      await waitUsers(bob, ['alice', 'bob'], 'bob');
      await waitMessage(alice, { kind: 'notice', notice: 'enter', from: 'bob' });
    });

    await step(t, 'a room message alice → bob and a private one bob → alice, over the WebSocket', async () => {
      await sendText(alice, 'hello bob, from behind the keys', { enter: true });
      await waitMessage(alice, { kind: 'room', self: true, text: 'hello bob, from behind the keys', status: 'sent' });
      const got = await waitMessage(bob, { kind: 'room', text: 'hello bob, from behind the keys' });
      assert.equal(got.from, 'alice');
      await withSidebar(bob, () => bob.locator(`${tid('user-item')}[data-user="alice"] button`).click());
      await sendText(bob, 'psst alice', { enter: true });
      await waitMessage(bob, { kind: 'private', self: true, to: 'alice', text: 'psst alice', status: 'sent' });
      const dm = await waitMessage(alice, { kind: 'private', text: 'psst alice' });
      assert.equal(dm.from, 'bob');
      assert.equal(dm.to, 'alice');
      await bob.locator(tid('dm-cancel')).click();
      for (const page of [alice, bob]) {
        const cmds = page.sentFrames.map((f) => JSON.parse(f).cmd);
        assert.ok(cmds.includes(page === alice ? 'sendMessageAll' : 'sendMessage'), cmds.join());
        const posts = page.requests.filter((r) => /\/user\/sendMessage/.test(r));
        assert.deepEqual(posts, [], 'the page called the HTTP send API');
      }
    });

    await step(t, 'the push API still serves the site\'s servers, with the key only', async () => {
      const form = new URLSearchParams({ appID: '101', userID: 'alice', message: 'from the site backend', from: 'site' });
      const refused = await fetch(`${keyed.url}/user/sendMessage`, { method: 'POST', body: form });
      assert.equal(refused.status, 401);
      const ok = await fetch(`${keyed.url}/user/sendMessage`, { method: 'POST', body: form,
        headers: { Authorization: `Bearer ${API_KEY}` } });
      assert.equal(ok.status, 200);
      await waitMessage(alice, { kind: 'private', from: 'site', text: 'from the site backend' });
      await alice.screenshot({ path: path.join(SHOTS, 'chat-keys.png'), animations: 'disabled' });
      await bob.screenshot({ path: path.join(SHOTS, 'chat-keys-phone.png'), animations: 'disabled' });
    });

    await step(t, 'after a restart of the node the pages log in again with their tokens', async () => {
      assert.equal(await keyed.stop(), 0, `imgate exit code; output:\n${keyed.output}`);
      await alice.locator(`${tid('conn-state')}[data-state="reconnecting"]`).waitFor();
      await keyed.start();
      for (const page of [alice, bob]) await waitConnected(page, 20_000);
      await waitMessage(alice, { kind: 'notice', notice: 'info', text: 'Reconnected.' });
      for (const [page, name] of [[alice, 'alice'], [bob, 'bob']]) {
        const sent = logins(page).map((m) => m.data.serviceToken);
        assert.ok(sent.length >= 2 && sent.every((x) => x === tokens[name]), JSON.stringify(sent));
      }
      await waitUsers(bob, ['alice', 'bob'], 'bob');
      await sendText(bob, 'back after the restart', { enter: true });
      await waitMessage(alice, { kind: 'room', from: 'bob', text: 'back after the restart' });
    });

    await step(t, 'an expired token is refused: the page says so, is not logged in and does not hammer', async () => {
      carol = await openPage('carol', 101, { width: 1024, height: 700 }, keyed, `#token=${tokens.carol}`);
      await carol.locator(`${tid('conn-state')}[data-state="refused"]`).waitFor();
      assert.equal((await carol.locator(tid('conn-state')).innerText()).trim(), 'Not signed in');
      await waitMessage(carol, { kind: 'notice', notice: 'error', text: REFUSED });
      assert.match(await carol.locator(tid('conn-banner')).innerText(), /refused or has expired — reload from the site/);
      assert.equal(await selfName(carol), 'carol');
      assert.ok(!carol.url().includes('token'), carol.url());
      assert.equal(await carol.locator(tid('send-button')).isDisabled(), true);
      assert.ok(!(await onlineIn101()).includes('carol'));
      // The next try is 30 s away (±20 %), not the 0.5-s first retry of a lost connection.
      await sleep(2000);
      assert.equal(carol.sockets.length, 1, `sockets: ${carol.sockets.length}`);
      assert.equal(logins(carol).length, 1);
      assert.ok(!(await onlineIn101()).includes('carol'));
      await carol.screenshot({ path: path.join(SHOTS, 'chat-token-refused.png'), animations: 'disabled' });
    });

    await step(t, 'without a token the page on this node asks for the site and does not connect', async () => {
      const anon = await openPage('anon', 101, { width: 800, height: 600 }, keyed);
      await anon.locator(`${tid('conn-state')}[data-state="refused"]`).waitFor();
      assert.match(await anon.locator(tid('conn-banner')).innerText(), /sign-in from the site/);
      await sleep(500);
      assert.deepEqual(anon.sockets, []);
      await anon.context().close();
      delete pages.anon;
    });

    await step(t, 'no script errors on any page', async () => {
      assert.deepEqual(pageErrors, []);
    });
    for (const label of ['alice', 'bob', 'carol']) {
      if (pages[label]) { await pages[label].context().close(); delete pages[label]; }
    }
  } finally {
    assert.equal(await keyed.stop(), 0, `imgate exit code; output:\n${keyed.output}`);
    fs.rmSync(keyed.dir, { recursive: true, force: true });
  }
});
