"""The client's event stream over a scripted transport: resuming after drops, and giving up."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from cli.client import AutanClient
from cli.errors import ApiUnreachable
from cli.sse import Frame, SseParser


def frame(seq: int, kind: str) -> bytes:
    data = {
        "seq": seq,
        "task_id": "t1",
        "attempt_id": None,
        "kind": kind,
        "data": {"n": seq},
        "created_at": "2025-01-01T00:00:00Z",
    }
    return f"id: {seq}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def dropping(*chunks: bytes) -> Iterator[bytes]:
    yield from chunks
    raise httpx.ReadError("connection reset by peer")


class ScriptedServer:
    """Answers each connection with the next script, and records what each request asked."""

    def __init__(self, *scripts: Iterator[bytes]) -> None:
        self.scripts = list(scripts)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.scripts:
            raise httpx.ConnectError("connection refused")
        return httpx.Response(200, content=self.scripts.pop(0))

    def client(self, reconnects: int = 3) -> AutanClient:
        return AutanClient(
            "http://autan.test",
            "autan_t",
            reconnects=reconnects,
            transport=httpx.MockTransport(self),
        )


def test_a_dropped_stream_resumes_after_the_last_whole_event() -> None:
    cut_inside_event_3 = b"id: 3\nevent: model.message\n"
    server = ScriptedServer(
        dropping(
            b"retry: 1\n\n", frame(1, "task.created"), frame(2, "model.message"), cut_inside_event_3
        ),
        dropping(b": keep-alive\n\n"),  # reconnected, then dropped again before any news
        iter([frame(3, "model.message"), frame(4, "task.finished")]),
    )
    events = list(server.client().events("t1"))
    assert [(e.seq, e.kind) for e in events] == [
        (1, "task.created"),
        (2, "model.message"),
        (3, "model.message"),
        (4, "task.finished"),
    ]
    assert [r.headers.get("last-event-id") for r in server.requests] == [None, "2", "2"]
    assert [r.url.params["follow"] for r in server.requests] == ["true"] * 3
    assert all(r.headers["authorization"] == "Bearer autan_t" for r in server.requests)


def test_a_follow_that_ends_early_reconnects_and_one_that_never_comes_back_gives_up() -> None:
    server = ScriptedServer(
        iter([b"retry: 1\n\n", frame(1, "task.created")]),  # closed cleanly, task not ended
        dropping(),
    )
    with pytest.raises(ApiUnreachable) as raised:
        list(server.client(reconnects=2).events("t1", after=0))
    assert str(raised.value).startswith(
        "lost the event stream of task t1 from http://autan.test (ConnectError: "
        "connection refused) and could not resume it in 2 tries"
    )
    assert [r.headers.get("last-event-id") for r in server.requests] == [None, "1", "1"]


def test_without_follow_the_backlog_is_read_once_from_where_it_was_asked() -> None:
    server = ScriptedServer(iter([frame(6, "model.message"), frame(7, "model.message")]))
    events = list(server.client().events("t1", after=5, follow=False))
    assert [e.seq for e in events] == [6, 7]
    assert len(server.requests) == 1
    assert server.requests[0].headers["last-event-id"] == "5"
    assert server.requests[0].url.params["follow"] == "false"


def test_the_parser_joins_data_lines_and_skips_comments_and_empty_events() -> None:
    parser = SseParser()
    lines = [
        ": hi",
        "retry: 250",
        "",
        "id: 9",
        "",
        "data: a",
        "data:b",
        "",
        "event: x",
        "data: c",
        "",
    ]
    assert list(parser.frames(lines)) == [Frame("9", "message", "a\nb"), Frame("9", "x", "c")]
    assert (parser.last_id, parser.retry_ms) == ("9", 250)
