"""API tokens over the API: made, listed and revoked (admins any user's, others their own)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status

from orchestrator import access
from orchestrator.access import Caller
from orchestrator.claims import database_now
from orchestrator.models import ApiToken
from orchestrator.schemas import TokenCreate, TokenCreated, TokenView
from orchestrator.tokens import issue_token, list_tokens
from orchestrator.users import find_user
from web import audit
from web.deps import CurrentCaller, RoomToWrite, ServicesDep

router = APIRouter(prefix="/api/tokens", tags=["tokens"])


def _not_yours(caller: Caller) -> HTTPException:
    return HTTPException(
        403, f"only an admin manages other users' tokens; {caller.user_name} is a {caller.role}"
    )


def token_writer(caller: CurrentCaller) -> Caller:
    """The caller, refused (403) unless a member or an admin: viewers ask an admin."""
    if not caller.is_admin and caller.role != "member":
        raise HTTPException(
            403, f"{caller.user_name} is a {caller.role}: only members and admins make or "
            "revoke tokens; ask an admin",
        )  # fmt: skip
    return caller


TokenWriter = Annotated[Caller, Depends(token_writer)]


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=TokenCreated, dependencies=[RoomToWrite]
)
def create(
    body: TokenCreate, request: Request, services: ServicesDep, caller: TokenWriter
) -> TokenCreated:
    with services.lifecycle.gate, services.sessions.begin() as session:
        user = find_user(session, name=body.user or caller.user_name)
        if user is None:
            raise HTTPException(404, f"no user named {body.user!r}")
        if not caller.may_manage(user.id):
            raise _not_yours(caller)
        allowed = access.ROLE_SCOPES[user.role]
        if body.scopes is None:
            scopes = sorted(allowed if caller.is_admin else allowed & caller.scopes)
        else:
            scopes = body.scopes
            beyond = sorted(set(scopes) & set(access.SCOPES) - caller.scopes)
            if beyond and not caller.is_admin:
                raise HTTPException(
                    403, f"a token cannot give more than it has: token {caller.token_name!r} "
                    f"lacks {', '.join(beyond)}",
                )  # fmt: skip
        try:
            token, raw = issue_token(
                session, user=user, name=body.name, scopes=scopes, expires_at=body.expires_at,
                now=database_now(session),
            )  # fmt: skip
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        audit.note(request.state, target=token.id, detail=f"{body.name} of {user.name}")
        return TokenCreated(**TokenView.of(token).model_dump(), token=raw)


@router.get("", response_model=list[TokenView])
def list_(services: ServicesDep, caller: CurrentCaller, user: str | None = None) -> list[TokenView]:
    """The caller's tokens; an admin's asks for everyone's, or one user's with `user`."""
    with services.sessions() as session:
        owner = None
        if user is not None:
            found = find_user(session, name=user)
            if found is None:
                raise HTTPException(404, f"no user named {user!r}")
            owner = found.id
        elif not caller.is_admin:
            owner = caller.user_id
        if owner is not None and owner != caller.user_id and not caller.is_admin:
            raise _not_yours(caller)
        return [TokenView.of(t) for t in list_tokens(session, user_id=owner)]


@router.delete("/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke(token_id: str, services: ServicesDep, caller: TokenWriter) -> Response:
    """Revoke a token now: its next request, and its open streams, are refused."""
    with services.lifecycle.gate, services.sessions.begin() as session:
        token = session.get(ApiToken, token_id)
        # Another user's token is as unknown to a non-admin as one that does not exist.
        if token is None or not caller.may_manage(token.user_id):
            raise HTTPException(404, f"no token with id {token_id!r}")
        if token.revoked_at is not None:
            raise HTTPException(409, f"token {token.name!r} was revoked already")
        token.revoked_at = database_now(session)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
