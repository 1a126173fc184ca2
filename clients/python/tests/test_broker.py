"""The Python client against a real broker.

Run by clients/python/python_test.go (go test ./clients/python/), which
starts `postbox serve` and sets POSTBOX_SOCKET; POSTBOX_BIN is the postbox
CLI for the interoperability tests, and the Go test's own Go client serves
"go.echo" and "go.relay". Without POSTBOX_SOCKET these tests skip.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import shutil
import os
import sys
import subprocess
import tempfile
import threading
import time
import unittest
from unittest import mock


# the package in this tree, before any installed one
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import postbox
from postbox import wire

SOCKET = os.environ.get("POSTBOX_SOCKET", "")
BIN = os.environ.get("POSTBOX_BIN", "")
_seq = itertools.count(1)


def uniq(prefix: str) -> str:
    """A mailbox name no other test uses."""
    return f"py.{prefix}.{os.getpid()}.{next(_seq)}"


@unittest.skipUnless(SOCKET, "POSTBOX_SOCKET is not set: run through go test ./clients/python/")
class BrokerTest(unittest.TestCase):
    def setUp(self):
        self.c = postbox.connect(SOCKET, name="python-test")
        self.addCleanup(self.c.close)

    def client(self) -> postbox.Client:
        c = postbox.connect(SOCKET, name="python-test-2")
        self.addCleanup(c.close)
        return c

    def mailbox(self, prefix: str, **opts) -> postbox.Mailbox:
        mb = self.c.create(uniq(prefix), **opts)
        self.addCleanup(self._destroy, mb.name)
        return mb

    def _destroy(self, name):
        try:
            self.c.destroy(name)
        except (postbox.NotFoundError, postbox.ConnectionLostError):
            pass

    def serve(self, mb: postbox.Mailbox, handle, client=None) -> threading.Thread:
        """A Python server: each request on mb is answered with handle(m)
        (None: no answer, the lease kept); ends when the consumer does."""
        cons = mb.client.mailbox(mb.name).consume(prefetch=8) if client is None else client.mailbox(mb.name).consume(prefetch=8)
        self.addCleanup(cons.close)

        def run():
            try:
                for m in cons:
                    body = handle(m)
                    if body is not None:
                        m.reply(body)
            except postbox.PostboxError:
                pass

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t


class TestConnect(BrokerTest):
    def test_handshake(self):
        c = self.c
        self.assertEqual(c.principal.kind, 1)
        self.assertEqual(c.principal.pid, os.getpid())
        self.assertEqual(c.principal.uid, os.getuid())
        self.assertEqual(c.principal.endpoint, c.endpoint)
        self.assertEqual(c.endpoint >> 32, c.epoch)
        self.assertEqual(c.inbox_name, f"@{c.endpoint}")
        self.assertEqual(len(c.session), 16)
        self.assertNotEqual(c.session, bytes(16))
        self.assertEqual(c.caps, 0)  # DESCRIPTORS was not asked for
        self.assertGreater(c.max_frame, c.max_message)
        self.assertTrue(c.server)
        c.ping()
        c.ping(urgent=True)

    def test_session_resumed(self):
        c2 = postbox.connect(SOCKET, session=self.c.session)
        self.addCleanup(c2.close)
        self.assertEqual(c2.session, self.c.session)
        self.assertNotEqual(c2.endpoint, self.c.endpoint)

    def test_url_and_env(self):
        with postbox.connect(url="unix://" + SOCKET) as c:
            c.ping()
        with mock.patch.dict(os.environ, {"POSTBOX_SOCKET": SOCKET}):
            with postbox.connect() as c:
                c.ping()
                self.assertEqual(c.address, "unix://" + SOCKET)
        with mock.patch.dict(os.environ, {"POSTBOX_SOCKET": "", "POSTBOX_URL": "unix://" + SOCKET}):
            with postbox.connect() as c:
                c.ping()

    def test_default_paths(self):
        with tempfile.TemporaryDirectory() as xdg:
            env = {"POSTBOX_SOCKET": "", "POSTBOX_URL": "", "XDG_RUNTIME_DIR": xdg, "POSTBOX_SYSTEM_SOCKET": SOCKET}
            with mock.patch.dict(os.environ, env):
                self.assertEqual(postbox.default_socket_paths(), [os.path.join(xdg, "postbox", "postbox.sock"), SOCKET])
                # no per-user socket: on to the system-wide one
                with postbox.connect() as c:
                    self.assertEqual(c.address, "unix://" + SOCKET)
                # an unsafe per-user directory is an error, with no fallback
                os.mkdir(os.path.join(xdg, "postbox"))
                os.chmod(os.path.join(xdg, "postbox"), 0o777)
                with self.assertRaises(postbox.UnsafeSocketError) as cm:
                    postbox.connect()
                self.assertIn("writable by group or others", str(cm.exception))
                os.chmod(os.path.join(xdg, "postbox"), 0o700)
                # a file there that is not a socket
                open(os.path.join(xdg, "postbox", "postbox.sock"), "w").close()
                with self.assertRaises(postbox.UnsafeSocketError):
                    postbox.connect()
            with mock.patch.dict(os.environ, {"XDG_RUNTIME_DIR": "", "TMPDIR": "/x"}):
                self.assertEqual(postbox.user_socket_path(), f"/x/postbox-{os.getuid()}/postbox.sock")

    def test_close_joins_reader(self):
        c = postbox.connect(SOCKET)
        mb = c.create(uniq("close"))
        self.addCleanup(self._destroy, mb.name)
        p = mb.receive_async()
        c.close()
        self.assertFalse(c._reader.is_alive())
        with self.assertRaises(postbox.ConnectionLostError):
            p.result(5)
        with self.assertRaises(postbox.ConnectionLostError):
            c.ping()
        c.close()  # twice is fine


class TestAdmin(BrokerTest):
    def test_create_stat_destroy(self):
        dl = self.mailbox("dead")
        name = uniq("opts")
        mb = self.c.create(name, capacity=10, mode=0o640, durable=True, max_bytes=1 << 20, ttl=3600,
                           max_deliveries=3, dead_letter=dl.name)
        info = mb.stat()
        self.assertEqual(info.name, name.encode())
        self.assertEqual((info.capacity, info.mode, info.max_bytes, info.ttl, info.max_deliveries),
                         (10, 0o640, 1 << 20, 3600 * 10**9, 3))
        self.assertEqual(info.dead_letter, dl.name.encode())
        self.assertTrue(info.is_durable)
        self.assertFalse(info.is_inbox)
        self.assertEqual(info.uid, os.getuid())
        with self.assertRaises(postbox.ExistsError) as cm:
            self.c.create(name)
        self.assertEqual(cm.exception.code, 6)
        mb.chmod(0o600)
        self.assertEqual(mb.stat().mode, 0o600)
        mb.destroy()
        with self.assertRaises(postbox.NotFoundError):
            self.c.stat(name)
        with self.assertRaises(postbox.NotFoundError):
            self.c.destroy(name)

    def test_service_and_inbox_flags(self):
        svc = self.mailbox("svc", service=True)
        self.assertTrue(svc.stat().is_service)
        self.assertTrue(self.c.stat(self.c.inbox_name).is_inbox)

    def test_invalid(self):
        for bad in ("a*b", "", "x" * 201):
            with self.assertRaises(postbox.InvalidError):
                self.c.create(bad)
        with self.assertRaises(postbox.InvalidError):
            self.c.create(uniq("cap"), capacity=-2)
        with self.assertRaises(postbox.NotFoundError):
            self.c.create(uniq("dl"), dead_letter=uniq("missing"))
        with self.assertRaises(postbox.InvalidError):
            self.c.mailbox("@007").send(b"x")

    def test_list_paged(self):
        prefix = uniq("list")
        names = [f"{prefix}.{i}" for i in range(7)]
        for n in names:
            self.c.create(n)
            self.addCleanup(self._destroy, n)
        seen, cursor, pages = [], b"", 0
        while True:
            infos, cursor = self.c.list_page(cursor, 3)
            self.assertLessEqual(len(infos), 3)
            seen += [i.name.decode() for i in infos]
            pages += 1
            if not cursor:
                break
        self.assertGreaterEqual(pages, 3)
        self.assertEqual(seen, sorted(seen))
        self.assertEqual([n for n in seen if n.startswith(prefix)], names)
        self.assertIn(self.c.inbox_name, seen)
        all_names = [i.name.decode() for i in self.c.list(page=2)]
        self.assertEqual(all_names, seen)

    def test_usage(self):
        entries = self.c.usage(os.getuid())
        self.assertEqual(len(entries), 1)
        self.assertIsInstance(entries[0], wire.UsageEntry)
        self.assertEqual(entries[0].uid, os.getuid())
        self.assertGreaterEqual(entries[0].used.connections, 1)

    def test_info(self):
        info = self.c.info()
        self.assertGreater(info.pid, 0)
        self.assertGreaterEqual(info.connections, 1)
        self.assertGreater(info.uptime_nano, 0)
        self.assertEqual(info.listeners[0].network, b"unix")
        self.assertGreater(info.limits.max_frame, info.limits.max_message)


class TestSendReceive(BrokerTest):
    def test_send_receive_ack(self):
        mb = self.mailbox("sr")
        r = mb.send(b"hello", type=3, priority=7)
        self.assertEqual(r.ids, [1])
        self.assertFalse(r.taken)
        m = mb.receive(timeout=5)
        self.assertEqual((m.body, m.type, m.priority, m.id, m.redeliveries), (b"hello", 3, 7, 1, 0))
        self.assertNotEqual(m.lease, 0)
        self.assertEqual(m.sender.pid, os.getpid())
        self.assertEqual(m.sender.endpoint, self.c.endpoint)
        self.assertLess(abs(m.sent.timestamp() - time.time()), 60)
        self.assertEqual(mb.stat().in_flight, 1)
        m.ack()
        info = mb.stat()
        self.assertEqual((info.depth, info.in_flight, info.received), (0, 0, 1))
        with self.assertRaises(postbox.StaleLeaseError):
            m2 = postbox.Message(self.c, mb.name, wire.Delivery(lease=m.lease))
            m2.ack()

    def test_nack_redelivers(self):
        mb = self.mailbox("nack")
        mb.send("again")
        m = mb.receive()
        m.nack()
        m2 = mb.receive(nowait=True)
        self.assertEqual((m2.id, m2.redeliveries, m2.text), (m.id, 1, "again"))
        m2.ack_nowait()
        self.c.ping()
        self.assertEqual(mb.stat().in_flight, 0)

    def test_ack_ranges(self):
        mb = self.mailbox("ranges")
        mb.send_batch([f"m{i}" for i in range(10)])
        ms = [mb.receive(nowait=True) for _ in range(10)]
        leases = [m.lease for m in ms]
        res = self.c.ack(reversed(leases))
        self.assertEqual((res.done, res.failed), (10, []))
        res = self.c.nack(leases[:3])
        self.assertEqual(res.done, 0)
        self.assertEqual([(f.lease, f.status) for f in res.failed], [(l, 12) for l in sorted(leases[:3])])
        self.assertIsNone(self.c.ack([1 << 60], noreply=True))

    def test_batch_and_done(self):
        mb = self.mailbox("batch", capacity=2)
        with self.assertRaises(postbox.FullError) as cm:
            mb.send_batch(["a", "b", "c"], nowait=True)
        self.assertEqual(cm.exception.done, 2)
        self.assertEqual(mb.stat().depth, 2)
        q = self.mailbox("prio")
        r = q.send_batch([postbox.OutMessage("low", priority=1), postbox.OutMessage("high", priority=9, type=2),
                          b"bytes"])
        self.assertEqual(r.ids, [1, 2, 3])
        self.assertEqual([q.receive(autoack=True).body for _ in range(3)], [b"high", b"low", b"bytes"])

    def test_timeouts_and_nowait(self):
        mb = self.mailbox("to", capacity=1)
        with self.assertRaises(postbox.EmptyError):
            mb.receive(nowait=True)
        t0 = time.monotonic()
        with self.assertRaises(postbox.TimedOutError):
            mb.receive(timeout=0.2)
        self.assertGreaterEqual(time.monotonic() - t0, 0.15)
        mb.send("x")
        with self.assertRaises(postbox.FullError):
            mb.send("y", nowait=True)
        with self.assertRaises(postbox.TimedOutError) as cm:
            mb.send("y", timeout=0.1)
        self.assertEqual(cm.exception.done, 0)

    def test_type_selector_and_autoack(self):
        mb = self.mailbox("types")
        mb.send_batch([postbox.OutMessage("t5", type=5), postbox.OutMessage("t2", type=2),
                       postbox.OutMessage("t3", type=3)])
        self.assertEqual(mb.receive(type=3, autoack=True).text, "t3")
        m = mb.receive(type=-4, autoack=True)
        self.assertEqual((m.text, m.lease), ("t2", 0))
        with self.assertRaises(postbox.EmptyError):
            mb.receive(type=7, nowait=True)
        self.assertEqual(mb.stat().in_flight, 0)

    def test_headers(self):
        mb = self.mailbox("hdr")
        deadline = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
        mb.send(b"{}", reply_to=self.c.inbox_name, correlation_id=b"\x00\x01corr", deadline=deadline,
                content_type="application/json", headers=[("k", "v1"), ("k", b"v2"), ("other.key-1", "")])
        m = mb.receive(autoack=True)
        self.assertEqual(m.reply_to, self.c.inbox_name)
        self.assertEqual(m.correlation_id, b"\x00\x01corr")
        self.assertEqual(m.deadline, deadline)
        self.assertEqual(m.content_type, "application/json")
        self.assertEqual(m.headers, [("k", b"v1"), ("k", b"v2"), ("other.key-1", b"")])
        self.assertEqual(m.header("k"), b"v1")
        self.assertIsNone(m.header("missing"))
        mb.send("plain", headers={"a": "b"})
        m = mb.receive(autoack=True)
        self.assertEqual((m.reply_to, m.correlation_id, m.deadline, m.content_type), (None, None, None, None))
        self.assertEqual(m.headers, [("a", b"b")])
        for bad in ({"content_type": "a\nb"}, {"reply_to": "@007"}, {"headers": {"bad key": "v"}},
                    {"correlation_id": b""}):
            with self.assertRaises(postbox.InvalidError):
                mb.send("x", **bad)
        self.assertEqual(mb.stat().sent, 2)

    def test_receipt(self):
        mb = self.mailbox("receipt")
        other = self.client()
        got = []
        t = threading.Thread(target=lambda: got.append(other.mailbox(mb.name).receive(timeout=5, autoack=True)))
        t.start()
        r = mb.send("take me", receipt=True, timeout=5)
        t.join()
        self.assertTrue(r.taken)
        self.assertEqual(r.receiver.endpoint, other.endpoint)
        self.assertEqual(got[0].text, "take me")

    def test_inbox_and_permission(self):
        other = self.client()
        self.c.mailbox(other.inbox_name).send("to your inbox")
        m = other.inbox.receive(timeout=5, autoack=True)
        self.assertEqual(m.text, "to your inbox")
        with self.assertRaises(postbox.PermissionDeniedError) as cm:
            self.c.mailbox(other.inbox_name).receive(nowait=True)
        self.assertEqual(cm.exception.code, 7)

    def test_disconnect_returns_leases(self):
        mb = self.mailbox("disc")
        mb.send("held")
        other = postbox.connect(SOCKET)
        m = other.mailbox(mb.name).receive(timeout=5)
        self.assertEqual(m.redeliveries, 0)
        other.close()
        m2 = mb.receive(timeout=5, autoack=True)
        self.assertEqual((m2.id, m2.text, m2.redeliveries), (m.id, "held", 1))

    def test_dead_letter_reason(self):
        dl = self.mailbox("dl")
        mb = self.mailbox("dlsrc", max_deliveries=1, dead_letter=dl.name)
        mb.send("doomed", type=3, headers={"k": "v"})
        mb.receive(timeout=5).nack()
        d = dl.receive(timeout=5, autoack=True)
        self.assertEqual((d.text, d.type, d.reason, d.header("k")), ("doomed", 3, 1, b"v"))
        self.assertEqual(d.sender.endpoint, self.c.endpoint)
        self.assertEqual(mb.stat().dead_lettered, 1)

    def test_batch_over_max_frame(self):
        mb = self.mailbox("bigbatch")
        chunk = bytes(self.c.max_message // 2)
        n = self.c.max_frame // len(chunk) + 1
        with self.assertRaises(postbox.TooLargeError):
            mb.send_batch([chunk] * n)
        self.assertEqual(mb.stat().depth, 0)
        with self.assertRaises(ValueError):
            mb.send_batch([b"x"] * 1025)

    def test_too_large(self):
        mb = self.mailbox("big")
        with self.assertRaises(postbox.TooLargeError):
            mb.send(bytes(self.c.max_message + 1))
        mb.send(bytes(self.c.max_message - 100))
        self.assertEqual(len(mb.receive(autoack=True).body), self.c.max_message - 100)

    def test_not_found(self):
        with self.assertRaises(postbox.NotFoundError) as cm:
            self.c.mailbox(uniq("nope")).send("x")
        self.assertEqual(cm.exception.code, 5)
        self.assertIsInstance(cm.exception, postbox.PostboxError)
        with self.assertRaises(postbox.NotFoundError):
            self.c.mailbox("@1").send("x")

    def test_browse(self):
        mb = self.mailbox("browse")
        mb.send_batch([f"b{i}" for i in range(5)])
        got = [m.text for m in mb.browse(page=2)]
        self.assertEqual(got, [f"b{i}" for i in range(5)])
        self.assertEqual(mb.stat().depth, 5)

    def test_best_effort(self):
        """BEST_EFFORT (8.7): no reply, never waits; what does not fit at
        once is dropped and counted in the mailbox's DROPPED."""
        mb = self.mailbox("be", capacity=2)
        for i in range(5):
            self.assertTrue(mb.send_best_effort(f"m{i}", content_type="text/plain"))
        self.c.ping()  # read after the SENDs
        deadline = time.monotonic() + 5
        while (info := mb.stat()).dropped < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual((info.sent, info.depth, info.dropped), (2, 2, 3))
        self.assertEqual([mb.receive(nowait=True, autoack=True).body for _ in range(2)], [b"m0", b"m1"])
        self.assertTrue(mb.send_best_effort(b"room again"))
        self.assertEqual(mb.receive(timeout=5, autoack=True).body, b"room again")
        self.assertEqual(mb.stat().dropped, 3)
        # refused by the broker: dropped without a word, and not counted anywhere
        self.assertTrue(self.c.mailbox(uniq("nobody")).send_best_effort(b"x"))
        # refused here, before anything is sent
        with self.assertRaises(postbox.InvalidError):
            mb.send_best_effort(b"x", type=0)
        with self.assertRaises(postbox.TooLargeError):
            mb.send_best_effort(bytes(self.c.max_message + 1))
        self.c.ping()
        self.assertEqual(self.c._pending, {}, "no reply is awaited for a best-effort send")

    def test_threads_share_a_client(self):
        mb = self.mailbox("threads")
        n, workers = 200, 8

        def send(k):
            for i in range(n):
                mb.send(f"{k}:{i}")

        ts = [threading.Thread(target=send, args=(k,)) for k in range(workers)]
        for t in ts:
            t.start()
        got = []
        lock = threading.Lock()

        def recv():
            while True:
                try:
                    m = mb.receive(timeout=1, autoack=True)
                except postbox.TimedOutError:
                    return
                with lock:
                    got.append(m.text)

        rs = [threading.Thread(target=recv) for _ in range(4)]
        for t in rs:
            t.start()
        for t in ts + rs:
            t.join()
        self.assertEqual(sorted(got), sorted(f"{k}:{i}" for k in range(workers) for i in range(n)))


class TestConsume(BrokerTest):
    def test_prefetch_and_credit(self):
        mb = self.mailbox("credit")
        mb.send_batch([f"c{i}" for i in range(5)])
        cons = mb.consume(prefetch=2, auto_credit=False)
        got = [cons.get(5), cons.get(5)]
        with self.assertRaises(TimeoutError):
            cons.get(0.3)  # no credit left
        info = mb.stat()
        self.assertEqual((info.consumers, info.in_flight, info.depth), (1, 2, 3))
        cons.credit(3)
        got += [cons.get(5) for _ in range(3)]
        self.assertEqual([m.text for m in got], [f"c{i}" for i in range(5)])
        self.c.ack(m.lease for m in got)
        cons.cancel()
        self.assertEqual(list(cons), [])
        self.assertTrue(cons.ended)
        self.assertIsInstance(cons.error, postbox.CanceledError)
        self.assertEqual(mb.stat().consumers, 0)

    def test_auto_credit(self):
        mb = self.mailbox("auto")
        n = 300
        for i in range(0, n, 100):
            mb.send_batch([str(j) for j in range(i, i + 100)])
        got = []
        with mb.consume(prefetch=8) as cons:
            for m in cons:
                got.append(int(m.text))
                m.ack_nowait()
                if len(got) == n:
                    break
        self.assertEqual(got, list(range(n)))
        self.c.ping()
        info = mb.stat()
        self.assertEqual((info.depth, info.in_flight), (0, 0))

    def test_autoack_consume(self):
        mb = self.mailbox("autoack")
        cons = mb.consume(prefetch=4, autoack=True)
        self.addCleanup(cons.close)
        mb.send("a")
        m = cons.get(5)
        self.assertEqual((m.text, m.lease), ("a", 0))

    def test_close_nacks_untaken(self):
        mb = self.mailbox("close")
        mb.send_batch(["x", "y", "z"])
        cons = mb.consume(prefetch=3)
        deadline = time.monotonic() + 5
        while len(cons._q) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        cons.get(5).ack()
        cons.close()
        self.c.ping()
        info = mb.stat()
        self.assertEqual((info.depth, info.in_flight), (2, 0))

    def test_destroyed_ends_stream(self):
        mb = self.mailbox("destroyed")
        cons = mb.consume(prefetch=1)
        mb.destroy()
        with self.assertRaises(postbox.DestroyedError):
            for _ in cons:
                pass

    def test_consume_refused(self):
        cons = self.c.mailbox(uniq("missing")).consume()
        with self.assertRaises(postbox.NotFoundError):
            cons.get(5)


class TestCancel(BrokerTest):
    def test_cancel_receive(self):
        mb = self.mailbox("cancel")
        p = mb.receive_async()
        time.sleep(0.05)
        p.cancel()
        with self.assertRaises(postbox.CanceledError):
            p.result(5)
        with self.assertRaises(TimeoutError):
            mb.receive_async().result(0.05)  # a local wait that passes leaves it in flight

    def test_cancel_blocked_send(self):
        mb = self.mailbox("cancelsend", capacity=1)
        mb.send("fill")
        p = mb.send_batch_async(["a", "b"])
        time.sleep(0.05)
        self.assertEqual(mb.stat().blocked_senders, 1)
        p.cancel()
        with self.assertRaises(postbox.CanceledError) as cm:
            p.result(5)
        self.assertEqual(cm.exception.done, 0)
        self.assertEqual(mb.stat().depth, 1)


class TestCall(BrokerTest):
    def test_call_and_reply(self):
        svc = self.mailbox("svc", service=True)
        server = self.client()
        seen = []

        def handle(m):
            seen.append(m)
            return b"re:" + m.body

        self.serve(server.mailbox(svc.name), handle)
        r = svc.call(b"ping", timeout=5, content_type="text/plain", headers={"trace": "1"})
        self.assertEqual(r.body, b"re:ping")
        self.assertEqual((r.lease, r.id), (0, 0))
        self.assertEqual(r.request_id, 1)
        self.assertEqual(r.sender.endpoint, server.endpoint)
        req = seen[0]
        self.assertEqual(req.reply_to, self.c.inbox_name)
        self.assertEqual(r.correlation_id, req.correlation_id)
        self.assertEqual(req.content_type, "text/plain")
        self.assertEqual(req.header("trace"), b"1")
        # the reply acked the request (ACK_LEASE)
        self.c.ping()
        self.assertEqual(svc.stat().in_flight, 0)
        # many calls at once on one client, each its own reply
        ps = [svc.call_async(str(i).encode(), timeout=5) for i in range(50)]
        self.assertEqual([p.result().body for p in ps], [b"re:" + str(i).encode() for i in range(50)])

    def test_timeout_withdrawn(self):
        svc = self.mailbox("nobody", service=True)
        with self.assertRaises(postbox.TimedOutError) as cm:
            svc.call(b"anyone?", timeout=0.2)
        self.assertEqual(cm.exception.outcome, postbox.OUTCOME_WITHDRAWN)
        self.assertIsNone(cm.exception.receiver)
        self.assertEqual(svc.stat().depth, 0)

    def test_timeout_in_progress_interrupts(self):
        svc = self.mailbox("slow", service=True)
        server = self.client()
        held = []
        interrupts = []
        server.on_interrupt = lambda lease, reason: interrupts.append((lease, reason))
        self.serve(server.mailbox(svc.name), lambda m: held.append(m))
        with self.assertRaises(postbox.TimedOutError) as cm:
            svc.call(b"slow", timeout=0.3)
        self.assertEqual(cm.exception.outcome, postbox.OUTCOME_IN_PROGRESS)
        self.assertEqual(cm.exception.receiver.endpoint, server.endpoint)
        m = held[0]
        self.assertTrue(m.interrupted.wait(5))
        self.assertEqual(interrupts, [(m.lease, 10)])
        # too late: the reply is dropped, and the request acked with it
        self.assertFalse(m.reply(b"late"))
        server.ping()
        self.assertEqual(svc.stat().in_flight, 0)

    def test_caller_disconnect_interrupts(self):
        svc = self.mailbox("gone", service=True, mode=0o666)
        held = []
        self.serve(svc, lambda m: held.append(m))
        caller = postbox.connect(SOCKET)
        p = caller.mailbox(svc.name).call_async(b"then I leave")
        deadline = time.monotonic() + 5
        while not held and time.monotonic() < deadline:
            time.sleep(0.01)
        caller.close()
        with self.assertRaises(postbox.ConnectionLostError):
            p.result(5)
        self.assertTrue(held[0].interrupted.wait(5))
        self.assertFalse(held[0].reply(b"nobody listens"))

    def test_cancel_call(self):
        svc = self.mailbox("cancelcall", service=True)
        p = svc.call_async(b"x")
        time.sleep(0.05)
        p.cancel()
        with self.assertRaises(postbox.CanceledError) as cm:
            p.result(5)
        self.assertEqual(cm.exception.outcome, postbox.OUTCOME_WITHDRAWN)

    def test_settled_outcome(self):
        svc = self.mailbox("settled", service=True)
        server = self.client()
        self.serve(server.mailbox(svc.name), lambda m: (m.ack(), None)[1])
        with self.assertRaises(postbox.TimedOutError) as cm:
            svc.call(b"x", timeout=0.3)
        self.assertEqual(cm.exception.outcome, postbox.OUTCOME_SETTLED)

    def test_call_rules(self):
        with self.assertRaises(ValueError):
            self.c.mailbox("x").call(b"", timeout=0)
        with self.assertRaises(postbox.NotFoundError) as cm:
            self.c.mailbox(uniq("missing")).call(b"", timeout=1)
        self.assertIsNone(cm.exception.outcome)

    def test_reply_to_mailbox(self):
        # classic request/reply through a named mailbox, not CALL
        req, rep = self.mailbox("req"), self.mailbox("rep")
        req.send("q", reply_to=rep.name, correlation_id="c1")
        m = req.receive(timeout=5)
        self.assertTrue(m.reply("a") is False)
        r = rep.receive(timeout=5, autoack=True)
        self.assertEqual((r.text, r.correlation_id), ("a", b"c1"))
        self.assertEqual(req.stat().in_flight, 0)


class TestErrors(unittest.TestCase):
    def test_one_class_per_code(self):
        self.assertEqual(sorted(postbox.BY_CODE), list(range(1, 24)))
        for code, cls in postbox.BY_CODE.items():
            self.assertTrue(issubclass(cls, postbox.PostboxError))
            e = postbox.errors.error_from_reply(code, wire.Error(b"why", 3, True).encode())
            self.assertIs(type(e), cls)
            self.assertEqual((e.code, e.message, e.done), (code, "why", 3))
        e = postbox.errors.error_from_reply(99, b"\xff")  # undecodable payload tolerated
        self.assertIsInstance(e, postbox.UnknownStatusError)
        self.assertEqual((e.code, e.message, e.done), (99, "", 0))


@unittest.skipUnless(SOCKET and BIN, "POSTBOX_SOCKET and POSTBOX_BIN are needed")
class TestInterop(BrokerTest):
    """A Python client and Go clients (the postbox CLI, and the Go test's
    services) exchanging messages through one broker."""

    def cli(self, *args, input=None) -> str:
        env = dict(os.environ, POSTBOX_SOCKET=SOCKET)
        p = subprocess.run([BIN, *args], input=input, capture_output=True, env=env, timeout=20)
        if p.returncode != 0:
            self.fail(f"postbox {' '.join(args)}: exit {p.returncode}: {p.stderr.decode()}")
        return p.stdout.decode()

    def test_cli_send_python_receive(self):
        mb = self.mailbox("fromgo", mode=0o666)
        self.cli("send", mb.name, "from the CLI", "--type", "4", "--priority", "2", "--header", "k=v",
                 "--correlation-id", "c-9", "--reply-to", self.c.inbox_name, "--content-type", "text/plain")
        m = mb.receive(timeout=5)
        self.assertEqual((m.text, m.type, m.priority), ("from the CLI", 4, 2))
        self.assertEqual((m.correlation_id, m.reply_to, m.content_type), (b"c-9", self.c.inbox_name, "text/plain"))
        self.assertEqual(m.headers, [("k", b"v")])
        self.assertNotEqual(m.sender.pid, os.getpid())
        m.ack()

    def test_python_send_cli_receive(self):
        mb = self.mailbox("togo", mode=0o666)
        mb.send("from python", type=2, correlation_id="c-1", content_type="text/plain", headers=[("a", "1"), ("a", "2")])
        out = self.cli("recv", mb.name, "-o", "json", "--timeout", "5s")
        j = json.loads(out)
        self.assertEqual(j["body"], "from python")
        self.assertEqual(j["type"], 2)
        self.assertEqual(j["correlation_id"], "c-1")
        self.assertEqual(j["content_type"], "text/plain")
        self.assertEqual(j["headers"], {"a": ["1", "2"]})
        self.assertEqual(mb.stat().depth, 0)

    def test_python_calls_go(self):
        r = self.c.mailbox("go.echo").call(b"hi", timeout=5)
        self.assertEqual(r.body, b"go:hi")
        self.assertNotEqual(r.sender.pid, os.getpid())

    def test_go_calls_python(self):
        svc = self.mailbox("pysvc", service=True, mode=0o666)
        self.serve(svc, lambda m: b"py:" + m.body)
        r = self.c.mailbox("go.relay").call(svc.name.encode(), timeout=10)
        self.assertEqual(r.text, "py:from go")


TLS_SKIP = os.environ.get("POSTBOX_TEST_TLS_SKIP", "")
TLS_URL = os.environ.get("POSTBOX_TEST_TLS_URL", "")


@unittest.skipIf(TLS_SKIP or not TLS_URL, TLS_SKIP or "POSTBOX_TEST_TLS_URL is not set")
class TestTLS(unittest.TestCase):
    """Over the broker's own TLS listener (postbox serve --listen tls://...),
    with a client certificate whose URI SAN is spiffe://postbox.test/python."""

    NAME = "spiffe://postbox.test/python"

    def connect(self, **kw) -> postbox.Client:
        opts = dict(tls_cert=os.environ["POSTBOX_TEST_TLS_CERT"], tls_key=os.environ["POSTBOX_TEST_TLS_KEY"],
                    tls_ca=os.environ["POSTBOX_TEST_TLS_CA"])
        opts.update(kw)
        c = postbox.connect(url=TLS_URL, timeout=5, **opts)
        self.addCleanup(c.close)
        return c

    def local(self) -> postbox.Client:
        c = postbox.connect(SOCKET)
        self.addCleanup(c.close)
        return c

    def test_tls_roundtrip(self):
        c = self.connect()
        self.assertEqual(c.principal.kind, 2)
        self.assertEqual((c.principal.uid, c.principal.gid, c.principal.pid), (0, 0, 0))
        self.assertEqual(c.principal_name, self.NAME)
        self.assertEqual(c.caps & wire.CAP_DESCRIPTORS, 0)
        c.ping()
        c.mailbox(c.inbox_name).send(b"over tls")
        m = c.inbox.receive(timeout=5, autoack=True)
        self.assertEqual((m.body, m.sender.kind, m.sender_name), (b"over tls", 2, self.NAME))
        big = os.urandom(2 << 20)
        c.mailbox(c.inbox_name).send(big)
        self.assertEqual(c.inbox.receive(timeout=5, autoack=True).body, big)

    def test_tls_and_unix_exchange(self):
        remote, local = self.connect(), self.local()
        local.mailbox(remote.inbox_name).send(b"unix to tls")
        m = remote.inbox.receive(timeout=5, autoack=True)
        self.assertEqual((m.body, m.sender.kind, m.sender.pid, m.sender_name), (b"unix to tls", 1, os.getpid(), None))
        r = remote.mailbox(local.inbox_name).send(b"tls to unix")
        self.assertEqual(r.ids, [1])
        m = local.inbox.receive(timeout=5, autoack=True)
        self.assertEqual((m.body, m.sender.endpoint, m.sender_name), (b"tls to unix", remote.endpoint, self.NAME))

    def test_access_entries(self):
        remote, local = self.connect(), self.local()
        mb = local.create(uniq("acl"), mode=0o666)
        self.addCleanup(local.destroy, mb.name)
        with self.assertRaises(postbox.PermissionDeniedError):  # mode bits are not for TLS peers
            remote.mailbox(mb.name).send(b"x")
        mb.set_access("spiffe://postbox.test/*", "w")
        self.assertEqual(mb.stat().access, [(postbox.PERM_W, "spiffe://postbox.test/*")])
        remote.mailbox(mb.name).send(b"allowed")
        with self.assertRaises(postbox.PermissionDeniedError):
            remote.mailbox(mb.name).receive(nowait=True)
        mb.set_access("spiffe://postbox.test/*", "rw")
        self.assertEqual(remote.mailbox(mb.name).receive(nowait=True, autoack=True).body, b"allowed")
        with self.assertRaises(postbox.PermissionDeniedError):  # only the owner changes entries
            remote.set_access(mb.name, "*", "rw")
        mb.remove_access("spiffe://postbox.test/*")
        self.assertEqual(mb.stat().access, [])
        with self.assertRaises(postbox.NotFoundError):
            mb.remove_access("spiffe://postbox.test/*")
        with self.assertRaises(postbox.InvalidError):
            mb.set_access("[", "r")
        with self.assertRaises(ValueError):
            mb.set_access("x", "rx")

    def test_remote_owner(self):
        remote = self.connect()
        mb = remote.create(uniq("remote"))
        info = mb.stat()
        self.assertEqual((info.uid, info.gid), (wire.NO_UID, wire.NO_UID))
        self.assertEqual(info.owner, (2, self.NAME))
        mb.send(b"mine")
        self.assertEqual(mb.receive(autoack=True, nowait=True).body, b"mine")
        mb.destroy()

    def test_call_to_a_tls_server(self):
        remote, local = self.connect(), self.local()
        svc = local.create(uniq("tlssvc"), service=True)
        self.addCleanup(local.destroy, svc.name)
        svc.set_access(self.NAME, "r")
        cons = remote.mailbox(svc.name).consume(prefetch=4)
        self.addCleanup(cons.close)
        p = svc.call_async(b"hello tls", timeout=5)
        req = cons.get(5)
        self.assertEqual((req.body, req.sender.pid), (b"hello tls", os.getpid()))
        self.assertTrue(req.reply(b"from tls"))
        r = p.result(5)
        self.assertEqual((r.body, r.sender.kind, r.sender_name), (b"from tls", 2, self.NAME))
        # a call the TLS server holds past its timeout: RECEIVER and its name
        p = svc.call_async(b"slow", timeout=0.3)
        held = cons.get(5)
        with self.assertRaises(postbox.TimedOutError) as cm:
            p.result(5)
        self.assertEqual(cm.exception.outcome, postbox.OUTCOME_IN_PROGRESS)
        self.assertEqual((cm.exception.receiver.kind, cm.exception.receiver_name), (2, self.NAME))
        self.assertTrue(held.interrupted.wait(5))
        held.ack()

    def test_usage_by_name(self):
        remote = self.connect()
        got = [u for u in remote.usage() if isinstance(u, wire.PrincipalUsage)]
        self.assertEqual([u.name for u in got], [self.NAME])
        self.assertGreaterEqual(got[0].used.connections, 1)

    @unittest.skipUnless(os.environ.get("POSTBOX_TEST_DEAD_PEER"), "the broker was not started with --dead-peer")
    def test_keepalive_outlives_dead_peer(self):
        """The broker closes a TLS connection silent for its dead-peer time
        (1 s here, 4.3). An idle client pings every KEEPALIVE, so it keeps
        its connection and its lease well past that; a peer that sends
        nothing after its HELLO is closed."""
        remote, local = self.connect(), self.local()
        self.assertEqual((remote.dead_peer, local.dead_peer, local.keepalive), (1.0, None, None))
        self.assertAlmostEqual(remote.keepalive, 1 / 3, places=3)
        mb = local.create(uniq("keepalive"), mode=0o600)
        self.addCleanup(local.destroy, mb.name)
        mb.set_access(self.NAME, "rw")
        mb.send(b"held")
        held = remote.mailbox(mb.name).receive(timeout=5)
        time.sleep(2.5)  # idle: nothing but keepalive PINGs, 2.5 dead-peer times
        self.assertFalse(remote.closed)
        held.ack()  # the lease is still this connection's: not StaleLeaseError
        self.assertEqual(mb.stat().redelivered, 0)
        # a peer that does not ping (a raw handshake, then silence) is closed by the broker after about 1 s
        from postbox import transport

        ctx = postbox.tls_context(os.environ["POSTBOX_TEST_TLS_CERT"], os.environ["POSTBOX_TEST_TLS_KEY"],
                                  os.environ["POSTBOX_TEST_TLS_CA"])
        raw = transport.dial(transport.parse_url(TLS_URL), 5, ctx)
        self.addCleanup(raw.close)
        raw.sendall(wire.encode_frame(wire.OP_HELLO, 0, 1, wire.Hello(client=b"mute").encode()))
        t0, got = time.monotonic(), b""
        try:
            while chunk := raw.recv(1 << 16):
                got += chunk
        except ConnectionError:
            pass
        elapsed = time.monotonic() - t0
        h, payload = wire.decode_frame(got)
        self.assertEqual(wire.HelloReply.decode(payload).dead_peer, 1_000_000_000)
        self.assertTrue(0.9 <= elapsed <= 2.5, f"a silent peer closed after {elapsed:.2f} s, dead-peer time 1 s")

    def test_no_client_certificate(self):
        ctx = postbox.tls_context(ca=os.environ["POSTBOX_TEST_TLS_CA"])
        with self.assertRaises(postbox.TLSError) as cm:
            postbox.connect(url=TLS_URL, ssl_context=ctx, timeout=5)
        self.assertIn("client certificate", str(cm.exception))

    def test_channels_refused(self):
        c = self.connect()
        p = c._request(wire.OP_CHANNEL, 0, wire.Channel(c.inbox_name.encode()).encode(), None)
        with self.assertRaises(postbox.InvalidError):
            p.result(5)

GO_CERT = os.environ.get("POSTBOX_TEST_TLS_GO_CERT", "")
GO_KEY = os.environ.get("POSTBOX_TEST_TLS_GO_KEY", "")


@unittest.skipIf(TLS_SKIP or not TLS_URL, TLS_SKIP or "POSTBOX_TEST_TLS_URL is not set")
@unittest.skipUnless(SOCKET and BIN and GO_CERT, "POSTBOX_SOCKET, POSTBOX_BIN and POSTBOX_TEST_TLS_GO_CERT are needed")
class TestGoTLSPythonUnix(BrokerTest):
    """A Go client over TLS (the postbox CLI with a certificate of its own,
    spiffe://postbox.test/go) and this Python client over the Unix socket,
    exchanging messages through one broker, both ways: each side sees the
    other's identity as the broker stamped it, the TLS principal name on
    one side and the kernel's uid/pid on the other."""

    GO_NAME = "spiffe://postbox.test/go"

    def go(self, *args) -> str:
        """The postbox CLI over TLS only: no socket in its environment."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTBOX_")}
        p = subprocess.run([BIN, *args, "--url", TLS_URL, "--tls-cert", GO_CERT, "--tls-key", GO_KEY,
                            "--tls-ca", os.environ["POSTBOX_TEST_TLS_CA"]],
                           capture_output=True, env=env, timeout=20)
        if p.returncode != 0:
            self.fail(f"postbox {' '.join(args)} over TLS: exit {p.returncode}: {p.stderr.decode()}")
        return p.stdout.decode()

    def test_go_tls_to_python_unix(self):
        mb = self.mailbox("gotls.in", mode=0o600)  # mode bits: no TLS peer gets in by them
        mb.set_access(self.GO_NAME, "w")
        self.go("send", mb.name, "from go over tls", "--type", "3", "--header", "k=v", "--correlation-id", "g-1")
        m = mb.receive(timeout=5)
        self.assertEqual((m.text, m.type, m.correlation_id, m.headers), ("from go over tls", 3, b"g-1", [("k", b"v")]))
        self.assertEqual(m.sender.kind, 2)  # TLS
        self.assertEqual(m.sender_name, self.GO_NAME)
        self.assertEqual((m.sender.uid, m.sender.pid), (0, 0))  # no kernel identity over TLS
        m.ack()

    def test_python_unix_to_go_tls(self):
        mb = self.mailbox("gotls.out", mode=0o600)
        mb.set_access(self.GO_NAME, "r")
        mb.send("from python over unix", type=5, content_type="text/plain")
        j = json.loads(self.go("recv", mb.name, "-o", "json", "--timeout", "5s"))
        self.assertEqual((j["body"], j["type"], j["content_type"]), ("from python over unix", 5, "text/plain"))
        s = j["sender"]
        self.assertEqual((s["kind"], s["uid"], s["gid"], s["pid"]), ("unix", os.getuid(), os.getgid(), os.getpid()))
        self.assertEqual(s["endpoint"], self.c.endpoint)
        self.assertEqual(mb.stat().depth, 0)  # recv acked it over TLS

    def test_request_and_reply_across(self):
        """A Go request over TLS answered by a Python server on the Unix
        socket, through a named reply mailbox (the CLI has no CALL)."""
        req, rep = self.mailbox("gotls.req", mode=0o600), self.mailbox("gotls.rep", mode=0o600)
        req.set_access(self.GO_NAME, "w")
        rep.set_access(self.GO_NAME, "r")
        self.go("send", req.name, "ping", "--reply-to", rep.name, "--correlation-id", "r-7")
        m = req.receive(timeout=5)
        self.assertEqual((m.body, m.reply_to, m.sender_name), (b"ping", rep.name, self.GO_NAME))
        m.reply(b"pong to " + m.sender_name.encode())  # an ordinary send to a named mailbox, then the ack
        j = json.loads(self.go("recv", rep.name, "-o", "json", "--timeout", "5s"))
        self.assertEqual((j["body"], j["correlation_id"]), ("pong to " + self.GO_NAME, "r-7"))
        self.assertEqual((j["sender"]["kind"], j["sender"]["uid"], j["sender"]["pid"]), ("unix", os.getuid(), os.getpid()))
        self.assertEqual((req.stat().depth, req.stat().in_flight), (0, 0))


CERT = os.environ.get("POSTBOX_TEST_TLS_CERT", "")


class _TLSFront:
    """A TLS endpoint in front of the broker's Unix socket (client
    certificates required and verified), so that the client's TLS code is
    tested whether or not the broker has its own TLS listener."""

    def __init__(self):
        import socket
        import ssl

        from postbox.transport import TLSStream

        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=os.environ["POSTBOX_TEST_TLS_CA"])
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.load_cert_chain(os.environ["POSTBOX_TEST_TLS_SERVER_CERT"], os.environ["POSTBOX_TEST_TLS_SERVER_KEY"])
        self.ls = socket.create_server(("127.0.0.1", 0))
        self.url = "tls://127.0.0.1:%d" % self.ls.getsockname()[1]
        self.errors: list[Exception] = []
        self._stream = TLSStream
        self._socket = socket
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        try:
            tls = self._stream(s, self.ctx, None, 5, server_side=True)
            tls.settimeout(None)
        except Exception as e:  # a refused client: its handshake failed
            self.errors.append(e)
            s.close()
            return
        u = self._socket.socket(self._socket.AF_UNIX)
        u.connect(SOCKET)
        self.conns.append((tls, u))

        def up():
            try:
                while True:
                    b = tls.recv(1 << 16)
                    if not b:
                        break
                    u.sendall(b)
            except OSError:
                pass
            u.shutdown(self._socket.SHUT_WR)

        threading.Thread(target=up, daemon=True).start()
        try:
            while True:
                b = u.recv(1 << 16)
                if not b:
                    break
                tls.sendall(b)
        except OSError:
            pass
        tls.shutdown()

    def close(self):
        self.ls.close()
        for tls, u in self.conns:
            tls.shutdown()
            u.close()


@unittest.skipUnless(SOCKET and CERT, "POSTBOX_SOCKET and the POSTBOX_TEST_TLS_* certificates are needed")
class TestTLSClient(unittest.TestCase):
    """The client's TLS (ssl module, memory BIOs, client certificate)
    through a TLS endpoint in front of the Unix socket."""

    @classmethod
    def setUpClass(cls):
        cls.front = _TLSFront()

    @classmethod
    def tearDownClass(cls):
        cls.front.close()

    def connect(self, **kw) -> postbox.Client:
        opts = dict(tls_cert=os.environ["POSTBOX_TEST_TLS_CERT"], tls_key=os.environ["POSTBOX_TEST_TLS_KEY"],
                    tls_ca=os.environ["POSTBOX_TEST_TLS_CA"])
        opts.update(kw)
        c = postbox.connect(url=self.front.url, timeout=5, **opts)
        self.addCleanup(c.close)
        return c

    def test_roundtrips(self):
        c = self.connect()
        c.ping()
        box = c.create(uniq("tls"))
        self.addCleanup(c.destroy, box.name)
        big = os.urandom(3 << 20)
        box.send(big)
        self.assertEqual(box.receive(timeout=5, autoack=True).body, big)
        # the reader and many writers at once over one TLS connection
        n = 400
        ts = [threading.Thread(target=lambda k=k: [box.send(f"{k}:{i}") for i in range(n // 4)]) for k in range(4)]
        with box.consume(prefetch=32) as cons:
            for t in ts:
                t.start()
            got = []
            for m in cons:
                got.append(m.text)
                m.ack_nowait()
                if len(got) == n:
                    break
        for t in ts:
            t.join()
        self.assertEqual(len(set(got)), n)

    def test_refused_without_client_certificate(self):
        with self.assertRaises((OSError, postbox.PostboxError)):
            self.connect(tls_cert=None, tls_key=None).ping()

    def test_untrusted_broker_certificate(self):
        import ssl

        with self.assertRaises(postbox.TLSError) as cm:
            postbox.connect(url=self.front.url, ssl_context=ssl.create_default_context(), timeout=5)
        self.assertIsInstance(cm.exception.__cause__, ssl.SSLCertVerificationError)
        self.assertIn("failed verification", str(cm.exception))

    def test_url_needs_tls_settings(self):
        with self.assertRaises(ValueError):
            postbox.connect(url=self.front.url)


if __name__ == "__main__":
    unittest.main()


@unittest.skipUnless(BIN, "POSTBOX_BIN is needed")
class TestHandshakeBound(unittest.TestCase):
    """A broker of its own that lets one connection per uid be in its
    handshake at a time, closing the others at accept: connect tries
    again (as the Go client does), so 32 clients started at once all get
    through."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="pbpy-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.sock = os.path.join(self.dir, "s")
        self.p = subprocess.Popen([BIN, "serve", "--memory", "--socket", self.sock, "--max-handshaking-per-uid", "1",
                                   "--log-level", "warn"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(self._stop)
        for _ in range(500):
            if os.path.exists(self.sock):
                break
            time.sleep(0.01)
        else:
            self.fail("the broker made no socket")

    def _stop(self):
        self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.p.stderr.close()

    def test_concurrent_connects_all_succeed(self):
        n = 32
        errors: list[BaseException] = []
        start = threading.Event()

        def one():
            start.wait()
            try:
                with postbox.connect(self.sock, name="python-bound", timeout=20) as c:
                    c.ping()
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        ts = [threading.Thread(target=one) for _ in range(n)]
        for t in ts:
            t.start()
        start.set()
        for t in ts:
            t.join(60)
        self.assertEqual(errors, [])
