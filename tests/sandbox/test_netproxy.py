"""The proxy's decisions and its handling of bad requests, faults and closing, from the host side."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.netproxy import NetProxy
from sandbox.network import Connection, NetworkConfig, decide, matches, own_addresses
from tests.sandbox.sites import Site
from tests.waiting import wait_until

PUBLIC = "93.184.216.34"


def names(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    def lookup(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(-2, "Name or service not known")
        return table[host]

    return lookup


def test_wildcards_match_subdomains_only_and_names_are_normalised() -> None:
    assert matches("a.example.com", "*.example.com")
    assert matches("a.b.example.com", "*.example.com")
    assert not matches("example.com", "*.example.com")
    assert not matches("badexample.com", "*.example.com")
    config = NetworkConfig(mode="allowlist", allow=["PyPI.org.", " *.Files.Example.com "])
    assert config.allow == ["pypi.org", "*.files.example.com"]
    lookup = names({"pypi.org": [PUBLIC], "x.files.example.com": [PUBLIC]})
    assert decide("PYPI.ORG.", 443, config, lookup, frozenset()).allowed
    assert decide("x.files.example.com", 80, config, lookup, frozenset()).allowed


@pytest.mark.parametrize(
    ("allow", "ranges", "host", "found", "reason", "addresses"),
    [
        (["pypi.org"], [], "pypi.org", ["10.0.0.1", PUBLIC], "in the allowlist", (PUBLIC,)),
        (["meta"], [], "meta", ["169.254.169.254"], "meta resolves to 169.254.169.254", ()),
        (["m"], [], "m", ["::ffff:127.0.0.1"], "m resolves to ::ffff:127.0.0.1", ()),
        (["me"], [], "me", ["8.8.4.4"], "me resolves to 8.8.4.4", ()),
        (["lan"], ["10.1.0.0/16"], "lan", ["10.1.2.3"], "in the allowlist", ("10.1.2.3",)),
        (["gone"], [], "gone", None, "gone does not resolve", ()),
        ([PUBLIC], [], PUBLIC, None, "in the allowlist", (PUBLIC,)),
        (["pypi.org"], [], PUBLIC, None, f"address {PUBLIC} is not in the allowlist", ()),
        (["127.0.0.1"], [], "127.0.0.1", None, "127.0.0.1 resolves to 127.0.0.1", ()),
    ],
    ids=[
        "public-only",
        "metadata",
        "mapped-loopback",
        "own",
        "listed-range",
        "unresolved",
        "ip-listed",
        "ip-unlisted",
        "ip-loopback",
    ],
)
def test_the_allowlist_decides_by_name_then_by_every_address(
    allow: list[str],
    ranges: list[str],
    host: str,
    found: list[str] | None,
    reason: str,
    addresses: tuple[str, ...],
) -> None:
    config = NetworkConfig(mode="allowlist", allow=allow, allow_addresses=ranges)
    own = frozenset({ipaddress.ip_address("8.8.4.4")})
    decision = decide(host, 443, config, names({host: found} if found else {}), own)

    assert decision.reason.startswith(reason)
    assert (decision.allowed, decision.addresses) == (bool(addresses), addresses)


def test_full_needs_no_name_but_keeps_addresses_and_none_allows_nothing() -> None:
    lookup = names({"anything.example": [PUBLIC], "local": ["127.0.0.1"]})
    full = NetworkConfig(mode="full")

    assert decide("anything.example", 6379, full, lookup, frozenset()).allowed
    assert not decide("local", 80, full, lookup, frozenset()).allowed
    assert not decide("anything.example", 0, full, lookup, frozenset()).allowed
    listed = NetworkConfig(allow=["anything.example"])
    none = decide("anything.example", 443, listed, lookup, frozenset())
    assert (none.allowed, none.reason) == (False, "the network policy is none")


def test_bad_allowlists_are_refused_with_the_entry_named() -> None:
    with pytest.raises(ValueError, match="not a host name"):
        NetworkConfig(allow=["*example.com"])
    with pytest.raises(ValueError, match="not a host name"):
        NetworkConfig(allow=["http://pypi.org/simple"])
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        NetworkConfig(allow_addresses=["the office"])
    with pytest.raises(ValueError, match="network mode: 'open' is not one of none, allowl"):
        NetworkConfig(mode="open")
    with pytest.raises(ValueError, match="max_connections: 0 is not at least 1"):
        NetworkConfig(max_connections=0)
    merged = NetworkConfig(allow=["pypi.org"]).merged([" Mirror.Example.com."])
    assert merged.allow == ["pypi.org", "mirror.example.com"]
    with pytest.raises(ValueError, match="not a host name"):
        merged.merged(["*bad.example"])


def test_this_host_s_own_addresses_include_loopback() -> None:
    assert ipaddress.ip_address("127.0.0.1") in own_addresses()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    served = Site(tmp_path / "site")
    yield served
    served.close()


@pytest.fixture
def proxy(tmp_path: Path, site: Site) -> Iterator[tuple[NetProxy, list[Connection]]]:
    # A directory whose socket path passes AF_UNIX's 108 bytes, as a sandbox's state path may.
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    seen: list[Connection] = []
    config = NetworkConfig(
        mode="allowlist", allow=["packages.test"], allow_addresses=["127.0.0.1"], ports=[site.port]
    )
    lookup = names({"packages.test": ["127.0.0.1"]})
    with NetProxy(deep / "net.sock", config, seen.append, lookup=lookup, timeout_s=5) as served:
        yield served, seen


def connect(proxy: NetProxy) -> socket.socket:
    """A client of the proxy's socket, however long its path."""
    client = socket.socket(socket.AF_UNIX)
    client.settimeout(10)
    parent = os.open(proxy.path.parent, os.O_PATH | os.O_DIRECTORY)
    try:
        client.connect(f"/proc/self/fd/{parent}/{proxy.path.name}")
    finally:
        os.close(parent)
    return client


def ask(proxy: NetProxy, data: bytes) -> bytes:
    client = connect(proxy)
    client.sendall(data)
    client.shutdown(socket.SHUT_WR)
    out = b""
    while chunk := client.recv(65536):
        out += chunk
    client.close()
    return out


def test_a_named_host_is_resolved_on_the_host_side_and_proxy_headers_stay_behind(
    proxy: tuple[NetProxy, list[Connection]], site: Site
) -> None:
    served, seen = proxy
    request = (
        f"GET http://packages.test:{site.port}/hello.txt HTTP/1.1\r\nHost: packages.test\r\n"
        "Proxy-Authorization: Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\n"
        "Connection: keep-alive\r\n\r\n"
    )
    answer = ask(served, request.encode())

    assert answer.startswith(b"HTTP/1.0 200 OK") and answer.endswith(b"hello from the host")
    path, headers = site.requests[0]
    assert path == "/hello.txt" and headers["Host"] == "packages.test"
    assert headers["Connection"] == "close"
    assert not {"Proxy-Authorization", "Proxy-Connection"} & set(headers)
    assert seen == [Connection("packages.test", site.port, True, "in the allowlist")]


@pytest.mark.parametrize(
    ("request_bytes", "answer"),
    [
        (b"hello\r\n\r\n", b"not an HTTP/1.x request line"),
        (b"GET /relative HTTP/1.1\r\n\r\n", b"give an absolute http:// URL"),
        (b"GET https://packages.test/ HTTP/1.1\r\n\r\n", b"use CONNECT (for https)"),
        (b"CONNECT packages.test HTTP/1.1\r\n\r\n", b"CONNECT needs host:port"),
        (b"GET http://packages.test:99999/ HTTP/1.1\r\n\r\n", b"out of range"),
        (b"GET http://x/ HTTP/1.1\r\nX: " + b"a" * (70 << 10) + b"\r\n\r\n", b"too large"),
        (b"GET http://packages.test/", b"closed before the request was complete"),
        (b"CONNECT bad\x01name:443 HTTP/1.1\r\n\r\n", b"not a host name: 'bad\\x01name'"),
        (b"GET http://ex%41mple.com/ HTTP/1.1\r\n\r\n", b"not a host name"),
    ],
    ids=[
        "garbage",
        "relative",
        "https-absolute",
        "connect-no-port",
        "bad-port",
        "huge",
        "cut",
        "control-char",
        "escaped-name",
    ],
)
def test_bad_requests_get_400_and_reach_nothing(
    proxy: tuple[NetProxy, list[Connection]], site: Site, request_bytes: bytes, answer: bytes
) -> None:
    served, seen = proxy
    out = ask(served, request_bytes)

    assert out.startswith(b"HTTP/1.1 400 Bad Request") and answer in out
    assert site.requests == [] and seen == []


def test_a_failing_listener_does_not_stop_the_proxy(tmp_path: Path, site: Site) -> None:
    def broken(connection: Connection) -> None:
        raise RuntimeError("the store is down")

    config = NetworkConfig(
        mode="allowlist", allow=["localhost"], allow_addresses=["127.0.0.1"], ports=[site.port]
    )
    with NetProxy(tmp_path / "p.sock", config, broken) as served:
        answer = ask(
            served, f"GET http://localhost:{site.port}/hello.txt HTTP/1.1\r\n\r\n".encode()
        )

    assert answer.endswith(b"hello from the host")


def test_closing_cuts_open_tunnels_and_removes_the_socket(tmp_path: Path) -> None:
    upstream = socket.socket()
    upstream.bind(("127.0.0.1", 0))
    upstream.listen(1)
    port = upstream.getsockname()[1]
    config = NetworkConfig(mode="full", allow_addresses=["127.0.0.1"])
    served = NetProxy(tmp_path / "p.sock", config)
    client = socket.socket(socket.AF_UNIX)
    client.settimeout(10)
    client.connect(str(served.path))
    client.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
    assert client.recv(4096) == b"HTTP/1.1 200 Connection established\r\n\r\n"
    far, _ = upstream.accept()

    served.close()

    assert client.recv(4096) == b""
    far.settimeout(10)
    assert wait_until(lambda: far.recv(4096) == b"", timeout=10)
    assert not served.path.exists()
    for sock in (client, far, upstream):
        sock.close()


def test_connections_past_the_limit_wait_for_one_to_close(tmp_path: Path, site: Site) -> None:
    config = NetworkConfig(
        mode="allowlist", allow=["localhost"], allow_addresses=["127.0.0.1"], ports=[site.port],
        max_connections=2,
    )  # fmt: skip
    request = f"GET http://localhost:{site.port}/hello.txt HTTP/1.1\r\n\r\n".encode()
    seen: list[Connection] = []
    with NetProxy(tmp_path / "p.sock", config, seen.append) as served:
        held = [connect(served), connect(served)]  # each waits for its request head
        third = connect(served)  # waits in the backlog: nobody reads its request yet
        try:
            third.sendall(request)
            held[0].sendall(request)
            first = b""
            while chunk := held[0].recv(65536):
                first += chunk
            decided_while_full = len(seen)
            held[0].close()  # its slot frees: the third is taken in
            answer = b""
            while chunk := third.recv(65536):
                answer += chunk
        finally:
            for client in (*held, third):
                client.close()

    assert first.startswith(b"HTTP/1.0 200 OK") and decided_while_full == 1
    assert answer.startswith(b"HTTP/1.0 200 OK") and answer.endswith(b"hello from the host")
    assert [c.allowed for c in seen] == [True, True] and len(site.requests) == 2
