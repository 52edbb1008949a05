"""A cluster behind nginx, used only through nginx's one port: three imgate nodes on one real
redis-server (clustertest.Cluster) behind Debian's nginx running deploy/nginx.conf
(nginxproc.Nginx, the nodes' ports as its upstreams). Many python3-websockets clients (the
client we did not write) log in through nginx and least_conn spreads them over every node; a
room push POSTed through nginx reaches every client exactly once, in order, whichever node took
the POST; a direct message POSTed through nginx reaches its user whichever node holds them
(sendResults true) and nobody else; /user/list and /user/online through nginx answer for the
whole cluster, from every node, also after some users left.

Which node holds a client is read from the nodes' own /system/state (their local loggedIn
counts, not cluster presence); which node answered an HTTP request, from nginx's access log
($upstream_addr), so each test can also check that it went across nodes.

The cluster assertions are meant to fail without the cluster. IMGATE_TEST_INDEPENDENT=1 starts
the same three nodes without redis.addr (independent nodes, each knowing only its own clients):
then the room push, direct message and list/online tests must fail and only the spread test may
pass. IMGATE_NGINX_CONF (nginxproc.py) runs another nginx.conf, e.g. one without least_conn.

Run: IMGATE_BIN=build/imgate /usr/bin/python3 -m unittest -v test_cluster_nginx
"""

import asyncio
import collections
import json
import os
import re
import time
import unittest
from urllib.parse import urlencode

import websockets

from clustertest import Cluster
from harness import Node
from imtest import Http, uid, wait_until
from nginxproc import Nginx

WAIT = 10
CLIENTS = 30
INDEPENDENT = os.environ.get("IMGATE_TEST_INDEPENDENT") == "1"


def logged_in(node):
    """Logged-in WebSocket connections held by this node itself."""
    return sum(w["loggedIn"] for w in node.state()["workers"])


def in_thread(fn, *args):
    """A blocking call (HTTP, /system/state) off the event loop, so the WebSockets keep being
    read meanwhile."""
    return asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def until(pred, timeout=WAIT, what="condition"):
    """Awaits until the blocking pred() (run in a thread) returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        v = await in_thread(pred)
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
        await asyncio.sleep(0.05)


class Crowd:
    """`n` python3-websockets clients through nginx, logged in to `room` one after another. For
    each: the user, the index of the node that holds it (the node whose own loggedIn count went
    up) and every push it received (parsed), in order."""

    def __init__(self, case, room, n=CLIENTS, prefix="c"):
        self.case, self.room, self.n = case, room, n
        self.users = ["%s%02d%s" % (prefix, i, uid("")[:8]) for i in range(n)]
        self.node_of = {}
        self.pushes = collections.defaultdict(list)
        self.ws = {}
        self.tasks = []

    async def __aenter__(self):
        try:
            for user in self.users:
                await self.join(user)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def join(self, user):
        nodes = self.case.nodes
        before = await in_thread(lambda: [logged_in(n) for n in nodes])
        ws = await websockets.connect(self.case.nginx.ws_url, open_timeout=WAIT,
                                      close_timeout=2, ping_interval=None, max_queue=None)
        self.ws[user] = ws
        await ws.send(json.dumps({"seq": "login", "cmd": "login",
                                  "data": {"appID": self.room, "userID": user}}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        self.case.assertEqual(reply["response"]["code"], 200, reply)
        self.tasks.append(asyncio.create_task(self.read(ws, user)))

        def placed():
            now = [logged_in(n) for n in nodes]
            up = [i for i in range(len(nodes)) if now[i] > before[i]]
            return up if sum(now) == sum(before) + 1 and len(up) == 1 else None
        self.node_of[user] = (await until(placed, what="%s counted on one node" % user))[0]

    async def read(self, ws, user):
        try:
            async for m in ws:
                d = json.loads(m)
                if d.get("cmd") in ("msg", "enter", "exit", "presence"):
                    self.pushes[user].append(d)
        except websockets.ConnectionClosed:
            pass

    def msgs(self, user):
        """The msgIDs (seq) of the `msg` pushes a user received, in arrival order."""
        return [p["seq"] for p in self.pushes[user] if p["cmd"] == "msg"]

    async def leave(self, user):
        await self.ws.pop(user).close()

    async def close(self):
        for ws in self.ws.values():
            await ws.close()
        self.ws.clear()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        # The next test counts logins per node: wait until these are gone everywhere.
        await until(lambda: all(logged_in(n) == 0 for n in self.case.nodes),
                    what="the crowd's connections closed on every node")


class ClusterBehindNginx(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if INDEPENDENT:
            cls.cluster = None
            cls.nodes = [Node() for _ in range(3)]
            for n in cls.nodes:
                cls.addClassCleanup(n.cleanup)
                n.start()
        else:
            cls.cluster = Cluster(3)
            cls.addClassCleanup(cls.stop_cluster)
            cls.cluster.start()
            cls.nodes = cls.cluster.nodes
        cls.nginx = Nginx([n.ws_port for n in cls.nodes], [n.http_port for n in cls.nodes])
        cls.addClassCleanup(cls.nginx.cleanup)
        cls.nginx.start()
        cls.port_node = {n.http_port: i for i, n in enumerate(cls.nodes)}

    @classmethod
    def stop_cluster(cls):
        errs = {n.node_id: n.stderr() for n in cls.cluster.nodes}
        codes = cls.cluster.stop()
        bad = {k: v for k, v in codes.items() if v != 0}
        if bad:
            raise AssertionError("exit codes %r; stderr:\n%s" % (
                bad, "\n".join(errs[k][-3000:] for k in bad)))

    def setUp(self):
        # Every request of the test goes to nginx's one port.
        self.http = Http(self.nginx.port)
        self.addCleanup(self.http.close)

    def run_async(self, coro, timeout=90):
        asyncio.run(asyncio.wait_for(coro, timeout))

    def request(self, method, path, params, tag):
        """A request through nginx, tagged (?t=tag, which imgate ignores) so that nginx's access
        log tells which node answered it (answered_by). Returns (status, JSON body)."""
        if method == "GET":
            status, _, body, _ = self.http.get("%s?%s&t=%s" % (path, urlencode(params), tag))
        else:
            status, _, body, _ = self.http.post("%s?t=%s" % (path, tag), params)
        return status, body

    def answered_by(self, tags):
        """{tag: index of the node nginx passed the request to}, from nginx's access log."""
        want = set(tags)

        def read():
            found = {}
            for line in self.nginx.access_log().splitlines():
                m = re.search(r'[?&]t=([\w-]+)[& ].* upstream=[\d.]+:(\d+) ', line)
                if m and m.group(1) in want:
                    found[m.group(1)] = self.port_node[int(m.group(2))]
            return found if len(found) == len(want) else None
        return wait_until(read, WAIT, what="the requests in nginx's access log")

    # ---- the tests ----------------------------------------------------------------------------

    def test_logins_spread_over_every_node(self):
        """least_conn puts the logins through the one port on every node, and each node holds
        them itself (its own loggedIn count)."""
        async def run():
            async with Crowd(self, 101, prefix="s") as crowd:
                per_node = collections.Counter(crowd.node_of.values())
                counts = await in_thread(lambda: [logged_in(n) for n in self.nodes])
                self.assertEqual(sum(counts), CLIENTS)
                self.assertEqual([per_node[i] for i in range(3)], counts)
                self.assertTrue(all(counts), "logins per node: %r" % counts)
                # least_conn with logins one after another: as even as it gets.
                self.assertLessEqual(max(counts) - min(counts), 1, counts)
        self.run_async(run())

    def test_room_push_reaches_every_client_exactly_once(self):
        """Room pushes POSTed through nginx (round robin over the nodes' HTTP ports) reach every
        client exactly once and in order, whichever node took the POST and whichever holds the
        client; not the sender's own connection."""
        room, posts = 102, 6

        async def run():
            async with Crowd(self, room, prefix="r") as crowd:
                sender = crowd.users[0]
                ids = [uid("rm") for _ in range(posts)]
                for mid in ids:
                    st, body = await in_thread(self.request, "POST", "/user/sendMessageAll", {
                        "appID": room, "userID": sender, "message": "to all " + mid,
                        "msgID": mid}, mid)
                    self.assertEqual((st, body["data"]), (200, {"sendResults": True}), body)
                by = await in_thread(self.answered_by, ids)
                self.assertEqual(sorted(set(by.values())), [0, 1, 2],
                                 "the posts did not go to every node: %r" % by)
                receivers = crowd.users[1:]
                deadline = time.monotonic() + WAIT
                while time.monotonic() < deadline and \
                        sum(len(crowd.msgs(u)) for u in receivers) < len(receivers) * posts:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.3)     # a duplicate would have time to arrive
                wrong = {"%s on n%d" % (u, crowd.node_of[u]): crowd.msgs(u)
                         for u in receivers if crowd.msgs(u) != ids}
                self.assertEqual(wrong, {}, "%d of %d clients did not get each push exactly "
                                 "once in order (sent %r)" % (len(wrong), len(receivers), ids))
                self.assertEqual(crowd.msgs(sender), [], "the sender got its own room push")
                for u in receivers:
                    for p in crowd.pushes[u]:
                        if p["cmd"] == "msg":
                            self.assertEqual(p["response"]["data"]["from"], sender)
                            self.assertEqual(p["response"]["data"]["target"], "")
        self.run_async(run())

    def test_direct_message_reaches_the_user_on_any_node(self):
        """Three direct messages to each client, POSTed through nginx one after another (round
        robin: through each node in turn): every one answers sendResults true, the user gets
        each exactly once and nobody else does. Every pair (node that took the POST, node that
        holds the user) is covered, the six cross-node ones too."""
        room, per_user = 104, 3

        async def run():
            async with Crowd(self, room, prefix="d") as crowd:
                sent = {}
                for u in crowd.users:
                    for k in range(per_user):
                        mid = uid("dm")
                        st, body = await in_thread(self.request, "POST", "/user/sendMessage", {
                            "appID": room, "userID": u, "message": "for %s %d" % (u, k),
                            "msgID": mid, "from": "boss"}, mid)
                        self.assertEqual(st, 200, body)
                        sent[mid] = (u, body["data"])
                by = await in_thread(self.answered_by, list(sent))
                pairs = {(by[mid], crowd.node_of[u]) for mid, (u, _) in sent.items()}
                self.assertEqual(pairs, {(a, h) for a in range(3) for h in range(3)},
                                 "(node that took the POST, node of the user) not all covered")
                undelivered = {"%s: %s on n%d via n%d" % (mid, u, crowd.node_of[u], by[mid]): data
                               for mid, (u, data) in sent.items()
                               if data != {"sendResults": True}}
                self.assertEqual(undelivered, {}, "sendResults not true")
                deadline = time.monotonic() + WAIT
                while time.monotonic() < deadline and \
                        sum(len(crowd.msgs(u)) for u in crowd.users) < len(sent):
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.3)
                want = collections.defaultdict(list)
                for mid, (u, _) in sent.items():
                    want[u].append(mid)
                got = {u: crowd.msgs(u) for u in crowd.users}
                self.assertEqual(got, dict(want))
                for u in crowd.users:
                    data = [p["response"]["data"] for p in crowd.pushes[u] if p["cmd"] == "msg"]
                    self.assertEqual(data, [{"target": u, "type": "text", "from": "boss",
                                             "msg": "for %s %d" % (u, k)}
                                            for k in range(per_user)])
                # Nobody online under that name anywhere: false, from every node.
                tags = [uid("off") for _ in range(3)]
                for t in tags:
                    st, body = await in_thread(self.request, "POST", "/user/sendMessage", {
                        "appID": room, "userID": uid("nobody"), "message": "m"}, t)
                    self.assertEqual((st, body["data"]), (200, {"sendResults": False}))
        self.run_async(run())

    def test_list_and_online_answer_for_the_whole_cluster(self):
        """/user/list and /user/online through nginx: every node (round robin) answers with the
        whole cluster's users, and follows when users on every node leave."""
        room = 103

        def list_from_every_node(expected):
            """GET /user/list until three answers in a row, from three different nodes, list
            exactly `expected`; returns the answers."""
            def attempt():
                tags = [uid("ls") for _ in range(3)]
                answers = [self.request("GET", "/user/list", {"appID": room}, t) for t in tags]
                ok = all(st == 200 and sorted(b["data"]["userList"]) == sorted(expected)
                         and b["data"]["userCount"] == len(expected) for st, b in answers)
                return ok and (tags, answers)
            try:
                tags, answers = wait_until(attempt, WAIT, what="the cluster's list")
            except AssertionError:
                tags = [uid("ls") for _ in range(3)]
                answers = [self.request("GET", "/user/list", {"appID": room}, t) for t in tags]
                by = self.answered_by(tags)
                raise AssertionError("want %d users %r; the nodes answered:\n%s" % (
                    len(expected), sorted(expected), "\n".join(
                        "n%d: %r" % (by[t], sorted(b["data"]["userList"]))
                        for t, (_, b) in zip(tags, answers))))
            self.assertEqual(sorted(self.answered_by(tags).values()), [0, 1, 2])
            return answers

        def online(users, want):
            tags, wrong = [], {}
            for u in users:
                for app in (room, 0):       # 0: in any room
                    t = uid("on")
                    tags.append(t)
                    st, b = self.request("GET", "/user/online", {"userID": u, "appID": app}, t)
                    if (st, b["data"]) != (200, {"online": want, "userID": u}):
                        wrong[(u, app, t)] = (st, b)
            by = self.answered_by(tags)
            self.assertEqual(sorted(set(by.values())), [0, 1, 2])
            return {"%s appID=%s answered by n%d" % (u, app, by[t]): r
                    for (u, app, t), r in wrong.items()}

        async def run():
            async with Crowd(self, room, prefix="l") as crowd:
                await in_thread(list_from_every_node, crowd.users)
                self.assertEqual(await in_thread(online, crowd.users, True), {})
                # Online in this room only: not in another.
                st, b = await in_thread(self.request, "GET", "/user/online",
                                        {"userID": crowd.users[0], "appID": 101}, uid("o"))
                self.assertEqual(b["data"], {"online": False, "userID": crowd.users[0]})
                # Two users of each node leave.
                gone = []
                for i in range(3):
                    gone += [u for u in crowd.users if crowd.node_of[u] == i][:2]
                for u in gone:
                    await crowd.leave(u)
                stay = [u for u in crowd.users if u not in gone]
                await in_thread(list_from_every_node, stay)
                self.assertEqual(await in_thread(online, gone, False), {})
                self.assertEqual(await in_thread(online, stay[:6], True), {})
        self.run_async(run())


if __name__ == "__main__":
    unittest.main()
