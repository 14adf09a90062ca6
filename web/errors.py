"""How the orchestrator's errors answer over HTTP: one map, one handler."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from orchestrator.errors import (
    IdempotencyConflict,
    InvalidSubmission,
    OrchestratorError,
    StoreUnavailable,
    TaskNotFound,
)

STATUS: dict[type[OrchestratorError], int] = {
    TaskNotFound: 404,
    IdempotencyConflict: 409,
    InvalidSubmission: 422,
    StoreUnavailable: 503,
}


async def _orchestrator_error(_: Request, exc: Exception) -> JSONResponse:
    status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 500)
    return JSONResponse({"detail": str(exc)}, status_code=status)


def install(app: FastAPI) -> None:
    app.add_exception_handler(OrchestratorError, _orchestrator_error)
