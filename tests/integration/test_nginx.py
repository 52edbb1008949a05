"""imgate behind nginx: deploy/nginx.conf, run as it is by Debian's nginx (nginxproc.py rewrites
only its upstream servers and listen port). Through nginx's one port: the WebSocket upgrade on
/acc with python3-websockets (a client we did not write), the chat page, the HTTP API, a push
from POST /user/sendMessage to a WebSocket, keep-alive on both sides of the proxy, /acc and the
rest going to the right ports, least_conn balancing, the timeouts the file must keep longer
than imgate's, and that nginxproc.py leaves no nginx behind.

The two nodes are independent today (no Redis yet), so whether a push through nginx reaches a
user depends on which node nginx picked. End-to-end delivery is therefore checked with ONE node
behind nginx; with two nodes only facts that hold whichever node is picked are asserted (both
get traffic; a push arrives exactly when the node that took it answered sendResults true), and
they stay true once the nodes share Redis.

Run: IMGATE_BIN=build/imgate /usr/bin/python3 -m unittest -v test_nginx
"""

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest

import websockets

import nginxproc
import redisproc
from harness import BIN, Node
from imtest import Client, Http, push_bytes, raw_ws, response, uid, wait_until
from nginxproc import CONF, Nginx

WAIT = 5
PING_REPLY = b'{"seq":"1","cmd":"ping","response":{"code":200,"codeMsg":"Success","data":"pong"}}'


def start_node(case, **options):
    """A node for the whole class; at the end it must exit 0 on SIGTERM."""
    node = Node(**options)
    try:
        node.start()
    except Exception:
        node.cleanup()
        raise

    def stop():
        code = node.stop()
        err = node.stderr()
        node.cleanup()
        if code != 0:
            raise AssertionError("imgate exit code %r, stderr:\n%s" % (code, err[-4000:]))

    case.addClassCleanup(stop)
    return node


def start_nginx(case, ws_ports, http_ports):
    nginx = Nginx(ws_ports, http_ports).start()
    case.addClassCleanup(nginx.cleanup)
    return nginx


def logged_in(node):
    """Logged-in WebSocket connections on this node itself (not the cluster's view)."""
    return sum(w["loggedIn"] for w in node.state()["workers"])


def access_log(node):
    try:
        with open(node.options["app.logFile"], encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def seconds(value):
    """An nginx time value (420s, 7m, 1h, 420) in seconds."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", value)
    n, unit = int(m.group(1)), m.group(2) or "s"
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def in_thread(fn, *args):
    """Runs a blocking call (HTTP) off the event loop, so the WebSocket keeps being read."""
    return asyncio.get_running_loop().run_in_executor(None, fn, *args)


class OneNodeBehindNginx(unittest.TestCase):
    """One node behind nginx: every request lands on it, so delivery can be asserted."""

    @classmethod
    def setUpClass(cls):
        cls.node = start_node(cls)
        cls.nginx = start_nginx(cls, [cls.node.ws_port], [cls.node.http_port])

    def setUp(self):
        self.http = Http(self.nginx.port)
        self.addCleanup(self.http.close)

    def online(self, user):
        status, _, body, _ = self.http.get("/user/online", {"userID": user, "appID": 101})
        self.assertEqual(status, 200, body)
        return body["data"]["online"]

    def run_ws(self, coro):
        asyncio.run(asyncio.wait_for(coro, 30))

    def connect(self):
        return websockets.connect(self.nginx.ws_url, open_timeout=WAIT, close_timeout=WAIT,
                                  ping_interval=None)

    async def login(self, ws, user, app=101):
        await ws.send(json.dumps({"seq": "1", "cmd": "login",
                                  "data": {"appID": app, "userID": user}}))
        reply = await asyncio.wait_for(ws.recv(), WAIT)
        self.assertEqual(reply.encode(), response("1", "login", 200))

    def test_websocket_library_through_nginx(self):
        """Upgrade, login, heartbeat, ping and a WebSocket ping/pong, all through nginx; the user
        is online through nginx's HTTP side while connected and offline after the close."""
        user = uid("ng")

        async def run():
            async with self.connect() as ws:
                self.assertEqual(ws.response_headers["Upgrade"].lower(), "websocket")
                self.assertEqual(ws.extensions, [])
                await self.login(ws, user)
                await ws.send(json.dumps({"seq": "2", "cmd": "heartbeat", "data": {}}))
                reply = await asyncio.wait_for(ws.recv(), WAIT)
                self.assertEqual(reply.encode(), response("2", "heartbeat", 200))
                await ws.send(b'{"seq":"1","cmd":"ping"}')
                self.assertEqual((await asyncio.wait_for(ws.recv(), WAIT)).encode(), PING_REPLY)
                # Control frames cross the tunnel too.
                await asyncio.wait_for(await ws.ping(b"through nginx"), WAIT)
                self.assertTrue(await in_thread(self.online, user))
            self.assertEqual(ws.close_code, 1000)

        self.run_ws(run())
        wait_until(lambda: not self.online(user), WAIT, what="user offline after the close")

    def test_push_through_nginx(self):
        """POST /user/sendMessage and /user/sendMessageAll through nginx reach WebSockets that
        came through nginx, byte for byte."""
        alice, bob = uid("na"), uid("nb")

        async def run():
            async with self.connect() as wa, self.connect() as wb:
                await self.login(wa, alice)
                await self.login(wb, bob)
                # bob's login is pushed to alice as `enter`; skip it.
                enter = json.loads(await asyncio.wait_for(wa.recv(), WAIT))
                self.assertEqual((enter["cmd"], enter["response"]["data"]["from"]), ("enter", bob))

                msg_id = uid("m")
                status, _, body, _ = await in_thread(
                    self.http.post, "/user/sendMessage",
                    {"appID": 101, "userID": alice, "message": "hi <via> nginx", "msgID": msg_id,
                     "from": bob})
                self.assertEqual((status, body["data"]), (200, {"sendResults": True}), body)
                got = await asyncio.wait_for(wa.recv(), WAIT)
                self.assertEqual(got.encode(), push_bytes(msg_id, "msg", "hi <via> nginx", bob,
                                                          target=alice))

                all_id = uid("m")
                status, _, body, _ = await in_thread(
                    self.http.post, "/user/sendMessageAll",
                    {"appID": 101, "userID": alice, "message": "to the room", "msgID": all_id})
                self.assertEqual((status, body["data"]), (200, {"sendResults": True}), body)
                got = await asyncio.wait_for(wb.recv(), WAIT)
                self.assertEqual(got.encode(), push_bytes(all_id, "msg", "to the room", alice))

        self.run_ws(run())

    def test_chat_page_through_nginx(self):
        """The page and its files come through unchanged (status, type, bytes, ETag, 304), and
        the relative redirect of / is passed as it is."""
        for path in ("/home/index", "/web/app.js", "/web/style.css", "/home/config"):
            status, h, _, raw = self.http.get(path)
            direct = Http(self.node.http_port)
            try:
                d_status, d_h, _, d_raw = direct.get(path)
            finally:
                direct.close()
            self.assertEqual((status, d_status), (200, 200), path)
            self.assertEqual(raw, d_raw, path)
            self.assertEqual(h.get("content-type"), d_h.get("content-type"), path)
        status, h, _, raw = self.http.get("/home/index")
        self.assertTrue(h["content-type"].startswith("text/html"), h)
        self.assertIn(b"<html", raw)
        status, _, _, _ = self.http.get("/home/index", headers={"If-None-Match": h["etag"]})
        self.assertEqual(status, 304)
        status, h, _, _ = self.http.get("/")
        self.assertEqual((status, h.get("location")), (302, "home/index"))

    def test_errors_pass_through(self):
        """imgate's JSON error replies reach the caller, not an nginx error page: a send without
        parameters (400), an unknown route (404), and a plain GET /acc, not an upgrade (400)."""
        for method, path, want in (("POST", "/user/sendMessage", 400), ("GET", "/nope", 404),
                                   ("GET", "/acc", 400)):
            params = {} if method == "POST" else None
            status, h, body, _ = self.http.request(method, path, params)
            self.assertEqual(status, want, (path, body))
            self.assertTrue(h.get("content-type", "").startswith("application/json"), (path, h))
            self.assertEqual(body["code"], want, body)
            # nginx keeps the client connection even when imgate closed its side after a 400.
            self.assertEqual(self.http.get("/home/config")[0], 200)

    def test_keepalive_on_both_sides(self):
        """Client side: many requests on one connection to nginx. Node side: nginx reuses its
        connections to the node (upstream keepalive), so 40 requests on 40 client connections
        open about one node connection per nginx worker, not 40."""
        port = self.http.local_port()
        for _ in range(20):
            self.assertEqual(self.http.get("/user/list", {"appID": 101})[0], 200)
            if port is None:
                port = self.http.local_port()
            self.assertEqual(self.http.local_port(), port, "nginx closed a keep-alive connection")

        n = 40
        before = self.node.state()["counters"]["connectionsAccepted"]
        for _ in range(n):
            c = Http(self.nginx.port)
            try:
                self.assertEqual(c.get("/user/list", {"appID": 101})[0], 200)
            finally:
                c.close()
        after = self.node.state()["counters"]["connectionsAccepted"]
        to_node = after - before - 1    # the second state() call's own connection
        workers = len(self.nginx.worker_pids())
        self.assertGreaterEqual(workers, 1)
        self.assertLessEqual(to_node, 2 * workers + 1,
                             "%d requests opened %d connections to the node" % (n, to_node))

    def test_timeouts_longer_than_imgate(self):
        """The WebSocket tunnel's idle timeouts must outlast imgate's heartbeat timeout, or nginx
        cuts clients that imgate would keep (nginx's default is 60 s; waiting that long in a
        test is not an option, so the file is read)."""
        out = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=10).stdout
        heartbeat = int(re.search(r"--app\.heartbeatTimeout\s.*default (\d+)", out).group(1))
        with open(CONF) as f:
            conf = f.read()
        acc = re.search(r"location\s+/acc\s*\{(.*?)\}", conf, re.S)
        self.assertIsNotNone(acc, "no location /acc in " + CONF)
        for name in ("proxy_read_timeout", "proxy_send_timeout"):
            m = re.search(r"^\s*%s\s+(\S+);" % name, acc.group(1), re.M)
            self.assertIsNotNone(m, "%s not set in location /acc (default 60 s)" % name)
            self.assertGreater(seconds(m.group(1)), heartbeat, name)


class TwoNodesBehindNginx(unittest.TestCase):
    """Two nodes in both upstreams, and a second nginx wired crosswise (/acc to node a only,
    everything else to node b only) to see which port each location reaches."""

    @classmethod
    def setUpClass(cls):
        cls.a = start_node(cls)
        cls.b = start_node(cls)
        cls.nodes = (cls.a, cls.b)
        cls.nginx = start_nginx(cls, [cls.a.ws_port, cls.b.ws_port],
                                [cls.a.http_port, cls.b.http_port])
        cls.cross = start_nginx(cls, [cls.a.ws_port], [cls.b.http_port])

    def setUp(self):
        self.clients = []
        self.addCleanup(self.close_all)

    def close_all(self):
        for c in self.clients:
            c.shutdown()
        # The next test counts connections: wait until these are gone on the nodes.
        wait_until(lambda: all(logged_in(n) == 0 for n in self.nodes), WAIT,
                   what="connections of the last test closed")

    def client(self, nginx=None, user=None):
        c = Client((nginx or self.nginx).port, user or uid("tw"))
        self.clients.append(c)
        return c

    def counts(self):
        return tuple(logged_in(n) for n in self.nodes)

    def open_and_locate(self):
        """Opens one logged-in client through nginx and returns (client, index of its node)."""
        before = self.counts()
        c = self.client()

        def counted():
            now = self.counts()
            return now if sum(now) == sum(before) + 1 else None

        now = wait_until(counted, WAIT, what="the new login counted on a node")
        return c, [i for i in range(2) if now[i] > before[i]][0]

    def test_websockets_balanced_by_open_connections(self):
        """least_conn: after a node's connections are closed, the next connection goes to it,
        even where plain round robin would pick the other node."""
        placed = [self.open_and_locate() for _ in range(3)]
        self.assertEqual(sorted(i for _, i in placed[:2]), [0, 1], "one each first")
        x = placed[2][1]                       # the node that now has two
        for c, i in placed:
            if i == x:
                c.shutdown()
        wait_until(lambda: self.counts()[x] == 0, WAIT, what="node %d emptied" % x)
        _, i = self.open_and_locate()
        self.assertEqual(i, x, "the new connection did not go to the node with fewer")
        self.assertEqual(self.counts(), (1, 1))

    def test_push_arrives_exactly_when_delivered(self):
        """Pushes through nginx's HTTP side land on either node. Each node that takes one
        answers sendResults true exactly when it delivers it, and the client sees exactly those:
        today the half that reached the user's node, with Redis all of them."""
        c = self.client()
        http = Http(self.nginx.port)
        self.addCleanup(http.close)
        sent = {}
        for k in range(8):
            msg_id = uid("p")
            status, _, body, _ = http.post("/user/sendMessage", {
                "appID": 101, "userID": c.user, "message": "n%d" % k, "msgID": msg_id})
            self.assertEqual(status, 200, body)
            sent[msg_id] = body["data"]["sendResults"]
        delivered = {m for m, ok in sent.items() if ok}
        self.assertTrue(delivered, "no push reached the user's node: %r" % sent)
        for m in delivered:
            c.wait_for(lambda p, m=m: p.get("seq") == m, WAIT, "push %s" % m)
        time.sleep(0.3)                        # anything undelivered would have come by now
        got = {p["seq"] for p in c.pushes("msg")}
        self.assertEqual(got, delivered)
        # Round robin spread the 8 requests over both nodes.
        posts = [access_log(n).count("POST /user/sendMessage ") for n in self.nodes]
        self.assertTrue(all(posts), "requests per node: %r" % posts)

    def test_acc_goes_to_websocket_ports_and_the_rest_to_http_ports(self):
        """Through the crosswise nginx: /acc reaches node a's WebSocket port, the page and the
        API node b's HTTP port, and neither reaches the other."""
        tag = uid("t")
        self.client(self.cross)
        ws = raw_ws(self.cross.port, path="/acc?tag=" + tag)    # tagged, to find it in the logs
        self.addCleanup(ws.close)
        http = Http(self.cross.port)
        self.addCleanup(http.close)
        for path in ("/home/index", "/user/list"):
            self.assertEqual(http.get(path, {"appID": 101, "tag": tag})[0], 200, path)
        self.assertEqual(self.counts(), (1, 0), "the login went to node a")

        def tagged(node):
            return [line.split('"')[1] for line in access_log(node).splitlines() if tag in line]

        wait_until(lambda: len(tagged(self.a)) + len(tagged(self.b)) == 3, WAIT,
                   what="the three requests in the access logs")
        self.assertEqual(tagged(self.a), ["GET /acc?tag=%s HTTP/1.1" % tag])
        self.assertEqual(sorted(tagged(self.b)), [
            "GET /home/index?appID=101&tag=%s HTTP/1.1" % tag,
            "GET /user/list?appID=101&tag=%s HTTP/1.1" % tag])


CHILD = """
import os, signal, sys
sys.path.insert(0, %r)
from nginxproc import Nginx
n = Nginx([1], [2]).start()
print(n.prefix, n.pid, *n.worker_pids(), flush=True)
if sys.argv[1] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


def alive(pid):
    """True if pid is a running (not zombie) process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class NginxLeftoversTest(unittest.TestCase):
    """A test process that ends without stopping its nginx, normally (atexit) or killed
    (parent-death signal to the master), leaves no master or worker behind."""

    def run_child(self, how):
        out = subprocess.run([sys.executable, "-c", CHILD % os.path.dirname(
            os.path.abspath(nginxproc.__file__)), how], capture_output=True, text=True, timeout=30)
        prefix, *pids = out.stdout.split()
        self.addCleanup(shutil.rmtree, prefix, True)
        pids = [int(p) for p in pids]
        self.assertGreaterEqual(len(pids), 2, "master and at least one worker: %r" % out)
        deadline = time.monotonic() + WAIT
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual([p for p in pids if alive(p)], [], "nginx processes left (%s)" % how)
        return out, prefix

    def test_atexit(self):
        out, prefix = self.run_child("exit")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertFalse(os.path.exists(prefix))

    @unittest.skipUnless(redisproc.SETPRIV, "needs setpriv (util-linux) for --pdeathsig")
    def test_killed_test_process(self):
        out, _ = self.run_child("kill")
        self.assertEqual(out.returncode, -signal.SIGKILL, out.stderr)


if __name__ == "__main__":
    unittest.main()
