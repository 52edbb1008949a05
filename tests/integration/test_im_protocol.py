"""The IM protocol over WebSocket (docs/behaviour.md "IM protocol"; spec §2): ping, login and its
error codes in the original's order, heartbeat, unknown commands, bad envelopes, key case,
binary frames, pipelining, and a client we did not write (python3-websockets)."""

import asyncio
import json
import unittest

import websockets

from imtest import NodeTestCase, recv_data, response, uid, wait_until

PING_REPLY = b'{"seq":"1","cmd":"ping","response":{"code":200,"codeMsg":"Success","data":"pong"}}'
BAD_ENVELOPE = response("", "", 1001)


class ImProtocolTest(NodeTestCase):
    # Default app.appIds (101-104) on purpose: 105 must be refused.
    node_options = {}

    def ask(self, ws, msg, opcode=0x1):
        """Sends one request (a dict is JSON-encoded, str/bytes go as they are) and returns the
        exact bytes of the next data frame."""
        if isinstance(msg, dict):
            msg = json.dumps(msg, ensure_ascii=False)
        ws.send_frame(opcode, msg)
        return recv_data(ws)

    def code(self, ws, msg):
        return json.loads(self.ask(ws, msg))["response"]["code"]

    def online(self, user, app=101):
        status, body = self.http.get("/user/online", {"userID": user, "appID": app})[::2]
        self.assertEqual(status, 200, body)
        return body["data"]["online"]

    # ---- ping ----

    def test_ping_byte_exact_without_login(self):
        ws = self.raw()
        self.assertEqual(self.ask(ws, '{"seq":"1","cmd":"ping"}'), PING_REPLY)
        for data in ({"a": [1, 2]}, "x", None, 5):
            with self.subTest(data=data):
                self.assertEqual(self.ask(ws, {"seq": "1", "cmd": "ping", "data": data}),
                                 PING_REPLY)

    def test_ping_after_login(self):
        ws = self.raw()
        self.assertEqual(self.ask(ws, {"seq": "l", "cmd": "login",
                                       "data": {"userID": uid("p"), "appID": 101}}),
                         response("l", "login", 200))
        self.assertEqual(self.ask(ws, '{"seq":"1","cmd":"ping","data":{}}'), PING_REPLY)

    # ---- login ----

    def test_login_success(self):
        ws = self.raw()
        user = uid("ok")
        reply = self.ask(ws, {"seq": "s1", "cmd": "login",
                              "data": {"serviceToken": "anything", "appID": 101, "userID": user}})
        self.assertEqual(reply, response("s1", "login", 200))
        self.assertTrue(self.online(user, 101))
        self.assertFalse(self.online(user, 102))
        status, _, body, _ = self.http.get("/user/list", {"appID": 101})
        self.assertIn(user, body["data"]["userList"])
        self.assertIn("101_" + user, self.node.state(debug=True)["managerInfo"]["users"])

    def test_login_1001_wrong_types(self):
        ws = self.raw()
        user = uid("t")
        cases = [
            {"appID": "101", "userID": user},          # appID as a string
            {"appID": -1, "userID": user},             # negative
            {"appID": 101.5, "userID": user},          # fractional
            {"appID": 4294967296, "userID": user},     # >= 2^32
            {"appID": True, "userID": user},
            {"appID": 101, "userID": 123},             # userID a number
            {"appID": 101, "userID": [user]},
            {"appID": 101, "userID": user, "serviceToken": 5},
            "not an object",
            [101, user],
            {"appID": "101", "userID": ""},            # 1001 is checked before 1002
            {"appID": "999", "userID": user},          # ... and before 1003
        ]
        for i, data in enumerate(cases):
            with self.subTest(data=data):
                seq = "t%d" % i
                self.assertEqual(self.ask(ws, {"seq": seq, "cmd": "login", "data": data}),
                                 response(seq, "login", 1001))
        # None of those logged the connection in: a good login now succeeds (not 1009).
        self.assertEqual(self.ask(ws, {"seq": "z", "cmd": "login",
                                       "data": {"appID": 101, "userID": user}}),
                         response("z", "login", 200))

    def test_login_1002_user_id_length(self):
        ws = self.raw()
        cases = [
            {"appID": 101, "userID": ""},
            {"appID": 101},                            # missing userID = ""
            {"appID": 101, "userID": None},
            {"appID": 101, "userID": "a" * 20},        # 20 bytes
            {"appID": 101, "userID": "一二三四五六七"},  # 7 CJK = 21 bytes
            {"appID": 999, "userID": ""},              # 1002 is checked before 1003
        ]
        for i, data in enumerate(cases):
            with self.subTest(data=data):
                seq = "u%d" % i
                self.assertEqual(self.ask(ws, {"seq": seq, "cmd": "login", "data": data}),
                                 response(seq, "login", 1002))
        # A missing data object decodes to all-empty fields: userID "" -> 1002.
        self.assertEqual(self.ask(ws, {"seq": "nd", "cmd": "login"}),
                         response("nd", "login", 1002))
        self.assertEqual(self.ask(ws, {"seq": "nl", "cmd": "login", "data": None}),
                         response("nl", "login", 1002))
        # 19 bytes pass, on this very connection (so the failures above did not log it in).
        u19 = uid("n").ljust(19, "x")[:19]
        self.assertEqual(len(u19.encode()), 19)
        self.assertEqual(self.ask(ws, {"seq": "ok", "cmd": "login",
                                       "data": {"appID": 101, "userID": u19}}),
                         response("ok", "login", 200))
        self.assertTrue(self.online(u19))
        # 6 CJK characters (18 bytes) pass.
        ws2 = self.raw()
        cjk = "六个汉字可以"
        self.assertEqual(len(cjk), 6)
        self.assertEqual(self.ask(ws2, {"seq": "cjk", "cmd": "login",
                                        "data": {"appID": 101, "userID": cjk}}),
                         response("cjk", "login", 200))
        self.assertTrue(self.online(cjk))

    def test_login_1003_app_not_allowed(self):
        ws = self.raw()
        user = uid("a")
        for i, data in enumerate([{"appID": 999, "userID": user}, {"userID": user},
                                  {"appID": 0, "userID": user}, {"appID": None, "userID": user},
                                  {"appID": 105, "userID": user}]):
            with self.subTest(data=data):
                seq = "a%d" % i
                self.assertEqual(self.ask(ws, {"seq": seq, "cmd": "login", "data": data}),
                                 response(seq, "login", 1003))
        self.assertFalse(self.online(user, 0))
        self.assertEqual(self.ask(ws, {"seq": "ok", "cmd": "login",
                                       "data": {"appID": 104, "userID": user}}),
                         response("ok", "login", 200))
        self.assertTrue(self.online(user, 104))

    def test_login_1009_second_login_same_connection(self):
        ws = self.raw()
        user, other = uid("d"), uid("o")
        self.assertEqual(self.code(ws, {"seq": "1", "cmd": "login",
                                        "data": {"appID": 101, "userID": user}}), 200)
        self.assertEqual(self.ask(ws, {"seq": "2", "cmd": "login",
                                       "data": {"appID": 101, "userID": user}}),
                         response("2", "login", 1009))
        self.assertEqual(self.code(ws, {"seq": "3", "cmd": "login",
                                        "data": {"appID": 101, "userID": other}}), 1009)
        self.assertEqual(self.code(ws, {"seq": "4", "cmd": "login",
                                        "data": {"appID": 102, "userID": other}}), 1009)
        # The checks before "already logged in" still come first.
        self.assertEqual(self.ask(ws, {"seq": "5", "cmd": "login",
                                       "data": {"appID": 101, "userID": ""}}),
                         response("5", "login", 1002))
        self.assertEqual(self.code(ws, {"seq": "6", "cmd": "login",
                                        "data": {"appID": 101, "userID": "x" * 25}}), 1002)
        self.assertEqual(self.code(ws, {"seq": "7", "cmd": "login",
                                        "data": {"appID": "101", "userID": user}}), 1001)
        self.assertEqual(self.code(ws, {"seq": "8", "cmd": "login",
                                        "data": {"appID": 999, "userID": user}}), 1003)
        # Still logged in as the first user, and only as that one.
        self.assertEqual(self.code(ws, {"seq": "9", "cmd": "heartbeat"}), 200)
        self.assertTrue(self.online(user, 101))
        self.assertFalse(self.online(other, 0))

    # ---- heartbeat ----

    def test_heartbeat(self):
        ws = self.raw()
        self.assertEqual(self.ask(ws, {"seq": "2", "cmd": "heartbeat"}),
                         response("2", "heartbeat", 1000))
        self.assertEqual(self.ask(ws, {"seq": "h", "cmd": "heartbeat", "data": {}}),
                         response("h", "heartbeat", 1000))
        # Bad data is checked before the login state.
        self.assertEqual(self.ask(ws, {"seq": "b", "cmd": "heartbeat", "data": {"userID": 5}}),
                         response("b", "heartbeat", 1001))
        # A failed login leaves it not logged in.
        self.assertEqual(self.code(ws, {"seq": "f", "cmd": "login",
                                        "data": {"appID": 999, "userID": "x"}}), 1003)
        self.assertEqual(self.code(ws, {"seq": "g", "cmd": "heartbeat"}), 1000)
        user = uid("hb")
        self.assertEqual(self.code(ws, {"seq": "l", "cmd": "login",
                                        "data": {"appID": 101, "userID": user}}), 200)
        for i, data in enumerate([None, {}, {"userID": user}, {"userID": "someone-else"}]):
            with self.subTest(data=data):
                msg = {"seq": "ok%d" % i, "cmd": "heartbeat"}
                if data is not None:
                    msg["data"] = data
                self.assertEqual(self.ask(ws, msg), response("ok%d" % i, "heartbeat", 200))
        for i, data in enumerate([{"userID": 5}, "str", [1], 7]):
            with self.subTest(data=data):
                self.assertEqual(self.ask(ws, {"seq": "bad%d" % i, "cmd": "heartbeat",
                                               "data": data}),
                                 response("bad%d" % i, "heartbeat", 1001))

    # ---- routing and envelopes ----

    def test_unknown_cmd_1010(self):
        ws = self.raw()
        self.assertEqual(self.ask(ws, {"seq": "3", "cmd": "foo"}), response("3", "foo", 1010))
        self.assertEqual(self.ask(ws, {"seq": "4"}), response("4", "", 1010))
        self.assertEqual(self.ask(ws, {"seq": "5", "cmd": "PING"}), response("5", "PING", 1010))
        self.assertEqual(self.ask(ws, {"seq": "6", "cmd": "msg", "data": {}}),
                         response("6", "msg", 1010))

    def test_invalid_json_gets_1001_envelope(self):
        ws = self.raw()
        before = self.node.state()["counters"]["badRequests"]
        bad = ["not json", '{"seq":"1","cmd":"ping"', "[1,2]", '"str"', "",
               '{"seq":"1","cmd":"ping"} trailing', "{'seq':'1'}"]
        for text in bad:
            with self.subTest(text=text):
                self.assertEqual(self.ask(ws, text), BAD_ENVELOPE)
        # The connection is still usable.
        self.assertEqual(self.ask(ws, '{"seq":"1","cmd":"ping"}'), PING_REPLY)
        wait_until(lambda: self.node.state()["counters"]["badRequests"] >= before + len(bad),
                   3, what="badRequests to count %d bad envelopes" % len(bad))

    def test_seq_or_cmd_not_string(self):
        ws = self.raw()
        r = json.loads(self.ask(ws, '{"seq":1,"cmd":"ping"}'))
        self.assertEqual(r["response"]["code"], 1001, r)
        self.assertEqual(r["response"]["codeMsg"], "Invalid parameter")
        self.assertEqual(r["seq"], "")
        self.assertIn(r["cmd"], ("", "ping"))
        r = json.loads(self.ask(ws, '{"seq":"7","cmd":5}'))
        self.assertEqual(r["response"]["code"], 1001, r)
        self.assertEqual(r["cmd"], "")
        r = json.loads(self.ask(ws, '{"seq":{"a":1},"cmd":"login","data":{"appID":101,'
                                    '"userID":"x"}}'))
        self.assertEqual(r["response"]["code"], 1001, r)
        # A JSON null seq reads as "" (as a missing one).
        self.assertEqual(self.ask(ws, '{"seq":null,"cmd":"ping"}'),
                         PING_REPLY.replace(b'"seq":"1"', b'"seq":""'))

    def test_missing_seq_echoed_empty(self):
        ws = self.raw()
        self.assertEqual(self.ask(ws, '{"cmd":"ping"}'),
                         PING_REPLY.replace(b'"seq":"1"', b'"seq":""'))
        self.assertEqual(self.ask(ws, '{"cmd":"heartbeat"}'), response("", "heartbeat", 1000))

    def test_keys_case_insensitive(self):
        ws = self.raw()
        user = uid("ci")
        self.assertEqual(self.ask(ws, {"SEQ": "k1", "CMD": "login",
                                       "DATA": {"USERID": user, "APPID": 102}}),
                         response("k1", "login", 200))
        self.assertTrue(self.online(user, 102))
        self.assertEqual(self.ask(ws, {"Seq": "k2", "cMd": "heartbeat", "Data": {"UserId": 1}}),
                         response("k2", "heartbeat", 1001))
        self.assertEqual(self.ask(ws, {"sEQ": "k3", "Cmd": "heartbeat", "dAtA": {"uSeRiD": "x"}}),
                         response("k3", "heartbeat", 200))
        ws2 = self.raw()
        user2 = uid("cj")
        self.assertEqual(self.ask(ws2, {"seq": "k4", "cmd": "login",
                                        "data": {"appId": 103, "userId": user2,
                                                 "ServiceToken": "t"}}),
                         response("k4", "login", 200))
        self.assertTrue(self.online(user2, 103))

    def test_binary_frame_handled_like_text(self):
        ws = self.raw()
        ws.send_frame(0x2, b'{"seq":"1","cmd":"ping"}')
        ws.sock.settimeout(5)
        _, op, payload = ws.recv_frame()
        self.assertEqual(op, 0x1, "replies are text frames")
        self.assertEqual(payload, PING_REPLY)
        user = uid("bin")
        self.assertEqual(self.ask(ws, {"seq": "b", "cmd": "login",
                                       "data": {"appID": 101, "userID": user}}, opcode=0x2),
                         response("b", "login", 200))
        self.assertTrue(self.online(user))
        self.assertEqual(self.ask(ws, b"\xff\xfe not json", opcode=0x2), BAD_ENVELOPE)

    def test_pipelined_requests_answered_in_order(self):
        ws = self.raw()
        user = uid("pl")
        reqs = [
            ('{"seq":"p0","cmd":"ping"}', response("p0", "ping", 200, '"pong"')),
            ('{"seq":"p1","cmd":"heartbeat"}', response("p1", "heartbeat", 1000)),
            (json.dumps({"seq": "p2", "cmd": "login", "data": {"appID": 101, "userID": user}}),
             response("p2", "login", 200)),
            ('{"seq":"p3","cmd":"heartbeat"}', response("p3", "heartbeat", 200)),
            ('{"seq":"p4","cmd":"nope"}', response("p4", "nope", 1010)),
            ("garbage", BAD_ENVELOPE),
            (json.dumps({"seq": "p6", "cmd": "login", "data": {"appID": 101, "userID": user}}),
             response("p6", "login", 1009)),
        ]
        for i in range(7, 60):
            reqs.append(('{"seq":"p%d","cmd":"ping"}' % i, response("p%d" % i, "ping", 200,
                                                                     '"pong"')))
        ws.sock.sendall(b"".join(ws.frame(0x1, r) for r, _ in reqs))
        got = [recv_data(ws) for _ in reqs]
        self.assertEqual(got, [want for _, want in reqs])

    def test_request_split_into_single_bytes(self):
        ws = self.raw()
        frame = ws.frame(0x1, '{"seq":"1","cmd":"ping"}')
        for b in frame:
            ws.sock.sendall(bytes([b]))
        self.assertEqual(recv_data(ws), PING_REPLY)

    def test_counters_messages_in_out(self):
        before = self.node.state()["counters"]
        ws = self.raw()
        for i in range(5):
            self.assertEqual(self.ask(ws, '{"seq":"1","cmd":"ping"}'), PING_REPLY)
        wait_until(lambda: self.node.state()["counters"]["messagesIn"] >= before["messagesIn"] + 5,
                   3, what="messagesIn +5")
        wait_until(lambda: self.node.state()["counters"]["messagesOut"] >= before["messagesOut"] + 5,
                   3, what="messagesOut +5")

    # ---- a client we did not write ----

    def test_websockets_library_client(self):
        node = self.node
        user = uid("lib")

        async def run():
            async with websockets.connect(node.ws_url, open_timeout=5, close_timeout=5,
                                          ping_interval=None) as ws:
                # permessage-deflate was offered by the library and must have been declined.
                self.assertEqual(ws.extensions, [])
                self.assertIsNone(ws.subprotocol)
                await ws.send(json.dumps({"seq": "1", "cmd": "login",
                                          "data": {"appID": 101, "userID": user}}))
                r = json.loads(await asyncio.wait_for(ws.recv(), 5))
                self.assertEqual(r, {"seq": "1", "cmd": "login", "response": {
                    "code": 200, "codeMsg": "Success", "data": None}})
                await ws.send(json.dumps({"seq": "2", "cmd": "heartbeat", "data": {}}))
                r = await asyncio.wait_for(ws.recv(), 5)
                self.assertIsInstance(r, str, "replies are text frames")
                self.assertEqual(json.loads(r)["response"]["code"], 200)
                await ws.send(b'{"seq":"1","cmd":"ping"}')
                self.assertEqual((await asyncio.wait_for(ws.recv(), 5)).encode(), PING_REPLY)
                pong = await ws.ping(b"are you there")
                await asyncio.wait_for(pong, 5)
                online = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: node.http("GET", "/user/online",
                                            {"userID": user, "appID": 101})[2])
                self.assertTrue(online["data"]["online"])
            self.assertEqual(ws.close_code, 1000)

        asyncio.run(asyncio.wait_for(run(), 20))
        wait_until(lambda: not self.online(user), 3, what="user offline after close")


if __name__ == "__main__":
    unittest.main()
