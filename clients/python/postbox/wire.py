"""The postbox protocol version 2 encoding (docs/PROTOCOL.md sections 2, 3, 8).

Pure functions and dataclasses, no I/O: every payload type has a dataclass
with ``encode() -> bytes`` and a classmethod ``decode(bytes)``. Decoding is
strict (PROTOCOL.md 3.1): a failure raises :class:`DecodeError` whose
``kind`` is the conformance vectors' error class (``malformed``,
``critical``, ``invalid``, ``version``, ``bad_frame``). When a payload has
several problems the whole structure is checked first, so ``malformed``
wins over ``critical`` and ``invalid``.

Field names are the snake_case names of the protocol document and of the
conformance vectors (wire/testdata/vectors/README.md).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from typing import ClassVar, Optional

# --- frame header (2.1) -----------------------------------------------------

HEADER_SIZE = 16
_HEADER = struct.Struct("<IBBHQ")
DELIVERY_OVERHEAD = 84  # a client's read limit is max frame + this (6.3)
MAGIC = 0x584F4250  # "PBOX"
VERSION = 2

# ops (2.2)
OP_HELLO = 0x01
OP_PING = 0x02
OP_CREATE = 0x10
OP_DESTROY = 0x11
OP_STAT = 0x12
OP_LIST = 0x13
OP_CHMOD = 0x14
OP_USAGE = 0x15
OP_ACL = 0x16
OP_INFO = 0x17
OP_SEND = 0x20
OP_RECV = 0x21
OP_CONSUME = 0x22
OP_CREDIT = 0x23
OP_ACK = 0x24
OP_NACK = 0x25
OP_CANCEL = 0x26
OP_BROWSE = 0x27
OP_CALL = 0x28
OP_SHUT = 0x2A
OP_PIPE_OPEN = 0x50
OP_PIPE_CLOSE = 0x51
OP_CHANNEL = 0x30
OP_ATTACH = 0x31
OP_DELIVER = 0x60
OP_INTERRUPT = 0x61
OP_JOIN = 0x44  # 8.21; flag FLAG_LEAVE
OP_WATCH = 0x45  # 8.22, streaming
OP_NOTICE = 0x63  # 8.22, pushed to a WATCH
FLAG_LEAVE = 0x01  # JOIN
EXT_RECIPIENTS = 0x0060  # SendReply: u32 fan-out count (8.21)
OP_PUBLISH = 0x40  # publish/subscribe (8.20)
OP_SUBSCRIBE = 0x41
OP_BIND = 0x42
OP_TOPICS = 0x43
OP_CLAIM = 0x46
OP_EVENT = 0x62
FLAG_UNBIND = 0x01  # BIND
OP_WITHDRAW = 0x29
REPLY_BIT = 0x80

# flags (2.3)
FLAG_RECEIPT = 0x01
FLAG_AUTOACK = 0x02
FLAG_NOREPLY = 0x04
FLAG_REPLY = 0x08
FLAG_BEST_EFFORT = 0x10
FLAG_URGENT = 0x40
FLAG_PUSH = 0x80
FLAG_URGENT_MSG = 0x20  # SEND (8.19)
FLAG_ANY_SENDER = 0x01  # WITHDRAW (8.19)
DELIVERY_URGENT = 0x02  # Delivery.flags (8.19)
OUTCOME_NO_SUCH_MESSAGE = 4  # WITHDRAW (8.19)
MAX_WITHDRAW_IDS = 1024

# capabilities (8.1)
CAP_DESCRIPTORS = 0x1

# message header tags (3.3)
HDR_REPLY_TO = 1
HDR_CORRELATION_ID = 2
HDR_DEADLINE = 3
HDR_CONTENT_TYPE = 4
HDR_USER = 5
MAX_HEADER_ENTRIES = 64
MAX_HEADERS_BYTES = 16384

# ext tags (3.2)
EXT_CRITICAL = 0x8000
EXT_DONE = 0x0001
EXT_OUTCOME = 0x0002
EXT_RECEIVER = 0x0003
EXT_ACK_LEASE = 0x8001
EXT_DURABLE = 0x8001
EXT_MAX_BYTES = 0x8002
EXT_TTL = 0x8003
EXT_MAX_DELIVERIES = 0x8004
EXT_DEAD_LETTER = 0x8005
EXT_SERVICE = 0x8006
EXT_PIPE = 0x8007  # Create: the mailbox is a pipe, u32 buffer bytes (8.23)
EXT_CLUSTER = 0x8008  # Create: a cluster mailbox, u8 replicas (8.26)
EXT_PRINCIPAL_NAME = 0x0020  # HelloReply, Delivery, SendReply, error reply (7.3)
EXT_OWNER = 0x0020  # MailboxInfo: a remote owner (7.4)
EXT_ACCESS = 0x0021  # MailboxInfo: one access entry (7.4, 8.18)
EXT_KEEPALIVE = 0x0010  # HelloReply: send a frame whenever this long (i64 ns) passes without one (4.3)
EXT_DEAD_PEER = 0x0011  # HelloReply: the broker closes a connection silent this long (i64 ns) (4.3)
EXT_DROPPED = 0x0010  # MailboxInfo: best-effort messages dropped (u64) (8.5, 8.7)
EXT_INFO_CLUSTER = 0x0011  # MailboxInfo: the cluster holding the mailbox (string); marks a cluster mailbox (8.26)
EXT_INFO_REPLICAS = 0x0012  # MailboxInfo: a cluster mailbox's replica count (u8) (8.26)
EXT_INFO_STREAM_STATE = 0x0013  # MailboxInfo: its stream's state as the cluster reports it (string) (8.26)
EXT_INFO_STREAM = 0x0014  # MailboxInfo: the stream holding it (string) (8.26)
EXT_FILES = 0x8002  # SEND: u8 per message, descriptors that belong to it (8.24)

# descriptors on messages (8.24)
DELIVERY_FILES = 0x04  # Delivery flags: the message carries descriptors
MAX_FRAME_FILES = 64  # most descriptors with one frame

# ACL actions and perms (8.18)
ACL_SET = 1
ACL_REMOVE = 2
PERM_R = 4
PERM_W = 2
NO_UID = 0xFFFFFFFF  # MailboxInfo uid/gid of a mailbox with a remote owner

# MailboxInfo flags (8.5)
INFO_DURABLE = 1
INFO_INBOX = 2
INFO_SERVICE = 4
INFO_CLOSED = 0x10  # closed for sending (8.23)
INFO_PIPE = 0x20  # a pipe (8.23)

# CALL outcomes (8.16)
OUTCOME_WITHDRAWN = 1
OUTCOME_IN_PROGRESS = 2
OUTCOME_SETTLED = 3

MAX_BATCH = 1024
MAX_RANGES = 4096
MAX_LEASES = 65536
PRINCIPAL_SIZE = 21
U64_MAX = (1 << 64) - 1


class DecodeError(ValueError):
    """A payload or frame that does not decode.

    ``kind`` is one of ``malformed``, ``critical`` (an unknown critical ext
    tag), ``invalid`` (parses but breaks a rule), ``version`` (a HELLO
    without version 2 in its range) and ``bad_frame`` (a size below 12).
    """

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind


@dataclass
class Header:
    """The 16-byte frame header (2.1); ``size`` is implied by the payload."""

    op: int
    flags: int = 0
    status: int = 0
    request: int = 0

    def encode(self, payload_len: int) -> bytes:
        return _HEADER.pack(12 + payload_len, self.op, self.flags, self.status, self.request)


def encode_frame(op: int, flags: int, request: int, payload: bytes = b"", status: int = 0) -> bytes:
    """A whole frame: header then payload."""
    return _HEADER.pack(12 + len(payload), op, flags, status, request) + payload


def decode_header(b: bytes) -> tuple[int, Header]:
    """Decode the first 16 bytes of a frame: returns (size, header).

    A size below 12 is ``bad_frame``: the stream cannot be trusted.
    """
    if len(b) < HEADER_SIZE:
        if len(b) >= 4 and struct.unpack_from("<I", b)[0] < 12:
            raise DecodeError("bad_frame", "frame size below 12")
        raise DecodeError("malformed", "short frame header")
    size, op, flags, status, request = _HEADER.unpack_from(b)
    if size < 12:
        raise DecodeError("bad_frame", f"frame size {size} below 12")
    return size, Header(op, flags, status, request)


def decode_frame(b: bytes) -> tuple[Header, bytes]:
    """Split one whole frame into its header and payload."""
    size, h = decode_header(b)
    if size + 4 != len(b):
        raise DecodeError("malformed", f"frame size {size} does not match {len(b)} bytes")
    return h, bytes(b[HEADER_SIZE:])


# --- the reader: strict field decoding ---------------------------------------


class _R:
    """A cursor over one payload. Structural problems raise at once;
    rule problems (critical tags, invalid values) are deferred until the
    whole structure has been read (3.2: structure wins over meaning)."""

    __slots__ = ("b", "i", "end", "deferred")

    def __init__(self, b: bytes, start: int = 0, end: Optional[int] = None):
        self.b = b
        self.i = start
        self.end = len(b) if end is None else end
        self.deferred: Optional[DecodeError] = None

    def need(self, n: int, what: str) -> None:
        if self.i + n > self.end:
            raise DecodeError("malformed", f"{what} runs past the end")

    def u8(self, what: str = "u8") -> int:
        self.need(1, what)
        v = self.b[self.i]
        self.i += 1
        return v

    def unpack(self, st: struct.Struct, what: str):
        self.need(st.size, what)
        v = st.unpack_from(self.b, self.i)
        self.i += st.size
        return v[0] if len(v) == 1 else v

    def u16(self, what: str = "u16") -> int:
        return self.unpack(_U16, what)

    def u32(self, what: str = "u32") -> int:
        return self.unpack(_U32, what)

    def u64(self, what: str = "u64") -> int:
        return self.unpack(_U64, what)

    def i32(self, what: str = "i32") -> int:
        return self.unpack(_I32, what)

    def i64(self, what: str = "i64") -> int:
        return self.unpack(_I64, what)

    def raw(self, n: int, what: str) -> bytes:
        self.need(n, what)
        v = bytes(self.b[self.i : self.i + n])
        self.i += n
        return v

    def string(self, what: str = "string") -> bytes:
        return self.raw(self.u16(what + " length"), what)

    def bytes_(self, what: str = "bytes") -> bytes:
        return self.raw(self.u32(what + " length"), what)

    def principal(self, what: str = "principal") -> "Principal":
        self.need(PRINCIPAL_SIZE, what)
        kind, uid, gid, pid, ep = _PRINCIPAL.unpack_from(self.b, self.i)
        self.i += PRINCIPAL_SIZE
        return Principal(kind, uid, gid, pid, ep)

    def defer(self, kind: str, msg: str) -> None:
        if self.deferred is None:
            self.deferred = DecodeError(kind, msg)

    def ext(self, known: Optional[dict[int, Optional[int]]] = None) -> tuple[dict[int, bytes], bytes]:
        """Read the ext tail up to the end (3.2).

        ``known`` maps the tags this payload defines to their value length
        (None: any length, checked by the caller). Returns the known
        entries' values and the raw bytes of the unknown ones, kept byte
        for byte. Unknown critical tags are deferred as ``critical``."""
        known = known or {}
        vals: dict[int, bytes] = {}
        rest = bytearray()
        while self.i < self.end:
            start = self.i
            tag = self.u16("ext tag")
            ln = self.u16("ext length")
            val = self.raw(ln, f"ext entry 0x{tag:04x}")
            if tag in known:
                want = known[tag]
                if want is not None and ln != want:
                    raise DecodeError("malformed", f"ext tag 0x{tag:04x} has length {ln}, want {want}")
                if tag in vals:
                    raise DecodeError("malformed", f"ext tag 0x{tag:04x} repeated")
                vals[tag] = val
                continue
            if tag & EXT_CRITICAL:
                self.defer("critical", f"unknown critical ext tag 0x{tag:04x}")
            rest += self.b[start : self.i]
        return vals, bytes(rest)

    def finish(self) -> None:
        if self.deferred is not None:
            raise self.deferred


_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_PRINCIPAL = struct.Struct("<BIIiQ")


def _string(b: bytes) -> bytes:
    if len(b) > 0xFFFF:
        raise ValueError("string longer than 65535 bytes")
    return _U16.pack(len(b)) + b


def _bytes(b: bytes) -> bytes:
    return _U32.pack(len(b)) + b


def _ext_entry(tag: int, val: bytes) -> bytes:
    return struct.pack("<HH", tag, len(val)) + val


def has_tag(ext: bytes, tag: int) -> bool:
    """Whether a well-formed raw ext tail holds an entry with this tag."""
    return any(t == tag for t, _ in ext_entries(ext))


def ext_entries(ext: bytes) -> list[tuple[int, bytes]]:
    """The (tag, value) entries of a raw ext tail kept by a decoder (the
    tail was checked when its payload was decoded)."""
    out = []
    i = 0
    while i + 4 <= len(ext):
        tag, ln = struct.unpack_from("<HH", ext, i)
        out.append((tag, bytes(ext[i + 4 : i + 4 + ln])))
        i += 4 + ln
    return out


def principal_name(ext: bytes) -> Optional[str]:
    """The PRINCIPAL_NAME (0x0020) in a raw ext tail: a TLS principal's
    certificate name (7.3), or None."""
    for tag, val in ext_entries(ext):
        if tag == EXT_PRINCIPAL_NAME:
            return val.decode("utf-8", "replace")
    return None


# --- names and addresses (7.1, 7.2) ------------------------------------------

_NAME_RE = re.compile(rb"[A-Za-z0-9._:/\-]{1,200}")


def valid_name(b: bytes) -> bool:
    """A mailbox name: 1..200 bytes of ``A-Z a-z 0-9 . _ : / -``."""
    return _NAME_RE.fullmatch(b) is not None


def valid_inbox(b: bytes) -> bool:
    """A well-formed ``@id``: 1 to 20 digits, no leading zero, at most 2^64-1."""
    if len(b) < 2 or b[0:1] != b"@":
        return False
    d = b[1:]
    if len(d) > 20 or not d.isdigit() or d[0:1] == b"0":
        return False
    return int(d) <= U64_MAX


def valid_address(b: bytes) -> bool:
    """A mailbox name or a well-formed inbox address."""
    return valid_inbox(b) if b[:1] == b"@" else valid_name(b)


def inbox_name(endpoint: int) -> str:
    """The inbox address of an endpoint id: ``@<id>``."""
    return f"@{endpoint}"


# --- message headers (3.3) ---------------------------------------------------

_USER_KEY_RE = re.compile(rb"[A-Za-z0-9_.\-]{1,128}")


def parse_headers(block: bytes) -> list[tuple[int, bytes]]:
    """The entries of a headers block, without checking their rules.
    Raises ``malformed`` if an entry runs past the block."""
    out = []
    i, n = 0, len(block)
    while i < n:
        if i + 4 > n:
            raise DecodeError("malformed", "header entry runs past the block")
        tag, ln = struct.unpack_from("<HH", block, i)
        i += 4
        if i + ln > n:
            raise DecodeError("malformed", "header entry runs past the block")
        out.append((tag, bytes(block[i : i + ln])))
        i += ln
    return out


def check_headers(block: bytes) -> Optional[str]:
    """Check a parsed headers block's rules and limits (3.3); returns what
    is wrong, or None. Call after :func:`parse_headers` succeeded."""
    if len(block) > MAX_HEADERS_BYTES:
        return f"headers block of {len(block)} bytes, limit {MAX_HEADERS_BYTES}"
    entries = parse_headers(block)
    if len(entries) > MAX_HEADER_ENTRIES:
        return f"{len(entries)} header entries, limit {MAX_HEADER_ENTRIES}"
    seen = set()
    for tag, val in entries:
        if tag in (HDR_REPLY_TO, HDR_CORRELATION_ID, HDR_DEADLINE, HDR_CONTENT_TYPE):
            if tag in seen:
                return f"header {tag} repeated"
            seen.add(tag)
        if tag == HDR_REPLY_TO:
            if not 1 <= len(val) <= 255 or not valid_address(val):
                return "REPLY_TO is not a valid address"
        elif tag == HDR_CORRELATION_ID:
            if not 1 <= len(val) <= 255:
                return "CORRELATION_ID must be 1..255 bytes"
        elif tag == HDR_DEADLINE:
            if len(val) != 8:
                return "DEADLINE must be 8 bytes"
        elif tag == HDR_CONTENT_TYPE:
            if not 1 <= len(val) <= 255 or any(c < 0x20 or c > 0x7E for c in val):
                return "CONTENT_TYPE must be 1..255 printable ASCII bytes"
        elif tag == HDR_USER:
            if len(val) < 1:
                return "USER header without a key length"
            kl = val[0]
            if kl < 1 or 1 + kl > len(val) or _USER_KEY_RE.fullmatch(val[1 : 1 + kl]) is None:
                return "USER header key must be 1..128 bytes of A-Z a-z 0-9 - _ ."
            if len(val) - 1 - kl > 4096:
                return "USER header value over 4096 bytes"
    return None


def build_headers(
    reply_to: Optional[str | bytes] = None,
    correlation_id: Optional[str | bytes] = None,
    deadline_ns: Optional[int] = None,
    content_type: Optional[str] = None,
    user: Optional[list[tuple[str | bytes, str | bytes]]] = None,
) -> bytes:
    """Encode a headers block in tag order (REPLY_TO, CORRELATION_ID,
    DEADLINE, CONTENT_TYPE, then USER entries in the order given).
    Raises ValueError if the block breaks a rule of 3.3."""
    out = bytearray()

    def b(v: str | bytes) -> bytes:
        return v.encode() if isinstance(v, str) else bytes(v)

    if reply_to is not None:
        out += _ext_entry(HDR_REPLY_TO, b(reply_to))
    if correlation_id is not None:
        out += _ext_entry(HDR_CORRELATION_ID, b(correlation_id))
    if deadline_ns is not None:
        out += _ext_entry(HDR_DEADLINE, _I64.pack(deadline_ns))
    if content_type is not None:
        out += _ext_entry(HDR_CONTENT_TYPE, b(content_type))
    for k, v in user or ():
        kb, vb = b(k), b(v)
        if not 1 <= len(kb) <= 128 or 1 + len(kb) + len(vb) > 0xFFFF:
            raise ValueError(f"user header key {kb!r}: bad length")
        out += _ext_entry(HDR_USER, bytes([len(kb)]) + kb + vb)
    problem = check_headers(bytes(out))
    if problem:
        raise ValueError(problem)
    return bytes(out)


# --- records -----------------------------------------------------------------


@dataclass
class Principal:
    """Who a peer is (7.3): kind 0 none, 1 UNIX, 2 TLS."""

    kind: int = 0
    uid: int = 0
    gid: int = 0
    pid: int = 0
    endpoint: int = 0

    def encode(self) -> bytes:
        return _PRINCIPAL.pack(self.kind, self.uid, self.gid, self.pid, self.endpoint)


@dataclass
class Hello:
    """HELLO (8.1)."""

    OP: ClassVar[int] = OP_HELLO
    min_version: int = VERSION
    max_version: int = VERSION
    client: bytes = b""
    caps: int = 0
    session: bytes = bytes(16)
    ext: bytes = b""

    def encode(self) -> bytes:
        if len(self.client) > 255:
            raise ValueError("client name over 255 bytes")
        return (
            struct.pack("<IHH", MAGIC, self.min_version, self.max_version)
            + _string(self.client)
            + _U64.pack(self.caps)
            + _id16(self.session)
            + self.ext
        )

    @classmethod
    def decode(cls, b: bytes) -> "Hello":
        r = _R(b)
        magic = r.u32("magic")
        lo = r.u16("min version")
        hi = r.u16("max version")
        if magic != MAGIC:
            raise DecodeError("malformed", f"bad magic 0x{magic:08x}")
        if not lo <= VERSION <= hi:
            raise DecodeError("version", f"versions {lo}..{hi} exclude {VERSION}")
        client = r.string("client")
        if len(client) > 255:
            raise DecodeError("malformed", "client name over 255 bytes")
        caps = r.u64("caps")
        session = r.raw(16, "session")
        _, ext = r.ext()
        r.finish()
        return cls(lo, hi, client, caps, session, ext)


def _id16(b: bytes) -> bytes:
    if len(b) != 16:
        raise ValueError("id16 must be 16 bytes")
    return bytes(b)


@dataclass
class HelloReply:
    """HELLO's OK reply (8.1). ``keepalive`` and ``dead_peer`` are the ext
    tags KEEPALIVE and DEAD_PEER (i64 nanoseconds, 0: absent, 4.3);
    ``ext`` holds the tail's other entries, written after them."""

    version: int = VERSION
    endpoint: int = 0
    caps: int = 0
    epoch: int = 0
    session: bytes = bytes(16)
    principal: Principal = field(default_factory=Principal)
    max_frame: int = 0
    max_message: int = 0
    server: bytes = b""
    keepalive: int = 0
    dead_peer: int = 0
    ext: bytes = b""

    def encode(self) -> bytes:
        out = (
            struct.pack("<HQQQ", self.version, self.endpoint, self.caps, self.epoch)
            + _id16(self.session)
            + self.principal.encode()
            + struct.pack("<II", self.max_frame, self.max_message)
            + _string(self.server)
        )
        if self.keepalive:
            out += _ext_entry(EXT_KEEPALIVE, _I64.pack(self.keepalive))
        if self.dead_peer:
            out += _ext_entry(EXT_DEAD_PEER, _I64.pack(self.dead_peer))
        return out + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "HelloReply":
        r = _R(b)
        v = cls(r.u16(), r.u64(), r.u64(), r.u64(), r.raw(16, "session"), r.principal(), r.u32(), r.u32(), r.string("server"))
        vals, v.ext = r.ext({EXT_KEEPALIVE: 8, EXT_DEAD_PEER: 8})
        if EXT_KEEPALIVE in vals:
            v.keepalive = _I64.unpack(vals[EXT_KEEPALIVE])[0]
        if EXT_DEAD_PEER in vals:
            v.dead_peer = _I64.unpack(vals[EXT_DEAD_PEER])[0]
        r.finish()
        return v


@dataclass
class Empty:
    """A payload that is only an ext tail: PING, CANCEL, OK replies to
    CREATE, DESTROY, CHMOD."""

    ext: bytes = b""

    def encode(self) -> bytes:
        return self.ext

    @classmethod
    def decode(cls, b: bytes) -> "Empty":
        r = _R(b)
        _, ext = r.ext()
        r.finish()
        return cls(ext)


@dataclass
class Name:
    """DESTROY and STAT (8.4, 8.5)."""

    name: bytes = b""
    ext: bytes = b""

    def encode(self) -> bytes:
        return _string(self.name) + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "Name":
        r = _R(b)
        name = r.string("name")
        _, ext = r.ext()
        r.finish()
        return cls(name, ext)


@dataclass
class Chmod:
    """CHMOD (8.6)."""

    name: bytes = b""
    mode: int = 0
    ext: bytes = b""

    def encode(self) -> bytes:
        return _string(self.name) + _U32.pack(self.mode) + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "Chmod":
        r = _R(b)
        v = cls(r.string("name"), r.u32("mode"))
        _, v.ext = r.ext()
        r.finish()
        return v


@dataclass
class Create:
    """CREATE (8.3); the options are critical ext tags, zero ones absent."""

    name: bytes = b""
    capacity: int = -1
    mode: int = 0o600
    durable: bool = False
    max_bytes: int = 0
    ttl: int = 0
    max_deliveries: int = 0
    dead_letter: bytes = b""
    service: bool = False
    pipe: bool = False
    pipe_buffer: int = 0
    cluster: bool = False
    replicas: int = 0
    ext: bytes = b""

    def encode(self) -> bytes:
        out = bytearray(_string(self.name) + struct.pack("<qI", self.capacity, self.mode))
        if self.durable:
            out += _ext_entry(EXT_DURABLE, b"")
        if self.max_bytes:
            out += _ext_entry(EXT_MAX_BYTES, _I64.pack(self.max_bytes))
        if self.ttl:
            out += _ext_entry(EXT_TTL, _I64.pack(self.ttl))
        if self.max_deliveries:
            out += _ext_entry(EXT_MAX_DELIVERIES, _U32.pack(self.max_deliveries))
        if self.dead_letter:
            out += _ext_entry(EXT_DEAD_LETTER, self.dead_letter)
        if self.service:
            out += _ext_entry(EXT_SERVICE, b"")
        if self.pipe:
            out += _ext_entry(EXT_PIPE, _U32.pack(self.pipe_buffer))
        if self.cluster:
            out += _ext_entry(EXT_CLUSTER, bytes([self.replicas]))
        return bytes(out + self.ext)

    @classmethod
    def decode(cls, b: bytes) -> "Create":
        r = _R(b)
        v = cls(r.string("name"), r.i64("capacity"), r.u32("mode"))
        vals, v.ext = r.ext(
            {EXT_DURABLE: 0, EXT_MAX_BYTES: 8, EXT_TTL: 8, EXT_MAX_DELIVERIES: 4, EXT_DEAD_LETTER: None, EXT_SERVICE: 0,
             EXT_PIPE: 4, EXT_CLUSTER: 1}
        )
        if EXT_CLUSTER in vals:
            v.cluster, v.replicas = True, vals[EXT_CLUSTER][0]
        if EXT_PIPE in vals:
            v.pipe, v.pipe_buffer = True, _U32.unpack(vals[EXT_PIPE])[0]
        v.durable = EXT_DURABLE in vals
        v.service = EXT_SERVICE in vals
        if EXT_MAX_BYTES in vals:
            v.max_bytes = _I64.unpack(vals[EXT_MAX_BYTES])[0]
        if EXT_TTL in vals:
            v.ttl = _I64.unpack(vals[EXT_TTL])[0]
        if EXT_MAX_DELIVERIES in vals:
            v.max_deliveries = _U32.unpack(vals[EXT_MAX_DELIVERIES])[0]
        if EXT_DEAD_LETTER in vals:
            v.dead_letter = vals[EXT_DEAD_LETTER]
            if not valid_name(v.dead_letter):
                r.defer("invalid", "DEAD_LETTER is empty or not a valid name")
        r.finish()
        return v


@dataclass
class ClusterInfo:
    """What a cluster mailbox's MailboxInfo says of it (8.26)."""

    cluster: str = ""
    replicas: int = 0
    stream: str = ""
    stream_state: str = ""


@dataclass
class MailboxInfo:
    """STAT's reply and LIST's entries (8.5)."""

    name: bytes = b""
    uid: int = 0
    gid: int = 0
    mode: int = 0
    capacity: int = 0
    flags: int = 0
    depth: int = 0
    bytes: int = 0
    receivers: int = 0
    consumers: int = 0
    in_flight: int = 0
    blocked_senders: int = 0
    sent: int = 0
    received: int = 0
    redelivered: int = 0
    created_unix: int = 0
    disk_bytes: int = 0
    oldest_unix: int = 0
    dead_lettered: int = 0
    max_bytes: int = 0
    ttl: int = 0
    max_deliveries: int = 0
    dead_letter: "bytes_t" = b""
    #: the DROPPED ext tag (0: absent): best-effort messages dropped instead of admitted
    dropped: int = 0
    ext: "bytes_t" = b""

    _FIXED: ClassVar[struct.Struct] = struct.Struct("<IIIqIQQIIIIQQQqQqQqqI")

    def encode(self) -> "bytes_t":
        return (
            _string(self.name)
            + self._FIXED.pack(
                self.uid, self.gid, self.mode, self.capacity, self.flags, self.depth, self.bytes,
                self.receivers, self.consumers, self.in_flight, self.blocked_senders, self.sent,
                self.received, self.redelivered, self.created_unix, self.disk_bytes, self.oldest_unix,
                self.dead_lettered, self.max_bytes, self.ttl, self.max_deliveries,
            )
            + _string(self.dead_letter)
            + (_ext_entry(EXT_DROPPED, _U64.pack(self.dropped)) if self.dropped else b"")
            + self.ext
        )

    @classmethod
    def decode(cls, b: "bytes_t") -> "MailboxInfo":
        return cls._read(_R(b), finish=True)

    @classmethod
    def _read(cls, r: _R, finish: bool) -> "MailboxInfo":
        name = r.string("name")
        fixed = r.unpack(cls._FIXED, "MailboxInfo")
        v = cls(name, *fixed)
        v.dead_letter = r.string("dead letter")
        vals, v.ext = r.ext({EXT_DROPPED: 8})
        if EXT_DROPPED in vals:
            v.dropped = _U64.unpack(vals[EXT_DROPPED])[0]
        if finish:
            r.finish()
        return v

    @property
    def is_durable(self) -> bool:
        return bool(self.flags & INFO_DURABLE)

    @property
    def owner(self) -> Optional[tuple[int, str]]:
        """A remote owner (OWNER tag, 7.4): (kind, name); kind 2 is a TLS
        principal's name, kind 0 nobody. None when a Unix uid owns it."""
        for tag, val in ext_entries(self.ext):
            if tag == EXT_OWNER and val:
                return val[0], val[1:].decode("utf-8", "replace")
        return None

    @property
    def cluster(self) -> Optional["ClusterInfo"]:
        """A cluster mailbox's entries (8.26): the cluster, replicas,
        stream and stream state; None for a local mailbox."""
        ci, found = ClusterInfo(), False
        for tag, val in ext_entries(self.ext):
            if tag == EXT_INFO_CLUSTER:
                ci.cluster, found = val.decode("utf-8", "replace"), True
            elif tag == EXT_INFO_REPLICAS and len(val) == 1:
                ci.replicas = val[0]
            elif tag == EXT_INFO_STREAM_STATE:
                ci.stream_state = val.decode("utf-8", "replace")
            elif tag == EXT_INFO_STREAM:
                ci.stream = val.decode("utf-8", "replace")
        return ci if found else None

    @property
    def access(self) -> "list[tuple[int, str]]":
        """The access entries (ACCESS tags, 8.18): (perms, pattern), in the
        order they were set; perms is PERM_R | PERM_W bits."""
        return [(val[0], val[1:].decode("utf-8", "replace"))
                for tag, val in ext_entries(self.ext) if tag == EXT_ACCESS and val]

    @property
    def is_inbox(self) -> bool:
        return bool(self.flags & INFO_INBOX)

    @property
    def is_service(self) -> bool:
        return bool(self.flags & INFO_SERVICE)


bytes_t = bytes


@dataclass
class List:
    """LIST (8.5)."""

    cursor: bytes = b""
    limit: int = 0
    ext: bytes = b""

    def encode(self) -> bytes:
        return _string(self.cursor) + _U32.pack(self.limit) + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "List":
        if not b:
            return cls()
        r = _R(b)
        v = cls(r.string("cursor"), r.u32("limit"))
        _, v.ext = r.ext()
        r.finish()
        return v


def _read_entries(r: _R, what: str, read_one) -> list:
    count = r.u32(what + " count")
    out = []
    for _ in range(count):
        ln = r.u32(what + " entry length")
        r.need(ln, what + " entry")
        sub = _R(r.b, r.i, r.i + ln)
        out.append(read_one(sub))
        if sub.deferred is not None:
            r.defer(sub.deferred.kind, str(sub.deferred))
        r.i += ln
    return out


@dataclass
class ListReply:
    """LIST's OK reply (8.5)."""

    infos: list[MailboxInfo] = field(default_factory=list)
    next: bytes = b""
    ext: bytes = b""

    def encode(self) -> bytes:
        out = bytearray(_U32.pack(len(self.infos)))
        for i in self.infos:
            e = i.encode()
            out += _U32.pack(len(e)) + e
        return bytes(out + _string(self.next) + self.ext)

    @classmethod
    def decode(cls, b: bytes) -> "ListReply":
        r = _R(b)
        infos = _read_entries(r, "list", lambda s: MailboxInfo._read(s, finish=False))
        v = cls(infos, r.string("next"))
        _, v.ext = r.ext()
        r.finish()
        return v


@dataclass
class Message:
    """One message of a SEND batch (8.7); ``headers`` is the raw block."""

    type: int = 1
    priority: int = 0
    headers: bytes = b""
    body: bytes = b""

    def encode(self) -> bytes:
        return struct.pack("<qB", self.type, self.priority) + _bytes(self.headers) + _bytes(self.body)


@dataclass
class Send:
    """SEND (8.7) and CALL (8.16). ``ack_lease`` is the ACK_LEASE tag (0:
    absent); ``ext`` is the whole tail as decoded, ACK_LEASE included, so
    that a decoded Send re-encodes byte for byte: :meth:`encode` writes
    ACK_LEASE from ``ack_lease`` only when ``ext`` does not hold it."""

    target: bytes = b""
    timeout: int = -1
    msgs: list[Message] = field(default_factory=list)
    ack_lease: int = 0
    ext: bytes = b""

    def encode(self) -> bytes:
        if not 1 <= len(self.msgs) <= MAX_BATCH:
            raise ValueError(f"a SEND holds 1..{MAX_BATCH} messages")
        parts = [_string(self.target), struct.pack("<qH", self.timeout, len(self.msgs))]
        parts += [m.encode() for m in self.msgs]
        if self.ack_lease and not has_tag(self.ext, EXT_ACK_LEASE):
            parts.append(_ext_entry(EXT_ACK_LEASE, _U64.pack(self.ack_lease)))
        parts.append(self.ext)
        return b"".join(parts)

    @classmethod
    def decode(cls, b: bytes) -> "Send":
        r = _R(b)
        target = r.string("target")
        timeout = r.i64("timeout")
        count = r.u16("count")
        if not 1 <= count <= MAX_BATCH:
            raise DecodeError("malformed", f"count {count} out of 1..{MAX_BATCH}")
        msgs = []
        for i in range(count):
            m = Message(r.i64("type"), r.u8("priority"), r.bytes_("headers"), r.bytes_("body"))
            parse_headers(m.headers)
            msgs.append(m)
        start = r.i
        vals, _ = r.ext({EXT_ACK_LEASE: 8, EXT_FILES: count})  # FILES: one count per message (8.24)
        v = cls(target, timeout, msgs, _U64.unpack(vals[EXT_ACK_LEASE])[0] if EXT_ACK_LEASE in vals else 0,
                bytes(b[start : r.i]))
        for i, m in enumerate(msgs):
            problem = check_headers(m.headers)
            if problem:
                r.defer("invalid", f"message {i}: {problem}")
        r.finish()
        return v


@dataclass
class SendReply:
    """SEND's OK reply (8.7)."""

    ids: list[int] = field(default_factory=list)
    taken: bool = False
    receipt: Principal = field(default_factory=Principal)
    ext: bytes = b""

    def encode(self) -> bytes:
        out = _U16.pack(len(self.ids)) + b"".join(_U64.pack(i) for i in self.ids) + bytes([1 if self.taken else 0])
        if self.taken:
            out += self.receipt.encode()
        return out + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "SendReply":
        r = _R(b)
        n = r.u16("count")
        r.need(8 * n, "ids")
        ids = list(struct.unpack_from(f"<{n}Q", b, r.i))
        r.i += 8 * n
        taken = r.u8("taken")
        if taken > 1:
            raise DecodeError("malformed", f"taken = {taken}")
        v = cls(ids, bool(taken))
        if taken:
            v.receipt = r.principal("receipt")
        _, v.ext = r.ext()
        r.finish()
        return v


@dataclass
class Recv:
    """RECV (8.8)."""

    name: bytes = b""
    type: int = 0
    timeout: int = -1
    ext: bytes = b""

    def encode(self) -> bytes:
        return _string(self.name) + struct.pack("<qq", self.type, self.timeout) + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "Recv":
        r = _R(b)
        v = cls(r.string("name"), r.i64("type"), r.i64("timeout"))
        _, v.ext = r.ext()
        r.finish()
        return v


@dataclass
class Consume:
    """CONSUME (8.9)."""

    name: bytes = b""
    type: int = 0
    credit: int = 0
    ext: bytes = b""

    def encode(self) -> bytes:
        return _string(self.name) + struct.pack("<qI", self.type, self.credit) + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "Consume":
        r = _R(b)
        v = cls(r.string("name"), r.i64("type"), r.u32("credit"))
        _, v.ext = r.ext()
        r.finish()
        return v


@dataclass
class Credit:
    """CREDIT (8.10)."""

    n: int = 0
    ext: bytes = b""

    def encode(self) -> bytes:
        return _U32.pack(self.n) + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "Credit":
        r = _R(b)
        v = cls(r.u32("n"))
        _, v.ext = r.ext()
        r.finish()
        return v


_DELIVERY_FIXED = struct.Struct("<QQqBBBIBIIiQq")


@dataclass
class Delivery:
    """RECV's OK reply and DELIVER's payload (8.8); ``headers`` is the raw
    block exactly as the sender sent it."""

    lease: int = 0
    id: int = 0
    type: int = 0
    priority: int = 0
    reason: int = 0
    flags: int = 0
    redeliveries: int = 0
    sender: Principal = field(default_factory=Principal)
    sent_unix_nano: int = 0
    headers: bytes = b""
    body: bytes = b""
    ext: bytes = b""

    def encode(self) -> bytes:
        s = self.sender
        return (
            _DELIVERY_FIXED.pack(
                self.lease, self.id, self.type, self.priority, self.reason, self.flags, self.redeliveries,
                s.kind, s.uid, s.gid, s.pid, s.endpoint, self.sent_unix_nano,
            )
            + _bytes(self.headers)
            + _bytes(self.body)
            + self.ext
        )

    @classmethod
    def decode(cls, b: bytes) -> "Delivery":
        # fast path: the usual Delivery, exactly its fields and no ext tail
        n = len(b)
        if n >= 68:
            h = _U32.unpack_from(b, 60)[0]
            if 68 + h <= n and 68 + h + _U32.unpack_from(b, 64 + h)[0] == n:
                f = _DELIVERY_FIXED.unpack_from(b)
                return cls(f[0], f[1], f[2], f[3], f[4], f[5], f[6], Principal(f[7], f[8], f[9], f[10], f[11]),
                           f[12], b[64 : 64 + h], b[68 + h :], b"")
        return cls._read(_R(b), finish=True)

    @classmethod
    def _read(cls, r: _R, finish: bool) -> "Delivery":
        f = r.unpack(_DELIVERY_FIXED, "Delivery")
        v = cls(f[0], f[1], f[2], f[3], f[4], f[5], f[6], Principal(f[7], f[8], f[9], f[10], f[11]), f[12])
        v.headers = r.bytes_("headers")
        v.body = r.bytes_("body")
        _, v.ext = r.ext()
        if finish:
            r.finish()
        return v


@dataclass
class CallReply:
    """CALL's OK reply (8.16): the request's message id, then a Delivery
    whose fields are flattened into this record."""

    request: int = 0
    lease: int = 0
    id: int = 0
    type: int = 0
    priority: int = 0
    reason: int = 0
    flags: int = 0
    redeliveries: int = 0
    sender: Principal = field(default_factory=Principal)
    sent_unix_nano: int = 0
    headers: bytes = b""
    body: bytes = b""
    ext: bytes = b""

    def delivery(self) -> Delivery:
        return Delivery(
            self.lease, self.id, self.type, self.priority, self.reason, self.flags, self.redeliveries,
            self.sender, self.sent_unix_nano, self.headers, self.body, self.ext,
        )

    def encode(self) -> bytes:
        return _U64.pack(self.request) + self.delivery().encode()

    @classmethod
    def decode(cls, b: bytes) -> "CallReply":
        r = _R(b)
        req = r.u64("request")
        d = Delivery._read(r, finish=True)
        return cls(req, d.lease, d.id, d.type, d.priority, d.reason, d.flags, d.redeliveries,
                   d.sender, d.sent_unix_nano, d.headers, d.body, d.ext)


@dataclass
class Interrupt:
    """INTERRUPT (8.17), pushed to the holder of a CALL's request."""

    lease: int = 0
    reason: int = 0
    ext: bytes = b""

    def encode(self) -> bytes:
        return struct.pack("<QH", self.lease, self.reason) + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "Interrupt":
        r = _R(b)
        v = cls(r.u64("lease"), r.u16("reason"))
        _, v.ext = r.ext()
        r.finish()
        return v


@dataclass
class Withdraw:
    """WITHDRAW (8.19): ids, or a match of one CORRELATION_ID or USER
    header entry."""

    name: bytes = b""
    ids: list[int] = field(default_factory=list)
    match: bytes = b""
    after: int = 0
    ext: bytes = b""

    def encode(self) -> bytes:
        out = bytearray(_string(self.name) + _U32.pack(len(self.ids)))
        for i in self.ids:
            out += _U64.pack(i)
        return bytes(out + _U32.pack(len(self.match)) + self.match + _U64.pack(self.after) + self.ext)

    @classmethod
    def decode(cls, b: bytes) -> "Withdraw":
        r = _R(b)
        name = r.string("name")
        n = r.u32("count")
        r.need(8 * n, "ids")
        ids = [r.u64("id") for _ in range(n)]
        v = cls(name, ids, r.bytes_("match"), r.u64("after"))
        _, v.ext = r.ext()
        entries = parse_headers(v.match)
        if n > MAX_WITHDRAW_IDS:
            r.defer("invalid", f"{n} ids, limit {MAX_WITHDRAW_IDS}")
        elif (n == 0) == (len(v.match) == 0):
            r.defer("invalid", "ids or a match, exactly one")
        elif n > 0 and v.after != 0:
            r.defer("invalid", "after goes with a match")
        elif v.match:
            problem = check_headers(v.match)
            if problem:
                r.defer("invalid", problem)
            elif len(entries) != 1 or entries[0][0] not in (HDR_CORRELATION_ID, HDR_USER):
                r.defer("invalid", "a match is one CORRELATION_ID or USER entry")
        r.finish()
        return v


@dataclass
class WithdrawOutcome:
    """One message's outcome in a WithdrawReply (8.19)."""

    id: int = 0
    outcome: int = 0
    holder: Principal = field(default_factory=Principal)


@dataclass
class WithdrawReply:
    """WITHDRAW's OK reply (8.19)."""

    outcomes: list[WithdrawOutcome] = field(default_factory=list)
    more: bool = False
    ext: bytes = b""

    def encode(self) -> bytes:
        out = bytearray(_U32.pack(len(self.outcomes)))
        for o in self.outcomes:
            out += _U64.pack(o.id) + bytes([o.outcome]) + o.holder.encode()
        return bytes(out + bytes([1 if self.more else 0]) + self.ext)

    @classmethod
    def decode(cls, b: bytes) -> "WithdrawReply":
        r = _R(b)
        n = r.u32("count")
        r.need(30 * n, "outcomes")
        outs = [WithdrawOutcome(r.u64("id"), r.u8("outcome"), r.principal("holder")) for _ in range(n)]
        more = r.u8("more")
        if more > 1:
            raise DecodeError("malformed", f"more {more}")
        v = cls(outs, more == 1)
        _, v.ext = r.ext()
        r.finish()
        return v


@dataclass
class Range:
    """Lease ids first .. first+n-1 (8.11)."""

    first: int = 0
    n: int = 0


@dataclass
class Leases:
    """ACK and NACK (8.11)."""

    ranges: list[Range] = field(default_factory=list)
    ext: bytes = b""

    def encode(self) -> bytes:
        return (
            _U16.pack(len(self.ranges))
            + b"".join(struct.pack("<QI", x.first, x.n) for x in self.ranges)
            + self.ext
        )

    @classmethod
    def decode(cls, b: bytes) -> "Leases":
        r = _R(b)
        count = r.u16("count")
        if not 1 <= count <= MAX_RANGES:
            raise DecodeError("malformed", f"{count} ranges, want 1..{MAX_RANGES}")
        ranges = []
        total = 0
        for _ in range(count):
            first, n = r.u64("first"), r.u32("n")
            if n == 0:
                raise DecodeError("malformed", "a range of 0 leases")
            if first + n - 1 > U64_MAX:
                raise DecodeError("malformed", "a range runs past 2^64-1")
            total += n
            ranges.append(Range(first, n))
        if total > MAX_LEASES:
            raise DecodeError("malformed", f"{total} leases, limit {MAX_LEASES}")
        s = sorted(ranges, key=lambda x: x.first)
        for a, c in zip(s, s[1:]):
            if a.first + a.n > c.first:
                raise DecodeError("malformed", "ranges overlap")
        _, ext = r.ext()
        r.finish()
        return cls(ranges, ext)


def ranges_of(leases) -> list[Range]:
    """Sort lease ids, drop duplicates and zeros, merge consecutive ids
    into ranges (11, step 10)."""
    out: list[Range] = []
    for x in sorted(set(int(l) for l in leases if l)):
        if out and out[-1].first + out[-1].n == x and out[-1].n < 0xFFFFFFFF:
            out[-1].n += 1
        else:
            out.append(Range(x, 1))
    return out


@dataclass
class Failure:
    """A lease an ACK or NACK did not settle, and why."""

    lease: int = 0
    status: int = 0


@dataclass
class AckReply:
    """ACK's and NACK's reply (8.11)."""

    done: int = 0
    failed: list[Failure] = field(default_factory=list)
    ext: bytes = b""

    def encode(self) -> bytes:
        return (
            struct.pack("<II", self.done, len(self.failed))
            + b"".join(struct.pack("<QH", f.lease, f.status) for f in self.failed)
            + self.ext
        )

    @classmethod
    def decode(cls, b: bytes) -> "AckReply":
        r = _R(b)
        done, n = r.u32("done"), r.u32("nfailed")
        r.need(10 * n, "failures")
        failed = [Failure(r.u64(), r.u16()) for _ in range(n)]
        _, ext = r.ext()
        r.finish()
        return cls(done, failed, ext)


@dataclass
class Browse:
    """BROWSE (8.14)."""

    name: bytes = b""
    type: int = 0
    cursor: bytes = b""
    limit: int = 0
    ext: bytes = b""

    def encode(self) -> bytes:
        return _string(self.name) + _I64.pack(self.type) + _string(self.cursor) + _U32.pack(self.limit) + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "Browse":
        r = _R(b)
        v = cls(r.string("name"), r.i64("type"), r.string("cursor"), r.u32("limit"))
        _, v.ext = r.ext()
        if v.cursor and (len(v.cursor) != 17 or _U64.unpack_from(v.cursor, 9)[0] == 0):
            r.defer("invalid", "a cursor is 17 bytes with a non-zero id")
        r.finish()
        return v


@dataclass
class BrowseReply:
    """BROWSE's OK reply (8.14): Deliveries with lease 0."""

    messages: list[Delivery] = field(default_factory=list)
    next: bytes = b""
    ext: bytes = b""

    def encode(self) -> bytes:
        out = bytearray(_U32.pack(len(self.messages)))
        for m in self.messages:
            e = m.encode()
            out += _U32.pack(len(e)) + e
        return bytes(out + _string(self.next) + self.ext)

    @classmethod
    def decode(cls, b: bytes) -> "BrowseReply":
        r = _R(b)
        msgs = _read_entries(r, "browse", lambda s: Delivery._read(s, finish=False))
        v = cls(msgs, r.string("next"))
        _, v.ext = r.ext()
        r.finish()
        return v


@dataclass
class Channel:
    """CHANNEL (8.13); needs the DESCRIPTORS capability, which this client
    never asks for. Here for the conformance vectors."""

    target: bytes = b""
    type: int = 1
    priority: int = 0
    timeout: int = -1
    ring_size: int = 0
    ext: bytes = b""

    def encode(self) -> bytes:
        return _string(self.target) + struct.pack("<qBqI", self.type, self.priority, self.timeout, self.ring_size) + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "Channel":
        r = _R(b)
        v = cls(r.string("target"), r.i64(), r.u8(), r.i64(), r.u32())
        _, v.ext = r.ext()
        r.finish()
        return v


@dataclass
class Attach:
    """ATTACH (8.13)."""

    token: bytes = bytes(16)
    ext: bytes = b""

    def encode(self) -> bytes:
        return _id16(self.token) + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "Attach":
        r = _R(b)
        v = cls(r.raw(16, "token"))
        _, v.ext = r.ext()
        r.finish()
        return v


@dataclass
class ACL:
    """ACL (8.18): set (action 1, perms 4/2/6) or remove (action 2, perms
    0) one access entry of a mailbox."""

    name: bytes = b""
    action: int = ACL_SET
    perms: int = 0
    pattern: bytes = b""
    ext: bytes = b""

    def encode(self) -> bytes:
        return _string(self.name) + struct.pack("<BB", self.action, self.perms) + _string(self.pattern) + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "ACL":
        r = _R(b)
        v = cls(r.string("name"), r.u8("action"), r.u8("perms"), r.string("pattern"))
        _, v.ext = r.ext()
        r.finish()
        return v


@dataclass
class Counters:
    """USAGE's four counters (8.15)."""

    connections: int = 0
    mailboxes: int = 0
    bytes: int = 0
    leases: int = 0


@dataclass
class Usage:
    """USAGE (8.15): ``filter`` True asks for ``uid`` only."""

    filter: bool = False
    uid: int = 0
    ext: bytes = b""

    def encode(self) -> bytes:
        return struct.pack("<BI", 1 if self.filter else 0, self.uid) + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "Usage":
        r = _R(b)
        f, uid = r.u8("filter"), r.u32("uid")
        if f > 1:
            raise DecodeError("malformed", f"filter {f}")
        if f == 0 and uid != 0:
            raise DecodeError("malformed", "a uid without filter")
        _, ext = r.ext()
        r.finish()
        return cls(bool(f), uid, ext)


@dataclass
class UsageEntry:
    """One bucket of a UsageReply: a uid's, or the anonymous one."""

    anonymous: bool = False
    uid: int = 0
    used: Counters = field(default_factory=Counters)
    quota: Counters = field(default_factory=Counters)


_USAGE_ENTRY = struct.Struct("<BI8q")
_COUNTERS8 = struct.Struct("<8q")
EXT_PRINCIPAL_USAGE = 0x0020  # UsageReply: a TLS principal's bucket (8.15)


@dataclass
class PrincipalUsage:
    """A TLS principal's usage bucket (PRINCIPAL_USAGE in a UsageReply's
    ext, 8.15): its name, then the counters of a UsageEntry."""

    name: str = ""
    used: Counters = field(default_factory=Counters)
    quota: Counters = field(default_factory=Counters)


@dataclass
class UsageReply:
    """USAGE's OK reply (8.15)."""

    entries: list[UsageEntry] = field(default_factory=list)
    ext: bytes = b""

    def encode(self) -> bytes:
        out = bytearray(_U32.pack(len(self.entries)))
        for e in self.entries:
            u, q = e.used, e.quota
            out += _USAGE_ENTRY.pack(0 if e.anonymous else 1, e.uid, u.connections, u.mailboxes, u.bytes, u.leases,
                                     q.connections, q.mailboxes, q.bytes, q.leases)
        return bytes(out + self.ext)

    @classmethod
    def decode(cls, b: bytes) -> "UsageReply":
        r = _R(b)
        n = r.u32("count")
        r.need(n * _USAGE_ENTRY.size, "usage entries")
        entries = []
        for _ in range(n):
            f = r.unpack(_USAGE_ENTRY, "usage entry")
            if f[0] > 1:
                raise DecodeError("malformed", f"usage entry kind {f[0]}")
            entries.append(UsageEntry(f[0] == 0, f[1], Counters(*f[2:6]), Counters(*f[6:10])))
        _, ext = r.ext()
        r.finish()
        return cls(entries, ext)

    @property
    def principals(self) -> list[PrincipalUsage]:
        """The TLS principals' buckets (PRINCIPAL_USAGE tags), in name order."""
        out = []
        for tag, val in ext_entries(self.ext):
            if tag == EXT_PRINCIPAL_USAGE and len(val) >= 2:
                n = _U16.unpack_from(val)[0]
                if len(val) == 2 + n + _COUNTERS8.size:
                    c = _COUNTERS8.unpack_from(val, 2 + n)
                    out.append(PrincipalUsage(val[2 : 2 + n].decode("utf-8", "replace"), Counters(*c[:4]),
                                              Counters(*c[4:])))
        return out


@dataclass
class Error:
    """An error reply's payload (6.1): a message and an ext tail; ``done``
    is the DONE tag (absent reads as 0). ``ext`` holds the other entries
    (OUTCOME and RECEIVER of a CALL among them), byte for byte; the
    properties :attr:`outcome` and :attr:`receiver` read those two."""

    message: bytes = b""
    done: int = 0
    has_done: bool = False
    ext: bytes = b""

    def encode(self) -> bytes:
        out = _string(self.message)
        if self.has_done:
            out += _ext_entry(EXT_DONE, _U32.pack(self.done))
        return out + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "Error":
        r = _R(b)
        msg = r.string("message")
        start = r.i
        vals, _ = r.ext({EXT_DONE: 4, EXT_OUTCOME: 1, EXT_RECEIVER: PRINCIPAL_SIZE})
        r.finish()
        v = cls(msg)
        if EXT_DONE in vals:
            v.has_done = True
            v.done = _U32.unpack(vals[EXT_DONE])[0]
        # ext keeps every entry but DONE, byte for byte and in order
        rest = bytearray()
        i = start
        while i < len(b):
            tag, ln = struct.unpack_from("<HH", b, i)
            if tag != EXT_DONE:
                rest += b[i : i + 4 + ln]
            i += 4 + ln
        v.ext = bytes(rest)
        return v

    def _tag(self, want: int) -> Optional[bytes]:
        i = 0
        while i + 4 <= len(self.ext):
            tag, ln = struct.unpack_from("<HH", self.ext, i)
            if tag == want:
                return self.ext[i + 4 : i + 4 + ln]
            i += 4 + ln
        return None

    @property
    def outcome(self) -> Optional[int]:
        """A CALL's OUTCOME (8.16), or None."""
        v = self._tag(EXT_OUTCOME)
        return v[0] if v else None

    @property
    def receiver(self) -> Optional[Principal]:
        """A CALL's RECEIVER (8.16), or None."""
        v = self._tag(EXT_RECEIVER)
        return Principal(*_PRINCIPAL.unpack(v)) if v else None


# --- publish/subscribe (8.20) ------------------------------------------------

POLICY_BLOCK, POLICY_DROP_OLDEST, POLICY_DROP_NEWEST, POLICY_DISCONNECT = 0, 1, 2, 3
EXT_FILTER_TYPE = 0x0001  # Subscribe: min i64, max i64
EXT_FILTER_EQUALS = 0x0002  # Subscribe: klen u8, key, value (repeatable)
EXT_FILTER_PRESENT = 0x0003  # Subscribe: key (repeatable)
EVENT_GAP = 0x01  # Event.flags: a gap notice only
CLAIM_SET, CLAIM_RELEASE = 1, 2


def _check_headers(r: _R, block: bytes) -> None:
    parse_headers(block)
    problem = check_headers(block)
    if problem:
        r.defer("invalid", problem)


@dataclass
class Publish:
    """PUBLISH (8.20)."""

    subject: bytes = b""
    timeout: int = -1
    type: int = 1
    headers: bytes = b""
    body: bytes = b""
    ext: bytes = b""

    def encode(self) -> bytes:
        return _string(self.subject) + struct.pack("<qq", self.timeout, self.type) + _bytes(self.headers) + _bytes(self.body) + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "Publish":
        r = _R(b)
        v = cls(r.string("subject"), r.i64("timeout"), r.i64("type"), r.bytes_("headers"), r.bytes_("body"))
        _check_headers(r, v.headers)
        _, v.ext = r.ext()
        r.finish()
        return v


@dataclass
class PublishItem:
    """One publication of a batched PUBLISH (8.20)."""

    subject: bytes = b""
    type: int = 1
    headers: bytes = b""
    body: bytes = b""

    def encode(self) -> bytes:
        return _string(self.subject) + struct.pack("<q", self.type) + _bytes(self.headers) + _bytes(self.body)


FLAG_PUBLISH_BATCH = 0x01  # PUBLISH: the payload is a PublishBatch (8.20)


@dataclass
class PublishBatch:
    """PUBLISH with FLAG_PUBLISH_BATCH (8.20): up to MAX_BATCH publications;
    the reply is a PublishReply (matched summed) or an error with DONE."""

    timeout: int = -1
    items: list[PublishItem] = field(default_factory=list)
    ext: bytes = b""

    def encode(self) -> bytes:
        if not 1 <= len(self.items) <= MAX_BATCH:
            raise ValueError(f"a batched PUBLISH holds 1..{MAX_BATCH} publications")
        parts = [struct.pack("<qH", self.timeout, len(self.items))]
        parts += [it.encode() for it in self.items]
        parts.append(self.ext)
        return b"".join(parts)

    @classmethod
    def decode(cls, b: bytes) -> "PublishBatch":
        r = _R(b)
        timeout = r.i64("timeout")
        count = r.u16("count")
        if not 1 <= count <= MAX_BATCH:
            raise DecodeError("malformed", f"count {count} out of 1..{MAX_BATCH}")
        items = []
        for _ in range(count):
            it = PublishItem(r.string("subject"), r.i64("type"), r.bytes_("headers"), r.bytes_("body"))
            _check_headers(r, it.headers)
            items.append(it)
        v = cls(timeout, items)
        _, v.ext = r.ext()
        r.finish()
        return v


@dataclass
class PublishReply:
    """PUBLISH's OK reply (8.20): how many subscriptions and bindings took it."""

    matched: int = 0
    ext: bytes = b""

    def encode(self) -> bytes:
        return _U32.pack(self.matched) + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "PublishReply":
        r = _R(b)
        v = cls(r.u32("matched"))
        _, v.ext = r.ext()
        r.finish()
        return v


@dataclass
class Subscribe:
    """SUBSCRIBE (8.20); the filter tags stay in ``ext``."""

    pattern: bytes = b""
    queue: bytes = b""
    buffer: int = 256
    policy: int = POLICY_BLOCK
    ext: bytes = b""

    def encode(self) -> bytes:
        return _string(self.pattern) + _string(self.queue) + struct.pack("<IB", self.buffer, self.policy) + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "Subscribe":
        r = _R(b)
        v = cls(r.string("pattern"), r.string("queue"), r.u32("buffer"), r.u8("policy"))
        _, v.ext = r.ext()
        r.finish()
        return v


@dataclass
class Event:
    """EVENT (0x62, pushed; 8.20): one publication, or a gap notice."""

    flags: int = 0
    missed: int = 0
    subject: bytes = b""
    sender: Principal = field(default_factory=Principal)
    sent_unix_nano: int = 0
    type: int = 0
    headers: bytes = b""
    body: bytes = b""
    ext: bytes = b""

    def encode(self) -> bytes:
        s = self.sender
        return (struct.pack("<BQ", self.flags, self.missed) + _string(self.subject)
                + _PRINCIPAL.pack(s.kind, s.uid, s.gid, s.pid, s.endpoint)
                + struct.pack("<qq", self.sent_unix_nano, self.type) + _bytes(self.headers) + _bytes(self.body) + self.ext)

    @classmethod
    def decode(cls, b: bytes) -> "Event":
        r = _R(b)
        v = cls(r.u8("flags"), r.u64("missed"), r.string("subject"), r.principal("sender"), r.i64("sent"),
                r.i64("type"), r.bytes_("headers"), r.bytes_("body"))
        _check_headers(r, v.headers)
        _, v.ext = r.ext()
        r.finish()
        return v


@dataclass
class Bind:
    """BIND (8.20); flag FLAG_UNBIND removes the binding."""

    pattern: bytes = b""
    mailbox: bytes = b""
    ext: bytes = b""

    def encode(self) -> bytes:
        return _string(self.pattern) + _string(self.mailbox) + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "Bind":
        r = _R(b)
        v = cls(r.string("pattern"), r.string("mailbox"))
        _, v.ext = r.ext()
        r.finish()
        return v


@dataclass
class Claim:
    """CLAIM (8.20): claim (action 1) or release (2) a subject pattern."""

    pattern: bytes = b""
    action: int = CLAIM_SET
    mode: int = 0
    ext: bytes = b""

    def encode(self) -> bytes:
        return _string(self.pattern) + struct.pack("<BI", self.action, self.mode) + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "Claim":
        r = _R(b)
        v = cls(r.string("pattern"), r.u8("action"), r.u32("mode"))
        _, v.ext = r.ext()
        r.finish()
        return v


@dataclass
class SubjectInfo:
    pattern: bytes = b""
    subscribers: int = 0
    queues: int = 0
    delivered: int = 0
    dropped: int = 0


@dataclass
class BindingInfo:
    pattern: bytes = b""
    mailbox: bytes = b""


@dataclass
class ClaimInfo:
    pattern: bytes = b""
    uid: int = 0
    gid: int = 0
    mode: int = 0


@dataclass
class TopicsReply:
    """TOPICS's OK reply (8.20)."""

    subjects: list[SubjectInfo] = field(default_factory=list)
    bindings: list[BindingInfo] = field(default_factory=list)
    claims: list[ClaimInfo] = field(default_factory=list)
    ext: bytes = b""

    def encode(self) -> bytes:
        out = bytearray(_U32.pack(len(self.subjects)))
        for s in self.subjects:
            out += _string(s.pattern) + struct.pack("<IIQQ", s.subscribers, s.queues, s.delivered, s.dropped)
        out += _U32.pack(len(self.bindings))
        for x in self.bindings:
            out += _string(x.pattern) + _string(x.mailbox)
        out += _U32.pack(len(self.claims))
        for c in self.claims:
            out += _string(c.pattern) + struct.pack("<III", c.uid, c.gid, c.mode)
        return bytes(out + self.ext)

    @classmethod
    def decode(cls, b: bytes) -> "TopicsReply":
        r = _R(b)
        v = cls()
        for _ in range(r.u32("subjects")):
            v.subjects.append(SubjectInfo(r.string("pattern"), r.u32(), r.u32(), r.u64(), r.u64()))
        for _ in range(r.u32("bindings")):
            v.bindings.append(BindingInfo(r.string("pattern"), r.string("mailbox")))
        for _ in range(r.u32("claims")):
            v.claims.append(ClaimInfo(r.string("pattern"), r.u32(), r.u32(), r.u32()))
        _, v.ext = r.ext()
        r.finish()
        return v


#: payload_type names of the conformance vectors, to their classes
@dataclass
class Join:
    """JOIN (8.21): an empty mailbox joins the requesting endpoint."""

    group: bytes = b""
    mailbox: bytes = b""
    ext: bytes = b""

    def encode(self) -> bytes:
        return _string(self.group) + _string(self.mailbox) + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "Join":
        r = _R(b)
        v = cls(r.string("group"), r.string("mailbox"))
        _, v.ext = r.ext()
        r.finish()
        return v


@dataclass
class Watch:
    """WATCH (8.22): an endpoint ("@id") or a mailbox name."""

    target: bytes = b""
    ext: bytes = b""

    def encode(self) -> bytes:
        return _string(self.target) + self.ext

    @classmethod
    def decode(cls, b: bytes) -> "Watch":
        r = _R(b)
        v = cls(r.string("target"))
        _, v.ext = r.ext()
        r.finish()
        return v


@dataclass
class Notice:
    """NOTICE (8.22), pushed to a WATCH."""

    kind: int = 0
    reason: int = 0
    flags: int = 0
    target: bytes = b""
    endpoint: int = 0
    pid: int = 0
    uid: int = 0
    status: int = 0
    depth: int = 0
    unix_nano: int = 0
    ext: bytes = b""

    def encode(self) -> bytes:
        return (struct.pack("<BBB", self.kind, self.reason, self.flags) + _string(self.target)
                + struct.pack("<QiIiIq", self.endpoint, self.pid, self.uid, self.status, self.depth, self.unix_nano)
                + self.ext)

    @classmethod
    def decode(cls, b: bytes) -> "Notice":
        r = _R(b)
        v = cls(r.u8("kind"), r.u8("reason"), r.u8("flags"), r.string("target"), r.u64("endpoint"),
                r.i32("pid"), r.u32("uid"), r.i32("status"), r.u32("depth"), r.i64("unix_nano"))
        _, v.ext = r.ext()
        r.finish()
        return v


@dataclass
class InfoLimits:
    """The broker-wide limits in an InfoReply (8.25)."""

    max_connections: int = 0
    max_mailboxes: int = 0
    max_message: int = 0
    max_queued_bytes: int = 0
    max_frame: int = 0
    inbox_capacity: int = 0


@dataclass
class InfoListener:
    """One address the broker accepts connections on (8.25)."""

    network: bytes = b""
    address: bytes = b""


_INFO_MID = struct.Struct("<IqqIIqqqI")
_INFO_LIMITS = struct.Struct("<6q")


@dataclass
class InfoReply:
    """INFO's OK reply (8.25): what the broker process is. ``rss_bytes``
    and ``store_bytes`` are -1 when unknown or without a data directory."""

    version: bytes = b""
    go_version: bytes = b""
    pid: int = 0
    started_unix_nano: int = 0
    uptime_nano: int = 0
    connections: int = 0
    mailboxes: int = 0
    heap_bytes: int = 0
    sys_bytes: int = 0
    rss_bytes: int = 0
    goroutines: int = 0
    data_dir: bytes = b""
    store_bytes: int = 0
    limits: InfoLimits = field(default_factory=InfoLimits)
    listeners: list[InfoListener] = field(default_factory=list)
    ext: bytes = b""

    def encode(self) -> bytes:
        out = bytearray(_string(self.version) + _string(self.go_version))
        out += _INFO_MID.pack(self.pid, self.started_unix_nano, self.uptime_nano, self.connections, self.mailboxes,
                              self.heap_bytes, self.sys_bytes, self.rss_bytes, self.goroutines)
        out += _string(self.data_dir) + _I64.pack(self.store_bytes)
        lim = self.limits
        out += _INFO_LIMITS.pack(lim.max_connections, lim.max_mailboxes, lim.max_message, lim.max_queued_bytes,
                                 lim.max_frame, lim.inbox_capacity)
        out += _U16.pack(len(self.listeners))
        for ln in self.listeners:
            out += _string(ln.network) + _string(ln.address)
        return bytes(out + self.ext)

    @classmethod
    def decode(cls, b: bytes) -> "InfoReply":
        r = _R(b)
        version, go_version = r.string("version"), r.string("go_version")
        mid = r.unpack(_INFO_MID, "info fields")
        data_dir, store_bytes = r.string("data_dir"), r.i64("store_bytes")
        limits = InfoLimits(*r.unpack(_INFO_LIMITS, "limits"))
        n = r.u16("listener count")
        r.need(4 * n, "listeners")
        listeners = []
        for _ in range(n):
            ln = InfoListener(r.string("network"), r.string("address"))
            if not ln.network:
                raise DecodeError("malformed", "a listener with an empty network")
            listeners.append(ln)
        _, ext = r.ext()
        r.finish()
        return cls(version, go_version, *mid, data_dir, store_bytes, limits, listeners, ext)


PAYLOAD_TYPES: dict[str, type] = {
    "Hello": Hello,
    "HelloReply": HelloReply,
    "Send": Send,
    "SendReply": SendReply,
    "Recv": Recv,
    "Consume": Consume,
    "Credit": Credit,
    "Delivery": Delivery,
    "Leases": Leases,
    "AckReply": AckReply,
    "List": List,
    "ListReply": ListReply,
    "MailboxInfo": MailboxInfo,
    "Browse": Browse,
    "BrowseReply": BrowseReply,
    "Create": Create,
    "Name": Name,
    "Chmod": Chmod,
    "Channel": Channel,
    "Attach": Attach,
    "Error": Error,
    "Empty": Empty,
    "Usage": Usage,
    "UsageReply": UsageReply,
    "CallReply": CallReply,
    "Interrupt": Interrupt,
    "ACL": ACL,
    "Publish": Publish,
    "PublishReply": PublishReply,
    "PublishBatch": PublishBatch,
    "Subscribe": Subscribe,
    "Event": Event,
    "Bind": Bind,
    "Claim": Claim,
    "TopicsReply": TopicsReply,
    "Withdraw": Withdraw,
    "WithdrawReply": WithdrawReply,
    "Join": Join,
    "Watch": Watch,
    "Notice": Notice,
    "InfoReply": InfoReply,
}
