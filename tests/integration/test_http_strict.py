"""Strict HTTP/1.1 request parsing (docs/behaviour.md "HTTP requests"): every request-smuggling
primitive a lenient parser honours is refused with 400 JSON and a close, and nothing hidden
behind it is answered; what real clients send (chunked bodies, Expect: 100-continue, the
absolute form, HTTP/1.0) still works, with Python's http.client as a client we did not write.

Run: IMGATE_BIN=build/imgate /usr/bin/python3 -m unittest -v test_http_strict
"""

import http.client
import json
import socket
import unittest
import urllib.parse

from harness import HOST
from imtest import NodeTestCase, http_exchange, uid

LIST = b"GET /user/list?appID=101 HTTP/1.1\r\nHost: a\r\n\r\n"


def post(body, headers, path=b"/user/sendMessageAll", version=b"HTTP/1.1"):
    return (b"POST " + path + b" " + version + b"\r\n" + b"".join(h + b"\r\n" for h in headers) +
            b"\r\n" + body)


FORM = b"appID=101&message=hi&msgID=strict"

# (name, request bytes, status). Each is followed by LIST on the same connection: if the
# server read the framing some other way, it would answer that hidden request too.
REFUSED = [
    ("space before the colon of Content-Length",
     post(b"hello", [b"Host: a", b"Content-Length : 5"]), 400),
    ("space before the colon of Transfer-Encoding",
     post(b"0\r\n\r\n", [b"Host: a", b"Transfer-Encoding : chunked"]), 400),
    ("junk instead of CRLF after chunk data",
     post(b"5\r\nhelloXX0\r\n\r\n", [b"Host: a", b"Transfer-Encoding: chunked"]), 400),
    ("a request hidden after chunk data",
     post(b"3\r\nabc" + LIST + b"0\r\n\r\n", [b"Host: a", b"Transfer-Encoding: chunked"]), 400),
    ("bare LF line endings", b"GET /user/list?appID=101 HTTP/1.1\nHost: a\n\n", 400),
    ("bare LF in one header line", b"GET /user/list HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400),
    ("bare CR inside a line", b"GET /user/list HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400),
    ("Content-Length and Transfer-Encoding",
     post(b"0\r\n\r\n", [b"Host: a", b"Content-Length: 5", b"Transfer-Encoding: chunked"]), 400),
    ("two Content-Length headers",
     post(b"hello", [b"Host: a", b"Content-Length: 5", b"Content-Length: 5"]), 400),
    ("a Content-Length list", post(b"hello", [b"Host: a", b"Content-Length: 5, 5"]), 400),
    ("a signed Content-Length", post(b"hello", [b"Host: a", b"Content-Length: +5"]), 400),
    ("chunked in HTTP/1.0",
     post(b"0\r\n\r\n", [b"Transfer-Encoding: chunked"], version=b"HTTP/1.0"), 400),
    ("chunked not the last coding",
     post(b"0\r\n\r\n", [b"Host: a", b"Transfer-Encoding: chunked, identity"]), 400),
    ("an unknown coding", post(b"0\r\n\r\n", [b"Host: a", b"Transfer-Encoding: gzip, chunked"]),
     501),
    ("a chunk extension",
     post(b"5;name=v\r\nhello\r\n0\r\n\r\n", [b"Host: a", b"Transfer-Encoding: chunked"]), 400),
    ("a zero-padded chunk size longer than 16 digits",
     post(b"0" * 64 + b"5\r\nhello\r\n0\r\n\r\n", [b"Host: a", b"Transfer-Encoding: chunked"]),
     400),
    ("a folded header value", b"GET /user/list HTTP/1.1\r\nHost: a\r\nX-F: a\r\n b\r\n\r\n", 400),
    ("white space before the first header",
     b"GET /user/list HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    ("a NUL in a header value", b"GET /user/list HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
    ("no Host in HTTP/1.1", b"GET /user/list HTTP/1.1\r\n\r\n", 400),
    ("two Host headers", b"GET /user/list HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("a Host list", b"GET /user/list HTTP/1.1\r\nHost: a, b\r\n\r\n", 400),
    ("two spaces in the request line", b"GET  /user/list HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("a fragment in the target", b"GET /user/list#x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("HTTP/2.0", b"GET /user/list HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ("the HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
]


class Refused(NodeTestCase):
    def test_each_primitive_is_refused_and_closes(self):
        for name, raw, status in REFUSED:
            with self.subTest(name):
                got, data, closed = http_exchange(self.node.http_port, raw + LIST, responses=2,
                                                  timeout=5)
                self.assertEqual([g[0] for g in got], [status], data[:600])
                body = json.loads(got[0][2])
                self.assertEqual(body["code"], status, body)
                self.assertTrue(body["msg"], body)
                self.assertTrue(got[0][1]["content-type"].startswith("application/json"))
                self.assertTrue(closed, "connection left open after %d" % status)

    def test_refused_on_the_websocket_port_too(self):
        for name, raw, status in REFUSED[:6]:
            with self.subTest(name):
                got, data, closed = http_exchange(self.node.ws_port, raw, responses=2)
                self.assertEqual([g[0] for g in got], [status], data[:600])
                self.assertTrue(closed)

    def test_long_chunk_extension_is_refused_at_once(self):
        """The outside finding: 60 KB chunk extensions were buffered (96 MiB for 1 678 body
        bytes). The size line is refused after its 18th byte, not when it ends."""
        s = socket.create_connection((HOST, self.node.http_port), timeout=5)
        self.addCleanup(s.close)
        s.sendall(post(b"1;" + b"e" * 100, [b"Host: a", b"Transfer-Encoding: chunked"]))
        data = b""
        while b"\r\n\r\n" not in data:
            c = s.recv(4096)
            if not c:
                break
            data += c
        self.assertTrue(data.startswith(b"HTTP/1.1 400 "), data[:200])

    def test_node_still_answers(self):
        got, _, _ = http_exchange(self.node.http_port, LIST)
        self.assertEqual(got[0][0], 200)


class Accepted(NodeTestCase):
    def test_chunked_body_is_decoded(self):
        """Upper- and lower-case hex, zero padding up to 16 digits, a trailer: the message
        pushed is exactly the decoded text."""
        user = uid("ch")
        c = self.client(user, 101)
        text = "chunked-" + "z" * 40
        form = urllib.parse.urlencode({"appID": 101, "userID": user, "message": text,
                                       "msgID": uid("m")}).encode()
        a, b = form[:10], form[10:]
        body = (b"%X\r\n" % len(a) + a + b"\r\n" + b"%016x\r\n" % len(b) + b + b"\r\n" +
                b"0\r\nX-Trailer: t\r\n\r\n")
        got, data, closed = http_exchange(
            self.node.http_port,
            post(body, [b"Host: a", b"Transfer-Encoding: chunked",
                        b"Content-Type: application/x-www-form-urlencoded"],
                 path=b"/user/sendMessage") + LIST, responses=2)
        self.assertEqual([g[0] for g in got], [200, 200], data)
        self.assertEqual(json.loads(got[0][2])["data"], {"sendResults": True})
        i = c.wait_for(lambda m: m.get("cmd") == "msg")
        self.assertEqual(c.msgs[i]["response"]["data"]["msg"], text)

    def test_http_client_chunked(self):
        """http.client's own chunked encoding (a client we did not write)."""
        conn = http.client.HTTPConnection(HOST, self.node.http_port, timeout=5)
        self.addCleanup(conn.close)
        conn.request("POST", "/user/sendMessageAll", body=iter([FORM[:7], FORM[7:]]),
                     headers={"Content-Type": "application/x-www-form-urlencoded"},
                     encode_chunked=True)
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(json.loads(r.read())["code"], 200)

    def test_expect_100_continue(self):
        """The client waits for the interim answer before it sends the body (curl does so above
        1 KiB)."""
        s = socket.create_connection((HOST, self.node.http_port), timeout=5)
        self.addCleanup(s.close)
        s.sendall(post(b"", [b"Host: a", b"Content-Length: %d" % len(FORM),
                             b"Content-Type: application/x-www-form-urlencoded",
                             b"Expect: 100-continue"]))
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(4096)
        self.assertEqual(data, b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(FORM)
        s.settimeout(5)
        while b"sendResults" not in data:
            data += s.recv(4096)
        self.assertIn(b"HTTP/1.1 200 OK", data)

    def test_expect_without_body_gets_no_interim(self):
        got, data, _ = http_exchange(self.node.http_port,
                                     b"GET /user/list?appID=101 HTTP/1.1\r\nHost: a\r\n"
                                     b"Expect: 100-continue\r\n\r\n")
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data[:100])

    def test_absolute_form_and_http10_and_leading_crlf(self):
        reqs = (b"GET http://imgate.example:8080/user/list?appID=101 HTTP/1.1\r\nHost: x\r\n\r\n"
                b"\r\n" + LIST +
                b"GET /user/list?appID=101 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        got, data, _ = http_exchange(self.node.http_port, reqs, responses=3)
        self.assertEqual([g[0] for g in got], [200, 200, 200], data)
        for g in got:
            self.assertEqual(json.loads(g[2])["data"]["userCount"], 0)

    def test_unknown_method_is_405(self):
        got, data, _ = http_exchange(self.node.http_port,
                                     b"PROPFIND /user/list HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertEqual(got[0][0], 405, data)
        self.assertEqual(json.loads(got[0][2])["code"], 405)

    def test_upgrade_to_h2c_is_ignored(self):
        """curl --http2 on plain HTTP asks for h2c; the answer is plain HTTP/1.1."""
        got, data, _ = http_exchange(
            self.node.http_port,
            b"GET /user/list?appID=101 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings"
            b"\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n" + LIST,
            responses=2)
        self.assertEqual([g[0] for g in got], [200, 200], data)


if __name__ == "__main__":
    unittest.main()
