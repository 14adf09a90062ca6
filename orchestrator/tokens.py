"""API tokens: made once, shown once, stored only as a SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from orchestrator.models import ApiToken
from orchestrator.store import changed

PREFIX = "autan_"
TOUCH_EVERY = timedelta(minutes=1)
"""How stale `last_used_at` may be: recording every use would make every request a write."""


def hash_token(raw: str) -> str:
    # Tokens are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(raw.encode()).hexdigest()


def create_token(session: Session, *, name: str, is_admin: bool, now: datetime) -> str:
    """Store a new token and return it in the clear (the only time it exists so)."""
    raw = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=hash_token(raw), is_admin=is_admin, created_at=now))
    session.flush()
    return raw


def authenticate(session: Session, *, raw: str) -> ApiToken | None:
    """The live token for `raw`, or None; compares hashes, never the secrets themselves."""
    if not raw.startswith(PREFIX) or len(raw) > 128:
        return None
    token = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(raw))).first()
    if token is None or token.revoked_at is not None:
        return None
    return token


def touch_due(token: ApiToken, *, now: datetime) -> bool:
    """Whether this use of `token` should be recorded (its last one is a minute old or more)."""
    return token.last_used_at is None or now - token.last_used_at >= TOUCH_EVERY


def touch(session: Session, *, token_id: str, now: datetime) -> bool:
    """Record a use of the token unless one was recorded within TOUCH_EVERY.

    Guarded in SQL, so concurrent requests (in every API process) write it once.
    """
    stale = or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= now - TOUCH_EVERY)
    statement = update(ApiToken).where(ApiToken.id == token_id, stale).values(last_used_at=now)
    return changed(session, statement) > 0


def is_live(session: Session, *, token_id: str) -> bool:
    """Whether the token still exists and is not revoked (streams ask this now and then)."""
    token = session.get(ApiToken, token_id)
    return token is not None and token.revoked_at is None


def revoke_token(session: Session, *, name: str, now: datetime) -> int:
    tokens = session.scalars(
        select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
    ).all()
    for token in tokens:
        token.revoked_at = now
    return len(tokens)
