"""Signing in to the dashboard with an API token, the session every sign-in ends in, signing
out, and the page at `/`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from orchestrator.access import Caller
from orchestrator.claims import database_now
from orchestrator.services import Services
from orchestrator.tokens import authenticate, revoke_by_id
from web import sessions
from web.config import WebSettings
from web.deps import (
    CheckedFormDep,
    FormDep,
    ServicesDep,
    SessionDep,
    ViewerDep,
    WebSettingsDep,
    current_viewer,
    same_origin,
)
from web.rate_limits import Rate, RateLimiter, token_prefix
from web.templating import render

router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Only a path on this site: `next=//evil.example` must not send a user away."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/tasks"
    return target


def secure(request: Request, public_url: str) -> bool:
    return request.url.scheme == "https" or public_url.startswith("https://")


@router.get("/")
def index(request: Request, services: ServicesDep) -> Response:
    current_viewer(request, services)  # no session: to /login
    return RedirectResponse("/tasks", status_code=303)


@router.get("/login")
def login_page(
    request: Request,
    web_settings: WebSettingsDep,
    next: Annotated[str | None, Query()] = None,
) -> Response:
    # Sign-in has no session yet, so its form is guarded by a double-submit cookie.
    csrf = sessions.new_csrf()
    response = render(request, "login.html", csrf=csrf, next=safe_next(next), error=None)
    response.set_cookie(
        sessions.LOGIN_CSRF_COOKIE,
        csrf,
        httponly=True,
        samesite="strict",
        secure=secure(request, web_settings.public_url),
        path="/login",
    )
    return response


def _authenticate(session: Session, raw: str) -> Caller | None:
    return authenticate(session, raw=raw, now=database_now(session))


@router.post("/login")
async def login(
    request: Request,
    form: FormDep,
    services: ServicesDep,
    session: SessionDep,
    web_settings: WebSettingsDep,
) -> Response:
    same_origin(request)
    target = safe_next(form.get("next"))
    expected = request.cookies.get(sessions.LOGIN_CSRF_COOKIE, "")
    raw = form.get("token", "").strip()
    limiter = RateLimiter(
        request.app.state.live_redis, "signin", Rate.parse(web_settings.signin_rate)
    )
    address = request.client.host if request.client else ""
    wait = await limiter.hit("address:" + address, "token:" + token_prefix(raw))
    if wait is not None:
        refused = render(
            request, "login.html", 429, csrf=expected or sessions.new_csrf(), next=target,
            error=f"Too many sign-in attempts. Wait {wait} s, then try again.",
        )  # fmt: skip
        refused.headers["Retry-After"] = str(wait)
        return refused
    if not expected or not sessions.same(form.get("csrf"), expected):
        return render(
            request, "login.html", 403, csrf=expected or sessions.new_csrf(), next=target,
            error="This form expired. Reload the page and sign in again.",
        )  # fmt: skip
    caller = await run_in_threadpool(_authenticate, session, raw)
    if caller is None:
        return render(
            request, "login.html", 401, csrf=expected, next=target,
            error="That token is not valid, or it was revoked.",
        )  # fmt: skip
    request.state.caller = caller
    response = await set_session(request, services, web_settings, caller, target=target)
    response.delete_cookie(sessions.LOGIN_CSRF_COOKIE, path="/login")
    return response


async def set_session(
    request: Request,
    services: Services,
    web_settings: WebSettings,
    caller: Caller,
    *,
    target: str,
    sso: bool = False,
) -> Response:
    """A new session for `caller`, its cookie set on a redirect to `target`."""
    session_id, _ = await run_in_threadpool(
        lambda: sessions.create(
            services.redis, token_id=caller.token_id, ttl_s=web_settings.session_ttl_s, sso=sso
        )
    )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        sessions.COOKIE,
        session_id,
        max_age=web_settings.session_ttl_s,
        httponly=True,
        samesite="lax",
        secure=secure(request, web_settings.public_url),
        path="/",
    )
    return response


@router.post("/logout")
def logout(
    request: Request, services: ServicesDep, viewer: ViewerDep, _: CheckedFormDep
) -> Response:
    sessions.delete(services.redis, request.cookies.get(sessions.COOKIE, ""))
    if viewer.session.sso:  # its token was this session's alone
        with services.lifecycle.gate, services.sessions.begin() as session:
            revoke_by_id(session, token_id=viewer.caller.token_id, now=database_now(session))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response
