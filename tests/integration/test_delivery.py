"""Pushes (docs/behaviour.md "Pushes and delivery"; spec §3–4): the exact push shape of
/user/sendMessage and /user/sendMessageAll, every device of a user, enter/exit notices, room
scoping, the sender's exclusion and msgID de-duplication.

"Receives nothing" is checked with a barrier: after the action under test a marker push is sent
to the same connection (through the same keep-alive HTTP connection, so it is queued after the
action's pushes), and everything that arrived before the marker is examined."""

import re
import time
import unittest

from imtest import NodeTestCase, push_bytes, uid, wait_until

OK_TRUE = b'{"code":200,"msg":"Success","data":{"sendResults":true}}'
OK_FALSE = b'{"code":200,"msg":"Success","data":{"sendResults":false}}'
OK_DUP = b'{"code":200,"msg":"Success","data":{}}'
DEDUP_TTL = 2


def notice_re(cmd, msg, user):
    return re.compile(
        rb'^\{"seq":"[0-9]+","cmd":"%s","response":\{"code":200,"codeMsg":"Ok","data":'
        rb'\{"target":"","type":"text","msg":"%s","from":"%s"\}\}\}$' % (
            cmd.encode(), re.escape(msg.encode()), re.escape(user.encode())))


class DeliveryTest(NodeTestCase):
    # Many rooms, so that every test has one of its own.
    # maxMessageSize raised so that pushes of more than 64 KiB can be sent (the node refuses a
    # message longer than it with 400).
    node_options = {"app.appIds": list(range(101, 131)), "app.dedupTtl": DEDUP_TTL,
                    "app.maxMessageSize": 262144}
    _rooms = iter(range(105, 131))

    def room(self):
        return next(type(self)._rooms)

    def post(self, path, params):
        status, _, body, raw = self.http.post(path, params)
        self.assertEqual(status, 200, body)
        return raw

    def barrier(self, *clients):
        """Sends one marker to each distinct user of `clients`; returns {client: index of the
        marker in client.msgs}."""
        marks = {}
        for c in clients:
            key = (c.app, c.user)
            if key not in marks:
                marks[key] = uid("mk")
                self.assertEqual(self.post("/user/sendMessage", {
                    "appID": c.app, "userID": c.user, "message": "marker",
                    "msgID": marks[key]}), OK_TRUE)
        return {c: c.wait_seq(marks[(c.app, c.user)], "msg") for c in clients}

    @staticmethod
    def count(client, pred, upto=None):
        return sum(1 for m in client.pushes(upto=upto) if pred(m))

    @staticmethod
    def is_notice(cmd, user):
        return lambda m: m["cmd"] == cmd and m["response"]["data"]["from"] == user

    @staticmethod
    def has_seq(seq):
        return lambda m: m["cmd"] == "msg" and m["seq"] == seq

    # ---- sendMessage ----

    def test_send_message_exact_push(self):
        room = self.room()
        a = self.client(uid("a"), room)
        mid = uid("m")
        self.assertEqual(self.post("/user/sendMessage", {"appID": room, "userID": a.user,
                                                         "message": "hello", "msgID": mid}),
                         OK_TRUE)
        i = a.wait_seq(mid, "msg")
        # `from` defaults to the target user, as in the original.
        self.assertEqual(a.raw[i], push_bytes(mid, "msg", "hello", a.user, a.user))
        self.assertEqual(a.opcodes[i], 0x1, "pushes are text frames")

        mid = uid("m")
        self.assertEqual(self.post("/user/sendMessage", {"appID": room, "userID": a.user,
                                                         "message": "hi", "msgID": mid,
                                                         "from": "bob"}), OK_TRUE)
        i = a.wait_seq(mid, "msg")
        self.assertEqual(a.raw[i], push_bytes(mid, "msg", "hi", "bob", a.user))

        # JSON escaping as Go's encoding/json writes it; non-ASCII kept as UTF-8.
        text = 'a<b>&"\\ \n\t \x01 你好 \u2028 é'
        mid = uid("m")
        self.assertEqual(self.post("/user/sendMessage", {"appID": room, "userID": a.user,
                                                         "message": text, "msgID": mid,
                                                         "from": "<x>"}), OK_TRUE)
        i = a.wait_seq(mid, "msg")
        self.assertEqual(a.raw[i], push_bytes(mid, "msg", text, "<x>", a.user))

    def test_send_message_offline_or_other_room(self):
        room, other = self.room(), self.room()
        self.assertEqual(self.post("/user/sendMessage", {"appID": room, "userID": uid("nobody"),
                                                         "message": "x", "msgID": uid("m")}),
                         OK_FALSE)
        a = self.client(uid("a"), room)
        mid = uid("m")
        self.assertEqual(self.post("/user/sendMessage", {"appID": other, "userID": a.user,
                                                         "message": "x", "msgID": mid}),
                         OK_FALSE)
        idx = self.barrier(a)[a]
        self.assertEqual(self.count(a, self.has_seq(mid), idx), 0)

    def test_multi_device(self):
        room = self.room()
        user = uid("md")
        d1, d2 = self.client(user, room), self.client(user, room)
        sender = self.client(uid("s"), room)
        mid = uid("m")
        self.assertEqual(self.post("/user/sendMessage", {"appID": room, "userID": user,
                                                         "message": "both", "msgID": mid}),
                         OK_TRUE)
        want = push_bytes(mid, "msg", "both", user, user)
        self.assertEqual(d1.raw[d1.wait_seq(mid, "msg")], want)
        self.assertEqual(d2.raw[d2.wait_seq(mid, "msg")], want)

        mid = uid("m")
        self.assertEqual(self.post("/user/sendMessageAll", {"appID": room, "userID": sender.user,
                                                            "message": "room", "msgID": mid}),
                         OK_TRUE)
        want = push_bytes(mid, "msg", "room", sender.user)
        self.assertEqual(d1.raw[d1.wait_seq(mid, "msg")], want)
        self.assertEqual(d2.raw[d2.wait_seq(mid, "msg")], want)

        status, _, body, _ = self.http.get("/user/list", {"appID": room})
        self.assertEqual(sorted(body["data"]["userList"]), sorted([user, sender.user]))
        self.assertEqual(body["data"]["userCount"], 2)

        # One device gone: the other still gets the user's pushes.
        d1.close_gracefully()
        mid = uid("m")
        self.assertEqual(self.post("/user/sendMessage", {"appID": room, "userID": user,
                                                         "message": "still", "msgID": mid}),
                         OK_TRUE)
        d2.wait_seq(mid, "msg")
        d2.close_gracefully()
        wait_until(lambda: self.post("/user/sendMessage", {"appID": room, "userID": user,
                                                           "message": "gone"}) == OK_FALSE,
                   3, what="sendResults false once both devices closed")

    # ---- enter / exit ----

    def test_enter_and_exit_notices(self):
        room = self.room()
        obs = self.client(uid("obs"), room)
        user = uid("u")
        dev1 = self.client(user, room)
        i = obs.wait_for(self.is_notice("enter", user), what="enter of " + user)
        self.assertRegex(obs.raw[i], notice_re("enter", "hello~", user))

        dev2 = self.client(user, room)  # second device: no new enter
        late = self.client(uid("v"), room)
        for c in (obs, dev1, dev2):
            j = c.wait_for(self.is_notice("enter", late.user), what="enter of " + late.user)
            self.assertRegex(c.raw[j], notice_re("enter", "hello~", late.user))
        marks = self.barrier(obs, dev1, dev2, late)
        self.assertEqual(self.count(obs, self.is_notice("enter", user), marks[obs]), 1,
                         "exactly one enter for a user's first connection, none for the second")
        for c in (dev1, dev2):
            self.assertEqual(self.count(c, self.is_notice("enter", user), marks[c]), 0,
                             "a user's own connections do not get its enter")
            self.assertEqual(self.count(c, self.is_notice("enter", late.user), marks[c]), 1)
        self.assertEqual(self.count(late, lambda m: m["cmd"] in ("enter", "exit"), marks[late]),
                         0, "the entering user gets no enter for itself or for earlier users")

        # The first device leaves: the user is still there, no exit.
        dev1.close_gracefully()  # returns once the server has echoed the close and ended TCP
        marks = self.barrier(obs, dev2, late)
        for c in (obs, dev2, late):
            self.assertEqual(self.count(c, self.is_notice("exit", user), marks[c]), 0,
                             "no exit while another device of the user is connected")

        # The last device leaves: exit to everyone left in the room.
        dev2.close_gracefully()
        for c in (obs, late):
            j = c.wait_for(self.is_notice("exit", user), what="exit of " + user)
            self.assertRegex(c.raw[j], notice_re("exit", "bye~", user))
        marks = self.barrier(obs, late)
        for c in (obs, late):
            self.assertEqual(self.count(c, self.is_notice("exit", user), marks[c]), 1)

    def test_enter_and_exit_are_per_room(self):
        r1, r2 = self.room(), self.room()
        obs1, obs2 = self.client(uid("o1"), r1), self.client(uid("o2"), r2)
        x = uid("x")
        x1 = self.client(x, r1)
        obs1.wait_for(self.is_notice("enter", x))
        x2 = self.client(x, r2)            # x's first connection in r2: r2 hears of it
        obs2.wait_for(self.is_notice("enter", x))
        x1.close_gracefully()              # x leaves r1 but stays in r2
        obs1.wait_for(self.is_notice("exit", x))
        marks = self.barrier(obs1, obs2, x2)
        self.assertEqual(self.count(obs1, self.is_notice("enter", x), marks[obs1]), 1)
        self.assertEqual(self.count(obs2, self.is_notice("enter", x), marks[obs2]), 1)
        self.assertEqual(self.count(obs2, self.is_notice("exit", x), marks[obs2]), 0,
                         "leaving room %d announced in room %d" % (r1, r2))

    def test_large_pushes_all_frame_lengths(self):
        room = self.room()
        a = self.client(uid("big"), room)
        # Payload sizes around the 7-bit, 16-bit and 64-bit length encodings.
        for size in (1, 125 - 100, 126, 200, 65535 - 120, 65535, 70000, 120000):
            with self.subTest(size=size):
                text = ("0123456789abcdef" * (size // 16 + 1))[:size]
                mid = uid("L")
                self.assertEqual(self.post("/user/sendMessage", {
                    "appID": room, "userID": a.user, "message": text, "msgID": mid}), OK_TRUE)
                i = a.wait_seq(mid, "msg")
                self.assertEqual(a.raw[i], push_bytes(mid, "msg", text, a.user, a.user))

    def test_exit_when_tcp_drops_without_close_frame(self):
        room = self.room()
        obs = self.client(uid("obs"), room)
        user = uid("gone")
        dev = self.client(user, room)
        obs.wait_for(self.is_notice("enter", user))
        dev.shutdown()
        i = obs.wait_for(self.is_notice("exit", user), what="exit after a TCP drop")
        self.assertRegex(obs.raw[i], notice_re("exit", "bye~", user))

    # ---- scope ----

    def test_other_rooms_receive_nothing(self):
        r1, r2 = self.room(), self.room()
        a, b = self.client(uid("a"), r1), self.client(uid("b"), r1)
        c = self.client(uid("c"), r2)
        x = uid("x")
        x1, x2 = self.client(x, r1), self.client(x, r2)  # the same userID in two rooms

        m1 = uid("m")
        self.assertEqual(self.post("/user/sendMessageAll", {"appID": r1, "userID": a.user,
                                                            "message": "r1 only", "msgID": m1}),
                         OK_TRUE)
        for cl in (b, x1):
            self.assertEqual(cl.raw[cl.wait_seq(m1, "msg")], push_bytes(m1, "msg", "r1 only",
                                                                         a.user))
        m2 = uid("m")
        self.assertEqual(self.post("/user/sendMessage", {"appID": r1, "userID": x,
                                                         "message": "x in r1", "msgID": m2}),
                         OK_TRUE)
        x1.wait_seq(m2, "msg")
        m3 = uid("m")
        self.assertEqual(self.post("/user/sendMessage", {"appID": r2, "userID": b.user,
                                                         "message": "b is not in r2",
                                                         "msgID": m3}), OK_FALSE)
        marks = self.barrier(c, x2, b)
        for cl in (c, x2):
            self.assertEqual(self.count(cl, lambda m: m["cmd"] == "msg" and m["seq"] in (m1, m2),
                                        marks[cl]), 0, "room %d got a push for room %d" % (r2, r1))
            self.assertEqual(self.count(cl, lambda m: m["cmd"] == "enter"
                                        and m["response"]["data"]["from"] in (a.user, b.user),
                                        marks[cl]), 0, "enter notices leaked across rooms")
        self.assertEqual(self.count(b, self.has_seq(m3), marks[b]), 0)

    def test_not_logged_in_connections_receive_nothing(self):
        room = self.room()
        idle = self.client()                       # never logs in
        failed = self.client()                     # login refused
        r = failed.request("login", {"appID": 999, "userID": uid("f")})
        self.assertEqual(r["response"]["code"], 1003)
        failed2 = self.client()
        r = failed2.request("login", {"appID": room, "userID": ""})
        self.assertEqual(r["response"]["code"], 1002)
        obs = self.client(uid("obs"), room)
        user = self.client(uid("u"), room)
        obs.wait_for(self.is_notice("enter", user.user))
        mid = uid("m")
        self.assertEqual(self.post("/user/sendMessageAll", {"appID": room, "message": "all",
                                                            "msgID": mid}), OK_TRUE)
        obs.wait_seq(mid, "msg")
        user.wait_seq(mid, "msg")
        user.close_gracefully()
        obs.wait_for(self.is_notice("exit", user.user))
        for cl in (idle, failed, failed2):
            n = len(cl.msgs)
            cl.request("ping")
            time.sleep(0.2)  # bounded grace for anything that might still be in flight
            self.assertEqual(cl.pushes(), [], "a connection that is not logged in got pushes")
            self.assertEqual(len(cl.msgs), n + 1)

    def test_sender_excluded_from_send_all(self):
        room = self.room()
        s = uid("s")
        s1, s2 = self.client(s, room), self.client(s, room)
        o1, o2 = self.client(uid("o"), room), self.client(uid("o"), room)
        mid = uid("m")
        self.assertEqual(self.post("/user/sendMessageAll", {"appID": room, "userID": s,
                                                            "message": "from s", "msgID": mid}),
                         OK_TRUE)
        for o in (o1, o2):
            self.assertEqual(o.raw[o.wait_seq(mid, "msg")], push_bytes(mid, "msg", "from s", s))
        marks = self.barrier(s1, s2, o1, o2)
        for c in (s1, s2):
            self.assertEqual(self.count(c, self.has_seq(mid), marks[c]), 0,
                             "the sender's devices must not get its own sendMessageAll")
        for o in (o1, o2):
            self.assertEqual(self.count(o, self.has_seq(mid), marks[o]), 1)

        # Without a sender (or with one who is not here) everybody gets it.
        for sender in (None, uid("ghost")):
            mid = uid("m")
            params = {"appID": room, "message": "to all", "msgID": mid}
            if sender:
                params["userID"] = sender
            self.assertEqual(self.post("/user/sendMessageAll", params), OK_TRUE)
            for c in (s1, s2, o1, o2):
                i = c.wait_seq(mid, "msg")
                self.assertEqual(c.raw[i], push_bytes(mid, "msg", "to all", sender or ""))

    # ---- de-duplication ----

    def test_duplicate_msg_id_dropped(self):
        room = self.room()
        a, o = self.client(uid("a"), room), self.client(uid("o"), room)
        before = self.node.state()["counters"]["duplicatesDropped"]
        mid = uid("dup")
        params = {"appID": room, "userID": a.user, "message": "once", "msgID": mid}
        self.assertEqual(self.post("/user/sendMessage", params), OK_TRUE)
        self.assertEqual(self.post("/user/sendMessage", params), OK_DUP)
        mid2 = uid("dup")
        params = {"appID": room, "userID": o.user, "message": "once", "msgID": mid2}
        self.assertEqual(self.post("/user/sendMessageAll", params), OK_TRUE)
        self.assertEqual(self.post("/user/sendMessageAll", params), OK_DUP)
        marks = self.barrier(a, o)
        self.assertEqual(self.count(a, self.has_seq(mid), marks[a]), 1)
        self.assertEqual(self.count(a, self.has_seq(mid2), marks[a]), 1)
        self.assertEqual(self.count(o, self.has_seq(mid2), marks[o]), 0)
        wait_until(lambda: self.node.state()["counters"]["duplicatesDropped"] >= before + 2, 3,
                   what="duplicatesDropped +2")

    def test_no_msg_id_is_never_a_duplicate(self):
        room = self.room()
        a = self.client(uid("a"), room)
        for text in ("first", "second", "third"):
            self.assertEqual(self.post("/user/sendMessage", {"appID": room, "userID": a.user,
                                                             "message": text}), OK_TRUE)
        for text in ("x1", "x2"):
            self.assertEqual(self.post("/user/sendMessageAll", {"appID": room, "message": text}),
                             OK_TRUE)
        want = [push_bytes("", "msg", t, a.user, a.user) for t in ("first", "second", "third")]
        want += [push_bytes("", "msg", t, "") for t in ("x1", "x2")]
        wait_until(lambda: len(a.pushes("msg")) >= 5, 5, what="5 pushes without msgID")
        self.assertEqual([a.raw[i] for i, m in enumerate(a.msgs) if m.get("cmd") == "msg"], want)

    def test_dedup_expires_after_ttl(self):
        room = self.room()
        a = self.client(uid("a"), room)
        mid = uid("ttl")
        params = {"appID": room, "userID": a.user, "message": "again", "msgID": mid}
        self.assertEqual(self.post("/user/sendMessage", params), OK_TRUE)
        self.assertEqual(self.post("/user/sendMessage", params), OK_DUP)
        # Waiting out a TTL is the one place a plain sleep is the point of the test.
        time.sleep(DEDUP_TTL + 1.5)
        self.assertEqual(self.post("/user/sendMessage", params), OK_TRUE)
        self.assertEqual(self.post("/user/sendMessage", params), OK_DUP)
        marks = self.barrier(a)
        self.assertEqual(self.count(a, self.has_seq(mid), marks[a]), 2)


if __name__ == "__main__":
    unittest.main()
