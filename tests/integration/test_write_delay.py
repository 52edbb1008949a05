"""app.writeDelay: a push to more than 1024 connections of a worker waits that long before it is
written (so that the pushes after it share its system calls); replies, pings and small pushes
never wait, and every push still arrives exactly once, in order. One worker, a 400 ms delay so
that the wait is plain to see from outside."""

import asyncio
import json
import resource
import time
import unittest

import websockets

from imtest import Http, NodeTestCase, send_all, uid

DELAY_MS = 400
BIG = 1100       # > 1024 connections on the one worker
SMALL_ROOM = 102


class WriteDelay(NodeTestCase):
    node_options = {"app.workers": 1, "app.writeDelay": DELAY_MS, "app.roomNotices": "false",
                    "app.maxConnections": 5000}

    def test_big_pushes_wait_small_ones_and_replies_do_not(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, BIG + 500), hard))
        asyncio.run(asyncio.wait_for(self.scenario(), 60))

    async def scenario(self):
        url = self.node.ws_url
        sem = asyncio.Semaphore(100)
        got = {}           # user -> [(msgID, time)]

        async def join(user, app, reader=True):
            async with sem:
                ws = await websockets.connect(url, open_timeout=15, ping_interval=None,
                                              max_queue=None)
                await ws.send(json.dumps({"seq": "l", "cmd": "login",
                                          "data": {"appID": app, "userID": user}}))
                await asyncio.wait_for(ws.recv(), 15)
            if not reader:
                return ws, None
            got[user] = []

            async def read():
                try:
                    async for m in ws:
                        d = json.loads(m)
                        if d.get("cmd") == "msg":
                            got[user].append((d["seq"], time.monotonic()))
                except websockets.ConnectionClosed:
                    pass
            return ws, asyncio.create_task(read())

        big = await asyncio.gather(*(join("w%d%s" % (i, uid("")[:5]), 101) for i in range(BIG)))
        small = await asyncio.gather(*(join(uid("s"), SMALL_ROOM) for _ in range(5)))
        probe, _ = await join(uid("p"), 103, reader=False)
        loop = asyncio.get_running_loop()
        http = Http(self.node.http_port)
        try:
            # A small room's push is written at once.
            sid = uid("sm")
            t0 = time.monotonic()
            st, body = await loop.run_in_executor(None, send_all, http, SMALL_ROOM, "s", sid)
            self.assertEqual(st, 200)
            first_small = list(got)[BIG]
            while not got[first_small]:
                await asyncio.sleep(0.005)
            self.assertLess(got[first_small][0][1] - t0, DELAY_MS / 1000 / 2,
                            "a push to a small room waited")
            # Five pushes to the big room, back to back: the POSTs are answered at once, the
            # pushes wait for the delay, a ping meanwhile is answered at once.
            ids = [uid("bg") for _ in range(5)]
            t0 = time.monotonic()
            for mid in ids:
                st, body = await loop.run_in_executor(None, send_all, http, 101, "b", mid)
                self.assertEqual((st, body["data"]), (200, {"sendResults": True}))
            t_ping = time.monotonic()
            await probe.send(json.dumps({"seq": "pg", "cmd": "ping"}))
            reply = json.loads(await asyncio.wait_for(probe.recv(), 5))
            self.assertEqual(reply["seq"], "pg")
            self.assertLess(time.monotonic() - t_ping, DELAY_MS / 1000 / 2,
                            "a ping waited behind the big push")
            users = list(got)[:BIG]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and any(len(got[u]) < 5 for u in users):
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.3)
            first = min(got[u][0][1] for u in users)
            self.assertGreaterEqual(first - t0, DELAY_MS / 1000 * 0.8,
                                    "the big push was written before the delay")
            wrong = [u for u in users if [m for m, _ in got[u]] != ids]
            self.assertEqual(wrong, [], "not every push exactly once and in order")
        finally:
            http.close()
            for ws, task in big + small + [(probe, None)]:
                if task:
                    task.cancel()
            await asyncio.gather(*(ws.close() for ws, _ in big + small + [(probe, None)]))


if __name__ == "__main__":
    unittest.main()
