"""The real API served by uvicorn on a loopback port, in a thread of the test process."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import Any

import uvicorn

from orchestrator.services import Services
from web.app import create_app
from web.config import WebSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LiveApi:
    url: str
    token: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve(services: Services, token: str, **settings: Any) -> LiveApi:
    """`settings` are WebSettings fields beyond the address (a short keep-alive, say)."""
    from tests.waiting import wait_until

    port = free_port()
    app = create_app(services, WebSettings(host="127.0.0.1", port=port, **settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="live-api", daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=15, what="uvicorn to start")
    return LiveApi(f"http://127.0.0.1:{port}", token, server, thread)
