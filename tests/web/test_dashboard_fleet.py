"""The Fleet page against a stand-in vLLM that serves real Prometheus text, and a dead URL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

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
