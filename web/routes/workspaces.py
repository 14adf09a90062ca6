"""The Workspaces page: what it will show once the sync daemon exists."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from web.deps import ViewerDep
from web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/workspaces")
def workspaces_page(request: Request, viewer: ViewerDep) -> Response:
    return render(request, "workspaces.html", viewer=viewer)
