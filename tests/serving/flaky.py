"""A stand-in model endpoint on loopback that fails as planned (5xx, 429, reset, death) before
answering, itself or by relaying to a real model server."""

from __future__ import annotations

import json
import socket
import socketserver
import struct
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx

MODEL = "flaky"


def completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-flaky",
        "object": "chat.completion",
        "model": MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FlakyServer:
    """Each chat request takes the next step of `plan`: an HTTP status, or "reset"; then answers.

    With `down` set, every connection is reset, health checks included. With `upstream` (a
    base URL ending in `/v1`) set, requests are relayed there instead of answered here.
    `die_after` chat replies, it goes down (for `down_for_s` seconds, or for good).
    """

    name: str = "flaky"
    plan: deque[int | str] = field(default_factory=deque)
    retry_after: str | None = None
    down: bool = False
    received: list[Received] = field(default_factory=list)
    upstream: str | None = None
    die_after: int | None = None
    down_for_s: float | None = None
    answered: int = 0
    """Chat requests answered with 200."""
    came_back: threading.Event = field(default_factory=threading.Event)
    """Set when a planned outage ends."""
    hold: threading.Event | None = None
    """When given, each chat request waits for it to be set before it is answered."""
    _timer: threading.Timer | None = None
    _server: socketserver.ThreadingTCPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def chat_requests(self) -> list[Received]:
        return [r for r in self.received if r.path == "/v1/chat/completions"]

    def start(self) -> FlakyServer:
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                owner._handle(self.connection, self.rfile)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True, name=self.name
        ).start()
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.hold is not None:
            self.hold.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _handle(self, conn: socket.socket, rfile: Any) -> None:
        request_line = rfile.readline().decode().strip()
        if not request_line:
            return
        method, path, _ = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        while (line := rfile.readline().decode().strip()) != "":
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        raw = rfile.read(int(headers.get("content-length", "0")))
        body = json.loads(raw) if raw else None
        self.received.append(Received(method, path, headers, body))
        if self.down:
            return self._reset(conn)
        if self.upstream is not None:
            return self._relay(conn, method, path, raw)
        if path == "/health":
            return self._send(conn, 200, b"")
        if path == "/v1/models":
            return self._json(conn, 200, {"object": "list", "data": [{"id": MODEL}]})
        if self.hold is not None:
            self.hold.wait(timeout=30)
        step = self.plan.popleft() if self.plan else None
        if step == "reset":
            return self._reset(conn)
        if isinstance(step, int):
            return self._json(conn, step, {"object": "error", "message": f"planned {step}"})
        self._answered()  # before the reply goes: the next request already meets the outage
        self._json(conn, 200, completion(f"ok from {self.name}"))

    def _relay(self, conn: socket.socket, method: str, path: str, raw: bytes) -> None:
        assert self.upstream is not None
        root = self.upstream.removesuffix("/v1")
        reply = httpx.request(
            method, root + path, content=raw, headers={"content-type": "application/json"}
        )
        if path == "/v1/chat/completions" and reply.status_code == 200:
            self._answered()
        self._send(conn, reply.status_code, reply.content, "application/json")

    def _answered(self) -> None:
        self.answered += 1
        if self.die_after is not None and self.answered >= self.die_after:
            self.die_after = None
            self.down = True
            if self.down_for_s is not None:
                self._timer = threading.Timer(self.down_for_s, self._come_back)
                self._timer.start()

    def _come_back(self) -> None:
        self.down = False
        self.came_back.set()

    def _reset(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    def _json(self, conn: socket.socket, status: int, data: Any) -> None:
        self._send(conn, status, json.dumps(data).encode(), "application/json")

    def _send(
        self, conn: socket.socket, status: int, body: bytes, kind: str = "text/plain"
    ) -> None:
        extra = f"Retry-After: {self.retry_after}\r\n" if status == 429 and self.retry_after else ""
        head = (
            f"HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
            f"{extra}Connection: close\r\n\r\n"
        )
        conn.sendall(head.encode() + body)
