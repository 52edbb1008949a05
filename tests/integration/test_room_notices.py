"""enter/exit notices: switched off (app.roomNotices=false), and batched into one presence push
per interval once a room is bigger than app.noticeBatchAbove (issue 4: big rooms must not cost
O(N²) pushes to fill)."""

import time
import unittest

from imtest import NodeTestCase, uid


class NoticesOff(NodeTestCase):
    node_options = {"app.roomNotices": "false"}

    def test_no_enter_or_exit(self):
        a = self.client(uid("a"), app=102)
        b = self.client(uid("b"), app=102)
        b.close_gracefully()
        # a marker proves a's stream is up to date before looking for notices
        mid = uid("m")
        self.http.post("/user/sendMessageAll", {"appID": 102, "message": "k", "msgID": mid})
        a.wait_seq(mid, "msg")
        self.assertEqual(a.pushes("enter") + a.pushes("exit"), [])


class NoticesBatched(NodeTestCase):
    # rooms above 3 online users get batches every 200 ms
    node_options = {"app.noticeBatchAbove": 3, "app.noticeBatchInterval": 200}

    def test_small_room_gets_enter_then_big_room_gets_presence(self):
        room = 103
        first = [self.client(uid("s"), app=room) for _ in range(3)]
        # the 2nd and 3rd logins were pushed one by one (the room had <= 3 users)
        first[0].wait_for(lambda m: m.get("cmd") == "enter"
                          and m["response"]["data"]["from"] == first[2].user)
        self.assertEqual(len(first[0].pushes("enter")), 2)
        # users 4..8 make the room big: their joins come batched, not as enter pushes
        late = [self.client(uid("l"), app=room) for _ in range(5)]
        names = set(c.user for c in late)
        seen = set()
        deadline = time.monotonic() + 5
        while seen != names and time.monotonic() < deadline:
            for m in first[0].msgs:
                if m.get("cmd") == "presence":
                    d = m["response"]["data"]
                    self.assertEqual((m["response"]["code"], m["response"]["codeMsg"]),
                                     (200, "Ok"))
                    self.assertEqual(d["type"], "presence")
                    self.assertEqual(d["joined"], len(d["joins"]))
                    seen.update(d["joins"])
            time.sleep(0.05)
        self.assertEqual(seen, names)
        enters = [m["response"]["data"]["from"] for m in first[0].pushes("enter")]
        self.assertEqual(sorted(enters), sorted(c.user for c in first[1:]),
                         "no per-user enter once the room is big")
        # far fewer pushes than one per join: 5 joins within ~1 s arrive in at most a few batches
        presence = [m for m in first[0].msgs if m.get("cmd") == "presence"]
        self.assertLessEqual(len(presence), 5)
        # a leave is batched too, with the online count
        gone = late[0]
        gone.close_gracefully()
        i = first[1].wait_for(lambda m: m.get("cmd") == "presence"
                              and gone.user in m["response"]["data"]["leaves"])
        self.assertEqual(first[1].msgs[i]["response"]["data"]["online"], 7)
        self.assertEqual([m for m in first[1].pushes("exit")], [])


if __name__ == "__main__":
    unittest.main()


class NoticesInAStorm(NodeTestCase):
    """Users logging in at the same moment: of any two, the one who came first hears the other's
    enter and the other does not hear the first's (it was in the room already): a storm of N
    logins gives exactly N(N-1)/2 enter pushes, never both directions of a pair."""

    def test_each_pair_hears_one_enter(self):
        import asyncio
        import json

        import websockets
        n, room = 150, 104
        url = self.node.ws_url
        users = ["ps%d%s" % (i, uid("")[:6]) for i in range(n)]
        heard = {u: set() for u in users}

        async def run():
            conns = []

            async def join(user):
                ws = await websockets.connect(url, open_timeout=15, ping_interval=None,
                                              max_queue=None)
                conns.append(ws)
                await ws.send(json.dumps({"seq": "l", "cmd": "login",
                                          "data": {"appID": room, "userID": user}}))
                return ws
            socks = await asyncio.gather(*(join(u) for u in users))

            async def listen(user, ws):
                try:
                    while True:
                        d = json.loads(await asyncio.wait_for(ws.recv(), 1.5))
                        if d.get("cmd") == "enter":
                            heard[user].add(d["response"]["data"]["from"])
                except (asyncio.TimeoutError, websockets.ConnectionClosed):
                    pass
            await asyncio.gather(*(listen(u, ws) for u, ws in zip(users, socks)))
            await asyncio.gather(*(ws.close() for ws in conns))
        asyncio.run(asyncio.wait_for(run(), 60))
        mutual = [(a, b) for a in users for b in heard[a] if a < b and a in heard[b]]
        self.assertEqual(mutual, [], "both of a pair heard the other's enter")
        self.assertEqual(sum(len(h) for h in heard.values()), n * (n - 1) // 2)
