"""What may be submitted over the API and the dashboard: a repository on the server's own disk
only by an admin, and only where AUTAN_ALLOW_LOCAL_REPOS=true."""

from __future__ import annotations

from fastapi import HTTPException

from orchestrator.access import Caller
from orchestrator.repo_urls import is_local
from web.config import WebSettings


def check_repo(caller: Caller, repo: str, settings: WebSettings) -> None:
    """Refuses (403, saying why) a local path or file:// URL the caller may not name."""
    if not is_local(repo):
        return
    if caller.is_admin and settings.allow_local_repos:
        return
    why = (
        "this API server does not take them (AUTAN_ALLOW_LOCAL_REPOS is not true)"
        if caller.is_admin
        else "only an admin may name one, where AUTAN_ALLOW_LOCAL_REPOS=true"
    )
    raise HTTPException(
        403,
        f"repository {repo[:200]!r} is on the server's disk: refused over the API, {why}; "
        "submit its URL instead",
    )
