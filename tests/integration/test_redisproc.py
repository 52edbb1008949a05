"""The Redis helper the cluster tests stand on (redisproc.py): a real redis-server on a free
port, its RESP client's replies, a password, stop and restart on the same port with nothing
persisted, two instances side by side, and no redis-server left behind when the test process
ends without stopping it (atexit) or is killed (parent-death signal).

Run: /usr/bin/python3 -m unittest -v test_redisproc
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest

import redisproc
from redisproc import HOST, Redis, RedisError

WAIT = 5


def alive(pid):
    """True if pid is a running (not zombie) process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pids, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


class RedisProcTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = Redis().start()
        cls.addClassCleanup(cls.redis.cleanup)

    def setUp(self):
        self.redis.cmd("FLUSHALL")

    def test_replies_are_decoded(self):
        r = self.redis
        self.assertEqual(r.cmd("PING"), "PONG")
        self.assertEqual(r.cmd("SET", "k", "v\u00e9"), "OK")
        self.assertEqual(r.cmd("GET", "k"), "v\u00e9")
        self.assertIsNone(r.cmd("GET", "missing"))
        self.assertEqual(r.cmd("INCRBY", "n", 41), 41)
        self.assertEqual(r.cmd("INCR", "n"), 42)
        self.assertEqual(r.cmd("SET", "bin", b"\xff\x00"), "OK")
        self.assertEqual(r.cmd("GET", "bin"), b"\xff\x00", "not UTF-8: bytes")
        self.assertEqual(r.cmd("RPUSH", "l", "a", "", "c"), 3)
        self.assertEqual(r.cmd("LRANGE", "l", 0, -1), ["a", "", "c"])
        self.assertEqual(sorted(r.cmd("KEYS", "*")), ["bin", "k", "l", "n"])
        self.assertEqual(r.cmd("HSET", "h", "f", "1"), 1)
        self.assertEqual(r.cmd("HGETALL", "h"), ["f", "1"])
        with self.assertRaisesRegex(RedisError, "WRONGTYPE"):
            r.cmd("GET", "l")
        # An error inside an array (EXEC) is returned in place; the stream stays in step.
        with r.client() as c:
            self.assertEqual(c.cmd("MULTI"), "OK")
            self.assertEqual(c.cmd("INCR", "l"), "QUEUED")
            self.assertEqual(c.cmd("INCR", "n"), "QUEUED")
            failed, n = c.cmd("EXEC")
            self.assertIsInstance(failed, RedisError)
            self.assertEqual(n, 43)
            self.assertEqual(c.cmd("PING"), "PONG")
        with r.client(decode=False) as c:
            self.assertEqual(c.cmd("GET", "k"), "v\u00e9".encode())

    def test_pubsub_with_send_and_read(self):
        with self.redis.client() as sub:
            sub.send("SUBSCRIBE", "imgate-test")
            self.assertEqual(sub.read(), ["subscribe", "imgate-test", 1])
            with self.assertRaises(socket.timeout):
                sub.read(timeout=0.2)
            self.assertEqual(self.redis.cmd("PUBLISH", "imgate-test", "hello"), 1)
            self.assertEqual(sub.read(), ["message", "imgate-test", "hello"])

    def test_stop_and_restart_on_the_same_port(self):
        r = self.redis
        port, pid = r.port, r.pid
        r.cmd("SET", "k", "v")
        self.assertEqual(r.stop(), 0, r.log()[-2000:])
        self.assertFalse(r.running)
        self.assertFalse(alive(pid))
        with self.assertRaises(OSError):
            r.cmd("PING")
        r.start()
        self.assertEqual((r.port, r.addr), (port, "%s:%d" % (HOST, port)))
        self.assertNotEqual(r.pid, pid)
        self.assertEqual(r.cmd("KEYS", "*"), [], "nothing persisted across the restart")
        self.assertFalse(os.path.exists(os.path.join(r.dir, "dump.rdb")))
        # A crash instead of a shutdown; restart() works from either state.
        self.assertEqual(r.stop(signal.SIGKILL), -signal.SIGKILL)
        r.restart()
        self.assertEqual(r.cmd("PING"), "PONG")

    def test_password(self):
        with Redis(password="s3cret") as r:
            self.assertEqual(r.cmd("SET", "k", "v"), "OK")
            with redisproc.Resp(r.port) as anon:
                with self.assertRaisesRegex(RedisError, "NOAUTH"):
                    anon.cmd("GET", "k")
            with self.assertRaisesRegex(RedisError, "WRONGPASS"):
                redisproc.Resp(r.port, password="wrong")
            r.restart()
            self.assertEqual(r.cmd("PING"), "PONG")

    def test_two_instances_side_by_side(self):
        with Redis() as other:
            self.assertNotEqual(other.port, self.redis.port)
            other.cmd("SET", "only", "there")
            self.assertIsNone(self.redis.cmd("GET", "only"))
            pid, d = other.pid, other.dir
        self.assertFalse(alive(pid))
        self.assertFalse(os.path.exists(d), "its directory was removed")


CHILD = """
import os, signal, sys
sys.path.insert(0, %r)
from redisproc import Redis
r = Redis().start()
print(r.pid, r.dir, flush=True)
if sys.argv[1] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


class NoLeftoversTest(unittest.TestCase):
    def run_child(self, how):
        code = CHILD % os.path.dirname(os.path.abspath(redisproc.__file__))
        out = subprocess.run([sys.executable, "-c", code, how], capture_output=True, text=True,
                             timeout=30)
        pid, d = out.stdout.split()
        self.addCleanup(shutil.rmtree, d, True)
        return out, int(pid), d

    def test_atexit_stops_what_a_test_left_running(self):
        out, pid, d = self.run_child("exit")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(wait_gone([pid]), [], "redis-server still running after exit")
        self.assertFalse(os.path.exists(d))

    @unittest.skipUnless(redisproc.SETPRIV, "needs setpriv (util-linux) for --pdeathsig")
    def test_killed_test_process_takes_redis_along(self):
        out, pid, _ = self.run_child("kill")
        self.assertEqual(out.returncode, -signal.SIGKILL, out.stderr)
        self.assertEqual(wait_gone([pid]), [], "redis-server outlived a SIGKILLed test process")


if __name__ == "__main__":
    unittest.main()
