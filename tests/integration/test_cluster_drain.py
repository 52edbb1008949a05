"""A node of a cluster drained with SIGTERM (issue 8): its users stay reachable from the other
nodes until their own connection is closed — each close takes that user out of cluster presence
as a logout does — and the node leaves the cluster once its clients are gone."""

import signal
import time
import unittest

from clustertest import Cluster, run_closers, until
from imtest import Client, Http, close_payload, send_message, uid


class ClusterDrainTest(unittest.TestCase):
    def test_users_reachable_until_their_close(self):
        cluster = Cluster(0)
        cluster.start()
        closers = []
        try:
            a = cluster.add_node("a")
            b = cluster.add_node("b", **{"app.drainSeconds": 4})
            users = [uid("d%d" % i) for i in range(20)]
            cs = []
            for u in users:
                c = Client(b.ws_port, u)
                closers.append(c.shutdown)
                cs.append(c)
            h = Http(a.http_port)
            closers.append(h.close)
            until(lambda: len(h.get("/user/list", {"appID": 101})[2]["data"]["userList"]) == 20,
                  5, what="all listed")
            b.proc.send_signal(signal.SIGTERM)
            time.sleep(1)
            open_now = [c for c in cs if c.close is None]
            self.assertGreater(len(open_now), 5)
            for c in open_now[:5]:
                mid = uid("m")
                st, body = send_message(h, 101, c.user, "still here", msg_id=mid)
                if c.close is None or c.close_at > time.monotonic() - 0.05:
                    self.assertEqual((st, body["data"]), (200, {"sendResults": True}), c.user)
                    c.wait_seq(mid, "msg")
            # Closed users leave presence; once all are closed the node leaves the cluster.
            for c in cs:
                c.wait_closed(6)
                c.ws.send_frame(0x8, close_payload(1001))
            until(lambda: h.get("/user/list", {"appID": 101})[2]["data"]["userList"] == [], 3,
                  what="b's users gone")
            self.assertEqual(b.proc.wait(10), 0)
            self.assertNotIn("b", cluster.redis.cmd("HKEYS", "imgate:nodes"))
        finally:
            run_closers(closers)
            cluster.stop_checked()


if __name__ == "__main__":
    unittest.main()
