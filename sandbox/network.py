"""Network policies of sandboxed commands, and the host-side decision on each connection."""

from __future__ import annotations

import ipaddress
import itertools
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, get_args

NetworkMode = Literal["none", "allowlist", "full"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str, int], list[str]]
"""Host name and port to the addresses to try, in order; raises OSError when it does not resolve."""

MODES: tuple[NetworkMode, ...] = get_args(NetworkMode)


@dataclass
class NetworkConfig:
    """What a sandboxed command may reach: nothing, allowlisted HTTP(S) hosts, or any public one.

    A dataclass, not a pydantic model: `autan sandbox run` starts without importing pydantic.
    Made with a bad value, it raises ValueError saying which."""

    mode: NetworkMode = "none"
    """`none`: a private loopback only. `allowlist`: HTTP(S) through the platform's proxy to the
    hosts in `allow`. `full`: the proxy with no host list (only where the operator allows it)."""

    allow: list[str] = field(default_factory=list)
    """Host names (`pypi.org`), wildcards (`*.pythonhosted.org`: subdomains only) and IP
    literals the `allowlist` mode lets through."""

    allow_addresses: list[str] = field(default_factory=list)
    """Address ranges (`10.1.2.0/24`, `127.0.0.1`) a host may resolve to although they are not
    public (loopback, private, link-local) or are this host's own; none by default."""

    ports: list[int] = field(default_factory=lambda: [80, 443])
    """Ports the `allowlist` mode lets through; `full` allows any."""

    max_connections: int = 64
    """Connections one command may hold open through the proxy at once; more wait for one
    to close (each costs the worker a thread or two)."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"network mode: {self.mode!r} is not one of {', '.join(MODES)}")
        self.allow = [_normal(v) for v in self.allow]
        for name in self.allow:
            if not name or "/" in name or (name.startswith("*") and not name.startswith("*.")):
                raise ValueError(f"not a host name or `*.domain` wildcard: {name!r}")
        for item in self.allow_addresses:
            ipaddress.ip_network(item, strict=False)  # its ValueError says what is wrong
        if self.max_connections < 1:
            raise ValueError(f"max_connections: {self.max_connections} is not at least 1")

    def merged(self, allow: Iterable[str]) -> NetworkConfig:
        """The same policy with more allowed hosts (a repository's own list)."""
        return replace(self, allow=[*self.allow, *allow])


@dataclass(frozen=True)
class Connection:
    """One connection a sandboxed command asked for, and what the proxy decided."""

    host: str
    port: int
    allowed: bool
    reason: str


OnConnection = Callable[[Connection], None]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    addresses: tuple[str, ...] = ()
    """Where to connect when allowed: only addresses that passed the checks, never re-resolved."""


def _normal(host: str) -> str:
    return host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")


def _ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def matches(host: str, pattern: str) -> bool:
    """`host` is `pattern`, or a subdomain of `*.domain` (not `domain` itself)."""
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def resolve(host: str, port: int) -> list[str]:
    """The host's own resolver, as the worker sees it."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def own_addresses() -> frozenset[IPAddress]:
    """This host's own addresses, from the kernel's local routing table (Linux)."""
    found: set[IPAddress] = set()
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
    except OSError:
        lines = []
    for previous, line in itertools.pairwise(lines):
        if line.strip() == "/32 host LOCAL":
            found.add(ipaddress.ip_address(previous.split()[-1]))
    try:
        for row in Path("/proc/net/if_inet6").read_text().splitlines():
            raw = row.split()[0]
            found.add(ipaddress.ip_address(":".join(raw[i : i + 4] for i in range(0, 32, 4))))
    except OSError:
        pass
    return frozenset(found)


def decide(
    host: str, port: int, config: NetworkConfig, lookup: Resolve, own: frozenset[IPAddress]
) -> Decision:
    """Whether the proxy may connect to `host:port` under `config`, and to which addresses."""
    host = _normal(host)
    if config.mode == "none":
        return Decision(False, "the network policy is none")
    if config.mode == "allowlist":
        if not any(matches(host, pattern) for pattern in config.allow):
            kind = "address" if _ip(host) else "host"
            return Decision(False, f"{kind} {host} is not in the allowlist")
        if port not in config.ports:
            return Decision(False, f"port {port} is not allowed (allowed: {config.ports})")
    if not 0 < port < 65536:
        return Decision(False, f"port {port} is out of range")
    try:
        found = [host] if _ip(host) else lookup(host, port)
    except OSError as exc:
        return Decision(False, f"{host} does not resolve: {exc}")
    ranges = [ipaddress.ip_network(r, strict=False) for r in config.allow_addresses]
    good: list[str] = []
    bad: list[str] = []
    for text in found:
        address = ipaddress.ip_address(text.split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        listed = any(address in r for r in ranges)
        (good if listed or (address.is_global and address not in own) else bad).append(text)
    if not good:
        shown = ", ".join(bad) or "nothing"
        return Decision(False, f"{host} resolves to {shown}: not public, and not allowed")
    return Decision(True, "allowed" if config.mode == "full" else "in the allowlist", tuple(good))
