"""Dependencies of the routes: the services, a database session, the caller's token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from orchestrator.lifecycle import Lifecycle
from orchestrator.models import ApiToken
from orchestrator.services import Services
from orchestrator.tokens import authenticate
from web.config import WebSettings


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_web_settings(request: Request) -> WebSettings:
    settings: WebSettings = request.app.state.web_settings
    return settings


ServicesDep = Annotated[Services, Depends(get_services)]
WebSettingsDep = Annotated[WebSettings, Depends(get_web_settings)]


def get_session(services: ServicesDep) -> Iterator[Session]:
    with services.sessions() as session:
        yield session


def get_lifecycle(services: ServicesDep) -> Lifecycle:
    return services.lifecycle


SessionDep = Annotated[Session, Depends(get_session)]
LifecycleDep = Annotated[Lifecycle, Depends(get_lifecycle)]

_bearer = HTTPBearer(auto_error=False)


def current_token(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiToken:
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401, "missing bearer token: send 'Authorization: Bearer TOKEN'", challenge
        )
    token = authenticate(session, raw=credentials.credentials)
    if token is None:
        raise HTTPException(401, "invalid or revoked token", challenge)
    return token


CurrentToken = Annotated[ApiToken, Depends(current_token)]
