"""What a cluster does when a part of it fails (issue 7, "Failure"): a node stopped with SIGTERM
takes its users out of cluster presence at once; a node killed with -9 is out within the bound
(cluster.nodeTimeout, 3 s here), sends to its users answer false at once and room pushes reach
everyone else; Redis stopped while clients stay connected: every node keeps serving its own
users, what needs Redis answers 503 / 1004, nothing is a false success; Redis back: the nodes
re-announce their users and cross-node delivery works again without a restart; users that
Redis still lists but the node no longer has are removed by the next re-announce."""

import json
import signal
import time
import unittest

from clustertest import Cluster, run_closers, until
from imtest import Client, Http, send_all, send_message, uid


class ClusterFailureTest(unittest.TestCase):
    def setUp(self):
        self.cluster = Cluster(0)
        self.cluster.start()
        self._closers = []

    def tearDown(self):
        run_closers(self._closers)
        self.cluster.stop_checked()

    def node(self, name, **options):
        return self.cluster.add_node(name, **options)

    def client(self, node, user, app=101):
        c = Client(node.ws_port, user, app)
        self._closers.append(c.shutdown)
        return c

    def http(self, node):
        h = Http(node.http_port)
        self._closers.append(h.close)
        return h

    def online(self, h, user):
        st, _, body, _ = h.get("/user/online", {"userID": user})
        return st, body

    def test_sigterm_withdraws_the_nodes_users_at_once(self):
        a, b = self.node("a"), self.node("b")
        ob = self.client(a, uid("ob"))
        users = [uid("t%d" % i) for i in range(20)]
        for u in users:
            self.client(b, u)
        h = self.http(a)
        until(lambda: len(h.get("/user/list", {"appID": 101})[2]["data"]["userList"]) == 21, 5,
              what="all listed")
        t0 = time.monotonic()
        b.proc.send_signal(signal.SIGTERM)
        # Out of presence before the node has even finished closing its clients (5 s).
        until(lambda: h.get("/user/list", {"appID": 101})[2]["data"]["userList"] == [ob.user],
              2, what="b's users gone from the list")
        self.assertLess(time.monotonic() - t0, 2)
        for u in users:
            self.assertEqual(self.online(h, u)[1]["data"]["online"], False)
        until(lambda: len([m for m in ob.pushes("exit")]) == 20, 3, what="20 exits")
        r = self.cluster.redis
        self.assertEqual(r.cmd("SMEMBERS", "imgate:node:b:users"), [])
        # The node itself leaves once its clients are closed (its users left as they closed).
        until(lambda: "b" not in r.cmd("HKEYS", "imgate:nodes"), 3, what="b out of the nodes")
        self.assertEqual(b.proc.wait(10), 0)
        self.assertIn("left cluster presence", b.stderr())

    def test_kill_9_node_is_gone_within_the_bound(self):
        a, b = self.node("a"), self.node("b", **{"app.rpcPort": 9002})
        ha = self.http(a)
        stays = self.client(a, uid("stay"))
        victim = uid("v")
        self.client(b, victim)
        until(lambda: self.online(ha, victim)[1]["data"]["online"], 3, what="victim online")
        b.proc.kill()
        b.proc.wait()
        t0 = time.monotonic()
        # At once: nobody receives for the dead node, so a direct message is not delivered.
        self.assertEqual(send_message(ha, 101, victim, "lost?")[1]["data"],
                         {"sendResults": False})
        # And within the bound (nodeTimeout 3 s) it is offline everywhere.
        until(lambda: self.online(ha, victim)[1]["data"]["online"] is False, 4,
              what="victim offline")
        until(lambda: victim not in ha.get("/user/list", {"appID": 101})[2]["data"]["userList"],
              4, what="victim out of the list")
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 3.0, "not within cluster.nodeTimeout (3 s)")
        r = self.cluster.redis
        until(lambda: "b" not in r.cmd("HKEYS", "imgate:nodes"), 3, what="b out of the registry")
        rec = json.loads(r.cmd("GET", "acc:user:online:101_" + victim))
        self.assertTrue(rec["isLogoff"])
        # The seed's server list forgets it (its "<ip>:<rpcPort>" was its own).
        servers = r.cmd("HKEYS", "acc:hash:servers")
        self.assertNotIn("127.0.0.1:9002", servers)
        self.assertIn("127.0.0.1:9001", servers)
        # The room still reaches everyone who is left.
        self.assertEqual(send_all(ha, 101, "still here", sender="x")[1]["data"],
                         {"sendResults": True})
        stays.wait_for(lambda m: m.get("cmd") == "msg" and
                       m["response"]["data"]["msg"] == "still here")
        self.assertGreaterEqual(a.state()["cluster"]["counters"]["nodesReaped"], 1)
        b.stop()                      # reaps the killed process (exit -9)
        self.cluster.nodes.remove(b)
        b.cleanup()

    def test_several_nodes_killed_at_once(self):
        a = self.node("a")
        dead = [self.node("d%d" % i) for i in range(3)]
        ha = self.http(a)
        victims = {}
        for d in dead:
            victims[d.node_id] = [uid("v") for _ in range(30)]
            for u in victims[d.node_id]:
                self.client(d, u)
        until(lambda: len(ha.get("/user/list", {"appID": 101})[2]["data"]["userList"]) == 90,
              5, what="all listed")
        for d in dead:
            d.proc.kill()
        for d in dead:
            d.proc.wait()
        until(lambda: ha.get("/user/list", {"appID": 101})[2]["data"]["userList"] == [], 6,
              what="every dead node's users gone")
        r = self.cluster.redis
        self.assertEqual(sorted(r.cmd("HKEYS", "imgate:nodes")), ["a"])
        for d in dead:
            self.assertEqual(r.cmd("EXISTS", "imgate:node:%s:users" % d.node_id), 0)
            d.stop()
            self.cluster.nodes.remove(d)
            d.cleanup()

    def test_subscriptions_link_killed_by_redis(self):
        a, b = self.node("a"), self.node("b")
        user = uid("k")
        c = self.client(b, user)
        ha = self.http(a)
        # Redis drops every subscriber connection: the nodes resubscribe by themselves.
        self.cluster.redis.cmd("CLIENT", "KILL", "TYPE", "pubsub")

        def delivered():
            st, body = send_message(ha, 101, user, "after kill")
            return st == 200 and body["data"] == {"sendResults": True}
        until(delivered, 5, what="delivery again")
        c.wait_for(lambda m: m.get("cmd") == "msg" and
                   m["response"]["data"]["msg"] == "after kill")
        self.assertGreaterEqual(b.state()["cluster"]["subscriptions"]["connects"], 2)

    def test_redis_down_then_back(self):
        a, b = self.node("a"), self.node("b")
        ha, hb = self.http(a), self.http(b)
        alice = self.client(a, uid("alice"))
        bob = self.client(b, uid("bob"))
        until(lambda: self.online(ha, bob.user)[1]["data"]["online"], 3, what="bob online")
        self.cluster.redis.stop()
        until(lambda: not a.state()["cluster"]["usable"], 5, what="a sees Redis down")
        until(lambda: not b.state()["cluster"]["usable"], 5, what="b sees Redis down")
        # Local service goes on: logins, heartbeats, pushes to local users.
        carol = self.client(a, uid("carol"))
        self.assertEqual(carol.request("heartbeat", {"userID": carol.user})["response"]["code"],
                         200)
        self.assertEqual(send_message(ha, 101, alice.user, "local")[1]["data"],
                         {"sendResults": True})
        alice.wait_for(lambda m: m.get("cmd") == "msg" and
                       m["response"]["data"]["msg"] == "local")
        self.assertEqual(self.online(ha, carol.user)[1]["data"]["online"], True)
        # What needs Redis says so: never a false success.
        st, body = send_message(ha, 101, bob.user, "remote")
        self.assertEqual(st, 503, body)
        self.assertEqual(body["code"], 503)
        self.assertIn("Redis", body["msg"])
        st, body = send_all(ha, 101, "room")
        self.assertEqual(st, 503, body)
        self.assertEqual(self.online(ha, bob.user)[0], 503)
        self.assertEqual(ha.get("/user/list", {"appID": 101})[0], 503)
        r = alice.request("sendMessage", {"userID": bob.user, "message": "ws remote"})
        self.assertEqual(r["response"]["code"], 1004)
        r = alice.request("sendMessageAll", {"message": "ws room"})
        self.assertEqual(r["response"]["code"], 1004)
        time.sleep(0.3)
        self.assertEqual(bob.pushes("msg"), [])
        st = a.state()["cluster"]
        self.assertEqual(st["commands"]["state"] in ("down", "connecting"), True, st)
        self.assertGreater(st["counters"]["requestsUnavailable"], 0)
        self.assertEqual(a.stderr().count("link down"), 2)   # once per link, not per attempt
        # Redis comes back (empty): the nodes reconnect and re-announce their users.
        self.cluster.redis.start()
        for n in (a, b):
            self.cluster.wait_usable(n, 10)
        until(lambda: sorted(ha.get("/user/list", {"appID": 101})[2]["data"]["userList"]) ==
              sorted([alice.user, bob.user, carol.user]), 5, what="all three re-announced")
        self.assertEqual(send_message(ha, 101, bob.user, "back")[1]["data"],
                         {"sendResults": True})
        bob.wait_for(lambda m: m.get("cmd") == "msg" and m["response"]["data"]["msg"] == "back")
        self.assertEqual(send_all(hb, 101, "room back", sender=bob.user)[1]["data"],
                         {"sendResults": True})
        for c in (alice, carol):
            c.wait_for(lambda m: m.get("cmd") == "msg" and
                       m["response"]["data"]["msg"] == "room back")
        self.assertGreaterEqual(a.state()["cluster"]["commands"]["connects"], 2)

    def test_users_redis_still_lists_but_the_node_lost_are_removed(self):
        # Presence drifted (changes lost while the link was down and Redis kept its data):
        # the periodic re-announce (every second here) repairs it, with an exit for the ghost.
        a = self.node("a", **{"cluster.presenceSync": 1})
        ob = self.client(a, uid("ob"))
        r = self.cluster.redis
        ghost = uid("ghost")
        r.cmd("SADD", "imgate:node:a:users", "101_" + ghost)
        r.cmd("SADD", "imgate:user:101_" + ghost, "a")
        r.cmd("SADD", "imgate:room:101", ghost)
        # And one the node has but Redis lost: re-added.
        r.cmd("SREM", "imgate:room:101", ob.user)
        r.cmd("DEL", "imgate:user:101_" + ob.user)
        ha = self.http(a)
        until(lambda: sorted(ha.get("/user/list", {"appID": 101})[2]["data"]["userList"]) ==
              [ob.user], 4, what="the ghost removed and the real user back")
        ob.wait_for(lambda m: m.get("cmd") == "exit" and m["response"]["data"]["from"] == ghost)
        self.assertGreaterEqual(a.state()["cluster"]["counters"]["syncStale"], 1)

    def test_refresh_freshens_records_and_leaves_the_sets_alone(self):
        # The periodic refresh (every second here; a full re-announce only hourly) gives the
        # seed record a new heartbeatTime and rewrites a lost record, with two commands per
        # user: it neither repairs the sets (a ghost stays until a re-announce) nor re-adds them.
        a = self.node("a", **{"cluster.presenceRefresh": 1, "cluster.presenceSync": 3600})
        c1, c2 = self.client(a, uid("rf")), self.client(a, uid("rf"))
        r = self.cluster.redis
        ghost = uid("ghost")
        r.cmd("SADD", "imgate:node:a:users", "101_" + ghost)
        rec_key = "acc:user:online:101_" + c1.user
        old = json.loads(r.cmd("GET", rec_key))
        old["heartbeatTime"] = 12345
        r.cmd("SET", rec_key, json.dumps(old, separators=(",", ":")))
        r.cmd("DEL", "acc:user:online:101_" + c2.user)
        syncs = a.state()["cluster"]["counters"]["syncs"]
        refreshes = a.state()["cluster"]["counters"]["refreshes"]
        until(lambda: json.loads(r.cmd("GET", rec_key))["heartbeatTime"] > 12345, 5,
              what="a fresh heartbeatTime")
        until(lambda: r.cmd("GET", "acc:user:online:101_" + c2.user), 5,
              what="the lost record rewritten")
        rec = json.loads(r.cmd("GET", rec_key))
        self.assertEqual((rec["userID"], rec["isLogoff"], rec["loginTime"]),
                         (c1.user, False, old["loginTime"]))
        counters = a.state()["cluster"]["counters"]
        self.assertGreater(counters["refreshes"], refreshes)
        self.assertEqual(counters["syncs"], syncs)
        self.assertEqual(r.cmd("SISMEMBER", "imgate:node:a:users", "101_" + ghost), 1)


if __name__ == "__main__":
    unittest.main()
