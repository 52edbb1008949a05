"""Limits (issue 8), each against a running node and each counted where it fires:
app.maxConnections → 503 + Retry-After (and past a bounded reserve, closed at once);
app.maxConnectionsPerIp → 429 + Retry-After for that address only; app.upgradeRate → 503 +
Retry-After, with the bucket refilling at the configured rate (a peer shipped one that always
refilled at 1/s); app.messageRate / app.loginRate per connection → 1011, and ten refusals in a
row close the connection with 1008."""

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import time
import unittest

import websockets

from harness import HOST
from imtest import (Client, NodeTestCase, parse_http_responses, state_counters, uid,
                    wait_until)


def upgrade_request(port):
    return ("GET /acc HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (HOST, port)).encode()


def try_upgrade(port, source=None, timeout=5):
    """Sends an upgrade; returns (status, headers, body, socket) — the socket is open on 101."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect((HOST, port))
    s.sendall(upgrade_request(port))
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    body = rest
    if status != 101:
        n = int(headers.get("content-length", 0))
        while len(body) < n:
            chunk = s.recv(4096)
            if not chunk:
                break
            body += chunk
        s.close()
        return status, headers, json.loads(body), None
    return status, headers, None, s


class MaxConnections(NodeTestCase):
    # handshakeTimeout 30: the reserve test must look at its sockets before the reserve times out
    node_options = {"app.maxConnections": 6, "app.handshakeTimeout": 30}

    def state(self):
        """/system/state on our keep-alive connection: a new one would be past the limit."""
        st, _, body, _ = self.http.get("/system/state")
        self.assertEqual(st, 200, body)
        return body["data"]

    def test_past_the_limit_gets_503_with_retry_after(self):
        # The node's count includes our HTTP keep-alive connection (self.http): 5 WS + it.
        before = self.state()["counters"]
        ws = [self.client(uid("c")) for _ in range(5)]
        st, h, body, _ = try_upgrade(self.node.ws_port)
        self.assertEqual(st, 503, body)
        self.assertEqual(h["retry-after"], "5")
        self.assertEqual(body["code"], 503)
        self.assertIn("app.maxConnections", body["msg"])
        self.assertEqual(h["connection"], "close")
        # A plain API call on a connection past the limit is refused the same way.
        with socket.create_connection((HOST, self.node.http_port), timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        resp = parse_http_responses(data)
        self.assertEqual(resp[0][0], 503)
        # A body announced past the limit is not asked for (no 100 Continue) nor read.
        with socket.create_connection((HOST, self.node.http_port), timeout=5) as s:
            s.sendall(b"POST /user/sendMessage HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                      b"Content-Type: application/x-www-form-urlencoded\r\n"
                      b"Content-Length: 131072\r\n\r\n")
            first = s.recv(4096)
        self.assertTrue(first.startswith(b"HTTP/1.1 503 "), first[:40])
        # Room again once one leaves.
        ws[0].close_gracefully()
        wait_until(lambda: sum(w["webSockets"] for w in self.state()["workers"]) == 4, 5,
                   what="one gone")
        st, _, _, s = try_upgrade(self.node.ws_port)
        self.assertEqual(st, 101)
        s.close()
        after = self.state()["counters"]
        self.assertGreaterEqual(after["connectionLimitHits"] - before["connectionLimitHits"], 2)

    def test_reserve_is_bounded(self):
        """Connections past the limit that never send a request: the first 256 wait for the
        handshake timeout to be answered, the rest are closed at once. Memory stays bounded."""
        before = self.state()["counters"]
        ws = [self.client(uid("r")) for _ in range(5)]
        socks = []
        try:
            for _ in range(400):
                s = socket.create_connection((HOST, self.node.ws_port), timeout=5)
                socks.append(s)
            wait_until(lambda: self.state()["counters"]["connectionsRejected"] -
                       before["connectionsRejected"] >= 400 - 256 - 2, 5,
                       what="connections past the reserve closed at once")
            closed_now = 0
            for s in socks:
                s.settimeout(0.01)
                try:
                    if s.recv(1) == b"":
                        closed_now += 1
                except socket.timeout:
                    pass
                except ConnectionError:
                    closed_now += 1
            self.assertGreaterEqual(closed_now, 400 - 256 - 2)
            self.assertLessEqual(closed_now, 400 - 256 + 2)
        finally:
            for s in socks:
                s.close()
        del ws


class PerAddress(NodeTestCase):
    node_options = {"app.maxConnectionsPerIp": 3}

    def test_one_address_is_limited_others_are_not(self):
        before = state_counters(self.node)
        opened = []
        for _ in range(3):
            st, _, _, s = try_upgrade(self.node.ws_port, source="127.0.0.2")
            self.assertEqual(st, 101)
            opened.append(s)
        st, h, body, _ = try_upgrade(self.node.ws_port, source="127.0.0.2")
        self.assertEqual(st, 429, body)
        self.assertEqual(h["retry-after"], "5")
        self.assertEqual(body["code"], 429)
        # Another address is not affected.
        others = []
        for _ in range(3):
            st, _, _, s = try_upgrade(self.node.ws_port, source="127.0.0.3")
            self.assertEqual(st, 101)
            others.append(s)
        # Closing one frees its place, and refused connections did not keep theirs.
        for _ in range(5):
            self.assertEqual(try_upgrade(self.node.ws_port, source="127.0.0.2")[0], 429)
        opened.pop().close()

        refused = [6]

        def place_free():
            st, _, _, s = try_upgrade(self.node.ws_port, source="127.0.0.2")
            if s:
                opened.append(s)
            refused[0] += st == 429
            return st == 101
        wait_until(place_free, 5, interval=0.2, what="the closed connection's place")
        for s in opened + others:
            s.close()
        after = state_counters(self.node)
        self.assertEqual(after["ipLimitHits"] - before["ipLimitHits"], refused[0])


class UpgradeRate(NodeTestCase):
    RATE, BURST = 50, 10
    node_options = {"app.upgradeRate": RATE, "app.upgradeBurst": BURST}

    def test_bucket_refills_at_the_configured_rate(self):
        time.sleep(1)  # full bucket
        before = state_counters(self.node)
        ok = refused = 0
        retry = set()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:
            st, h, body, s = try_upgrade(self.node.ws_port)
            if st == 101:
                ok += 1
                s.close()
            else:
                self.assertEqual(st, 503, body)
                self.assertIn("app.upgradeRate", body["msg"])
                retry.add(h["retry-after"])
                refused += 1
        elapsed = time.monotonic() - t0
        want = self.BURST + self.RATE * elapsed
        self.assertGreater(refused, 0, "the client was not faster than the rate")
        self.assertTrue(0.8 * want <= ok <= 1.1 * want + 2,
                        "%d upgrades in %.2f s, want ~%.0f" % (ok, elapsed, want))
        self.assertEqual(retry, {"1"})
        after = state_counters(self.node)
        self.assertEqual(after["upgradeRateHits"] - before["upgradeRateHits"], refused)


class MessageRate(NodeTestCase):
    RATE, BURST = 10, 5
    node_options = {"app.messageRate": RATE, "app.messageBurst": BURST}

    def codes(self, c, seqs, timeout=5):
        out = []
        for q in seqs:
            i = c.wait_for(lambda m, q=q: m.get("seq") == q, timeout, "reply %s" % q)
            out.append(c.msgs[i]["response"]["code"])
        return out

    def test_a_flood_is_refused_then_closed(self):
        before = state_counters(self.node)
        c = self.client(uid("f"))
        time.sleep(0.6)  # the login's token is back
        for i in range(40):
            c.send({"seq": "h%d" % i, "cmd": "heartbeat", "data": {}})
        self.assertEqual(c.wait_closed(5), (1008, "rate limit"))
        codes = [m["response"]["code"] for m in c.msgs if m.get("seq", "").startswith("h")]
        self.assertEqual(codes[:self.BURST], [200] * self.BURST)
        self.assertEqual(codes[self.BURST:], [1011] * (len(codes) - self.BURST))
        self.assertEqual(len(codes), self.BURST + 9)  # the tenth refusal closes instead
        m = [m for m in c.msgs if m.get("seq") == "h%d" % self.BURST][0]
        self.assertEqual(m["response"]["codeMsg"], "Too many requests")
        after = state_counters(self.node)
        self.assertEqual(after["rateLimitCloses"] - before["rateLimitCloses"], 1)
        self.assertGreaterEqual(after["messageRateHits"] - before["messageRateHits"], 10)

    def test_within_the_rate_is_never_refused(self):
        c = self.client(uid("s"))
        seqs = []
        t0 = time.monotonic()
        for i in range(16):  # 8 a second for 2 s, under the rate of 10
            seqs.append("s%d" % i)
            c.send({"seq": seqs[-1], "cmd": "heartbeat", "data": {}})
            time.sleep(max(0, t0 + (i + 1) / 8 - time.monotonic()))
        self.assertEqual(self.codes(c, seqs), [200] * 16)
        self.assertIsNone(c.close)

    def test_a_bit_too_fast_is_told_but_not_closed(self):
        c = self.client(uid("t"))
        seqs = []
        t0 = time.monotonic()
        for i in range(40):  # 20 a second for 2 s: twice the rate
            seqs.append("t%d" % i)
            c.send({"seq": seqs[-1], "cmd": "ping"})
            time.sleep(max(0, t0 + (i + 1) / 20 - time.monotonic()))
        codes = self.codes(c, seqs)
        self.assertIn(1011, codes)
        self.assertGreaterEqual(codes.count(200), 20)
        self.assertIsNone(c.close)

    def test_seen_by_websockets_library(self):
        async def run():
            async with websockets.connect(self.node.ws_url, open_timeout=5, ping_interval=None,
                                          close_timeout=5) as ws:
                for i in range(30):
                    await ws.send(json.dumps({"seq": "w%d" % i, "cmd": "ping"}))
                try:
                    while True:
                        await asyncio.wait_for(ws.recv(), 5)
                except websockets.ConnectionClosed as e:
                    return e.rcvd.code, e.rcvd.reason
        self.assertEqual(asyncio.run(run()), (1008, "rate limit"))


SECRET = "limits-test-secret-0123456789abcdef"


def hs256(claims, secret=SECRET):
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=")
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), head + b"." + body, hashlib.sha256).digest()
    return (head + b"." + body + b"." + b64(sig)).decode()


class LoginRate(NodeTestCase):
    """Token checks have a bucket of their own (app.loginRate): a loop of bad tokens on one
    connection gets 1011 once it is empty; logins that never reach a token check (no key set,
    or refused before it) are bounded by app.messageRate only."""

    node_options = {"auth.jwtSecret": SECRET, "app.loginRate": 1, "app.loginBurst": 2}

    def test_token_checks_have_their_own_bucket(self):
        before = state_counters(self.node)
        c = self.client()
        user = uid("l")
        bad = hs256({"sub": user}, "another-secret-0123456789abcdef0123")
        codes = [c.request("login", {"userID": user, "appID": 101, "serviceToken": bad})
                 ["response"]["code"] for _ in range(3)]
        self.assertEqual(codes, [1003, 1003, 1011])
        # Refused before the token check (appID not configured): not counted, still 1003.
        r = c.request("login", {"userID": user, "appID": 999, "serviceToken": bad})
        self.assertEqual(r["response"]["code"], 1003)
        time.sleep(1.1)
        r = c.request("login", {"userID": user, "appID": 101, "serviceToken": hs256({"sub": user})})
        self.assertEqual(r["response"]["code"], 200)
        after = state_counters(self.node)
        self.assertEqual(after["loginRateHits"] - before["loginRateHits"], 1)

    def test_a_token_guessing_loop_is_closed(self):
        """Each login passes the message bucket, so only the token bucket refuses: its strikes
        must still add up to the close."""
        c = self.client()
        user = uid("g")
        bad = hs256({"sub": user}, "another-secret-0123456789abcdef0123")
        for i in range(40):
            c.send({"seq": "g%d" % i, "cmd": "login",
                    "data": {"userID": user, "appID": 101, "serviceToken": bad}})
        self.assertEqual(c.wait_closed(5), (1008, "rate limit"))
        codes = [m["response"]["code"] for m in c.msgs if m.get("seq", "").startswith("g")]
        self.assertEqual(codes, [1003, 1003] + [1011] * 9)


if __name__ == "__main__":
    unittest.main()
