"""A fake GitHub REST API: the endpoints PyGithub calls for Autan, with state, recording requests."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tests.integrations.fakehttp import FakeServer, Reply, Request

REPO = r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"


@dataclass
class Issue:
    title: str
    body: str
    comments: list[dict[str, Any]] = field(default_factory=list)


class FakeGitHub(FakeServer):
    def __init__(self, default_branch: str = "main") -> None:
        super().__init__()
        self.default_branch = default_branch
        self.permissions: dict[str, str] = {}
        self.issues: dict[int, Issue] = {}
        self.pulls: list[dict[str, Any]] = []
        self.route("GET", REPO, self._repo)
        self.route("GET", REPO + r"/collaborators/(?P<user>[^/]+)/permission", self._permission)
        self.route("GET", REPO + r"/issues/(?P<n>\d+)", self._issue)
        self.route("GET", REPO + r"/issues/(?P<n>\d+)/comments", self._comments)
        self.route("POST", REPO + r"/issues/(?P<n>\d+)/comments", self._comment)
        self.route("GET", REPO + r"/pulls", self._pulls)
        self.route("POST", REPO + r"/pulls", self._open_pull)
        self.route("GET", REPO + r"/pulls/(?P<n>\d+)", self._pull)

    def _base(self, m: re.Match[str]) -> str:
        return f"{self.url}/repos/{m['owner']}/{m['name']}"

    def _repo(self, _: Request, m: re.Match[str]) -> Reply:
        return 200, {
            "id": 1,
            "name": m["name"],
            "full_name": f"{m['owner']}/{m['name']}",
            "owner": {"login": m["owner"]},
            "default_branch": self.default_branch,
            "url": self._base(m),
        }

    def _permission(self, _: Request, m: re.Match[str]) -> Reply:
        user = m["user"]
        return 200, {"permission": self.permissions.get(user, "read"), "user": {"login": user}}

    def _issue(self, _: Request, m: re.Match[str]) -> Reply:
        n = int(m["n"])
        if n not in self.issues:
            return 404, {"message": "Not Found"}
        issue = self.issues[n]
        url = f"{self._base(m)}/issues/{n}"
        return 200, {"number": n, "title": issue.title, "body": issue.body, "url": url}

    def _comments(self, _: Request, m: re.Match[str]) -> Reply:
        return 200, self.issues[int(m["n"])].comments

    def _comment(self, request: Request, m: re.Match[str]) -> Reply:
        issue = self.issues[int(m["n"])]
        comment = {
            "id": 100 + len(issue.comments),
            "body": request.json()["body"],
            "user": {"login": "autan-bot"},
        }
        issue.comments.append(comment)
        return 201, comment

    def _pull_json(self, m: re.Match[str], pull: dict[str, Any]) -> dict[str, Any]:
        return {**pull, "url": f"{self._base(m)}/pulls/{pull['number']}"}

    def _pulls(self, request: Request, m: re.Match[str]) -> Reply:
        found = self.pulls
        if head := request.query.get("head"):
            found = [p for p in found if f"{m['owner']}:{p['head']['ref']}" == head]
        if request.query.get("state", "open") == "open":
            found = [p for p in found if p["state"] == "open"]
        return 200, [self._pull_json(m, p) for p in found]

    def _open_pull(self, request: Request, m: re.Match[str]) -> Reply:
        body = request.json()
        number = 500 + len(self.pulls)
        pull = {
            "number": number,
            "state": "open",
            "title": body["title"],
            "body": body["body"],
            "draft": body.get("draft", False),
            "head": {"ref": body["head"]},
            "base": {"ref": body["base"]},
            "html_url": f"https://github.test/{m['owner']}/{m['name']}/pull/{number}",
        }
        self.pulls.append(pull)
        return 201, self._pull_json(m, pull)

    def _pull(self, _: Request, m: re.Match[str]) -> Reply:
        for pull in self.pulls:
            if pull["number"] == int(m["n"]):
                return 200, self._pull_json(m, pull)
        return 404, {"message": "Not Found"}
