"""Graceful shutdown (docs/behaviour.md "Start-up and CLI"): on SIGTERM or SIGINT the node stops
accepting, sends close 1001 "server shutting down" to every WebSocket, waits up to
app.closeTimeout for the peers' close frames and exits 0."""

import asyncio
import json
import signal
import socket
import time
import unittest

import websockets

from harness import HOST, Node
from imtest import Client, Http, close_payload, uid

CLOSE = 3
SHUTDOWN = (1001, "server shutting down")


class ShutdownTest(unittest.TestCase):

    def start(self, **options):
        # All at once (app.drainSeconds 0); the batched drain has its own tests (test_drain.py).
        node = Node(**dict({"app.closeTimeout": CLOSE, "app.drainSeconds": 0}, **options))
        self.addCleanup(node.cleanup)
        node.start()
        return node

    def wait_exit(self, node, timeout):
        try:
            return node.proc.wait(timeout)
        except Exception:
            self.fail("imgate did not exit within %.1f s:\n%s" % (timeout, node.stderr()[-2000:]))

    def assertRefused(self, port):
        """Nobody is accepting on `port`: the connect is refused, or a connection the kernel had
        queued is ended without any answer."""
        try:
            s = socket.create_connection((HOST, port), timeout=2)
        except (ConnectionRefusedError, socket.timeout):
            return
        with s:
            try:
                s.sendall(b"GET /user/list HTTP/1.1\r\nHost: x\r\n\r\n")
                data = s.recv(100)
            except socket.timeout:
                self.fail("port %d accepted a connection during/after shutdown and kept it" % port)
            except OSError:
                return
            self.assertEqual(data, b"", "port %d answered %r during/after shutdown" % (port, data))

    def _sigterm_or_sigint(self, sig):
        node = self.start()
        clients = [Client(node.ws_port, uid("s"), 101) for _ in range(3)]
        clients.append(Client(node.ws_port, uid("s"), 102))
        clients.append(Client(node.ws_port))                     # not logged in
        clients.append(Client(node.http_port, uid("h"), 101))    # upgraded on the HTTP port
        for c in clients:
            self.addCleanup(c.shutdown)
        self.assertEqual(clients[-2].request("ping")["response"]["data"], "pong")
        t0 = time.monotonic()
        node.proc.send_signal(sig)
        for c in clients:
            self.assertEqual(c.wait_closed(5), SHUTDOWN, "client %s" % c.user)
            c.ws.send_frame(0x8, close_payload(1001))              # answer the close
        for c in clients:
            # After the close handshake the server ends TCP; we close our side on its EOF, as
            # a browser does.
            c.thread.join(3)
            self.assertTrue(c.eof, "client %s: TCP not ended after the close handshake" % c.user)
            c.shutdown()
        code = self.wait_exit(node, CLOSE + 5)
        elapsed = time.monotonic() - t0
        self.assertEqual(code, 0, node.stderr()[-2000:])
        self.assertLess(elapsed, 2.5, "every peer answered the close, yet exit took %.1f s" % elapsed)
        self.assertRefused(node.ws_port)
        self.assertRefused(node.http_port)

    def test_sigterm(self):
        self._sigterm_or_sigint(signal.SIGTERM)

    def test_sigint(self):
        self._sigterm_or_sigint(signal.SIGINT)

    def test_sigint_seen_by_websockets_library(self):
        node = self.start()

        async def run():
            conns = []
            for i in range(3):
                ws = await websockets.connect(node.ws_url, open_timeout=5, ping_interval=None,
                                              close_timeout=5)
                await ws.send(json.dumps({"seq": "1", "cmd": "login",
                                          "data": {"appID": 101, "userID": uid("lib")}}))
                r = json.loads(await asyncio.wait_for(ws.recv(), 5))
                self.assertEqual(r["response"]["code"], 200)
                conns.append(ws)
            node.proc.send_signal(signal.SIGINT)
            for ws in conns:
                await asyncio.wait_for(ws.wait_closed(), 8)
            return [(ws.close_code, ws.close_reason) for ws in conns]

        t0 = time.monotonic()
        self.assertEqual(asyncio.run(run()), [SHUTDOWN] * 3)
        self.assertEqual(self.wait_exit(node, CLOSE + 5), 0, node.stderr()[-2000:])
        self.assertLess(time.monotonic() - t0, 2.5, "exit waited although every peer answered")

    def test_drain_stops_accepting_and_waits_for_silent_peers(self):
        node = self.start()
        silent = Client(node.ws_port, uid("silent"), 101)   # never answers the close
        self.addCleanup(silent.shutdown)
        http = Http(node.http_port)                         # an idle keep-alive HTTP connection
        self.addCleanup(http.close)
        self.assertEqual(http.get("/system/state")[0], 200)
        t0 = time.monotonic()
        node.proc.send_signal(signal.SIGTERM)
        self.assertEqual(silent.wait_closed(5), SHUTDOWN)
        # Draining: no new connections on either port.
        self.assertIsNone(node.proc.poll(), "exited without waiting for the peer's close")
        self.assertRefused(node.ws_port)
        self.assertRefused(node.http_port)
        code = self.wait_exit(node, CLOSE + 4)
        elapsed = time.monotonic() - t0
        self.assertEqual(code, 0, node.stderr()[-2000:])
        self.assertTrue(CLOSE - 1.5 <= elapsed <= CLOSE + 2.5,
                        "exit %.1f s after SIGTERM, with a peer that never answered "
                        "(closeTimeout %d s)" % (elapsed, CLOSE))
        silent.thread.join(3)
        self.assertTrue(silent.eof, "the silent peer's TCP not ended")

    def test_idle_node_exits_promptly(self):
        node = self.start()
        t0 = time.monotonic()
        node.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.wait_exit(node, 5), 0, node.stderr()[-2000:])
        self.assertLess(time.monotonic() - t0, 2)
        self.assertRefused(node.ws_port)
        self.assertRefused(node.http_port)


if __name__ == "__main__":
    unittest.main()
