"""sendMessage / sendMessageAll over the WebSocket (issue 3): the HTTP routes' delivery,
de-duplication and replies, with `from` = the sender's userID; 1000 before login."""

import unittest

from imtest import NodeTestCase, push_bytes, uid


class WsSendTest(NodeTestCase):

    def test_not_logged_in_gets_1000(self):
        c = self.client()
        for cmd, data in (("sendMessageAll", {"message": "x"}),
                          ("sendMessage", {"userID": "bob", "message": "x"})):
            r = c.request(cmd, data)
            self.assertEqual(r["response"]["code"], 1000, r)

    def test_bad_types_get_1001(self):
        a = self.client(uid("a"))
        for data in ({"message": 5}, {"message": "x", "msgID": 7}, [1], "text", {}):
            r = a.request("sendMessageAll", data)
            self.assertEqual(r["response"]["code"], 1001, (data, r))
        r = a.request("sendMessage", {"userID": 12, "message": "x"})
        self.assertEqual(r["response"]["code"], 1001, r)

    def test_send_message_to_user_all_devices(self):
        a, b1 = self.client(uid("a")), self.client(uid("b"))
        b2 = self.client(b1.user)
        mid = uid("m")
        r = a.request("sendMessage", {"userID": b1.user, "message": "psst", "msgID": mid})
        self.assertEqual(r["response"], {"code": 200, "codeMsg": "Success",
                                         "data": {"sendResults": True}})
        want = push_bytes(mid, "msg", "psst", a.user, b1.user)
        for b in (b1, b2):
            self.assertEqual(b.raw[b.wait_seq(mid, "msg")], want)
        self.assertEqual([m for m in a.pushes("msg") if m.get("seq") == mid], [])

    def test_send_message_offline_user(self):
        a = self.client(uid("a"))
        r = a.request("sendMessage", {"userID": uid("nobody"), "message": "x"})
        self.assertEqual(r["response"]["data"], {"sendResults": False})

    def test_send_message_bad_user_id(self):
        a = self.client(uid("a"))
        for user in ("", "x" * 20):
            r = a.request("sendMessage", {"userID": user, "message": "x"})
            self.assertEqual(r["response"]["code"], 1002, (user, r))

    def test_send_message_all_reaches_room_not_sender_nor_other_room(self):
        room = 103
        s = self.client(uid("s"), app=room)
        s2 = self.client(s.user, app=room)          # the sender's other device
        o1, o2 = self.client(uid("o"), app=room), self.client(uid("o"), app=room)
        other = self.client(uid("x"), app=104)
        mid = uid("m")
        r = s.request("sendMessageAll", {"message": "hello room", "msgID": mid})
        self.assertEqual(r["response"]["data"], {"sendResults": True})
        want = push_bytes(mid, "msg", "hello room", s.user)
        for o in (o1, o2):
            self.assertEqual(o.raw[o.wait_seq(mid, "msg")], want)
        # a marker sent after: once it arrived, the first message would have too
        marker = uid("k")
        self.assertEqual(o1.request("sendMessageAll", {"message": "k", "msgID": marker})
                         ["response"]["code"], 200)
        for c in (s, s2):
            c.wait_seq(marker, "msg")
        for c in (s, s2, other):
            self.assertEqual([m for m in c.msgs if m.get("seq") == mid and m.get("cmd") == "msg"],
                             [], c.user)

    def test_duplicate_msg_id(self):
        a, b = self.client(uid("a")), self.client(uid("b"))
        mid = uid("d")
        first = a.request("sendMessage", {"userID": b.user, "message": "1", "msgID": mid})
        second = a.request("sendMessage", {"userID": b.user, "message": "2", "msgID": mid})
        self.assertEqual(first["response"]["data"], {"sendResults": True})
        self.assertEqual(second["response"], {"code": 200, "codeMsg": "Success", "data": {}})
        # the same msgID through HTTP is a duplicate too: one table for both paths
        status, _, body, _ = self.http.post("/user/sendMessage", {
            "appID": 101, "userID": b.user, "message": "3", "msgID": mid})
        self.assertEqual((status, body["data"]), (200, {}))
        b.wait_seq(mid, "msg")
        self.assertEqual([m["response"]["data"]["msg"] for m in b.msgs if m.get("seq") == mid],
                         ["1"])

    def test_message_over_limit_is_1001(self):
        a = self.client(uid("a"))
        r = a.request("sendMessageAll", {"message": "x" * 65000, "msgID": "y" * 129})
        self.assertEqual(r["response"]["code"], 1001, "msgID over 128 bytes")


if __name__ == "__main__":
    unittest.main()
