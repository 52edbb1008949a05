"""Room fan-out at some scale, with python3-websockets as the client: 500 clients in room 101 and
50 in room 102, then /user/sendMessageAll bursts (one after the other, then several at once while
clients are also sending heartbeats). Every room-101 client but the sender gets every message
exactly once; room 102 gets none of them; the node reports no slow consumer."""

import asyncio
import collections
import concurrent.futures
import json
import unittest

import websockets

from imtest import Http, NodeTestCase, send_all, send_message, uid

N_ROOM = 500
N_OTHER = 50
BURST = 20          # sequential posts
PARALLEL = 4        # then this many posting threads ...
PER_THREAD = 5      # ... with this many posts each
HEARTBEATERS = 100  # clients that send a heartbeat during the second burst


class Peer:
    def __init__(self, ws, user, app):
        self.ws, self.user, self.app = ws, user, app
        self.counts = collections.Counter()   # msgID -> pushes received
        self.bad = []                         # pushes with a wrong body
        self.waiting = {}                     # seq -> future of the reply
        self.task = None


class FanoutTest(NodeTestCase):
    node_options = {"app.maxConnections": 10000}

    def test_fanout_500_clients(self):
        asyncio.run(asyncio.wait_for(self.scenario(), 55))

    async def scenario(self):
        url = self.node.ws_url
        sender = "f0"
        sem = asyncio.Semaphore(50)
        loop = asyncio.get_running_loop()
        pool = concurrent.futures.ThreadPoolExecutor(PARALLEL + 2)

        async def read(p):
            try:
                async for m in p.ws:
                    if '"cmd":"msg"' in m:
                        d = json.loads(m)
                        mid = d["seq"]
                        p.counts[mid] += 1
                        body = d["response"]["data"]
                        want_from = sender if not mid.startswith("mk") else body["from"]
                        if (body["msg"] != "text-" + mid and not mid.startswith("mk")) or \
                                body["from"] != want_from:
                            p.bad.append(d)
                    elif '"cmd":"enter"' in m or '"cmd":"exit"' in m:
                        continue
                    else:
                        d = json.loads(m)
                        fut = p.waiting.pop(d.get("seq"), None)
                        if fut and not fut.done():
                            fut.set_result(d)
            except websockets.ConnectionClosed:
                pass

        async def join(user, app):
            async with sem:
                ws = await websockets.connect(url, open_timeout=15, close_timeout=10,
                                              ping_interval=None, max_queue=None)
                await ws.send(json.dumps({"seq": "login", "cmd": "login",
                                          "data": {"appID": app, "userID": user}}))
                r = json.loads(await asyncio.wait_for(ws.recv(), 15))
                self.assertEqual(r["response"]["code"], 200, r)
            p = Peer(ws, user, app)
            p.task = asyncio.create_task(read(p))
            return p

        async def request(p, cmd):
            seq = uid("q")
            fut = loop.create_future()
            p.waiting[seq] = fut
            await p.ws.send(json.dumps({"seq": seq, "cmd": cmd}))
            return await asyncio.wait_for(fut, 15)

        def post_all(ids, app=101):
            h = Http(self.node.http_port)
            try:
                for mid in ids:
                    status, body = send_all(h, app, "text-" + mid, mid, sender=sender)
                    self.assertEqual((status, body["data"]), (200, {"sendResults": True}), body)
            finally:
                h.close()

        def post_marker_all(app, mid):
            h = Http(self.node.http_port)
            try:
                status, body = send_all(h, app, "marker", mid)
                self.assertEqual((status, body["data"]), (200, {"sendResults": True}), body)
            finally:
                h.close()

        def post_one(app, user, mid):
            h = Http(self.node.http_port)
            try:
                status, body = send_message(h, app, user, "marker", mid, frm="m")
                self.assertEqual((status, body["data"]), (200, {"sendResults": True}), body)
            finally:
                h.close()

        room = await asyncio.gather(*(join("f%d" % i, 101) for i in range(N_ROOM)))
        other = await asyncio.gather(*(join("g%d" % i, 102) for i in range(N_OTHER)))
        peers = room + other
        try:
            st = self.node.state()
            self.assertGreaterEqual(st["managerInfo"]["usersLen"], N_ROOM + N_OTHER)

            run = uid("")
            burst = ["b%s-%d" % (run, k) for k in range(BURST)]
            # The first burst starts while the clients are still reading the enter notices.
            await loop.run_in_executor(pool, post_all, burst)

            par = [["p%s-%d-%d" % (run, t, k) for k in range(PER_THREAD)] for t in range(PARALLEL)]
            posts = [loop.run_in_executor(pool, post_all, ids) for ids in par]
            beats = [request(p, "heartbeat") for p in room[1:1 + HEARTBEATERS]]
            results = await asyncio.gather(*posts, *beats)
            for r in results[PARALLEL:]:
                self.assertEqual(r["response"]["code"], 200, r)

            want = collections.Counter(burst + [m for ids in par for m in ids])
            receivers = room[1:]

            deadline = loop.time() + 30
            while loop.time() < deadline:
                if all(set(p.counts) >= set(want) for p in receivers):
                    break
                await asyncio.sleep(0.1)
            missing = {p.user: sorted(set(want) - set(p.counts)) for p in receivers
                       if set(want) - set(p.counts)}
            self.assertFalse(missing, "%d clients missed messages, e.g. %r" % (
                len(missing), list(missing.items())[:3]))

            # Barriers: a marker to room 102 (one broadcast) and to the sender (direct), so that
            # anything that was going to arrive there has arrived.
            mk102, mk0 = "mk" + uid(""), "mk" + uid("")
            await loop.run_in_executor(pool, post_marker_all, 102, mk102)
            await loop.run_in_executor(pool, post_one, 101, sender, mk0)
            deadline = loop.time() + 15
            while loop.time() < deadline:
                if all(p.counts[mk102] for p in other) and room[0].counts[mk0]:
                    break
                await asyncio.sleep(0.05)

            for p in receivers:
                self.assertEqual(p.counts, want, "%s: duplicates or extras" % p.user)
                self.assertEqual(p.bad, [], p.user)
            self.assertEqual(room[0].counts, collections.Counter({mk0: 1}),
                             "the sender got its own sendMessageAll")
            for p in other:
                self.assertEqual(p.counts, collections.Counter({mk102: 1}),
                                 "%s in room 102 got room 101's messages" % p.user)
            self.assertEqual(self.node.state()["counters"]["slowConsumers"], 0)
        finally:
            await asyncio.wait_for(
                asyncio.gather(*(p.ws.close() for p in peers), return_exceptions=True), 30)
            for p in peers:
                p.task.cancel()
            await asyncio.gather(*(p.task for p in peers), return_exceptions=True)
            pool.shutdown(wait=False)


if __name__ == "__main__":
    unittest.main()
