"""`imgate --processes M` (issue 9): a master process runs M nodes on the same ports and one
Redis. Checked against real processes and a real redis-server:

- three children of the master, ids <nodeId>-0..2, logins spread over them, a direct message and
  a room push reach users on every child (python3-websockets, a client we did not write);
- without a nodeId, the master makes <host>:<httpPort>-<random> once: a restarted child has its
  old id back;
- a child killed with -9 is restarted with the same nodeId, and its restart takes its former
  users out of presence at once (cluster.nodeTimeout is 60 s here, so the reaper can't be what
  did it); the other children's users notice nothing;
- SIGTERM to the master: the children drain, the master exits 0 in bounded time, nothing left;
- kill -9 of the master: the children stop by themselves (PR_SET_PDEATHSIG);
- no redis.addr, or app.processes out of range: refused, exit 2, nothing started;
- a child that can't start (its port held by another program) is restarted with a growing wait,
  not in a busy loop, and comes up once the port is free.

Every process a test starts is stopped by its PID at the end (the master with SIGTERM, then any
child still there with SIGKILL); every wait is bounded.
"""

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import time
import unittest

import websockets

from harness import BIN, HOST, SETPRIV, Node, free_port
from imtest import Client, Http, send_all, send_message, uid, wait_until
from redisproc import Redis

SANITIZED = any(s in BIN for s in ("asan", "tsan"))
# Start-up and shutdown are several times slower under ASan / TSan.
SLOW = 3 if SANITIZED else 1


def proc_state(pid):
    """(state letter, ppid) of a process, or None if it does not exist."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    rest = stat[stat.rindex(")") + 2:].split()     # comm may hold spaces and parentheses
    return rest[0], int(rest[1])


def alive(pid):
    st = proc_state(pid)
    return st is not None and st[0] != "Z"


def children_of(ppid):
    """PIDs of the live (not zombie) processes whose parent is ppid."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_state(int(d))
            if st and st[1] == ppid and st[0] != "Z":
                out.append(int(d))
    return sorted(out)


def is_imgate(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return os.path.basename(BIN).encode() in f.read()
    except OSError:
        return False


class Master:
    """An `imgate --processes M` master (a harness.Node whose children we track by PID)."""

    def __init__(self, redis, processes=3, node_id="sv", **options):
        opts = {"app.processes": processes, "app.workers": 1, "app.drainSeconds": 1,
                "app.closeTimeout": 1}
        if node_id is not None:
            opts["cluster.nodeId"] = node_id
        if redis is not None:
            opts["redis.addr"] = redis.addr
        opts.update({k.replace("__", "."): v for k, v in options.items()})
        self.node = Node(**opts)
        self.redis = redis
        self.processes = processes
        # None: the master makes the ids (<host>:<httpPort>-<random>-<i>); known once ready().
        self.ids = ["%s-%d" % (node_id, i) for i in range(processes)] if node_id else None
        self.seen = set()       # every child PID we ever saw: stopped by PID at the end

    @property
    def pid(self):
        return self.node.proc.pid

    def children(self):
        kids = children_of(self.pid)
        self.seen.update(kids)
        return kids

    def nodes(self):
        """{nodeId: pid} of the registered nodes, from Redis."""
        return {k: json.loads(v)["pid"] for k, v in
                zip(*[iter(self.redis.cmd("HGETALL", "imgate:nodes"))] * 2)}

    def subscribed(self, node_id):
        return self.redis.cmd("PUBSUB", "NUMSUB", "imgate:node:" + node_id)[1] == 1

    def ready(self):
        """Every child up: registered with its own PID, and its subscriptions link listening."""
        nodes = self.nodes()
        kids = self.children()
        ids = self.ids or sorted(nodes)
        return (len(kids) == self.processes and sorted(nodes) == sorted(ids) and
                sorted(nodes.values()) == kids and all(self.subscribed(i) for i in ids))

    def start(self, timeout=15):
        self.node.start(timeout * SLOW)
        wait_until(self.ready, timeout * SLOW, what="%d children up" % self.processes)
        return self

    def users(self, node_id):
        return set(u.split("_", 1)[1] for u in
                   self.redis.cmd("SMEMBERS", "imgate:node:%s:users" % node_id))

    def log(self):
        return self.node.stderr()

    def stop(self, timeout=20):
        """SIGTERM to the master (SIGKILL if it does not exit in time), then SIGKILL to any child
        still there. Returns the master's exit code (None if it was killed)."""
        if self.node.proc:
            self.children()
        code = self.node.stop(timeout=timeout * SLOW) if self.node.proc else None
        for pid in self.seen:
            if alive(pid) and is_imgate(pid):
                os.kill(pid, signal.SIGKILL)
        return code

    def cleanup(self):
        self.stop()
        self.node.cleanup()


class SupervisorTest(unittest.TestCase):
    def setUp(self):
        self.redis = Redis()
        self.redis.start()
        self.addCleanup(self.redis.cleanup)

    def master(self, processes=3, **options):
        m = Master(self.redis, processes, **options)
        self.addCleanup(m.cleanup)
        return m

    def assert_clean_log(self, m, deaths=0):
        """No sanitizer report, and exactly `deaths` children died while running."""
        log = m.log()
        self.assertNotRegex(log, r"(Address|Thread|Leak|UndefinedBehavior)Sanitizer", log[-4000:])
        self.assertEqual(len(re.findall(r"restarting it in", log)), deaths, log[-4000:])

    def test_three_children_share_the_ports_and_deliver(self):
        m = self.master(3).start()
        kids = m.children()
        self.assertEqual(len(kids), 3)
        self.assertEqual(sorted(m.nodes().values()), kids, "the nodes are the master's children")
        self.assertNotIn(m.pid, kids)
        self.assertIn("supervisor: pid %d runs 3 node processes" % m.pid, m.log())
        asyncio.run(asyncio.wait_for(self.spread_and_deliver(m), 60 * SLOW))
        self.assertEqual(m.stop(), 0, m.log()[-4000:])
        self.assert_clean_log(m)

    async def spread_and_deliver(self, m):
        url = "ws://%s:%d/acc" % (HOST, m.node.ws_port)
        users = [uid("sp") for _ in range(30)]
        socks = {}
        try:
            for u in users:
                ws = await websockets.connect(url, open_timeout=10 * SLOW, ping_interval=None,
                                              max_queue=None)
                socks[u] = ws
                await ws.send(json.dumps({"seq": "l", "cmd": "login",
                                          "data": {"appID": 101, "userID": u}}))
                reply = await self.next_reply(ws, "l")
                self.assertEqual(reply["response"]["code"], 200, reply)
            # The login reply comes once the user is in Redis: ask it who holds whom.
            where = {i: m.users(i) for i in m.ids}
            self.assertEqual(sorted(u for s in where.values() for u in s), sorted(users))
            busy = [i for i in m.ids if where[i]]
            self.assertGreaterEqual(len(busy), 2, "one process got every login: %r" % where)
            h = Http(m.node.http_port)
            try:
                # A direct message to each user, through whichever child takes the request.
                for u in users:
                    st, body = send_message(h, 101, u, "direct " + u)
                    self.assertEqual((st, body["data"]), (200, {"sendResults": True}), u)
                for u in users:
                    msg = await self.next_msg(socks[u])
                    self.assertEqual(msg["response"]["data"]["msg"], "direct " + u)
                # A room push reaches every user on every child.
                st, body = send_all(h, 101, "to the room", sender="nobody")
                self.assertEqual((st, body["data"]), (200, {"sendResults": True}))
                for u in users:
                    msg = await self.next_msg(socks[u])
                    self.assertEqual(msg["response"]["data"]["msg"], "to the room")
            finally:
                h.close()
        finally:
            for ws in socks.values():
                await ws.close()

    async def next_reply(self, ws, seq):
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 10 * SLOW))
            if m.get("seq") == seq and "response" in m:
                return m

    async def next_msg(self, ws):
        """The next `msg` push (enter/exit notices of the other logins are skipped)."""
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 10 * SLOW))
            if m.get("cmd") == "msg":
                return m

    def test_killed_child_is_restarted_and_its_users_go_offline_at_once(self):
        # nodeTimeout 60: the other nodes would reap the dead one only after 30-40 s, so users
        # offline within seconds means the restarted node's own re-announce removed them.
        m = self.master(3, **{"cluster.nodeTimeout": 60}).start()
        clients = [Client(m.node.ws_port, uid("k")) for _ in range(18)]
        self.addCleanup(lambda: [c.shutdown() for c in clients])
        by_user = {c.user: c for c in clients}
        where = {i: m.users(i) for i in m.ids}
        victim_id = max(m.ids, key=lambda i: len(where[i]))
        victims = where[victim_id]
        self.assertTrue(victims)
        survivors = [c for c in clients if c.user not in victims]
        self.assertTrue(survivors, "every login went to one process: %r" % where)
        old_pid = m.nodes()[victim_id]
        others = {i: p for i, p in m.nodes().items() if i != victim_id}

        os.kill(old_pid, signal.SIGKILL)
        t_kill = time.monotonic()

        def restarted():
            kids = m.children()
            return len(kids) == 3 and old_pid not in kids and kids
        wait_until(restarted, 5 * SLOW, interval=0.01, what="the child restarted")
        t_restart = time.monotonic()
        self.assertLess(t_restart - t_kill, 2.0, "restart after the first death: ~100 ms")
        # The same nodeId, a new PID, and the others untouched.
        wait_until(lambda: m.nodes().get(victim_id) not in (None, old_pid), 10 * SLOW,
                   what="%s registered again" % victim_id)
        new_pid = m.nodes()[victim_id]
        self.assertIn(new_pid, m.children())
        self.assertEqual({i: p for i, p in m.nodes().items() if i != victim_id}, others)

        h = Http(m.node.http_port)
        self.addCleanup(h.close)

        def all_offline():
            return all(h.get("/user/online", {"userID": u})[2]["data"]["online"] is False
                       for u in victims)
        wait_until(all_offline, 2.0 * SLOW, interval=0.02,
                   what="the killed child's users offline after its restart")
        self.assertLess(time.monotonic() - t_restart, 2.0 * SLOW)
        self.assertEqual(m.users(victim_id), set())
        room = set(self.redis.cmd("SMEMBERS", "imgate:room:101"))
        self.assertFalse(room & victims, "still in the room: %r" % (room & victims))
        self.assertEqual(room, set(c.user for c in survivors))
        for u in victims:
            rec = json.loads(self.redis.cmd("GET", "acc:user:online:101_" + u))
            self.assertTrue(rec["isLogoff"], rec)
            wait_until(lambda: by_user[u].eof, 5, what="%s's connection gone" % u)
        # The survivors noticed nothing but the exits: still connected, still reached.
        for c in survivors:
            self.assertFalse(c.eof, c.user)
            self.assertIsNone(c.close, c.user)
            self.assertEqual(send_message(h, 101, c.user, "after")[1]["data"],
                             {"sendResults": True})
            c.wait_for(lambda x: x.get("cmd") == "msg" and
                       x["response"]["data"]["msg"] == "after", 5 * SLOW)
        # New logins work, on the restarted child too (the kernel picks the process: try a few).
        fresh = None
        for _ in range(60):
            c = Client(m.node.ws_port, uid("n"))
            clients.append(c)
            if c.user in m.users(victim_id):
                fresh = c
                break
        self.assertIsNotNone(fresh, "no new login landed on the restarted child")
        self.assertEqual(send_message(h, 101, fresh.user, "hello again")[1]["data"],
                         {"sendResults": True})
        fresh.wait_for(lambda x: x.get("cmd") == "msg", 5 * SLOW)
        st, body = send_all(h, 101, "everyone", sender="nobody")
        self.assertEqual(body["data"], {"sendResults": True})
        for c in survivors + [fresh]:
            c.wait_for(lambda x: x.get("cmd") == "msg" and
                       x["response"]["data"]["msg"] == "everyone", 5 * SLOW)

        log = m.log()
        self.assertIn("process %d (pid %d, node %s) was killed by signal 9" % (
            m.ids.index(victim_id), old_pid, victim_id), log)
        self.assertIn("process %d restarted as pid %d (node %s)" % (
            m.ids.index(victim_id), new_pid, victim_id), log)
        self.assertRegex(log, r"cluster: \d+ users that left while Redis could not be told")
        self.assertEqual(m.stop(), 0, log[-4000:])
        self.assert_clean_log(m, deaths=1)

    def test_default_ids_are_made_once_by_the_master(self):
        # No cluster.nodeId: <host>:<httpPort>-<random> is made once, so a restarted child gets
        # its old id back (a fresh random part would leave its old users to the reaper).
        m = self.master(2, node_id=None).start()
        ids = sorted(m.nodes())
        pat = re.compile(r"^(.+:%d-[0-9a-f]{8})-([01])$" % m.node.http_port)
        parts = [pat.match(i) for i in ids]
        self.assertTrue(all(parts), ids)
        self.assertEqual(len(set(p.group(1) for p in parts)), 1, ids)
        self.assertEqual([p.group(2) for p in parts], ["0", "1"])
        old = m.nodes()[ids[0]]
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: m.nodes().get(ids[0]) not in (None, old) and m.ready(), 10 * SLOW,
                   what="%s back" % ids[0])
        self.assertEqual(sorted(m.nodes()), ids)
        self.assertEqual(m.stop(), 0, m.log()[-4000:])
        self.assert_clean_log(m, deaths=1)

    def test_sigterm_to_the_master_drains_the_children_and_exits_0(self):
        m = self.master(3, **{"app.drainSeconds": 2}).start()
        kids = m.children()
        clients = [Client(m.node.ws_port, uid("t")) for _ in range(9)]
        self.addCleanup(lambda: [c.shutdown() for c in clients])
        t0 = time.monotonic()
        m.node.proc.send_signal(signal.SIGTERM)
        code = m.node.proc.wait(30 * SLOW)
        elapsed = time.monotonic() - t0
        self.assertEqual(code, 0, m.log()[-4000:])
        # drainSeconds 2 + closeTimeout 1 (our clients never answer a close) + leaving
        self.assertLess(elapsed, 2 + 1 + 4 * SLOW, m.log()[-4000:])
        self.assertFalse([p for p in kids if alive(p)], "children left behind")
        for c in clients:
            self.assertEqual((c.wait_closed(5) or (None,))[0], 1001, c.user)
        # They drained (over the 2 s, not all at once) and left the cluster.
        self.assertGreater(max(c.close_at for c in clients) - min(c.close_at for c in clients),
                           0.3)
        self.assertEqual(self.redis.cmd("HKEYS", "imgate:nodes"), [])
        self.assertEqual(self.redis.cmd("SMEMBERS", "imgate:room:101"), [])
        log = m.log()
        self.assertIn("supervisor: signal 15: stopping 3 processes", log)
        self.assertEqual(len(re.findall(r"exited with status 0", log)), 3, log[-4000:])
        self.assertIn("supervisor: every process has stopped", log)
        self.assert_clean_log(m)

    def test_master_killed_with_9_takes_the_children_with_it(self):
        m = self.master(3).start()
        kids = m.children()
        c = Client(m.node.ws_port, uid("o"))
        self.addCleanup(c.shutdown)
        m.node.proc.kill()
        m.node.proc.wait(5)
        # PR_SET_PDEATHSIG(SIGTERM): they drain (drainSeconds 1) and exit on their own.
        wait_until(lambda: not [p for p in kids if alive(p)], 10 * SLOW, interval=0.05,
                   what="the orphaned children gone")
        self.assertEqual(c.wait_closed(5)[0], 1001)
        self.assertEqual(self.redis.cmd("HKEYS", "imgate:nodes"), [],
                         "they left the cluster as on SIGTERM")
        self.assert_clean_log(m)

    def test_bad_configurations_are_refused(self):
        def run(*args, env=None):
            e = dict(os.environ)
            e.update(env or {})
            p = subprocess.run([BIN] + list(args) + ["--app.httpPort", str(free_port()),
                                                     "--app.webSocketPort", str(free_port())],
                               capture_output=True, text=True, timeout=10 * SLOW, env=e,
                               cwd="/")
            return p.returncode, p.stderr
        code, err = run("--processes", "3")
        self.assertEqual(code, 2, err)
        self.assertIn("app.processes is 3 but redis.addr is empty", err)
        self.assertNotIn("supervisor", err)         # nothing was started
        for bad in ("0", "-1", "1025", "100000", "3x"):
            code, err = run("--processes", bad, "--redis.addr", self.redis.addr)
            self.assertEqual(code, 2, (bad, err))
            self.assertIn("app.processes", err)
        code, err = run(env={"IMGATE_APP_PROCESSES": "0", "IMGATE_REDIS_ADDR": self.redis.addr})
        self.assertEqual(code, 2, err)
        self.assertIn("environment IMGATE_APP_PROCESSES", err)
        code, err = run("--app.processes=2", "--redis.addr", self.redis.addr,
                        "--cluster.nodeId", "x" * 63)
        self.assertEqual(code, 2, err)
        self.assertIn("cluster.nodeId", err)
        # 1 is today's single process, no Redis needed and no supervisor.
        with Node(**{"app.processes": 1}) as n:
            self.assertIsNone(n.state()["cluster"])
            self.assertEqual(children_of(n.proc.pid), [])
            self.assertNotIn("supervisor", n.stderr())

    def test_a_child_that_cannot_start_is_restarted_with_backoff(self):
        # Another program holds the HTTP port (no SO_REUSEPORT): the master starts (it opens no
        # socket), every child fails to bind and exits at once, again and again.
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(blocker.close)
        blocker.bind((HOST, 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        m = self.master(2, **{"app.httpPort": port})
        m.node.http_port = port
        t0 = time.monotonic()
        self.start_unchecked(m.node)
        time.sleep(3.5)
        log = m.log()
        waits = {}
        for i, ms in re.findall(r"process (\d+) \(pid \d+, node sv-\d\) (?:exited|was killed)[^;]* "
                                r"after \d+ ms; restarting it in (\d+) ms", log):
            waits.setdefault(int(i), []).append(int(ms))
        self.assertEqual(sorted(waits), [0, 1], log[-4000:])
        for i, w in waits.items():
            # 100, 200, 400, 800, 1600 ms: ~5 deaths in 3.5 s (a busy loop would be hundreds).
            self.assertEqual(w, [100 * 2 ** k for k in range(len(w))], log[-4000:])
            self.assertLessEqual(len(w), 6, w)
            self.assertGreaterEqual(len(w), 3 if not SANITIZED else 2, w)
        self.assertTrue(alive(m.pid))
        # Once the port is free, the children come up within the current wait (at most 5 s).
        blocker.close()
        wait_until(m.ready, (5 + 10 * SLOW), what="children up once the port is free")
        c = Client(m.node.ws_port, uid("b"))
        self.addCleanup(c.shutdown)
        h = Http(port)
        self.addCleanup(h.close)
        self.assertEqual(send_message(h, 101, c.user, "up")[1]["data"], {"sendResults": True})
        c.wait_for(lambda x: x.get("cmd") == "msg")
        self.assertLess(time.monotonic() - t0, 30 * SLOW)
        self.assertEqual(m.stop(), 0, m.log()[-4000:])

    def start_unchecked(self, node):
        """harness.Node.start without waiting for the ports (the blocker's port is open)."""
        args = [BIN]
        for k, v in node.options.items():
            args += ["--" + k, str(v)]
        if SETPRIV:
            args = [SETPRIV, "--pdeathsig", "KILL", "--"] + args
        node._stderr = open(node.stderr_path, "wb")
        node.proc = subprocess.Popen(args, cwd=node.dir, stdout=node._stderr,
                                     stderr=node._stderr)


if __name__ == "__main__":
    unittest.main()
