"""A clock the test moves, in place of the lifecycle's and the database's."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from orchestrator.models import utcnow
from orchestrator.services import Services


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(services: Services) -> Clock:
    clock = Clock()
    services.lifecycle.clock = clock
    services.lifecycle.lease_clock = lambda _session: clock()
    return clock
