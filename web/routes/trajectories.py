"""An attempt's trajectory (its whole conversation with the model), from the shared store."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from orchestrator import trajectories
from sync.errors import ObjectMissing
from web.deps import LifecycleDep, Reader, ServicesDep

router = APIRouter(prefix="/api/tasks", tags=["tasks"])


@router.get("/{task_id}/attempts/{number}/trajectory")
def get_trajectory(
    task_id: str,
    number: Annotated[int, PathParam(ge=1)],
    lifecycle: LifecycleDep,
    services: ServicesDep,
    _: Reader,
) -> StreamingResponse:
    """The JSON the agent saved when attempt `number` ended, whichever worker ran it."""
    task = lifecycle.get(task_id)
    attempt = next((a for a in task.attempts if a.number == number), None)
    if attempt is None:
        raise HTTPException(404, f"task {task_id} has no attempt {number}")
    try:
        chunks = services.storage.open_file(trajectories.key(attempt.id))
    except ObjectMissing:
        raise HTTPException(
            404,
            f"attempt {number} of task {task_id} has no trajectory ({attempt.state}): it is "
            "stored when the attempt ends",
        ) from None
    return StreamingResponse(chunks, media_type="application/json")
