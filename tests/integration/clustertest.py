"""A cluster for the tests: a real redis-server (redisproc.Redis) and N imgate nodes pointed at it,
each with its own ports and node id. Nothing is mocked.

    with Cluster(3) as cl:
        cl.nodes[0].http_port ...
        cl.redis.cmd("SMEMBERS", "imgate:room:101")
"""

import time
import unittest

from harness import Node
from imtest import Http, wait_until
from redisproc import Redis


class Cluster:
    # nodeTimeout 3: a killed node is gone from cluster presence within ~2 s, so the failure
    # tests stay short (the default is 15 s).
    # drainSeconds 1: a node stopped while test clients (which never answer a close) are
    # connected exits within a few seconds instead of the default 10 + closeTimeout.
    defaults = {"cluster.nodeTimeout": 3, "app.drainSeconds": 1}

    def __init__(self, n=3, **options):
        self.redis = Redis()
        self.options = dict(self.defaults)
        self.options.update({k.replace("__", "."): v for k, v in options.items()})
        self.nodes = []
        self.n = n

    def add_node(self, node_id, start=True, **options):
        opts = dict(self.options)
        opts.update({k.replace("__", "."): v for k, v in options.items()})
        opts["redis.addr"] = self.redis.addr
        opts["cluster.nodeId"] = node_id
        node = Node(**opts)
        # Ports given here (e.g. shared with another node) are the ones to wait for and use.
        node.http_port = int(opts.get("app.httpPort", node.http_port))
        node.ws_port = int(opts.get("app.webSocketPort", node.ws_port))
        node.node_id = node_id
        self.nodes.append(node)
        if start:
            node.start()
            self.wait_usable(node)
        return node

    def start(self):
        self.redis.start()
        for i in range(self.n):
            self.add_node("n%d" % i)
        return self

    def wait_usable(self, node, timeout=10):
        """Until the node's two Redis links are up (it answers cluster requests)."""
        def usable():
            try:
                st = node.state()
            except OSError:
                return False
            return st.get("cluster") and st["cluster"]["usable"]
        wait_until(usable, timeout, what="node %s linked to Redis" % node.node_id)

    def stop_checked(self):
        """stop(), then AssertionError (with their stderr) if a node did not exit 0."""
        errs = {n.node_id: n.stderr() for n in self.nodes}
        codes = self.stop()
        bad = {k: v for k, v in codes.items() if v != 0}
        if bad:
            raise AssertionError("exit codes %r; stderr:\n%s" % (
                bad, "\n".join(errs[k][-3000:] for k in bad)))

    def stop(self):
        """Stops every node still running (SIGTERM) and Redis; returns {node_id: exit code}."""
        codes = {}
        for node in self.nodes:
            if node.proc:
                codes[node.node_id] = node.stop()
        for node in self.nodes:
            node.cleanup()
        self.redis.stop()
        return codes

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class ClusterTestCase(unittest.TestCase):
    """A cluster for the whole class; every node must exit 0 on SIGTERM at the end."""

    nodes = 3
    cluster_options = {}

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(cls.nodes, **cls.cluster_options)
        try:
            cls.cluster.start()
        except Exception:
            cls.cluster.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop_checked()

    def setUp(self):
        self._closers = []

    def tearDown(self):
        run_closers(self._closers)

    def http(self, i):
        h = Http(self.cluster.nodes[i].http_port)
        self._closers.append(h.close)
        return h

    def client(self, i, user, app=101):
        from imtest import Client
        c = Client(self.cluster.nodes[i].ws_port, user, app)
        self._closers.append(c.shutdown)
        return c


def run_closers(closers):
    """Calls each cleanup, newest first; one that fails does not stop the others."""
    for fn in reversed(closers):
        try:
            fn()
        except Exception:
            pass


def until(pred, timeout=5, what="condition"):
    return wait_until(pred, timeout, what=what)


def now():
    return time.monotonic()
