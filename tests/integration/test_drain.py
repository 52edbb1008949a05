"""Graceful drain on SIGTERM (issue 8): /ready says 503 at once, the WebSocket port stops
accepting, the HTTP API keeps serving (pushes still reach who is connected), the WebSockets are
closed with 1001 in batches spread over app.drainSeconds (so a fleet does not reconnect in one
spike), and the node exits 0 as soon as the last client is gone — never later than the bound."""

import signal
import socket
import time
import unittest

from harness import HOST, Node
from imtest import Client, Http, close_payload, send_all, uid, wait_until

SHUTDOWN = (1001, "server shutting down")


class DrainTest(unittest.TestCase):
    def start(self, **options):
        node = Node(**options)
        self.addCleanup(node.cleanup)
        node.start()
        return node

    def clients(self, node, n):
        out = []
        for i in range(n):
            c = Client(node.ws_port if i % 2 else node.http_port, uid("d"), 101)
            self.addCleanup(c.shutdown)
            out.append(c)
        return out

    @staticmethod
    def answer_close(c):
        """Answers the server's close frame and closes our side on its EOF, as a browser does."""
        c.ws.send_frame(0x8, close_payload(1001))
        c.thread.join(3)
        c.shutdown()

    def wait_exit(self, node, timeout):
        try:
            return node.proc.wait(timeout)
        except Exception:
            self.fail("imgate did not exit within %.1f s:\n%s" % (timeout, node.stderr()[-2000:]))

    def test_batches_spread_over_drain_seconds(self):
        DRAIN = 2.0
        node = self.start(**{"app.drainSeconds": int(DRAIN), "app.workers": 2})
        cs = self.clients(node, 100)
        http = Http(node.http_port)
        self.addCleanup(http.close)
        self.assertEqual(http.get("/ready")[0], 200)
        t0 = time.monotonic()
        node.proc.send_signal(signal.SIGTERM)
        # Not ready any more (once the signal is taken), on a connection that was already open.
        st, h, body, _ = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(
            http.get("/ready")), 1, interval=0.01, what="/ready 503")
        self.assertEqual(body["msg"], "draining")
        self.assertIn("retry-after", h)
        # The WebSocket port accepts nobody new; an upgrade on the HTTP port gets 503.
        time.sleep(0.2)
        with self.assertRaises(OSError):
            socket.create_connection((HOST, node.ws_port), timeout=1).close()
        with socket.create_connection((HOST, node.http_port), timeout=2) as s:
            s.sendall(b"GET /acc HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      b"Sec-WebSocket-Version: 13\r\n\r\n")
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 503 "))
        # The API still serves: a room push reaches those not closed yet.
        mid = uid("m")
        st, body = send_all(http, 101, "still here", msg_id=mid)
        self.assertEqual(st, 200, body)
        at_push = time.monotonic()
        open_then = [c for c in cs if c.close is None]
        self.assertGreater(len(open_then), 30)
        time.sleep(0.5)
        got = [c for c in open_then if any(m.get("seq") == mid for m in c.msgs)]
        # Everyone who was open when the push was made and is not closed a moment later has it.
        late = [c for c in open_then if c.close is None or c.close_at > at_push + 0.2]
        self.assertTrue(set(late) <= set(got), "%d of %d open clients missed the push" % (
            len(set(late) - set(got)), len(late)))
        # Closes spread over the drain, each answered as a browser would.
        for c in cs:
            self.assertEqual(c.wait_closed(DRAIN + 3), SHUTDOWN)
        for c in cs:
            self.answer_close(c)
        times = sorted(c.close_at - t0 for c in cs)
        self.assertLess(times[0], 0.5)
        self.assertTrue(DRAIN - 0.6 <= times[-1] <= DRAIN + 0.5, "last close at %.2f s" % times[-1])
        half = sum(1 for t in times if t < DRAIN / 2)
        self.assertTrue(30 <= half <= 70, "%d of 100 closed in the first half" % half)
        code = self.wait_exit(node, 5)
        self.assertEqual(code, 0, node.stderr()[-2000:])
        exit_after_last = time.monotonic() - t0 - times[-1]
        self.assertLess(exit_after_last, 1.5, "exit %.2f s after the last close" % exit_after_last)

    def test_exits_as_soon_as_the_clients_are_gone(self):
        node = self.start(**{"app.drainSeconds": 30})
        cs = self.clients(node, 10)
        t0 = time.monotonic()
        node.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        for c in cs:
            if c.close is None:
                c.close_gracefully(1000)
            else:
                self.answer_close(c)
        code = self.wait_exit(node, 5)
        self.assertEqual(code, 0, node.stderr()[-2000:])
        self.assertLess(time.monotonic() - t0, 3)

    def test_bounded_when_clients_never_answer(self):
        """Peers that ignore the close frame: the node still exits by drainSeconds +
        closeTimeout (+ the once-a-second sweep)."""
        node = self.start(**{"app.drainSeconds": 1, "app.closeTimeout": 1})
        cs = self.clients(node, 10)
        t0 = time.monotonic()
        node.proc.send_signal(signal.SIGTERM)
        code = self.wait_exit(node, 6)
        self.assertEqual(code, 0, node.stderr()[-2000:])
        self.assertLess(time.monotonic() - t0, 1 + 1 + 1.5)
        for c in cs:
            self.assertEqual(c.close, SHUTDOWN)


if __name__ == "__main__":
    unittest.main()
