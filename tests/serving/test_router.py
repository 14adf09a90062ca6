"""The router: fail-over to the next endpoint, coming back after the cool-off, escalation."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from serving.base import Message
from serving.errors import NoEndpointAvailable, NoStrongerModel, RequestRejected
from serving.router import EndpointConfig, Router, RouterConfig
from tests.serving.conftest import fast
from tests.serving.flaky import FlakyServer

HI = [Message("user", "hi")]


class Clock:
    """Time the test moves by hand, so a cool-off passes without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def endpoint(server: FlakyServer, tier: int = 0) -> EndpointConfig:
    return EndpointConfig(
        name=server.name, tier=tier, client=fast(server.url, model="flaky", max_retries=0)
    )


def test_fails_over_then_comes_back_after_the_cool_off(flaky: Callable[..., FlakyServer]) -> None:
    first, second = flaky(name="gpu1", down=True), flaky(name="gpu2")
    clock = Clock()
    router = Router(
        RouterConfig(endpoints=[endpoint(first), endpoint(second)], cool_off_s=30), clock=clock
    )

    assert router.complete(HI).endpoint == "gpu2"
    assert router.status()[0]["up"] is False
    assert "gpu1" in router.status()[0]["name"] and router.status()[0]["last_error"]
    tried = len(first.received)
    assert router.complete(HI).endpoint == "gpu2"
    assert len(first.received) == tried  # cooling off: not even tried

    first.down = False
    clock.now += 31
    reply = router.complete(HI)
    assert reply.endpoint == "gpu1"
    assert reply.message.content == "ok from gpu1"
    assert [r.path for r in first.received[tried:]] == [
        "/health",
        "/v1/models",
        "/v1/chat/completions",
    ]
    assert all(s["up"] for s in router.status())
    router.close()


def test_a_probe_that_still_fails_keeps_it_down(flaky: Callable[..., FlakyServer]) -> None:
    first, second = flaky(name="gpu1", down=True), flaky(name="gpu2")
    clock = Clock()
    router = Router(RouterConfig(endpoints=[endpoint(first), endpoint(second)]), clock=clock)
    router.complete(HI)
    clock.now += 31
    assert router.complete(HI).endpoint == "gpu2"
    assert [r.path for r in first.chat_requests] == ["/v1/chat/completions"]  # only the first try
    assert router.is_down("gpu1")
    router.close()


def test_a_5xx_fails_over_but_a_refused_request_does_not(flaky: Callable[..., FlakyServer]) -> None:
    first, second = flaky(503, 400, name="gpu1"), flaky(name="gpu2")
    router = Router(RouterConfig(endpoints=[endpoint(first), endpoint(second)], cool_off_s=0))
    assert router.complete(HI).endpoint == "gpu2"
    with pytest.raises(RequestRejected):
        router.complete(HI)
    assert len(second.chat_requests) == 1
    router.close()


def test_all_down_says_which_and_why(flaky: Callable[..., FlakyServer]) -> None:
    first, second = flaky(name="gpu1", down=True), flaky(503, name="gpu2")
    router = Router(RouterConfig(endpoints=[endpoint(first), endpoint(second)]))
    with pytest.raises(NoEndpointAvailable) as failed:
        router.complete(HI)
    assert "gpu1:" in str(failed.value) and "gpu2:" in str(failed.value)
    assert "503" in str(failed.value)
    router.close()


def test_escalation_moves_to_the_stronger_tier_and_stops_at_the_top(
    flaky: Callable[..., FlakyServer],
) -> None:
    cheap, strong = flaky(name="devstral"), flaky(name="medium")
    router = Router(RouterConfig(endpoints=[endpoint(strong, tier=1), endpoint(cheap, tier=0)]))
    assert router.tier == 0
    assert router.stream(HI).endpoint == "devstral"

    stronger = router.escalate()
    assert stronger.tier == 1
    assert stronger.complete(HI).endpoint == "medium"
    assert len(cheap.chat_requests) == 1 and len(strong.chat_requests) == 1
    with pytest.raises(NoStrongerModel):
        stronger.escalate()
    router.close()


def test_escalated_router_shares_health_state(flaky: Callable[..., FlakyServer]) -> None:
    a, b = flaky(name="a", down=True), flaky(name="b")
    router = Router(RouterConfig(endpoints=[endpoint(a), endpoint(b), endpoint(b, tier=1)]))
    router.complete(HI)
    assert router.escalate().is_down("a")
    router.close()
