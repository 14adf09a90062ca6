"""The audit trail: each change asked of the API, the dashboard or a webhook, with its outcome,
appended to the audit log as it is answered."""

from __future__ import annotations

import logging
import re
from typing import Any

from anyio import to_thread
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.access import Caller
from orchestrator.audit import Entry, append
from orchestrator.claims import database_now
from orchestrator.services import Services

log = logging.getLogger(__name__)

ACTIONS: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), action)
    for method, pattern, action in (
        ("POST", r"/api/tasks", "task.submit"),
        ("POST", r"/api/tasks/(?P<target>[^/]+)/(?P<verb>[a-z_]+)", "task.{verb}"),
        ("POST", r"/api/tokens", "token.create"),
        ("DELETE", r"/api/tokens/(?P<target>[^/]+)", "token.revoke"),
        ("POST", r"/api/users", "user.create"),
        ("PATCH", r"/api/users/(?P<target>[^/]+)", "user.change"),
        ("POST", r"/new", "task.submit"),
        ("POST", r"/tasks/(?P<target>[^/]+)/cancel", "task.cancel"),
        ("POST", r"/tasks/(?P<target>[^/]+)/again", "task.retry"),
        ("POST", r"/tasks/(?P<target>[^/]+)/messages", "task.messages"),
        ("POST", r"/tasks/(?P<target>[^/]+)/continue", "task.continue"),
        ("POST", r"/login", "signin"),
        ("GET", r"/login/sso/callback", "signin"),
        ("POST", r"/logout", "signout"),
        ("POST", r"/hooks/(?P<target>[a-z]+)(/[a-z]+)?", "webhook"),
    )
)
"""What is recorded: (method, path, action); `{verb}` is the path's own word."""


def action_of(method: str, path: str) -> tuple[str, str | None] | None:
    """The action a request asks for, and its target from the path; None: not audited."""
    for wanted, pattern, action in ACTIONS:
        if method == wanted and (found := pattern.fullmatch(path)):
            groups = found.groupdict()
            return action.format(verb=groups.get("verb")), groups.get("target")
    return None


def refused(request_state: Any, *, action: str, target: str, detail: str) -> None:
    """Records a refusal by a route the log does not otherwise follow (whatever it answers)."""
    request_state.audit_refused = (action, target)
    request_state.audit_target, request_state.audit_detail = target, detail


def note(request_state: Any, *, target: str | None = None, detail: str | None = None) -> None:
    """What a route adds to its request's entry: the thing it made, and a word on it."""
    if target is not None:
        request_state.audit_target = target
    if detail is not None:
        request_state.audit_detail = detail


AUDIT_WRITE = "autan.audit"
"""Marks a session that only appends to the audit log: its commit proves nothing about the
request's own writes, which /readyz judges (a refused write is followed by its entry)."""


class AuditTrail:
    """ASGI middleware appending an entry for each audited request as its answer starts. A
    failed write is logged, never turned into a failed request: the change is made."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        asked = action_of(scope["method"], scope["path"])
        recorded = False

        async def answering(message: Message) -> None:
            nonlocal recorded, asked
            if message["type"] == "http.response.start" and not recorded:
                asked = asked or scope.get("state", {}).get("audit_refused")
                # Recorded before the answer leaves: a client that has it finds the entry.
                recorded = True
                if asked is not None:
                    await self._record(scope, asked, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, answering)
        finally:
            if not recorded and asked is not None:  # it raised before answering: a 500
                await self._record(scope, asked, 500)

    async def _record(self, scope: Scope, asked: tuple[str, str | None], status: int) -> None:
        await to_thread.run_sync(self._append, self._entry(scope, asked, status))

    @staticmethod
    def _entry(scope: Scope, asked: tuple[str, str | None], status: int) -> Entry:
        action, target = asked
        state = scope.get("state", {})
        caller: Caller | None = state.get("caller")
        if caller is not None:
            actor, token = caller.user_name, caller.token_name
        elif action == "webhook":
            actor, token = f"{target}-connector", None
        else:
            actor, token = "anonymous", None
        client = scope.get("client")
        return Entry(
            actor=actor, token=token, action=action, status=status,
            target=state.get("audit_target", target), address=client[0] if client else None,
            detail=state.get("audit_detail"),
            outcome="refused" if "audit_refused" in state else None,
        )  # fmt: skip

    def _append(self, entry: Entry) -> None:
        try:
            with self.services.lifecycle.gate, self.services.sessions.begin() as session:
                session.info[AUDIT_WRITE] = True
                append(session, entry, now=database_now(session))
        except SQLAlchemyError as exc:
            log.warning(
                "could not record %s by %s in the audit log: %s", entry.action, entry.actor, exc
            )
