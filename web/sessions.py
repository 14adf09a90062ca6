"""Dashboard sign-in sessions, kept server-side in Redis, and their CSRF tokens."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

import redis

COOKIE = "autan_session"
LOGIN_CSRF_COOKIE = "autan_login_csrf"
KEY_PREFIX = "autan:web:session:"


@dataclass(frozen=True)
class WebSession:
    """One signed-in browser: which API token it signed in with, and its CSRF token."""

    token_id: str
    csrf: str
    sso: bool = False
    """Signed in through the identity provider: its token was made for this session alone,
    and signing out revokes it."""


def _key(session_id: str) -> str:
    # Only a hash of the cookie is stored: a copy of Redis holds no usable session.
    return KEY_PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


def create(
    client: redis.Redis, *, token_id: str, ttl_s: int, sso: bool = False
) -> tuple[str, WebSession]:
    """Store a new session; returns the cookie value (256 random bits) and the session."""
    session_id = secrets.token_urlsafe(32)
    session = WebSession(token_id=token_id, csrf=secrets.token_urlsafe(32), sso=sso)
    payload = json.dumps({"token_id": session.token_id, "csrf": session.csrf, "sso": sso})
    client.set(_key(session_id), payload, ex=ttl_s)
    return session_id, session


def load(client: redis.Redis, session_id: str) -> WebSession | None:
    if not session_id or len(session_id) > 128:
        return None
    raw = client.get(_key(session_id))
    if raw is None:
        return None
    data = json.loads(raw)
    return WebSession(token_id=data["token_id"], csrf=data["csrf"], sso=data.get("sso", False))


def delete(client: redis.Redis, session_id: str) -> None:
    client.delete(_key(session_id))


def new_csrf() -> str:
    return secrets.token_urlsafe(32)


def same(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a submitted CSRF token with the expected one."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
