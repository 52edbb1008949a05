"""Operations (issue 8): /metrics in Prometheus text format, checked by Prometheus's own
promtool and parsed by python3-prometheus-client (neither is ours); /health and /ready for load
balancers, with /ready at 503 while Redis is down in cluster mode."""

import ctypes
import os
import shutil
import socket
import subprocess
import time
import unittest

from prometheus_client.parser import text_string_to_metric_families

from clustertest import Cluster
from imtest import COUNTER_KEYS, Http, NodeTestCase, send_message, uid, wait_until

PROMTOOL = shutil.which("promtool")


def snake(camel):
    return "".join("_" + ch.lower() if ch.isupper() else ch for ch in camel)


def scrape(http):
    """(status, headers, text, {(name, labels as a sorted tuple): value})."""
    st, h, body, raw = http.get("/metrics")
    text = raw.decode()
    samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return st, h, text, samples


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def promtool_check(testcase, text):
    """`promtool check metrics`: the format and Prometheus's naming conventions (counters end in
    _total, units spelt out); exit 0 and nothing said."""
    testcase.assertIsNotNone(PROMTOOL, "promtool missing (Debian package prometheus)")
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    testcase.assertEqual(p.returncode, 0, (p.stdout + p.stderr).decode())
    testcase.assertEqual((p.stdout + p.stderr).strip(), b"")


class Metrics(NodeTestCase):
    def test_format_is_what_prometheus_reads(self):
        st, h, text, samples = scrape(self.http)
        self.assertEqual(st, 200)
        self.assertEqual(h["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        promtool_check(self, text)
        self.assertEqual(value(samples, "imgate_build_info", version="0.1.0"), 1)

    def test_numbers_follow_what_happens(self):
        _, _, _, before = scrape(self.http)
        users = [uid("m") for _ in range(3)]
        clients = [self.client(u) for u in users]
        # one close for bad UTF-8 and one for a protocol error (an RSV bit)
        bad = self.raw()
        bad.send_frame(0x1, b"\xff\xfe")
        self.assertEqual(bad.expect_close()[0], 1007)
        rsv = self.raw()
        rsv.send_frame(0x1, b"x", rsv=4)
        self.assertEqual(rsv.expect_close()[0], 1002)
        st, body = send_message(self.http, 101, users[0], "hello")
        self.assertEqual(st, 200, body)
        clients[0].wait_for(lambda m: m.get("cmd") == "msg", what="the push")

        def grown():
            _, _, _, s = scrape(self.http)
            return s if value(s, "imgate_logged_in_connections") == 3 and value(
                s, "imgate_forced_closes_total", reason="bad_utf8") >= 1 + value(
                before, "imgate_forced_closes_total", reason="bad_utf8") else None
        after = wait_until(grown, 5, what="metrics to show 3 logins and the bad UTF-8 close")
        self.assertEqual(value(after, "imgate_users"), 3)
        self.assertGreaterEqual(value(after, "imgate_websockets"), 3)
        self.assertGreaterEqual(value(after, "imgate_forced_closes_total",
                                      reason="protocol_error"),
                                1 + value(before, "imgate_forced_closes_total",
                                          reason="protocol_error"))
        self.assertGreater(value(after, "imgate_received_bytes_total"),
                           value(before, "imgate_received_bytes_total"))
        self.assertGreater(value(after, "imgate_sent_bytes_total"),
                           value(before, "imgate_sent_bytes_total"))
        self.assertGreaterEqual(value(after, "imgate_messages_received_total"),
                                value(before, "imgate_messages_received_total") + 3)  # logins
        self.assertIsNone(self.node.state()["cluster"])
        self.assertFalse(any(n.startswith("imgate_redis_") for n, _ in after))

    def test_every_state_counter_is_a_metric(self):
        """Each /system/state counter has a metric with the same value: imgate_<snake>_total,
        or a labelled sample of a family (forced closes by reason, messages, bytes)."""
        renamed = {
            "messagesIn": ("imgate_messages_received_total", {}),
            "messagesOut": ("imgate_messages_sent_total", {}),
            "bytesIn": ("imgate_received_bytes_total", {}),
            "bytesOut": ("imgate_sent_bytes_total", {}),
        }
        for counter, reason in (("handshakeTimeouts", "handshake_timeout"),
                                ("protocolErrors", "protocol_error"), ("badUtf8", "bad_utf8"),
                                ("messagesTooBig", "message_too_big"),
                                ("slowConsumers", "slow_consumer"),
                                ("heartbeatTimeouts", "heartbeat_timeout"),
                                ("loginTimeouts", "login_timeout"),
                                ("closeTimeouts", "close_timeout"),
                                ("rateLimitCloses", "rate_limit")):
            renamed[counter] = ("imgate_forced_closes_total", {"reason": reason})
        for counter, limit in (("connectionLimitHits", "connections"),
                               ("ipLimitHits", "connections_per_ip"),
                               ("upgradeRateHits", "upgrade_rate"),
                               ("messageRateHits", "message_rate"),
                               ("loginRateHits", "login_rate")):
            renamed[counter] = ("imgate_limit_hits_total", {"limit": limit})
        counters = self.node.state()["counters"]
        for k in COUNTER_KEYS:
            self.assertIn(k, counters)
        # Each read is itself a request (and state() a new connection): a counter read between
        # two scrapes lies between their values.
        _, _, _, first = scrape(self.http)
        counters = self.node.state()["counters"]
        _, _, _, second = scrape(self.http)
        for k, v in counters.items():
            name, labels = renamed.get(k, ("imgate_%s_total" % snake(k), {}))
            key = (name, tuple(sorted(labels.items())))
            self.assertIn(key, first, "no metric for counter %s" % k)
            self.assertTrue(first[key] <= v <= second[key], "%s: %r, %r, %r" % (
                k, first[key], v, second[key]))


class Health(NodeTestCase):
    node_options = {"app.workers": 2}

    def test_health_and_ready(self):
        for path, status in (("/health", "ok"), ("/ready", "ready")):
            st, h, body, _ = self.http.get(path)
            self.assertEqual(st, 200, path)
            self.assertEqual(body["data"], {"status": status})
            self.assertTrue(h["content-type"].startswith("application/json"))

    def test_stalled_worker_is_503(self):
        """One worker thread stopped with ptrace (PTRACE_SEIZE + PTRACE_INTERRUPT stop that
        thread alone): /health, answered by the other worker, says 503 once it has not ticked
        for 5 s, and 200 again after it runs."""
        libc = ctypes.CDLL(None, use_errno=True)
        libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
        seize, interrupt, detach = 0x4206, 0x4207, 17
        pid = self.node.proc.pid
        def comm(t):
            with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
                return f.read().strip()
        workers = sorted(int(t) for t in os.listdir("/proc/%d/task" % pid)
                         if comm(t).startswith("imgate-w"))
        self.assertEqual(len(workers), 2, "worker threads are named imgate-w<i>")
        tid = workers[0]
        self.assertEqual(libc.ptrace(seize, tid, None, None), 0, os.strerror(ctypes.get_errno()))
        try:
            self.assertEqual(libc.ptrace(interrupt, tid, None, None), 0)
            os.waitpid(tid, 0x40000000)  # __WALL: the thread's stop

            def health():
                # A new connection may land on the stopped worker: short timeouts, try again.
                try:
                    with socket.create_connection(("127.0.0.1", self.node.http_port), 1) as c:
                        c.settimeout(1)
                        c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                        return c.recv(4096)
                except OSError:
                    return None
            got = wait_until(lambda: (lambda r: r if r and b" 503 " in r[:20] else None)(
                health()), 15, interval=0.2, what="/health 503 with a stopped worker")
            self.assertIn(b"stalled for", got)
        finally:
            libc.ptrace(detach, tid, None, None)
        wait_until(lambda: (lambda r: r and b" 200 " in r[:20])(health()), 10, interval=0.2,
                   what="/health 200 again")

    def test_wrong_method(self):
        st, h, body, _ = self.http.post("/health", {})
        self.assertEqual(st, 405)
        self.assertIn("GET", h["allow"])


class ClusterOps(unittest.TestCase):
    def test_ready_follows_redis_and_metrics_show_links(self):
        cluster = Cluster(1)
        cluster.start()
        try:
            node = cluster.nodes[0]
            h = Http(node.http_port)
            try:
                st, _, body, _ = h.get("/ready")
                self.assertEqual((st, body["data"]), (200, {"status": "ready"}))
                _, _, text, samples = scrape(h)
                promtool_check(self, text)
                self.assertEqual(value(samples, "imgate_redis_link_up", link="commands"), 1)
                self.assertEqual(value(samples, "imgate_redis_link_up", link="subscriptions"), 1)
                self.assertIn(("imgate_cluster_requests_total", ()), samples)
                self.assertGreater(value(samples, "imgate_redis_round_trip_seconds",
                                         link="commands"), 0)
                cluster.redis.stop()

                def not_ready():
                    st, hd, body, _ = h.get("/ready")
                    return (st, hd, body) if st == 503 else None
                st, hd, body = wait_until(not_ready, 10, what="/ready 503 without Redis")
                self.assertEqual(body["msg"], "redis unreachable")
                self.assertIn("retry-after", hd)
                st, _, _, _ = h.get("/health")  # alive all the same
                self.assertEqual(st, 200)
                _, _, _, samples = scrape(h)
                self.assertEqual(value(samples, "imgate_redis_link_up", link="commands"), 0)
                cluster.redis.start()
                wait_until(lambda: h.get("/ready")[0] == 200, 15, what="/ready 200 again")
            finally:
                h.close()
        finally:
            cluster.stop_checked()


if __name__ == "__main__":
    unittest.main()
