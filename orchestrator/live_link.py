"""An attempt started from a workspace, kept live: the developer's saves go into its sandbox,
the agent's edits come out as `sync.changed` events (their content in the blob store)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from orchestrator.base import AttemptContext
from orchestrator.workspace_feed import WorkspaceFeed
from sandbox.base import Sandbox
from sandbox.diff import Budget
from sync import snapshots
from sync.base import LocalBlobs
from sync.live import ChangeSet, LiveSync, SandboxConflict, SandboxLink
from sync.manifests import row

log = logging.getLogger(__name__)

CHANGED = "sync.changed"
CONFLICT = "sync.conflict"
FROM_CHECKOUT = "sync.from_checkout"


class LiveAttempt:
    """The link's life around one attempt: `start`, `poke` on each file change, `stop`."""

    def __init__(
        self, ctx: AttemptContext, sandbox: Sandbox, blobs: LocalBlobs, feed: WorkspaceFeed
    ) -> None:
        self.ctx = ctx
        self.feed = feed
        self.workspace_id, version = snapshots.workspace_of(ctx.task.repo)
        base = snapshots.manifest(blobs, ctx.task.ref or "")
        self.link = SandboxLink(sandbox, blobs, base, version)
        self.live = LiveSync(
            self.link,
            workspace_id=self.workspace_id,
            head=lambda: feed.head(self.workspace_id),
            changes=lambda after, upto: feed.changes(self.workspace_id, after, upto),
            send=self._send,
            conflicts=self._conflicts,
        )
        self.conflicts: dict[str, SandboxConflict] = {}
        self._stopped = False
        self._unlisten = feed.listen(self.workspace_id, self.live.announce)
        self.live.announce(feed.head(self.workspace_id))
        self.live.start()

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        """The attempt's `emit`, with a poke when the agent has changed files."""
        self.ctx.emit(kind, data)
        if kind == "file.change":
            self.live.poke()

    def _send(self, out: ChangeSet) -> None:
        self.ctx.emit(
            CHANGED,
            {
                "attempt": self.ctx.number,
                "workspace": self.workspace_id,
                "version": self.link.version,
                "changes": [row(e) for e in out.changes],
                "bases": {p: row(e) if e else None for p, e in out.bases.items()},
                "deleted": out.deleted,
                "refused": out.refused,
            },
        )  # fmt: skip

    def _conflicts(self, found: list[SandboxConflict]) -> None:
        for conflict in found:
            self.conflicts[conflict.path] = conflict
            self.ctx.emit(
                CONFLICT,
                {"attempt": self.ctx.number, "path": conflict.path, "side": "sandbox",
                 "copy": conflict.copy,
                 "message": "changed locally and by the agent: the agent's version stays in the "
                            + (f"sandbox, yours is kept beside it as {conflict.copy}"
                               if conflict.copy else "sandbox, your deletion is not taken")},
            )  # fmt: skip
        try:
            self.feed.record(self.workspace_id, self.ctx.task.id, list(self.conflicts.values()))
        except SQLAlchemyError as exc:  # best effort: the events hold the conflicts too
            log.warning("could not record conflicts of task %s: %s", self.ctx.task.id, exc)

    def own_diff(self, whole: str, budget: Budget) -> str:
        """The agent's part of the sandbox's diff `whole`: the developer's saves that flowed in
        are emitted apart (`sync.from_checkout`), and the agent's edits are shown against them."""
        if not self.link.from_checkout:
            return whole
        split = self.link.split(budget)
        self.ctx.emit(
            FROM_CHECKOUT,
            {"attempt": self.ctx.number, "workspace": self.workspace_id, "paths": split.paths,
             "diff": split.checkout},
        )  # fmt: skip
        return split.agent

    def stop(self) -> None:
        """Stop following local changes; the agent's last edits are sent before this returns.
        Stopping again does nothing."""
        if self._stopped:
            return
        self._stopped = True
        self._unlisten()
        self.live.stop()
