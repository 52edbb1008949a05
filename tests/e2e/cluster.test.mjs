// Browser test of the chat page on a cluster: Debian's chromium driven by playwright-core, against
// a real redis-server, three imgate nodes in cluster mode on it, and Debian's nginx in front of
// them running deploy/nginx.conf (only its "EDIT:" lines rewritten: the nodes as upstreams, a
// free loopback port to listen on). Every port is free and chosen here.
//
//   node --test tests/e2e/cluster.test.mjs
//
// Environment (as tests/e2e/chat.test.mjs, plus):
//   IMGATE_BIN              the node to start (default: build/imgate in the repository)
//   IMGATE_SCREENSHOT_DIR   where screenshots go (default: build/screenshots)
//   CHROMIUM                the browser (default: /usr/bin/chromium)
//   IMGATE_NGINX            nginx (default: /usr/sbin/nginx)
//   IMGATE_REDIS_SERVER     redis-server (default: /usr/bin/redis-server)
//   IMGATE_NGINX_CONF       another nginx.conf to run instead of deploy/nginx.conf (to try a
//                           variant and watch the test fail, as tests/integration/nginxproc.py)
//
// Both pages load the chat page through nginx, so their WebSockets go through nginx's /acc, whose
// least_conn puts the second one on a node that holds nobody: the test checks from the nodes'
// own /system/state that A and B are on different nodes. Then: each page lists the other as
// online, A hears B's enter, a room message from A appears on B, a private message from B appears
// on A (the sends are HTTP POSTs through nginx, round robin over all three nodes), and when B's
// page closes A sees B leave. Screenshots: cluster-desktop.png (A), cluster-phone.png (B), and
// cluster-failure-<page>.png when a step fails.
// Every wait is bounded; everything started here is stopped by its PID in `after`, whatever
// happened, and gets SIGTERM from the kernel if this process is killed (setpriv --pdeathsig).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
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
const NGINX = process.env.IMGATE_NGINX || '/usr/sbin/nginx';
const REDIS_SERVER = process.env.IMGATE_REDIS_SERVER || '/usr/bin/redis-server';
const NGINX_CONF = process.env.IMGATE_NGINX_CONF || path.join(ROOT, 'deploy', 'nginx.conf');
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p));
const NODES = 3;

/* ---- processes --------------------------------------------------------------------------------- */

/* True if a RESP server on the port answers PING with +PONG. */
function redisPong(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: HOST, port });
    let got = '';
    s.setTimeout(500);
    s.once('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      got += d;
      if (got.includes('\r\n')) { s.destroy(); resolve(got.startsWith('+PONG')); }
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => { s.destroy(); resolve(false); });
  });
}


async function until(pred, what, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(50);
  }
}

/* One child process, output kept; stopped by its PID. */
class Proc {
  constructor(name, cmd, args, cwd) {
    this.name = name;
    this.output = '';
    // setpriv execs the program, so the PID is the program's own; it gets SIGTERM if we die.
    const [file, argv] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'TERM', '--', cmd, ...args]] : [cmd, args];
    const proc = spawn(file, argv.map(String), { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    proc.stdout.on('data', (d) => { this.output += d; });
    proc.stderr.on('data', (d) => { this.output += d; });
    proc.exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve({ code, sig })));
  }

  get pid() { return this.proc && this.proc.pid; }

  get running() { return this.proc && this.proc.exitCode === null && this.proc.signalCode === null; }

  /* Sends `sig`; after `timeout` ms SIGKILLs it and `kids` (PIDs it started, e.g. nginx's
     workers). Returns {code, sig} of the exit, or null if it had to be killed. */
  async stop(sig = 'SIGTERM', timeout = 10_000, kids = []) {
    const proc = this.proc;
    if (!proc) return null;
    if (!this.running) return proc.exited;
    proc.kill(sig);
    let timer;
    const late = new Promise((resolve) => { timer = setTimeout(resolve, timeout, null); });
    const res = await Promise.race([proc.exited, late]);
    clearTimeout(timer);
    if (res) return res;
    for (const pid of kids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    proc.kill('SIGKILL');
    await proc.exited;
    return null;
  }
}

/* PIDs of a process's children (nginx's workers). */
function children(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);
  } catch { return []; }
}

async function startRedis(dir) {
  const port = await freePort();
  const redis = new Proc('redis-server', REDIS_SERVER, ['--port', port, '--bind', HOST, '--save', '',
    '--appendonly', 'no', '--dir', dir, '--daemonize', 'no'], dir);
  redis.port = port;
  await until(async () => {
    if (!redis.running) throw new Error(`redis-server exited:\n${redis.output}`);
    return redisPong(port);
  }, 'redis-server to answer PING');
  return redis;
}

async function startNode(id, redisPort, dir) {
  const [httpPort, wsPort] = [await freePort(), await freePort()];
  fs.mkdirSync(dir);
  // cwd is the node's own temp dir, so no config/app.yaml from elsewhere is read.
  const node = new Proc(id, BIN, ['--app.httpPort', httpPort, '--app.webSocketPort', wsPort,
    '--app.bindAddress', HOST, '--app.logFile', path.join(dir, 'access.log'),
    '--app.appIds', '101,102,103,104', '--app.workers', '2',
    '--redis.addr', `${HOST}:${redisPort}`, '--cluster.nodeId', id], dir);
  Object.assign(node, { id, httpPort, wsPort, url: `http://${HOST}:${httpPort}` });
  await until(async () => {
    if (!node.running) throw new Error(`imgate ${id} exited early:\n${node.output}`);
    if (!(await canConnect(httpPort) && await canConnect(wsPort))) return false;
    const st = await state(node).catch(() => null);
    return st && st.cluster && st.cluster.usable;
  }, `node ${id} listening and linked to Redis`);
  return node;
}

async function state(node) {
  const res = await fetch(`${node.url}/system/state`);
  assert.equal(res.status, 200);
  return (await res.json()).data;
}

/* Logged-in WebSockets a node holds itself (its workers' counts, not cluster presence). */
async function loggedIn(node) {
  return (await state(node)).workers.reduce((n, w) => n + w.loggedIn, 0);
}

/* deploy/nginx.conf with its EDIT: lines replaced, as tests/integration/nginxproc.py does: the
   `server` lines of each upstream become one line per node (with the first line's parameters)
   and the one `listen` line gets 127.0.0.1:port. */
function renderConf(text, port, wsPorts, httpPorts) {
  for (const [name, ports] of [['imgate_ws', wsPorts], ['imgate_http', httpPorts]]) {
    const m = new RegExp(`^\\s*upstream\\s+${name}\\s*\\{([\\s\\S]*?)^\\s*\\}`, 'm').exec(text);
    assert.ok(m, `${NGINX_CONF}: no upstream ${name}`);
    const servers = [...m[1].matchAll(/^(\s*)server\s+[^\s;]+(\s[^;]*)?;[^\n]*\n/gm)];
    assert.ok(servers.length > 0, `${NGINX_CONF}: upstream ${name} has no server lines`);
    const [, indent, params = ''] = servers[0];
    const lines = ports.map((p) => `${indent}server ${HOST}:${p}${params};\n`).join('');
    let block = m[1];
    for (const s of servers.slice(1).reverse()) block = block.slice(0, s.index) + block.slice(s.index + s[0].length);
    block = block.slice(0, servers[0].index) + lines + block.slice(servers[0].index + servers[0][0].length);
    const start = m.index + m[0].indexOf(m[1]);
    text = text.slice(0, start) + block + text.slice(start + m[1].length);
  }
  let listens = 0;
  text = text.replace(/^(\s*)listen\s+[^;]+;/gm, (_, indent) => { listens++; return `${indent}listen ${HOST}:${port};`; });
  assert.equal(listens, 1, `${NGINX_CONF}: expected one listen line`);
  return text;
}

async function startNginx(prefix, nodes) {
  const port = await freePort();
  // Started as root, nginx runs its workers as nobody: they must reach temp/.
  fs.chmodSync(prefix, 0o755);
  for (const d of ['logs', 'temp']) fs.mkdirSync(path.join(prefix, d), { mode: 0o755 });
  const conf = path.join(prefix, 'nginx.conf');
  fs.writeFileSync(conf, renderConf(fs.readFileSync(NGINX_CONF, 'utf8'), port,
    nodes.map((n) => n.wsPort), nodes.map((n) => n.httpPort)));
  const nginx = new Proc('nginx', NGINX, ['-p', `${prefix}/`, '-e', path.join(prefix, 'logs', 'error.log'),
    '-c', conf, '-g', 'daemon off;'], prefix);
  Object.assign(nginx, { port, url: `http://${HOST}:${port}`, prefix });
  // The master writes its pid file after binding the port: then a connect reaches this nginx.
  const pidFile = path.join(prefix, 'logs', 'nginx.pid');
  await until(async () => {
    if (!nginx.running) throw new Error(`nginx exited:\n${nginx.output}${nginxErrors(nginx)}`);
    let pid = '';
    try { pid = fs.readFileSync(pidFile, 'utf8').trim(); } catch { return false; }
    return pid === String(nginx.pid) && canConnect(port);
  }, 'nginx listening');
  return nginx;
}

function nginxErrors(nginx) {
  try { return fs.readFileSync(path.join(nginx.prefix, 'logs', 'error.log'), 'utf8'); } catch { return ''; }
}

/* ---- page helpers (as in chat.test.mjs) -------------------------------------------------------- */

async function sendText(page, text) {
  const input = page.locator(tid('message-input'));
  await input.fill(text);
  await input.press('Enter');
}

async function withSidebar(page, fn) {
  const toggle = page.locator(tid('people-toggle'));
  if (await toggle.isVisible() && (await toggle.getAttribute('aria-expanded')) !== 'true') await toggle.click();
  return fn();
}

/* ---- the run ----------------------------------------------------------------------------------- */

let tmp;
let redis;
const nodes = [];
let nginx;
let browser;
const pages = {};
const pageErrors = [];

before(async () => {
  for (const [what, file] of [['imgate binary (set IMGATE_BIN)', BIN], ['browser (apt-get install chromium)', BROWSER],
    ['nginx (apt-get install nginx)', NGINX], ['redis-server (apt-get install redis-server)', REDIS_SERVER]]) {
    assert.ok(fs.existsSync(file), `no ${what} at ${file}`);
  }
  fs.mkdirSync(SHOTS, { recursive: true });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'imgate-e2e-cluster-'));
  fs.mkdirSync(path.join(tmp, 'redis'));
  redis = await startRedis(path.join(tmp, 'redis'));
  for (let i = 0; i < NODES; i++) nodes.push(await startNode(`e2e-n${i}`, redis.port, path.join(tmp, `n${i}`)));
  fs.mkdirSync(path.join(tmp, 'nginx'));
  nginx = await startNginx(path.join(tmp, 'nginx'), nodes);
  browser = await chromium.launch({
    executablePath: BROWSER,
    headless: true,
    timeout: 30_000,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-gpu',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
});

/* Stops everything, in order (browser, nginx, nodes, Redis), each by its PID, and only then
   fails if a node did not exit 0. */
after(async () => {
  const problems = [];
  try { if (browser) await browser.close(); } catch { /* already gone */ }
  if (nginx) {
    // SIGTERM is nginx's fast shutdown (the browser is gone, nothing to drain).
    const res = await nginx.stop('SIGTERM', 10_000, children(nginx.pid));
    if (!res) problems.push('nginx had to be killed');
  }
  for (const node of nodes) {
    const res = await node.stop('SIGTERM', 10_000);
    if (!res || res.code !== 0) problems.push(`imgate ${node.id} exit ${JSON.stringify(res)}; its output:\n${node.output}`);
  }
  if (redis) await redis.stop('SIGTERM', 10_000);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  assert.deepEqual(problems, []);
});

async function openPage(label, viewport) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on('pageerror', (err) => pageErrors.push(`${label}: ${err.message}`));
  page.sockets = [];
  page.on('websocket', (ws) => page.sockets.push(ws.url()));
  pages[label] = page;
  await page.goto(`${nginx.url}/home/index?appID=101`, { timeout: WAIT });
  return page;
}

/* Which node holds the one new logged-in connection since `before` (per-node counts). */
async function newLoginOn(before, what) {
  const now = await until(async () => {
    const counts = await Promise.all(nodes.map(loggedIn));
    return counts.reduce((a, b) => a + b, 0) === before.reduce((a, b) => a + b, 0) + 1 && counts;
  }, what);
  return now.findIndex((n, i) => n > before[i]);
}

/* The page's POSTs to /user/<route> in nginx's access log, in order: the HTTP port of the node
   nginx passed each one to ($upstream_addr). */
function posts(route) {
  let log = '';
  try { log = fs.readFileSync(path.join(nginx.prefix, 'logs', 'access.log'), 'utf8'); } catch { /* none yet */ }
  const re = new RegExp(`"POST /user/${route}[ ?].* upstream=[\\d.]+:(\\d+) `);
  return log.split('\n').map((l) => re.exec(l)).filter(Boolean).map((m) => Number(m[1]));
}

/* Sends messages from `page` (HTTP POSTs through nginx, round robin over the nodes) until one
   was taken by a node other than `to` (the receiver's node), so that delivery across nodes is
   what gets checked, not only a node's own; at most four. Returns the texts sent. */
async function sendAcross(page, to, route, text) {
  const sent = [];
  for (let k = 1; k <= 4; k++) {
    const before = posts(route).length;
    sent.push(text(k));
    await sendText(page, text(k));
    await waitMessage(page, { self: true, text: text(k), status: 'sent' });
    const ports = await until(() => posts(route).length > before && posts(route).slice(before),
      `the POST /user/${route} in nginx's access log`);
    if (ports.some((p) => p !== nodes[to].httpPort)) return sent;
  }
  throw new Error(`all ${sent.length} POSTs /user/${route} went to ${nodes[to].id}, the receiver's own node`);
}

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
          await page.screenshot({ path: path.join(SHOTS, `cluster-failure-${label}.png`), timeout: 5000 });
        } catch { /* the page may be gone */ }
      }
      if (pageErrors.length) err.message += `\nscript errors on the pages:\n${pageErrors.join('\n')}`;
      throw err;
    }
  });
}

test('chat page on a cluster behind nginx: two people on two nodes', { timeout: 120_000 }, async (t) => {
  let A, B, nameA, nameB, nodeA, nodeB;

  await step(t, 'A opens the page through nginx; its WebSocket lands on a node', async () => {
    const before = await Promise.all(nodes.map(loggedIn));
    A = await openPage('A', { width: 1280, height: 800 });
    await waitConnected(A);
    nameA = await selfName(A);
    assert.deepEqual(A.sockets, [`ws://${HOST}:${nginx.port}/acc`], 'the WebSocket goes through nginx');
    nodeA = await newLoginOn(before, 'A counted on a node');
    await waitUsers(A, [nameA], nameA);
  });

  await step(t, 'B opens the page through nginx; least_conn puts it on another node', async () => {
    const before = await Promise.all(nodes.map(loggedIn));
    B = await openPage('B', { width: 390, height: 844 });
    await waitConnected(B);
    nameB = await selfName(B);
    assert.notEqual(nameB, nameA);
    assert.deepEqual(B.sockets, [`ws://${HOST}:${nginx.port}/acc`], 'the WebSocket goes through nginx');
    nodeB = await newLoginOn(before, 'B counted on a node');
    assert.notEqual(nodeB, nodeA, `A and B are both on ${nodes[nodeA].id}`);
    t.diagnostic(`A on ${nodes[nodeA].id}, B on ${nodes[nodeB].id}`);
  });

  await step(t, 'each page lists the other as online; A hears B enter', async () => {
    await waitUsers(B, [nameA, nameB], nameB);
    await waitUsers(A, [nameA, nameB], nameA);
    await waitMessage(A, { kind: 'notice', notice: 'enter', from: nameB });
  });

  await step(t, 'a room message from A appears on B, also one that went through another node', async () => {
    const texts = await sendAcross(A, nodeB, 'sendMessageAll', (k) => `Hello from A, across the cluster (${k})`);
    for (const text of texts) {
      const got = await waitMessage(B, { kind: 'room', text });
      assert.equal(got.from, nameA);
      assert.equal(got.self, false);
    }
  });

  await step(t, 'a private message from B to A appears on A, private, also through another node', async () => {
    await withSidebar(B, () => B.locator(`${tid('user-item')}[data-user="${nameA}"] button`).click());
    assert.equal(await B.locator(tid('dm-target')).innerText(), nameA);
    const texts = await sendAcross(B, nodeA, 'sendMessage', (k) => `psst, only for A (${k})`);
    for (const text of texts) {
      const own = await waitMessage(B, { kind: 'private', self: true, text, status: 'sent' });
      assert.equal(own.to, nameA);
      const got = await waitMessage(A, { kind: 'private', text });
      assert.equal(got.from, nameB);
      assert.equal(got.to, nameA);
    }
    await B.locator(tid('dm-cancel')).click();
  });

  await step(t, 'screenshots: A (desktop) and B (phone) on two nodes', async () => {
    await A.screenshot({ path: path.join(SHOTS, 'cluster-desktop.png'), animations: 'disabled' });
    await B.screenshot({ path: path.join(SHOTS, 'cluster-phone.png'), animations: 'disabled' });
  });

  await step(t, 'B closes its page: A sees B leave', async () => {
    await B.context().close();
    delete pages.B;
    await waitMessage(A, { kind: 'notice', notice: 'exit', from: nameB });
    await waitUsers(A, [nameA], nameA);
    await until(async () => (await loggedIn(nodes[nodeB])) === 0, `${nodes[nodeB].id} to let B go`);
  });

  await step(t, 'no script errors on the pages', async () => {
    assert.deepEqual(pageErrors, []);
  });
});
