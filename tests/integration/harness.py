"""Starts a real imgate node on free loopback ports and talks to it.

Used by every integration test. The node is the binary the build produced ($IMGATE_BIN);
nothing is mocked. Each Node gets its own ports, working directory and log files, so tests can
run side by side.
"""

import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

BIN = os.environ.get("IMGATE_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "imgate")
HOST = "127.0.0.1"
SETPRIV = shutil.which("setpriv")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Node:
    """One imgate process. `options` are config keys (app.heartbeatTimeout=...) passed as flags."""

    def __init__(self, **options):
        self.http_port = free_port()
        self.ws_port = free_port()
        self.dir = tempfile.mkdtemp(prefix="imgate-test-")
        self.options = {
            "app.bindAddress": HOST,
            "app.httpPort": self.http_port,
            "app.webSocketPort": self.ws_port,
            "app.logFile": os.path.join(self.dir, "access.log"),
            "app.logLevel": "info",
            "app.workers": 2,
        }
        for k, v in options.items():
            self.options[k.replace("__", ".")] = v
        self.proc = None
        self.stderr_path = os.path.join(self.dir, "stderr.log")

    def start(self, timeout=10):
        args = [BIN]
        for k, v in self.options.items():
            if isinstance(v, (list, tuple)):
                v = ",".join(str(x) for x in v)
            args += ["--" + k, str(v)]
        self._stderr = open(self.stderr_path, "wb")
        # cwd is the temp dir so that no config/app.yaml from elsewhere is picked up.
        if SETPRIV and threading.current_thread() is threading.main_thread():
            # The node dies with the test process even when a ctest timeout SIGKILLs it (setpriv
            # execs imgate: the PID stays the node's). Only from the main thread: Linux sends the
            # signal when the spawning thread ends.
            args = [SETPRIV, "--pdeathsig", "KILL", "--"] + args
        self.proc = subprocess.Popen(args, cwd=self.dir, stdout=self._stderr, stderr=self._stderr)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("imgate exited early (%s):\n%s" % (self.proc.returncode, self.stderr()))
            try:
                with socket.create_connection((HOST, self.http_port), timeout=0.2):
                    pass
                with socket.create_connection((HOST, self.ws_port), timeout=0.2):
                    pass
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("imgate did not start listening:\n" + self.stderr())

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Stops the node and returns its exit code (None if it had to be killed)."""
        if not self.proc:
            return None
        code = self.proc.poll()
        if code is None:
            self.proc.send_signal(sig)
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                code = None
        self._stderr.close()
        self.proc = None
        return code

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        code = self.stop()
        leak_text = self.stderr()
        shutil.rmtree(self.dir, ignore_errors=True)
        # Under ASan the process exits non-zero on leaks or errors; make that fail the test.
        if exc[0] is None:
            assert code == 0, "imgate exit code %r, stderr:\n%s" % (code, leak_text)

    # ---- URLs ----
    @property
    def ws_url(self):
        return "ws://%s:%d/acc" % (HOST, self.ws_port)

    def http(self, method, path, params=None, body=None, headers=None, port=None, timeout=10):
        """Returns (status, headers dict (lower-case keys), parsed JSON or raw text)."""
        port = port or self.http_port
        url = "http://%s:%d%s" % (HOST, port, path)
        data = None
        hdrs = dict(headers or {})
        if params is not None and method == "GET":
            url += "?" + urllib.parse.urlencode(params)
        elif params is not None:
            data = urllib.parse.urlencode(params).encode()
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if body is not None:
            data = body if isinstance(body, bytes) else body.encode()
        req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, h, raw = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, h, raw = e.code, e.headers, e.read()
        text = raw.decode("utf-8", "replace")
        try:
            payload = json.loads(text)
        except ValueError:
            payload = text
        return status, {k.lower(): v for k, v in h.items()}, payload

    def state(self, debug=False):
        status, _, body = self.http("GET", "/system/state", {"isDebug": "true"} if debug else None)
        assert status == 200, body
        return body["data"]


# ---- a raw WebSocket client over a plain socket, for the cases a library would refuse ----

def ws_key():
    return base64.b64encode(os.urandom(16)).decode()


def raw_request(port, request_bytes, timeout=5):
    """Sends raw bytes to a port and returns everything read until the server closes or
    `timeout` passes."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        s.sendall(request_bytes)
        chunks = []
        while True:
            try:
                c = s.recv(65536)
            except socket.timeout:
                break
            if not c:
                break
            chunks.append(c)
        return b"".join(chunks)
    finally:
        s.close()


class RawWS:
    """A minimal WebSocket client on a blocking socket. It can send any bytes at all."""

    def __init__(self, port, path="/acc", timeout=5, headers=None):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        key = ws_key()
        extra = "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
        self.sock.sendall((
            "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n"
            % (path, HOST, port, key, extra)).encode())
        self.buf = b""
        head = self._read_until(b"\r\n\r\n")
        self.response_head = head.decode("latin-1")
        status = self.response_head.split(" ", 2)[1]
        if status != "101":
            raise RuntimeError("handshake failed: " + self.response_head)

    def _read_until(self, marker):
        while marker not in self.buf:
            c = self.sock.recv(65536)
            if not c:
                raise ConnectionError("closed during handshake")
            self.buf += c
        i = self.buf.index(marker) + len(marker)
        head, self.buf = self.buf[:i], self.buf[i:]
        return head

    def _need(self, n):
        while len(self.buf) < n:
            c = self.sock.recv(65536)
            if not c:
                raise ConnectionError("connection closed by server")
            self.buf += c

    @staticmethod
    def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, mask_key=None, length=None):
        if isinstance(payload, str):
            payload = payload.encode()
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload) if length is None else length
        if n < 126:
            head = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
        else:
            head = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
        if not mask:
            return head + payload
        key = mask_key or os.urandom(4)
        masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return head + key + masked

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(self.frame(opcode, payload, **kw))

    def send_text(self, text):
        self.send_frame(0x1, text)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def recv_frame(self):
        """Returns (fin, opcode, payload). Raises ConnectionError on EOF, socket.timeout."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4)
            n = struct.unpack("!H", self.buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            off = 10
        assert not (b1 & 0x80), "server frames must not be masked"
        self._need(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_message(self):
        """Next data message as (opcode, bytes), answering nothing; control frames are returned
        as they come."""
        return self.recv_frame()[1:]

    def recv_json(self):
        while True:
            op, payload = self.recv_message()
            if op in (0x1, 0x2):
                return json.loads(payload)
            if op == 0x8:
                raise ConnectionError("closed: %r" % (payload,))

    def request(self, cmd, data=None, seq="1"):
        msg = {"seq": seq, "cmd": cmd}
        if data is not None:
            msg["data"] = data
        self.send_json(msg)
        return self.recv_json()

    def login(self, user, app=101, seq="login"):
        return self.request("login", {"userID": user, "appID": app}, seq)

    def expect_close(self, timeout=5):
        """Reads until a close frame; returns (code, reason). Raises if the socket just ends."""
        self.sock.settimeout(timeout)
        while True:
            fin, op, payload = self.recv_frame()
            if op == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                return code, payload[2:].decode("utf-8", "replace")

    def wait_eof(self, timeout=5):
        """True if the server closes the TCP connection within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                c = self.sock.recv(65536)
                if not c:
                    return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
