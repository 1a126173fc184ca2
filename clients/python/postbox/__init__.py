"""postbox: a pure standard library Python client for the postbox broker.

Written from docs/PROTOCOL.md (protocol version 2)::

    import postbox

    with postbox.connect() as c:          # $POSTBOX_SOCKET, else the defaults
        jobs = c.create("jobs")
        jobs.send(b"hello", content_type="text/plain")
        m = jobs.receive(timeout=1.0)
        m.ack()
"""

from . import wire
from .client import (
    MAX_BEST_EFFORT_BACKLOG,
    AckResult,
    Client,
    Consumer,
    Mailbox,
    Message,
    OutMessage,
    Pending,
    Receipt,
    connect,
)
from .errors import (
    BY_CODE,
    STATUS_NAMES,
    CanceledError,
    ClosedError,
    ConnectionLostError,
    DeadPeerError,
    DestroyedError,
    EmptyError,
    ExistsError,
    FullError,
    HandshakeError,
    NoDescriptorsError,
    UnavailableError,
    EndOfStreamError,
    NoReaderError,
    InternalError,
    InvalidError,
    LimitError,
    MalformedError,
    NotFoundError,
    PermissionDeniedError,
    PostboxError,
    ProtocolError,
    StaleLeaseError,
    StorageError,
    TimedOutError,
    TLSError,
    TooLargeError,
    UnknownOpError,
    UnknownStatusError,
    UnsafeSocketError,
    VersionError,
)
from .transport import default_socket_paths, system_socket_path, tls_context, user_socket_path
from .wire import (
    OUTCOME_IN_PROGRESS,
    OUTCOME_SETTLED,
    OUTCOME_WITHDRAWN,
    PERM_R,
    PERM_W,
    MailboxInfo,
    Principal,
    PrincipalUsage,
    UsageEntry,
)

__version__ = "0.1.0"

__all__ = [
    "MAX_BEST_EFFORT_BACKLOG", "AckResult", "Client", "Consumer", "Mailbox", "Message", "OutMessage", "Pending", "Receipt", "connect",
    "BY_CODE", "STATUS_NAMES", "PostboxError", "MalformedError", "VersionError", "UnknownOpError",
    "TooLargeError", "NotFoundError", "ExistsError", "PermissionDeniedError", "FullError", "EmptyError",
    "TimedOutError", "DestroyedError", "StaleLeaseError", "LimitError", "ClosedError", "CanceledError",
    "InternalError", "StorageError", "InvalidError", "HandshakeError", "EndOfStreamError", "NoReaderError", "NoDescriptorsError", "UnavailableError", "UnknownStatusError",
    "ConnectionLostError", "DeadPeerError", "ProtocolError", "TLSError", "UnsafeSocketError", "default_socket_paths", "system_socket_path",
    "user_socket_path", "tls_context", "MailboxInfo", "Principal", "PrincipalUsage", "UsageEntry", "OUTCOME_WITHDRAWN",
    "OUTCOME_IN_PROGRESS", "OUTCOME_SETTLED", "PERM_R", "PERM_W", "wire",
]
