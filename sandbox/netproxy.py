"""The platform's HTTP(S) proxy for one sandboxed command, reached only through a Unix socket."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from sandbox.config import FULL_REFUSED
from sandbox.errors import BackendUnavailable, NetworkNotAllowed
from sandbox.network import (
    Connection,
    Decision,
    IPAddress,
    NetworkConfig,
    OnConnection,
    Resolve,
    decide,
    own_addresses,
    resolve,
)

log = logging.getLogger(__name__)

INSIDE_SOCKET = "/run/autan/net.sock"
INSIDE_PORT = 3128
_URL = f"http://127.0.0.1:{INSIDE_PORT}"
PROXY_ENV = {
    **{name: _URL for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")},
    **{name: "localhost,127.0.0.1,::1" for name in ("NO_PROXY", "no_proxy")},
}
_BRIDGE = (Path(__file__).with_name("netbridge.py")).read_text()
_HEAD_LIMIT = 64 << 10
# Names, IPv4 and IPv6 literals: what a decision and an event may carry, nothing else.
_HOST = re.compile(r"[A-Za-z0-9._:-]{1,253}")
_CHUNK = 1 << 16
# Hop-by-hop headers of the client's request to the proxy; never passed on.
_DROPPED = {b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization"}


class BadRequest(Exception):
    """Raised when what a client sent the proxy is not a request it can serve."""


@dataclass(frozen=True)
class Request:
    host: str
    port: int
    tunnel: bool
    """CONNECT (bytes pass through untouched) rather than a plain-HTTP request to forward."""
    head: bytes = b""
    """For plain HTTP: the request as the origin server must see it."""


def _host(host: str) -> str:
    if not _HOST.fullmatch(host):
        raise BadRequest(f"not a host name: {host[:80]!r}")
    return host


def parse(head: bytes) -> Request:
    """The target of a proxy request: `CONNECT host:port` or `GET http://host[:port]/path`."""
    line, _, rest = head.partition(b"\r\n")
    parts = line.decode("latin-1").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest("not an HTTP/1.x request line")
    method, target, version = parts
    if method == "CONNECT":
        host, _, number = target.rpartition(":")
        if not host or not number.isdigit():
            raise BadRequest(f"CONNECT needs host:port, not {target[:80]!r}")
        return Request(_host(host.strip("[]")), int(number), tunnel=True)
    url = urlsplit(target)
    if url.scheme.lower() != "http" or not url.hostname:
        raise BadRequest("give an absolute http:// URL, or use CONNECT (for https)")
    try:
        port = url.port or 80
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    headers = [
        h for h in rest.split(b"\r\n") if h and h.split(b":")[0].strip().lower() not in _DROPPED
    ]
    # One request per connection: the client's next request may name another host.
    lines = [f"{method} {path} {version}".encode("latin-1"), *headers, b"Connection: close"]
    return Request(_host(url.hostname), port, tunnel=False, head=b"\r\n".join(lines) + b"\r\n\r\n")


def _reply(conn: socket.socket, status: str, text: str) -> None:
    body = f"autan proxy: {text}\n".encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
    with suppress(OSError):
        conn.sendall(head.encode() + b"Connection: close\r\n\r\n" + body)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(_CHUNK):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


class NetProxy:
    """Listens on a Unix socket; each request is decided by the policy, reported, then carried."""

    def __init__(
        self,
        path: Path,
        config: NetworkConfig,
        on_connection: OnConnection | None = None,
        *,
        lookup: Resolve = resolve,
        own: frozenset[IPAddress] | None = None,
        timeout_s: float = 30.0,
        as_owner: Callable[[], AbstractContextManager[None]] = nullcontext,
    ) -> None:
        self.path = path
        self.config = config
        self._report = on_connection
        self._lookup = lookup
        self._own = own_addresses() if own is None else own
        self._timeout = timeout_s
        self._open: set[socket.socket] = set()
        self._clients = 0
        self._closed = False
        self._lock = threading.Lock()
        self._slots = threading.Condition(self._lock)
        self._listener = socket.socket(socket.AF_UNIX)
        # Bound through the directory's fd: a sandbox's state path may pass AF_UNIX's 108 bytes.
        parent = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
        try:
            with as_owner():  # made as the sandbox's user: a root worker's ids have no place there
                self._listener.bind(f"/proc/self/fd/{parent}/{path.name}")
                os.chmod(path, 0o666)  # the sandbox's user is not the worker's
        finally:
            os.close(parent)
        self._listener.listen(128)
        self._thread = threading.Thread(target=self._accept, name="netproxy", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            with self._slots:  # past the limit, clients wait in the listen backlog
                self._slots.wait_for(
                    lambda: self._closed or self._clients < self.config.max_connections
                )
                self._clients += 1
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            self._track(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _serve(self, conn: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            conn.settimeout(self._timeout)
            head, extra = self._read_head(conn)
            request = parse(head)
            decision = decide(request.host, request.port, self.config, self._lookup, self._own)
            self._tell(Connection(request.host, request.port, decision.allowed, decision.reason))
            if not decision.allowed:
                _reply(conn, "403 Forbidden", decision.reason)
                return
            upstream = self._connect(decision, request.port)
            if upstream is None:
                _reply(conn, "502 Bad Gateway", f"could not connect to {request.host}")
                return
            conn.settimeout(None)
            if request.tunnel:
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            upstream.sendall(request.head + extra)
            back = threading.Thread(target=_pump, args=(upstream, conn), daemon=True)
            back.start()
            _pump(conn, upstream)
            back.join()
        except BadRequest as exc:
            _reply(conn, "400 Bad Request", str(exc))
        except OSError:
            pass  # the client went away, or the proxy is closing
        finally:
            with self._slots:
                self._clients -= 1
                self._slots.notify()
            for sock in (conn, upstream):
                if sock is not None:
                    with self._lock:
                        self._open.discard(sock)
                    sock.close()

    def _read_head(self, conn: socket.socket) -> tuple[bytes, bytes]:
        buf = b""
        while b"\r\n\r\n" not in buf:
            if len(buf) > _HEAD_LIMIT:
                raise BadRequest("request head too large")
            data = conn.recv(_CHUNK)
            if not data:
                raise BadRequest("connection closed before the request was complete")
            buf += data
        head, _, extra = buf.partition(b"\r\n\r\n")
        if len(head) > _HEAD_LIMIT:
            raise BadRequest("request head too large")
        return head + b"\r\n\r\n", extra

    def _connect(self, decision: Decision, port: int) -> socket.socket | None:
        for address in decision.addresses:
            try:
                upstream = socket.create_connection((address, port), timeout=self._timeout)
            except OSError:
                continue
            upstream.settimeout(None)
            self._track(upstream)
            return upstream
        return None

    def _tell(self, connection: Connection) -> None:
        if self._report is None:
            return
        try:
            self._report(connection)
        except Exception:  # a broken listener must not break the proxy
            log.exception("reporting a sandbox connection failed")

    def close(self) -> None:
        """Stop accepting, cut every open connection, remove the socket."""
        with self._slots:
            self._closed = True
            self._slots.notify_all()
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=5)
        with self._lock:
            for sock in self._open:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> NetProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Plumbing:
    """What one command's bwrap needs for its policy: mounts, environment, a wrapper."""

    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    prefix: list[str] = field(default_factory=list)


@contextmanager
def plumbing(
    policy: NetworkConfig,
    *,
    allow_full: bool,
    directory: Path,
    seen_as: Path | None = None,
    on_connection: OnConnection | None = None,
    as_owner: Callable[[], AbstractContextManager[None]] = nullcontext,
) -> Iterator[Plumbing]:
    """For `none` nothing (bwrap's private loopback); otherwise a proxy for the command's life,
    its socket mounted inside and bridged to 127.0.0.1:3128 by the sandbox's own python3.

    The socket is made in `directory`, which bwrap's set-up sees at `seen_as` (the same path
    unless given), as `as_owner` makes files there."""
    if policy.mode == "none":
        yield Plumbing()
        return
    if policy.mode == "full" and not allow_full:
        raise NetworkNotAllowed(FULL_REFUSED)
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        raise BackendUnavailable("the network policies need /usr/bin/python3 for their bridge")
    path = directory / f"net-{os.urandom(4).hex()}.sock"
    with NetProxy(path, policy, on_connection, as_owner=as_owner):
        yield Plumbing(
            args=["--ro-bind", str((seen_as or directory) / path.name), INSIDE_SOCKET],
            env=PROXY_ENV,
            prefix=[python, "-I", "-S", "-c", _BRIDGE, INSIDE_SOCKET, str(INSIDE_PORT)],
        )
