"""Output a client never reads can't grow the node (issue 8, found by an outside test): every
byte queued to a socket counts against app.maxWriteQueue, answers included. A client that
pipelines requests (or pings) and does not read what we answer makes the node stop reading it
until it does; then everything is answered, in order. Pongs to a flood of pings are coalesced
(RFC 6455 §5.5.3: answering the latest ping is enough). Each case was measured on the code
before the fix: +395 MiB for 10 000 pipelined GETs of app.js, +68 MiB for 400 000 pings."""

import socket
import select
import struct
import time
import unittest

from harness import RawWS
from imtest import NodeTestCase, state_counters, under_sanitizer

MIB = 1024 * 1024


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def sender(port):
    """A client that writes and does not read (until the test says so)."""
    return socket.create_connection(("127.0.0.1", port))


def send_all(s, data, seconds=5):
    """Writes as much of data as the node takes within `seconds` (it may stop reading us)."""
    s.setblocking(False)
    sent, deadline = 0, time.monotonic() + seconds
    while sent < len(data) and time.monotonic() < deadline:
        try:
            sent += s.send(data[sent:sent + 65536])
        except BlockingIOError:
            time.sleep(0.01)
    s.setblocking(True)
    return sent


def read_count(s, marker, want, seconds=30):
    """Reads until `want` occurrences of marker were seen (or time runs out); returns the count
    and the last 200 bytes."""
    s.settimeout(2)
    n, tail, deadline = 0, b"", time.monotonic() + seconds
    while n < want and time.monotonic() < deadline:
        try:
            chunk = s.recv(1 << 20)
        except socket.timeout:
            continue
        if not chunk:
            break
        data = tail + chunk
        n += data.count(marker) - tail.count(marker)
        tail = data[-200:]
    return n, tail


class Fresh(NodeTestCase):
    """A node of its own per case: memory freed by one case would hide the next one's growth."""
    node_options = {"app.workers": 1}

    def assertGrewLess(self, before, limit, msg):
        """RSS grew less than limit since `before` (not checked in a sanitizer build, whose RSS
        is not comparable; what follows is)."""
        time.sleep(1.5)   # let the node do whatever it would do with what it read
        if not under_sanitizer(self.node.proc.pid):
            self.assertLess(rss(self.node.proc.pid) - before, limit, msg)


class PipelinedHttp(Fresh):
    def test_pipelined_http_answers_are_bounded_then_all_delivered(self):
        n = 3000   # 3 000 x 41 KB of app.js = 124 MB if the node queued them all (the kernel's
        #            socket buffers hold only a few MB)
        req = b"GET /web/app.js HTTP/1.1\r\nHost: x\r\n\r\n"
        s = sender(self.node.http_port)
        try:
            before = rss(self.node.proc.pid)
            send_all(s, req * n, 3)
            self.assertGrewLess(before, 16 * MIB, "the node queued answers nobody reads")
            self.assertGreater(state_counters(self.node)["outputBackpressure"], 0)
            # The client reads after all: the node reads the rest and answers every request.
            got, _ = read_count(s, b"HTTP/1.1 200 OK", n)
            self.assertEqual(got, n)
        finally:
            s.close()



class Pipelined404s(Fresh):
    def test_pipelined_404s_on_the_websocket_port_are_bounded(self):
        n = 150000   # 150 000 x ~200-byte 404 answers = ~30 MB if all were queued
        s = sender(self.node.ws_port)
        try:
            before = rss(self.node.proc.pid)
            send_all(s, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" * n, 3)
            self.assertGrewLess(before, 8 * MIB, "the node queued 404s nobody reads")
        finally:
            s.close()



class UnreadPongs(Fresh):
    def test_unread_pongs_are_bounded_then_answered(self):
        ws = RawWS(self.node.ws_port)
        s = ws.sock
        try:
            # 400 000 pings of 125 bytes: 50 MB of pongs if the node queued one for each (the
            # kernel's socket buffers take a few MB of them; the rest was the node's).
            frames = RawWS.frame(0x9, b"p" * 125) * 400000
            before = rss(self.node.proc.pid)
            sent = send_all(s, frames, 4)
            self.assertGrewLess(before, 16 * MIB, "a pong queued per unread ping")
            # Now read (and drop) everything while the rest goes out, then one last ping: its
            # pong comes back — the node answers the latest ping.
            data = frames[sent:] + RawWS.frame(0x9, b"last")
            sent, window, found = 0, b"", False
            s.setblocking(False)
            deadline = time.monotonic() + 30
            while not found and time.monotonic() < deadline:
                r, w, _ = select.select([s], [s] if sent < len(data) else [], [], 1)
                if w:
                    try:
                        sent += s.send(data[sent:sent + 65536])
                    except BlockingIOError:
                        pass
                if r:
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        break
                    window = (window + chunk)[-64:]
                    found = b"\x8a\x04last" in window
            self.assertEqual(sent, len(data))
            self.assertTrue(found, "no pong for the last ping")
        finally:
            ws.close()


if __name__ == "__main__":
    unittest.main()
