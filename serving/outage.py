"""One caller's patience with the router: a model outage pauses the call, up to a limit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from pydantic import BaseModel, Field

from serving.base import Completion, Message, ToolChoice, ToolSpec
from serving.errors import ModelOutage, NoEndpointAvailable, WaitStopped
from serving.router import Router


class OutageConfig(BaseModel):
    """How long a call waits for some endpoint to come back, and how often it looks."""

    limit_s: float = Field(default=120.0, ge=0)
    """Longest outage waited out; past it the call fails with ModelOutage."""

    backoff_base_s: float = Field(default=0.5, gt=0)
    """First wait before looking again; it doubles on each look."""

    backoff_max_s: float = Field(default=5.0, gt=0)
    """Longest wait between two looks: bounds how late a recovery is noticed."""


def _no_callback(*_: object) -> None:
    pass


class PatientModel:
    """Implements ChatModel for one caller over a shared Router.

    When no endpoint answers, it tells `on_wait` why, probes the endpoints with back-off and
    calls again once one is healthy, then tells `on_resume` how long it waited. A model call
    has no side effect, so calling again is safe; the caller sees one reply, as if nothing
    happened. `stop` ends a wait at once (WaitStopped)."""

    def __init__(
        self,
        router: Router,
        config: OutageConfig | None = None,
        *,
        on_wait: Callable[[str], None] = _no_callback,
        on_resume: Callable[[float], None] = _no_callback,
        stop: threading.Event | None = None,
        prefer: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.router = router
        self.prefer = prefer
        """The endpoint this caller uses whenever it is up (see Router.complete)."""
        self.config = config or OutageConfig()
        self.on_wait = on_wait
        self.on_resume = on_resume
        self.stop = stop or threading.Event()
        self.clock = clock

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        max_tokens: int | None = None,
    ) -> Completion:
        return self._patiently(
            lambda: self.router.complete(
                messages,
                tools=tools,
                tool_choice=tool_choice,
                max_tokens=max_tokens,
                prefer=self.prefer,
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
        return self._patiently(
            lambda: self.router.stream(
                messages, tools=tools, tool_choice=tool_choice, max_tokens=max_tokens,
                on_text=on_text, prefer=self.prefer,
            )
        )  # fmt: skip

    def _patiently(self, call: Callable[[], Completion]) -> Completion:
        c = self.config
        began: float | None = None
        looks = 0
        while True:
            try:
                completion = call()
            except NoEndpointAvailable as exc:
                if began is None:
                    began = self.clock()
                    self.on_wait(str(exc))
                while True:  # back off, probe, until an endpoint is up or the limit is reached
                    waited = self.clock() - began
                    if waited >= c.limit_s:
                        raise ModelOutage(
                            f"the model was unreachable for {waited:.0f}s, past the outage "
                            f"limit of {c.limit_s:g}s: {exc}"
                        ) from exc
                    delay = min(c.backoff_max_s, c.backoff_base_s * 2**looks, c.limit_s - waited)
                    looks += 1
                    if self.stop.wait(delay):
                        raise WaitStopped("stopped while waiting for the model") from exc
                    if self.router.recover():
                        break
                continue
            if began is not None:
                self.on_resume(self.clock() - began)
            return completion
