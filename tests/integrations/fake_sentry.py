"""A fake Sentry API: an issue's latest event and its comments."""

from __future__ import annotations

import re
from typing import Any

from tests.integrations.fakehttp import FakeServer, Reply, Request

ISSUE = r"/api/0/issues/(?P<id>\d+)"

LATEST_EVENT = {
    "eventID": "9fac2ceed9344f2bbfdd1fdacb0ed9b1",
    "title": "ZeroDivisionError: division by zero",
    "culprit": "app.views in ratio",
    "entries": [
        {
            "type": "exception",
            "data": {
                "values": [
                    {
                        "type": "ZeroDivisionError",
                        "value": "division by zero",
                        "stacktrace": {
                            "frames": [
                                {
                                    "filename": "app/main.py",
                                    "lineNo": 12,
                                    "function": "handle",
                                    "context": [[12, "    return ratio(a, b)"]],
                                },
                                {
                                    "filename": "app/views.py",
                                    "lineNo": 3,
                                    "function": "ratio",
                                    "context": [[3, "    return a / b"]],
                                },
                            ]
                        },
                    }
                ]
            },
        }
    ],
}


class FakeSentry(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.notes: dict[str, list[dict[str, Any]]] = {}
        self.route("GET", ISSUE + "/events/latest/", self._latest)
        self.route("GET", ISSUE + "/comments/", self._notes)
        self.route("POST", ISSUE + "/comments/", self._note)

    def _latest(self, request: Request, _: re.Match[str]) -> Reply:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return 401, {"detail": "Authentication credentials were not provided."}
        return 200, LATEST_EVENT

    def _notes(self, _: Request, m: re.Match[str]) -> Reply:
        return 200, self.notes.get(m["id"], [])

    def _note(self, request: Request, m: re.Match[str]) -> Reply:
        found = self.notes.setdefault(m["id"], [])
        note = {"id": str(len(found) + 1), "type": "note", "data": {"text": request.json()["text"]}}
        found.append(note)
        return 201, note
