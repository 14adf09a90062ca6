"""Signing in to the dashboard through the identity provider (OpenID Connect): the start, which
sends the browser there, and the callback it comes back to.

The start is a link, not a form: a form's redirect to another origin is blocked by the
pages' `form-action 'self'`. It is held to the same Origin check and rate limit as the token
form. The callback comes from the provider's site, so no Origin check can apply there: its
state, kept in Redis for one use and bound to this browser by a cookie, proves the sign-in
was started here, by this browser; the nonce and PKCE verifier bind the code and the token.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from integrations.config import Routing
from orchestrator.access import Caller
from orchestrator.claims import database_now
from orchestrator.services import Services
from orchestrator.tokens import caller_of, issue_token
from orchestrator.users import sso_user
from web import audit, sessions
from web.config import WebSettings
from web.deps import ServicesDep, WebSettingsDep, same_origin
from web.oidc import CALLBACK, Provider, SignInFailed
from web.rate_limits import Rate, RateLimiter
from web.routes.hooks import HubDep
from web.routes.signin import safe_next, secure, set_session

router = APIRouter(include_in_schema=False)

STATE_COOKIE = "autan_sso_state"
STATE_PREFIX = "autan:web:sso:"
STATE_TTL_S = 600
"""How long a person may take at the provider before the sign-in must start again."""
SESSION_TOKEN = "sso"
"""The name of the token each single sign-on makes for its session."""
AGAIN = "Start again from the sign-in page."


def provider_of(request: Request) -> Provider:
    provider: Provider | None = request.app.state.oidc
    if provider is None:
        raise HTTPException(404, "Single sign-on is not set up here: sign in with an API token.")
    return provider


async def _limit(request: Request, settings: WebSettings) -> None:
    limiter = RateLimiter(request.app.state.live_redis, "signin", Rate.parse(settings.signin_rate))
    address = request.client.host if request.client else ""
    wait = await limiter.hit("address:" + address)
    if wait is not None:
        raise HTTPException(
            429,
            f"Too many sign-in attempts. Wait {wait} s, then try again.",
            {"Retry-After": str(wait)},
        )


def _state_key(state: str) -> str:
    return STATE_PREFIX + hashlib.sha256(state.encode()).hexdigest()


@router.get("/login/sso")
async def start(
    request: Request,
    services: ServicesDep,
    web_settings: WebSettingsDep,
    next: Annotated[str | None, Query()] = None,
) -> Response:
    same_origin(request)
    provider = provider_of(request)
    await _limit(request, web_settings)
    try:
        started = await provider.start()
    except SignInFailed as exc:
        raise HTTPException(502, str(exc)) from exc
    kept = json.dumps({"nonce": started.nonce, "verifier": started.verifier,
                       "next": safe_next(next)})  # fmt: skip
    await run_in_threadpool(services.redis.set, _state_key(started.state), kept, ex=STATE_TTL_S)
    response = RedirectResponse(started.url, status_code=303)
    # Lax: the provider's redirect back is a top-level GET from its site, which carries it.
    response.set_cookie(
        STATE_COOKIE, started.state, max_age=STATE_TTL_S, httponly=True, samesite="lax",
        secure=secure(request, web_settings.public_url), path=CALLBACK,
    )  # fmt: skip
    return response


def _taken(services: Services, request: Request, state: str | None) -> dict[str, Any]:
    """The sign-in this callback ends, taken from Redis so that it is used once."""
    if not state:
        raise HTTPException(400, f"The provider's answer has no state. {AGAIN}")
    cookie = request.cookies.get(STATE_COOKIE, "")
    if not cookie or not sessions.same(state, cookie):
        raise HTTPException(
            403, f"This sign-in was not started in this browser, or it has expired. {AGAIN}"
        )
    kept = services.redis.getdel(_state_key(state))
    if kept is None:
        raise HTTPException(403, f"This sign-in has expired or was used already. {AGAIN}")
    found: dict[str, Any] = json.loads(kept)
    return found


def _database_now(services: Services) -> int:
    with services.sessions() as session:
        return int(database_now(session).timestamp())


def _person(services: Services, claims: dict[str, Any], routing: Routing, ttl_s: int) -> Caller:
    """The user the claims name (made on their first sign-in) and a token for this session."""
    email = claims.get("email")
    if not isinstance(email, str) or not email or claims.get("email_verified") is False:
        raise HTTPException(
            403,
            "The provider did not vouch for an email address: Autan knows people by it. "
            "Ask for the `email` scope, with a verified address.",
        )
    with services.lifecycle.gate, services.sessions.begin() as session:
        now = database_now(session)
        try:
            user = sso_user(session, email=email, role=routing.sso.role_for(claims), now=now)
        except ValueError as exc:
            raise HTTPException(403, f"{exc}. Ask an admin.") from exc
        token, _ = issue_token(
            session, user=user, name=SESSION_TOKEN, now=now,
            expires_at=now + timedelta(seconds=ttl_s),
        )  # fmt: skip
        caller = caller_of(token, now=now)
    assert caller is not None, "a token made this instant is live"
    return caller


@router.get(CALLBACK)
async def callback(
    request: Request,
    services: ServicesDep,
    web_settings: WebSettingsDep,
    hub: HubDep,
    state: Annotated[str | None, Query()] = None,
    code: Annotated[str | None, Query()] = None,
    error: Annotated[str | None, Query()] = None,
    error_description: Annotated[str | None, Query()] = None,
) -> Response:
    provider = provider_of(request)
    await _limit(request, web_settings)
    kept = await run_in_threadpool(_taken, services, request, state)
    audit.note(request.state, detail=f"single sign-on at {provider.issuer}"[:500])
    if error:
        said = f" ({error_description[:300]})" if error_description else ""
        raise HTTPException(401, f"The provider did not sign you in: {error[:100]}{said}. {AGAIN}")
    if not code:
        raise HTTPException(400, f"The provider's answer has no code. {AGAIN}")
    try:
        claims = await provider.finish(
            code=code, verifier=kept["verifier"], nonce=kept["nonce"],
            now=await run_in_threadpool(_database_now, services),
        )  # fmt: skip
    except SignInFailed as exc:
        raise HTTPException(401, str(exc)) from exc
    if hub.unread:  # its [sso.roles] is not known: a role given now could be the wrong one
        raise HTTPException(503, f"Sign-in waits while autan.toml cannot be read: {hub.unread}")
    caller = await run_in_threadpool(
        _person, services, claims, hub.routing, web_settings.session_ttl_s
    )
    request.state.caller = caller
    response = await set_session(
        request, services, web_settings, caller, target=kept["next"], sso=True
    )
    response.delete_cookie(STATE_COOKIE, path=CALLBACK)
    return response
