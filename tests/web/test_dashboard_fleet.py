"""The Fleet page against a stand-in vLLM that serves real Prometheus text, and a dead URL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from sqlalchemy import select

from orchestrator import presence
from orchestrator.models import WorkerPresence
from orchestrator.schemas import TaskSpec
from orchestrator.services import Services
from tests.live import free_port
from tests.waiting import wait_until
from tests.web.dashboard import browser_client, sign_in
from web.config import WebSettings

VLLM_METRICS = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="devstral"} 3.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="devstral"} 2.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="devstral"} 0.42
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="devstral"} 1.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="devstral"} 4.0
vllm:time_to_first_token_seconds_count{engine="0",model_name="devstral"} 4.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="devstral"} 0.5
"""


class _Metrics(BaseHTTPRequestHandler):
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Metrics.asked.append(self.path)
        body = VLLM_METRICS.encode() if self.path == "/metrics" else b"not found"
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_vllm() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_fleet_shows_each_endpoint_s_load_and_an_unreachable_one_plainly(
    services: Services, admin_token: str, fake_vllm: str
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    settings = WebSettings(model_url=f"{fake_vllm}, {dead}", fleet_probe_timeout_s=2)
    with browser_client(services, settings) as client:
        sign_in(client, admin_token)
        html = client.get("/fleet").text
    assert _Metrics.asked[-1] == "/metrics"
    row_up, row_dead = html.split("<tr>")[2:4]
    assert fake_vllm in row_up and "devstral" in row_up
    cells = [c.split("</td>")[0] for c in row_up.split("<td>")[2:]]
    assert cells == ["3", "2", "42%", "125 ms"]
    assert dead in row_dead and "unreachable (ConnectError)" in row_dead
    assert '<dd id="queue-depth">0</dd>' in html


def test_fleet_shows_free_disk_and_what_is_not_ready(services: Services, admin_token: str) -> None:
    settings = WebSettings(min_free_disk_mb=10**9, health_interval_s=0.1)
    with browser_client(services, settings) as client:
        sign_in(client, admin_token)
        wait_until(
            lambda: "disk" in client.get("/readyz").json()["checks"], what="the first refresh"
        )
        html = client.get("/fleet").text
    assert '<dd id="workers-alive">0</dd>' in html
    disk = html.split('<dd id="disk-free" class="bad">')[1].split("</dd>")[0]
    assert " GiB in the data directory: new tasks are refused (" in disk
    assert "below the 1000000000 MiB minimum" in disk
    not_ready = html.split('<p id="not-ready" class="bad">')[1].split("</p>")[0]
    assert not_ready.startswith("Not ready: ")
    assert "workers (no worker answered a ping within 1 s)" in not_ready
    assert "disk (" in not_ready


def _worker_rows(html: str) -> list[list[str]]:
    table = html.split('<table id="workers">')[1].split("</table>")[0]
    rows = table.split("<tbody>")[1].split("</tr>")[:-1]
    return [[c.split("</td>")[0] for c in row.split("<td>")[1:]] for row in rows]


def test_fleet_lists_every_worker_idle_busy_silent_or_unreported(
    services: Services, admin_token: str
) -> None:
    lifecycle = services.lifecycle
    for name, concurrency in [("host-a:11", 2), ("host-b:22", 4), ("host-c:33", 1)]:
        presence.report(lifecycle, name=name, concurrency=concurrency)
    busy, _ = lifecycle.submit(TaskSpec(repo="r", instruction="i", attempts=2))
    assert lifecycle.claims.claim(busy.attempts[0].id, worker="host-b:22") is not None
    assert lifecycle.claims.claim(busy.attempts[1].id, worker="old-host:44") is not None
    lease = timedelta(seconds=services.settings.heartbeat_timeout_s + 1)
    with services.sessions.begin() as session:
        stopped = session.get_one(WorkerPresence, "host-c:33")
        stopped.heartbeat_at -= lease
    with browser_client(services, WebSettings()) as client:
        sign_in(client, admin_token)
        html = client.get("/fleet").text
    rows = _worker_rows(html)
    assert [r[:4] for r in rows] == [
        ["host-a:11", "host-a", "0", "2"],  # idle, listed all the same
        ["host-b:22", "host-b", "1", "4"],
        ["host-c:33", "host-c", "0", "1"],
        ["old-host:44", "old-host", "1", ""],  # runs an attempt without having reported
    ]
    assert [r[4].endswith("(silent: stopped, or cut off from the database)") for r in rows] == [
        False, False, True, False
    ]  # fmt: skip
    assert '<dd id="sandboxes">2</dd>' in html

    presence.leave(lifecycle, name="host-a:11")
    with services.sessions.begin() as session:
        session.get_one(WorkerPresence, "host-c:33").heartbeat_at -= presence.FORGET_AFTER
    presence.report(lifecycle, name="host-b:22", concurrency=4)  # forgets the long-silent
    with services.sessions() as session:
        assert [w.name for w in session.scalars(select(WorkerPresence))] == ["host-b:22"]
