"""What may be submitted over the API and the dashboard: a repository on the server's own disk
only by an admin, and only where AUTAN_ALLOW_LOCAL_REPOS=true; a remote one where autan.toml's
[policy] allows it; a workspace's version only by those who reach the workspace."""

from __future__ import annotations

from fastapi import HTTPException, Request

from integrations.hub import Hub
from orchestrator import workspace_store
from orchestrator.access import Caller
from orchestrator.repo_urls import is_local
from orchestrator.services import Services
from sync.errors import SyncError
from sync.snapshots import PREFIX as WORKSPACE
from sync.snapshots import workspace_of
from web.config import WebSettings
from web.deps import reached


def check_repo(request: Request, caller: Caller, repo: str, ref: str | None, hub: Hub) -> None:
    """Refuses (403, saying why) a local path or file:// URL the caller may not name, and a
    remote repository autan.toml's [policy] does not allow; 503 while autan.toml, and so
    its [policy], cannot be read. A workspace's version: see `_check_workspace`."""
    settings: WebSettings = request.app.state.web_settings
    if repo.startswith(WORKSPACE):
        _check_workspace(request, caller, repo, ref)
        return
    if not is_local(repo):
        if hub.unread:
            raise HTTPException(
                503, f"repositories are not taken while the policy cannot be read: {hub.unread}"
            )
        if why := hub.routing.refuses(repo):
            raise HTTPException(403, why)
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


def _check_workspace(request: Request, caller: Caller, repo: str, ref: str | None) -> None:
    """Refuses a task from a workspace the caller does not reach (404, as for none, and
    audited), from a version it lacks (404), or with a `ref` other than that version's
    manifest hash (422): the ref names the tree the task starts from."""
    try:
        workspace_id, number = workspace_of(repo)
    except SyncError as exc:
        raise HTTPException(422, str(exc)) from exc
    services: Services = request.app.state.services
    with services.sessions() as session:
        reached(request, session, caller, workspace_id)
        version = workspace_store.version(session, workspace_id=workspace_id, number=number)
    if version is None:
        raise HTTPException(404, f"workspace {workspace_id} has no version {number}")
    if ref is None or ref != version.manifest_hash:
        raise HTTPException(
            422,
            f"the ref of a task from {repo} must be its snapshot's manifest hash "
            f"(POST /api/workspaces/{workspace_id}/versions/{number}/snapshot gives it)",
        )
