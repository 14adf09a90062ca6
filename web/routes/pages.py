"""The page at `/` until the dashboard lands: where the API and its docs are."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Autan</title></head>
<body><main>
<h1>Autan is running</h1>
<p>The dashboard arrives with its own issue. Until then, use the <code>autan</code> command
or the HTTP API, described at <a href="/docs">/docs</a>.</p>
</main></body></html>
"""


@router.get("/", response_class=HTMLResponse)
def index() -> str:
    return PLACEHOLDER
