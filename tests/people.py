"""Users of every role with a token each, made in the store the way an admin would."""

from __future__ import annotations

from datetime import datetime

from orchestrator.models import utcnow
from orchestrator.services import Services
from orchestrator.tokens import issue_token
from orchestrator.users import create_user, find_user


def person(
    services: Services,
    name: str,
    role: str,
    *,
    team: str | None = None,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
) -> str:
    """A token of the user `name` (made with this role and team if new); returns its secret."""
    with services.sessions.begin() as session:
        user = find_user(session, name=name) or create_user(
            session, name=name, role=role, team=team, now=utcnow()
        )
        _, raw = issue_token(
            session, user=user, name=f"{name}-token", scopes=scopes, expires_at=expires_at,
            now=utcnow(),
        )  # fmt: skip
    return raw


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}
