"""Memory regression guard (issue 4): 2 000 idle, logged-in connections must cost the node less
than 1 KiB of resident memory each. A loose bound that catches a regression (goWebSocket: ~30 KB);
the real numbers come from bench/ (bench/RESULTS.md). Skipped under AddressSanitizer, whose
allocator pads every allocation."""

import base64
import json
import os
import selectors
import socket
import time
import unittest

from harness import HOST, Node, RawWS
from imtest import under_sanitizer

CONNS = 2000
WARMUP = 100
LIMIT_BYTES = 1024


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def open_logged_in(port, first, count, deadline):
    """Opens `count` WebSockets and logs each in (users first..first+count-1, rooms 101-104),
    all at once with a selector. Returns the sockets once every login reply has arrived."""
    sel = selectors.DefaultSelector()
    pending = {}
    socks = []
    for i in range(first, first + count):
        s = socket.create_connection((HOST, port))
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET /acc HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode()
        req += RawWS.frame(0x1, json.dumps({"seq": "l", "cmd": "login",
                                            "data": {"userID": "m%d" % i, "appID": 101 + i % 4}}))
        s.sendall(req)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        pending[s] = b""
        socks.append(s)
    while pending and time.monotonic() < deadline:
        for k, _ in sel.select(0.5):
            s = k.fileobj
            data = s.recv(65536)
            if not data:
                raise AssertionError("server closed a connection during login")
            pending[s] += data
            if b'"code":200,"codeMsg":"Success"' in pending[s]:
                sel.unregister(s)
                del pending[s]
    sel.close()
    if pending:
        raise AssertionError("%d logins not answered in time" % len(pending))
    return socks


class MemoryGuard(unittest.TestCase):
    def test_rss_per_idle_logged_in_connection(self):
        # notices off: this measures what a connection holds, not pushes queued to clients
        # that never read
        node = Node(**{"app.roomNotices": "false", "app.logLevel": "warn"})
        node.start()
        socks = []
        try:
            pid = node.proc.pid
            if under_sanitizer(pid):
                self.skipTest("a sanitizer build's RSS is not comparable")
            deadline = time.monotonic() + 60
            socks += open_logged_in(node.ws_port, 0, WARMUP, deadline)
            time.sleep(0.3)
            before = rss_kib(pid)
            socks += open_logged_in(node.ws_port, WARMUP, CONNS, deadline)
            time.sleep(0.3)
            after = rss_kib(pid)
            state = node.state()
            self.assertEqual(state["managerInfo"]["clientsLen"], WARMUP + CONNS)
            self.assertEqual(state["managerInfo"]["usersLen"], WARMUP + CONNS)
            per_conn = (after - before) * 1024 / CONNS
            print("\nRSS %d KiB -> %d KiB for %d connections: %.0f bytes each"
                  % (before, after, CONNS, per_conn))
            self.assertLess(per_conn, LIMIT_BYTES,
                            "RSS per idle logged-in connection regressed")
        finally:
            for s in socks:
                s.close()
            code = node.stop()
            node.cleanup()
        self.assertEqual(code, 0)


if __name__ == "__main__":
    unittest.main()
