"""Network policies from inside a sandbox: only the proxy, only allowlisted names, every one told."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from sandbox.bwrap import BwrapSandbox
from sandbox.config import SandboxConfig
from sandbox.errors import NetworkNotAllowed
from sandbox.network import Connection, NetworkConfig
from tests.sandbox import attacks
from tests.sandbox.attacks import cli
from tests.sandbox.sites import Site

ABSTRACT = attacks.TRY + ("s = socket.socket(socket.AF_UNIX)\nattempt(lambda: s.connect({name!r}))")
# Through the proxy on purpose: NO_PROXY names localhost, as a sandboxed test server wants.
FETCH = (
    "import os, urllib.request as u, urllib.error as e\n"
    "os.environ.pop('no_proxy', None), os.environ.pop('NO_PROXY', None)\n"
    "opener = u.build_opener(u.ProxyHandler({{'http': 'http://127.0.0.1:3128'}}))\n"
    "try:\n"
    "    r = opener.open('http://{host}:{port}/hello.txt', timeout=10)\n"
    "    print(r.status, r.read().decode())\n"
    "except e.HTTPError as err:\n"
    "    print(err.code, err.read().decode().strip())\n"
    "except OSError as err:\n"
    "    print('failed', err)\n"
)
# A CONNECT tunnel (what https uses), then plain HTTP inside it.
TUNNEL = (
    "import socket\n"
    "s = socket.create_connection(('127.0.0.1', 3128), timeout=10)\n"
    "s.sendall(b'CONNECT {host}:{port} HTTP/1.1\\r\\nHost: {host}\\r\\n\\r\\n')\n"
    "print(s.recv(4096).split(b'\\r\\n')[0].decode())\n"
    "s.sendall(b'GET /hello.txt HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n')\n"
    "data = b''\n"
    "while chunk := s.recv(65536):\n"
    "    data += chunk\n"
    "print(data.split(b'\\r\\n')[0].decode(), data.split(b'\\r\\n\\r\\n', 1)[1].decode())\n"
)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    served = Site(tmp_path / "site")
    yield served
    served.close()


@pytest.fixture
def networked(
    make_sandbox: Callable[..., BwrapSandbox], config: SandboxConfig
) -> Callable[..., tuple[BwrapSandbox, list[Connection]]]:
    def make(**policy: object) -> tuple[BwrapSandbox, list[Connection]]:
        seen: list[Connection] = []
        cfg = replace(config, network=NetworkConfig(**policy), allow_full_network=True)
        sbx = make_sandbox(cfg)
        sbx.on_connection = seen.append
        return sbx, seen

    return make


POLICIES = [
    {"mode": "none"},
    {"mode": "allowlist", "allow": ["localhost", "127.0.0.1"], "allow_addresses": ["127.0.0.0/8"]},
    {"mode": "full", "allow_addresses": ["127.0.0.0/8"]},
]


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: str(p["mode"]))
def test_host_loopback_and_abstract_sockets_are_unreachable_directly(
    networked: Callable[..., tuple[BwrapSandbox, list[Connection]]],
    site: Site,
    policy: dict[str, object],
) -> None:
    # Even with loopback allowed at the proxy, a direct connection never leaves the sandbox.
    host_side = socket.socket(socket.AF_UNIX)
    name = f"\0autan-test-{os.urandom(6).hex()}"
    host_side.bind(name)
    host_side.listen(1)
    host_side.setblocking(False)
    sbx, seen = networked(**policy)
    try:
        direct = sbx.exec(["python3", "-c", attacks.CONNECT.format(port=site.port)])
        abstract = sbx.exec(["python3", "-c", ABSTRACT.format(name=name)])
        with pytest.raises(BlockingIOError):
            host_side.accept()
    finally:
        host_side.close()

    assert (direct.stdout, abstract.stdout) == ("ECONNREFUSED\n", "ECONNREFUSED\n")
    assert site.requests == [] and seen == []


def test_an_allowlisted_name_reaches_the_host_only_through_the_proxy_and_is_reported(
    networked: Callable[..., tuple[BwrapSandbox, list[Connection]]], site: Site
) -> None:
    sbx, seen = networked(
        mode="allowlist", allow=["localhost"], allow_addresses=["127.0.0.1"], ports=[site.port]
    )
    plain = sbx.exec(["python3", "-c", FETCH.format(host="localhost", port=site.port)])
    tunnel = sbx.exec(["python3", "-c", TUNNEL.format(host="localhost", port=site.port)])
    env = sbx.exec("echo $HTTP_PROXY $https_proxy $NO_PROXY")

    assert plain.stdout == "200 hello from the host\n", plain.stderr
    assert tunnel.stdout.splitlines() == [
        "HTTP/1.1 200 Connection established",
        "HTTP/1.0 200 OK hello from the host",
    ], tunnel.stderr
    assert [path for path, _ in site.requests] == ["/hello.txt", "/hello.txt"]
    forwarded = site.requests[0][1]
    assert forwarded["Connection"] == "close" and "Proxy-Connection" not in forwarded
    assert seen == [Connection("localhost", site.port, True, "in the allowlist")] * 2
    assert env.stdout == "http://127.0.0.1:3128 http://127.0.0.1:3128 localhost,127.0.0.1,::1\n"


@pytest.mark.parametrize(
    ("policy", "host", "reason"),
    [
        (
            {"allow": ["packages.example.com"]},
            "localhost",
            "host localhost is not in the allowlist",
        ),
        ({"allow": ["*.localhost"]}, "localhost", "host localhost is not in the allowlist"),
        (
            {"allow": ["localhost"]},
            "localhost",
            "localhost resolves to 127.0.0.1: not public, and not allowed",
        ),
        ({"allow": ["localhost"]}, "127.0.0.1", "address 127.0.0.1 is not in the allowlist"),
        (
            {"allow": ["localhost"], "allow_addresses": ["127.0.0.1"], "ports": [443]},
            "localhost",
            "port {port} is not allowed (allowed: [443])",
        ),
    ],
    ids=["unlisted", "wildcard-is-subdomains-only", "loopback-not-allowed", "ip-literal", "port"],
)
def test_what_the_allowlist_does_not_name_is_refused_and_reported(
    networked: Callable[..., tuple[BwrapSandbox, list[Connection]]],
    site: Site,
    policy: dict[str, object],
    host: str,
    reason: str,
) -> None:
    sbx, seen = networked(**{"mode": "allowlist", "ports": [site.port], **policy})
    plain = sbx.exec(["python3", "-c", FETCH.format(host=host, port=site.port)])
    tunnel = sbx.exec(["python3", "-c", TUNNEL.format(host=host, port=site.port)])

    why = reason.format(port=site.port)
    assert plain.stdout == f"403 autan proxy: {why}\n"
    assert tunnel.stdout.splitlines()[0] == "HTTP/1.1 403 Forbidden"
    assert site.requests == []
    assert seen == [Connection(host, site.port, False, why)] * 2


def test_redis_on_the_host_loopback_stays_out_of_reach_under_the_allowlist(
    networked: Callable[..., tuple[BwrapSandbox, list[Connection]]],
) -> None:
    assert redis.Redis(host="127.0.0.1", port=6379).ping()  # it is there, outside
    sbx, seen = networked(mode="allowlist", allow=["localhost", "127.0.0.1"], ports=[80, 6379])
    direct = sbx.exec(["python3", "-c", attacks.CONNECT.format(port=6379)])
    by_name = sbx.exec(["python3", "-c", TUNNEL.format(host="localhost", port=6379)])
    by_address = sbx.exec(["python3", "-c", TUNNEL.format(host="127.0.0.1", port=6379)])

    assert direct.stdout == "ECONNREFUSED\n"
    assert by_name.stdout.splitlines()[0] == "HTTP/1.1 403 Forbidden"
    assert by_address.stdout.splitlines()[0] == "HTTP/1.1 403 Forbidden"
    assert [(c.host, c.allowed) for c in seen] == [("localhost", False), ("127.0.0.1", False)]
    assert all("not public, and not allowed" in c.reason for c in seen)


def test_full_keeps_the_host_loopback_out_unless_allowed(
    networked: Callable[..., tuple[BwrapSandbox, list[Connection]]], site: Site
) -> None:
    sbx, seen = networked(mode="full")
    refused = sbx.exec(["python3", "-c", FETCH.format(host="localhost", port=site.port)])

    assert refused.stdout == (
        "403 autan proxy: localhost resolves to 127.0.0.1: not public, and not allowed\n"
    )
    assert site.requests == [] and [c.allowed for c in seen] == [False]


def test_full_is_refused_unless_the_operator_allows_it(
    sbx: BwrapSandbox, config: SandboxConfig, base: Path, site: Site
) -> None:
    with pytest.raises(ValueError, match="the `full` network policy is off"):
        SandboxConfig(root=config.root, network="full")
    with pytest.raises(NetworkNotAllowed, match="allow_full_network"):
        sbx.exec("true", network=NetworkConfig(mode="full"))
    # `autan sandbox run --network` is the operator's own: full, through the proxy.
    code = attacks.CONNECT.format(port=site.port)
    via_cli = cli(config.root, base, "--network", "--", "python3", "-c", code)
    proxied = cli(config.root, base, "--network", "--", "python3", "-c",
                  FETCH.format(host="localhost", port=site.port))  # fmt: skip

    assert via_cli.stdout == "ECONNREFUSED\n", via_cli.stderr
    assert proxied.stdout.startswith("403 autan proxy: localhost resolves to 127.0.0.1")
    assert site.requests == []


def test_a_policy_given_to_one_command_is_that_command_s_only(
    sbx: BwrapSandbox, site: Site, config: SandboxConfig, base: Path
) -> None:
    seen: list[Connection] = []
    sbx.on_connection = seen.append
    setup = NetworkConfig(
        mode="allowlist", allow=["localhost"], allow_addresses=["127.0.0.1"], ports=[site.port]
    )
    fetch = ["python3", "-c", FETCH.format(host="localhost", port=site.port)]
    during = sbx.exec(fetch, network=setup)
    after = sbx.exec(fetch)
    via_cli = cli(config.root, base, "--network-policy", "allowlist", "--allow", "localhost",
                  "--", *fetch)  # fmt: skip

    assert during.stdout == "200 hello from the host\n"
    assert after.stdout.startswith("failed <urlopen error [Errno 111]")
    assert (
        via_cli.stdout == f"403 autan proxy: port {site.port} is not allowed (allowed: [80, 443])\n"
    )
    assert [c.allowed for c in seen] == [True] and len(site.requests) == 1


def test_the_bridge_is_no_child_of_the_command(
    networked: Callable[..., tuple[BwrapSandbox, list[Connection]]],
) -> None:
    # A command that waits for every child it has (an init, a supervisor) must not wait on it.
    sbx, _ = networked(mode="allowlist", allow=["localhost"])
    code = attacks.TRY + "attempt(lambda: os.waitpid(-1, 0))"
    result = sbx.exec(["python3", "-c", code], timeout=20)

    assert (result.stdout, result.timed_out) == ("ECHILD\n", False)
