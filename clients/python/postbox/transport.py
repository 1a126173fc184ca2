"""Where to connect (PROTOCOL.md section 1) and the byte streams: a Unix
socket, plain TCP, or TLS through the ssl module.

TLS runs over memory BIOs (:class:`ssl.SSLObject`), so that the reader
thread and the writers never use one OpenSSL object at the same time: every
call into it holds one lock, and the socket itself is read by the reader
thread alone and written under the writer's lock.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import ssl
import stat
import threading
import time
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

from .errors import TLSError, UnsafeSocketError

SYSTEM_SOCKET = "/run/postbox/postbox.sock"


def user_socket_path() -> str:
    """The per-user socket: ``$XDG_RUNTIME_DIR/postbox/postbox.sock``, else
    ``${TMPDIR:-/tmp}/postbox-<real uid>/postbox.sock``."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "postbox", "postbox.sock")
    tmp = os.environ.get("TMPDIR") or "/tmp"
    return os.path.join(tmp, f"postbox-{os.getuid()}", "postbox.sock")


def system_socket_path() -> str:
    """The system-wide socket: ``$POSTBOX_SYSTEM_SOCKET``, else
    ``/run/postbox/postbox.sock``."""
    return os.environ.get("POSTBOX_SYSTEM_SOCKET") or SYSTEM_SOCKET


def default_socket_paths() -> list[str]:
    """The default paths a client tries, in order: per-user, then system."""
    return [user_socket_path(), system_socket_path()]


def check_default_path(path: str) -> None:
    """The checks a client makes before dialling a default path (section 1).

    Raises FileNotFoundError when the directory or the socket does not
    exist, and :class:`UnsafeSocketError` naming the path and the reason
    when one is not safe."""
    euid = os.geteuid()
    d = os.path.dirname(path) or "."
    st = os.lstat(d)  # FileNotFoundError moves on
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeSocketError(f"unsafe socket {path}: directory {d} is a symlink")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeSocketError(f"unsafe socket {path}: {d} is not a directory")
    if st.st_uid not in (euid, 0):
        raise UnsafeSocketError(f"unsafe socket {path}: directory {d} is owned by uid {st.st_uid}")
    if st.st_mode & 0o022:
        raise UnsafeSocketError(f"unsafe socket {path}: directory {d} is writable by group or others")
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISSOCK(st.st_mode):
        raise UnsafeSocketError(f"unsafe socket {path}: not a socket")
    if st.st_uid not in (euid, 0):
        raise UnsafeSocketError(f"unsafe socket {path}: socket is owned by uid {st.st_uid}")


@dataclass
class Address:
    """A resolved broker address: ``unix`` (path), ``tcp`` or ``tls``
    (host, port)."""

    scheme: str
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_url(url: str) -> Address:
    """``unix:///path``, ``tls://host:port`` or ``tcp://host:port``."""
    u = urlsplit(url)
    if u.scheme == "unix":
        path = u.path if not u.netloc else u.netloc + u.path
        if not path:
            raise ValueError(f"url {url!r}: no socket path")
        return Address("unix", path=path)
    if u.scheme in ("tls", "tcp"):
        if not u.hostname or not u.port:
            raise ValueError(f"url {url!r}: want {u.scheme}://host:port")
        return Address(u.scheme, host=u.hostname, port=u.port)
    raise ValueError(f"url {url!r}: the scheme must be unix, tls or tcp")


def _ready(sock: socket.socket, events: int, timeout: float) -> bool:
    """Whether sock is ready for events within timeout seconds (poll(2),
    so that a descriptor above FD_SETSIZE works)."""
    p = select.poll()
    p.register(sock, events)
    return bool(p.poll(max(0, int(timeout * 1000 + 0.999))))


class PlainStream:
    """A connected socket (Unix or TCP)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock

    def recv(self, n: int, timeout: Optional[float] = None) -> bytes:
        """Up to n bytes; b"" at the end. With ``timeout`` (seconds, the
        reader's dead-peer bound) raises the built-in TimeoutError when
        nothing arrives in time; the socket itself stays blocking, so
        writers are not affected."""
        if timeout is not None and not _ready(self.sock, select.POLLIN, timeout):
            raise TimeoutError("nothing to read")
        return self.sock.recv(n)

    def writable(self) -> bool:
        """Whether the kernel's send buffer has room now."""
        return _ready(self.sock, select.POLLOUT, 0)

    def sendall(self, b) -> None:
        self.sock.sendall(b)

    def shutdown(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()

    def settimeout(self, t: Optional[float]) -> None:
        self.sock.settimeout(t)


class TLSStream:
    """TLS over a connected TCP socket, through memory BIOs.

    ``recv`` is called by one thread (the reader), ``sendall`` by writers
    holding the client's write lock; ``_lock`` guards the SSLObject.
    (``server_side`` is for tests, which put a TLS endpoint in front of a
    Unix socket.)"""

    def __init__(self, sock: socket.socket, ctx: ssl.SSLContext, server_hostname: Optional[str],
                 timeout: Optional[float], server_side: bool = False):
        self.sock = sock
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_side=server_side,
                                server_hostname=None if server_side else server_hostname)
        self._lock = threading.Lock()
        self._wire_lock = threading.Lock()  # orders ciphertext written by recv's flush and sendall
        sock.settimeout(timeout)
        while True:
            try:
                self.obj.do_handshake()
                self._flush()
                break
            except ssl.SSLWantReadError:
                self._flush()
                data = sock.recv(65536)
                if not data:
                    raise ConnectionResetError("TLS handshake: connection closed by the broker")
                self.inc.write(data)

    def _flush(self) -> None:
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def recv(self, n: int, timeout: Optional[float] = None) -> bytes:
        """As :meth:`PlainStream.recv`: ``timeout`` bounds the wait for
        ciphertext in all."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                try:
                    return self.obj.read(n)
                except ssl.SSLWantReadError:
                    pending = self.out.read()
                except ssl.SSLZeroReturnError:
                    return b""
            if pending:
                with self._wire_lock:
                    self.sock.sendall(pending)
            if deadline is not None and not _ready(self.sock, select.POLLIN, deadline - time.monotonic()):
                raise TimeoutError("nothing to read")
            data = self.sock.recv(max(n, 65536))
            if not data:
                with self._lock:
                    self.inc.write_eof()
                    try:
                        return self.obj.read(n)
                    except (ssl.SSLWantReadError, ssl.SSLZeroReturnError, ssl.SSLEOFError):
                        return b""
            with self._lock:
                self.inc.write(data)

    def sendall(self, b) -> None:
        with self._wire_lock:
            with self._lock:
                self.obj.write(b)
                data = self.out.read()
            self.sock.sendall(data)

    def shutdown(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()

    def settimeout(self, t: Optional[float]) -> None:
        self.sock.settimeout(t)

    def writable(self) -> bool:
        """Whether the kernel's send buffer has room now."""
        return _ready(self.sock, select.POLLOUT, 0)

    def peer_certificate(self) -> Optional[dict]:
        with self._lock:
            return self.obj.getpeercert()


_TLS_REASONS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the broker requires a client certificate and none was presented",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "the broker refused the handshake (no client certificate, or no common cipher)",
    "TLSV1_ALERT_UNKNOWN_CA": "the broker does not trust this client's certificate (unknown CA)",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the broker refused this client's certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the broker refused this client's certificate: it has expired",
}


def tls_error(e: ssl.SSLError, where: str) -> TLSError:
    """A TLS failure in words (PROTOCOL.md 1.1: a refused client
    certificate arrives as an alert, with TLS 1.3 on the first read)."""
    reason = getattr(e, "reason", None) or ""
    if isinstance(e, ssl.SSLCertVerificationError):
        why = f"the broker's certificate failed verification: {e.verify_message}"
    else:
        why = _TLS_REASONS.get(reason, str(e))
    err = TLSError(f"TLS with {where}: {why}", reason=reason)
    err.__cause__ = e
    return err


def tls_context(cert: Optional[str] = None, key: Optional[str] = None, ca: Optional[str] = None) -> ssl.SSLContext:
    """A client context: verify the broker against ``ca`` (else the system
    roots), present ``cert``/``key`` (the broker requires a client
    certificate)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def dial_unix(path: str, timeout: Optional[float]) -> PlainStream:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(path)
    except BaseException:
        s.close()
        raise
    return PlainStream(s)


def dial_defaults(timeout: Optional[float]) -> tuple[PlainStream, str]:
    """Dial the default paths in turn (section 1): a path that does not
    exist or refuses the connection moves on; an unsafe one is an error
    and nothing after it is tried."""
    tried = []
    for path in default_socket_paths():
        try:
            check_default_path(path)
            return dial_unix(path, timeout), path
        except FileNotFoundError:
            tried.append(f"{path}: no socket")
        except ConnectionRefusedError:
            tried.append(f"{path}: no broker listening")
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ECONNREFUSED):
                tried.append(f"{path}: {e.strerror}")
                continue
            raise
    raise FileNotFoundError(errno.ENOENT, "no postbox broker found (" + "; ".join(tried) + ")")


def dial(addr: Address, timeout: Optional[float], ctx: Optional[ssl.SSLContext] = None,
         server_hostname: Optional[str] = None):
    """Connect to a resolved address."""
    if addr.scheme == "unix":
        return dial_unix(addr.path, timeout)
    s = socket.create_connection((addr.host, addr.port), timeout=timeout)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if addr.scheme == "tcp":
            return PlainStream(s)
        if ctx is None:
            ctx = tls_context()
        try:
            return TLSStream(s, ctx, server_hostname or addr.host, timeout)
        except ssl.SSLError as e:
            raise tls_error(e, str(addr)) from e
    except BaseException:
        s.close()
        raise
