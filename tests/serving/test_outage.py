"""Waiting out a model outage: paused, resumed on the same call, bounded by the limit."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from serving.base import Message
from serving.errors import ModelOutage, RequestRejected, WaitStopped
from serving.outage import OutageConfig, PatientModel
from serving.router import EndpointConfig, Router, RouterConfig
from tests.serving.conftest import fast
from tests.serving.flaky import FlakyServer

HI = [Message("user", "hi")]
Flaky = Callable[..., FlakyServer]
QUICK = {"backoff_base_s": 0.05, "backoff_max_s": 0.2}
"""Looks every 0.2 s at most, so a test outage of a second is noticed soon after it ends."""


class Seen:
    """What the patient model told its caller."""

    def __init__(self) -> None:
        self.said: list[tuple[str, Any]] = []

    def waiting(self, reason: str) -> None:
        self.said.append(("waiting", reason))

    def resumed(self, waited_s: float) -> None:
        self.said.append(("resumed", waited_s))


def patient(
    server: FlakyServer, limit_s: float, stop: threading.Event | None = None
) -> tuple[PatientModel, Seen]:
    client = fast(server.url, model="flaky", max_retries=0)
    router = Router(RouterConfig(endpoints=[EndpointConfig(name=server.name, client=client)]))
    seen = Seen()
    model = PatientModel(
        router, OutageConfig(limit_s=limit_s, **QUICK), on_wait=seen.waiting,
        on_resume=seen.resumed, stop=stop,
    )  # fmt: skip
    return model, seen


def test_an_outage_pauses_the_call_and_it_resumes_with_the_reply(flaky: Flaky) -> None:
    server = flaky(name="gpu1", die_after=1, down_for_s=1.0)
    model, seen = patient(server, limit_s=30)
    assert model.complete(HI).message.content == "ok from gpu1"
    assert seen.said == []

    reply = model.complete(HI)  # the endpoint is down now, for a second
    assert server.came_back.is_set()
    assert reply.message.content == "ok from gpu1" and reply.endpoint == "gpu1"
    assert [what for what, _ in seen.said] == ["waiting", "resumed"]
    assert "no model endpoint answered: gpu1:" in seen.said[0][1]
    assert seen.said[1][1] > 0
    assert server.answered == 2
    model.router.close()


def test_past_the_limit_the_call_fails_saying_for_how_long(flaky: Flaky) -> None:
    server = flaky(name="gpu1", down=True)
    model, seen = patient(server, limit_s=0.5)
    with pytest.raises(ModelOutage, match=r"unreachable for \d+s, past the outage limit of 0.5s"):
        model.complete(HI)
    assert [what for what, _ in seen.said] == ["waiting"]
    assert any(r.path == "/health" for r in server.received)  # it looked again before giving up
    model.router.close()


def test_a_limit_of_zero_fails_at_once(flaky: Flaky) -> None:
    server = flaky(name="gpu1", down=True)
    model, _ = patient(server, limit_s=0)
    with pytest.raises(ModelOutage, match="no model endpoint answered: gpu1:"):
        model.stream(HI)
    assert [r.path for r in server.received] == ["/v1/chat/completions"]
    model.router.close()


def test_the_stop_signal_ends_the_wait(flaky: Flaky) -> None:
    server = flaky(name="gpu1", down=True)
    stop = threading.Event()
    model, _ = patient(server, limit_s=600, stop=stop)
    model.on_wait = lambda reason: stop.set()  # cancelled as soon as the wait begins
    with pytest.raises(WaitStopped, match="stopped while waiting for the model"):
        model.complete(HI)
    assert not any(r.path == "/health" for r in server.received)
    model.router.close()


def test_a_refused_request_is_not_waited_on(flaky: Flaky) -> None:
    server = flaky(400, name="gpu1")
    model, seen = patient(server, limit_s=30)
    with pytest.raises(RequestRejected, match="400"):
        model.complete(HI)
    assert seen.said == []
    assert len(server.chat_requests) == 1
    model.router.close()
