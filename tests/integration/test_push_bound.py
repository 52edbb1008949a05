"""The push a receiver gets is bounded (issue 8): a message is measured as it is pushed, JSON-
escaped, against app.maxMessageSize. Go's escaping (kept for byte-compatible pushes) turns each
`<`, `>`, `&`, control or invalid byte into 6 bytes, so a 43 KB message of `<` used to become a
262 KB frame for every receiver of a room."""

import unittest

from imtest import NodeTestCase, push_bytes, send_all, send_message, uid

LIMIT = 65536  # app.maxMessageSize's default


class PushBound(NodeTestCase):
    node_options = {"app.maxBodyBytes": 1 << 20}

    def test_http_escaped_size_is_checked(self):
        r = self.client(uid("r"))
        # 43 000 '<' fit the raw limit but are 258 000 bytes escaped: refused, nothing sent.
        for path in ("/user/sendMessage", "/user/sendMessageAll"):
            if path.endswith("All"):
                st, body = send_all(self.http, 101, "<" * 43000)
            else:
                st, body = send_message(self.http, 101, r.user, "<" * 43000)
            self.assertEqual(st, 400, body)
            self.assertIn("maxMessageSize", body["msg"])
        # Exactly at the limit once escaped (6 bytes each, plus 4 plain bytes): accepted, and the
        # frame carries exactly those bytes.
        msg = "<" * ((LIMIT - 4) // 6) + "a" * ((LIMIT - 4) % 6 + 4)
        mid = uid("m")
        st, body = send_message(self.http, 101, r.user, msg, msg_id=mid)
        self.assertEqual((st, body["data"]), (200, {"sendResults": True}))
        want = push_bytes(mid, "msg", msg, r.user, r.user)
        self.assertEqual(r.raw[r.wait_seq(mid, "msg")], want)
        st, body = send_message(self.http, 101, r.user, msg + "a")
        self.assertEqual(st, 400, body)
        # Invalid UTF-8 (each byte becomes \ufffd) and controls count the same way.
        st, _, body, _ = self.http.post("/user/sendMessage", None, body=(
            "appID=101&userID=%s&message=%s" % (r.user, "%FF" * 11000)),
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(st, 400, body)
        st, body = send_message(self.http, 101, r.user, "\x01" * 11000)
        self.assertEqual(st, 400, body)
        self.assertEqual([m for m in r.pushes("msg") if m.get("seq") != mid], [])

    def test_websocket_escaped_size_is_checked(self):
        a, b = self.client(uid("a")), self.client(uid("b"))
        for cmd in ("sendMessage", "sendMessageAll"):
            rep = a.request(cmd, {"userID": b.user, "message": "<" * 20000})
            self.assertEqual(rep["response"]["code"], 1001, rep)
        mid = uid("m")
        rep = a.request("sendMessageAll", {"message": "&" * 10000, "msgID": mid})
        self.assertEqual(rep["response"]["code"], 200, rep)
        self.assertEqual(b.raw[b.wait_seq(mid, "msg")],
                         push_bytes(mid, "msg", "&" * 10000, a.user))
        self.assertEqual([m["seq"] for m in b.pushes("msg")], [mid])


if __name__ == "__main__":
    unittest.main()
