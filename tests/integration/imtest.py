"""Helpers shared by the IM-level integration tests (protocol, delivery, HTTP API, fan-out,
timeouts, slow consumers, shutdown). Built on harness.py; kept in a module of its own so that
harness.py stays as it is for the other tests.

Everything here is bounded: every wait has a deadline, every socket a timeout.
"""

import http.client
import json
import os
import socket
import struct
import threading
import time
import unittest
import urllib.parse
import uuid

from harness import HOST, Node, RawWS, ws_key

# Exact codeMsg texts of the contract (docs/behaviour.md, "IM protocol").
CODE_MSG = {
    200: "Success",
    1000: "Not logged in",
    1001: "Invalid parameter",
    1002: "Illegal user ID",
    1003: "Unauthorized",
    1004: "System error",
    1009: "Operation failed",
    1010: "Route does not exist",
}

COUNTER_KEYS = (
    "connectionsAccepted", "connectionsRejected", "handshakesFailed", "handshakeTimeouts",
    "protocolErrors", "badUtf8", "messagesTooBig", "slowConsumers", "heartbeatTimeouts",
    "loginTimeouts", "authFailures",
    "closeTimeouts", "httpRequests", "httpErrors", "badRequests", "messagesIn", "messagesOut",
    "bytesIn", "bytesOut", "duplicatesDropped",
)


def uid(prefix="u"):
    """A short unique userID / msgID (well under the 20-byte userID limit)."""
    return "%s%s" % (prefix, uuid.uuid4().hex[:10])


def wait_until(pred, timeout=5.0, interval=0.05, what="condition"):
    """Polls pred() until it returns something truthy and returns that; AssertionError after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def response(seq, cmd, code, data="null"):
    """The exact bytes of a reply envelope; `data` is raw JSON text."""
    return ('{"seq":%s,"cmd":%s,"response":{"code":%d,"codeMsg":%s,"data":%s}}' % (
        json.dumps(seq, ensure_ascii=False), json.dumps(cmd, ensure_ascii=False), code,
        json.dumps(CODE_MSG[code]), data)).encode()


def go_json_string(s):
    """s as Go's encoding/json writes it (the wire format of the original): non-ASCII kept,
    < > & escaped as \\u003c \\u003e \\u0026, U+2028/2029 escaped."""
    out = json.dumps(s, ensure_ascii=False)
    return (out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def push_bytes(seq, cmd, msg, frm, target=""):
    """The exact bytes of a push envelope. `target` is the receiver of a direct message
    (sendMessage), "" for room pushes."""
    return ('{"seq":%s,"cmd":%s,"response":{"code":200,"codeMsg":"Ok","data":'
            '{"target":%s,"type":"text","msg":%s,"from":%s}}}' % (
                go_json_string(seq), go_json_string(cmd), go_json_string(target),
                go_json_string(msg), go_json_string(frm))).encode()


# ---- HTTP ----

class Http:
    """An HTTP/1.1 keep-alive client on one connection (http.client). Returns
    (status, headers with lower-case keys, parsed JSON or text, raw body bytes)."""

    def __init__(self, port, timeout=10):
        self.port = port
        self.conn = http.client.HTTPConnection(HOST, port, timeout=timeout)

    def request(self, method, path, params=None, body=None, headers=None):
        hdrs = dict(headers or {})
        if params is not None and method in ("GET", "DELETE", "OPTIONS", "HEAD"):
            path += "?" + urllib.parse.urlencode(params)
        elif params is not None:
            body = urllib.parse.urlencode(params)
            hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if isinstance(body, str):
            body = body.encode()
        self.conn.request(method, path, body=body, headers=hdrs)
        r = self.conn.getresponse()
        raw = r.read()
        h = {k.lower(): v for k, v in r.getheaders()}
        try:
            payload = json.loads(raw.decode("utf-8"))
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        return r.status, h, payload, raw

    def get(self, path, params=None, **kw):
        return self.request("GET", path, params, **kw)

    def post(self, path, params, **kw):
        return self.request("POST", path, params, **kw)

    def local_port(self):
        """The client-side port of the current TCP connection (None if none is open)."""
        return self.conn.sock.getsockname()[1] if self.conn.sock else None

    def close(self):
        self.conn.close()


def send_message(http, app, user, message, msg_id=None, frm=None, path="/user/sendMessage"):
    params = {"appID": app, "userID": user, "message": message}
    if msg_id is not None:
        params["msgID"] = msg_id
    if frm is not None:
        params["from"] = frm
    status, _, body, _ = http.post(path, params)
    return status, body


def send_all(http, app, message, msg_id=None, sender=None):
    params = {"appID": app, "message": message}
    if sender is not None:
        params["userID"] = sender
    if msg_id is not None:
        params["msgID"] = msg_id
    status, _, body, _ = http.post("/user/sendMessageAll", params)
    return status, body


def parse_http_responses(data):
    """Splits a byte stream of HTTP/1.1 responses (Content-Length or chunked bodies, or none
    for 204/304) into [(status, headers lower-case dict, body bytes)]. Stops at an incomplete
    response."""
    out = []
    while data:
        i = data.find(b"\r\n\r\n")
        if i < 0:
            break
        head = data[:i].decode("latin-1").split("\r\n")
        rest = data[i + 4:]
        status = int(head[0].split(" ", 2)[1])
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "content-length" in headers:
            n = int(headers["content-length"])
            if len(rest) < n:
                break
            body, rest = rest[:n], rest[n:]
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                j = rest.find(b"\r\n")
                if j < 0:
                    return out
                n = int(rest[:j].split(b";")[0], 16)
                chunk = rest[j + 2:j + 2 + n]
                rest = rest[j + 2 + n + 2:]
                if n == 0:
                    break
                body += chunk
        else:
            body, rest = rest, b""
        out.append((status, headers, body))
        data = rest
    return out



def http_exchange(port, request_bytes, responses=1, timeout=5, chunks=None, gap=0):
    """Sends raw bytes (or the list `chunks`, one send each, `gap` seconds apart) on a new
    connection and reads until `responses` complete responses have arrived, the server closes,
    or `timeout` passes. Returns (parsed responses, raw bytes, closed_by_server)."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    deadline = time.monotonic() + timeout
    data, closed = b"", False
    try:
        for c in (chunks if chunks is not None else [request_bytes]):
            s.sendall(c)
            if gap:
                time.sleep(gap)
        while len(parse_http_responses(data)) < responses:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                c = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not c:
                closed = True
                break
            data += c
        return parse_http_responses(data), data, closed
    finally:
        s.close()


def server_closes(port_or_sock, timeout=3):
    """For a socket: True if the server ends the connection (EOF or reset) within timeout."""
    s = port_or_sock
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not s.recv(65536):
                return True
    except socket.timeout:
        return False
    except OSError:
        return True
    return False

# ---- WebSocket ----

def raw_ws(port, rcvbuf=None, path="/acc", timeout=5):
    """A RawWS whose socket we create ourselves, so that SO_RCVBUF can be set before connect
    (the receive window is fixed at the SYN)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect((HOST, port))
    ws = RawWS.__new__(RawWS)
    ws.sock = sock
    ws.buf = b""
    sock.sendall((
        "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
        % (path, HOST, port, ws_key())).encode())
    ws.response_head = ws._read_until(b"\r\n\r\n").decode("latin-1")
    if ws.response_head.split(" ", 2)[1] != "101":
        raise RuntimeError("handshake failed: " + ws.response_head)
    return ws


def close_payload(code, reason=""):
    return struct.pack("!H", code) + reason.encode()


def recv_data(ws, timeout=5):
    """Next data frame of a RawWS as raw bytes (control frames other than close skipped);
    ConnectionError on a close frame or EOF, socket.timeout after `timeout`."""
    ws.sock.settimeout(timeout)
    while True:
        _, op, payload = ws.recv_frame()
        if op in (0x1, 0x2):
            return payload
        if op == 0x8:
            raise ConnectionError("closed: %r" % (payload,))


class Client:
    """A RawWS with a background reader thread: every frame the server sends is recorded, so a
    test can wait for a given message and then look at everything that came before it.

    msgs: parsed JSON data messages in arrival order; raw: their exact payload bytes;
    close: (code, reason) once a close frame arrived; eof: True once the server ended TCP."""

    def __init__(self, port, user=None, app=101, rcvbuf=None):
        self.ws = raw_ws(port, rcvbuf=rcvbuf)
        self.user, self.app = user, app
        self.msgs, self.raw, self.opcodes = [], [], []
        self.close = None
        self.close_at = None     # time.monotonic() when the close frame arrived
        self.eof = False
        self.eof_at = None
        self.error = None        # set if the server sent something that is not a valid frame
        self.login_reply = None
        if user is not None:
            self.ws.sock.settimeout(5)
            self.login_reply = self.ws.login(user, app)
            if self.login_reply["response"]["code"] != 200:
                self.ws.close()
                raise AssertionError("login %s/%s failed: %r" % (app, user, self.login_reply))
        self.cond = threading.Condition()
        self.ws.sock.settimeout(None)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while True:
                _, op, payload = self.ws.recv_frame()
                with self.cond:
                    if op in (0x1, 0x2):
                        try:
                            self.msgs.append(json.loads(payload))
                        except ValueError:
                            self.msgs.append({"__unparsable__": payload})
                        self.raw.append(payload)
                        self.opcodes.append(op)
                    elif op == 0x8:
                        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                        self.close = (code, payload[2:].decode("utf-8", "replace"))
                        self.close_at = time.monotonic()
                    self.cond.notify_all()
        except (OSError, ConnectionError):
            pass
        except AssertionError as e:       # e.g. a masked server frame: a server bug
            self.error = "bad frame from the server: %s" % e
        with self.cond:
            self.eof = True
            self.eof_at = time.monotonic()
            self.cond.notify_all()

    def send(self, obj):
        self.ws.send_json(obj)

    def wait_for(self, pred, timeout=5, what="message"):
        """Index of the first recorded message matching pred; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i, m in enumerate(self.msgs):
                    if pred(m):
                        return i
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    raise AssertionError("%s: no %s within %.1f s; got %r (close=%r eof=%r%s)" % (
                        self.user, what, timeout, self.msgs[-5:], self.close, self.eof,
                        " " + self.error if self.error else ""))
                self.cond.wait(min(left, 0.2))

    def wait_seq(self, seq, cmd=None, timeout=5):
        return self.wait_for(lambda m: m.get("seq") == seq and (cmd is None or m.get("cmd") == cmd),
                             timeout, "seq %r" % (seq,))

    def request(self, cmd, data=None, seq=None, timeout=5):
        seq = seq or uid("q")
        msg = {"seq": seq, "cmd": cmd}
        if data is not None:
            msg["data"] = data
        self.send(msg)
        return self.msgs[self.wait_for(lambda m: m.get("seq") == seq and m.get("cmd") == cmd
                                       and "response" in m, timeout, "reply %r" % seq)]

    def pushes(self, cmd=None, upto=None):
        """Recorded pushes (cmd msg/enter/exit) before index `upto`, optionally of one cmd."""
        with self.cond:
            ms = self.msgs[:upto] if upto is not None else list(self.msgs)
        return [m for m in ms if m.get("cmd") in ("msg", "enter", "exit")
                and (cmd is None or m.get("cmd") == cmd)]

    def wait_closed(self, timeout=5):
        with self.cond:
            self.cond.wait_for(lambda: self.close is not None or self.eof, timeout)
            return self.close

    def shutdown(self):
        """Closes our side without a close handshake and stops the reader."""
        try:
            self.ws.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.ws.close()
        self.thread.join(5)

    def close_gracefully(self, code=1000, timeout=5):
        """Sends a close frame, waits for the server's echo and EOF, then closes the socket."""
        try:
            self.ws.send_frame(0x8, close_payload(code))
            with self.cond:
                self.cond.wait_for(lambda: self.eof, timeout)
        except OSError:
            pass
        self.shutdown()


def under_sanitizer(pid):
    """ASan pads allocations and keeps freed ones in quarantine, TSan shadows memory: RSS is not
    comparable under either."""
    with open("/proc/%d/maps" % pid) as f:
        maps = f.read()
    binary = os.environ.get("IMGATE_BIN", "")
    return any(lib in maps for lib in ("libasan", "libtsan")) or \
        "asan" in binary or "tsan" in binary


def state_counters(node):
    return node.state()["counters"]


class NodeTestCase(unittest.TestCase):
    """One node for the whole class, started with `node_options`; at the end it must stop on
    SIGTERM with exit code 0 (under ASan that also catches leaks)."""

    node_options = {}

    @classmethod
    def setUpClass(cls):
        cls.node = Node(**cls.node_options)
        try:
            cls.node.start()
        except Exception:
            cls.node.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        code = cls.node.stop()
        err = cls.node.stderr()
        cls.node.cleanup()
        if code != 0:
            raise AssertionError("imgate exit code %r, stderr:\n%s" % (code, err[-4000:]))

    def setUp(self):
        self._http = None
        self._clients = []

    def tearDown(self):
        for c in self._clients:
            c.shutdown()
        if self._http:
            self._http.close()

    @property
    def http(self):
        if self._http is None:
            self._http = Http(self.node.http_port)
        return self._http

    def client(self, user=None, app=101, **kw):
        """A Client (reader thread) on the WebSocket port, logged in if `user` is given; closed
        at the end of the test."""
        c = Client(self.node.ws_port, user, app, **kw)
        self._clients.append(c)
        return c

    def raw(self, **kw):
        ws = raw_ws(self.node.ws_port, **kw)
        self.addCleanup(ws.close)
        return ws
