"""Dependencies of the routes: the services, a database session, the caller and its rights.

The caller's token is read in a session of its own, closed before the handler runs:
a request holds at most one database connection at a time, and a stream none
between its reads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from orchestrator import access, workspace_store
from orchestrator.access import Caller, Owner
from orchestrator.claims import database_now
from orchestrator.lifecycle import Lifecycle
from orchestrator.models import Workspace, utcnow
from orchestrator.services import Services
from orchestrator.tokens import authenticate, lookup, touch, touch_due
from orchestrator.users import task_owner
from sync.errors import WorkspaceNotFound
from web import audit, sessions
from web.admission import Slot, Slots
from web.config import WebSettings
from web.sessions import WebSession

log = logging.getLogger(__name__)


# The trivial dependencies are async so that they run on the loop, not on a thread.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_web_settings(request: Request) -> WebSettings:
    settings: WebSettings = request.app.state.web_settings
    return settings


ServicesDep = Annotated[Services, Depends(get_services)]
WebSettingsDep = Annotated[WebSettings, Depends(get_web_settings)]


def get_session(services: ServicesDep) -> Iterator[Session]:
    with services.sessions() as session:
        yield session


async def get_lifecycle(services: ServicesDep) -> Lifecycle:
    return services.lifecycle


async def room_to_write(request: Request, web_settings: WebSettingsDep) -> None:
    """Refuses (507) new work while the data directory's free space is below the minimum."""
    low = request.app.state.readiness.disk_low()
    if low:
        raise HTTPException(
            507,
            f"not enough disk to take new work: {low}; free space, then retry",
            {"Retry-After": str(web_settings.retry_after_s)},
        )


def stream_slot(request: Request, web_settings: WebSettings, kind: str) -> Slot:
    """A place for one more stream or long-poll of `kind`, or 503 when all are taken."""
    slots: Slots = request.app.state.stream_slots
    slot = slots.take(kind)
    if slot is None:
        raise HTTPException(
            503,
            f"{slots.limit} streams are open, the most this API serves; "
            f"retry in {web_settings.retry_after_s} s",
            {"Retry-After": str(web_settings.retry_after_s)},
        )
    return slot


SessionDep = Annotated[Session, Depends(get_session)]
RoomToWrite = Depends(room_to_write)
LifecycleDep = Annotated[Lifecycle, Depends(get_lifecycle)]

_bearer = HTTPBearer(auto_error=False)
SAFE_METHODS = ("GET", "HEAD")


@dataclass(frozen=True)
class Viewer:
    """A signed-in dashboard user: the browser's session and who its token speaks for."""

    session: WebSession
    caller: Caller


def _used(services: Services, caller: Caller) -> Caller:
    """Record a use of the token, at most once a minute (a write, so not on every request)."""
    now = utcnow()
    if touch_due(caller.last_used_at, now=now):
        try:
            with services.lifecycle.gate, services.sessions.begin() as session:
                touch(session, token_id=caller.token_id, now=now)
        except OperationalError as exc:
            # The caller is authenticated; a usage stamp that cannot be written now is
            # written on a later request, and must not refuse this one.
            log.warning("could not record a use of token %s: %s", caller.token_name, exc.orig)
    return caller


def _signed_in(request: Request, services: Services) -> Viewer | None:
    """The browser's session when its cookie names a live session of a live token."""
    cookie = request.cookies.get(sessions.COOKIE)
    if not cookie:
        return None
    web = sessions.load(services.redis, cookie)
    if web is None:
        return None
    with services.sessions() as session:
        caller = lookup(session, token_id=web.token_id, now=database_now(session))
    if caller is None:
        return None
    return Viewer(web, _used(services, caller))


def current_caller(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The bearer token's caller; or, for reads only (GET, and so the SSE stream), the
    session cookie's.

    A cookie rides along with cross-site requests, so it never authorises a change
    through the JSON API: those need the bearer token, which no other site can send.
    """
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None and request.method in SAFE_METHODS:
        viewer = _signed_in(request, services)
        if viewer is not None:
            request.state.caller = viewer.caller
            return viewer.caller
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401, "missing bearer token: send 'Authorization: Bearer TOKEN'", challenge
        )
    with services.sessions() as session:
        caller = authenticate(session, raw=credentials.credentials, now=database_now(session))
    if caller is None:
        raise HTTPException(401, "invalid, expired or revoked token", challenge)
    request.state.caller = caller  # who the audit log names
    return _used(services, caller)


CurrentCaller = Annotated[Caller, Depends(current_caller)]


def refuse_scope(caller: Caller, scope: str) -> HTTPException:
    return HTTPException(
        403,
        f"this token may not do that: it needs the {scope!r} scope "
        f"(user {caller.user_name!r} is a {caller.role}; token {caller.token_name!r} has "
        f"{', '.join(sorted(caller.scopes)) or 'no scopes'})",
    )


def needs(scope: str) -> Callable[[Caller], Caller]:
    """A dependency: the caller, refused (403, saying why) unless it holds `scope`."""

    def checked(caller: CurrentCaller) -> Caller:
        if not caller.can(scope):
            raise refuse_scope(caller, scope)
        return caller

    return checked


Reader = Annotated[Caller, Depends(needs(access.READ))]
Writer = Annotated[Caller, Depends(needs(access.WRITE))]
WorkspaceUser = Annotated[Caller, Depends(needs(access.WORKSPACES))]
Admin = Annotated[Caller, Depends(needs(access.ADMIN))]


def reached(request: Request, session: Session, caller: Caller, workspace_id: str) -> Workspace:
    """The workspace, when the caller reaches it (its user's, its team's, any for an admin);
    404 alike for none and for another's, which is audited as refused."""
    try:
        return workspace_store.get(session, workspace_id=workspace_id, caller=caller)
    except WorkspaceNotFound as exc:
        if session.get(Workspace, workspace_id) is not None:
            route = request.scope.get("route")
            audit.refused(
                request.state, action=f"workspace.{getattr(route, 'name', 'use')}",
                target=workspace_id,
                detail=f"workspace of another user: {caller.user_name} does not reach it",
            )  # fmt: skip
        raise HTTPException(404, str(exc)) from exc


def reach_workspace(
    workspace_id: str, request: Request, services: ServicesDep, caller: WorkspaceUser
) -> Caller:
    """A dependency: the caller, when it reaches the path's workspace (see `reached`)."""
    with services.sessions() as session:
        reached(request, session, caller, workspace_id)
    return caller


WorkspaceOwner = Annotated[Caller, Depends(reach_workspace)]
"""The caller, reaching the `workspace_id` of the path."""


def owner_of(services: Services, task_id: str) -> Owner:
    """Who the task belongs to, read in a session of its own; 404 for no such task."""
    with services.sessions() as session:
        return task_owner(session, task_id=task_id)


def may_change(services: Services, caller: Caller, task_id: str) -> None:
    """Refuses (403) a change to a task that is neither the caller's nor the caller's team's
    (admins may change any); 404 for no such task."""
    if caller.may_change(owner_of(services, task_id)):
        return
    if not caller.can(access.WRITE):
        raise refuse_scope(caller, access.WRITE)
    raise HTTPException(
        403, f"task {task_id} is neither yours nor your team's: a member may change only those"
    )


def _page_of(request: Request) -> str:
    """Where to come back to after signing in: the page itself for a GET; for a form posted
    after the session ended, the page the form was on (a GET of its target would be a 405)."""
    if request.method in SAFE_METHODS:
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    referer = urlsplit(request.headers.get("referer", ""))
    if f"{referer.scheme}://{referer.netloc}" in own_origins(request) and referer.path:
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return "/tasks"


def current_viewer(request: Request, services: ServicesDep) -> Viewer:
    """The signed-in dashboard user; anyone else is sent to the sign-in page."""
    viewer = _signed_in(request, services)
    if viewer is None:
        target = _page_of(request)
        location = "/login" if target == "/" else f"/login?next={quote(target, safe='')}"
        raise HTTPException(303, "sign in first", {"Location": location})
    request.state.caller = viewer.caller
    return viewer


ViewerDep = Annotated[Viewer, Depends(current_viewer)]


async def form_fields(request: Request) -> dict[str, str]:
    """A urlencoded form's fields (the last value of each); the dashboard posts nothing else."""
    body = await request.body()
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if body and kind != "application/x-www-form-urlencoded":
        raise HTTPException(415, "send the form as application/x-www-form-urlencoded")
    if len(body) > 1_000_000:
        raise HTTPException(413, "form too large")
    parsed = parse_qs(body.decode(errors="replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in parsed.items()}


FormDep = Annotated[dict[str, str], Depends(form_fields)]


def own_origins(request: Request) -> set[str]:
    """This site as a browser names it: the address it was reached at, and the public URL."""
    settings: WebSettings = request.app.state.web_settings
    public = urlsplit(settings.base_url)
    return {f"{request.url.scheme}://{request.headers.get('host', '')}",
            f"{public.scheme}://{public.netloc}"}  # fmt: skip


def same_origin(request: Request) -> None:
    """Refuses (403) a state change sent from another origin, another port of this host too:
    cookies do not tell ports apart, so a page on 127.0.0.1:OTHER could post with them.
    Browsers send Origin on every POST; a client that sends neither header is no browser."""
    sent = request.headers.get("origin")
    if sent is None and request.headers.get("referer"):
        referer = urlsplit(request.headers["referer"])
        sent = f"{referer.scheme}://{referer.netloc}"
    if sent is not None and sent not in own_origins(request):
        raise HTTPException(403, f"this form was sent from another site ({sent[:100]})")


def checked_form(request: Request, viewer: ViewerDep, form: FormDep) -> dict[str, str]:
    """The form of a signed-in user from this site, refused (403) unless it comes from this
    origin and carries the session's CSRF token."""
    same_origin(request)
    if not sessions.same(form.get("csrf"), viewer.session.csrf):
        raise HTTPException(403, "the form's CSRF token is missing or wrong: reload the page")
    return form


CheckedFormDep = Annotated[dict[str, str], Depends(checked_form)]
