"""A deterministic model server speaking the OpenAI wire protocol, answering from a script."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from serving.errors import ServingError
from serving.mistral import VALID_ID
from serving.script import Reply, Script, choose, estimate_tokens, wire_calls

ROLES = {"system", "user", "assistant", "tool"}
NO_TOOLS = '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'


class Invalid(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def error(message: str, status: int) -> JSONResponse:
    """An error body the way vLLM writes one."""
    kind = {404: "NotFoundError"}.get(status, "BadRequestError")
    body = {"object": "error", "message": message, "type": kind, "param": None, "code": status}
    return JSONResponse(body, status_code=status)


def _validate_messages(messages: Any, strict: bool) -> None:
    if not isinstance(messages, list) or not messages:
        raise Invalid("`messages` must be a non-empty list")
    calls: set[str] = set()
    previous = ""
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ROLES:
            raise Invalid(f"messages[{i}] has no valid role")
        if strict and role == "user" and previous == "tool":
            raise Invalid("Unexpected role 'user' after role 'tool'")
        for call in m.get("tool_calls") or ():
            if strict and not VALID_ID.fullmatch(str(call.get("id"))):
                raise Invalid(_bad_id(call.get("id")))
            calls.add(str(call.get("id")))
        if role == "tool":
            answered = m.get("tool_call_id")
            if strict and not VALID_ID.fullmatch(str(answered)):
                raise Invalid(_bad_id(answered))
            if answered not in calls:
                raise Invalid(f"messages[{i}] answers tool call {answered!r}, which was never made")
        previous = role


def _bad_id(value: object) -> str:
    return (
        f"Tool call id was {value} but must be a-z, A-Z, 0-9, with a length of 9."
        if value is not None
        else "Tool call id is missing"
    )


def validate(body: Any, script: Script) -> None:
    """Refuse what a strict server refuses, with its status and a clear message."""
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object")
    if body.get("model") != script.model:
        raise Invalid(f"The model `{body.get('model')}` does not exist.", status=404)
    if body.get("tools") and not script.supports_tools:
        raise Invalid(NO_TOOLS)
    _validate_messages(body.get("messages"), script.mistral_strict)


@dataclass
class Answer:
    reply: Reply
    turn: int
    model: str
    usage: dict[str, int]
    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def finish_reason(self) -> str:
        return self.reply.finish_reason or ("tool_calls" if self.calls else "stop")


def answer(body: dict[str, Any], script: Script) -> Answer:
    reply = choose(script, body)
    turn = sum(1 for m in body["messages"] if m.get("role") == "assistant")
    if reply is None:
        raise Invalid(f"script_exhausted: the script has no reply for turn {turn}")
    calls = wire_calls(reply, turn)
    spoken = (reply.content or "") + "".join(
        c["function"]["name"] + c["function"]["arguments"] for c in calls
    )
    prompt = estimate_tokens(json.dumps(body["messages"]) + json.dumps(body.get("tools") or []))
    completion = max(1, estimate_tokens(spoken))
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    return Answer(reply, turn, script.model, usage, calls)


def _pieces(text: str, parts: int) -> list[str]:
    """Cut `text` into about `parts` non-empty pieces, so deltas really arrive split."""
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def chunks(a: Answer, completion_id: str, created: int) -> list[dict[str, Any]]:
    """The stream of a reply: role, content in words, each call in fragments, finish, usage."""
    head = {"id": completion_id, "object": "chat.completion.chunk", "created": created}
    head["model"] = a.model

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": w}) for w in re.findall(r"\S+\s*|\s+", a.reply.content or "")]
    for index, call in enumerate(a.calls):
        first = {"index": index, "id": call["id"], "type": "function"}
        first["function"] = {"name": call["function"]["name"], "arguments": ""}
        out.append(chunk({"tool_calls": [first]}))
        for piece in _pieces(call["function"]["arguments"], 3):
            fragment = {"index": index, "function": {"arguments": piece}}
            out.append(chunk({"tool_calls": [fragment]}))
    out.append(chunk({}, a.finish_reason))
    out.append({**head, "choices": [], "usage": a.usage})
    return out


def create_app(script: Script) -> Starlette:
    """The server's app; every request body it accepted is kept in `app.state.requests`."""
    requests: list[dict[str, Any]] = []
    counter = iter(range(1, 1 << 62))

    async def health(_: Request) -> Response:
        return Response(status_code=200)

    async def models(_: Request) -> Response:
        entry = {"id": script.model, "object": "model", "owned_by": "autan-scripted"}
        return JSONResponse({"object": "list", "data": [entry]})

    async def completions(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return error("the body is not valid JSON", 400)
        try:
            validate(body, script)
            a = answer(body, script)
        except Invalid as exc:
            return error(str(exc), exc.status)
        requests.append(body)
        delay = a.reply.delay_ms if a.reply.delay_ms is not None else script.delay_ms
        completion_id, created = f"chatcmpl-{next(counter)}", int(time.time())
        if body.get("stream"):
            return StreamingResponse(
                _sse(chunks(a, completion_id, created), delay), media_type="text/event-stream"
            )
        await asyncio.sleep(delay / 1000)
        message: dict[str, Any] = {"role": "assistant", "content": a.reply.content}
        if a.calls:
            message["tool_calls"] = a.calls
        choice = {"index": 0, "message": message, "finish_reason": a.finish_reason}
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": a.model,
                "choices": [choice],
                "usage": a.usage,
            }
        )

    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/v1/models", models),
            Route("/v1/chat/completions", completions, methods=["POST"]),
        ]
    )
    app.state.requests = requests
    return app


async def _sse(items: list[dict[str, Any]], delay_ms: int) -> AsyncIterator[bytes]:
    await asyncio.sleep(delay_ms / 1000)
    for item in items:
        yield f"data: {json.dumps(item)}\n\n".encode()
    yield b"data: [DONE]\n\n"


@dataclass
class ScriptedServer:
    """A scripted server running in a thread of this process (for tests and benchmarks)."""

    url: str
    """Base URL for clients, ending in `/v1`."""
    app: Starlette
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every chat-completion request body the server accepted, in order."""
        recorded: list[dict[str, Any]] = self.app.state.requests
        return recorded

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_in_thread(
    script: Script, *, host: str = "127.0.0.1", timeout: float = 15.0
) -> ScriptedServer:
    """Serve `script` on a free loopback port; return once it accepts connections."""
    sock = socket.socket()
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    app = create_app(script)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.name = "scripted-model"
    thread.start()
    tick = threading.Event()  # never set: an interruptible pause
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise ServingError(f"the scripted model server did not start within {timeout}s")
        tick.wait(0.01)
    return ScriptedServer(f"http://{host}:{port}/v1", app, server, thread)


def serve(script: Script, *, host: str, port: int) -> None:
    """Serve `script` in the foreground until interrupted (`autan model scripted`)."""
    uvicorn.run(create_app(script), host=host, port=port, log_level="info", lifespan="off")
