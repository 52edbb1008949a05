"""Who may use a node (issue 8): auth.apiKey guards the push API, /metrics and /system/state
(Authorization: Bearer, 401 JSON otherwise) while the chat page's routes stay open;
app.allowedOrigins refuses a browser's WebSocket from another origin with 403; without either,
the node says at start-up that it is open."""

import asyncio
import unittest

import websockets

from harness import Node
from imtest import NodeTestCase, parse_http_responses, send_message, state_counters, uid
from harness import HOST
import json
import socket

KEY = "k3y-for-the-tests-0123456789"


def raw_request_status(port, data):
    """Sends raw bytes; returns (status, JSON body or None) of the first response."""
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(data)
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        status = int(got.split(b" ", 2)[1])
        if status == 101:
            return status, None
        while True:
            resp = parse_http_responses(got)
            if resp:
                return status, json.loads(resp[0][2])
            chunk = s.recv(4096)
            if not chunk:
                return status, None
            got += chunk


class ApiKey(NodeTestCase):
    node_options = {"auth.apiKey": KEY}

    def call(self, method, path, params=None, key=KEY, scheme="Bearer"):
        headers = {"Authorization": "%s %s" % (scheme, key)} if key is not None else {}
        return self.http.request(method, path, params, headers=headers)

    def test_guarded_routes_need_the_key(self):
        r = self.client(uid("r"))
        before = state_counters_key(self)
        guarded = [("POST", "/user/sendMessage", {"appID": 101, "userID": r.user, "message": "x"}),
                   ("POST", "/user/sendMessageAll", {"appID": 101, "message": "x"}),
                   ("GET", "/system/state", None), ("GET", "/metrics", None)]
        wrong = [None, "", KEY[:-1], KEY + "x", KEY.upper(), "\t" + KEY]
        for method, path, params in guarded:
            for key in wrong:
                st, h, body, _ = self.call(method, path, params, key=key)
                self.assertEqual(st, 401, (path, key))
                self.assertEqual(body["code"], 401)
                self.assertIn("API key", body["msg"])
                self.assertEqual(h["www-authenticate"], 'Bearer realm="imgate"')
            st, _, body, _ = self.call(method, path, params, scheme="Basic")
            self.assertEqual(st, 401)
            st, _, _, _ = self.call(method, path, params, scheme="bearer")  # scheme is case-free
            self.assertEqual(st, 200, path)
            st, _, _, _ = self.call(method, path, params, key=" " + KEY)  # 1*SP (RFC 9110)
            self.assertEqual(st, 200, path)
        # Nothing was pushed by the refused calls: only the four accepted ones arrived, before a
        # marker sent last (waiting for the first push alone raced the other three).
        st, _, _, _ = self.call("POST", "/user/sendMessage",
                                {"appID": 101, "userID": r.user, "message": "marker"})
        self.assertEqual(st, 200)
        end = r.wait_for(lambda m: m.get("cmd") == "msg" and "marker" in json.dumps(m),
                         what="the marker push")
        self.assertEqual(len(r.pushes("msg", upto=end)), 4)
        after = state_counters_key(self)
        self.assertEqual(after["apiAuthFailures"] - before["apiAuthFailures"],
                         len(guarded) * (len(wrong) + 1))

    def test_page_routes_stay_open(self):
        for path in ("/user/list?appID=101", "/user/online?userID=x", "/health", "/ready",
                     "/home/config", "/home/index"):
            st, _, _, _ = self.http.get(path)
            self.assertEqual(st, 200, path)
        st, _, _, _ = self.http.request("OPTIONS", "/user/sendMessage")  # CORS preflight
        self.assertEqual(st, 204)

    def test_start_up_says_the_api_is_guarded(self):
        self.assertNotIn("push API is open", self.node.stderr())


def state_counters_key(case):
    st, _, body, _ = case.http.request("GET", "/system/state",
                                       headers={"Authorization": "Bearer " + KEY})
    case.assertEqual(st, 200)
    return body["data"]["counters"]


class OpenByDefault(NodeTestCase):
    def test_warned_once(self):
        err = self.node.stderr()
        self.assertEqual(err.count("push API is open"), 1)
        self.assertEqual(err.count("app.allowedOrigins is empty"), 1)
        st, _ = send_message(self.http, 101, uid("x"), "x")
        self.assertEqual(st, 200)

    def test_any_origin(self):
        async def run():
            async with websockets.connect(self.node.ws_url, open_timeout=5,
                                          origin="https://evil.example") as ws:
                await ws.send('{"seq":"1","cmd":"ping"}')
                return await asyncio.wait_for(ws.recv(), 5)
        self.assertIn("pong", asyncio.run(run()))


class Origins(NodeTestCase):
    node_options = {"app.allowedOrigins":
                    "https://chat.example.com,http://localhost:8080,https://*.corp.example"}

    def upgrade(self, origin):
        extra = "Origin: %s\r\n" % origin if origin is not None else ""
        return raw_request_status(self.node.ws_port, (
            "GET /acc HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n"
            % extra).encode())

    def test_allowed_and_refused(self):
        before = state_counters(self.node)
        allowed = ["https://chat.example.com", "HTTPS://Chat.Example.COM", "http://localhost:8080",
                   "https://a.corp.example", "https://a.b.corp.example", None]
        refused = ["https://evil.example", "http://chat.example.com", "https://chat.example.com:444",
                   "https://chat.example.com.evil", "http://localhost:8081", "null",
                   "https://corp.example", "https://x@a.corp.example", "https://evil.example/"
                   "https://chat.example.com", "https://a.corp.example.evil", ""]
        for o in allowed:
            self.assertEqual(self.upgrade(o)[0], 101, o)
        for o in refused:
            st, body = self.upgrade(o)
            self.assertEqual(st, 403, o)
            self.assertEqual(body["code"], 403)
            self.assertIn("app.allowedOrigins", body["msg"])
        after = state_counters(self.node)
        self.assertEqual(after["originsRefused"] - before["originsRefused"], len(refused))
        self.assertNotIn("allowedOrigins is empty", self.node.stderr())

    def test_browser_like_client(self):
        async def run(origin):
            try:
                async with websockets.connect(self.node.ws_url, open_timeout=5,
                                              origin=origin) as ws:
                    await ws.send('{"seq":"1","cmd":"ping"}')
                    return await asyncio.wait_for(ws.recv(), 5)
            except websockets.InvalidStatusCode as e:
                return e.status_code
        self.assertEqual(asyncio.run(run("https://evil.example")), 403)
        self.assertIn("pong", asyncio.run(run("https://chat.example.com")))


class BadConfig(unittest.TestCase):
    def test_refused_at_start(self):
        for key, value in (("auth.apiKey", "short"), ("auth.apiKey", "has space 0123456789"),
                           ("app.allowedOrigins", "chat.example.com"),
                           ("app.allowedOrigins", "https://chat.example.com/"),
                           ("app.allowedOrigins", "https://a.example, https://b.example")):
            node = Node(**{key: value})
            self.addCleanup(node.cleanup)
            with self.assertRaises(RuntimeError) as cm:
                node.start()
            self.assertEqual(node.proc.returncode, 2)
            self.assertIn(key, str(cm.exception))
            self.assertNotIn("0123456789", str(cm.exception).replace(key, ""))


if __name__ == "__main__":
    unittest.main()
