"""Endpoints of one model behind one ChatModel: health, fail-over, spreading by load."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, Field, field_validator

from serving.base import Completion, Message, ToolChoice, ToolSpec
from serving.client import ClientConfig, OpenAIClient
from serving.errors import (
    EndpointUnreachable,
    NoEndpointAvailable,
    RateLimited,
    ServerFailed,
    ServingError,
)

FAILING_OVER = (EndpointUnreachable, ServerFailed, RateLimited)
"""What makes the router try another endpoint (timeouts are EndpointUnreachable too); a refused
request (other 4xx) would be refused anywhere, so it goes to the caller."""


class EndpointConfig(BaseModel):
    """One endpoint the router may use."""

    name: str
    """Short name for logs and events (`gpu1:8000`, `mistral-api`)."""

    client: ClientConfig
    """How to reach it."""


class RouterConfig(BaseModel):
    """The endpoints, and how long a failed one is left alone."""

    endpoints: list[EndpointConfig] = Field(min_length=1)
    """Endpoints serving the same model; each call goes to the least loaded healthy one."""

    cool_off_s: float = Field(default=30.0, ge=0)
    """How long an endpoint that failed stays skipped before a health probe may bring it back."""

    probe_timeout_s: float = Field(default=3.0, gt=0)
    """Timeout of each health probe."""

    @field_validator("endpoints")
    @classmethod
    def _names_differ(cls, endpoints: list[EndpointConfig]) -> list[EndpointConfig]:
        names = [e.name for e in endpoints]
        if len(set(names)) != len(names):
            raise ValueError(f"endpoint names must differ: {names}")
        return endpoints


@dataclass
class _Endpoint:
    name: str
    client: OpenAIClient
    outstanding: int = 0
    """Calls and probes in flight on it, from every thread of this process."""
    picked: int = 0
    """When it was last picked (a sequence number): ties of load go to the one idle longest."""
    down_until: float | None = None
    """Set when it failed: skipped until then, probed before it is trusted again."""
    last_error: str | None = None


class Router:
    """Implements ChatModel over endpoints of one model; thread-safe, so one serves a process."""

    def __init__(
        self,
        config: RouterConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._endpoints = {
            e.name: _Endpoint(e.name, OpenAIClient(e.client)) for e in config.endpoints
        }
        # A fresh process starts its ties at a random endpoint, so that worker processes,
        # each with its own router, do not all send their first call to the same one.
        order = list(self._endpoints.values())
        (rng or random.Random()).shuffle(order)
        for i, endpoint in enumerate(order):
            endpoint.picked = i - len(order)
        self._sequence = 0

    def close(self) -> None:
        for endpoint in self._endpoints.values():
            endpoint.client.close()

    def is_down(self, name: str) -> bool:
        with self._lock:
            until = self._endpoints[name].down_until
            return until is not None and until > self._clock()

    def mark_down(self, name: str, reason: str) -> None:
        with self._lock:
            endpoint = self._endpoints[name]
            endpoint.down_until = self._clock() + self.config.cool_off_s
            endpoint.last_error = reason

    def probe(self, name: str) -> bool:
        """Healthy when `/health` is 200 (or absent, 404) and `/v1/models` lists the model."""
        client = self._endpoints[name].client
        timeout = self.config.probe_timeout_s
        try:
            if client.health(timeout) not in (200, 404):
                return False
            return client.config.model in client.models(timeout)
        except ServingError:
            return False

    def recover(self) -> bool:
        """Probe every endpoint marked down, cool-off or not; True when any endpoint is up.

        For a caller that waits out an outage: it should not wait for the cool-off to end
        to learn that an endpoint came back."""
        with self._lock:
            marked = [e.name for e in self._endpoints.values() if e.down_until is not None]
            anything_up = len(marked) < len(self._endpoints)
        for name in marked:
            if self.probe(name):
                self._mark_up(name)
                anything_up = True
            else:
                self.mark_down(name, "still failing its health probe")
        return anything_up

    def status(self) -> list[dict[str, Any]]:
        """Each endpoint: up or down, calls in flight, and the last error that took it down."""
        with self._lock:
            now = self._clock()
            return [
                {
                    "name": e.name,
                    "up": e.down_until is None or e.down_until <= now,
                    "outstanding": e.outstanding,
                    "last_error": e.last_error,
                }
                for e in self._endpoints.values()
            ]

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        max_tokens: int | None = None,
        prefer: str | None = None,
    ) -> Completion:
        """`prefer` names an endpoint to use whenever it is up, whatever its load."""
        return self._call(
            lambda c: c.complete(
                messages, tools=tools, tool_choice=tool_choice, max_tokens=max_tokens
            ),
            prefer,
        )

    def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        max_tokens: int | None = None,
        on_text: Callable[[str], None] | None = None,
        prefer: str | None = None,
    ) -> Completion:
        return self._call(
            lambda c: c.stream(
                messages, tools=tools, tool_choice=tool_choice, max_tokens=max_tokens,
                on_text=on_text,
            ),
            prefer,
        )  # fmt: skip

    def _call(self, do: Callable[[OpenAIClient], Completion], prefer: str | None) -> Completion:
        if prefer is not None and prefer not in self._endpoints:
            raise ValueError(f"no endpoint {prefer!r}: the router has {list(self._endpoints)}")
        tried: set[str] = set()
        reasons: list[str] = []
        while True:
            with self._take(tried, prefer) as endpoint:
                if endpoint is None:
                    break
                tried.add(endpoint.name)
                if endpoint.down_until is not None and not self._revive(endpoint):
                    reasons.append(f"{endpoint.name}: still failing its health probe")
                    continue
                try:
                    completion = do(endpoint.client)
                except FAILING_OVER as exc:
                    self.mark_down(endpoint.name, str(exc))
                    reasons.append(f"{endpoint.name}: {exc}")
                    continue
                return replace(completion, endpoint=endpoint.name)
        with self._lock:
            reasons += [
                f"{e.name}: down ({e.last_error})"
                for e in self._endpoints.values()
                if e.name not in tried
            ]
        raise NoEndpointAvailable("no model endpoint answered: " + "; ".join(reasons))

    @contextmanager
    def _take(self, tried: set[str], prefer: str | None) -> Iterator[_Endpoint | None]:
        """The preferred endpoint, else the least loaded one, among those not tried yet and not
        cooling off; counted as in flight until released."""
        with self._lock:
            now = self._clock()
            ready = [
                e
                for e in self._endpoints.values()
                if e.name not in tried and (e.down_until is None or e.down_until <= now)
            ]
            if not ready:
                endpoint = None
            else:
                endpoint = min(ready, key=lambda e: (e.name != prefer, e.outstanding, e.picked))
                self._sequence += 1
                endpoint.picked = self._sequence
                endpoint.outstanding += 1
        try:
            yield endpoint
        finally:
            if endpoint is not None:
                with self._lock:
                    endpoint.outstanding -= 1

    def _revive(self, endpoint: _Endpoint) -> bool:
        """Its cool-off is over: probe it before trusting it again."""
        if self.probe(endpoint.name):
            self._mark_up(endpoint.name)
            return True
        self.mark_down(endpoint.name, "still failing its health probe")
        return False

    def _mark_up(self, name: str) -> None:
        with self._lock:
            self._endpoints[name].down_until = None
