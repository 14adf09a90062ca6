"""Ordered endpoints by tier: health checks, fail-over with a cool-off, escalation upwards."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, Field

from serving.base import Completion, Message, ToolChoice, ToolSpec
from serving.client import ClientConfig, OpenAIClient
from serving.errors import (
    EndpointUnreachable,
    NoEndpointAvailable,
    NoStrongerModel,
    RateLimited,
    ServerFailed,
    ServingError,
)

FAILING_OVER = (EndpointUnreachable, ServerFailed, RateLimited)
"""What makes the router try the next endpoint; a refused request would be refused anywhere."""


class EndpointConfig(BaseModel):
    """One endpoint the router may use."""

    name: str
    """Short name for logs and events (`gpu1`, `mistral-api`)."""

    tier: int = 0
    """0 for the everyday model; escalation moves to the next higher tier configured."""

    client: ClientConfig
    """How to reach it."""


class RouterConfig(BaseModel):
    """The endpoints, in order of preference within each tier."""

    endpoints: list[EndpointConfig] = Field(min_length=1)
    """Tried in this order within a tier."""

    cool_off_s: float = Field(default=30.0, ge=0)
    """How long an endpoint that failed stays skipped before a health probe may bring it back."""

    probe_timeout_s: float = Field(default=3.0, gt=0)
    """Timeout of each health probe."""


@dataclass
class _Shared:
    """Health state shared by a router and the routers its escalations return."""

    clients: dict[str, OpenAIClient]
    down_until: dict[str, float]
    last_error: dict[str, str]
    lock: threading.Lock
    clock: Callable[[], float]


class Router:
    """Implements ChatModel over the endpoints of one tier; `escalate()` gives the next tier."""

    def __init__(
        self,
        config: RouterConfig,
        *,
        tier: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        _shared: _Shared | None = None,
    ) -> None:
        self.config = config
        self.tiers = sorted({e.tier for e in config.endpoints})
        self.tier = self.tiers[0] if tier is None else tier
        self._shared = _shared or _Shared(
            clients={e.name: OpenAIClient(e.client) for e in config.endpoints},
            down_until={},
            last_error={},
            lock=threading.Lock(),
            clock=clock,
        )
        self.endpoints = [e for e in config.endpoints if e.tier == self.tier]

    def close(self) -> None:
        for client in self._shared.clients.values():
            client.close()

    def escalate(self) -> Router:
        """A router over the next stronger tier, sharing this one's health state."""
        higher = [t for t in self.tiers if t > self.tier]
        if not higher:
            raise NoStrongerModel(
                f"tier {self.tier} is the strongest configured; none to escalate to"
            )
        return Router(self.config, tier=higher[0], _shared=self._shared)

    def is_down(self, name: str) -> bool:
        with self._shared.lock:
            return self._shared.down_until.get(name, 0.0) > self._shared.clock()

    def mark_down(self, name: str, reason: str) -> None:
        with self._shared.lock:
            self._shared.down_until[name] = self._shared.clock() + self.config.cool_off_s
            self._shared.last_error[name] = reason

    def probe(self, name: str) -> bool:
        """Healthy when `/health` is 200 (or absent, 404) and `/v1/models` lists the model."""
        client = self._shared.clients[name]
        timeout = self.config.probe_timeout_s
        try:
            if client.health(timeout) not in (200, 404):
                return False
            return client.config.model in client.models(timeout)
        except ServingError:
            return False

    def status(self) -> list[dict[str, Any]]:
        """Each endpoint of every tier: up or down, and the last error that took it down."""
        return [
            {
                "name": e.name,
                "tier": e.tier,
                "up": not self.is_down(e.name),
                "last_error": self._shared.last_error.get(e.name),
            }
            for e in self.config.endpoints
        ]

    def _usable(self, name: str) -> bool:
        with self._shared.lock:
            was_marked = name in self._shared.down_until
            cooling = self._shared.down_until.get(name, 0.0) > self._shared.clock()
        if cooling:
            return False
        if was_marked:  # its cool-off is over: probe before trusting it again
            if not self.probe(name):
                self.mark_down(name, "still failing its health probe")
                return False
            with self._shared.lock:
                self._shared.down_until.pop(name, None)
        return True

    def _call(self, do: Callable[[OpenAIClient], Completion]) -> Completion:
        reasons: list[str] = []
        for endpoint in self.endpoints:
            if not self._usable(endpoint.name):
                reasons.append(
                    f"{endpoint.name}: down ({self._shared.last_error.get(endpoint.name)})"
                )
                continue
            try:
                completion = do(self._shared.clients[endpoint.name])
            except FAILING_OVER as exc:
                self.mark_down(endpoint.name, str(exc))
                reasons.append(f"{endpoint.name}: {exc}")
                continue
            return replace(completion, endpoint=endpoint.name)
        raise NoEndpointAvailable(
            f"no endpoint of tier {self.tier} answered: " + "; ".join(reasons)
        )

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        max_tokens: int | None = None,
    ) -> Completion:
        return self._call(
            lambda c: c.complete(
                messages, tools=tools, tool_choice=tool_choice, max_tokens=max_tokens
            )
        )

    def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        max_tokens: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Completion:
        return self._call(
            lambda c: c.stream(
                messages, tools=tools, tool_choice=tool_choice, max_tokens=max_tokens,
                on_text=on_text,
            )
        )  # fmt: skip
