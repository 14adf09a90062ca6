"""Users over the API (admins): listed, made, and their role, team or email changed."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from orchestrator.access import Role
from orchestrator.claims import database_now
from orchestrator.models import User
from orchestrator.users import create_user, find_user, list_users
from web import audit
from web.deps import Admin, ServicesDep

router = APIRouter(prefix="/api/users", tags=["users"])

Name = Annotated[str, Field(min_length=1, max_length=255)]


class UserCreate(BaseModel):
    """A user an admin makes (a person, or a service such as a bot)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: Name
    role: Role
    email: str | None = Field(default=None, max_length=320)
    team: str | None = Field(default=None, max_length=255)
    service: bool = False


class UserChange(BaseModel):
    """What an admin changes of a user; a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    role: Role | None = None
    team: str | None = Field(default=None, max_length=255)
    email: str | None = Field(default=None, max_length=320)


class UserView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    email: str | None
    role: str
    team: str | None
    service: bool
    created_at: datetime


@router.get("", response_model=list[UserView])
def list_(services: ServicesDep, _: Admin) -> list[UserView]:
    with services.sessions() as session:
        return [UserView.model_validate(u) for u in list_users(session)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=UserView)
def create(body: UserCreate, request: Request, services: ServicesDep, _: Admin) -> UserView:
    with services.lifecycle.gate, services.sessions.begin() as session:
        try:
            user = create_user(
                session, name=body.name, role=body.role, email=body.email or None,
                team=body.team or None, service=body.service, now=database_now(session),
            )  # fmt: skip
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from exc
        audit.note(request.state, target=user.name, detail=f"as {user.role}")
        return UserView.model_validate(user)


@router.patch("/{name}", response_model=UserView)
def change(
    name: str, body: UserChange, request: Request, services: ServicesDep, _: Admin
) -> UserView:
    """Change a role, a team or an email: the user's tokens follow at their next request."""
    with services.lifecycle.gate, services.sessions.begin() as session:
        user = find_user(session, name=name)
        if user is None:
            raise HTTPException(404, f"no user named {name!r}")
        given = body.model_dump(exclude_unset=True)
        if "role" in given and given["role"] is None:
            raise HTTPException(422, "role: one of admin, member, viewer, not null")
        email = given.get("email")
        if (
            email
            and session.scalars(select(User).where(User.email == email, User.id != user.id)).first()
        ):
            raise HTTPException(409, f"another user has the email {email!r}")
        for field, value in given.items():
            setattr(user, field, value or None if field != "role" else value)
        audit.note(request.state, detail=", ".join(f"{k}={v}" for k, v in given.items()))
        return UserView.model_validate(user)
