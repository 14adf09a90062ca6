"""API tokens: made once, shown once, stored only as a SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.models import ApiToken

PREFIX = "autan_"


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


def revoke_token(session: Session, *, name: str, now: datetime) -> int:
    tokens = session.scalars(
        select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
    ).all()
    for token in tokens:
        token.revoked_at = now
    return len(tokens)
