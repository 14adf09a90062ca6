"""The router: fail-over, coming back after the cool-off or a probe, spreading by load."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pydantic import ValidationError

from serving.base import Completion, Message
from serving.errors import NoEndpointAvailable, RequestRejected
from serving.router import EndpointConfig, Router, RouterConfig
from tests.serving.conftest import fast
from tests.serving.flaky import FlakyServer
from tests.waiting import wait_until

HI = [Message("user", "hi")]
Flaky = Callable[..., FlakyServer]


class Clock:
    """Time the test moves by hand, so a cool-off passes without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class InOrder(random.Random):
    """Leaves the endpoints as configured: ties of load go to the first one first."""

    def shuffle(self, x: Any) -> None:
        del x


def endpoint(server: FlakyServer) -> EndpointConfig:
    return EndpointConfig(name=server.name, client=fast(server.url, model="flaky", max_retries=0))


def router(*servers: FlakyServer, **settings: Any) -> Router:
    clock = settings.pop("clock", Clock())
    config = RouterConfig(endpoints=[endpoint(s) for s in servers], **settings)
    return Router(config, clock=clock, rng=InOrder())


def test_fails_over_then_comes_back_after_the_cool_off(flaky: Flaky) -> None:
    first, second = flaky(name="gpu1", down=True), flaky(name="gpu2")
    clock = Clock()
    r = router(first, second, cool_off_s=30, clock=clock)

    assert r.complete(HI).endpoint == "gpu2"
    gpu1 = r.status()[0]
    assert (gpu1["name"], gpu1["up"], gpu1["outstanding"]) == ("gpu1", False, 0)
    assert "cannot be reached" in gpu1["last_error"]
    tried = len(first.received)
    assert [r.complete(HI).endpoint for _ in range(3)] == ["gpu2"] * 3
    assert len(first.received) == tried  # cooling off: not even tried

    first.down = False
    clock.now += 31
    reply = r.complete(HI)
    assert reply.endpoint == "gpu1"
    assert reply.message.content == "ok from gpu1"
    assert [x.path for x in first.received[tried:]] == [
        "/health",
        "/v1/models",
        "/v1/chat/completions",
    ]
    assert all(s["up"] for s in r.status())
    r.close()


def test_a_probe_that_still_fails_keeps_it_down(flaky: Flaky) -> None:
    first, second = flaky(name="gpu1", down=True), flaky(name="gpu2")
    clock = Clock()
    r = router(first, second, clock=clock)
    r.complete(HI)
    clock.now += 31
    assert r.complete(HI).endpoint == "gpu2"
    assert [x.path for x in first.chat_requests] == ["/v1/chat/completions"]  # only the first try
    assert [x.path for x in first.received[1:]] == ["/health"]  # the probe, refused
    assert r.is_down("gpu1")
    r.close()


def test_a_5xx_fails_over_but_a_refused_request_does_not(flaky: Flaky) -> None:
    first, second = flaky(503, 400, name="gpu1"), flaky(name="gpu2")
    r = router(first, second, cool_off_s=0)
    assert r.complete(HI).endpoint == "gpu2"
    with pytest.raises(RequestRejected, match="400"):
        r.complete(HI)  # gpu1 again (used least recently), probed, then the 400 goes to the caller
    assert len(second.chat_requests) == 1
    assert not r.is_down("gpu1")
    r.close()


def test_all_down_says_which_and_why(flaky: Flaky) -> None:
    first, second = flaky(name="gpu1", down=True), flaky(503, name="gpu2")
    r = router(first, second)
    with pytest.raises(NoEndpointAvailable) as failed:
        r.complete(HI)
    assert "gpu1:" in str(failed.value) and "gpu2:" in str(failed.value)
    assert "503" in str(failed.value)
    with pytest.raises(NoEndpointAvailable, match=r"gpu1: down \(.*gpu2: down \(.*503"):
        r.complete(HI)  # both cooling off: said without trying either
    r.close()


def test_ties_of_load_alternate(flaky: Flaky) -> None:
    a, b = flaky(name="a"), flaky(name="b")
    r = router(a, b)
    assert [r.complete(HI).endpoint for _ in range(4)] == ["a", "b", "a", "b"]
    r.close()


def test_a_busy_endpoint_gets_no_call_while_another_is_idle(flaky: Flaky) -> None:
    gate = threading.Event()
    a, b = flaky(name="a", hold=gate), flaky(name="b")
    r = router(a, b)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(r.complete, HI)
        wait_until(lambda: a.chat_requests, what="the first call to reach a")
        assert [s["outstanding"] for s in r.status()] == [1, 0]
        # Least outstanding first: every call goes to b while a is busy, alternation or not.
        assert [r.complete(HI).endpoint for _ in range(3)] == ["b", "b", "b"]
        gate.set()
        assert held.result(timeout=10).endpoint == "a"
    assert [s["outstanding"] for s in r.status()] == [0, 0]
    r.close()


def test_recover_probes_endpoints_still_cooling_off(flaky: Flaky) -> None:
    a, b = flaky(name="a", down=True), flaky(name="b", down=True)
    r = router(a, b, cool_off_s=600)
    with pytest.raises(NoEndpointAvailable):
        r.complete(HI)
    assert r.recover() is False
    assert r.is_down("a") and r.is_down("b")
    b.down = False
    assert r.recover() is True  # no cool-off to wait out
    assert [s["up"] for s in r.status()] == [False, True]
    assert r.complete(HI).endpoint == "b"
    r.close()


def test_one_router_serves_many_threads(flaky: Flaky) -> None:
    a, b = flaky(name="a"), flaky(name="b")
    r = router(a, b)

    def calls(_: int) -> list[Completion]:
        return [r.complete(HI) for _ in range(10)]

    with ThreadPoolExecutor(8) as pool:
        replies = [c for batch in pool.map(calls, range(8)) for c in batch]
    assert len(replies) == 80
    assert all(c.message.content == f"ok from {c.endpoint}" for c in replies)
    assert len(a.chat_requests) + len(b.chat_requests) == 80
    assert a.chat_requests and b.chat_requests
    assert [s["outstanding"] for s in r.status()] == [0, 0]
    r.close()


def test_endpoint_names_must_differ(flaky: Flaky) -> None:
    a = flaky(name="a")
    with pytest.raises(ValidationError, match="endpoint names must differ"):
        RouterConfig(endpoints=[endpoint(a), endpoint(a)])
    with pytest.raises(ValidationError):
        RouterConfig(endpoints=[])


def test_a_preferred_endpoint_is_used_while_it_is_up(flaky: Flaky) -> None:
    a, b = flaky(name="a"), flaky(name="b", down=True)
    r = router(a, b, cool_off_s=0)
    assert [r.complete(HI, prefer="b").endpoint for _ in range(2)] == ["a", "a"]
    b.down = False
    assert [r.stream(HI, prefer="b").endpoint for _ in range(3)] == ["b", "b", "b"]
    with pytest.raises(ValueError, match="no endpoint 'c': the router has"):
        r.complete(HI, prefer="c")
    r.close()


def test_a_silent_endpoint_fails_over_after_its_read_timeout(flaky: Flaky) -> None:
    silent, b = flaky(name="silent", hold=threading.Event()), flaky(name="b")
    config = RouterConfig(
        endpoints=[
            EndpointConfig(
                name="silent", client=fast(silent.url, model="flaky", read_timeout_s=0.3)
            ),
            endpoint(b),
        ]
    )
    r = Router(config, clock=Clock(), rng=InOrder())
    reply = r.complete(HI)
    assert reply.endpoint == "b" and reply.message.content == "ok from b"
    assert len(silent.chat_requests) == 1  # a read timeout is not retried on the same endpoint
    assert "sent nothing for 0.3s" in str(r.status()[0]["last_error"])
    r.close()
