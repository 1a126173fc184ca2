"""The postbox client: one connection to the broker.

Threads: one reader thread owns the socket's input and routes every frame
(PROTOCOL.md 11, step 5) — replies to the pending-request table, DELIVERs
to their consumers, INTERRUPTs to the messages they name. Writers are the
calling threads; each writes whole frames under one lock, so frames never
interleave. Where the HelloReply has KEEPALIVE (TCP, TLS), a small
keepalive thread sends a PING whenever that long passes without a frame of
this client's, and the reader gives up a broker silent for DEAD_PEER (4.3).
:meth:`Client.close` shuts the socket and joins both threads.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import logging
import os
import secrets
import ssl
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Generic, Iterable, Iterator, Mapping, Optional, Sequence, TypeVar, Union

from . import transport as _tr
from . import wire
from .errors import (
    CanceledError,
    ConnectionLostError,
    DeadPeerError,
    InvalidError,
    PostboxError,
    ProtocolError,
    StaleLeaseError,
    TooLargeError,
    VersionError,
    error_from_reply,
)

log = logging.getLogger("postbox")

T = TypeVar("T")
Bytesish = Union[bytes, bytearray, memoryview, str]
UserHeaders = Union[Mapping[str, Union[str, bytes]], Sequence[tuple[str, Union[str, bytes]]], None]
Deadline = Union[_dt.datetime, int, None]

_READ_CHUNK = 1 << 18
_MAX_QUEUED = 8 << 20  # output bytes queued before writers wait
MAX_BEST_EFFORT_BACKLOG = 4 << 20  # output bytes queued before best-effort sends are dropped here (8.7)


def _b(v: Bytesish) -> bytes:
    if isinstance(v, str):
        return v.encode("utf-8")
    return bytes(v)


def _timeout_ns(timeout: Optional[float], nowait: bool = False) -> int:
    """Seconds (None: wait forever) to the protocol's nanoseconds."""
    if nowait:
        return 0
    if timeout is None or timeout < 0:
        return -1
    if timeout == 0:
        return 0
    return max(1, int(timeout * 1e9))


def _deadline_ns(d: Deadline) -> Optional[int]:
    if d is None:
        return None
    if isinstance(d, _dt.datetime):
        if d.tzinfo is None:
            d = d.astimezone()
        return int(d.timestamp() * 1_000_000_000)
    return int(d)


def _user_list(h: UserHeaders) -> list[tuple[str, Union[str, bytes]]]:
    if h is None:
        return []
    if isinstance(h, Mapping):
        return list(h.items())
    return list(h)


# --- values ------------------------------------------------------------------


@dataclass
class OutMessage:
    """A message to send: its body, type (>= 1), priority and headers.

    ``deadline`` is a datetime or Unix nanoseconds; ``headers`` are user
    headers, a mapping or a list of (key, value) pairs (keys may repeat)."""

    body: Bytesish = b""
    type: int = 1
    priority: int = 0
    reply_to: Optional[str] = None
    correlation_id: Optional[Bytesish] = None
    deadline: Deadline = None
    content_type: Optional[str] = None
    headers: UserHeaders = None

    def encode(self) -> wire.Message:
        if (self.reply_to is None and self.correlation_id is None and self.deadline is None
                and self.content_type is None and not self.headers):
            return wire.Message(self.type, self.priority, b"", _b(self.body))
        try:
            block = wire.build_headers(
                reply_to=self.reply_to,
                correlation_id=None if self.correlation_id is None else _b(self.correlation_id),
                deadline_ns=_deadline_ns(self.deadline),
                content_type=self.content_type,
                user=_user_list(self.headers),
            )
        except ValueError as e:
            raise InvalidError(f"headers: {e} (not sent)") from None
        return wire.Message(self.type, self.priority, block, _b(self.body))


@dataclass
class Receipt:
    """What a SEND's OK reply says: the messages' ids, and for a receipted
    or rendezvous send (or a claimed reply) who took the message."""

    ids: list[int]
    taken: bool = False
    receiver: Optional[wire.Principal] = None
    #: a TLS receiver's certificate name (PRINCIPAL_NAME, 7.3)
    receiver_name: Optional[str] = None

    @property
    def id(self) -> int:
        """The id of the first (usually only) message."""
        return self.ids[0] if self.ids else 0


@dataclass
class AckResult:
    """An ACK's or NACK's reply: how many leases were settled, and each one
    that was not with its status (STALE_LEASE)."""

    done: int
    failed: list[wire.Failure] = field(default_factory=list)


class Message:
    """A received message (a Delivery, 8.8), with its headers decoded.

    ``lease`` is 0 when the message was auto-acked or is a CALL's reply;
    otherwise settle it with :meth:`ack` or :meth:`nack`."""

    __slots__ = ("_client", "mailbox", "lease", "id", "type", "priority", "reason", "flags", "redeliveries",
                 "sender", "sent_unix_nano", "raw_headers", "body", "ext", "request_id", "_hdr", "_settled")

    def __init__(self, client: "Client", mailbox: str, d: wire.Delivery, request_id: int = 0):
        self._client = client
        self.mailbox = mailbox
        self.lease = d.lease
        self.id = d.id
        self.type = d.type
        self.priority = d.priority
        self.reason = d.reason
        self.flags = d.flags
        self.redeliveries = d.redeliveries
        self.sender = d.sender
        self.sent_unix_nano = d.sent_unix_nano
        self.raw_headers = d.headers
        self.body = d.body
        #: the Delivery's raw ext tail (PRINCIPAL_NAME of a TLS sender)
        self.ext = d.ext
        #: for a CALL's reply: the id the request got in its target mailbox
        self.request_id = request_id
        self._hdr: Optional[list[tuple[int, bytes]]] = None
        self._settled = d.lease == 0

    def __repr__(self) -> str:
        return f"<Message {self.mailbox}#{self.id} lease={self.lease} type={self.type} {len(self.body)} bytes>"

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")

    def _entries(self) -> list[tuple[int, bytes]]:
        if self._hdr is None:
            try:
                self._hdr = wire.parse_headers(self.raw_headers)
            except wire.DecodeError:
                self._hdr = []
        return self._hdr

    def _first(self, tag: int) -> Optional[bytes]:
        for t, v in self._entries():
            if t == tag:
                return v
        return None

    @property
    def reply_to(self) -> Optional[str]:
        v = self._first(wire.HDR_REPLY_TO)
        return v.decode("ascii", "replace") if v is not None else None

    @property
    def correlation_id(self) -> Optional[bytes]:
        return self._first(wire.HDR_CORRELATION_ID)

    @property
    def content_type(self) -> Optional[str]:
        v = self._first(wire.HDR_CONTENT_TYPE)
        return v.decode("ascii") if v is not None else None

    @property
    def deadline_ns(self) -> Optional[int]:
        v = self._first(wire.HDR_DEADLINE)
        return struct.unpack("<q", v)[0] if v is not None and len(v) == 8 else None

    @property
    def deadline(self) -> Optional[_dt.datetime]:
        ns = self.deadline_ns
        if ns is None:
            return None
        return _dt.datetime.fromtimestamp(ns / 1e9, _dt.timezone.utc)

    @property
    def sent(self) -> _dt.datetime:
        """When the broker accepted the message (its clock), UTC."""
        return _dt.datetime.fromtimestamp(self.sent_unix_nano / 1e9, _dt.timezone.utc)

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        """The user headers (USER entries) in the order sent; keys repeat."""
        out = []
        for t, v in self._entries():
            if t == wire.HDR_USER and v:
                kl = v[0]
                out.append((v[1 : 1 + kl].decode("ascii", "replace"), v[1 + kl :]))
        return out

    def header(self, key: str) -> Optional[bytes]:
        """The first user header named key, or None."""
        for k, v in self.headers:
            if k == key:
                return v
        return None

    @property
    def sender_name(self) -> Optional[str]:
        """A TLS sender's certificate name (PRINCIPAL_NAME, 7.3), or None
        (Unix senders are their uid, gid and pid in ``sender``)."""
        return wire.principal_name(self.ext) if self.ext else None

    @property
    def is_channel_offer(self) -> bool:
        return bool(self.flags & 1)

    @property
    def interrupted(self) -> threading.Event:
        """Set when the broker pushes INTERRUPT for this lease: the CALL
        this message is the request of has given up (8.17)."""
        return self._client._interrupt_event(self.lease)

    def ack(self) -> None:
        """Remove the message for good; raises StaleLeaseError if the lease
        was not held."""
        self._settle(wire.OP_ACK)

    def nack(self) -> None:
        """Give the message back to its mailbox, redeliveries + 1."""
        self._settle(wire.OP_NACK)

    def ack_nowait(self) -> None:
        """ACK with NOREPLY: no reply, failures unseen."""
        if self.lease and not self._settled:
            self._settled = True
            self._client.ack([self.lease], noreply=True)

    def _settle(self, op: int) -> None:
        if not self.lease:
            return
        res = self._client._settle(op, [self.lease], False)
        self._settled = True
        if res is not None and res.failed:
            raise StaleLeaseError(f"lease {self.lease} is not held by this connection")

    def reply(
        self,
        body: Bytesish = b"",
        *,
        ack: bool = True,
        type: int = 1,
        priority: int = 0,
        content_type: Optional[str] = None,
        headers: UserHeaders = None,
    ) -> bool:
        """Answer this request: to its REPLY_TO with its CORRELATION_ID.

        To an inbox (a CALL's caller) the reply is sent with the REPLY flag:
        handed to the waiting CALL, or dropped if it gave up, never queued;
        with ``ack`` the request's lease is acked in the same frame
        (ACK_LEASE). Returns True if a waiting CALL (or a receiver) took it.
        To a mailbox name the reply is an ordinary send, then the ack."""
        to = self.reply_to
        if not to:
            raise ValueError("message has no REPLY_TO")
        m = OutMessage(body, type, priority, correlation_id=self.correlation_id, content_type=content_type,
                       headers=headers).encode()
        if to.startswith("@"):
            lease = self.lease if ack and not self._settled else 0
            r = self._client._send(to, [m], wire.FLAG_REPLY, 0, ack_lease=lease).result()
            if lease:
                self._settled = True
                self._client._forget_interrupt(lease)
            return r.taken
        r = self._client._send(to, [m], 0, -1).result()
        if ack:
            self.ack()
        return r.taken


# --- pending requests ----------------------------------------------------------


class Pending(Generic[T]):
    """A request in flight. :meth:`result` waits for its reply; :meth:`cancel`
    sends CANCEL (URGENT): the request then ends CANCELED, or with its
    real result if that won the race (12)."""

    __slots__ = ("_client", "id", "op", "_gate", "_done", "_status", "_payload", "_error", "_convert", "_value",
                 "_flags")

    def __init__(self, client: "Client", rid: int, op: int, convert: Callable[[bytes], T]):
        self._client = client
        self.id = rid
        self.op = op
        # a lock held until the reply is in: cheaper than an Event per request
        self._gate = threading.Lock()
        self._gate.acquire()
        self._done = False
        self._status = 0
        self._payload = b""
        self._error: Optional[PostboxError] = None
        self._convert = convert
        self._value: Optional[T] = None
        self._flags = 0

    def _complete(self, status: int, flags: int, payload: bytes) -> None:
        self._status, self._flags, self._payload = status, flags, payload
        self._done = True
        self._gate.release()

    def _fail(self, err: PostboxError) -> None:
        self._error = err
        self._done = True
        self._gate.release()

    def done(self) -> bool:
        return self._done

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait up to timeout seconds; True once the reply is in."""
        if self._done:
            return True
        if self._gate.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            self._gate.release()
            return True
        return self._done

    def result(self, timeout: Optional[float] = None) -> T:
        """The request's result, or its error raised. A local ``timeout``
        (seconds) that passes raises the built-in TimeoutError and leaves
        the request in flight (cancel it, or wait again)."""
        if not self._done and not self.wait(timeout):
            raise TimeoutError(f"request {self.id}: no reply within {timeout} s (still in flight)")
        if self._error is not None:
            raise self._error
        if self._status:
            self._error = error_from_reply(self._status, self._payload, self.op)
            raise self._error
        if self._convert is not None:
            try:
                self._value = self._convert(self._payload)
            except wire.DecodeError as e:
                self._client._protocol_error(f"reply to op 0x{self.op:02x}: {e}")
                raise ProtocolError(str(e)) from None
            self._convert = None
        return self._value  # type: ignore[return-value]

    def cancel(self) -> None:
        """Send CANCEL for this request (no effect if it has finished)."""
        if not self._done:
            self._client._cancel(self.id)


# --- consumers -----------------------------------------------------------------


class Consumer:
    """A CONSUME stream (8.9): DELIVERs queue here, up to its credit.

    Iterate, or call :meth:`get`. With ``auto_credit`` (the default) credit
    is given back as messages are taken from the consumer, in batches of
    about half the prefetch; otherwise call :meth:`credit`. :meth:`cancel`
    ends the stream: messages already on their way still arrive and must be
    settled; iteration stops once the broker's CONSUME-reply is in.
    :meth:`close` cancels, waits for the end and nacks what was not taken."""

    def __init__(self, client: "Client", mailbox: str, rid: int, prefetch: int, auto_credit: bool):
        self._client = client
        self.mailbox = mailbox
        self.id = rid
        self.prefetch = prefetch
        self._auto = auto_credit
        self._q: deque[Message] = deque()
        self._cv = threading.Condition()
        self._end: Optional[PostboxError] = None
        self._ended = False
        self._owed = 0
        self._canceled = False

    # called by the reader thread
    def _deliver(self, m: Message) -> None:
        with self._cv:
            self._q.append(m)
            if self._cv._waiters:  # type: ignore[attr-defined]  # skip notify's work when nobody waits
                self._cv.notify()

    def _finish(self, err: PostboxError) -> None:
        with self._cv:
            self._ended = True
            self._end = err
            self._cv.notify_all()

    @property
    def ended(self) -> bool:
        """True once the CONSUME-reply has arrived (or the connection ended)."""
        return self._ended

    @property
    def error(self) -> Optional[PostboxError]:
        """What ended the stream (CanceledError after cancel), once ended."""
        return self._end

    def get(self, timeout: Optional[float] = None) -> Message:
        """The next message. Raises the built-in TimeoutError if none came
        within timeout seconds, and the stream's end (CanceledError,
        DestroyedError, ...) once it has ended and every message was taken."""
        with self._cv:
            if not self._q and not self._ended and not self._cv.wait_for(lambda: self._q or self._ended, timeout):
                raise TimeoutError(f"consumer of {self.mailbox}: no message within {timeout} s")
            if self._q:
                m = self._q.popleft()
            else:
                assert self._end is not None
                raise self._end
            if self._auto and not self._ended and not self._canceled:
                self._owed += 1
                if self._owed >= max(1, self.prefetch // 2):
                    n, self._owed = self._owed, 0
                else:
                    n = 0
            else:
                n = 0
        if n:
            self.credit(n)
        return m

    def __iter__(self) -> Iterator[Message]:
        while True:
            try:
                yield self.get()
            except CanceledError:
                return

    def credit(self, n: int) -> None:
        """Let the broker send n more DELIVERs (CREDIT, no reply)."""
        if n > 0 and not self._ended:
            self._client._write(wire.encode_frame(wire.OP_CREDIT, 0, self.id, wire.Credit(n).encode()))

    def cancel(self) -> None:
        """Send CANCEL (URGENT); the stream ends after what is in flight."""
        if not self._ended and not self._canceled:
            self._canceled = True
            self._client._cancel(self.id)

    def wait_ended(self, timeout: Optional[float] = None) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: self._ended, timeout)

    def close(self, timeout: Optional[float] = 10.0) -> None:
        """Cancel, wait for the end, and nack every message not taken."""
        self.cancel()
        self.wait_ended(timeout)
        with self._cv:
            left = [m.lease for m in self._q if m.lease]
            self._q.clear()
        if left and not self._client.closed:
            self._client.nack(left, noreply=True)

    def __enter__(self) -> "Consumer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- mailboxes -----------------------------------------------------------------


class Mailbox:
    """A handle on a mailbox (or an inbox, ``@<id>``) by name; nothing is
    checked until a request uses it."""

    def __init__(self, client: "Client", name: str):
        self.client = client
        self.name = name

    def __repr__(self) -> str:
        return f"<Mailbox {self.name}>"

    def send(
        self,
        body: Bytesish = b"",
        *,
        type: int = 1,
        priority: int = 0,
        timeout: Optional[float] = None,
        nowait: bool = False,
        receipt: bool = False,
        reply_to: Optional[str] = None,
        correlation_id: Optional[Bytesish] = None,
        deadline: Deadline = None,
        content_type: Optional[str] = None,
        headers: UserHeaders = None,
    ) -> Receipt:
        """Send one message. ``timeout`` (seconds, None: as long as needed)
        bounds the wait for room; ``nowait`` fails with FullError at once.
        With ``receipt`` the send completes when a receiver has taken the
        message, and the Receipt names it."""
        return self.send_async(body, type=type, priority=priority, timeout=timeout, nowait=nowait,
                               receipt=receipt, reply_to=reply_to, correlation_id=correlation_id,
                               deadline=deadline, content_type=content_type, headers=headers).result()

    def send_async(self, body: Bytesish = b"", *, type: int = 1, priority: int = 0, timeout: Optional[float] = None,
                   nowait: bool = False, receipt: bool = False, reply_to: Optional[str] = None,
                   correlation_id: Optional[Bytesish] = None, deadline: Deadline = None,
                   content_type: Optional[str] = None, headers: UserHeaders = None) -> Pending[Receipt]:
        """As :meth:`send`, without waiting: returns the Pending request."""
        m = OutMessage(body, type, priority, reply_to, correlation_id, deadline, content_type, headers).encode()
        return self.client._send(self.name, [m], wire.FLAG_RECEIPT if receipt else 0, _timeout_ns(timeout, nowait))

    def send_batch(self, messages: Iterable[Union[OutMessage, Bytesish]], *, timeout: Optional[float] = None,
                   nowait: bool = False) -> Receipt:
        """Send up to 1024 messages in one SEND. On an error the exception's
        ``.done`` says how many leading messages were admitted (and stay)."""
        return self.send_batch_async(messages, timeout=timeout, nowait=nowait).result()

    def send_batch_async(self, messages: Iterable[Union[OutMessage, Bytesish]], *, timeout: Optional[float] = None,
                         nowait: bool = False) -> Pending[Receipt]:
        ms = [(m if isinstance(m, OutMessage) else OutMessage(m)).encode() for m in messages]
        return self.client._send(self.name, ms, 0, _timeout_ns(timeout, nowait))

    def send_best_effort(self, body: Bytesish = b"", *, type: int = 1, priority: int = 0,
                         reply_to: Optional[str] = None, correlation_id: Optional[Bytesish] = None,
                         deadline: Deadline = None, content_type: Optional[str] = None,
                         headers: UserHeaders = None) -> bool:
        """A "maybe" send (SEND with BEST_EFFORT, 8.7), for telemetry and
        real-time data where a late message is worth nothing: no reply, and
        it never waits for the broker or for room in the mailbox. The
        broker admits the message if there is room at once, else drops it
        and counts it in the mailbox's ``stat().dropped``; a send it
        refuses (no such mailbox, permission) is dropped uncounted. Nobody
        tells the sender what became of it.

        Returns True once the frame is queued for writing (not delivered),
        False if the client dropped it itself because its own output is
        congested: MAX_BEST_EFFORT_BACKLOG (4 MiB) already waits to be
        written, or the socket's send buffer is full. Raises only for what
        is known locally: InvalidError (type < 1, headers), TooLargeError
        (over max message), ConnectionLostError."""
        m = OutMessage(body, type, priority, reply_to, correlation_id, deadline, content_type, headers).encode()
        return self.client._send_best_effort(self.name, m)

    def receive(self, *, timeout: Optional[float] = None, nowait: bool = False, type: int = 0,
                autoack: bool = False) -> Message:
        """Receive one message (RECV). ``timeout`` in seconds (None: wait
        as long as needed) ends with TimedOutError; ``nowait`` with
        EmptyError at once. ``type`` selects as msgrcv(2) does. Unless
        ``autoack``, the message is leased: ack or nack it."""
        return self.receive_async(timeout=timeout, nowait=nowait, type=type, autoack=autoack).result()

    def receive_async(self, *, timeout: Optional[float] = None, nowait: bool = False, type: int = 0,
                      autoack: bool = False) -> Pending[Message]:
        """As :meth:`receive`, without waiting. A cancelled RECV that won
        the race still returns its message, to settle."""
        payload = wire.Recv(_b(self.name), type, _timeout_ns(timeout, nowait)).encode()
        name, c = self.name, self.client
        return c._request(wire.OP_RECV, wire.FLAG_AUTOACK if autoack else 0, payload,
                          lambda p: Message(c, name, wire.Delivery.decode(p)))

    def consume(self, *, prefetch: int = 64, type: int = 0, autoack: bool = False,
                auto_credit: bool = True) -> Consumer:
        """Start a CONSUME with ``prefetch`` credit; see :class:`Consumer`."""
        return self.client._consume(self.name, prefetch, type, autoack, auto_credit)

    def browse(self, *, type: int = 0, page: int = 0) -> Iterator[Message]:
        """Every queued message, in receive order, without taking any
        (BROWSE, pages of ``page`` messages; lease 0)."""
        cursor = b""
        while True:
            r = self.client._request(wire.OP_BROWSE, 0, wire.Browse(_b(self.name), type, cursor, page).encode(),
                                     wire.BrowseReply.decode).result()
            for d in r.messages:
                yield Message(self.client, self.name, d)
            if not r.next:
                return
            cursor = r.next

    def call(self, body: Bytesish = b"", *, timeout: Optional[float] = None, type: int = 1, priority: int = 0,
             correlation_id: Optional[Bytesish] = None, deadline: Deadline = None,
             content_type: Optional[str] = None, headers: UserHeaders = None) -> Message:
        """Send a request and wait for its reply in one round trip (CALL,
        8.16); ``timeout`` bounds the whole call. The reply is a Message
        (lease 0) whose ``request_id`` is the id the request got here.
        A CALL ended by its timeout or by cancel raises TimedOutError or
        CanceledError with ``.outcome`` (1 withdrawn, 2 in progress,
        3 settled) and ``.receiver``."""
        return self.call_async(body, timeout=timeout, type=type, priority=priority, correlation_id=correlation_id,
                               deadline=deadline, content_type=content_type, headers=headers).result()

    def call_async(self, body: Bytesish = b"", *, timeout: Optional[float] = None, type: int = 1,
                   priority: int = 0, correlation_id: Optional[Bytesish] = None, deadline: Deadline = None,
                   content_type: Optional[str] = None, headers: UserHeaders = None) -> Pending[Message]:
        """As :meth:`call`, without waiting; ``cancel()`` ends it with an
        OUTCOME."""
        c = self.client
        cid = _b(correlation_id) if correlation_id is not None else c._new_correlation()
        m = OutMessage(body, type, priority, c.inbox_name, cid, deadline, content_type, headers).encode()
        t = _timeout_ns(timeout)
        if t == 0:
            raise ValueError("a CALL always waits: timeout must be None or positive")
        payload = wire.Send(_b(self.name), t, [m]).encode()
        name = self.name

        def conv(p: bytes) -> Message:
            r = wire.CallReply.decode(p)
            return Message(c, name, r.delivery(), request_id=r.request)

        return c._request(wire.OP_CALL, 0, payload, conv)

    def stat(self) -> wire.MailboxInfo:
        return self.client.stat(self.name)

    def destroy(self) -> None:
        self.client.destroy(self.name)

    def chmod(self, mode: int) -> None:
        self.client.chmod(self.name, mode)

    def set_access(self, pattern: str, perms: str | int = "rw") -> None:
        self.client.set_access(self.name, pattern, perms)

    def remove_access(self, pattern: str) -> None:
        self.client.remove_access(self.name, pattern)


# --- the client ------------------------------------------------------------------


class Client:
    """One connection to a postbox broker; use :func:`connect`.

    Thread-safe: any number of threads may make requests at once."""

    def __init__(self, stream, *, name: str = "postbox-python", session: Optional[bytes] = None,
                 address: str = "", handshake_timeout: Optional[float] = 10.0):
        self._stream = stream
        self.address = address
        self._wcv = threading.Condition(threading.Lock())  # the two output lanes
        self._urgent: list[bytes] = []
        self._data: list[bytes] = []
        self._queued = 0
        self._flushing = False
        self._lock = threading.Lock()  # _pending, _consumers, _interrupts
        self._pending: dict[int, Pending] = {}
        self._consumers: dict[int, Consumer] = {}
        self._interrupts: dict[int, threading.Event] = {}
        self._ids = itertools.count(1)
        self._closed = False
        self._err: Optional[PostboxError] = None
        self._corr_prefix = secrets.token_bytes(8)
        self._corr = itertools.count(1)
        #: called by the reader thread as on_interrupt(lease, reason)
        self.on_interrupt: Optional[Callable[[int, int], None]] = None
        try:
            self._handshake(name, session, handshake_timeout)
        except ssl.SSLError as e:  # TLS 1.3: a refused certificate is an alert on the first read
            stream.close()
            raise _tr.tls_error(e, address or "the broker") from e
        except BaseException:
            stream.close()
            raise
        self._ka_stop = threading.Event()
        self._keepalive: Optional[threading.Thread] = None
        self._reader = threading.Thread(target=self._read_loop, name="postbox-reader", daemon=True)
        self._reader.start()
        if self.keepalive is not None:
            self._keepalive = threading.Thread(target=self._keepalive_loop, name="postbox-keepalive", daemon=True)
            self._keepalive.start()

    # --- handshake (4.2, 8.1) ---

    def _recv_exact(self, n: int, buf: bytearray) -> bytes:
        while len(buf) < n:
            chunk = self._stream.recv(_READ_CHUNK)
            if not chunk:
                raise ConnectionLostError("connection closed by the broker during the handshake")
            buf += chunk
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def _handshake(self, name: str, session: Optional[bytes], timeout: Optional[float]) -> None:
        self._stream.settimeout(timeout)
        rid = next(self._ids)
        hello = wire.Hello(client=name.encode()[:255], caps=0, session=session or bytes(16))
        self._stream.sendall(wire.encode_frame(wire.OP_HELLO, 0, rid, hello.encode()))
        buf = bytearray()
        size, h = wire.decode_header(self._recv_exact(wire.HEADER_SIZE, buf))
        if size > 1 << 20:
            raise ProtocolError(f"handshake reply of {size} bytes")
        payload = self._recv_exact(size - 12, buf)
        if h.op != wire.OP_HELLO | wire.REPLY_BIT or h.request != rid:
            raise ProtocolError(f"handshake: unexpected reply op 0x{h.op:02x} id {h.request}")
        if h.status:
            raise error_from_reply(h.status, payload, wire.OP_HELLO)
        r = wire.HelloReply.decode(payload)
        if r.version != wire.VERSION:
            raise VersionError(f"broker chose version {r.version}")
        self.endpoint: int = r.endpoint
        self.caps: int = r.caps
        self.epoch: int = r.epoch
        self.session: bytes = r.session
        self.principal: wire.Principal = r.principal
        self.max_frame: int = r.max_frame
        self.max_message: int = r.max_message
        self.server: str = r.server.decode("utf-8", "replace")
        self.hello_ext: bytes = r.ext
        #: this client's name as the broker read it from its TLS certificate (7.3), or None
        self.principal_name: Optional[str] = wire.principal_name(r.ext)
        #: seconds: the broker closes this connection after DEAD_PEER without a frame from it (4.3); None on a
        #: Unix socket. The client pings every ``keepalive`` and gives the broker up after ``dead_peer`` of silence.
        self.dead_peer: Optional[float] = r.dead_peer / 1e9 if r.dead_peer > 0 else None
        self.keepalive: Optional[float] = r.keepalive / 1e9 if r.keepalive > 0 else None
        if self.keepalive is None and self.dead_peer is not None:
            self.keepalive = self.dead_peer / 3  # what KEEPALIVE would have said (4.3)
        self._buf = buf
        self._stream.settimeout(None)
        self._last_write = self._last_read = time.monotonic()

    @property
    def inbox_name(self) -> str:
        """This connection's inbox address, ``@<endpoint>``."""
        return wire.inbox_name(self.endpoint)

    @property
    def inbox(self) -> Mailbox:
        return Mailbox(self, self.inbox_name)

    def mailbox(self, name: str) -> Mailbox:
        return Mailbox(self, name)

    @property
    def closed(self) -> bool:
        return self._closed or self._err is not None

    # --- the reader thread ---

    def _read_loop(self) -> None:
        buf = self._buf
        limit = self.max_frame + wire.DELIVERY_OVERHEAD
        dead = self.dead_peer if self.keepalive is not None else None
        err: PostboxError = ConnectionLostError("connection closed by the broker")
        try:
            while True:
                pos, n = 0, len(buf)
                while n - pos >= 4:
                    size = int.from_bytes(buf[pos : pos + 4], "little")
                    if size < 12:
                        raise ProtocolError(f"frame size {size} below 12")
                    if size > limit:
                        raise ProtocolError(f"frame size {size} over the read limit {limit}")
                    if n - pos < size + 4:
                        break
                    _, op, flags, status, rid = wire._HEADER.unpack_from(buf, pos)
                    payload = bytes(buf[pos + 16 : pos + 4 + size])
                    pos += size + 4
                    self._dispatch(op, flags, status, rid, payload)
                if pos:
                    del buf[:pos]
                if dead is None:
                    chunk = self._stream.recv(_READ_CHUNK)
                else:
                    try:
                        chunk = self._stream.recv(_READ_CHUNK, self._last_read + dead - time.monotonic())
                    except TimeoutError:
                        if self._closed or time.monotonic() - self._last_read < dead:
                            continue
                        raise DeadPeerError(f"no frame from the broker for {dead:g} s, its dead-peer time, "
                                            "although this client pinged it: the connection is closed as dead")
                    self._last_read = time.monotonic()
                if not chunk:
                    break
                buf += chunk
        except PostboxError as e:
            err = e
            if isinstance(e, DeadPeerError):
                log.warning("postbox: %s", e)
        except wire.DecodeError as e:  # a pushed frame that does not decode
            err = ProtocolError(f"undecodable frame from the broker: {e}")
            log.error("postbox: %s; closing the connection", err)
        except (OSError, ValueError) as e:
            if not self._closed:
                err = ConnectionLostError(f"connection lost: {e}")
        except Exception as e:  # a bug in dispatch must not hang every caller
            log.exception("postbox reader failed")
            err = ConnectionLostError(f"reader failed: {e!r}")
        if self._closed:
            err = ConnectionLostError("client closed")
        self._shutdown(err)

    def _dispatch(self, op: int, flags: int, status: int, rid: int, payload: bytes) -> None:
        if flags & wire.FLAG_PUSH:
            if op == wire.OP_DELIVER:
                with self._lock:
                    c = self._consumers.get(rid)
                if c is None:
                    log.warning("DELIVER for unknown consumer %d", rid)
                    return
                c._deliver(Message(self, c.mailbox, wire.Delivery.decode(payload)))
            elif op == wire.OP_INTERRUPT:
                it = wire.Interrupt.decode(payload)
                self._interrupt_event(it.lease).set()
                cb = self.on_interrupt
                if cb is not None:
                    try:
                        cb(it.lease, it.reason)
                    except Exception:
                        log.exception("on_interrupt callback failed")
            return  # other pushed ops are reserved: ignore them
        with self._lock:
            p = self._pending.get(rid)
            c = self._consumers.get(rid) if p is None else None
            if p is not None and p.op != wire.OP_CONSUME:
                del self._pending[rid]
            if c is not None:
                del self._consumers[rid]
        if c is not None:  # a CONSUME-reply: the stream's last frame
            c._finish(error_from_reply(status if status else 16, payload, wire.OP_CONSUME))
            return
        if p is None:
            log.warning("reply op 0x%02x for unknown request %d", op, rid)
            return
        if op != p.op | wire.REPLY_BIT:
            p._fail(ProtocolError(f"request {rid}: reply op 0x{op:02x}, want 0x{p.op | 0x80:02x}"))
            return
        p._complete(status, flags, payload)

    def _protocol_error(self, msg: str) -> None:
        log.error("postbox: %s; closing the connection", msg)
        self._err = self._err or ProtocolError(msg)
        self._stream.shutdown()

    def _shutdown(self, err: PostboxError) -> None:
        with self._lock:
            if self._err is None:
                self._err = err
            pend, self._pending = self._pending, {}
            cons, self._consumers = self._consumers, {}
        for p in pend.values():
            p._fail(err)
        for c in cons.values():
            c._finish(err)
        self._ka_stop.set()
        self._stream.shutdown()

    # --- writing ---

    def _write(self, frame: bytes, urgent: bool = False) -> None:
        """Queue a whole frame in its lane and make sure it gets written.

        Two lanes, urgent and data (2.3, 11 step 4), under one lock: the
        first writer to find no write in progress becomes the flusher and
        writes whatever is queued, urgent frames first, until both lanes
        are empty; writers arriving meanwhile only queue (their frames go
        out in the flusher's next write, several frames per syscall). A
        frame is never split. Past 8 MiB queued, writers wait for room."""
        if self._err is not None:
            raise self._err
        with self._wcv:
            if urgent:
                self._urgent.append(frame)
            else:
                while self._queued > _MAX_QUEUED and self._flushing and self._err is None:
                    self._wcv.wait(1.0)
                self._data.append(frame)
                self._queued += len(frame)
            if self._flushing:
                return
            self._flushing = True
        self._flush()

    def _flush(self) -> None:
        while True:
            with self._wcv:
                if self._urgent:
                    chunk, self._urgent = self._urgent, []
                elif self._data:
                    chunk, self._data = self._data, []
                    self._queued = 0
                    self._wcv.notify_all()
                else:
                    self._flushing = False
                    return
            try:
                self._stream.sendall(chunk[0] if len(chunk) == 1 else b"".join(chunk))
                self._last_write = time.monotonic()
            except OSError as e:
                err = ConnectionLostError(f"write failed: {e}")
                with self._wcv:
                    self._flushing = False
                    self._urgent, self._data, self._queued = [], [], 0
                    self._wcv.notify_all()
                if self._err is None:
                    self._err = err
                self._stream.shutdown()  # the reader ends and fails what is pending
                raise err from None

    def _keepalive_loop(self) -> None:
        """The keepalive thread (4.3): a PING (URGENT) whenever KEEPALIVE
        passes without a frame written. Its reply completes a request
        nobody waits for. If writing the PING blocks (the broker stopped
        reading), the reader's dead-peer check ends the connection, which
        ends the write and this loop; close() joins it."""
        ka = self.keepalive
        assert ka is not None
        last_ping = 0.0
        while not self._ka_stop.is_set():
            wait = max(self._last_write, last_ping) + ka - time.monotonic()
            if wait > 0:
                self._ka_stop.wait(wait)
                continue
            last_ping = time.monotonic()
            try:
                self._request(wire.OP_PING, wire.FLAG_URGENT, b"", None)  # type: ignore[arg-type]
            except PostboxError:
                return

    def _request(self, op: int, flags: int, payload: bytes, convert: Callable[[bytes], T]) -> Pending[T]:
        rid = next(self._ids)
        p: Pending[T] = Pending(self, rid, op, convert)
        with self._lock:
            if self._err is not None:
                raise self._err
            self._pending[rid] = p
        try:
            self._write(wire.encode_frame(op, flags, rid, payload), urgent=bool(flags & wire.FLAG_URGENT))
        except PostboxError:
            with self._lock:
                self._pending.pop(rid, None)
            raise
        return p

    def _cancel(self, rid: int) -> None:
        try:
            self._write(wire.encode_frame(wire.OP_CANCEL, wire.FLAG_URGENT, rid), urgent=True)
        except PostboxError:
            pass

    def _send(self, target: str, msgs: list[wire.Message], flags: int, timeout_ns: int,
              ack_lease: int = 0) -> Pending[Receipt]:
        payload = wire.Send(_b(target), timeout_ns, msgs, ack_lease).encode()
        if len(payload) + 12 > self.max_frame:
            raise TooLargeError(f"SEND of {len(payload) + 12} bytes over max frame {self.max_frame} (not sent)")

        def conv(p: bytes) -> Receipt:
            r = wire.SendReply.decode(p)
            return Receipt(r.ids, r.taken, r.receipt if r.taken else None, wire.principal_name(r.ext) if r.ext else None)

        return self._request(wire.OP_SEND, flags, payload, conv)

    def _send_best_effort(self, target: str, m: wire.Message) -> bool:
        if m.type < 1:
            raise InvalidError(f"send to {target!r}: message type must be at least 1 (not sent)")
        if len(m.body) + len(m.headers) > self.max_message:
            raise TooLargeError(f"send to {target!r}: message of {len(m.body) + len(m.headers)} bytes over max "
                                f"message {self.max_message} (not sent)")
        payload = wire.Send(_b(target), 0, [m]).encode()
        if len(payload) + 12 > self.max_frame:
            raise TooLargeError(f"SEND of {len(payload) + 12} bytes over max frame {self.max_frame} (not sent)")
        # no reply ever comes (5.3): the id is not registered
        frame = wire.encode_frame(wire.OP_SEND, wire.FLAG_BEST_EFFORT, next(self._ids), payload)
        if self._err is not None:
            raise self._err
        with self._wcv:
            if self._queued >= MAX_BEST_EFFORT_BACKLOG:
                return False
            if not self._flushing and not self._stream.writable():
                return False  # the kernel's buffer is full: writing would wait for the broker
            self._data.append(frame)
            self._queued += len(frame)
            if self._flushing:
                return True
            self._flushing = True
        self._flush()
        return True

    def _consume(self, name: str, prefetch: int, type: int, autoack: bool, auto_credit: bool) -> Consumer:
        rid = next(self._ids)
        c = Consumer(self, name, rid, prefetch, auto_credit)
        with self._lock:
            if self._err is not None:
                raise self._err
            self._consumers[rid] = c
        try:
            self._write(wire.encode_frame(wire.OP_CONSUME, wire.FLAG_AUTOACK if autoack else 0, rid,
                                          wire.Consume(_b(name), type, prefetch).encode()))
        except PostboxError:
            with self._lock:
                self._consumers.pop(rid, None)
            raise
        return c

    def _new_correlation(self) -> bytes:
        return self._corr_prefix + next(self._corr).to_bytes(8, "big")

    def _interrupt_event(self, lease: int) -> threading.Event:
        with self._lock:
            e = self._interrupts.get(lease)
            if e is None:
                e = self._interrupts[lease] = threading.Event()
            return e

    def _forget_interrupt(self, lease: int) -> None:
        with self._lock:
            self._interrupts.pop(lease, None)

    def _settle(self, op: int, leases: Iterable[int], noreply: bool) -> Optional[AckResult]:
        leases = list(leases)
        ranges = wire.ranges_of(leases)
        result = AckResult(0, [])
        if self._interrupts:
            with self._lock:
                for lease in leases:
                    self._interrupts.pop(lease, None)
        # up to 4096 ranges and 65536 leases per frame (8.11)
        i = 0
        while i < len(ranges):
            chunk, total = [], 0
            while i < len(ranges) and len(chunk) < wire.MAX_RANGES:
                r = ranges[i]
                room = wire.MAX_LEASES - total
                if room == 0:
                    break
                if r.n > room:
                    chunk.append(wire.Range(r.first, room))
                    ranges[i] = wire.Range(r.first + room, r.n - room)
                    total += room
                    break
                chunk.append(r)
                total += r.n
                i += 1
            payload = wire.Leases(chunk).encode()
            if noreply:
                self._write(wire.encode_frame(op, wire.FLAG_NOREPLY, 0, payload))
                continue
            a = self._request(op, 0, payload, wire.AckReply.decode).result()
            result.done += a.done
            result.failed += a.failed
        return None if noreply else result

    # --- requests ---

    def ping(self, *, urgent: bool = False) -> None:
        """A round trip (PING)."""
        self._request(wire.OP_PING, wire.FLAG_URGENT if urgent else 0, b"", None).result()  # type: ignore[arg-type]

    def create(self, name: str, *, capacity: int = -1, mode: int = 0o600, durable: bool = False,
               max_bytes: int = 0, ttl: Optional[float] = None, max_deliveries: int = 0,
               dead_letter: Optional[str] = None, service: bool = False,
               cluster: Optional[int] = None) -> Mailbox:
        """Create a mailbox (CREATE, 8.3): capacity -1 unbounded, 0
        rendezvous, N bounded; ``ttl`` in seconds. ``cluster=R`` makes it
        on the broker's NATS JetStream cluster with R replicas (0: the
        cluster's default; 8.26, docs/CLUSTER.md)."""
        c = wire.Create(_b(name), capacity, mode, durable, max_bytes, int((ttl or 0) * 1e9), max_deliveries,
                        _b(dead_letter or b""), service)
        if cluster is not None:
            c.cluster, c.replicas = True, cluster
        self._request(wire.OP_CREATE, 0, c.encode(), None).result()  # type: ignore[arg-type]
        return Mailbox(self, name)

    def destroy(self, name: str) -> None:
        self._request(wire.OP_DESTROY, 0, wire.Name(_b(name)).encode(), None).result()  # type: ignore[arg-type]

    def stat(self, name: str) -> wire.MailboxInfo:
        return self._request(wire.OP_STAT, 0, wire.Name(_b(name)).encode(), wire.MailboxInfo.decode).result()

    def chmod(self, name: str, mode: int) -> None:
        self._request(wire.OP_CHMOD, 0, wire.Chmod(_b(name), mode).encode(), None).result()  # type: ignore[arg-type]

    def list_page(self, cursor: Bytesish = b"", limit: int = 0) -> tuple[list[wire.MailboxInfo], bytes]:
        """One LIST page and the cursor of the next (empty: the last)."""
        r = self._request(wire.OP_LIST, 0, wire.List(_b(cursor), limit).encode(), wire.ListReply.decode).result()
        return r.infos, r.next

    def list(self, *, page: int = 0) -> Iterator[wire.MailboxInfo]:
        """Every mailbox (inboxes included), page by page until ``next`` is
        empty (a short page is not the end)."""
        cursor = b""
        while True:
            infos, cursor = self.list_page(cursor, page)
            yield from infos
            if not cursor:
                return

    def set_access(self, name: str, pattern: str, perms: str | int = "rw") -> None:
        """Add or change an access entry (ACL, 8.18): what TLS principals
        matching ``pattern`` (an exact name or a path.Match pattern) may do
        with mailbox ``name``: perms "r", "w", "rw" (or PERM_R | PERM_W).
        Owner or root only."""
        if isinstance(perms, str):
            bits = {"r": wire.PERM_R, "w": wire.PERM_W}
            try:
                perms = sum(bits[c] for c in set(perms))
            except KeyError:
                raise ValueError(f"perms {perms!r}: want r, w or rw") from None
        a = wire.ACL(_b(name), wire.ACL_SET, perms, _b(pattern))
        self._request(wire.OP_ACL, 0, a.encode(), None).result()  # type: ignore[arg-type]

    def remove_access(self, name: str, pattern: str) -> None:
        """Remove the access entry with this pattern (NotFoundError if none)."""
        a = wire.ACL(_b(name), wire.ACL_REMOVE, 0, _b(pattern))
        self._request(wire.OP_ACL, 0, a.encode(), None).result()  # type: ignore[arg-type]

    def usage(self, uid: Optional[int] = None) -> list[Union[wire.UsageEntry, wire.PrincipalUsage]]:
        """USAGE (8.15): every bucket the caller may see, or one uid's: the
        uids' and the anonymous bucket (UsageEntry), then TLS principals'
        buckets by name (PrincipalUsage). Both have ``used`` and ``quota``."""
        u = wire.Usage(uid is not None, uid or 0)
        r = self._request(wire.OP_USAGE, 0, u.encode(), wire.UsageReply.decode).result()
        return [*r.entries, *r.principals]

    def info(self) -> wire.InfoReply:
        """INFO (8.25): the broker's version, pid, uptime, listeners, data
        directory, limits, connections, memory and store size."""
        return self._request(wire.OP_INFO, 0, b"", wire.InfoReply.decode).result()

    def ack(self, leases: Iterable[int], *, noreply: bool = False) -> Optional[AckResult]:
        """ACK leases, merged into ranges; returns the AckResult (None with
        ``noreply``)."""
        return self._settle(wire.OP_ACK, leases, noreply)

    def nack(self, leases: Iterable[int], *, noreply: bool = False) -> Optional[AckResult]:
        """NACK leases: their messages go back to their mailboxes."""
        return self._settle(wire.OP_NACK, leases, noreply)

    # --- closing ---

    def close(self) -> None:
        """Close the connection and join the reader (and keepalive) thread. Requests in
        flight fail with ConnectionLostError; the broker returns unacked
        messages and destroys the inbox."""
        if self._closed:
            return
        self._closed = True
        self._ka_stop.set()
        self._stream.shutdown()
        me = threading.current_thread()
        if me is not self._reader:
            self._reader.join()
        if self._keepalive is not None and me is not self._keepalive:
            self._keepalive.join()
        self._stream.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(
    socket_path: Optional[str] = None,
    *,
    url: Optional[str] = None,
    ssl_context: Optional[ssl.SSLContext] = None,
    tls_cert: Optional[str] = None,
    tls_key: Optional[str] = None,
    tls_ca: Optional[str] = None,
    server_hostname: Optional[str] = None,
    name: str = "postbox-python",
    session: Optional[bytes] = None,
    timeout: Optional[float] = 10.0,
) -> Client:
    """Connect to a broker and complete the handshake.

    Where, in order: ``socket_path`` (used as given, unless it is the
    per-user default, which is checked), ``url`` (``unix:///path``,
    ``tls://host:port``, ``tcp://host:port``), ``$POSTBOX_SOCKET`` (as
    given), ``$POSTBOX_URL``, else the default paths of PROTOCOL.md
    section 1 (per-user, then system-wide, each checked first). For TLS,
    pass ``ssl_context`` or ``tls_cert``/``tls_key``/``tls_ca``.
    ``timeout`` bounds connecting and the handshake. A handshake the
    broker closes before answering (it bounds the handshakes in progress
    per uid; or it is restarting) is tried again, for at most 5 s."""
    ctx = ssl_context
    tls_cert = tls_cert or os.environ.get("POSTBOX_TLS_CERT") or None
    tls_key = tls_key or os.environ.get("POSTBOX_TLS_KEY") or None
    tls_ca = tls_ca or os.environ.get("POSTBOX_TLS_CA") or None
    if ctx is None and (tls_cert or tls_ca):
        ctx = _tr.tls_context(tls_cert, tls_key, tls_ca)
    if socket_path is None and url is None:
        socket_path = os.environ.get("POSTBOX_SOCKET") or None
        if socket_path is None:
            url = os.environ.get("POSTBOX_URL") or None
    addr = None
    if socket_path is not None:
        if socket_path == _tr.user_socket_path():
            _tr.check_default_path(socket_path)
    elif url is not None:
        addr = _tr.parse_url(url)
        if addr.scheme == "tls" and ctx is None:
            raise ValueError("a tls:// url needs ssl_context or tls_cert/tls_key/tls_ca")

    def dial(t: Optional[float]) -> tuple:
        if socket_path is not None:
            return _tr.dial_unix(socket_path, t), f"unix://{socket_path}"
        if addr is not None:
            return _tr.dial(addr, t, ctx, server_hostname), str(addr)
        s, path = _tr.dial_defaults(t)
        return s, f"unix://{path}"

    # A broker closes a connection past its bound of connections still in
    # their handshake (per uid) before it can say why, and one that is
    # restarting closes it too: as the Go client does, try again after a
    # pause that doubles, for at most _HANDSHAKE_RETRY_BUDGET (and
    # ``timeout``) in all. Any other failure is raised at once.
    start = time.monotonic()
    budget = _HANDSHAKE_RETRY_BUDGET if timeout is None else min(timeout, _HANDSHAKE_RETRY_BUDGET)
    deadline = start + budget
    pause = _HANDSHAKE_RETRY_FIRST
    while True:
        # Each attempt gets what is left of timeout: it bounds them all.
        left = None if timeout is None else max(start + timeout - time.monotonic(), 0.001)
        stream, where = dial(left)
        try:
            return Client(stream, name=name, session=session, address=where, handshake_timeout=left)
        except (ConnectionLostError, ConnectionResetError, BrokenPipeError):
            if time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(2 * pause, _HANDSHAKE_RETRY_MAX)


# connect's retries of a handshake the broker closed: the first pause, the
# longest, and the time they may take in all (seconds), as the Go client's.
_HANDSHAKE_RETRY_FIRST = 0.002
_HANDSHAKE_RETRY_MAX = 0.1
_HANDSHAKE_RETRY_BUDGET = 5.0
