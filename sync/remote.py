"""The Remote over HTTP: the workspace API, its failures turned into the sync vocabulary."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx

from sync.batches import encode
from sync.chunks import MAX_CHUNKS, Chunk, read_chunk, split
from sync.errors import (
    AccessDenied,
    BlobHashMismatch,
    BlobsMissing,
    ServerRefused,
    ServerSlow,
    ServerUnreachable,
    StaleVersion,
    WorkspaceNotFound,
)
from sync.hashing import CHUNK, hash_bytes, new_hasher
from sync.manifests import Entry
from sync.schemas import (
    MAX_BATCH,
    ConflictCopy,
    ConflictReport,
    ConflictView,
    ManifestView,
    TaskChanges,
    WorkspaceDetail,
    WorkspaceTask,
)

MIB = 1 << 20
JOIN_MIB_PER_SECOND = 20
"""The least rate the server is expected to join a big file's chunks at."""
BATCH_BYTES = 8 << 20
"""Most chunk content one batch carries."""
HELD_CHUNKS = 100_000
"""Most chunk hashes a remote remembers the server holding (about 12 GB of big files)."""
PATHS_PER_SECOND = 1000
"""The least rate a commit's paths are expected to be taken at: a large commit's timeout
grows by a second per this many paths (and an upload's by a second per MiB)."""


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            yield chunk


class HttpRemote:
    """Implements Remote against the Autan API with a bearer token."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.takes_chunks = True
        """False once the server answered that it has no chunk lists (an older one)."""
        self._held: set[str] = set()
        """Chunks of the lists the server took from this remote: a file sent before goes as
        its new chunks first, then its list once (not asked about, then sent again)."""
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "autan-sync"},
            timeout=httpx.Timeout(timeout, write=max(timeout, 300.0)),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def register(self, *, key: str, name: str, root: str) -> str:
        body = {"key": key, "name": name, "root": root}
        answer = self._call("POST", "/api/workspaces", json=body)
        return WorkspaceDetail.model_validate(answer).id

    def workspace(self, workspace_id: str) -> WorkspaceDetail:
        """The workspace with its head version."""
        return WorkspaceDetail.model_validate(self._call("GET", f"/api/workspaces/{workspace_id}"))

    def snapshot(self, workspace_id: str, number: int) -> str:
        """The manifest hash of a version, its blob written if it was not yet (for `autan run`)."""
        path = f"/api/workspaces/{workspace_id}/versions/{number}/snapshot"
        return str(self._call("POST", path)["manifest_hash"])

    def missing(self, hashes: list[str]) -> list[str]:
        lacking: list[str] = []
        for start in range(0, len(hashes), MAX_BATCH):
            batch = hashes[start : start + MAX_BATCH]
            lacking += self._call("POST", "/api/blobs/missing", json={"hashes": batch})["missing"]
        return lacking

    def upload(self, digest: str, path: Path) -> None:
        self._call("PUT", f"/api/blobs/{digest}", content=_chunks(path))

    def upload_many(self, blobs: list[tuple[str, Path]]) -> None:
        """Small files in one request; raises BlobHashMismatch (nothing sent) for a file that
        changed since it was hashed."""
        records = []
        for digest, path in blobs:
            data = path.read_bytes()
            if hash_bytes(data) != digest:
                raise BlobHashMismatch(f"{path} changed since it was hashed")
            records.append((digest, data))
        self._post_records(records)

    def upload_chunked(self, digest: str, path: Path) -> int | None:
        """Send a big file as the chunks the server lacks and the list of all of them; the
        bytes of content sent, or None (nothing sent) where the server takes no chunk lists
        or the file has more chunks than a list may name.
        Raises BlobHashMismatch for a file that changed since it was hashed."""
        if not self.takes_chunks:
            return None
        with open(path, "rb") as file:
            chunks = split(file, digest)
            if len(chunks) > MAX_CHUNKS:
                return None
            size = sum(chunk.size for chunk in chunks)
            body = {"size": size, "chunks": [[chunk.digest, chunk.size] for chunk in chunks]}
            timeout = self._scaled(size / MIB / JOIN_MIB_PER_SECOND)
            sent, url, lacking = 0, f"/api/blobs/{digest}/chunks", set[str]()
            if any(chunk.digest in self._held for chunk in chunks):  # an edit of a file sent
                lacking = {chunk.digest for chunk in chunks} - self._held
                sent = self._send_chunks(file.fileno(), [c for c in chunks if c.digest in lacking])
            for _ in range(3):  # again only when the store collected a chunk meanwhile
                response = self._send("PUT", url, json=body, timeout=timeout)
                if response.status_code in (404, 405):
                    self.takes_chunks = False
                    return None
                if response.is_success:
                    if len(self._held) + len(chunks) > HELD_CHUNKS:
                        self._held.clear()
                    self._held.update(chunk.digest for chunk in chunks)
                    return sent
                named = _missing(response)
                if named is None:
                    _raise(response)
                lacking = named
                sent += self._send_chunks(file.fileno(), [c for c in chunks if c.digest in lacking])
        raise BlobsMissing(sorted(lacking))  # the daemon reads the tree and tries again

    def _send_chunks(self, fd: int, chunks: list[Chunk]) -> int:
        batch: list[tuple[str, bytes]] = []
        sent = held = 0
        for chunk in {c.digest: c for c in chunks}.values():
            batch.append((chunk.digest, read_chunk(fd, chunk)))
            sent, held = sent + chunk.size, held + chunk.size
            if held >= BATCH_BYTES:
                self._post_records(batch)
                batch, held = [], 0
        if batch:
            self._post_records(batch)
        return sent

    def _post_records(self, records: list[tuple[str, bytes]]) -> None:
        size = sum(len(data) for _, data in records)
        timeout = self._scaled(size / MIB)
        self._call("POST", "/api/blobs", content=encode(records), timeout=timeout)

    def commit(
        self,
        workspace_id: str,
        *,
        parent: int,
        changes: list[Entry],
        deleted: list[str],
        inline: dict[str, bytes] | None = None,
        renamed: list[tuple[str, str]] | None = None,
    ) -> int:
        body = {
            "parent": parent,
            "changes": [e.model_dump() for e in changes],
            "deleted": deleted,
            "renamed": [{"from": source, "to": to} for source, to in renamed or []],
            "inline": {d: base64.b64encode(data).decode() for d, data in (inline or {}).items()},
        }
        size = len(changes) + len(deleted)
        timeout = self._scaled(size / PATHS_PER_SECOND)
        path = f"/api/workspaces/{workspace_id}/versions"
        answer = self._call("POST", path, json=body, timeout=timeout)
        return parent if answer is None else int(answer["number"])

    def manifest(self, workspace_id: str) -> tuple[int, dict[str, Entry]]:
        view = ManifestView.model_validate(
            self._call("GET", f"/api/workspaces/{workspace_id}/manifest")
        )
        return view.version, {e.path: e for e in view.entries}

    def manifest_at(self, workspace_id: str, version: int) -> dict[str, Entry]:
        path = f"/api/workspaces/{workspace_id}/manifest"
        view = ManifestView.model_validate(self._call("GET", path, params={"version": version}))
        return {e.path: e for e in view.entries}

    def tasks(self, workspace_id: str) -> list[WorkspaceTask]:
        found = self._call("GET", f"/api/workspaces/{workspace_id}/tasks")
        return [WorkspaceTask.model_validate(t) for t in found]

    def task_changes(self, workspace_id: str, task_id: str, after: int, wait: float) -> TaskChanges:
        path = f"/api/workspaces/{workspace_id}/tasks/{task_id}/changes"
        params = {"after": after, "wait": wait}
        timeout = httpx.Timeout(wait + 30.0)
        return TaskChanges.model_validate(self._call("GET", path, params=params, timeout=timeout))

    def download(self, workspace_id: str, task_id: str, digest: str, dest: Path) -> None:
        """Blob `digest`, which the task named, into `dest`: streamed, checked against its
        hash, renamed into place."""
        tmp = dest.with_name(f".{dest.name}.part")
        path = f"/api/workspaces/{workspace_id}/tasks/{task_id}/blobs/{digest}"
        try:
            with self._http.stream("GET", path) as response:
                if not response.is_success:
                    response.read()
                    _raise(response)
                hasher = new_hasher()
                with open(tmp, "wb") as file:
                    for chunk in response.iter_bytes(CHUNK):
                        hasher.update(chunk)
                        file.write(chunk)
            if hasher.hexdigest() != digest:
                raise BlobHashMismatch(f"blob {digest} came back as {hasher.hexdigest()}")
            os.replace(tmp, dest)
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"cannot reach the Autan API at {self.url} ({exc})") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def report_conflicts(
        self, workspace_id: str, task_id: str, conflicts: list[ConflictCopy]
    ) -> None:
        body = ConflictReport(task_id=task_id, conflicts=conflicts).model_dump()
        self._call("POST", f"/api/workspaces/{workspace_id}/conflicts", json=body)

    def conflicts(self, workspace_id: str) -> list[ConflictView]:
        """The workspace's open conflicts, in the checkout and in sandboxes."""
        found = self._call("GET", f"/api/workspaces/{workspace_id}/conflicts")
        return [ConflictView.model_validate(c) for c in found]

    def _scaled(self, seconds: float) -> httpx.Timeout:
        """The usual timeout, plus the time the server may need for a request this large."""
        read = self.timeout + seconds
        return httpx.Timeout(read, write=max(read, 300.0))

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        if response.status_code == 204:
            return None
        if response.is_success:
            return response.json()
        _raise(response)

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer, whatever its status; a failure to get one in the sync vocabulary."""
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.ReadTimeout as exc:
            timeout = kwargs.get("timeout")
            waited = timeout.read if isinstance(timeout, httpx.Timeout) else self.timeout
            raise ServerSlow(
                f"the Autan API at {self.url} took the request ({method} {path}) but did not "
                f"answer within {waited:.1f} s; it may be busy or still applying it: the "
                "change waits locally and is sent again against the server's head"
            ) from exc
        except httpx.TransportError as exc:
            raise ServerUnreachable(
                f"cannot reach the Autan API at {self.url} ({type(exc).__name__}: {exc}); "
                "changes wait locally and are sent when it answers again"
            ) from exc


def _missing(response: httpx.Response) -> set[str] | None:
    """The blobs a 409 answer names as missing; None for any other answer."""
    if response.status_code != 409:
        return None
    detail = response.json().get("detail")
    return set(detail["missing"]) if isinstance(detail, dict) and "missing" in detail else None


def _raise(response: httpx.Response) -> NoReturn:
    status = response.status_code
    try:
        detail: Any = response.json().get("detail")
    except ValueError:
        detail = response.text[:300]
    message = detail.get("message") if isinstance(detail, dict) else str(detail)
    if status == 409 and isinstance(detail, dict) and "missing" in detail:
        raise BlobsMissing(list(detail["missing"]))
    if status == 409 and isinstance(detail, dict) and "head" in detail:
        raise StaleVersion(-1, int(detail["head"]))
    if status == 422 and "hashes to" in str(message):
        raise BlobHashMismatch(str(message))
    if status in (401, 403):
        raise AccessDenied(
            f"the Autan API refused the token ({status}: {message}): set AUTAN_TOKEN to a "
            "valid token (`autan token create`) and start `autan sync` again"
        )
    if status == 404:
        raise WorkspaceNotFound(str(message))
    if status >= 500 or status == 429:  # a rate limit passes like an outage: wait, retry
        raise ServerUnreachable(f"the Autan API answered {status}: {message}; will retry")
    raise ServerRefused(f"the Autan API refused the request ({status}): {message}")
