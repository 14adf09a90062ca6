"""Fixtures: the scripted model served in a thread, and flaky stand-in endpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from serving.client import ClientConfig
from serving.script import Script
from serving.scripted import ScriptedServer, start_in_thread
from tests.serving.flaky import FlakyServer

TOOL_SCRIPT: dict[str, Any] = {
    "rules": [
        {
            "when": {"tool_offered": "add", "turn": 0},
            "reply": {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]},
        },
        {"when": {"tool_name": "add"}, "reply": {"content": "2 + 3 = 5."}},
    ],
    "turns": [
        {
            "content": "Let me look at the files.",
            "tool_calls": [
                {"name": "bash", "arguments": {"command": "ls -la src/"}},
                {"name": "read_file", "arguments": {"path": "src/app.py", "start": 1, "end": 40}},
            ],
        },
        {"content": "All done."},
    ],
    "fallback": {"content": "Nothing more to do."},
}


def fast(url: str, model: str = "scripted", **settings: Any) -> ClientConfig:
    """Client settings with short back-offs, so retries take milliseconds."""
    values: dict[str, Any] = {
        "base_url": url,
        "model": model,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "read_timeout_s": 10.0,
    }
    return ClientConfig(**{**values, **settings})


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    started: list[ScriptedServer] = []

    def start(script: dict[str, Any] | None = None, **settings: Any) -> ScriptedServer:
        server = start_in_thread(Script.model_validate({**(script or TOOL_SCRIPT), **settings}))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def flaky() -> Iterator[Callable[..., FlakyServer]]:
    started: list[FlakyServer] = []

    def start(*plan: int | str, **settings: Any) -> FlakyServer:
        server = FlakyServer(**settings)
        server.plan.extend(plan)
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()
