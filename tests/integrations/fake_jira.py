"""A fake Jira REST API (v2): an issue's status, comments and transitions."""

from __future__ import annotations

import re
from typing import Any

from tests.integrations.fakehttp import FakeServer, Reply, Request

ISSUE = r"/rest/api/2/issue/(?P<key>[A-Z]+-\d+)"


class FakeJira(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.status: dict[str, str] = {}
        self.comments: dict[str, list[dict[str, Any]]] = {}
        self.transitions: list[dict[str, Any]] = [
            {"id": "21", "name": "Start", "to": {"name": "In Progress"}},
            {"id": "31", "name": "Review", "to": {"name": "In Review"}},
        ]
        self.route("GET", ISSUE, self._issue)
        self.route("GET", ISSUE + "/comment", self._comments)
        self.route("POST", ISSUE + "/comment", self._comment)
        self.route("GET", ISSUE + "/transitions", self._transitions)
        self.route("POST", ISSUE + "/transitions", self._transition)

    def _issue(self, _: Request, m: re.Match[str]) -> Reply:
        key = m["key"]
        return 200, {
            "id": "10001",
            "key": key,
            "self": f"{self.url}/rest/api/2/issue/10001",
            "fields": {"status": {"name": self.status.get(key, "To Do")}},
        }

    def _comments(self, _: Request, m: re.Match[str]) -> Reply:
        found = self.comments.get(m["key"], [])
        return 200, {"startAt": 0, "maxResults": 50, "total": len(found), "comments": found}

    def _comment(self, request: Request, m: re.Match[str]) -> Reply:
        found = self.comments.setdefault(m["key"], [])
        comment = {
            "id": str(10000 + len(found)),
            "self": f"{self.url}/rest/api/2/issue/{m['key']}/comment/{10000 + len(found)}",
            "body": request.json()["body"],
        }
        found.append(comment)
        return 201, comment

    def _transitions(self, _: Request, m: re.Match[str]) -> Reply:
        return 200, {"transitions": self.transitions}

    def _transition(self, request: Request, m: re.Match[str]) -> Reply:
        wanted = request.json()["transition"]["id"]
        target = next(t for t in self.transitions if t["id"] == str(wanted))
        self.status[m["key"]] = target["to"]["name"]
        return 204, b""
