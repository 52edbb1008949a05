"""The WebSocket opening handshake (RFC 6455 §4, docs/behaviour.md "WebSocket handshake"):
accepted upgrades on both ports, every rejection status with its JSON body, the header limit,
malformed requests, requests split into tiny writes, bytes pipelined after the handshake, and
app.handshakeTimeout. One case uses python3-websockets, a client we did not write.

Run: IMGATE_BIN=build/imgate /usr/bin/python3 -m unittest -v test_handshake
"""

import asyncio
import base64
import hashlib
import json
import os
import socket
import time
import unittest

from imtest import NodeTestCase
from harness import HOST, Node, RawWS, ws_key

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WAIT = 5


def accept_for(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def upgrade_request(port, path="/acc", key=None, method="GET", headers=None, omit=(),
                    version="HTTP/1.1"):
    """An upgrade request. `headers` adds or replaces (by exact name) headers; `omit` drops the
    standard ones named."""
    std = [("Host", "%s:%d" % (HOST, port)), ("Upgrade", "websocket"),
           ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key or ws_key()),
           ("Sec-WebSocket-Version", "13")]
    extra = list((headers or {}).items())
    names = {k for k, _ in extra}
    lines = ["%s %s %s" % (method, path, version)]
    lines += ["%s: %s" % kv for kv in std if kv[0] not in omit and kv[0] not in names]
    lines += ["%s: %s" % kv for kv in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Response:
    def __init__(self, sock, status_line, headers, body, rest):
        self.sock = sock
        self.status_line = status_line
        parts = status_line.split(" ", 2)
        self.version = parts[0]
        self.status = int(parts[1])
        self.headers = headers  # lower-case name -> value (repeats joined with ", ")
        self.body = body
        self.rest = rest        # bytes after the response (e.g. WebSocket frames)

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "<%s %r %r>" % (self.status_line, self.headers, self.body[:300])


def read_response(sock, timeout=WAIT):
    """Reads one HTTP response (head + Content-Length body). Tolerates a reset after the
    response, which a server closing with unread request bytes in its buffer may cause."""
    deadline = time.monotonic() + timeout
    buf = b""

    def more():
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no complete response within %.1f s: %r" % (timeout, buf[:300]))
        sock.settimeout(left)
        try:
            return sock.recv(65536)
        except ConnectionResetError:
            return b""

    while b"\r\n\r\n" not in buf:
        c = more()
        if not c:
            raise ConnectionError("connection ended before a full response head: %r" % buf[:300])
        buf += c
    i = buf.index(b"\r\n\r\n")
    head, buf = buf[:i].decode("latin-1"), buf[i + 4:]
    lines = head.split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        headers[name] = headers[name] + ", " + value if name in headers else value
    n = int(headers.get("content-length", "0"))
    while len(buf) < n:
        c = more()
        if not c:
            raise ConnectionError("connection ended inside the body: %r" % buf[:300])
        buf += c
    return Response(sock, lines[0], headers, buf[:n], buf[n:])


def wait_eof(sock, timeout=WAIT):
    """True if the peer ends the connection within timeout (bytes that come are discarded)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True


class _Prefixed:
    """A socket stand-in whose first recv returns bytes already read."""

    def __init__(self, sock, prefix):
        self._sock, self._prefix = sock, prefix

    def settimeout(self, t):
        self._sock.settimeout(t)

    def recv(self, n):
        if self._prefix:
            out, self._prefix = self._prefix, b""
            return out
        return self._sock.recv(n)


def ws_on(resp):
    """A RawWS on the socket of a completed upgrade (keeping bytes that came after the head)."""
    ws = RawWS.__new__(RawWS)
    ws.sock = resp.sock
    ws.buf = resp.rest
    ws.response_head = resp.status_line
    return ws


def ping_frame(seq):
    return RawWS.frame(0x1, json.dumps({"seq": seq, "cmd": "ping"}))


class NodeCase(NodeTestCase):
    node_options = {}

    def open(self, port=None):
        s = socket.create_connection((HOST, port or self.node.ws_port), timeout=WAIT)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.addCleanup(s.close)
        return s

    def exchange(self, data, port=None):
        s = self.open(port)
        s.sendall(data)
        return read_response(s)

    def assert_switched(self, resp, key):
        self.assertTrue(resp.status_line.startswith("HTTP/1.1 101"), resp)
        self.assertEqual(resp.headers.get("upgrade", "").lower(), "websocket", resp)
        tokens = [t.strip().lower() for t in resp.headers.get("connection", "").split(",")]
        self.assertIn("upgrade", tokens, resp)
        self.assertEqual(resp.headers.get("sec-websocket-accept"), accept_for(key), resp)
        self.assertNotIn("sec-websocket-extensions", resp.headers, resp)
        self.assertNotIn("sec-websocket-protocol", resp.headers, resp)

    def assert_works(self, resp, seq="hs"):
        """The upgraded connection answers a ping request."""
        ws = ws_on(resp)
        ws.sock.sendall(ping_frame(seq))
        ws.sock.settimeout(WAIT)
        self.assertEqual(ws.recv_json()["seq"], seq)

    def assert_json_error(self, resp, status):
        self.assertEqual(resp.status, status, resp)
        self.assertTrue(resp.headers.get("content-type", "").startswith("application/json"), resp)
        body = resp.json()
        self.assertEqual(body.get("code"), status, body)
        self.assertIsInstance(body.get("msg"), str, body)
        self.assertTrue(body["msg"], body)
        self.assertIn("data", body)
        self.assertIsNone(body["data"], body)
        self.assertNotIn("sec-websocket-accept", resp.headers, resp)

    def upgrade(self, port=None, key=None, **kw):
        port = port or self.node.ws_port
        key = key or ws_key()
        return key, self.exchange(upgrade_request(port, key=key, **kw), port)


class Accepted(NodeCase):
    def test_rfc_sample_key(self):
        """RFC 6455 §1.3: dGhlIHNhbXBsZSBub25jZQ== -> s3pPLMBiTxaQ9kYGzzhZRbK+xOo=."""
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        self.assertEqual(accept_for(key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        _, resp = self.upgrade(key=key)
        self.assert_switched(resp, key)
        self.assertEqual(resp.headers["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")

    def test_upgrade_on_websocket_port(self):
        key, resp = self.upgrade()
        self.assert_switched(resp, key)
        self.assertEqual(resp.rest, b"", "bytes after the 101 head before any request")
        self.assert_works(resp)

    def test_upgrade_on_http_port(self):
        key, resp = self.upgrade(port=self.node.http_port)
        self.assert_switched(resp, key)
        self.assert_works(resp)

    def test_query_string_ignored(self):
        for port in (self.node.ws_port, self.node.http_port):
            with self.subTest(port=port):
                key, resp = self.upgrade(port=port, path="/acc?appID=101&token=x%20y&z")
                self.assert_switched(resp, key)
                self.assert_works(resp)

    def test_connection_keep_alive_upgrade(self):
        key, resp = self.upgrade(headers={"Connection": "keep-alive, Upgrade"})
        self.assert_switched(resp, key)
        self.assert_works(resp)

    def test_header_names_and_tokens_case_insensitive(self):
        key = ws_key()
        req = ("GET /acc HTTP/1.1\r\nhost: %s:%d\r\nUPGRADE: WebSocket\r\nconnection: UPGRADE\r\n"
               "sec-websocket-key: %s\r\nSEC-WEBSOCKET-VERSION: 13\r\n\r\n"
               % (HOST, self.node.ws_port, key)).encode()
        resp = self.exchange(req)
        self.assert_switched(resp, key)
        self.assert_works(resp)

    def test_optional_whitespace_and_extra_headers(self):
        key = ws_key()
        req = ("GET /acc HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: conformance\r\n"
               "Upgrade:websocket\r\nConnection:   keep-alive ,  Upgrade\r\n"
               "Origin: http://example.com\r\nSec-WebSocket-Key:   %s\r\n"
               "Sec-WebSocket-Version: 13\r\nCookie: a=b\r\n\r\n"
               % (HOST, self.node.ws_port, key)).encode()
        resp = self.exchange(req)
        self.assert_switched(resp, key)
        self.assert_works(resp)

    def test_permessage_deflate_offer_declined(self):
        key, resp = self.upgrade(headers={
            "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"})
        self.assert_switched(resp, key)  # no Sec-WebSocket-Extensions in the answer
        ws = ws_on(resp)
        ws.sock.sendall(ping_frame("plain"))
        ws.sock.settimeout(WAIT)
        fin, op, payload = ws.recv_frame()
        self.assertEqual((fin, op), (True, 0x1))
        self.assertEqual(json.loads(payload)["seq"], "plain")  # not compressed

    def test_empty_subprotocol_header_is_no_offer(self):
        key, resp = self.upgrade(headers={"Sec-WebSocket-Protocol": ""})
        self.assert_switched(resp, key)
        self.assert_works(resp)

    def test_request_split_into_one_byte_writes(self):
        key = ws_key()
        req = upgrade_request(self.node.ws_port, key=key)
        s = self.open()
        for i in range(len(req)):
            s.sendall(req[i:i + 1])
            time.sleep(0.001)
        resp = read_response(s)
        self.assert_switched(resp, key)
        self.assert_works(resp)

    def test_request_split_at_crlf_crlf(self):
        key = ws_key()
        req = upgrade_request(self.node.ws_port, key=key)
        s = self.open()
        for part in (req[:-3], req[-3:-1], req[-1:]):
            s.sendall(part)
            time.sleep(0.02)
        resp = read_response(s)
        self.assert_switched(resp, key)
        self.assert_works(resp)

    def test_frame_pipelined_with_the_request(self):
        """A frame in the same TCP write as the upgrade request is WebSocket data."""
        key = ws_key()
        s = self.open()
        s.sendall(upgrade_request(self.node.ws_port, key=key) + ping_frame("pipelined") +
                  RawWS.frame(0x9, b"pp"))
        resp = read_response(s)
        self.assert_switched(resp, key)
        ws = ws_on(resp)
        ws.sock.settimeout(WAIT)
        self.assertEqual(ws.recv_json()["seq"], "pipelined")
        self.assertEqual(ws.recv_frame(), (True, 0xA, b"pp"))

    def test_frame_pipelined_on_http_port(self):
        key = ws_key()
        s = self.open(self.node.http_port)
        s.sendall(upgrade_request(self.node.http_port, key=key) + ping_frame("pipelined"))
        resp = read_response(s)
        self.assert_switched(resp, key)
        ws = ws_on(resp)
        ws.sock.settimeout(WAIT)
        self.assertEqual(ws.recv_json()["seq"], "pipelined")

    def test_upgrade_after_keep_alive_request_on_http_port(self):
        """An API request, then an upgrade on the same keep-alive connection."""
        s = self.open(self.node.http_port)
        s.sendall(b"GET /user/list?appID=101 HTTP/1.1\r\nHost: x\r\n\r\n")
        first = read_response(s)
        self.assertEqual(first.status, 200, first)
        key = ws_key()
        s.sendall(upgrade_request(self.node.http_port, key=key))
        resp = read_response(s)
        self.assert_switched(resp, key)
        self.assert_works(resp)

    def test_upgrade_pipelined_after_api_request(self):
        """API request + upgrade + frame, all in one write on the HTTP port."""
        key = ws_key()
        s = self.open(self.node.http_port)
        s.sendall(b"GET /user/list?appID=101 HTTP/1.1\r\nHost: x\r\n\r\n" +
                  upgrade_request(self.node.http_port, key=key) + ping_frame("after-api"))
        first = read_response(s)
        self.assertEqual(first.status, 200, first)
        # The second response starts in what came after the first one.
        s2 = _Prefixed(s, first.rest)
        resp = read_response(s2)
        self.assert_switched(resp, key)
        resp.sock = s
        ws = ws_on(resp)
        ws.sock.settimeout(WAIT)
        self.assertEqual(ws.recv_json()["seq"], "after-api")

    def test_headers_just_under_limit(self):
        """A request of about 8000 bytes (app.maxHeaderBytes is 8192) is accepted."""
        key = ws_key()
        base = upgrade_request(self.node.ws_port, key=key)
        pad = 8000 - len(base) - len("X-Pad: \r\n")
        req = upgrade_request(self.node.ws_port, key=key, headers={"X-Pad": "a" * pad})
        self.assertEqual(len(req), 8000)
        resp = self.exchange(req)
        self.assert_switched(resp, key)
        self.assert_works(resp)

    def test_websockets_library_client(self):
        """python3-websockets (offers permessage-deflate, checks the accept key)."""
        import websockets

        async def session(url):
            async with websockets.connect(url, open_timeout=WAIT, close_timeout=WAIT) as ws:
                ext = ws.response_headers.get("Sec-WebSocket-Extensions")
                await ws.send(json.dumps({"seq": "lib-text", "cmd": "ping"}))
                r1 = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
                await ws.send(json.dumps({"seq": "lib-bin", "cmd": "ping"}).encode())
                r2 = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
                await asyncio.wait_for(await ws.ping(b"lib"), WAIT)
            return ext, r1, r2, ws.close_code

        for port in (self.node.ws_port, self.node.http_port):
            with self.subTest(port=port):
                url = "ws://%s:%d/acc?x=1" % (HOST, port)
                ext, r1, r2, code = asyncio.run(asyncio.wait_for(session(url), 20))
                self.assertIsNone(ext)
                self.assertEqual((r1["seq"], r1["response"]["data"]), ("lib-text", "pong"))
                self.assertEqual((r2["seq"], r2["response"]["data"]), ("lib-bin", "pong"))
                self.assertEqual(code, 1000)


class Rejected(NodeCase):
    def test_plain_get_acc_is_400(self):
        for port in (self.node.ws_port, self.node.http_port):
            with self.subTest(port=port):
                resp = self.exchange(
                    ("GET /acc HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (HOST, port)).encode(), port)
                self.assert_json_error(resp, 400)

    def test_missing_upgrade_header_is_400(self):
        _, resp = self.upgrade(omit=("Upgrade",))
        self.assert_json_error(resp, 400)

    def test_upgrade_not_websocket_is_400(self):
        _, resp = self.upgrade(headers={"Upgrade": "h2c"})
        self.assert_json_error(resp, 400)

    def test_connection_without_upgrade_token_is_400(self):
        for value in ("keep-alive", "close", "Upgraded"):
            with self.subTest(connection=value):
                _, resp = self.upgrade(headers={"Connection": value})
                self.assert_json_error(resp, 400)

    def test_missing_connection_header_is_400(self):
        _, resp = self.upgrade(omit=("Connection",))
        self.assert_json_error(resp, 400)

    def test_key_not_base64_is_400(self):
        for key in ("not base64 at all!!", "@@@@@@@@@@@@@@@@@@@@@@==", "dGhlIHNhbXBsZSBub25j!Q=="):
            with self.subTest(key=key):
                _, resp = self.upgrade(key=key)
                self.assert_json_error(resp, 400)

    def test_key_of_15_bytes_is_400(self):
        _, resp = self.upgrade(key=base64.b64encode(os.urandom(15)).decode())
        self.assert_json_error(resp, 400)

    def test_key_of_17_bytes_is_400(self):
        _, resp = self.upgrade(key=base64.b64encode(os.urandom(17)).decode())
        self.assert_json_error(resp, 400)

    def test_empty_key_is_400(self):
        _, resp = self.upgrade(headers={"Sec-WebSocket-Key": ""})
        self.assert_json_error(resp, 400)

    def test_missing_key_is_400(self):
        for port in (self.node.ws_port, self.node.http_port):
            with self.subTest(port=port):
                _, resp = self.upgrade(port=port, omit=("Sec-WebSocket-Key",))
                self.assert_json_error(resp, 400)

    def test_version_8_is_426(self):
        for version in ("8", "7", "14"):
            with self.subTest(version=version):
                _, resp = self.upgrade(headers={"Sec-WebSocket-Version": version})
                self.assertEqual(resp.status, 426, resp)
                self.assertEqual(resp.headers.get("sec-websocket-version"), "13", resp)
                self.assertNotIn("sec-websocket-accept", resp.headers, resp)
                if resp.body:
                    self.assertEqual(resp.json()["code"], 426, resp)

    def test_version_8_is_426_on_http_port(self):
        _, resp = self.upgrade(port=self.node.http_port, headers={"Sec-WebSocket-Version": "8"})
        self.assertEqual(resp.status, 426, resp)
        self.assertEqual(resp.headers.get("sec-websocket-version"), "13", resp)

    def test_post_upgrade_is_405(self):
        for port in (self.node.ws_port, self.node.http_port):
            with self.subTest(port=port):
                _, resp = self.upgrade(port=port, method="POST",
                                       headers={"Content-Length": "0"})
                self.assert_json_error(resp, 405)
                allow = [m.strip().upper() for m in resp.headers.get("allow", "").split(",")]
                self.assertIn("GET", allow, resp)

    def test_other_path_on_websocket_port_is_404(self):
        for req in (b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n",
                    upgrade_request(self.node.ws_port, path="/other"),
                    upgrade_request(self.node.ws_port, path="/acc/x"),
                    b"GET /user/list?appID=101 HTTP/1.1\r\nHost: x\r\n\r\n"):
            with self.subTest(request=req.split(b"\r\n")[0]):
                self.assert_json_error(self.exchange(req), 404)

    def test_headers_over_limit_is_431_and_close(self):
        for port in (self.node.ws_port, self.node.http_port):
            with self.subTest(port=port):
                s = self.open(port)
                s.sendall(upgrade_request(port, headers={"X-Pad": "a" * 9000}))
                resp = read_response(s)
                self.assert_json_error(resp, 431)
                self.assertTrue(resp.rest == b"" and wait_eof(s, 3),
                                "connection still open after 431")

    def test_many_headers_over_limit_is_431(self):
        headers = {"X-H%d" % i: "v" * 100 for i in range(100)}
        s = self.open()
        s.sendall(upgrade_request(self.node.ws_port, headers=headers))
        self.assert_json_error(read_response(s), 431)
        self.assertTrue(wait_eof(s, 3), "connection still open after 431")

    def test_garbage_is_400_and_close(self):
        cases = (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS ClientHello
                 b"hello world\r\n\r\n",
                 b"GET /acc HTTP/1.1\r\nHost x no colon\r\n\r\n",
                 b"\x00\xff\xfe garbage \x81\x85\r\n\r\n")
        for data in cases:
            with self.subTest(data=data):
                s = self.open()
                s.sendall(data)
                resp = read_response(s)
                self.assert_json_error(resp, 400)
                self.assertTrue(wait_eof(s, 3), "connection still open after 400")

    def test_garbage_without_crlf_is_400_and_close(self):
        """Bytes that cannot start an HTTP request are rejected at once, not at the timeout."""
        s = self.open()
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        resp = read_response(s, timeout=3)
        self.assert_json_error(resp, 400)
        self.assertTrue(wait_eof(s, 3), "connection still open after 400")

    def test_subprotocol_offer_is_400_by_default(self):
        """app.subprotocols is "": a browser offering one would fail a 101 that names none, so
        the offer is refused with a clear 400 instead."""
        for offer in ("chat", "chat, superchat", " mqtt ,,wamp"):
            with self.subTest(offer=offer):
                _, resp = self.upgrade(headers={"Sec-WebSocket-Protocol": offer})
                self.assert_json_error(resp, 400)
                self.assertIn("Sec-WebSocket-Protocol", resp.json()["msg"])

    def test_rejected_requests_keep_the_node_healthy(self):
        """After all the rejections a normal upgrade still works."""
        key, resp = self.upgrade()
        self.assert_switched(resp, key)
        self.assert_works(resp)


class Subprotocols(NodeCase):
    """app.subprotocols=imgate.v1,chat: the first offered one we speak is echoed in the 101."""

    node_options = {"app.subprotocols": "imgate.v1,chat"}

    def assert_chosen(self, resp, key, proto):
        self.assertTrue(resp.status_line.startswith("HTTP/1.1 101"), resp)
        self.assertEqual(resp.headers.get("sec-websocket-accept"), accept_for(key), resp)
        self.assertEqual(resp.headers.get("sec-websocket-protocol"), proto, resp)
        self.assert_works(resp)

    def test_first_offered_that_we_speak_is_echoed(self):
        for offer, chosen in (("chat", "chat"), ("superchat, chat, imgate.v1", "chat"),
                              ("imgate.v1,chat", "imgate.v1"), ("x,\timgate.v1", "imgate.v1")):
            with self.subTest(offer=offer):
                key, resp = self.upgrade(headers={"Sec-WebSocket-Protocol": offer})
                self.assert_chosen(resp, key, chosen)

    def test_names_are_compared_exactly(self):
        """Subprotocol names are case-sensitive tokens (RFC 6455 §4.1): a prefix, a different
        case or a longer name is not ours."""
        for offer in ("Chat", "cha", "chats", "imgate", "imgate.v1x"):
            with self.subTest(offer=offer):
                _, resp = self.upgrade(headers={"Sec-WebSocket-Protocol": offer})
                self.assert_json_error(resp, 400)

    def test_no_offer_gets_no_subprotocol(self):
        key, resp = self.upgrade()
        self.assert_switched(resp, key)
        self.assert_works(resp)

    def test_websockets_library_client_gets_its_subprotocol(self):
        """python3-websockets checks that the answer names one it offered."""
        import websockets

        async def run():
            url = "ws://%s:%d/acc" % (HOST, self.node.ws_port)
            async with websockets.connect(url, subprotocols=["other", "chat"],
                                          open_timeout=WAIT, close_timeout=WAIT) as ws:
                self.assertEqual(ws.subprotocol, "chat")
                await ws.send(json.dumps({"seq": "lib", "cmd": "ping"}))
                self.assertEqual(json.loads(await asyncio.wait_for(ws.recv(), WAIT))["seq"],
                                 "lib")

        asyncio.run(run())


class HandshakeTimeout(NodeCase):
    """app.handshakeTimeout=1: requests not completed in ~1 s are dropped."""

    node_options = {"app.handshakeTimeout": 1}

    def test_silent_client_is_closed(self):
        for port in (self.node.ws_port, self.node.http_port):
            with self.subTest(port=port):
                s = self.open(port)
                t0 = time.monotonic()
                got = b""
                s.settimeout(3.5)
                try:
                    while True:
                        c = s.recv(4096)
                        if not c:
                            break
                        got += c
                except socket.timeout:
                    self.fail("a silent client was not closed within 3.5 s")
                except ConnectionResetError:
                    pass
                self.assertEqual(got, b"", "a silent client gets a plain TCP close")
                self.assertLess(time.monotonic() - t0, 3.5)

    def test_partial_request_gets_408(self):
        s = self.open()
        s.sendall(b"GET /acc HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        resp = read_response(s, timeout=3.5)
        self.assertEqual(resp.status, 408, resp)
        self.assertTrue(wait_eof(s, 2), "connection still open after 408")

    def test_slow_request_is_cut_at_the_deadline(self):
        """The deadline is for the whole request, not per byte: one byte every 50 ms keeps the
        connection busy but the request is still cut off (408) after about a second."""
        s = self.open()
        req = upgrade_request(self.node.ws_port)
        t0 = time.monotonic()
        got = b""
        s.settimeout(0.05)
        for i in range(len(req)):
            try:
                s.sendall(req[i:i + 1])
                c = s.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not c:
                break
            got += c
            break
        self.assertLess(time.monotonic() - t0, 3.5, "request not cut off")
        self.assertLess(i, len(req) - 1, "the whole request went through")
        rest = read_response(_Prefixed(s, got), timeout=2)
        self.assertEqual(rest.status, 408, rest)
        self.assertTrue(wait_eof(s, 2), "connection still open after 408")

    def test_upgraded_connection_outlives_the_handshake_timeout(self):
        key, resp = self.upgrade()
        self.assert_switched(resp, key)
        ws = ws_on(resp)
        time.sleep(2.2)  # past the 1 s handshake deadline and a coarse timer's tick
        ws.sock.sendall(ping_frame("later"))
        ws.sock.settimeout(WAIT)
        self.assertEqual(ws.recv_json()["seq"], "later")


if __name__ == "__main__":
    unittest.main()
