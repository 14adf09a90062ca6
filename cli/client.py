"""The Autan API over HTTP, its failures turned into errors that say what to do."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from cli.errors import ApiError, ApiUnreachable, CliError, Conflict, NotFound, TokenRefused
from cli.sse import Frame, SseParser
from orchestrator.schemas import (
    EventView,
    TaskSummary,
    TaskView,
    TokenCreate,
    TokenCreated,
    TokenView,
)

STREAM_TIMEOUT = httpx.Timeout(10.0, read=60.0)
"""Reads wait out the keep-alives (15 s apart), so a quiet task is not a dead stream."""

M = TypeVar("M", bound=BaseModel)
Tokens = list[TokenView]
AuditItems = list[dict[str, Any]]
TOKEN_LIST = TypeAdapter(Tokens)


class TaskPage(BaseModel):
    items: list[TaskSummary]
    next_cursor: str | None


class AttemptDiff(BaseModel):
    """One attempt's diff, which attempt it is, the commit it applies to, and if it is partial."""

    text: str
    attempt: int
    commit: str | None
    partial: bool


class AutanClient:
    """A small client for the task API: submit, list, get, cancel and follow events."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        reconnects: int = 5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.reconnects = reconnects
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "autan-cli"},
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> AutanClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def submit(
        self,
        *,
        repo: str,
        instruction: str,
        ref: str | None = None,
        attempts: int | None = None,
        idempotency_key: str | None = None,
        origin: str = "cli",
    ) -> tuple[TaskView, bool]:
        """Submit a task; returns it and whether it is new (False: the idempotency key matched)."""
        body = {
            "repo": repo,
            "instruction": instruction,
            "ref": ref,
            "attempts": attempts,
            "idempotency_key": idempotency_key,
            "origin": origin,
        }
        response = self._request(
            "POST", "/api/tasks", json={k: v for k, v in body.items() if v is not None}
        )
        return self._parse(TaskView, response), response.status_code == httpx.codes.CREATED

    def list(
        self,
        *,
        state: str | None = None,
        repo: str | None = None,
        origin: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> TaskPage:
        """Tasks newest first, one page at a time."""
        query = {"state": state, "repo": repo, "origin": origin, "limit": limit, "cursor": cursor}
        params = {k: v for k, v in query.items() if v is not None}
        return self._parse(TaskPage, self._request("GET", "/api/tasks", params=params))

    def get(self, task_id: str) -> TaskView:
        return self._parse(TaskView, self._request("GET", f"/api/tasks/{task_id}", task_id=task_id))

    def cancel(self, task_id: str) -> TaskView:
        response = self._request("POST", f"/api/tasks/{task_id}/cancel", task_id=task_id)
        return self._parse(TaskView, response)

    def say(self, task_id: str, text: str, *, attempt: int | None = None) -> EventView:
        """Send a person's message to a running task (its attempt `attempt` only, if given)."""
        body: dict[str, Any] = {"text": text, "attempt": attempt}
        # With an attempt named, a 404 may be about the attempt: the API's words say which.
        named = task_id if attempt is None else None
        response = self._request("POST", f"/api/tasks/{task_id}/messages", task_id=named, json=body)
        return self._parse(EventView, response)

    def continue_task(
        self, task_id: str, instruction: str, *, attempt: int | None = None
    ) -> TaskView:
        """Continue a finished task from its attempt's diff (the kept one unless `attempt`)."""
        body: dict[str, Any] = {"instruction": instruction, "attempt": attempt, "origin": "cli"}
        named = task_id if attempt is None else None
        response = self._request("POST", f"/api/tasks/{task_id}/continue", task_id=named, json=body)
        return self._parse(TaskView, response)

    def create_token(self, body: TokenCreate) -> TokenCreated:
        payload = body.model_dump(mode="json", exclude_none=True)
        return self._parse(TokenCreated, self._request("POST", "/api/tokens", json=payload))

    def tokens(self, *, user: str | None = None) -> Tokens:
        params = {"user": user} if user is not None else {}
        response = self._request("GET", "/api/tokens", params=params)
        try:
            return TOKEN_LIST.validate_python(response.json())
        except ValueError as exc:
            raise self.not_understood(exc) from exc

    def revoke_token(self, token_id: str) -> None:
        self._request("DELETE", f"/api/tokens/{token_id}")

    def audit(self, params: dict[str, object]) -> AuditItems:
        """Audit log entries, newest first (admins)."""
        response = self._request("GET", "/api/audit", params=params)
        try:
            items: AuditItems = response.json()["items"]
        except (ValueError, KeyError, TypeError) as exc:
            raise self.not_understood(ValueError(str(exc))) from exc
        return items

    def diff(self, task_id: str, *, attempt: int | None = None) -> AttemptDiff:
        """An attempt's diff: `attempt`'s, or by default the kept one, else the best one left."""
        params = {"attempt": attempt} if attempt is not None else {}
        path = f"/api/tasks/{task_id}/diff"
        try:
            response = self._http.request("GET", path, params=params)
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from exc
        if response.status_code == httpx.codes.NOT_FOUND:
            raise NotFound(_detail(response), status=response.status_code)
        self.check(response, task_id)
        headers = response.headers
        return AttemptDiff(
            text=response.text,
            attempt=int(headers.get("X-Autan-Attempt", "0")),
            commit=headers.get("X-Autan-Commit"),
            partial=headers.get("X-Autan-Partial") == "true",
        )

    def events(self, task_id: str, *, after: int = 0, follow: bool = True) -> Iterator[EventView]:
        """The task's events after seq `after`; with `follow`, live until the task ends.

        A stream that drops is resumed from the last event seen (Last-Event-ID), up to
        `reconnects` times in a row without news.
        """
        return _EventStream(self, task_id, after, follow).events()

    # -- plumbing -------------------------------------------------------------------

    def _request(
        self, method: str, path: str, *, task_id: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from exc
        self.check(response, task_id)
        return response

    def unreachable(self, exc: httpx.TransportError) -> ApiUnreachable:
        return ApiUnreachable(
            f"cannot reach the Autan API at {self.url} ({type(exc).__name__}: {exc}): "
            "is `autan up` running? set AUTAN_URL if it listens elsewhere"
        )

    def check(self, response: httpx.Response, task_id: str | None) -> None:
        """Raise the error that an unsuccessful answer means."""
        if response.is_success:
            return
        status, detail = response.status_code, _detail(response)
        if status == httpx.codes.UNAUTHORIZED:
            raise TokenRefused(
                f"the API refused the token ({detail}): set AUTAN_TOKEN to a token from "
                "`autan token create` or DATA_DIR/admin-token",
                status=status,
            )
        if status == httpx.codes.NOT_FOUND and task_id is not None:
            raise NotFound(f"no task with id {task_id}", status=status)
        if status == httpx.codes.CONFLICT:
            raise Conflict(detail, status=status)
        if status == httpx.codes.UNPROCESSABLE_ENTITY:
            raise ApiError(f"the API rejected the request: {detail}", status=status)
        raise ApiError(
            f"the API at {self.url} answered {status} {response.reason_phrase}: {detail}",
            status=status,
        )

    def _parse(self, model: type[M], response: httpx.Response) -> M:
        try:
            return model.model_validate(response.json())
        except ValueError as exc:
            raise self.not_understood(exc) from exc

    def not_understood(self, exc: ValueError) -> CliError:
        return CliError(
            f"the API at {self.url} sent an answer this command does not understand ({exc}); "
            "is AUTAN_URL the Autan API, of the same version as this command?"
        )

    def stream(
        self, path: str, *, headers: dict[str, str], follow: bool
    ) -> AbstractContextManager[httpx.Response]:
        params = {"follow": "true" if follow else "false"}
        return self._http.stream(
            "GET", path, params=params, headers=headers, timeout=STREAM_TIMEOUT
        )


def _detail(response: httpx.Response) -> str:
    """The API's `detail` as one line: FastAPI's validation list becomes `where: what; ...`."""
    try:
        detail = response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(detail, list):
        return "; ".join(_validation_problem(item) for item in detail)
    return detail if isinstance(detail, str) else json.dumps(detail)


def _validation_problem(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    where = ".".join(str(part) for part in item.get("loc", []))
    return f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", ""))


class _EventStream:
    """One follow of a task's events across as many connections as it takes."""

    def __init__(self, client: AutanClient, task_id: str, after: int, follow: bool) -> None:
        self.client = client
        self.task_id = task_id
        self.follow = follow
        self.parser = SseParser(last_id=str(after) if after else None)
        self.connected = False
        self.finished = False

    def events(self) -> Iterator[EventView]:
        failures = 0
        while True:
            try:
                for event in self._connection():
                    failures = 0
                    yield event
                if self.finished or not self.follow:
                    return
                cause = "the stream ended before the task did"
            except httpx.TransportError as exc:
                if not self.connected:
                    raise self.client.unreachable(exc) from exc
                cause = f"{type(exc).__name__}: {exc}"
            failures += 1
            if failures > self.client.reconnects:
                raise ApiUnreachable(
                    f"lost the event stream of task {self.task_id} from {self.client.url} "
                    f"({cause}) and could not resume it in {self.client.reconnects} tries: "
                    "is `autan up` running?"
                )
            time.sleep((self.parser.retry_ms or 2000) / 1000)

    def _connection(self) -> Iterator[EventView]:
        # Here, not at the top: orchestrator.events brings Redis, which only a follow needs.
        from orchestrator.events import END_KIND

        last = self.parser.last_id
        headers = {"Last-Event-ID": last} if last else {}
        path = f"/api/tasks/{self.task_id}/events"
        with self.client.stream(path, headers=headers, follow=self.follow) as response:
            if not response.is_success:
                response.read()
                self.client.check(response, self.task_id)
            self.connected = True
            for frame in self.parser.frames(response.iter_lines()):
                event = self._event(frame)
                self.finished = self.finished or event.kind == END_KIND
                yield event

    def _event(self, frame: Frame) -> EventView:
        try:
            return EventView.model_validate_json(frame.data)
        except ValueError as exc:
            raise self.client.not_understood(exc) from exc
