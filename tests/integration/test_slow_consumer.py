"""Slow consumers (docs/behaviour.md "Slow consumers"): a client that logs in and then never
reads is closed with 1008 once its unwritten output passes app.maxWriteQueue, while the other
clients of the room get every message and the node stays responsive. The normal clients have
read every message before the next 25 are sent, so that on a busy machine a reader thread the scheduler
starves is not taken for a slow consumer (it once was: two slow consumers counted).

The kernel absorbs a few MB per loopback socket before the node's own queue starts to grow
(the server's send buffer auto-tunes up to net.ipv4.tcp_wmem's max even when the reader's
window is tiny), so the test pushes 1 KB messages in batches until the node reports the slow
consumer: at least MIN_PUSHES, at most MAX_PUSHES."""

import json
import socket
import struct
import time
import unittest

from imtest import Http, NodeTestCase, raw_ws, send_all, uid, wait_until

MAX_QUEUE = 65536
MIN_PUSHES = 2000
MAX_PUSHES = 12000
BATCH = 250
PACE = 25
NORMALS = 3


def split_frames(data):
    """[(opcode, payload)] of the complete server frames in data, and the count of leftover
    bytes (a truncated frame at the end)."""
    frames, off = [], 0
    while len(data) - off >= 2:
        b0, b1 = data[off], data[off + 1]
        n, h = b1 & 0x7F, 2
        if n == 126:
            if len(data) - off < 4:
                break
            n, h = struct.unpack("!H", data[off + 2:off + 4])[0], 4
        elif n == 127:
            if len(data) - off < 10:
                break
            n, h = struct.unpack("!Q", data[off + 2:off + 10])[0], 10
        if len(data) - off < h + n:
            break
        frames.append((b0 & 0x0F, data[off + h:off + h + n]))
        off += h + n
    return frames, len(data) - off


class SlowConsumerTest(NodeTestCase):
    node_options = {"app.maxWriteQueue": MAX_QUEUE}

    def test_slow_consumer_closed_others_get_everything(self):
        room = 101
        # The slow client: a tiny receive buffer (set before connect), logs in, never reads.
        slow_user = uid("slow")
        slow = raw_ws(self.node.ws_port, rcvbuf=4096)
        self.addCleanup(slow.close)
        self.assertEqual(slow.login(slow_user, room)["response"]["code"], 200)
        normals = [self.client(uid("n"), room) for _ in range(NORMALS)]
        before = self.node.state()["counters"]["slowConsumers"]

        http = Http(self.node.http_port)
        self.addCleanup(http.close)
        body = "x" * 1000
        sent = []
        t0 = time.monotonic()
        while len(sent) < MAX_PUSHES:
            for _ in range(BATCH):
                mid = "s%d" % len(sent)
                status, reply = send_all(http, room, body, mid, sender="pusher")
                self.assertEqual((status, reply["data"]), (200, {"sendResults": True}), reply)
                sent.append(mid)
                # The readers keep up by construction: never more than PACE messages (~25 KB,
                # under app.maxWriteQueue even with no room in the kernel's buffers) behind,
                # however slowly this machine runs their threads; only the client that never
                # reads falls behind.
                if len(sent) % PACE == 0:
                    for c in normals:
                        c.wait_seq(mid, "msg", timeout=30)
            if len(sent) >= MIN_PUSHES and \
                    self.node.state()["counters"]["slowConsumers"] > before:
                break
        push_time = time.monotonic() - t0
        wait_until(lambda: self.node.state()["counters"]["slowConsumers"] >= before + 1, 5,
                   what="slowConsumers to count the client that never reads (%d pushes sent)"
                   % len(sent))
        self.assertEqual(self.node.state()["counters"]["slowConsumers"], before + 1,
                         "only the client that never reads is a slow consumer")

        # Every normal client received every message, once, in order.
        for c in normals:
            wait_until(lambda: len(c.pushes("msg")) >= len(sent), 30,
                       what="%s to receive %d messages" % (c.user, len(sent)))
            self.assertIsNone(c.close, "%s was closed: %r" % (c.user, c.close))
            got = [m["seq"] for m in c.pushes("msg")]
            self.assertEqual(got, sent, "%s: missing, duplicated or reordered" % c.user)

        # The slow client's socket ends; what it got is a prefix of the messages and then a
        # close 1008 frame, or a reset.
        data, reset = b"", False
        slow.sock.settimeout(5)
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                c = slow.sock.recv(1 << 20)
                if not c:
                    break
                data += c
            else:
                self.fail("the slow consumer's socket did not end")
        except ConnectionResetError:
            reset = True
        except socket.timeout:
            self.fail("the slow consumer's socket stayed open (%d bytes read)" % len(data))
        frames, leftover = split_frames(data)
        seqs = [json.loads(p)["seq"] for op, p in frames
                if op == 0x1 and b'"cmd":"msg"' in p]
        self.assertEqual(seqs, sent[:len(seqs)], "the slow client's messages are not a prefix")
        self.assertLess(len(seqs), len(sent), "the slow client got everything; it was not slow")

        # The node is fine: state answers, the slow user is gone, a new client works.
        wait_until(lambda: not http.get("/user/online", {"userID": slow_user})[2]["data"]["online"],
                   5, what="the slow user to be offline")
        fresh = self.client(uid("fresh"), room)
        self.assertEqual(fresh.request("ping")["response"]["data"], "pong")
        mid = uid("after")
        self.assertEqual(send_all(http, room, "after", mid)[1]["data"], {"sendResults": True})
        for c in normals + [fresh]:
            c.wait_seq(mid, "msg")
        print("\n  slow consumer cut after %d pushes (%.1f s); it had %d of them in its buffers"
              % (len(sent), push_time, len(seqs)))

        # Last, how the slow client's stream ended.
        info = "%d pushes sent, slow client read %d bytes: %d complete frames (%d messages, " \
               "last opcode %s), %d bytes of a truncated frame, then %s" % (
                   len(sent), len(data), len(frames), len(seqs),
                   frames[-1][0] if frames else None, leftover, "RST" if reset else "FIN")
        if not reset:
            self.assertTrue(frames, "nothing at all before EOF")
            self.assertEqual(leftover, 0, "the stream ends inside a frame: " + info)
            op, payload = frames[-1]
            self.assertEqual(op, 0x8, "the slow client's stream ends without a close frame "
                                      "(and without a reset): " + info)
            self.assertEqual(struct.unpack("!H", payload[:2])[0], 1008)
            self.assertEqual(payload[2:].decode(), "slow consumer")


if __name__ == "__main__":
    unittest.main()
