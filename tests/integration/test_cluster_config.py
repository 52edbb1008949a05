"""How a node reaches Redis: with redis.password (right and wrong), over a Unix socket, with
redis.DB, and after someone flushed the scripts (NOSCRIPT): the node loads them again."""

import os
import time
import unittest

from clustertest import Cluster, until
from harness import Node
from imtest import Client, Http, send_message, uid
from redisproc import Redis


def usable(node):
    st = node.state().get("cluster")
    return bool(st and st["usable"])


class ClusterConfigTest(unittest.TestCase):
    def two_nodes_deliver(self, addr, **options):
        nodes = []
        try:
            for name in ("p", "q"):
                n = Node(**{"redis.addr": addr, "cluster.nodeId": name, **options})
                n.start()
                nodes.append(n)
            for n in nodes:
                until(lambda: usable(n), 5, what="linked")
            user = uid("u")
            c = Client(nodes[1].ws_port, user)
            h = Http(nodes[0].http_port)
            try:
                self.assertEqual(send_message(h, 101, user, "via")[1]["data"],
                                 {"sendResults": True})
                c.wait_for(lambda m: m.get("cmd") == "msg")
            finally:
                h.close()
                c.shutdown()
        finally:
            for n in nodes:
                self.assertEqual(n.stop(), 0, n.stderr()[-2000:])
                n.cleanup()

    def test_password_and_db(self):
        r = Redis(password="s3cret").start()
        try:
            self.two_nodes_deliver(r.addr, **{"redis.password": "s3cret", "redis.DB": 3})
            # The keys are in DB 3.
            c = r.client()
            try:
                c.cmd("SELECT", 3)
                self.assertTrue(any(k.startswith("acc:user:online:") for k in c.cmd("KEYS", "*")))
                c.cmd("SELECT", 0)
                self.assertEqual(c.cmd("KEYS", "*"), [])
            finally:
                c.close()
        finally:
            r.cleanup()

    def test_wrong_password_is_reported_and_local_service_goes_on(self):
        r = Redis(password="s3cret").start()
        node = Node(**{"redis.addr": r.addr, "redis.password": "nope", "cluster.nodeId": "w"})
        try:
            node.start()
            until(lambda: "WRONGPASS" in node.stderr() or "invalid" in node.stderr(), 5,
                  what="the failed AUTH logged")
            user = uid("l")
            c = Client(node.ws_port, user)
            h = Http(node.http_port)
            try:
                # A local push still works; the cluster says why it is not usable.
                self.assertEqual(send_message(h, 101, user, "here")[1]["data"],
                                 {"sendResults": True})
                st = node.state()["cluster"]
                self.assertFalse(st["usable"])
                self.assertTrue(st["commands"]["lastError"], st)
                self.assertEqual(send_message(h, 101, uid("far"), "x")[0], 503)
                # It keeps trying with a growing backoff, not in a tight loop, and says so once.
                time.sleep(2)
                # once per link (commands, subscriptions)
                self.assertLessEqual(node.stderr().count("AUTH failed"), 2, node.stderr())
                self.assertIn("WRONGPASS", st["commands"]["lastError"])
                self.assertEqual(node.state()["cluster"]["commands"]["connects"], 0)
            finally:
                h.close()
                c.shutdown()
            self.assertEqual(node.stop(), 0)
        finally:
            node.cleanup()
            r.cleanup()

    def test_unix_socket(self):
        r = Redis(args=["--unixsocket", "PLACEHOLDER"])
        sock = os.path.join(r.dir, "redis.sock")
        r.args = ["--unixsocket", sock, "--unixsocketperm", "700"]
        r.start()
        try:
            self.two_nodes_deliver("unix:" + sock)
        finally:
            r.cleanup()

    def test_nodes_sharing_the_same_ports(self):
        # Several processes on one machine, all on the same ports (SO_REUSEPORT across
        # processes): the kernel spreads the connections, the cluster delivers across them.
        with Cluster(0) as cl:
            a = cl.add_node("sa")
            b = cl.add_node("sb", **{"app.httpPort": a.http_port,
                                     "app.webSocketPort": a.ws_port})
            # a answers on the shared ports already, so add_node's checks may have seen a:
            # wait for b's own start-up line and its registration before connecting.
            until(lambda: "imgate listening" in b.stderr() and
                  "sb" in cl.redis.cmd("HKEYS", "imgate:nodes"), 10, what="sb up")
            clients = [Client(a.ws_port, uid("sp")) for _ in range(40)]
            h = Http(a.http_port)
            try:
                # Both share the ports, so ask Redis who holds whom.
                per_node = [len(cl.redis.cmd("SMEMBERS", "imgate:node:%s:users" % n))
                            for n in ("sa", "sb")]
                self.assertEqual(sum(per_node), 40)
                self.assertTrue(all(per_node), "one process got every connection: %r" % per_node)
                for c in clients:
                    self.assertEqual(send_message(h, 101, c.user, "shared")[1]["data"],
                                     {"sendResults": True})
                for c in clients:
                    c.wait_for(lambda m: m.get("cmd") == "msg")
            finally:
                h.close()
                for c in clients:
                    c.shutdown()

    def test_flushed_scripts_are_loaded_again(self):
        with Cluster(2) as cl:
            a, b = cl.nodes
            user = uid("s")
            c = Client(b.ws_port, user)
            h = Http(a.http_port)
            try:
                cl.redis.cmd("SCRIPT", "FLUSH")
                # The first call after the flush may fail (503); the node reloads and recovers.
                def delivered():
                    st, body = send_message(h, 101, user, "again")
                    return st == 200 and body["data"] == {"sendResults": True}
                until(delivered, 5, what="delivery after SCRIPT FLUSH")
                c.wait_for(lambda m: m.get("cmd") == "msg")
                self.assertGreaterEqual(a.state()["cluster"]["counters"]["scriptErrors"], 1)
            finally:
                h.close()
                c.shutdown()


if __name__ == "__main__":
    unittest.main()
