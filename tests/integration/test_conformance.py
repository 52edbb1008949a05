"""RFC 6455 conformance of the node's WebSocket layer, modelled on the Autobahn TestSuite's case
groups 1-7 (framing, pings/pongs, reserved bits, opcodes, fragmentation, UTF-8, close handling),
plus the message-size limits and masking of docs/behaviour.md ("Frames").

imgate is an IM gateway, not an echo server, so where Autobahn expects an echo we send a request
and expect its reply: `{"seq":"N","cmd":"ping"}` (padded with spaces to the length under test)
gets `{"seq":"N","cmd":"ping","response":{"code":200,...,"data":"pong"}}`, and a message that is
not a request gets a 1001 envelope. The point of every case is the framing, not the IM protocol.

Every closing case checks the close code, that nothing follows the server's close frame, and that
the TCP connection ends. The client answers a server-initiated close with its own close frame and
a FIN (as a browser would), so a stream the server can no longer parse still ends at once;
test_7_server_close_without_reply_drops_tcp checks the app.closeTimeout path on its own.

Run: IMGATE_BIN=build/imgate /usr/bin/python3 -m unittest -v test_conformance
"""

import json
import socket
import struct
import time
import unittest

from imtest import NodeTestCase
from harness import Node, RawWS

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
# RawWS.frame(rsv=...) takes the three bits as a number: RSV1 is the high one.
RSV1, RSV2, RSV3 = 4, 2, 1

MAX_MESSAGE = 65536  # app.maxMessageSize default (64 KiB): the largest message accepted
CLOSE_TIMEOUT = 1    # app.closeTimeout for the shared node, seconds; keeps the slow path short
WAIT = 5             # seconds any single expected frame may take


def ping_request(seq, length=None):
    """The bytes of `{"seq":seq,"cmd":"ping"}`, padded with spaces to exactly `length` bytes."""
    body = json.dumps({"seq": seq, "cmd": "ping"}, ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")
    if length is not None:
        assert len(body) <= length, (body, length)
        body += b" " * (length - len(body))
    return body


def close_payload(code, reason=b""):
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


def frames(*specs):
    """Concatenated masked frames; each spec is (opcode, payload) or (opcode, payload, kwargs)."""
    out = b""
    for spec in specs:
        kw = spec[2] if len(spec) > 2 else {}
        out += RawWS.frame(spec[0], spec[1], **kw)
    return out


class WsCase(NodeTestCase):
    """One node for the whole class; every test opens its own connections."""
    node_options = {"app.closeTimeout": CLOSE_TIMEOUT}

    # ---- connections and raw writes ----

    def connect(self):
        ws = RawWS(self.node.ws_port, timeout=WAIT)
        # Small writes must leave as separate TCP segments for the "chopped" cases.
        ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.addCleanup(ws.close)
        return ws

    @staticmethod
    def send(ws, data):
        ws.sock.sendall(data)

    @staticmethod
    def send_chopped(ws, data, chunk=1, delay=0.0):
        """Sends data in pieces of `chunk` bytes, each its own write (and segment)."""
        for i in range(0, len(data), chunk):
            ws.sock.sendall(data[i:i + chunk])
            if delay:
                time.sleep(delay)

    # ---- reading ----

    def next_frame(self, ws, timeout=WAIT, what="a frame"):
        ws.sock.settimeout(timeout)
        try:
            return ws.recv_frame()
        except socket.timeout:
            self.fail("waited %.1f s for %s, got nothing" % (timeout, what))
        except ConnectionError as e:
            self.fail("connection ended while waiting for %s: %s" % (what, e))

    def expect_response(self, ws, seq, cmd="ping", code=200, timeout=WAIT):
        """The next frame must be a complete text frame carrying the reply envelope."""
        fin, op, payload = self.next_frame(ws, timeout, "the reply to seq %r" % (seq,))
        self.assertEqual((fin, op), (True, OP_TEXT),
                         "expected a text reply, got fin=%s opcode=%#x payload=%r"
                         % (fin, op, payload[:200]))
        msg = json.loads(payload.decode("utf-8"))
        self.assertEqual(msg.get("seq"), seq, msg)
        self.assertEqual(msg.get("cmd"), cmd, msg)
        self.assertEqual(msg["response"]["code"], code, msg)
        if code == 200 and cmd == "ping":
            self.assertEqual(msg["response"]["data"], "pong", msg)
        return msg

    def expect_ping_reply(self, ws, seq, timeout=WAIT):
        return self.expect_response(ws, seq, "ping", 200, timeout)

    def expect_bad_request(self, ws, timeout=WAIT):
        """A 1001 envelope for a message that is not a request (seq and cmd unreadable)."""
        return self.expect_response(ws, "", "", 1001, timeout)

    def expect_pong(self, ws, payload, timeout=WAIT):
        fin, op, got = self.next_frame(ws, timeout, "a pong")
        self.assertEqual((fin, op), (True, OP_PONG),
                         "expected a pong, got fin=%s opcode=%#x payload=%r" % (fin, op, got[:200]))
        self.assertEqual(got, payload)

    def read_rest(self, ws, timeout):
        """Reads until EOF or timeout; returns (eof, bytes that came, incl. buffered ones)."""
        extra, ws.buf = ws.buf, b""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False, extra
            ws.sock.settimeout(left)
            try:
                c = ws.sock.recv(65536)
            except socket.timeout:
                return False, extra
            except ConnectionResetError:
                return True, extra
            if not c:
                return True, extra
            extra += c

    def expect_tcp_end(self, ws, timeout=CLOSE_TIMEOUT + 2, after="the close"):
        eof, extra = self.read_rest(ws, timeout)
        self.assertEqual(extra, b"", "the server sent bytes after %s" % after)
        self.assertTrue(eof, "TCP still open %.1f s after %s" % (timeout, after))

    def wait_close_frame(self, ws, timeout=WAIT):
        """Reads until the server's close frame. Returns (close payload, frames before it)."""
        deadline = time.monotonic() + timeout
        before = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail("no close frame within %.1f s; frames before: %r" % (timeout, before))
            ws.sock.settimeout(left)
            try:
                fin, op, payload = ws.recv_frame()
            except socket.timeout:
                self.fail("no close frame within %.1f s; frames before: %r" % (timeout, before))
            except ConnectionError as e:
                self.fail("TCP ended without a close frame (%s); frames before: %r" % (e, before))
            if op == OP_CLOSE:
                self.assertTrue(fin, "close frame without FIN")
                return payload, before
            before.append((op, payload[:200]))

    def expect_close(self, ws, code, timeout=WAIT, before=()):
        """A server-initiated close: the close frame carries `code` (and a UTF-8 reason), the
        frames before it are exactly `before` (opcodes), nothing follows it, and after our
        answer (close frame + FIN) the TCP connection ends."""
        payload, got_before = self.wait_close_frame(ws, timeout)
        self.assertGreaterEqual(len(payload), 2, "close frame without a code: %r" % payload)
        got = struct.unpack("!H", payload[:2])[0]
        self.assertEqual(got, code, "close code %d (reason %r), expected %d"
                         % (got, payload[2:], code))
        payload[2:].decode("utf-8")  # the reason must be valid UTF-8
        self.assertEqual([op for op, _ in got_before], list(before),
                         "frames before the close: %r" % got_before)
        try:
            ws.sock.sendall(RawWS.frame(OP_CLOSE, close_payload(code)))
            ws.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may already have dropped the connection
        self.expect_tcp_end(ws)
        return got_before

    def expect_close_echo(self, ws, payload, timeout=WAIT, before=()):
        """A client-initiated close: the server answers with `payload` (the echoed code) and
        then closes TCP by itself, without waiting for anything more from us."""
        got, got_before = self.wait_close_frame(ws, timeout)
        self.assertEqual(got[:2], payload[:2], "close echo %r, expected code %r" % (got, payload))
        if len(payload) < 2:
            self.assertEqual(got, b"", "a close without code must be answered with an empty one")
        self.assertEqual([op for op, _ in got_before], list(before),
                         "frames before the close echo: %r" % got_before)
        self.expect_tcp_end(ws, timeout=2, after="the close echo")

    def assert_alive(self, ws, seq="alive"):
        """The connection still serves requests."""
        self.send(ws, RawWS.frame(OP_TEXT, ping_request(seq)))
        self.expect_ping_reply(ws, seq)


def add_case(cls, name, fn, doc=None):
    assert not hasattr(cls, name), name
    fn.__name__ = name
    fn.__doc__ = doc
    setattr(cls, name, fn)


# ============================================================================================
# 1  Framing: text and binary messages of the boundary lengths of the 7/16/64-bit encodings.
# ============================================================================================

class Group1Framing(WsCase):
    LENGTHS = (0, 125, 126, 127, 128, 65535, 65536)

    def check_length(self, opcode, n, chopped=False):
        ws = self.connect()
        data = RawWS.frame(opcode, ping_request(str(n), n) if n else b"")
        if chopped:
            self.send_chopped(ws, data, chunk=997)
        else:
            self.send(ws, data)
        if n == 0:
            # An empty message is not a request: the 1001 envelope is its "echo".
            self.expect_bad_request(ws)
        else:
            self.expect_ping_reply(ws, str(n))
        self.assert_alive(ws)

    def test_1_1_8_text_65536_chopped_997(self):
        """Autobahn 1.1.8: the largest message, written in 997-byte pieces."""
        self.check_length(OP_TEXT, 65536, chopped=True)

    def test_1_2_8_binary_65536_chopped_997(self):
        self.check_length(OP_BINARY, 65536, chopped=True)

    def test_1_3_1_text_65537_too_big(self):
        ws = self.connect()
        self.send(ws, RawWS.frame(OP_TEXT, ping_request("x", MAX_MESSAGE + 1)))
        self.expect_close(ws, 1009)

    def test_1_3_2_binary_65537_too_big(self):
        ws = self.connect()
        self.send(ws, RawWS.frame(OP_BINARY, ping_request("x", MAX_MESSAGE + 1)))
        self.expect_close(ws, 1009)

    def test_1_4_1_several_messages_in_one_write(self):
        ws = self.connect()
        self.send(ws, frames(*[(OP_TEXT if i % 2 else OP_BINARY, ping_request(str(i), 126 + i))
                               for i in range(20)]))
        for i in range(20):
            self.expect_ping_reply(ws, str(i))

    def test_1_4_2_json_message_that_is_not_a_request(self):
        ws = self.connect()
        self.send(ws, RawWS.frame(OP_TEXT, b'["seq","cmd"]'))
        self.expect_bad_request(ws)
        self.assert_alive(ws)


for _i, _n in enumerate(Group1Framing.LENGTHS, 1):
    add_case(Group1Framing, "test_1_1_%d_text_length_%d" % (_i, _n),
             lambda self, n=_n: self.check_length(OP_TEXT, n),
             "A text message of %d bytes gets its reply." % _n)
    add_case(Group1Framing, "test_1_2_%d_binary_length_%d" % (_i, _n),
             lambda self, n=_n: self.check_length(OP_BINARY, n),
             "A binary message of %d bytes gets its reply." % _n)


# ============================================================================================
# 2  Pings and pongs
# ============================================================================================

class Group2PingPong(WsCase):
    def ping_pong(self, payload, chopped=False):
        ws = self.connect()
        data = RawWS.frame(OP_PING, payload)
        if chopped:
            self.send_chopped(ws, data, chunk=1, delay=0.001)
        else:
            self.send(ws, data)
        self.expect_pong(ws, payload)
        self.assert_alive(ws)

    def test_2_1_ping_empty(self):
        self.ping_pong(b"")

    def test_2_2_ping_text_payload(self):
        self.ping_pong("Hello, world! κόσμε".encode("utf-8"))

    def test_2_3_ping_binary_payload(self):
        self.ping_pong(bytes([0x00, 0xFF, 0xFE, 0xFD, 0xFC, 0xFB, 0x00, 0xFF]))

    def test_2_4_ping_125_bytes(self):
        self.ping_pong(bytes(range(125)))

    def test_2_5_ping_126_bytes_is_protocol_error(self):
        ws = self.connect()
        self.send(ws, RawWS.frame(OP_PING, b"\xfe" * 126))
        self.expect_close(ws, 1002)

    def test_2_6_ping_125_bytes_chopped(self):
        self.ping_pong(b"\xfe" * 125, chopped=True)

    def test_2_7_unsolicited_pong_empty_ignored(self):
        ws = self.connect()
        self.send(ws, RawWS.frame(OP_PONG, b""))
        self.assert_alive(ws)  # the next frame is the reply, not an answer to the pong

    def test_2_8_unsolicited_pong_with_payload_ignored(self):
        ws = self.connect()
        self.send(ws, RawWS.frame(OP_PONG, b"unsolicited pong payload"))
        self.assert_alive(ws)

    def test_2_9_unsolicited_pong_then_ping(self):
        ws = self.connect()
        self.send(ws, frames((OP_PONG, b"unsolicited pong payload"), (OP_PING, b"ping payload")))
        self.expect_pong(ws, b"ping payload")
        self.assert_alive(ws)

    def test_2_10_ten_pings_in_one_write(self):
        ws = self.connect()
        self.send(ws, frames(*[(OP_PING, b"payload-%d" % i) for i in range(10)]))
        for i in range(10):
            self.expect_pong(ws, b"payload-%d" % i)
        self.assert_alive(ws)

    def test_2_11_ten_pings_chopped_with_delays(self):
        ws = self.connect()
        for i in range(10):
            self.send_chopped(ws, RawWS.frame(OP_PING, b"payload-%d" % i), chunk=1, delay=0.001)
        for i in range(10):
            self.expect_pong(ws, b"payload-%d" % i)

    def test_2_12_fragmented_ping_is_protocol_error(self):
        ws = self.connect()
        self.send(ws, frames((OP_PING, b"frag", {"fin": False}), (OP_CONT, b"ment")))
        self.expect_close(ws, 1002)

    def test_2_13_ping_between_requests_keeps_order(self):
        ws = self.connect()
        self.send(ws, frames((OP_TEXT, ping_request("a")), (OP_PING, b"p"),
                             (OP_TEXT, ping_request("b"))))
        self.expect_ping_reply(ws, "a")
        self.expect_pong(ws, b"p")
        self.expect_ping_reply(ws, "b")

    def test_2_14_ping_with_127_length_encoding_is_protocol_error(self):
        """A control frame announcing a 64-bit length (here 65536) is too long."""
        ws = self.connect()
        self.send(ws, RawWS.frame(OP_PING, b"\x00" * 65536))
        self.expect_close(ws, 1002)


# ============================================================================================
# 3  Reserved bits: no extension is negotiated, so any RSV bit is a protocol error.
# ============================================================================================

class Group3ReservedBits(WsCase):
    def rsv_case(self, rsv, opcode, after_valid, chopped=False):
        ws = self.connect()
        payload = ping_request("bad") if opcode in (OP_TEXT, OP_BINARY) else b"reserved"
        if opcode == OP_CLOSE:
            payload = close_payload(1000)
        data = RawWS.frame(opcode, payload, rsv=rsv) + RawWS.frame(OP_PING, b"after")
        if after_valid:
            data = RawWS.frame(OP_TEXT, ping_request("ok")) + data
        if chopped:
            self.send_chopped(ws, data, chunk=1, delay=0.001)
        else:
            self.send(ws, data)
        # The valid message before gets its reply; the ping after the bad frame gets no pong.
        self.expect_close(ws, 1002, before=[OP_TEXT] if after_valid else [])


_n = 0
for _rsv_name, _rsv in (("rsv1", RSV1), ("rsv2", RSV2), ("rsv3", RSV3)):
    for _op_name, _op in (("text", OP_TEXT), ("ping", OP_PING)):
        for _after in (False, True):
            _n += 1
            add_case(Group3ReservedBits, "test_3_%d_%s_%s%s" % (
                _n, _rsv_name, _op_name, "_after_valid_message" if _after else ""),
                lambda self, r=_rsv, o=_op, a=_after: self.rsv_case(r, o, a),
                "%s set on a %s frame%s -> 1002." % (
                    _rsv_name.upper(), _op_name, " sent after a valid message" if _after else ""))
for _rsv, _op, _op_name, _chopped in ((RSV1 | RSV2 | RSV3, OP_TEXT, "text", False),
                                      (RSV1 | RSV3, OP_BINARY, "binary", False),
                                      (RSV2 | RSV3, OP_PING, "ping", True),
                                      (RSV1 | RSV2, OP_CLOSE, "close", False),
                                      (RSV1, OP_PONG, "pong", False),
                                      (RSV2, OP_TEXT, "text", True)):
    _n += 1
    add_case(Group3ReservedBits, "test_3_%d_rsv%d_%s%s" % (
        _n, _rsv, _op_name, "_chopped" if _chopped else ""),
        lambda self, r=_rsv, o=_op, c=_chopped: self.rsv_case(r, o, True, c),
        "RSV=%d on a %s frame after a valid message%s -> 1002." % (
            _rsv, _op_name, ", one byte per write" if _chopped else ""))


# ============================================================================================
# 4  Reserved opcodes: 3-7 (data) and 0xB-0xF (control) -> 1002.
# ============================================================================================

class Group4Opcodes(WsCase):
    def opcode_case(self, opcode, after_valid, payload=b""):
        ws = self.connect()
        data = RawWS.frame(opcode, payload) + RawWS.frame(OP_PING, b"after")
        if after_valid:
            data = RawWS.frame(OP_TEXT, ping_request("ok")) + data
        self.send(ws, data)
        self.expect_close(ws, 1002, before=[OP_TEXT] if after_valid else [])


for _group, _ops in ((1, (3, 4, 5, 6, 7)), (2, (0xB, 0xC, 0xD, 0xE, 0xF))):
    _n = 0
    for _op in _ops:
        for _after in (False, True):
            _n += 1
            add_case(Group4Opcodes, "test_4_%d_%d_opcode_%d%s" % (
                _group, _n, _op, "_after_valid_frame" if _after else ""),
                lambda self, o=_op, a=_after: self.opcode_case(o, a, b"reserved" if a else b""),
                "Reserved opcode %d%s -> 1002." % (_op, " after a valid frame" if _after else ""))


# ============================================================================================
# 5  Fragmentation
# ============================================================================================

def fragment(opcode, payload, sizes):
    """Splits payload into fragments of the given sizes (the last takes the rest)."""
    out, pos = [], 0
    for i, size in enumerate(list(sizes) + [None]):
        part = payload[pos:] if size is None else payload[pos:pos + size]
        pos += len(part)
        last = size is None
        out.append((opcode if i == 0 else OP_CONT, part, {"fin": last}))
        if last:
            break
    return out


class Group5Fragmentation(WsCase):
    def test_5_1_text_in_two_fragments(self):
        ws = self.connect()
        self.send(ws, frames(*fragment(OP_TEXT, ping_request("two"), [8])))
        self.expect_ping_reply(ws, "two")

    def test_5_2_text_in_two_fragments_separate_writes(self):
        ws = self.connect()
        for f in fragment(OP_TEXT, ping_request("two"), [8]):
            self.send(ws, frames(f))
            time.sleep(0.02)
        self.expect_ping_reply(ws, "two")

    def test_5_3_text_in_one_byte_fragments(self):
        ws = self.connect()
        req = ping_request("bytes")
        self.send(ws, frames(*fragment(OP_TEXT, req, [1] * (len(req) - 1))))
        self.expect_ping_reply(ws, "bytes")

    def test_5_4_one_byte_fragments_each_chopped_with_delays(self):
        ws = self.connect()
        req = ping_request("slow")
        for f in fragment(OP_TEXT, req, [1] * (len(req) - 1)):
            self.send_chopped(ws, frames(f), chunk=2, delay=0.0005)
        self.expect_ping_reply(ws, "slow")

    def test_5_5_ping_between_fragments(self):
        ws = self.connect()
        a, b = fragment(OP_TEXT, ping_request("mid"), [10])
        self.send(ws, frames(a, (OP_PING, b"in between"), b))
        self.expect_pong(ws, b"in between")  # the pong comes before the reply
        self.expect_ping_reply(ws, "mid")

    def test_5_6_ping_between_fragments_separate_writes(self):
        ws = self.connect()
        a, b = fragment(OP_TEXT, ping_request("mid"), [10])
        self.send(ws, frames(a))
        self.send(ws, RawWS.frame(OP_PING, b"in between"))
        self.expect_pong(ws, b"in between")  # answered while the message is still open
        self.send(ws, frames(b))
        self.expect_ping_reply(ws, "mid")

    def test_5_7_pings_between_many_fragments(self):
        ws = self.connect()
        parts = fragment(OP_TEXT, ping_request("many"), [3] * 6)
        specs = []
        for i, f in enumerate(parts):
            specs.append(f)
            if i < len(parts) - 1:
                specs.append((OP_PING, b"p%d" % i))
        for spec in specs:
            self.send_chopped(ws, frames(spec), chunk=3, delay=0.0005)
        for i in range(len(parts) - 1):
            self.expect_pong(ws, b"p%d" % i)
        self.expect_ping_reply(ws, "many")

    def test_5_8_unsolicited_pong_between_fragments(self):
        ws = self.connect()
        a, b = fragment(OP_TEXT, ping_request("pong"), [10])
        self.send(ws, frames(a, (OP_PONG, b"x"), b))
        self.expect_ping_reply(ws, "pong")

    def test_5_9_continuation_without_start(self):
        ws = self.connect()
        self.send(ws, RawWS.frame(OP_CONT, ping_request("cont")))
        self.expect_close(ws, 1002)

    def test_5_10_continuation_without_start_fin0(self):
        ws = self.connect()
        self.send(ws, RawWS.frame(OP_CONT, b"fragment1", fin=False))
        self.expect_close(ws, 1002)

    def test_5_11_continuation_without_start_after_valid(self):
        ws = self.connect()
        self.send(ws, frames((OP_TEXT, ping_request("ok")), (OP_CONT, b"x")))
        self.expect_close(ws, 1002, before=[OP_TEXT])

    def test_5_12_continuation_without_start_chopped(self):
        ws = self.connect()
        self.send_chopped(ws, RawWS.frame(OP_CONT, b"fragment1"), chunk=1, delay=0.001)
        self.expect_close(ws, 1002)

    def test_5_13_continuation_after_complete_message(self):
        """Autobahn 5.15: a finished fragmented message, then a stray continuation."""
        ws = self.connect()
        self.send(ws, frames(*fragment(OP_TEXT, ping_request("done"), [5]),
                             (OP_CONT, b"fragment3", {"fin": False}), (OP_CONT, b"fragment4")))
        self.expect_close(ws, 1002, before=[OP_TEXT])

    def test_5_14_new_text_inside_fragmented_message(self):
        ws = self.connect()
        self.send(ws, frames((OP_TEXT, b'{"seq":"a",', {"fin": False}),
                             (OP_TEXT, ping_request("b"))))
        self.expect_close(ws, 1002)

    def test_5_15_new_binary_inside_fragmented_text(self):
        ws = self.connect()
        self.send(ws, frames((OP_TEXT, b'{"seq":"a",', {"fin": False}),
                             (OP_BINARY, b'"cmd":"ping"}', {"fin": False})))
        self.expect_close(ws, 1002)

    def test_5_16_new_text_start_inside_fragmented_binary(self):
        ws = self.connect()
        self.send(ws, frames((OP_BINARY, b'{"seq":"a",', {"fin": False}),
                             (OP_TEXT, b'"cmd":"ping"}', {"fin": False}),
                             (OP_CONT, b"")))
        self.expect_close(ws, 1002)

    def test_5_17_fin0_fragments_then_fin1_continuation(self):
        ws = self.connect()
        req = ping_request("fin")
        self.send(ws, frames((OP_TEXT, req[:4], {"fin": False}),
                             (OP_CONT, req[4:9], {"fin": False}),
                             (OP_CONT, req[9:15], {"fin": False}),
                             (OP_CONT, req[15:])))
        self.expect_ping_reply(ws, "fin")
        self.assert_alive(ws)

    def test_5_18_empty_fragments(self):
        ws = self.connect()
        req = ping_request("empty")
        self.send(ws, frames((OP_TEXT, b"", {"fin": False}), (OP_CONT, req, {"fin": False}),
                             (OP_CONT, b"", {"fin": False}), (OP_CONT, b"")))
        self.expect_ping_reply(ws, "empty")

    def test_5_19_binary_fragmented(self):
        ws = self.connect()
        self.send(ws, frames(*fragment(OP_BINARY, ping_request("bin"), [1, 7, 3])))
        self.expect_ping_reply(ws, "bin")

    def test_5_20_binary_fragmented_separate_writes(self):
        ws = self.connect()
        for f in fragment(OP_BINARY, ping_request("bin"), [6, 6]):
            self.send(ws, frames(f))
            time.sleep(0.02)
        self.expect_ping_reply(ws, "bin")

    def test_5_21_two_fragmented_messages_back_to_back(self):
        ws = self.connect()
        self.send(ws, frames(*fragment(OP_TEXT, ping_request("m1"), [4, 4]),
                             *fragment(OP_BINARY, ping_request("m2"), [9])))
        self.expect_ping_reply(ws, "m1")
        self.expect_ping_reply(ws, "m2")

    def test_5_22_fragmented_message_of_max_size(self):
        ws = self.connect()
        self.send(ws, frames(*fragment(OP_TEXT, ping_request("max", MAX_MESSAGE),
                                       [20000, 20000, 20000])))
        self.expect_ping_reply(ws, "max")

    def test_5_23_fragmented_message_over_max_size(self):
        """Each fragment is small; their sum passes the limit by one byte -> 1009."""
        ws = self.connect()
        self.send(ws, frames(*fragment(OP_TEXT, ping_request("big", MAX_MESSAGE + 1),
                                       [20000, 20000, 20000])))
        self.expect_close(ws, 1009)

    def test_5_24_fragmented_over_max_without_the_end(self):
        """The limit is enforced as soon as a fragment header passes it, not at FIN."""
        ws = self.connect()
        self.send(ws, frames((OP_TEXT, b" " * 40000, {"fin": False})))
        self.send(ws, RawWS.frame(OP_CONT, b"", fin=False, length=40000))  # header only
        self.expect_close(ws, 1009, timeout=3)

    def test_5_26_thousands_of_one_byte_fragments(self):
        ws = self.connect()
        req = ping_request("frags", 5000)
        self.send(ws, frames(*fragment(OP_TEXT, req, [1] * (len(req) - 1))))
        self.expect_ping_reply(ws, "frags")

    def test_5_25_close_between_fragments(self):
        """A close inside a fragmented message is answered; the message is never completed."""
        ws = self.connect()
        a, b = fragment(OP_TEXT, ping_request("never"), [10])
        self.send(ws, frames(a, (OP_CLOSE, close_payload(1000)), b))
        self.expect_close_echo(ws, close_payload(1000))


# ============================================================================================
# 6  UTF-8 handling
# ============================================================================================

def with_seq(seq_bytes):
    """A ping request whose seq is the given raw bytes (which may be invalid UTF-8)."""
    return b'{"seq":"' + seq_bytes + b'","cmd":"ping"}'


# Valid strings the reply must echo back unchanged (Autobahn 6.2, 6.5, 6.6, 6.22 in spirit).
VALID_SEQS = {
    "greek": "κόσμε",
    "emoji": "😀 hello 🎉",
    "mixed": "κόσμε-😀-中文-ℵ-\u00e9",
    "boundaries": "\u007f\u0080\u07ff\u0800\ud7ff\ue000\ufffd\U00010000\U0010ffff",
    "noncharacters": "\ufdd0\ufffe\uffff\U0001fffe\U0010fffe",
}

# Invalid UTF-8 (Autobahn 6.3, 6.6, 6.8, 6.9, 6.10, 6.14, 6.17-6.21) -> 1007.
INVALID_UTF8 = {
    "overlong_2byte_slash": b"\xc0\xaf",
    "overlong_nul": b"\xc0\x80",
    "overlong_3byte": b"\xe0\x80\xaf",
    "overlong_4byte": b"\xf0\x80\x80\xaf",
    "overlong_max_2byte": b"\xc1\xbf",
    "surrogate_high": b"\xed\xa0\x80",
    "surrogate_low": b"\xed\xbf\xbf",
    "surrogate_pair": b"\xed\xa0\x80\xed\xb0\x80",
    "above_10ffff": b"\xf4\x90\x80\x80",
    "f5_lead": b"\xf5\x80\x80\x80",
    "five_byte_form": b"\xf8\x88\x80\x80\x80",
    "six_byte_form": b"\xfc\x84\x80\x80\x80\x80",
    "lone_continuation_80": b"\x80",
    "lone_continuation_bf": b"\xbf",
    "continuations_in_a_row": b"\x80\xbf\x80\xbf",
    "lead_followed_by_ascii": b"\xce\x41",
    "three_byte_missing_last": b"\xe2\x82 ",
    "byte_fe": b"\xfe",
    "byte_ff": b"\xff",
    "fe_fe_ff_ff": b"\xfe\xfe\xff\xff",
    "kosme_then_invalid": "κόσμε".encode() + b"\xed\xa0\x80edited",
}

# Messages whose only problem is that they end in the middle of a character.
TRUNCATED_AT_END = {
    "two_byte": b"\xce",
    "three_byte": b"\xe2\x82",
    "four_byte": b"\xf0\x9f\x98",
}


class Group6Utf8(WsCase):
    def valid_case(self, seq, fragment_sizes=None):
        ws = self.connect()
        req = ping_request(seq)
        if fragment_sizes is None:
            self.send(ws, RawWS.frame(OP_TEXT, req))
        else:
            self.send(ws, frames(*fragment(OP_TEXT, req, fragment_sizes)))
        self.expect_ping_reply(ws, seq)

    def invalid_case(self, payload, fragment_sizes=None, code=1007):
        ws = self.connect()
        if fragment_sizes is None:
            self.send(ws, RawWS.frame(OP_TEXT, payload))
        else:
            self.send(ws, frames(*fragment(OP_TEXT, payload, fragment_sizes)))
        self.expect_close(ws, code)

    # -- valid text split across fragments, at every byte of multi-byte characters --

    def test_6_2_1_valid_text_in_one_byte_fragments(self):
        seq = VALID_SEQS["mixed"]
        req = ping_request(seq)
        self.valid_case(seq, [1] * (len(req) - 1))

    def test_6_2_2_emoji_split_at_every_byte(self):
        prefix = len(b'{"seq":"')
        for cut in (1, 2, 3):
            with self.subTest(cut=cut):
                self.valid_case("😀", [prefix + cut])

    def test_6_2_3_two_byte_char_split(self):
        self.valid_case("κ", [len(b'{"seq":"') + 1])

    def test_6_2_4_valid_text_chopped_writes(self):
        ws = self.connect()
        seq = VALID_SEQS["mixed"]
        self.send_chopped(ws, RawWS.frame(OP_TEXT, ping_request(seq)), chunk=1, delay=0.0005)
        self.expect_ping_reply(ws, seq)

    # -- invalid sequences split across fragments --

    def test_6_4_1_valid_prefix_then_ascii_in_next_fragment(self):
        """The first fragment ends with a valid lead byte; the next is not its continuation."""
        head = b'{"seq":"\xce'
        self.invalid_case(head + b'A","cmd":"ping"}', [len(head)])

    def test_6_4_2_f4_then_90_in_next_fragment(self):
        head = b'{"seq":"\xf4'
        self.invalid_case(head + b'\x90\x80\x80","cmd":"ping"}', [len(head)])

    def test_6_4_3_ed_then_a0_in_next_fragment(self):
        head = b'{"seq":"\xed'
        self.invalid_case(head + b'\xa0\x80","cmd":"ping"}', [len(head)])

    def test_6_4_4_e0_then_overlong_in_next_fragment(self):
        head = b'{"seq":"\xe0'
        self.invalid_case(head + b'\x80\xaf","cmd":"ping"}', [len(head)])

    def test_6_4_5_four_byte_char_cut_by_the_last_fragment(self):
        req = ping_request("x") + b"\xf0\x9f\x98"
        self.invalid_case(req, [5, len(req) - 6])

    def test_6_4_6_invalid_in_one_byte_fragments(self):
        req = with_seq("κόσμε".encode() + b"\xed\xa0\x80")
        self.invalid_case(req, [1] * (len(req) - 1))

    def test_6_4_7_invalid_in_binary_message_is_not_a_close(self):
        """Binary messages are not UTF-8 checked by the WebSocket layer: bad UTF-8 there is
        just a message that is not a valid request (1001 envelope)."""
        ws = self.connect()
        self.send(ws, RawWS.frame(OP_BINARY, with_seq(b"\xed\xa0\x80")))
        self.expect_bad_request(ws)
        self.assert_alive(ws)

    # -- fail fast: the error is reported before the message ends --

    def fail_fast(self, bad):
        ws = self.connect()
        # The first fragment holds the invalid bytes; the rest of the message never comes.
        self.send(ws, RawWS.frame(OP_TEXT, b'{"seq":"' + bad, fin=False))
        self.expect_close(ws, 1007, timeout=3)

    def test_6_5_1_fail_fast_overlong(self):
        self.fail_fast(b"\xc0\xaf")

    def test_6_5_2_fail_fast_surrogate(self):
        self.fail_fast(b"\xed\xa0\x80")

    def test_6_5_3_fail_fast_above_10ffff(self):
        self.fail_fast(b"\xf4\x90\x80\x80")

    def test_6_5_4_fail_fast_ff(self):
        self.fail_fast(b"\xff")

    def test_6_5_5_fail_fast_invalid_second_byte_of_open_char(self):
        """Only a prefix of a 4-byte char is sent, and its second byte is already wrong."""
        self.fail_fast(b"\xf4\x90")

    def test_6_5_6_fail_fast_across_fragments(self):
        ws = self.connect()
        self.send(ws, frames((OP_TEXT, b'{"seq":"\xed', {"fin": False}),
                             (OP_CONT, b"\xa0\x80", {"fin": False})))
        self.expect_close(ws, 1007, timeout=3)

    def test_6_5_7_fail_fast_inside_a_partial_frame(self):
        """Autobahn 6.4.x's strict form: the frame header announces 100 bytes, only the first
        12 arrive and they are already invalid; the close comes without the rest."""
        ws = self.connect()
        data = RawWS.frame(OP_TEXT, b'{"seq":"\xff' + b"a" * 91)
        self.send(ws, data[:6 + 12])  # 2-byte header + mask key + 12 payload bytes
        self.expect_close(ws, 1007, timeout=3)

    def test_6_2_5_four_byte_char_over_three_fragments(self):
        head = b'{"seq":"'
        self.valid_case("a😀b", [len(head) + 2, 1, 1])

    def test_6_4_8_invalid_middle_fragment_with_pings(self):
        ws = self.connect()
        self.send(ws, frames((OP_TEXT, b'{"seq":"ok', {"fin": False}), (OP_PING, b"1"),
                             (OP_CONT, b"\xc0\xaf", {"fin": False}), (OP_PING, b"2"),
                             (OP_CONT, b'","cmd":"ping"}')))
        self.expect_close(ws, 1007, before=[OP_PONG])


for _name, _seq in VALID_SEQS.items():
    add_case(Group6Utf8, "test_6_1_valid_%s" % _name,
             lambda self, s=_seq: self.valid_case(s),
             "Valid UTF-8 (%s) in seq is echoed back unchanged." % _name)
for _name, _bad in INVALID_UTF8.items():
    add_case(Group6Utf8, "test_6_3_invalid_%s" % _name,
             lambda self, b=_bad: self.invalid_case(with_seq(b)),
             "Text message with %r -> 1007." % _bad)
for _name, _tail in TRUNCATED_AT_END.items():
    add_case(Group6Utf8, "test_6_3_truncated_at_end_%s" % _name,
             lambda self, t=_tail: self.invalid_case(ping_request("t") + t),
             "Text message ending in the middle of a %s character -> 1007." % _name)


# ============================================================================================
# 7  Close handling
# ============================================================================================

VALID_CLOSE_CODES = (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                     3000, 3999, 4000, 4999)
INVALID_CLOSE_CODES = (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535)


class Group7Close(WsCase):
    def client_close(self, payload, echo, before_data=b"", before=()):
        ws = self.connect()
        self.send(ws, before_data + RawWS.frame(OP_CLOSE, payload))
        self.expect_close_echo(ws, echo, before=before)

    def bad_close(self, payload, code):
        ws = self.connect()
        self.send(ws, RawWS.frame(OP_CLOSE, payload))
        self.expect_close(ws, code)

    def test_7_1_1_request_then_close(self):
        self.client_close(close_payload(1000), close_payload(1000),
                          before_data=RawWS.frame(OP_TEXT, ping_request("last")),
                          before=[OP_TEXT])

    def test_7_1_2_close_twice(self):
        """The second close is not answered: exactly one close frame, then EOF."""
        ws = self.connect()
        self.send(ws, frames((OP_CLOSE, close_payload(1000)), (OP_CLOSE, close_payload(1001))))
        self.expect_close_echo(ws, close_payload(1000))

    def test_7_1_3_ping_after_close_ignored(self):
        ws = self.connect()
        self.send(ws, frames((OP_CLOSE, close_payload(1000)), (OP_PING, b"after close")))
        self.expect_close_echo(ws, close_payload(1000))

    def test_7_1_4_text_after_close_ignored(self):
        ws = self.connect()
        self.send(ws, frames((OP_CLOSE, close_payload(1000)), (OP_TEXT, ping_request("late"))))
        self.expect_close_echo(ws, close_payload(1000))

    def test_7_1_5_text_after_close_separate_write_ignored(self):
        ws = self.connect()
        self.send(ws, RawWS.frame(OP_CLOSE, close_payload(1000)))
        try:
            self.send(ws, RawWS.frame(OP_TEXT, ping_request("late")))
        except OSError:
            pass  # already closed: nothing to check about the late frame
        self.expect_close_echo(ws, close_payload(1000))

    def test_7_1_6_fragment_close_continuation(self):
        ws = self.connect()
        a, b = fragment(OP_TEXT, ping_request("never"), [10])
        self.send(ws, frames(a, (OP_CLOSE, close_payload(1000)), b))
        self.expect_close_echo(ws, close_payload(1000))

    def test_7_1_7_large_messages_then_close(self):
        ws = self.connect()
        data = b"".join(RawWS.frame(OP_TEXT, ping_request(str(i), 60000)) for i in range(10))
        self.send(ws, data + RawWS.frame(OP_CLOSE, close_payload(1000)))
        for i in range(10):
            self.expect_ping_reply(ws, str(i))
        self.expect_close_echo(ws, close_payload(1000))

    def test_7_3_1_close_empty_payload(self):
        """No code -> an empty close payload back (docs/behaviour.md), then TCP close."""
        self.client_close(b"", b"")

    def test_7_3_2_close_one_byte_payload(self):
        self.bad_close(b"\x03", 1002)

    def test_7_3_3_close_1000_no_reason(self):
        self.client_close(close_payload(1000), close_payload(1000))

    def test_7_3_4_close_1000_with_reason(self):
        self.client_close(close_payload(1000, "Hello World!"), close_payload(1000))

    def test_7_3_5_close_reason_123_bytes(self):
        self.client_close(close_payload(1000, "*" * 123), close_payload(1000))

    def test_7_3_6_close_reason_124_bytes_is_too_long(self):
        self.bad_close(close_payload(1000, "*" * 124), 1002)

    def test_7_3_7_close_reason_multibyte_utf8(self):
        self.client_close(close_payload(1000, "κόσμε 😀"), close_payload(1000))

    def test_7_3_8_close_chopped(self):
        ws = self.connect()
        self.send_chopped(ws, RawWS.frame(OP_CLOSE, close_payload(1000, "bye")), chunk=1,
                          delay=0.001)
        self.expect_close_echo(ws, close_payload(1000))

    def test_7_5_1_close_reason_invalid_utf8(self):
        self.bad_close(close_payload(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
                                           b"\xed\xa0\x80\x65\x64\x69\x74\x65\x64"), 1007)

    def test_7_5_2_close_reason_truncated_utf8(self):
        self.bad_close(close_payload(1000, b"bye \xe2\x82"), 1007)

    def test_7_8_server_close_without_reply_drops_tcp(self):
        """After a server-initiated close the TCP connection ends within app.closeTimeout,
        even if the client never answers (and never sends a FIN)."""
        ws = self.connect()
        self.send(ws, RawWS.frame(OP_TEXT, b"\xff"))
        payload, _ = self.wait_close_frame(ws)
        self.assertEqual(payload[:2], close_payload(1007))
        t0 = time.monotonic()
        self.expect_tcp_end(ws, timeout=CLOSE_TIMEOUT + 2.5, after="an unanswered close")
        self.assertLess(time.monotonic() - t0, CLOSE_TIMEOUT + 2.5)

    def test_7_8_server_close_answered_without_fin(self):
        """The client answers the close frame but keeps its side open: the server closes TCP."""
        ws = self.connect()
        self.send(ws, RawWS.frame(OP_PING, b"\x00" * 126))
        payload, _ = self.wait_close_frame(ws)
        self.assertEqual(payload[:2], close_payload(1002))
        try:
            self.send(ws, RawWS.frame(OP_CLOSE, close_payload(1002)))
        except OSError:
            pass
        self.expect_tcp_end(ws, timeout=CLOSE_TIMEOUT + 2.5, after="the close handshake")


for _i, _code in enumerate(VALID_CLOSE_CODES, 1):
    add_case(Group7Close, "test_7_7_%d_close_code_%d_echoed" % (_i, _code),
             lambda self, c=_code: self.client_close(close_payload(c), close_payload(c)),
             "Close code %d is valid: the server echoes it and closes TCP." % _code)
for _i, _code in enumerate(INVALID_CLOSE_CODES, 1):
    add_case(Group7Close, "test_7_9_%d_close_code_%d_invalid" % (_i, _code),
             lambda self, c=_code: self.bad_close(close_payload(c), 1002),
             "Close code %d may not be sent by a peer -> 1002." % _code)


# ============================================================================================
# Limits and masking (docs/behaviour.md "Frames")
# ============================================================================================

class GroupLimits(WsCase):
    def test_9_1_unmasked_text_frame(self):
        ws = self.connect()
        self.send(ws, RawWS.frame(OP_TEXT, ping_request("unmasked"), mask=False))
        self.expect_close(ws, 1002)

    def test_9_2_unmasked_ping_after_valid(self):
        ws = self.connect()
        self.send(ws, frames((OP_TEXT, ping_request("ok")), (OP_PING, b"x", {"mask": False})))
        self.expect_close(ws, 1002, before=[OP_TEXT])

    def test_9_3_unmasked_close(self):
        ws = self.connect()
        self.send(ws, RawWS.frame(OP_CLOSE, close_payload(1000), mask=False))
        self.expect_close(ws, 1002)

    def test_9_4_declared_1mib_frame_closed_before_payload(self):
        """Only the header of a 2^20-byte frame is sent: 1009 must come without the payload."""
        ws = self.connect()
        self.send(ws, RawWS.frame(OP_TEXT, b"", length=1 << 20))
        self.expect_close(ws, 1009, timeout=3)

    def test_9_5_declared_65537_binary_header_only(self):
        ws = self.connect()
        self.send(ws, RawWS.frame(OP_BINARY, b"", length=MAX_MESSAGE + 1))
        self.expect_close(ws, 1009, timeout=3)

    def test_9_6_declared_4gib_frame_after_valid(self):
        ws = self.connect()
        self.send(ws, frames((OP_TEXT, ping_request("ok"))) +
                  RawWS.frame(OP_TEXT, b"", length=(1 << 32)))
        self.expect_close(ws, 1009, timeout=3, before=[OP_TEXT])

    def test_9_7_over_max_across_fragments(self):
        ws = self.connect()
        self.send(ws, frames((OP_BINARY, b" " * 65000, {"fin": False}),
                             (OP_CONT, b" " * 537, {"fin": False})))
        self.expect_close(ws, 1009, timeout=3)

    def test_9_8_64bit_length_with_top_bit_set(self):
        ws = self.connect()
        self.send(ws, RawWS.frame(OP_TEXT, b"", length=(1 << 63) | 5))
        self.expect_close(ws, 1002, timeout=3)

    def test_9_10_64bit_header_byte_by_byte(self):
        """A frame whose 14-byte header (64-bit length) arrives one byte per write."""
        ws = self.connect()
        data = RawWS.frame(OP_BINARY, ping_request("hdr", 65536))
        self.send_chopped(ws, data[:14], chunk=1, delay=0.001)
        self.send(ws, data[14:])
        self.expect_ping_reply(ws, "hdr")

    def test_9_11_zero_mask_key(self):
        ws = self.connect()
        self.send(ws, RawWS.frame(OP_TEXT, ping_request("zero"), mask_key=b"\0\0\0\0"))
        self.expect_ping_reply(ws, "zero")

    def test_9_9_max_size_single_frame_then_more(self):
        """A message of exactly the limit does not poison the next one."""
        ws = self.connect()
        self.send(ws, frames((OP_TEXT, ping_request("a", MAX_MESSAGE)),
                             (OP_BINARY, ping_request("b", MAX_MESSAGE))))
        self.expect_ping_reply(ws, "a")
        self.expect_ping_reply(ws, "b")


del _i, _n, _name, _seq, _bad, _tail, _code, _group, _ops, _op, _after, _rsv, _rsv_name
del _op_name, _chopped

if __name__ == "__main__":
    unittest.main()
