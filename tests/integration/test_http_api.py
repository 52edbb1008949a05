"""The HTTP API (docs/behaviour.md "HTTP API"; spec §5): /user/list, /user/online, the send
routes' parameter errors, 404/405/OPTIONS, CORS and Content-Type, keep-alive and pipelining,
/system/state, the access log, and the 413/431 limits."""

import json
import time
import unittest

from imtest import COUNTER_KEYS, NodeTestCase, http_exchange, uid, wait_until

JSON_TYPE = "application/json; charset=utf-8"
MAX_BODY = 4096


class HttpApiTest(NodeTestCase):
    node_options = {"app.appIds": list(range(101, 121)), "app.maxBodyBytes": MAX_BODY}
    _rooms = iter(range(105, 121))

    def room(self):
        return next(type(self)._rooms)

    def assertJsonError(self, status, headers, body, want_status, what=""):
        self.assertEqual(status, want_status, "%s: %r" % (what, body))
        self.assertEqual(headers.get("content-type"), JSON_TYPE, what)
        self.assertEqual(headers.get("x-content-type-options"), "nosniff", what)
        self.assertIsInstance(body, dict, "%s: error body is not JSON: %r" % (what, body))
        self.assertEqual(set(body), {"code", "msg", "data"}, what)
        self.assertEqual(body["code"], want_status, what)
        self.assertIsInstance(body["msg"], str, what)
        self.assertTrue(body["msg"], "%s: empty msg" % what)
        self.assertIsNone(body["data"], what)

    def assertSuccess(self, status, headers, body, what=""):
        self.assertEqual(status, 200, "%s: %r" % (what, body))
        self.assertEqual(headers.get("content-type"), JSON_TYPE, what)
        self.assertEqual(headers.get("x-content-type-options"), "nosniff", what)
        self.assertEqual(body["code"], 200, what)
        self.assertEqual(body["msg"], "Success", what)
        return body["data"]

    def user_list(self, app):
        status, h, body, _ = self.http.get("/user/list", {"appID": app})
        return self.assertSuccess(status, h, body, "/user/list")

    # ---- /user/list ----

    def test_user_list(self):
        room, other = self.room(), self.room()
        alice, bob = uid("alice"), uid("bob")
        self.client(alice, room)
        self.client(alice, room)           # a second device: alice is still listed once
        b = self.client(bob, room)
        self.client(uid("carol"), other)
        self.client()                      # not logged in: not listed
        data = self.user_list(room)
        self.assertEqual(set(data), {"userCount", "userList"})
        self.assertEqual(data["userCount"], 2, data)
        self.assertEqual(sorted(data["userList"]), sorted([alice, bob]))
        for params in ({}, {"appID": 0}):
            with self.subTest(params=params):
                status, h, body, raw = self.http.get("/user/list", params)
                self.assertSuccess(status, h, body)
                self.assertEqual(raw, b'{"code":200,"msg":"Success","data":'
                                      b'{"userCount":0,"userList":[]}}')
        for bad in ("abc", "1x", "-"):
            with self.subTest(appID=bad):
                status, h, body, _ = self.http.get("/user/list", {"appID": bad})
                self.assertJsonError(status, h, body, 400, "appID=" + bad)
        b.close_gracefully()
        wait_until(lambda: self.user_list(room)["userList"] == [alice], 3,
                   what="bob gone from /user/list")
        self.assertEqual(self.user_list(room)["userCount"], 1)

    # ---- /user/online ----

    def test_user_online(self):
        room, other = self.room(), self.room()
        user = uid("on")
        c = self.client(user, room)
        status, h, body, raw = self.http.get("/user/online", {"userID": user, "appID": room})
        self.assertSuccess(status, h, body)
        self.assertEqual(raw, ('{"code":200,"msg":"Success","data":{"online":true,"userID":"%s"}}'
                               % user).encode())
        for params, want in [({"userID": user, "appID": other}, False),
                             ({"userID": user, "appID": 0}, True),      # 0 = any room
                             ({"userID": user}, True),                  # absent = any room
                             ({"userID": uid("nobody")}, False),
                             ({"userID": "<x>&", "appID": room}, False)]:
            with self.subTest(params=params):
                status, h, body, _ = self.http.get("/user/online", params)
                data = self.assertSuccess(status, h, body)
                self.assertEqual(data, {"online": want, "userID": params["userID"]})
        status, h, body, _ = self.http.get("/user/online", {"appID": room})
        self.assertJsonError(status, h, body, 400, "userID missing")
        # A userID no login accepts (README: 400 above 19 bytes), not a lookup of a prefix.
        c20 = self.client(uid("x" * 12)[:19], room)
        status, h, body, _ = self.http.get("/user/online", {"userID": c20.user + "z"})
        self.assertJsonError(status, h, body, 400, "userID of 20 bytes")
        status, h, body, _ = self.http.get("/user/online", {"userID": "u" * 25})
        self.assertJsonError(status, h, body, 400, "userID of 25 bytes")
        c20.close_gracefully()
        c.close_gracefully()
        wait_until(lambda: self.http.get("/user/online", {"userID": user})[2]["data"]["online"]
                   is False, 3, what="offline after close")

    # ---- the send routes' errors ----

    def test_send_parameter_errors(self):
        room = self.room()
        target = self.client(uid("t"), room)
        good = {"appID": room, "userID": target.user, "message": "m"}

        def without(k):
            return {x: v for x, v in good.items() if x != k}

        cases = []
        for path in ("/user/sendMessage", "/user/sendMessageAll"):
            cases += [
                (path, without("appID"), 400),
                (path, dict(good, appID="abc"), 400),
                (path, dict(good, appID="101x"), 400),
                (path, dict(good, appID=999), 400),           # not in app.appIds
                (path, dict(good, appID=0), 400),
                # Only digits: these were read as room %d (strtoll of the decoded value).
                (path, dict(good, appID="%d\x00junk" % room), 400),
                (path, dict(good, appID="\x00"), 400),
                (path, dict(good, appID=" %d" % room), 400),
                (path, dict(good, appID="\t%d" % room), 400),
                (path, dict(good, appID="+%d" % room), 400),
                (path, dict(good, appID="%d " % room), 400),
                (path, dict(good, appID="99999999999"), 400),
                (path, dict(good, userID="u" * 20), 400),
                (path, without("message"), 400),
                (path, dict(good, msgID="i" * 129), 400),
            ]
        cases.append(("/user/sendMessage", without("userID"), 400))
        # The queries read appID the same way.
        for bad in ("%d\x00junk" % room, "\x00", " %d" % room, "\t%d" % room, "-1"):
            for path, extra in (("/user/list", {}), ("/user/online", {"userID": target.user})):
                with self.subTest(path=path, appID=bad):
                    status, h, body, _ = self.http.get(path, dict(extra, appID=bad))
                    self.assertJsonError(status, h, body, 400, "%s appID=%r" % (path, bad))
        for path, params, want in cases:
            with self.subTest(path=path, params=params):
                status, h, body, _ = self.http.post(path, params)
                self.assertJsonError(status, h, body, want, "%s %r" % (path, params))

        # Wrong Content-Type: 415 (and the same parameters as a form would be fine).
        for ctype, payload in (("text/plain", "appID=%d&userID=%s&message=m" % (room, target.user)),
                               ("application/json", json.dumps(good))):
            with self.subTest(ctype=ctype):
                status, h, body, _ = self.http.request("POST", "/user/sendMessage", body=payload,
                                                       headers={"Content-Type": ctype})
                self.assertJsonError(status, h, body, 415, ctype)

        # The limits' edges pass: 128-byte msgID, 19-byte userID, charset parameter.
        ok_id = uid("ok").ljust(128, "i")
        status, h, body, _ = self.http.post("/user/sendMessage", dict(good, msgID=ok_id))
        self.assertEqual(self.assertSuccess(status, h, body), {"sendResults": True})
        cs_id = uid("cs")
        status, h, body, _ = self.http.request(
            "POST", "/user/sendMessage",
            body="appID=%d&userID=%s&message=cs&msgID=%s" % (room, target.user, cs_id),
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"})
        self.assertEqual(self.assertSuccess(status, h, body), {"sendResults": True})
        status, h, body, _ = self.http.post("/user/sendMessage",
                                            dict(good, userID="u" * 19, msgID=uid("m")))
        self.assertEqual(self.assertSuccess(status, h, body), {"sendResults": False})
        # None of the refused requests delivered anything.
        i = target.wait_seq(cs_id, "msg")
        self.assertEqual([m["seq"] for m in target.pushes("msg", upto=i + 1)], [ok_id, cs_id])

    def test_413_body_too_large(self):
        room = self.room()
        body = ("appID=%d&userID=x&message=" % room).encode()
        body += b"a" * (MAX_BODY + 100 - len(body))
        req = (b"POST /user/sendMessage HTTP/1.1\r\nHost: x\r\nContent-Type: "
               b"application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n" % len(body))
        resps, raw, _ = http_exchange(self.node.http_port, req + body)
        self.assertTrue(resps, "no response: %r" % raw[:200])
        status, h, b = resps[0]
        self.assertJsonError(status, h, json.loads(b), 413, "body over maxBodyBytes")
        # A huge announced length is refused from the headers alone, without the body.
        req = (b"POST /user/sendMessageAll HTTP/1.1\r\nHost: x\r\nContent-Type: "
               b"application/x-www-form-urlencoded\r\nContent-Length: 1000000000\r\n\r\n")
        resps, raw, _ = http_exchange(self.node.http_port, req, timeout=4)
        self.assertTrue(resps, "no response to a 1 GB Content-Length: %r" % raw[:200])
        self.assertEqual(resps[0][0], 413)

    def test_431_headers_too_large(self):
        req = ("GET /user/list?appID=101 HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n"
               % ("a" * 9000)).encode()
        t0 = time.monotonic()
        resps, raw, closed = http_exchange(self.node.http_port, req, responses=2, timeout=5)
        self.assertTrue(resps, "no response: %r" % raw[:200])
        status, h, b = resps[0]
        self.assertJsonError(status, h, json.loads(b), 431, "9000-byte header")
        self.assertTrue(closed and time.monotonic() - t0 < 4.5, "connection not closed after 431")
        # Under the limit is fine.
        req = ("GET /user/list?appID=101 HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n"
               % ("a" * 7000)).encode()
        resps, raw, _ = http_exchange(self.node.http_port, req)
        self.assertEqual(resps[0][0] if resps else raw[:100], 200)

    def test_malformed_request_400(self):
        resps, raw, closed = http_exchange(self.node.http_port, b"THIS IS NOT HTTP\r\n\r\n",
                                           responses=2)
        self.assertTrue(resps, "no response: %r" % raw[:200])
        status, h, b = resps[0]
        self.assertJsonError(status, h, json.loads(b), 400, "garbage request")
        self.assertTrue(closed, "connection not closed after a malformed request")

    # ---- routing ----

    def test_unknown_route_404(self):
        for method, path in (("GET", "/nope"), ("GET", "/user"), ("POST", "/nope"),
                             ("GET", "/user/list/extra"), ("GET", "/acc2")):
            with self.subTest(method=method, path=path):
                status, h, body, _ = self.http.request(method, path)
                self.assertJsonError(status, h, body, 404, path)

    def test_wrong_method_405(self):
        for method, path, allowed in (("GET", "/user/sendMessage", "POST"),
                                      ("GET", "/user/sendMessageAll", "POST"),
                                      ("POST", "/user/list", "GET"),
                                      ("PUT", "/user/online", "GET"),
                                      ("DELETE", "/system/state", "GET")):
            with self.subTest(method=method, path=path):
                status, h, body, _ = self.http.request(method, path)
                self.assertJsonError(status, h, body, 405, path)
                allow = [m.strip().upper() for m in h.get("allow", "").split(",")]
                self.assertIn(allowed, allow, "Allow header: %r" % h.get("allow"))
                self.assertNotIn(method, allow)

    def test_options_preflight(self):
        for path, method in (("/user/sendMessage", "POST"), ("/user/sendMessageAll", "POST"),
                             ("/user/list", "GET")):
            with self.subTest(path=path):
                status, h, body, raw = self.http.request("OPTIONS", path, headers={
                    "Origin": "http://example.com", "Access-Control-Request-Method": method,
                    "Access-Control-Request-Headers": "content-type"})
                self.assertEqual(status, 204, body)
                self.assertEqual(raw, b"")
                self.assertEqual(h.get("access-control-allow-origin"), "*")
                methods = [m.strip().upper()
                           for m in h.get("access-control-allow-methods", "").split(",")]
                self.assertIn(method, methods)
                self.assertIn("OPTIONS", methods)
                self.assertIn("content-type",
                              [x.strip().lower()
                               for x in h.get("access-control-allow-headers", "").split(",")])

    def test_cors_and_content_type_on_json_responses(self):
        room = self.room()
        responses = [
            self.http.get("/user/list", {"appID": room}),
            self.http.get("/user/online", {"userID": "x"}),
            self.http.get("/system/state"),
            self.http.post("/user/sendMessage", {"appID": room, "userID": "x", "message": "m"}),
            self.http.post("/user/sendMessageAll", {"appID": room, "message": "m"}),
        ]
        for status, h, body, _ in responses:
            with self.subTest(body=body):
                self.assertEqual(status, 200)
                self.assertEqual(h.get("content-type"), JSON_TYPE)
                self.assertEqual(h.get("access-control-allow-origin"), "*")
                self.assertEqual(h.get("access-control-allow-credentials"), "true")
                self.assertIn("content-type", h.get("access-control-allow-headers", "").lower())
                methods = h.get("access-control-allow-methods", "").upper()
                for m in ("POST", "GET", "OPTIONS"):
                    self.assertIn(m, methods)
                self.assertIn("access-control-expose-headers", h)
        errors = [self.http.get("/nope"), self.http.get("/user/list", {"appID": "abc"}),
                  self.http.request("POST", "/user/list")]
        for status, h, body, _ in errors:
            with self.subTest(status=status):
                self.assertEqual(h.get("content-type"), JSON_TYPE)
                self.assertEqual(h.get("access-control-allow-origin"), "*")

    # ---- connections ----

    def test_keep_alive(self):
        room = self.room()
        self.http.get("/system/state")
        port = self.http.local_port()
        for i in range(20):
            r = [self.http.get("/user/list", {"appID": room}),
                 self.http.post("/user/sendMessage", {"appID": room, "userID": "nobody",
                                                      "message": str(i)}),
                 self.http.get("/nope"),                         # errors keep it alive too
                 self.http.get("/user/list", {"appID": "abc"}),
                 self.http.request("POST", "/system/state")][i % 5]
            self.assertIn(r[0], (200, 400, 404, 405))
            self.assertEqual(self.http.local_port(), port,
                             "the server closed a keep-alive connection (request %d)" % i)

    def test_http10_and_connection_close(self):
        for req in (b"GET /user/list?appID=101 HTTP/1.0\r\n\r\n",
                    b"GET /user/list?appID=101 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):
            with self.subTest(req=req):
                t0 = time.monotonic()
                resps, raw, closed = http_exchange(self.node.http_port, req, responses=2,
                                                   timeout=5)
                self.assertEqual(len(resps), 1, raw)
                self.assertEqual(resps[0][0], 200)
                self.assertTrue(closed and time.monotonic() - t0 < 3,
                                "connection not closed after the response")

    def test_pipelined_requests(self):
        room = self.room()
        form = "appID=%d&userID=nobody&message=hi" % room
        reqs = [
            "GET /user/list?appID=%d HTTP/1.1\r\nHost: x\r\n\r\n" % room,
            "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /user/sendMessage HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
            "x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s" % (len(form), form),
            "GET /user/online?userID=pipe HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /user/list HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            "GET /system/state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ]
        data = "".join(reqs).encode()
        for how, chunks in (("one write", [data]),
                            ("7-byte pieces", [data[i:i + 7] for i in range(0, len(data), 7)])):
            with self.subTest(how=how):
                resps, raw, closed = http_exchange(self.node.http_port, b"", responses=7,
                                                   timeout=5, chunks=chunks, gap=0.001)
                self.assertEqual([r[0] for r in resps], [200, 404, 200, 200, 405, 200], raw[:300])
                bodies = [json.loads(r[2]) for r in resps]
                self.assertEqual(bodies[0]["data"], {"userCount": 0, "userList": []})
                self.assertEqual(bodies[2]["data"], {"sendResults": False})
                self.assertEqual(bodies[3]["data"], {"online": False, "userID": "pipe"})
                self.assertIn("numCPU", bodies[5]["data"])
                self.assertTrue(closed)

    # ---- /system/state ----

    def test_system_state_shape(self):
        status, h, body, _ = self.http.get("/system/state")
        data = self.assertSuccess(status, h, body)
        self.assertIsInstance(data["numCPU"], int)
        self.assertGreaterEqual(data["numCPU"], 1)
        self.assertIsInstance(data["numGoroutine"], int)
        self.assertGreaterEqual(data["numGoroutine"], 1)
        mi = data["managerInfo"]
        self.assertEqual(set(mi), {"clientsLen", "usersLen", "chanBroadcastLen", "chanLoginLen",
                                   "chanRegisterLen", "chanUnregisterLen"})
        for k in ("chanBroadcastLen", "chanLoginLen", "chanRegisterLen", "chanUnregisterLen"):
            self.assertEqual(mi[k], 0, k)
        self.assertEqual(len(data["workers"]), 2, "app.workers=2")
        self.assertEqual(sorted(w["id"] for w in data["workers"]), [0, 1])
        for w in data["workers"]:
            for k in ("connections", "webSockets", "loggedIn"):
                self.assertIsInstance(w[k], int, k)
                self.assertGreaterEqual(w[k], 0, k)
        for k in COUNTER_KEYS:
            self.assertIsInstance(data["counters"].get(k), int, "counter %s" % k)
            self.assertGreaterEqual(data["counters"][k], 0, k)
        for flag in ("false", "1", "yes"):
            with self.subTest(isDebug=flag):
                status, h, body, _ = self.http.get("/system/state", {"isDebug": flag})
                self.assertNotIn("users", body["data"]["managerInfo"])
                self.assertNotIn("clients", body["data"]["managerInfo"])

    def test_system_state_debug_lists_and_lengths(self):
        room = self.room()
        user = uid("dbg")
        conns = [self.client(user, room), self.client(user, room), self.client()]

        mi = self.node.state(debug=True)["managerInfo"]
        self.assertIn("users", mi, "isDebug=true must list the users")
        self.assertIn("clients", mi, "isDebug=true must list the clients")

        def consistent():
            d = self.node.state(debug=True)
            mi = d["managerInfo"]
            if mi["clientsLen"] != len(mi["clients"]) or mi["usersLen"] != len(mi["users"]):
                return None
            if sum(w["webSockets"] for w in d["workers"]) != mi["clientsLen"]:
                return None
            return d
        d = wait_until(consistent, 3, what="clientsLen/usersLen/workers to agree with the lists")
        mi = d["managerInfo"]
        self.assertEqual(mi["users"].count("%d_%s" % (room, user)), 1, mi["users"])
        self.assertGreaterEqual(mi["clientsLen"], 3)
        self.assertGreaterEqual(sum(w["loggedIn"] for w in d["workers"]), 2)
        for c in conns:
            port = str(c.ws.sock.getsockname()[1])
            self.assertTrue(any(port in str(e) for e in mi["clients"]),
                            "client port %s not in %r" % (port, mi["clients"]))
        for c in conns:
            c.close_gracefully()
        wait_until(lambda: "%d_%s" % (room, user) not in
                   self.node.state(debug=True)["managerInfo"]["users"], 3,
                   what="user gone from the debug list")

    def test_debug_state_pipelined_keeps_order(self):
        # isDebug=true is answered after every worker has listed its own connections (a deferred
        # answer): requests pipelined behind it wait for it and keep their order.
        clients = [self.client() for _ in range(4)]
        ports = {str(c.ws.sock.getsockname()[1]) for c in clients}
        dbg = "GET /system/state?isDebug=true HTTP/1.1\r\nHost: x\r\n\r\n"
        reqs = [dbg, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", dbg,
                "GET /system/state HTTP/1.1\r\nHost: x\r\n\r\n",
                dbg.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")]
        data = "".join(reqs).encode()
        for how, chunks in (("one write", [data]),
                            ("5-byte pieces", [data[i:i + 5] for i in range(0, len(data), 5)])):
            with self.subTest(how=how):
                resps, raw, closed = http_exchange(self.node.http_port, b"", responses=6,
                                                   timeout=5, chunks=chunks, gap=0.001)
                self.assertEqual([r[0] for r in resps], [200, 404, 200, 200, 200], raw[:300])
                bodies = [json.loads(r[2]) for r in resps]
                for i in (0, 2, 4):
                    listed = " ".join(bodies[i]["data"]["managerInfo"]["clients"])
                    for port in ports:
                        self.assertIn(":" + port, listed)
                self.assertNotIn("clients", bodies[3]["data"]["managerInfo"])
                self.assertTrue(closed)
        for c in clients:
            c.close_gracefully()

    def test_counters_move(self):
        before = self.node.state()["counters"]
        self.http.get("/nope")
        self.http.get("/user/list", {"appID": "abc"})
        resps, raw, _ = http_exchange(self.node.ws_port,
                                      b"GET /acc HTTP/1.1\r\nHost: x\r\n\r\n")  # no Upgrade: 400
        self.assertEqual(resps[0][0] if resps else raw, 400)
        c = self.client()
        c.request("ping")

        def moved():
            now = self.node.state()["counters"]
            return (now["httpErrors"] >= before["httpErrors"] + 2
                    and now["httpRequests"] >= before["httpRequests"] + 2
                    and now["handshakesFailed"] >= before["handshakesFailed"] + 1
                    and now["connectionsAccepted"] >= before["connectionsAccepted"] + 1
                    and now["messagesIn"] >= before["messagesIn"] + 1
                    and now["messagesOut"] >= before["messagesOut"] + 1) and now
        now = wait_until(moved, 3, what="counters to move")
        for k in COUNTER_KEYS:
            self.assertGreaterEqual(now[k], before[k], "counter %s went down" % k)

    # ---- access log ----

    def test_access_log_one_line_per_request(self):
        path = self.node.options["app.logFile"]
        mark = uid("logmark")
        for i in range(5):
            self.http.get("/%s-%d" % (mark, i))

        def lines():
            try:
                with open(path, "rb") as f:
                    return f.read().decode("utf-8", "replace").splitlines()
            except OSError:
                return []
        wait_until(lambda: sum(mark in line for line in lines()) >= 5, 3,
                   what="5 access-log lines with %s in %s" % (mark, path))
        got = lines()
        for i in range(5):
            self.assertEqual(sum(("/%s-%d" % (mark, i)) in line for line in got), 1,
                             "request %d logged %d times" % (i, sum(("/%s-%d" % (mark, i)) in l
                                                                    for l in got)))
        n0 = sum("/user/sendMessage" in line for line in got)
        room = self.room()
        for _ in range(3):
            self.http.post("/user/sendMessage", {"appID": room, "userID": "x", "message": "m"})
        wait_until(lambda: sum("/user/sendMessage" in line for line in lines()) >= n0 + 3, 3,
                   what="3 more sendMessage lines")
        time.sleep(0.3)
        self.assertEqual(sum("/user/sendMessage" in line for line in lines()), n0 + 3)


if __name__ == "__main__":
    unittest.main()
