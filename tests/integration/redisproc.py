"""Starts a real redis-server on a free loopback port for the cluster tests, and talks to it.

    with Redis() as redis:                       # or Redis(password="s3cret")
        node = Node(redis__addr=redis.addr)      # harness.Node: --redis.addr 127.0.0.1:P
        redis.cmd("KEYS", "*")                   # decoded reply: list of str
        redis.stop()                             # Redis goes away while the nodes run...
        redis.start()                            # ...and comes back on the same port, empty

Nothing is persisted (--save '' --appendonly no): a restarted Redis has no keys, as after a
crash of a cache-only Redis. Each instance has its own port and directory, so tests can run
side by side.

Also here: the process-lifetime helpers that nginxproc.py uses too (spawn, stop_process, the
at-exit registry). A child runs in its own process group, is stopped by its PID (then the group
is killed if it does not exit in time), and every child still running when the interpreter
exits is stopped by atexit. Spawned from the main thread, a child also gets a parent-death
signal, so that it goes even when the test process is SIGKILLed (a ctest timeout). From other
threads it does not: Linux sends that signal when the spawning thread ends, not the process.

Every wait is bounded; every socket has a timeout.
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

HOST = "127.0.0.1"
REDIS_SERVER = os.environ.get("IMGATE_REDIS_SERVER") or "/usr/bin/redis-server"
SETPRIV = shutil.which("setpriv")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ---- child processes ----

_live = set()
_live_lock = threading.Lock()


def track(obj):
    """Remembers an object with a cleanup() method until forget(); atexit cleans what is left."""
    with _live_lock:
        _live.add(obj)


def forget(obj):
    with _live_lock:
        _live.discard(obj)


@atexit.register
def _cleanup_all():
    with _live_lock:
        objs = list(_live)
    for obj in objs:
        try:
            obj.cleanup()
        except Exception:       # at exit: clean up the others anyway
            pass


def spawn(args, log_path, cwd, death_signal="TERM"):
    """Starts args in a new process group (session), stdout and stderr to log_path. Returns
    the Popen."""
    if SETPRIV and threading.current_thread() is threading.main_thread():
        # setpriv execs the program, so the PID is the program's own.
        args = [SETPRIV, "--pdeathsig", death_signal, "--"] + list(args)
    with open(log_path, "ab") as log:
        return subprocess.Popen(args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=log, start_new_session=True)


def stop_process(proc, sig=signal.SIGTERM, timeout=10):
    """Sends sig to proc and waits up to timeout for it to exit; then SIGKILLs its process group
    (whatever it started too). Returns the exit status, None if it had to be killed.

    The group is only signalled while proc is a zombie or alive, i.e. while its PID (= the
    group's ID) cannot have been reused by anyone else."""
    if proc.returncode is not None:
        return proc.returncode
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    exited = False
    while time.monotonic() < deadline:
        # WNOWAIT: look without reaping, so the PID stays ours until the group is dealt with.
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is not None:
            exited = True
            break
        time.sleep(0.02)
    try:
        os.killpg(proc.pid, signal.SIGKILL)    # stragglers (nginx workers), or all if stuck
    except (ProcessLookupError, PermissionError):
        pass
    code = proc.wait(5)
    return code if exited else None


# ---- RESP client ----

class RedisError(Exception):
    """An error reply (-ERR ..., -NOAUTH ...)."""


class Resp:
    """A minimal RESP2 client on one blocking socket. cmd(*args) sends one command and returns
    its reply: simple strings as str, integers as int, bulk strings as str (bytes if not
    UTF-8; always bytes with decode=False), nil as None, arrays as lists. An error reply raises
    RedisError (inside an array it is returned as a RedisError in place). send()/read() split
    the two halves, for SUBSCRIBE and pipelines."""

    def __init__(self, port, host=HOST, password=None, timeout=5, decode=True):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.decode = decode
        self.buf = b""
        if password:
            try:
                self.cmd("AUTH", password)
            except BaseException:
                self.sock.close()
                raise

    def send(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))

    def read(self, timeout=None):
        """The next reply; socket.timeout if none within timeout (default: the client's)."""
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        reply = self._reply()
        if isinstance(reply, RedisError):
            raise reply
        return reply

    def cmd(self, *args):
        self.send(*args)
        return self.read()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fill(self):
        c = self.sock.recv(65536)
        if not c:
            raise ConnectionError("Redis closed the connection")
        self.buf += c

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            if self.decode:
                try:
                    return data.decode()
                except UnicodeDecodeError:
                    pass
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RedisError("not a RESP reply: %r" % (line[:100],))


# ---- the server ----

class Redis:
    """One redis-server process on 127.0.0.1. The port is chosen on the first start() and kept
    for every later start(), so that nodes configured with `addr` find it again."""

    def __init__(self, password=None, args=()):
        self.password = password
        self.args = list(args)      # more redis-server options, e.g. ["--maxclients", "100"]
        self.port = None
        self.dir = tempfile.mkdtemp(prefix="imgate-redis-")
        self.log_path = os.path.join(self.dir, "redis.log")
        self.proc = None
        self._client = None

    @property
    def addr(self):
        """host:port, the value of imgate's redis.addr."""
        return "%s:%d" % (HOST, self.port)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=10):
        """Starts redis-server and returns self once it answers PING. On the first start a port
        that turns out to be taken is replaced by another (twice at most); later starts must
        get the same port back or fail."""
        assert not self.running, "already running"
        first = self.port is None
        for attempt in range(3):
            if first:
                self.port = free_port()
            args = [REDIS_SERVER, "--port", str(self.port), "--bind", HOST, "--save", "",
                    "--appendonly", "no", "--dir", self.dir, "--logfile", self.log_path,
                    "--daemonize", "no"]
            if self.password:
                args += ["--requirepass", self.password]
            log_start = len(self.log())
            self.proc = spawn(args + self.args, self.log_path, self.dir, "KILL")
            track(self)
            try:
                self._wait_ready(timeout)
                return self
            except RuntimeError:
                busy = (self.proc.poll() is not None
                        and "Address already in use" in self.log()[log_start:])
                self.stop()
                if not (first and busy) or attempt == 2:
                    raise

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited (%s) on port %d:\n%s" % (
                    self.proc.returncode, self.port, self.log()[-3000:]))
            try:
                with Resp(self.port, password=self.password, timeout=0.5) as c:
                    if c.cmd("PING") == "PONG":
                        return
            except (OSError, RedisError):
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server on port %d did not answer PING within %.0f s:\n%s" % (
            self.port, timeout, self.log()[-3000:]))

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Stops redis-server (SIGTERM: its normal shutdown; sig=SIGKILL for a crash). Returns
        its exit status, None if it had to be killed. The port stays reserved for start()."""
        if self._client:
            self._client.close()
            self._client = None
        if not self.proc:
            return None
        code = stop_process(self.proc, sig, timeout)
        self.proc = None
        forget(self)
        return code

    def restart(self, timeout=10):
        self.stop()
        return self.start(timeout)

    def client(self, **kw):
        """A new Resp connection (authenticated if a password is set); the caller closes it."""
        kw.setdefault("password", self.password)
        return Resp(self.port, **kw)

    def cmd(self, *args):
        """One command on a shared connection, opened on first use and closed by stop()."""
        if self._client is None:
            self._client = self.client()
        try:
            return self._client.cmd(*args)
        except (OSError, ConnectionError):
            self._client.close()
            self._client = None
            raise

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc):
        self.cleanup()
