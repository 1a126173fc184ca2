"""Errors: one exception class per status code (docs/PROTOCOL.md section 9).

Every error a request can end with is a :class:`PostboxError` with
``.code`` (the status, or None for errors of the client itself) and
``.message`` (the broker's text; act on the class or code, never on the
text). A SEND's error carries ``.done`` (how many leading messages of the
batch were admitted, 6.1); a CALL ended by CANCEL or its timeout carries
``.outcome`` and ``.receiver`` (8.16).
"""

from __future__ import annotations

from typing import Optional

from . import wire


class PostboxError(Exception):
    """Base class of every postbox error."""

    code: Optional[int] = None
    name: str = "ERROR"

    def __init__(
        self,
        message: str = "",
        *,
        code: Optional[int] = None,
        done: int = 0,
        outcome: Optional[int] = None,
        receiver: Optional[wire.Principal] = None,
        receiver_name: Optional[str] = None,
        op: Optional[int] = None,
    ):
        if code is not None:
            self.code = code
        self.message = message
        self.done = done
        self.outcome = outcome
        self.receiver = receiver
        #: a TLS receiver's certificate name (PRINCIPAL_NAME after RECEIVER)
        self.receiver_name = receiver_name
        self.op = op
        super().__init__(message)

    def __str__(self) -> str:
        if self.code is None:
            return self.message
        return f"{self.message or self.name.lower()} ({self.name})"


class MalformedError(PostboxError):
    """1 MALFORMED: the payload did not decode."""

    code, name = 1, "MALFORMED"


class VersionError(PostboxError):
    """2 VERSION: no protocol version in common."""

    code, name = 2, "VERSION"


class UnknownOpError(PostboxError):
    """3 UNKNOWN_OP: an op the broker does not know."""

    code, name = 3, "UNKNOWN_OP"


class TooLargeError(PostboxError):
    """4 TOO_LARGE: a frame over max frame or a message over max message."""

    code, name = 4, "TOO_LARGE"


class NotFoundError(PostboxError):
    """5 NOT_FOUND: no such mailbox, endpoint or channel offer."""

    code, name = 5, "NOT_FOUND"


class ExistsError(PostboxError):
    """6 EXISTS: the mailbox name is taken."""

    code, name = 6, "EXISTS"


class PermissionDeniedError(PostboxError):
    """7 PERMISSION: mode bits or ownership deny the operation."""

    code, name = 7, "PERMISSION"


class FullError(PostboxError):
    """8 FULL: timeout 0 and the message cannot be admitted now."""

    code, name = 8, "FULL"


class EmptyError(PostboxError):
    """9 EMPTY: timeout 0 and no message matches."""

    code, name = 9, "EMPTY"


class TimedOutError(PostboxError):
    """10 TIMEOUT: the request's timeout passed."""

    code, name = 10, "TIMEOUT"


class DestroyedError(PostboxError):
    """11 DESTROYED: the mailbox was destroyed while the request waited."""

    code, name = 11, "DESTROYED"


class StaleLeaseError(PostboxError):
    """12 STALE_LEASE: a lease this connection does not hold."""

    code, name = 12, "STALE_LEASE"


class LimitError(PostboxError):
    """13 LIMIT: a broker-wide limit or a quota."""

    code, name = 13, "LIMIT"


class ClosedError(PostboxError):
    """14 CLOSED: the broker is shutting down."""

    code, name = 14, "CLOSED"


class CanceledError(PostboxError):
    """15 CANCELED: the request was cancelled."""

    code, name = 15, "CANCELED"


class InternalError(PostboxError):
    """16 INTERNAL: a broker bug; the request was not applied."""

    code, name = 16, "INTERNAL"


class StorageError(PostboxError):
    """17 STORAGE: the durable store failed the write."""

    code, name = 17, "STORAGE"


class InvalidError(PostboxError):
    """18 INVALID: well-formed but invalid."""

    code, name = 18, "INVALID"


class HandshakeError(PostboxError):
    """19 HANDSHAKE: a request before HELLO, or HELLO twice."""

    code, name = 19, "HANDSHAKE"


class EndOfStreamError(PostboxError):
    """20 END_OF_STREAM: the mailbox is closed for sending and nothing this
    receiver could take is left; or a send to a closed mailbox (8.23)."""

    code, name = 20, "END_OF_STREAM"


class NoReaderError(PostboxError):
    """21 NO_READER: a write to a pipe that has no reader left (8.23)."""

    code, name = 21, "NO_READER"


class NoDescriptorsError(PostboxError):
    """22 NO_DESCRIPTORS: descriptors cannot go where a SEND asked (8.24)."""

    code, name = 22, "NO_DESCRIPTORS"


class UnavailableError(PostboxError):
    """23 UNAVAILABLE: the broker cannot reach its cluster just now (a
    cluster mailbox, docs/CLUSTER.md); local mailboxes are unaffected and
    the broker reconnects by itself. Sending the same request again is
    stored once."""

    code, name = 23, "UNAVAILABLE"


class UnknownStatusError(PostboxError):
    """A status code this client does not know (24 and up)."""

    name = "UNKNOWN_STATUS"


class ConnectionLostError(PostboxError):
    """The connection ended (or was closed) before the request's reply."""


class DeadPeerError(ConnectionLostError):
    """The broker sent nothing for its dead-peer time (HelloReply DEAD_PEER,
    PROTOCOL.md 4.3) although this client kept pinging it: it is stopped,
    wedged or unreachable, and the client closed the connection."""


class ProtocolError(PostboxError):
    """The broker sent something this client cannot decode; the connection
    is closed."""


class TLSError(PostboxError):
    """The TLS handshake failed, or the broker refused this client's
    certificate (missing, untrusted or expired: PROTOCOL.md 1.1);
    ``.reason`` is OpenSSL's reason, e.g. ``TLSV13_ALERT_CERTIFICATE_REQUIRED``."""

    def __init__(self, message: str = "", *, reason: str = ""):
        super().__init__(message)
        self.reason = reason


class UnsafeSocketError(PostboxError):
    """A default socket path failed the safety checks of PROTOCOL.md
    section 1; it was not dialled."""


BY_CODE: dict[int, type[PostboxError]] = {
    c.code: c  # type: ignore[misc]
    for c in (
        MalformedError, VersionError, UnknownOpError, TooLargeError, NotFoundError, ExistsError,
        PermissionDeniedError, FullError, EmptyError, TimedOutError, DestroyedError, StaleLeaseError,
        LimitError, ClosedError, CanceledError, InternalError, StorageError, InvalidError, HandshakeError,
        EndOfStreamError, NoReaderError, NoDescriptorsError, UnavailableError,
    )
}

#: status code -> its name in PROTOCOL.md section 9
STATUS_NAMES = {code: cls.name for code, cls in BY_CODE.items()}
STATUS_NAMES[0] = "OK"


def error_from_reply(status: int, payload: bytes, op: Optional[int] = None, what: str = "") -> PostboxError:
    """The exception for a reply with a non-zero status; a payload that
    does not decode is tolerated (no message, DONE 0: 6.1)."""
    try:
        e = wire.Error.decode(payload)
        msg = e.message.decode("utf-8", "replace")
        done, outcome, receiver = e.done, e.outcome, e.receiver
        rname = wire.principal_name(e.ext)
    except (wire.DecodeError, ValueError, IndexError):
        msg, done, outcome, receiver, rname = "", 0, None, None, None
    if what and not msg:
        msg = what
    cls = BY_CODE.get(status)
    if cls is None:
        return UnknownStatusError(msg, code=status, done=done, outcome=outcome, receiver=receiver,
                                  receiver_name=rname, op=op)
    return cls(msg, done=done, outcome=outcome, receiver=receiver, receiver_name=rname, op=op)
