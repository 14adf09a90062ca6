"""Roles, scopes and who may do what: the rules every route and dashboard button checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Role = Literal["admin", "member", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "member", "viewer")

READ, WRITE, WORKSPACES, ADMIN = "tasks:read", "tasks:write", "workspaces", "admin"
SCOPES = (READ, WRITE, WORKSPACES, ADMIN)

ROLE_SCOPES: dict[str, frozenset[str]] = {
    "admin": frozenset(SCOPES),
    "member": frozenset({READ, WRITE, WORKSPACES}),
    "viewer": frozenset({READ}),
}
"""The most a token of a user with this role may touch, whatever scopes it was given."""


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role


def check_scopes(scopes: list[str], *, role: str) -> list[str]:
    """The scopes in a fixed order, or ValueError naming one that is unknown or above the role."""
    for scope in scopes:
        if scope not in SCOPES:
            raise ValueError(f"scope {scope!r} is not one of {', '.join(SCOPES)}")
        if scope not in ROLE_SCOPES[role]:
            raise ValueError(f"scope {scope!r} is more than a {role} may have")
    return [s for s in SCOPES if s in scopes]


@dataclass(frozen=True)
class Owner:
    """Who a task belongs to, as far as the rules care."""

    user_id: str | None
    team: str | None


@dataclass(frozen=True)
class Caller:
    """Who is asking: a live token, its user, and what the two together allow."""

    token_id: str
    token_name: str
    user_id: str
    user_name: str
    role: str
    team: str | None
    scopes: frozenset[str]
    """The token's scopes within its user's role."""
    last_used_at: datetime | None = None

    def can(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def is_admin(self) -> bool:
        return self.role == "admin" and ADMIN in self.scopes

    def may_change(self, owner: Owner) -> bool:
        """Cancel, retry, message or continue a task: admins any, members their own and their
        team's, viewers none."""
        if not self.can(WRITE):
            return False
        if self.role == "admin":
            return True
        if owner.user_id == self.user_id:
            return True
        return self.team is not None and owner.team == self.team

    def reaches(self, owner: Owner) -> bool:
        """See a workspace (and, with the `workspaces` scope, sync it and start tasks from
        it): admins any, others their own and their team's."""
        if self.role == "admin":
            return True
        if owner.user_id is not None and owner.user_id == self.user_id:
            return True
        return self.team is not None and owner.team == self.team

    def may_manage(self, user_id: str) -> bool:
        """Make, list and revoke tokens of `user_id`: admins anyone's, others their own."""
        return self.is_admin or user_id == self.user_id
