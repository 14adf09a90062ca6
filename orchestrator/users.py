"""Users (people and services) in the store: made, found, and the owner of a task."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.access import Owner, check_role
from orchestrator.errors import TaskNotFound
from orchestrator.models import Task, User


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def find_user(session: Session, *, name: str) -> User | None:
    return session.scalars(select(User).where(User.name == name)).first()


def create_user(
    session: Session,
    *,
    name: str,
    role: str,
    now: datetime,
    email: str | None = None,
    team: str | None = None,
    service: bool = False,
) -> User:
    """A new user; ValueError when the role is unknown or the name or email is taken."""
    check_role(role)
    if not name.strip() or len(name) > 255:
        raise ValueError("a user's name must be 1 to 255 characters")
    if find_user(session, name=name) is not None:
        raise ValueError(f"a user named {name!r} exists already")
    if email is not None and session.scalars(select(User).where(User.email == email)).first():
        raise ValueError(f"another user has the email {email!r}")
    user = User(name=name, email=email, role=role, team=team, service=service, created_at=now)
    session.add(user)
    session.flush()
    return user


def ensure_user(
    session: Session,
    *,
    name: str,
    role: str,
    now: datetime,
    team: str | None = None,
    email: str | None = None,
    service: bool = False,
) -> User:
    """The user named `name`, made with this role and team when there is none yet."""
    return find_user(session, name=name) or create_user(
        session, name=name, role=role, team=team, email=email, service=service, now=now
    )


def sso_user(session: Session, *, email: str, role: str | None, now: datetime) -> User:
    """The person a single sign-on names by their email: found, or made (named by the email)
    as a viewer unless `role` says otherwise; a `role` given replaces theirs. ValueError: the
    email is a service's, or a user of that name has another email."""
    user = session.scalars(select(User).where(User.email == email)).first()
    if user is None:
        return create_user(session, name=email, email=email, role=role or "viewer", now=now)
    if user.service:
        raise ValueError(f"{email!r} belongs to a service user, which cannot sign in")
    if role is not None:
        user.role = check_role(role)
    return user


def task_owner(session: Session, *, task_id: str) -> Owner:
    """Who a task belongs to: its maker and the maker's team (TaskNotFound if no task)."""
    row = session.execute(
        select(Task.created_by, User.team)
        .outerjoin(User, User.id == Task.created_by)
        .where(Task.id == task_id)
    ).first()
    if row is None:
        raise TaskNotFound(f"no task with id {task_id!r}")
    return Owner(user_id=row[0], team=row[1])
