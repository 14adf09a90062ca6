"""The dashboard's Jinja2 templates: autoescaped, with a few filters and safe headers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader

from sync.snapshots import is_workspace, workspace_of
from web.links import origin_links
from web.security import HEADERS

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def age(when: datetime | None, now: datetime | None = None) -> str:
    """'42s', '5m', '3h', '2d': how long ago, short enough for a table cell."""
    if when is None:
        return ""
    seconds = max(0, int(((now or datetime.now(UTC)) - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def money(value: float) -> str:
    return f"${value:.4f}" if 0 < value < 0.01 else f"${value:.2f}"


def repo_label(repo: str) -> str:
    """A task's source as a list shows it: the repository, or `workspace 1a2b3c4d, version N`
    (the task page names the workspace)."""
    if not is_workspace(repo):
        return repo
    workspace_id, version = workspace_of(repo)
    return f"workspace {workspace_id[:8]}, version {version}"


def diff_class(line: str) -> str:
    """The CSS class of one line of a unified diff."""
    if line.startswith(("+++", "---", "diff ", "index ")):
        return "d-file"
    if line.startswith("@@"):
        return "d-hunk"
    if line.startswith("+"):
        return "d-add"
    if line.startswith("-"):
        return "d-del"
    return "d-ctx"


env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters.update(age=age, money=money, diff_class=diff_class, repo_label=repo_label)
env.globals.update(origin_links=origin_links)


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = env.get_template(name).render(request=request, path=request.url.path, **context)
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)
