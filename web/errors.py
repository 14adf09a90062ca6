"""How errors answer over HTTP: the orchestrator's own, an unreachable part, a full disk, bad input.

Every route shares these handlers, so a database or Redis outage reads the same
everywhere: 503 with `Retry-After` and the part named, never a 500 with a traceback.
"""

from __future__ import annotations

import errno
import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from orchestrator.errors import (
    IdempotencyConflict,
    InvalidSubmission,
    OrchestratorError,
    StoreUnavailable,
    TaskEnded,
    TaskNotEnded,
    TaskNotFound,
)
from sync.errors import StorageUnavailable

log = logging.getLogger(__name__)

STATUS: dict[type[OrchestratorError], int] = {
    TaskNotFound: 404,
    IdempotencyConflict: 409,
    TaskEnded: 409,
    TaskNotEnded: 409,
    InvalidSubmission: 422,
    StoreUnavailable: 503,
}

EXCERPT = 200
"""Most characters of a refused input a 422 repeats: enough to find it, never the whole body."""

# Redis answers these when it is up but refuses writes (disk full, a replica, memory).
_REDIS_REFUSALS = ("MISCONF", "READONLY", "OOM", "LOADING")


@dataclass(frozen=True)
class Outage:
    """A part of the platform that cannot serve the request now, and why."""

    part: str
    reason: str
    status: int = 503


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(exc, psycopg.errors.DiskFull):
        return True
    code = getattr(exc, "sqlite_errorcode", 0)
    return isinstance(exc, sqlite3.Error) and code == sqlite3.SQLITE_FULL


def _database_outage(exc: DBAPIError) -> Outage | None:
    orig: BaseException = exc.orig or exc
    if _disk_full(orig):
        return Outage("database", f"the disk is full ({orig})", 507)
    if isinstance(orig, sqlite3.OperationalError | psycopg.OperationalError):
        return Outage("database", f"unreachable or busy ({_first_line(orig)})")
    if exc.connection_invalidated or isinstance(orig, psycopg.InterfaceError):
        return Outage("database", f"connection lost ({_first_line(orig)})")
    return None


def outage_of(exc: BaseException) -> Outage | None:
    """The outage `exc` reports, or None when it is a fault of ours (which stays a 500)."""
    if isinstance(exc, PoolTimeout):
        return Outage("database", "no free connection: the API is overloaded")
    if isinstance(exc, DBAPIError):
        return _database_outage(exc)
    if isinstance(exc, psycopg.OperationalError):
        return Outage("database", f"unreachable ({_first_line(exc)})")
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return Outage("redis", f"unreachable ({_first_line(exc)})")
    if isinstance(exc, ResponseError) and str(exc).startswith(_REDIS_REFUSALS):
        return Outage("redis", f"refuses writes ({_first_line(exc)})")
    if isinstance(exc, KombuOperationalError):
        return Outage("redis", f"the queue is unreachable ({_first_line(exc)})")
    if isinstance(exc, StorageUnavailable):
        return Outage("object storage", str(exc))
    if _disk_full(exc):
        return Outage("disk", f"the disk is full ({exc})", 507)
    return None


def _nul_refused(exc: BaseException) -> bool:
    """PostgreSQL refusing a NUL in text, as psycopg reports it."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return isinstance(orig, psycopg.DataError) and "NUL (0x00)" in str(orig)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:EXCERPT]


def outage_response(outage: Outage, retry_after_s: int) -> JSONResponse:
    what = "is out of space" if outage.status == 507 else "is unavailable"
    return JSONResponse(
        {
            "detail": f"{outage.part} {what}: {outage.reason}; retry in {retry_after_s} s",
            "part": outage.part,
        },
        status_code=outage.status,
        headers={"Retry-After": str(retry_after_s)},
    )


def _outage_handler(
    retry_after_s: int, noted: Callable[..., None]
) -> Callable[[Request, Exception], Any]:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        if _nul_refused(exc):
            # A schema without the Text/Line types let a NUL through: still the client's.
            detail = "a text field holds a NUL character (U+0000), which cannot be stored"
            return JSONResponse({"detail": detail}, status_code=422)
        outage = outage_of(exc)
        if outage is None:
            raise exc  # ours: ServerErrorMiddleware answers 500 and logs the traceback
        noted(outage, writing=request.method not in ("GET", "HEAD", "OPTIONS"))
        # One line, not a traceback: an outage is expected, and each request would log one.
        log.warning("%s %s: %s %s", request.method, request.url.path, outage.part, outage.reason)
        return outage_response(outage, retry_after_s)

    return handle


def _orchestrator_handler(retry_after_s: int) -> Callable[[Request, Exception], Any]:
    async def handle(_: Request, exc: Exception) -> JSONResponse:
        status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 500)
        headers = {"Retry-After": str(retry_after_s)} if status == 503 else None
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    return handle


def excerpt(value: Any) -> Any:
    """A refused input as a 422 repeats it: short, and always encodable as UTF-8."""
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    # A lone surrogate cannot be encoded: show it escaped, as the client sent it.
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= EXCERPT else text[:EXCERPT] + f"... ({len(text)} characters)"


async def validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        shown = {k: v for k, v in error.items() if k not in ("input", "ctx", "url")}
        shown["msg"] = excerpt(str(shown.get("msg", "")))
        if "input" in error:
            shown["input"] = excerpt(error["input"])
        errors.append(shown)
    return JSONResponse({"detail": errors}, status_code=422)


OUTAGE_CLASSES: tuple[type[Exception], ...] = (
    PoolTimeout,
    DBAPIError,
    psycopg.Error,
    RedisError,
    KombuOperationalError,
    OSError,
    StorageUnavailable,
)


def install(app: FastAPI, *, retry_after_s: int, noted: Callable[..., None]) -> None:
    """Install the handlers; `noted(outage, writing=...)` hears of every outage a request
    met (for /readyz)."""
    app.add_exception_handler(OrchestratorError, _orchestrator_handler(retry_after_s))
    app.add_exception_handler(RequestValidationError, validation_error)
    handler = _outage_handler(retry_after_s, noted)
    for kind in OUTAGE_CLASSES:
        app.add_exception_handler(kind, handler)
