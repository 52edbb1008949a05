/* What the browser tests share: free loopback ports, waiting for a port, and reading the chat
 * page (web/index.html) through its data-testid attributes — the connection state, our own
 * name, the messages and the online list — with waits that fail with what the page showed. */
import assert from 'node:assert/strict';
import net from 'node:net';

export const HOST = '127.0.0.1';
export const WAIT = 10_000; // one UI update after real traffic; generous for a loaded CI machine

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, HOST, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: HOST, port });
    s.setTimeout(300);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
    s.once('timeout', () => { s.destroy(); resolve(false); });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const tid = (id) => `[data-testid="${id}"]`;

export async function waitConnected(page, timeout = WAIT) {
  await page.locator(`${tid('conn-state')}[data-state="connected"]`).waitFor({ timeout });
  assert.equal((await page.locator(tid('conn-state')).innerText()).trim(), 'Connected');
}

export async function selfName(page) {
  return (await page.locator(tid('self-name')).innerText()).trim();
}

/* All messages of a page as plain objects, from the DOM. */
export function messages(page) {
  return page.locator(`${tid('messages')} > ${tid('message')}`).evaluateAll((els) => els.map((e) => ({
    kind: e.dataset.kind,
    notice: e.dataset.notice || '',
    from: e.dataset.from,
    to: e.dataset.to,
    self: e.dataset.self === 'true',
    status: e.dataset.status || '',
    text: e.querySelector('[data-testid="message-text"]').textContent,
    sender: e.querySelector('[data-testid="message-sender"]')?.textContent ?? '',
  })));
}

/* Waits until a message matching `want` (a subset of its fields) is on the page; returns it. */
export async function waitMessage(page, want, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  let last = [];
  while (Date.now() < deadline) {
    last = await messages(page);
    const hit = last.find((m) => Object.entries(want).every(([k, v]) => m[k] === v));
    if (hit) return hit;
    await sleep(50);
  }
  throw new Error(`no message ${JSON.stringify(want)} within ${timeout} ms; the page shows:\n` +
    last.map((m) => JSON.stringify(m)).join('\n'));
}

/* The online list: [{name, self}] in page order. */
export function users(page) {
  return page.locator(`${tid('user-list')} > ${tid('user-item')}`).evaluateAll((els) =>
    els.map((e) => ({ name: e.dataset.user, self: e.dataset.self === 'true' })));
}

/* Waits until the online list is exactly `names`, with `self` marked as ourselves. */
export async function waitUsers(page, names, self, timeout = WAIT) {
  const want = [...names].sort();
  const deadline = Date.now() + timeout;
  let got = [];
  while (Date.now() < deadline) {
    got = await users(page);
    const gotNames = got.map((u) => u.name).sort();
    const selfs = got.filter((u) => u.self).map((u) => u.name);
    if (JSON.stringify(gotNames) === JSON.stringify(want) &&
        selfs.length === 1 && selfs[0] === self) {
      const count = Number(await page.locator(tid('user-count')).textContent());
      assert.equal(count, want.length, 'user-count');
      return;
    }
    await sleep(50);
  }
  throw new Error(`online list ${JSON.stringify(got)}, wanted ${JSON.stringify(want)} with ` +
    `self ${self}`);
}
