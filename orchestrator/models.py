"""The store's tables: tasks, attempts, events, origins, results, reports, baselines, users,
tokens and the audit log."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a bigint.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON}


class Origin(Base):
    """Where a task came from and where its report goes."""

    __tablename__ = "origins"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_state_created", "state", "created_at"),
        Index("ix_tasks_repo_created", "repo", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    repo: Mapped[str] = mapped_column(String(1024))
    ref: Mapped[str | None] = mapped_column(String(255))
    commit: Mapped[str | None] = mapped_column(String(64))
    """The full hash `ref` named when the first attempt started; every attempt works on it."""
    instruction: Mapped[str] = mapped_column(Text)
    attempts_requested: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    reason: Mapped[str | None] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    origin_id: Mapped[str] = mapped_column(ForeignKey("origins.id"))
    created_by: Mapped[str | None] = mapped_column(String(32), index=True)
    """The user who made the task (a person, or a connector's service user)."""
    # No foreign key: results hang off attempts, which hang off tasks; a cycle of
    # constraints would need ALTERs that SQLite cannot do.
    result_id: Mapped[int | None] = mapped_column(BigId)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    event_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    reported_at: Mapped[datetime | None] = mapped_column()
    retry_of: Mapped[str | None] = mapped_column(String(32), index=True)
    """The task this one runs again (the dashboard's retry)."""
    continued_from_task: Mapped[str | None] = mapped_column(String(32), index=True)
    continued_from_attempt: Mapped[int | None] = mapped_column(Integer)
    """The finished task and attempt number this one continues from."""
    start_patch: Mapped[str | None] = mapped_column(Text)
    """A continuation's starting point: the earlier attempt's diff, applied before the agent
    starts; the attempt's own diff is against the base commit, so it holds this patch too."""
    conversation: Mapped[str | None] = mapped_column(Text)
    """A continuation's earlier instruction and conversation, given to the agent first."""

    origin: Mapped[Origin] = relationship(lazy="joined")
    attempts: Mapped[list[Attempt]] = relationship(
        back_populates="task", order_by="Attempt.number", lazy="selectin"
    )
    result: Mapped[Result | None] = relationship(
        primaryjoin="foreign(Task.result_id) == Result.id", lazy="joined", viewonly=True
    )
    report: Mapped[Report | None] = relationship(lazy="selectin", viewonly=True)

    @property
    def continued_from(self) -> dict[str, Any] | None:
        if self.continued_from_task is None:
            return None
        return {"task": self.continued_from_task, "attempt": self.continued_from_attempt}


class Attempt(Base):
    __tablename__ = "attempts"
    __table_args__ = (Index("ix_attempts_state_heartbeat", "state", "heartbeat_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    reason: Mapped[str | None] = mapped_column(Text)
    commit: Mapped[str | None] = mapped_column(String(64))
    """The full hash of the base this attempt's sandbox was made over."""
    runs: Mapped[int] = mapped_column(Integer, default=0)
    lease: Mapped[str | None] = mapped_column(String(32))
    worker: Mapped[str | None] = mapped_column(String(255))
    enqueued_at: Mapped[datetime | None] = mapped_column()
    started_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    duration_s: Mapped[float | None] = mapped_column(Float)

    task: Mapped[Task] = relationship(back_populates="attempts")
    result: Mapped[Result | None] = relationship(back_populates="attempt", lazy="selectin")


class Result(Base):
    """What one attempt produced; the task points at the one it kept."""

    __tablename__ = "results"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    attempt_id: Mapped[str] = mapped_column(
        ForeignKey("attempts.id", ondelete="CASCADE"), unique=True
    )
    summary: Mapped[str] = mapped_column(Text, default="")
    # Diffs can be large: read only when a task is shown whole, never for lists.
    diff: Mapped[str] = mapped_column(Text, default="", deferred=True)
    diff_lines: Mapped[int] = mapped_column(Integer, default=0)
    verified: Mapped[bool | None] = mapped_column(Boolean)
    tests_outcome: Mapped[str | None] = mapped_column(Text)
    tests: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """The verdict against the baseline: tests fixed, broken, vanished, flaky; harness files."""
    tokens_in: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens_out: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    partial: Mapped[bool] = mapped_column(Boolean, default=False)
    """The attempt ended early (a budget, a cancel, a timeout, the model): its work so far."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    attempt: Mapped[Attempt] = relationship(back_populates="result")


class Baseline(Base):
    """The test command's outcomes on a base commit, shared by every attempt and worker host."""

    __tablename__ = "baselines"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    """sha256 of the commit, the test command and the set-up commands."""
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Event(Base):
    """One step of an attempt (or of the task), in the order it happened."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("task_id", "seq", name="uq_events_task_seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    """Position in the task's stream: dense, and committed in order (see events.append)."""
    attempt_id: Mapped[str | None] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    """A person or a service (a connector, a bot): who tasks and tokens belong to."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    """How a single sign-on finds the person again; None for services."""
    role: Mapped[str] = mapped_column(String(16))
    """admin, member or viewer (see orchestrator.access)."""
    team: Mapped[str | None] = mapped_column(String(255))
    service: Mapped[bool] = mapped_column(Boolean, default=False)
    """A connector or a bot rather than a person."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A bearer token for the API, belonging to a user; only its SHA-256 is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    """What the token may touch, within what its user's role allows."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship(lazy="joined")


class Workspace(Base):
    """The server's mirror of a developer's checkout, kept current by the sync daemon."""

    __tablename__ = "workspaces"
    __table_args__ = (UniqueConstraint("created_by", "key", name="uq_workspaces_owner_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(255))
    """The daemon's name for the checkout (host and path): registering it again finds it."""
    name: Mapped[str] = mapped_column(String(255))
    root: Mapped[str] = mapped_column(String(4096))
    created_by: Mapped[str] = mapped_column(String(32))
    """The token that registered it."""
    owner_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True)
    """The user that token belongs to: the workspace is theirs, whichever of their tokens asks
    (None only for one whose token was gone when owners were first recorded: admins' alone)."""
    head: Mapped[int] = mapped_column(Integer, default=0)
    """The newest version; 0 until the first manifest is committed."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkspaceVersion(Base):
    """One committed manifest of a workspace; its canonical JSON is a blob too."""

    __tablename__ = "workspace_versions"
    __table_args__ = (UniqueConstraint("workspace_id", "number", name="uq_workspace_versions"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    manifest_hash: Mapped[str | None] = mapped_column(String(64))
    """The canonical manifest's blob: written when a task first starts from the version."""
    files: Mapped[int] = mapped_column(Integer, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    changed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


PathText = String(1024).with_variant(String(1024, collation="C"), "postgresql")
"""A workspace path, ordered byte by byte on every store (SQLite's BINARY, PostgreSQL's "C"),
so the rows beneath a folder are one range of the path index (`workspace_store.beneath`)."""


class WorkspaceEntry(Base):
    """One path of a workspace, live from version `since` until (not including) `until`.

    A commit touches only the rows of the paths it changes, so a version costs rows in
    proportion to its change, and every older version can still be read back.
    """

    __tablename__ = "workspace_entries"
    __table_args__ = (
        Index("ix_workspace_entries_path", "workspace_id", "path", "until"),
        Index("ix_workspace_entries_live", "workspace_id", "until"),
        Index("ix_workspace_entries_since", "workspace_id", "since"),
        Index("ix_workspace_entries_kind", "workspace_id", "kind", "until"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(PathText)
    kind: Mapped[str] = mapped_column(String(8))
    hash: Mapped[str | None] = mapped_column(String(64))
    mode: Mapped[int] = mapped_column(Integer)
    target: Mapped[str | None] = mapped_column(String(4096))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    since: Mapped[int] = mapped_column(Integer)
    until: Mapped[int | None] = mapped_column(Integer)


class WorkspaceConflict(Base):
    """Both sides changed a path differently while a task ran: both versions are kept, and
    this records where. `side` is where it was met: `local` (the agent's version beside the
    developer's as `copy`) or `sandbox` (the developer's change left out of the sandbox)."""

    __tablename__ = "workspace_conflicts"
    __table_args__ = (Index("ix_workspace_conflicts_open", "workspace_id", "resolved_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    task_id: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(String(1024))
    side: Mapped[str] = mapped_column(String(16))
    copy_path: Mapped[str | None] = mapped_column(String(1100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column()


class Report(Base):
    """A task's report back to its origin: one row per task, so one report job runs at a
    time (`lease_until`, on the database's clock) and retries wait for `next_at`."""

    __tablename__ = "reports"
    __table_args__ = (Index("ix_reports_state_next", "state", "next_at"),)

    task_id: Mapped[str] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(16), default="pending")
    tries: Mapped[int] = mapped_column(Integer, default=0)
    lease: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column()
    next_at: Mapped[datetime | None] = mapped_column()
    lease_until: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()

    steps: Mapped[list[ReportStep]] = relationship(
        order_by="ReportStep.seq", lazy="selectin", viewonly=True
    )


class ReportStep(Base):
    """One side effect of a report (comment, pull request, transition, ...), done or failed
    for good, so a retry does only what is left."""

    __tablename__ = "report_steps"

    task_id: Mapped[str] = mapped_column(
        ForeignKey("reports.task_id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    """The order the side effects ended in, 1 first."""
    state: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    """What the step left (a pull request's address) or, failed, the service's reason."""
    at: Mapped[datetime] = mapped_column()


class WorkerPresence(Base):
    """A worker process as it last reported itself, busy or idle (times: the database's)."""

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    """`host:pid` of its main process: the `worker` of the attempts it runs."""
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    concurrency: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column()
    heartbeat_at: Mapped[datetime] = mapped_column()


class AuditEntry(Base):
    """One change a person or a service made, or tried to: appended, never edited; only the
    retention setting deletes old entries."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_actor_at", "actor", "at"),
        Index("ix_audit_log_action_at", "action", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column()
    actor: Mapped[str] = mapped_column(String(255))
    """The user's name (kept as it was), or `anonymous` for a caller not known yet."""
    token: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    """What: `task.submit`, `task.cancel`, `token.create`, `signin`, `webhook`, ..."""
    target: Mapped[str | None] = mapped_column(String(255))
    """What it was done to: a task's id, a token's, a connector's name."""
    address: Mapped[str | None] = mapped_column(String(64))
    """Where from: the client's address as the API saw it."""
    outcome: Mapped[str] = mapped_column(String(16))
    """ok, refused (401, 403), rejected (another 4xx) or failed (5xx)."""
    status: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)
