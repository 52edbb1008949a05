"""Memory per idle logged-in connection (issues 4 and 9), measured the way an outsider does: the
node's VmRSS right after it starts, then 19 000 WebSockets logged in as u0, u1, ... in one room
with the default configuration (room notices on: everyone hears the others come), then VmRSS
again once the clients have read everything. The difference per connection must stay at or
below 256 bytes (goWebSocket: ~30 KB). Nothing is warmed up first: the first connection's costs
(per-worker buffers, code paged in) count, as they do for anyone who measures. bench/run.sh
reports the same figure with its breakdown (bench/RESULTS.md). Skipped under the sanitizers,
whose allocators pad every allocation."""

import base64
import json
import os
import resource
import selectors
import socket
import time
import unittest

from harness import HOST, Node, RawWS
from imtest import under_sanitizer

CONNS = 19000
LIMIT_BYTES = 256
# Clients come from other loopback addresses than the node's, so that 19 000 of them leave the
# ephemeral ports of 127.0.0.1 to the tests running alongside.
SOURCES = ("127.0.0.2", "127.0.0.3")
BATCH = 1000


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Clients:
    """CONNS WebSockets that log in and then read (and discard) whatever the node pushes."""

    def __init__(self, port):
        self.port = port
        self.sel = selectors.DefaultSelector()
        self.socks = []
        self.waiting = {}  # socket -> bytes read until its login reply
        self.last_data = time.monotonic()

    def open(self, first, count):
        for i in range(first, first + count):
            s = socket.socket()
            s.bind((SOURCES[i % len(SOURCES)], 0))
            s.connect((HOST, self.port))
            key = base64.b64encode(os.urandom(16)).decode()
            req = ("GET /acc HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode()
            req += RawWS.frame(0x1, json.dumps({"seq": "l", "cmd": "login",
                                                "data": {"userID": "u%d" % i, "appID": 101}}))
            s.sendall(req)
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ)
            self.waiting[s] = b""
            self.socks.append(s)

    def pump(self, timeout):
        for k, _ in self.sel.select(timeout):
            s = k.fileobj
            try:
                data = s.recv(262144)
            except BlockingIOError:
                continue
            if not data:
                raise AssertionError("the node closed a connection")
            self.last_data = time.monotonic()
            if s in self.waiting:
                got = self.waiting[s] + data
                if b'"code":200,"codeMsg":"Success"' in got:
                    del self.waiting[s]
                else:
                    self.waiting[s] = got[-4096:]

    def close(self):
        for s in self.socks:
            s.close()
        self.sel.close()


class MemoryGuard(unittest.TestCase):
    def test_rss_per_idle_logged_in_connection_from_a_fresh_start(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard < CONNS + 200:
            self.skipTest("needs %d descriptors, the hard limit is %d" % (CONNS + 200, hard))
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        node = Node(**{"app.logLevel": "warn"})
        node.start()
        clients = Clients(node.ws_port)
        try:
            pid = node.proc.pid
            if under_sanitizer(pid):
                self.skipTest("a sanitizer build's RSS is not comparable")
            fresh = rss_kib(pid)
            deadline = time.monotonic() + 120
            opened = 0
            while opened < CONNS or clients.waiting:
                self.assertLess(time.monotonic(), deadline,
                                "%d logins not answered in time" % len(clients.waiting))
                if opened < CONNS and len(clients.waiting) < BATCH:
                    n = min(BATCH, CONNS - opened)
                    clients.open(opened, n)
                    opened += n
                clients.pump(0.05)
            # Idle: everyone has read every notice (the last presence batch included).
            while time.monotonic() - clients.last_data < 1.0:
                self.assertLess(time.monotonic(), deadline, "the node never went quiet")
                clients.pump(0.1)
            loaded = rss_kib(pid)
            state = node.state()
            self.assertEqual(state["managerInfo"]["clientsLen"], CONNS)
            self.assertEqual(state["managerInfo"]["usersLen"], CONNS)
            per_conn = (loaded - fresh) * 1024 / CONNS
            print("\nRSS %d KiB fresh -> %d KiB with %d idle logged-in connections: %.0f bytes each"
                  % (fresh, loaded, CONNS, per_conn))
            self.assertLessEqual(per_conn, LIMIT_BYTES,
                                 "RSS per idle logged-in connection regressed")
        finally:
            clients.close()
            code = node.stop()
            node.cleanup()
        self.assertEqual(code, 0)


if __name__ == "__main__":
    unittest.main()
