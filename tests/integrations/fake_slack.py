"""A fake Slack: the Web API methods Autan calls, and a receiver for `response_url` posts."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.integrations.fakehttp import FakeServer, Reply, Request


class FakeSlack(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        self.route("POST", r"/api/chat\.postMessage", self._post)
        self.route("POST", r"/api/conversations\.replies", self._replies)
        self.route("POST", r"/response/(?P<id>\w+)", self._response)

    def response_url(self, name: str = "r1") -> str:
        return f"{self.url}/response/{name}"

    @staticmethod
    def _args(request: Request) -> dict[str, Any]:
        if request.headers.get("content-type", "").startswith("application/json"):
            args: dict[str, Any] = request.json()
            return args
        form: dict[str, Any] = request.form() | request.query
        if isinstance(form.get("metadata"), str):
            form["metadata"] = json.loads(form["metadata"])
        return form

    def _post(self, request: Request, _: re.Match[str]) -> Reply:
        if not request.headers.get("authorization", "").startswith("Bearer xoxb-"):
            return 200, {"ok": False, "error": "not_authed"}
        args = self._args(request)
        message = {**args, "ts": f"1700000000.{len(self.messages):06d}"}
        self.messages.append(message)
        return 200, {
            "ok": True,
            "channel": args["channel"],
            "ts": message["ts"],
            "message": message,
        }

    def _replies(self, request: Request, _: re.Match[str]) -> Reply:
        args = self._args(request)
        thread = [m for m in self.messages if args["ts"] in (m["ts"], m.get("thread_ts"))]
        if str(args.get("include_all_metadata")).lower() not in ("1", "true"):
            thread = [{k: v for k, v in m.items() if k != "metadata"} for m in thread]
        return 200, {"ok": True, "messages": thread, "has_more": False}

    def _response(self, request: Request, m: re.Match[str]) -> Reply:
        self.responses.append({"id": m["id"], **request.json()})
        return 200, b"ok"
