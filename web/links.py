"""Links from a task's origin to where it came from: the issue, the thread, the pull request."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from orchestrator.schemas import OriginView

LABELS = {
    "html_url": "GitHub",
    "pr_url": "pull request",
    "pull_request_url": "pull request",
    "permalink": "Slack thread",
    "thread_url": "Slack thread",
    "link": "Sentry issue",
    "issue_url": "issue",
    "browse_url": "Jira issue",
    "url": "origin",
}


def _web_url(value: Any) -> str | None:
    """Only http(s) URLs become links: a `javascript:` URL in origin data stays text."""
    if not isinstance(value, str) or len(value) > 2048:
        return None
    parts = urlsplit(value)
    return value if parts.scheme in ("http", "https") and parts.netloc else None


def origin_links(origin: OriginView) -> list[tuple[str, str]]:
    """(label, url) pairs for the origin, from URLs in its data and what its kind implies."""
    data = origin.data
    links: list[tuple[str, str]] = []
    if origin.kind == "github" and isinstance(data.get("repo"), str) and data.get("number"):
        kind = "pull" if data.get("kind") in ("pr", "pull", "pull_request") else "issues"
        number = quote(str(data["number"]), safe="")
        url = f"https://github.com/{quote(data['repo'], safe='/')}/{kind}/{number}"
        label = "GitHub pull request" if kind == "pull" else "GitHub issue"
        links.append((f"{label} {data['repo']}#{data['number']}", url))
    for key, value in data.items():
        found = _web_url(value)
        if found is not None and all(found != u for _, u in links):
            links.append((LABELS.get(key, key.replace("_", " ")), found))
    return links
