"""The client's reader and writer against a scripted fake broker on a
socketpair: routing by PUSH, op and id (PROTOCOL.md 11, step 5), the
handshake's failures, and what a broken stream does to requests in flight.
No broker needed."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import unittest

# the package in this tree, before any installed one
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import postbox  # noqa: E402
from postbox import wire  # noqa: E402
from postbox.transport import PlainStream  # noqa: E402


class FakeBroker:
    """The far end of a socketpair: reads whole frames, writes raw bytes."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def read_frame(self) -> tuple[wire.Header, bytes]:
        while True:
            if len(self.buf) >= 4:
                size = int.from_bytes(self.buf[:4], "little")
                if len(self.buf) >= size + 4:
                    frame, self.buf = self.buf[: size + 4], self.buf[size + 4 :]
                    return wire.decode_frame(frame)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def reply(self, h: wire.Header, payload: bytes = b"", status: int = 0, flags: int = 0, op=None) -> None:
        self.sock.sendall(wire.encode_frame(op if op is not None else h.op | 0x80, flags, h.request, payload, status))

    def hello(self, keepalive: float = 0, dead_peer: float = 0) -> None:
        h, p = self.read_frame()
        assert h.op == wire.OP_HELLO
        hello = wire.Hello.decode(p)
        assert (hello.min_version, hello.max_version, hello.caps) == (2, 2, 0)
        r = wire.HelloReply(2, 7 | 5 << 32, 0, 5, b"s" * 16, wire.Principal(1, 1, 1, 1, 7 | 5 << 32), 1 << 20,
                            1 << 16, b"fake", int(keepalive * 1e9), int(dead_peer * 1e9))
        self.reply(h, r.encode())


def pair(script) -> tuple[postbox.Client, threading.Thread]:
    a, b = socket.socketpair()
    fb = FakeBroker(b)
    t = threading.Thread(target=lambda: _run(script, fb), daemon=True)
    t.start()
    c = postbox.Client(PlainStream(a), handshake_timeout=5)
    return c, t


def _run(script, fb):
    try:
        script(fb)
    except (EOFError, OSError):
        pass
    finally:
        fb.sock.close()


class TestFakeBroker(unittest.TestCase):
    def test_routing(self):
        got = {}

        def script(fb):
            fb.hello()
            h1, _ = fb.read_frame()  # RECV
            h2, _ = fb.read_frame()  # PING, answered before the RECV
            fb.reply(h2)
            h3, p3 = fb.read_frame()  # CONSUME
            got["consume"] = wire.Consume.decode(p3)
            # a reserved pushed op, a reply for nobody, a DELIVER, an INTERRUPT
            fb.sock.sendall(wire.encode_frame(0x7E, wire.FLAG_PUSH, 0, b"junk"))
            fb.sock.sendall(wire.encode_frame(wire.OP_PING | 0x80, 0, 999, b""))
            d = wire.Delivery(lease=4, id=1, type=1, body=b"pushed")
            fb.sock.sendall(wire.encode_frame(wire.OP_DELIVER, wire.FLAG_PUSH, h3.request, d.encode()))
            fb.sock.sendall(wire.encode_frame(wire.OP_INTERRUPT, wire.FLAG_PUSH | wire.FLAG_URGENT, 0,
                                              wire.Interrupt(4, 15).encode()))
            fb.reply(h1, wire.Delivery(lease=3, id=9, type=2, body=b"recv").encode(), flags=wire.FLAG_URGENT)
            h4, _ = fb.read_frame()  # CREDIT (auto credit), then CANCEL of the CONSUME
            while h4.op == wire.OP_CREDIT:
                got["credit"] = h4
                h4, _ = fb.read_frame()
            got["cancel"] = h4
            fb.reply(h3, wire.Error(b"canceled").encode(), status=15)
            fb.read_frame()

        c, t = pair(script)
        self.addCleanup(c.close)
        self.assertEqual((c.endpoint, c.epoch, c.server, c.max_frame), (7 | 5 << 32, 5, "fake", 1 << 20))
        p = c.mailbox("q").receive_async()
        c.ping()
        cons = c.mailbox("q").consume(prefetch=3)
        m = p.result(5)
        self.assertEqual((m.body, m.lease, m.id), (b"recv", 3, 9))
        pushed = cons.get(5)
        self.assertEqual((pushed.body, pushed.lease), (b"pushed", 4))
        self.assertTrue(pushed.interrupted.wait(5))
        self.assertEqual(got["consume"].credit, 3)
        cons.cancel()
        self.assertEqual(list(cons), [])
        self.assertEqual(got["cancel"].op, wire.OP_CANCEL)
        self.assertEqual(got["cancel"].flags, wire.FLAG_URGENT)
        self.assertEqual(got["cancel"].request, cons.id)
        self.assertEqual(got["credit"].request, cons.id)

    def test_wrong_reply_op(self):
        def script(fb):
            fb.hello()
            h, _ = fb.read_frame()
            fb.reply(h, op=wire.OP_STAT | 0x80)
            fb.read_frame()

        c, _ = pair(script)
        self.addCleanup(c.close)
        with self.assertRaises(postbox.ProtocolError):
            c.ping()

    def test_bad_frame_fails_everything_in_flight(self):
        def script(fb):
            fb.hello()
            fb.read_frame()
            fb.sock.sendall(b"\x0b\x00\x00\x00" + bytes(12))  # size 11: the stream cannot be trusted
            fb.read_frame()

        c, _ = pair(script)
        self.addCleanup(c.close)
        p = c.mailbox("q").receive_async()
        with self.assertRaises(postbox.ProtocolError):
            p.result(5)
        with self.assertRaises(postbox.ProtocolError):
            c.ping()
        self.assertTrue(c.closed)

    def test_broker_hangs_up(self):
        def script(fb):
            fb.hello()
            fb.read_frame()
            fb.sock.close()

        c, _ = pair(script)
        self.addCleanup(c.close)
        with self.assertRaises(postbox.ConnectionLostError):
            c.mailbox("q").receive(timeout=5)

    def test_undecodable_reply_payload(self):
        def script(fb):
            fb.hello()
            h, _ = fb.read_frame()
            fb.reply(h, b"\x01")  # a Delivery cut short
            fb.read_frame()

        c, _ = pair(script)
        self.addCleanup(c.close)
        with self.assertRaises(postbox.ProtocolError):
            c.mailbox("q").receive()

    def test_handshake_version_error(self):
        def script(fb):
            h, _ = fb.read_frame()
            fb.reply(h, wire.Error(b"this broker speaks protocol version 3").encode(), status=2)

        a, b = socket.socketpair()
        threading.Thread(target=lambda: _run(script, FakeBroker(b)), daemon=True).start()
        with self.assertRaises(postbox.VersionError) as cm:
            postbox.Client(PlainStream(a), handshake_timeout=5)
        a.close()
        self.assertEqual(cm.exception.code, 2)
        self.assertIn("version 3", cm.exception.message)

    def test_keepalive_pings_and_dead_peer(self):
        """KEEPALIVE: an idle client PINGs (URGENT) about every keepalive,
        and no sooner while it writes frames of its own; DEAD_PEER: once the
        broker stops answering, what is pending fails with DeadPeerError
        after about the dead-peer time (4.3)."""
        pings: list[tuple[float, wire.Header]] = []
        silent = threading.Event()

        def script(fb):
            fb.hello(keepalive=0.1, dead_peer=0.5)
            while True:
                h, _ = fb.read_frame()
                if h.op == wire.OP_PING:
                    pings.append((time.monotonic(), h))
                    if not silent.is_set():
                        fb.reply(h)

        c, _ = pair(script)
        self.addCleanup(c.close)
        self.assertEqual((c.keepalive, c.dead_peer), (0.1, 0.5))
        self.assertEqual(c._keepalive.name, "postbox-keepalive")
        time.sleep(0.75)  # past the dead-peer time, idle but for the pings
        self.assertFalse(c.closed)
        n = len(pings)
        self.assertTrue(5 <= n <= 9, f"{n} keepalive PINGs in 0.75 s at keepalive 0.1 s")
        self.assertTrue(all(h.flags == wire.FLAG_URGENT and h.request for _, h in pings))
        self.assertTrue(all(b - a >= 0.09 for (a, _), (b, _) in zip(pings, pings[1:])))
        self.assertLessEqual(len(c._pending), 1, "the PINGs' replies were matched and dropped")
        # while the client writes frames of its own (PINGs without URGENT), it sends no keepalive
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.4:
            c.ping()
            time.sleep(0.03)
        self.assertEqual([h for t, h in pings if t > t0 and h.flags], [])
        # the broker goes quiet: a RECV in flight fails once 0.5 s passed without a frame
        silent.set()
        p = c.mailbox("q").receive_async()
        t0 = time.monotonic()
        with self.assertRaises(postbox.DeadPeerError) as cm:
            p.result(5)
        self.assertTrue(0.3 <= time.monotonic() - t0 <= 1.5, time.monotonic() - t0)
        self.assertIsInstance(cm.exception, postbox.ConnectionLostError)
        self.assertIn("dead-peer", str(cm.exception))
        with self.assertRaises(postbox.DeadPeerError):
            c.ping()
        c.close()
        self.assertFalse(c._reader.is_alive())
        self.assertFalse(c._keepalive.is_alive())

    def test_no_keepalive_without_the_tags(self):
        def script(fb):
            fb.hello()
            while True:
                fb.read_frame()

        c, _ = pair(script)
        self.addCleanup(c.close)
        self.assertEqual((c.keepalive, c.dead_peer, c._keepalive), (None, None, None))

    def test_best_effort_never_blocks(self):
        """A broker that stops reading: best-effort sends are dropped by the
        client (False) once its output is congested, instead of waiting."""
        frames = []

        def script(fb):
            fb.hello()
            h, p = fb.read_frame()
            frames.append((h, wire.Send.decode(p)))
            threading.Event().wait(10)  # reads nothing more

        c, _ = pair(script)
        self.addCleanup(c.close)
        self.assertTrue(c.mailbox("m").send_best_effort(b"first", priority=3))
        t0 = time.monotonic()
        got = [c.mailbox("m").send_best_effort(bytes(1024)) for _ in range(4000)]
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn(True, got)
        self.assertIn(False, got)
        deadline = time.monotonic() + 5
        while not frames and time.monotonic() < deadline:
            time.sleep(0.01)
        h, send = frames[0]
        self.assertEqual((h.op, h.flags, send.target, send.timeout), (wire.OP_SEND, wire.FLAG_BEST_EFFORT, b"m", 0))
        self.assertEqual((send.msgs[0].body, send.msgs[0].priority), (b"first", 3))
        self.assertEqual(c._pending, {})

    def test_close_joins_and_fails_pending(self):
        def script(fb):
            fb.hello()
            while True:
                fb.read_frame()

        c, _ = pair(script)
        p = c.mailbox("q").receive_async()
        c.close()
        self.assertFalse(c._reader.is_alive())
        with self.assertRaises(postbox.ConnectionLostError):
            p.result(1)


if __name__ == "__main__":
    unittest.main()
