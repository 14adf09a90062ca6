"""The API's description, only when AUTAN_API_DOCS=true, and then only to the signed-in.

/docs is a page drawn here from the OpenAPI schema, with nothing but this server's own
stylesheet: FastAPI's Swagger UI and ReDoc load their code and fonts from public CDNs.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from web.deps import CurrentCaller, ViewerDep
from web.templating import render

router = APIRouter(include_in_schema=False)

METHODS = ("get", "post", "put", "patch", "delete")


@router.get("/openapi.json")
def openapi(request: Request, _: CurrentCaller) -> Response:
    return JSONResponse(request.app.openapi())


def _operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for path, item in schema.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                op = item[method]
                params = [p["name"] for p in op.get("parameters", []) if p.get("in") == "query"]
                found.append({
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "query": params,
                })  # fmt: skip
    return found


@router.get("/docs")
def docs(request: Request, viewer: ViewerDep) -> Response:
    return render(
        request, "api_docs.html", viewer=viewer, operations=_operations(request.app.openapi())
    )


@router.get("/redoc")
def redoc(_: ViewerDep) -> Response:
    return RedirectResponse("/docs", status_code=303)
