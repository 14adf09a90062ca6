"""API tokens: made once, shown once, stored only as a SHA-256; each belongs to a user."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from orchestrator.access import ROLE_SCOPES, Caller, check_scopes
from orchestrator.models import ApiToken, User
from orchestrator.store import changed
from orchestrator.users import ensure_user

PREFIX = "autan_"
TOUCH_EVERY = timedelta(minutes=1)
"""How stale `last_used_at` may be: recording every use would make every request a write."""


def hash_token(raw: str) -> str:
    # Tokens are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_token(
    session: Session,
    *,
    user: User,
    name: str,
    now: datetime,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Store a new token of `user` and return it with its secret in the clear (the only time
    it exists so). No scopes given: all the user's role allows. ValueError: a scope unknown
    or above the role, a bad name, an expiry not in the future."""
    if not name.strip() or len(name) > 255:
        raise ValueError("a token's name must be 1 to 255 characters")
    if expires_at is not None and expires_at <= now:
        raise ValueError("expires_at must be in the future")
    given = check_scopes(
        scopes if scopes is not None else sorted(ROLE_SCOPES[user.role]), role=user.role
    )
    if not given:
        raise ValueError("a token needs at least one scope")
    raw = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name, token_hash=hash_token(raw), user_id=user.id, scopes=given,
        created_at=now, expires_at=expires_at, user=user,
    )  # fmt: skip
    session.add(token)
    session.flush()
    return token, raw


def create_token(session: Session, *, name: str, is_admin: bool, now: datetime) -> str:
    """A token for the user of the same name (made an admin or a member when new), with every
    scope its role allows: how `autan up` and the server-side command make theirs."""
    user = ensure_user(session, name=name, role="admin" if is_admin else "member", now=now)
    return issue_token(session, user=user, name=name, now=now)[1]


def caller_of(token: ApiToken, *, now: datetime) -> Caller | None:
    """What a stored token may do now; None when it is revoked or expired."""
    if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
        return None
    user = token.user
    return Caller(
        token_id=token.id,
        token_name=token.name,
        user_id=user.id,
        user_name=user.name,
        role=user.role,
        team=user.team,
        scopes=frozenset(token.scopes) & ROLE_SCOPES.get(user.role, frozenset()),
        last_used_at=token.last_used_at,
    )


def authenticate(session: Session, *, raw: str, now: datetime) -> Caller | None:
    """The caller for `raw`, or None; compares hashes, never the secrets themselves."""
    if not raw.startswith(PREFIX) or len(raw) > 128:
        return None
    token = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(raw))).first()
    return caller_of(token, now=now) if token is not None else None


def lookup(session: Session, *, token_id: str, now: datetime) -> Caller | None:
    """The caller for a token id (a dashboard session, a stream re-checking), or None."""
    token = session.get(ApiToken, token_id)
    return caller_of(token, now=now) if token is not None else None


def touch_due(last_used_at: datetime | None, *, now: datetime) -> bool:
    """Whether this use should be recorded (the last one is a minute old or more)."""
    return last_used_at is None or now - last_used_at >= TOUCH_EVERY


def touch(session: Session, *, token_id: str, now: datetime) -> bool:
    """Record a use of the token unless one was recorded within TOUCH_EVERY.

    Guarded in SQL, so concurrent requests (in every API process) write it once.
    """
    stale = or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= now - TOUCH_EVERY)
    statement = update(ApiToken).where(ApiToken.id == token_id, stale).values(last_used_at=now)
    return changed(session, statement) > 0


def list_tokens(session: Session, *, user_id: str | None) -> list[ApiToken]:
    """Tokens, newest first: one user's, or (None) everyone's."""
    query = select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id)
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return list(session.scalars(query))


def revoke_token(session: Session, *, name: str, now: datetime) -> int:
    """Revoke every live token named `name`; how many."""
    tokens = session.scalars(
        select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
    ).all()
    for token in tokens:
        token.revoked_at = now
    return len(tokens)


def revoke_by_id(session: Session, *, token_id: str, now: datetime) -> None:
    """Revoke one token, if it is still live (a single sign-on session's, on signing out)."""
    session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
