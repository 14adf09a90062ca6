"""Workspaces over the API: register, ask which blobs are missing, upload, commit, read back."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from orchestrator import workspace_commits as commits
from orchestrator import workspace_store as store
from orchestrator.models import utcnow
from orchestrator.workspace_feed import announce
from sync.base import BlobSink, Storage
from sync.batches import BadBatch, BatchParser
from sync.chunks import ChunkList, join
from sync.errors import (
    BlobHashMismatch,
    BlobsMissing,
    ChunkListInvalid,
    ObjectMissing,
    StaleVersion,
    StorageUnavailable,
    SyncError,
    UnsafePath,
    WorkspaceNotFound,
)
from sync.hashing import is_digest
from sync.schemas import (
    CommitRequest,
    ManifestView,
    MissingRequest,
    MissingResponse,
    VersionView,
    WorkspaceDetail,
    WorkspaceRegister,
    WorkspaceView,
)
from web.deps import RoomToWrite, ServicesDep, SessionDep, WorkspaceOwner, WorkspaceUser

router = APIRouter(prefix="/api", tags=["workspaces"])


SLAB = 1 << 20
"""Bytes of an upload handed to the store at once (off the event loop): all it buffers."""


def get_blobs(services: ServicesDep) -> Storage:
    return services.storage


BlobsDep = Annotated[Storage, Depends(get_blobs)]


def _http(exc: SyncError) -> HTTPException:
    if isinstance(exc, StorageUnavailable):
        raise exc  # the outage handler answers it: 503 with Retry-After, the part named
    if isinstance(exc, WorkspaceNotFound | ObjectMissing):
        return HTTPException(404, str(exc))
    if isinstance(exc, BlobsMissing):
        return HTTPException(409, {"message": str(exc), "missing": exc.missing})
    if isinstance(exc, StaleVersion):
        return HTTPException(409, {"message": str(exc), "head": exc.head})
    if isinstance(exc, BlobHashMismatch | UnsafePath | ChunkListInvalid):
        return HTTPException(422, str(exc))
    return HTTPException(400, str(exc))


def _detail(session: Any, workspace: Any) -> WorkspaceDetail:
    head = store.version(session, workspace_id=workspace.id, number=workspace.head)
    return WorkspaceDetail(
        **WorkspaceView.model_validate(workspace).model_dump(),
        version=VersionView.model_validate(head) if head else None,
    )


@router.post("/workspaces", status_code=status.HTTP_201_CREATED, response_model=WorkspaceDetail)
def register_workspace(
    body: WorkspaceRegister, session: SessionDep, caller: WorkspaceUser, response: Response
) -> WorkspaceDetail:
    """Register a checkout; registering the same key again returns the same workspace (200),
    whichever token of the user asks. Another user's checkout of the same key is theirs: this
    makes the caller's own."""
    workspace, created = store.register(
        session, key=body.key, name=body.name, root=body.root, caller=caller, now=utcnow()
    )
    session.commit()
    if not created:
        response.status_code = status.HTTP_200_OK
    return _detail(session, workspace)


@router.get("/workspaces", response_model=list[WorkspaceDetail])
def list_workspaces(session: SessionDep, caller: WorkspaceUser) -> list[WorkspaceDetail]:
    """The workspaces the caller reaches: its user's and its team's (an admin's: all)."""
    return [_detail(session, w) for w in store.list_all(session, caller=caller)]


@router.get("/workspaces/{workspace_id}", response_model=WorkspaceDetail)
def get_workspace(workspace_id: str, session: SessionDep, _: WorkspaceOwner) -> WorkspaceDetail:
    try:
        return _detail(session, store.get(session, workspace_id=workspace_id))
    except SyncError as exc:
        raise _http(exc) from exc


@router.post("/blobs/missing", response_model=MissingResponse)
def missing_blobs(body: MissingRequest, blobs: BlobsDep, _: WorkspaceUser) -> MissingResponse:
    """Which of these hashes the server lacks: the daemon uploads only those."""
    return MissingResponse(missing=blobs.missing(body.hashes))


@router.put("/blobs/{digest}", dependencies=[RoomToWrite])
async def upload_blob(
    digest: str, request: Request, blobs: BlobsDep, _: WorkspaceUser, response: Response
) -> dict[str, Any]:
    """Store the body (streamed) as blob `digest`: 201 new, 200 already held, 422 wrong hash.

    The body streams to the store a slab at a time (a temporary file, or a multipart upload);
    only content that hashes to `digest` becomes the blob, so a refused or cut-off upload
    leaves nothing behind.
    """
    if not is_digest(digest):
        raise HTTPException(422, f"{digest!r} is not a blob hash (64 lowercase hex digits)")
    writer = await run_in_threadpool(blobs.writer, digest)
    try:
        slab = bytearray()
        async for chunk in request.stream():
            slab += chunk
            if len(slab) >= SLAB:
                await run_in_threadpool(writer.write, bytes(slab))
                slab.clear()
        await run_in_threadpool(writer.write, bytes(slab))
        created = await run_in_threadpool(writer.commit)
    except BlobHashMismatch as exc:
        raise _http(exc) from exc
    except ClientDisconnect:
        raise HTTPException(400, "the upload was cut off; nothing was stored") from None
    finally:
        await run_in_threadpool(writer.abort)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return {"hash": digest, "size": writer.size, "created": created}


@router.put("/blobs/{digest}/chunks", dependencies=[RoomToWrite])
def join_chunks(
    digest: str, body: ChunkList, blobs: BlobsDep, _: WorkspaceUser, response: Response
) -> dict[str, Any]:
    """Store blob `digest` (a big file) as these chunks joined, each a blob held: 201 new,
    200 already held, 409 naming the chunks to upload first, 422 for a list that does not
    add up or whose content does not hash to `digest` (nothing is stored then)."""
    if not is_digest(digest):
        raise HTTPException(422, f"{digest!r} is not a blob hash (64 lowercase hex digits)")
    try:
        created = join(blobs, digest, body)
    except SyncError as exc:
        raise _http(exc) from exc
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return {"hash": digest, "size": body.size, "created": created}


@router.post("/blobs", status_code=status.HTTP_201_CREATED, dependencies=[RoomToWrite])
async def upload_batch(request: Request, blobs: BlobsDep, _: WorkspaceUser) -> dict[str, Any]:
    """Many small blobs in one body (records `<hash> <size>\n<content>`, each at most
    1 MiB): all stored, or none when one is malformed or hashes to another name (422)."""
    parser = BatchParser()
    writers: list[BlobSink] = []
    try:
        async for chunk in request.stream():
            for kind, value in parser.feed(chunk):
                if kind == "start":
                    writers.append(blobs.writer(str(value)))
                elif kind == "data":
                    writers[-1].write(bytes(value))  # type: ignore[arg-type]
        parser.finish()
        created = await run_in_threadpool(blobs.commit_many, writers)
    except (BadBatch, BlobHashMismatch) as exc:
        raise HTTPException(422, str(exc)) from exc
    except ClientDisconnect:
        raise HTTPException(400, "the upload was cut off; nothing was stored") from None
    finally:
        for writer in writers:
            await run_in_threadpool(writer.abort)
    return {"blobs": len(writers), "created": created, "bytes": parser.total}


@router.post(
    "/workspaces/{workspace_id}/versions",
    status_code=status.HTTP_201_CREATED,
    response_model=VersionView | None,
)
def commit_version(
    workspace_id: str,
    body: CommitRequest,
    session: SessionDep,
    blobs: BlobsDep,
    services: ServicesDep,
    _: WorkspaceOwner,
    response: Response,
) -> VersionView | None:
    """Make the next version from `parent` and a change; 409 when stale or blobs are missing.
    Content sent inline (checked against its hash when the body was read) is stored first."""
    for data in body.inline.values():
        blobs.put_bytes(data)
    try:
        row = commits.commit(
            session, workspace_id=workspace_id, parent=body.parent, changes=body.changes,
            deleted=body.deleted, blobs=blobs, now=utcnow(),
            renamed=[(r.source, r.to) for r in body.renamed],
        )  # fmt: skip
    except SyncError as exc:
        session.rollback()
        raise _http(exc) from exc
    if row is None:
        response.status_code = status.HTTP_200_OK
        return None
    session.commit()
    announce(services.redis, workspace_id, row.number)
    return VersionView.model_validate(row)


@router.post("/workspaces/{workspace_id}/versions/{number}/snapshot", response_model=VersionView)
def snapshot_version(
    workspace_id: str, number: int, session: SessionDep, blobs: BlobsDep, _: WorkspaceOwner
) -> VersionView:
    """Write the version's canonical manifest as a blob (once): its hash names the snapshot a
    task starts from (`repo` `workspace:<id>@<number>`, `ref` the hash)."""
    try:
        row = store.snapshot(session, workspace_id=workspace_id, number=number, blobs=blobs)
    except SyncError as exc:
        raise _http(exc) from exc
    session.commit()
    return VersionView.model_validate(row)


@router.get("/workspaces/{workspace_id}/manifest", response_model=ManifestView)
def get_manifest(
    workspace_id: str, session: SessionDep, _: WorkspaceOwner, version: int | None = None
) -> ManifestView:
    """The tree of a version (the head by default)."""
    try:
        workspace = store.get(session, workspace_id=workspace_id)
    except SyncError as exc:
        raise _http(exc) from exc
    number = workspace.head if version is None else version
    row = store.version(session, workspace_id=workspace_id, number=number)
    if number and row is None:
        raise HTTPException(404, f"workspace {workspace_id} has no version {number}")
    entries = store.entries_at(session, workspace_id=workspace_id, number=number)
    return ManifestView(
        version=number,
        manifest_hash=row.manifest_hash if row else None,
        entries=sorted(entries.values(), key=lambda e: e.path),
    )
