"""Errors as a person meets them: a page for the dashboard, JSON for the API and the hooks.

Every error response carries the security headers; a 500 too, which Starlette answers
outside the middleware that adds them to the rest.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from orchestrator.errors import TaskNotFound
from web.errors import validation_error
from web.security import HEADERS
from web.templating import render

MACHINE_PATHS = ("/api/", "/hooks/", "/livez", "/readyz", "/healthz", "/metrics", "/openapi.json")
"""Paths that programs call: their errors stay JSON."""

TITLES = {
    400: "Bad request",
    401: "Sign in first",
    403: "Not allowed",
    404: "Not found",
    405: "Not here",
    413: "Too large",
    415: "Not a form",
    422: "Not understood",
    429: "Too many tries",
}


def for_people(request: Request) -> bool:
    return not request.url.path.startswith(MACHINE_PATHS)


def error_page(request: Request, status: int, detail: str, headers: dict[str, str]) -> Response:
    if status == 405:
        detail = f"{request.method} is not how {request.url.path} is used."
    response = render(
        request, "error.html", status, title=TITLES.get(status, "Error"), detail=detail
    )
    response.headers.update(headers)
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if not for_people(request) or 300 <= exc.status_code < 400:
        return await http_exception_handler(request, exc)
    return error_page(request, exc.status_code, str(exc.detail), dict(exc.headers or {}))


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if not for_people(request):
        return await validation_error(request, exc)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()
    )
    return error_page(request, 422, problems, {})


async def _not_found(request: Request, exc: Exception) -> Response:
    if for_people(request):
        return error_page(request, 404, str(exc), {})
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _internal(request: Request, exc: Exception) -> Response:
    # ServerErrorMiddleware logs the traceback and answers with what this returns.
    detail = "Something went wrong on the server; it is logged. Try again, or tell an admin."
    if for_people(request):
        return error_page(request, 500, detail, {})
    return JSONResponse({"detail": detail}, status_code=500, headers=HEADERS)


def install(app: FastAPI) -> None:
    """Install after web.errors.install: these take over its validation handler."""
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(TaskNotFound, _not_found)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(Exception, _internal)
