"""Timeouts (docs/behaviour.md): the heartbeat idle timeout (close 1001 "heartbeat timeout",
swept once a second), the login timeout (close 1008 "login timeout" for a WebSocket that never
logs in), the handshake timeout (silent or unfinished requests), and the close timeout (a peer
that never answers our close frame is dropped). All with short settings so the file runs in well
under a minute."""

import asyncio
import json
import socket
import struct
import threading
import time
import unittest

import websockets

from harness import HOST
from imtest import NodeTestCase, close_payload, uid, wait_until

HEARTBEAT = 2
HANDSHAKE = 2
CLOSE = 2
SWEEP = 1          # the sweep runs once a second
SLACK = 1.5        # scheduling slack on a loaded CI machine


class TimeoutsTest(NodeTestCase):
    node_options = {"app.heartbeatTimeout": HEARTBEAT, "app.handshakeTimeout": HANDSHAKE,
                    "app.closeTimeout": CLOSE}

    def counter(self, name):
        return self.node.state()["counters"][name]

    def assertCounterGrows(self, name, before, by=1):
        wait_until(lambda: self.counter(name) >= before + by, 3,
                   what="counter %s to grow by %d from %d" % (name, by, before))

    def assertWithin(self, elapsed, lo, hi, what):
        self.assertTrue(lo <= elapsed <= hi, "%s after %.2f s, expected %.1f..%.1f s" % (
            what, elapsed, lo, hi))

    # ---- heartbeat timeout ----

    def test_idle_connection_gets_heartbeat_timeout(self):
        before = self.counter("heartbeatTimeouts")
        before_close = self.counter("closeTimeouts")
        t0 = time.monotonic()
        answers, silent = self.client(uid("ia")), self.client(uid("is"))
        for c in (answers, silent):
            self.assertEqual(c.wait_closed(HEARTBEAT + SWEEP + SLACK + 1), (1001, "heartbeat timeout"))
            self.assertWithin(c.close_at - t0, HEARTBEAT - SWEEP, HEARTBEAT + SWEEP + SLACK,
                              "heartbeat-timeout close")
        # One answers the close: TCP ends promptly.
        answers.ws.send_frame(0x8, close_payload(1001))
        wait_until(lambda: answers.eof, 2, what="EOF after answering the close")
        self.assertLess(answers.eof_at - answers.close_at, 2)
        # The other never answers: TCP is dropped after closeTimeout.
        wait_until(lambda: silent.eof, CLOSE + 2 + SLACK, what="EOF after closeTimeout")
        self.assertWithin(silent.eof_at - silent.close_at, CLOSE - SWEEP, CLOSE + 2,
                          "drop of a peer that never answered the close")
        self.assertCounterGrows("heartbeatTimeouts", before, 2)
        self.assertCounterGrows("closeTimeouts", before_close, 1)

    def test_idle_timeout_seen_by_websockets_library(self):
        url = self.node.ws_url

        async def run():
            async with websockets.connect(url, open_timeout=5, ping_interval=None,
                                          close_timeout=5) as ws:
                await ws.send(json.dumps({"seq": "1", "cmd": "login",
                                          "data": {"userID": uid("lib"), "appID": 101}}))
                await ws.recv()
                t0 = time.monotonic()
                await asyncio.wait_for(ws.wait_closed(), HEARTBEAT + SWEEP + SLACK + 2)
                return ws.close_code, ws.close_reason, time.monotonic() - t0

        code, reason, elapsed = asyncio.run(run())
        self.assertEqual((code, reason), (1001, "heartbeat timeout"))
        self.assertWithin(elapsed, HEARTBEAT - SWEEP, HEARTBEAT + SWEEP + SLACK + 1, "close")

    def test_heartbeats_keep_a_connection_alive_and_pings_do_not(self):
        user = uid("hb")
        beater = self.client(user)
        pinger = self.client(uid("pi"))
        t0 = time.monotonic()
        last_beat = t0
        while time.monotonic() - t0 < 5:
            r = beater.request("heartbeat", timeout=3)
            self.assertEqual(r["response"]["code"], 200)
            last_beat = time.monotonic()
            if not pinger.eof and pinger.close is None:
                try:
                    pinger.send({"seq": "p", "cmd": "ping"})
                except OSError:
                    pass
            time.sleep(0.7)
            self.assertIsNone(beater.close, "closed although it sent a heartbeat every 0.7 s")
        # IM pings do not refresh the idle deadline (as in the original).
        self.assertEqual(pinger.close, (1001, "heartbeat timeout"))
        self.assertWithin(pinger.close_at - t0, HEARTBEAT - SWEEP, HEARTBEAT + SWEEP + SLACK,
                          "close of a client that only pings")
        # A logged-in client that stops sending heartbeats is closed too.
        self.assertEqual(beater.wait_closed(HEARTBEAT + SWEEP + SLACK + 1),
                         (1001, "heartbeat timeout"))
        self.assertWithin(beater.close_at - last_beat, HEARTBEAT - SWEEP,
                          HEARTBEAT + SWEEP + SLACK, "close after the last heartbeat")
        wait_until(lambda: not self.http.get("/user/online", {"userID": user})[2]["data"]["online"],
                   CLOSE + 3, what="the timed-out user to be offline")

    # ---- handshake timeout ----

    def _open(self, port):
        s = socket.create_connection((HOST, port), timeout=10)
        self.addCleanup(s.close)
        return s

    def _read_until_closed(self, s, t0, out, key, limit):
        data = b""
        s.settimeout(limit)
        try:
            while True:
                c = s.recv(65536)
                if not c:
                    break
                data += c
        except socket.timeout:
            out[key] = (data, None)
            return
        except OSError:
            pass
        out[key] = (data, time.monotonic() - t0)

    def _watch(self, socks, t0, limit):
        """Reads every socket in its own thread until the server closes it; returns
        {name: (bytes, seconds until closed or None)}."""
        out, threads = {}, []
        for name, s in socks.items():
            th = threading.Thread(target=self._read_until_closed, args=(s, t0, out, name, limit))
            th.start()
            threads.append(th)
        for th in threads:
            th.join(limit + 2)
        return out

    def test_silent_connection_closed_after_handshake_timeout(self):
        before = self.counter("handshakeTimeouts")
        t0 = time.monotonic()
        socks = {"ws port": self._open(self.node.ws_port),
                 "http port": self._open(self.node.http_port)}
        res = self._watch(socks, t0, HANDSHAKE + SWEEP + SLACK + 2)
        for name, (data, elapsed) in res.items():
            with self.subTest(port=name):
                self.assertIsNotNone(elapsed, "%s: a silent connection was not closed" % name)
                self.assertWithin(elapsed, HANDSHAKE - SWEEP, HANDSHAKE + SWEEP + SLACK, name)
                self.assertEqual(data, b"", "%s: a silent connection gets no bytes" % name)
        self.assertCounterGrows("handshakeTimeouts", before, 2)

    def test_partial_request_gets_408_then_close(self):
        before = self.counter("handshakeTimeouts")
        t0 = time.monotonic()
        socks = {}
        for name, port, head in (("ws port", self.node.ws_port, b"GET /acc HTTP/1.1\r\nHost: x\r\n"),
                                 ("http port /acc", self.node.http_port,
                                  b"GET /acc HTTP/1.1\r\nUpgrade: websocket\r\n"),
                                 ("http port api", self.node.http_port,
                                  b"GET /user/list?appID=101 HTTP/1.1\r\nHo")):
            s = self._open(port)
            s.sendall(head)
            socks[name] = s
        res = self._watch(socks, t0, HANDSHAKE + SWEEP + SLACK + 2)
        for name, (data, elapsed) in res.items():
            with self.subTest(port=name):
                self.assertIsNotNone(elapsed, "%s: an unfinished request was not closed" % name)
                self.assertWithin(elapsed, HANDSHAKE - SWEEP, HANDSHAKE + SWEEP + SLACK, name)
                self.assertTrue(data.startswith(b"HTTP/1.1 408 "), "%s: got %r" % (name, data[:80]))
        self.assertCounterGrows("handshakeTimeouts", before, 3)

    def test_trickled_request_does_not_extend_the_deadline(self):
        t0 = time.monotonic()
        s = self._open(self.node.ws_port)
        req = b"GET /acc HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        closed_after = None
        for b in req:
            try:
                s.sendall(bytes([b]))
            except OSError:
                closed_after = time.monotonic() - t0
                break
            s.settimeout(0.25)
            try:
                c = s.recv(65536)
                if not c or c.startswith(b"HTTP/1.1 408"):
                    closed_after = time.monotonic() - t0
                    break
            except socket.timeout:
                pass
            except OSError:
                closed_after = time.monotonic() - t0
                break
            if time.monotonic() - t0 > HANDSHAKE + SWEEP + SLACK + 2:
                break
        self.assertIsNotNone(closed_after, "a request trickled byte by byte kept the connection")
        self.assertWithin(closed_after, HANDSHAKE - SWEEP, HANDSHAKE + SWEEP + SLACK, "close")

    # ---- close timeout ----

    def test_unanswered_close_after_protocol_error(self):
        c = self.client(uid("pe"))
        c.ws.send_frame(0x1, b'{"seq":"1","cmd":"ping"}', mask=False)   # unmasked: 1002
        close = c.wait_closed(5)
        self.assertEqual(close[0] if close else None, 1002)
        # We never answer the close frame. After a protocol error the server may drop TCP at
        # once (RFC 6455 7.1.7, "fail the connection") or wait; at most closeTimeout.
        wait_until(lambda: c.eof, CLOSE + 2 + SLACK, what="TCP drop after closeTimeout")
        self.assertWithin(c.eof_at - c.close_at, 0, CLOSE + 2,
                          "drop of a peer that never answered the close")

    def test_answered_close_ends_tcp_promptly(self):
        c = self.client(uid("pa"))
        c.ws.send_frame(0x1, b"x", rsv=4)                                  # RSV bit: 1002
        close = c.wait_closed(5)
        self.assertEqual(close[0] if close else None, 1002)
        c.ws.send_frame(0x8, struct.pack("!H", 1002))
        wait_until(lambda: c.eof, 2, what="EOF after the close handshake")
        self.assertLess(c.eof_at - c.close_at, 1.5)


class LoginTimeout(NodeTestCase):
    """app.loginTimeout=2 with a long heartbeat timeout: a WebSocket that has not logged in
    within ~2 s is closed 1008 "login timeout" (pings do not help); one that logged in is not."""

    LOGIN = 2
    node_options = {"app.loginTimeout": LOGIN, "app.heartbeatTimeout": 60}

    def test_never_logged_in_is_closed_1008(self):
        before = self.node.state()["counters"]["loginTimeouts"]
        t0 = time.monotonic()
        silent, pinger = self.client(), self.client()
        late = self.client()
        time.sleep(1)
        r = late.request("login", {"userID": uid("late"), "appID": 101})
        self.assertEqual(r["response"]["code"], 200)
        while time.monotonic() - t0 < self.LOGIN + SWEEP + SLACK:
            if pinger.close is None:
                pinger.send({"seq": "p", "cmd": "ping"})
            time.sleep(0.4)
        for c in (silent, pinger):
            self.assertEqual(c.wait_closed(2), (1008, "login timeout"))
            self.assertTrue(self.LOGIN - SWEEP <= c.close_at - t0 <= self.LOGIN + SWEEP + SLACK,
                            "closed after %.2f s" % (c.close_at - t0))
        self.assertIsNone(late.close, "a connection that logged in was closed")
        self.assertEqual(late.request("heartbeat")["response"]["code"], 200)
        wait_until(lambda: self.node.state()["counters"]["loginTimeouts"] >= before + 2, 3,
                   what="loginTimeouts to grow by 2")

    def test_seen_by_websockets_library(self):
        async def run():
            async with websockets.connect(self.node.ws_url, open_timeout=5, ping_interval=None,
                                          close_timeout=5) as ws:
                await asyncio.wait_for(ws.wait_closed(), self.LOGIN + SWEEP + SLACK + 2)
                return ws.close_code, ws.close_reason

        self.assertEqual(asyncio.run(run()), (1008, "login timeout"))


if __name__ == "__main__":
    unittest.main()
