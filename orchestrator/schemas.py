"""What goes into the orchestrator (a task spec) and what comes out (task, attempt, event views)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, computed_field

from orchestrator.states import AttemptState, TaskState
from sync.text import Line, Text

ORIGIN_KINDS = ("cli", "web", "api", "github", "slack", "jira", "sentry")


class OriginSpec(BaseModel):
    """Where a task came from and where to answer."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["cli", "web", "api", "github", "slack", "jira", "sentry"] = "api"
    external_id: Line | None = Field(default=None, max_length=255)
    data: dict[str, Any] = Field(default_factory=dict)


class TaskRequest(BaseModel):
    """What someone asks for: repository, base, instruction and number of attempts."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    repo: Line = Field(min_length=1, max_length=1024)
    instruction: Text = Field(min_length=1, max_length=100_000)
    ref: Line | None = Field(default=None, min_length=1, max_length=255)
    attempts: int | None = Field(default=None, ge=1)
    idempotency_key: Line | None = Field(default=None, min_length=1, max_length=255)


MESSAGE_CHARS = 8000
"""The longest message a person may send a running agent."""


class MessageRequest(BaseModel):
    """A person's message to a running task's agents."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: Text = Field(min_length=1, max_length=MESSAGE_CHARS)
    attempt: int | None = Field(default=None, ge=1)
    """Only this attempt (its number); None: every live attempt of the task."""


class ContinueRequest(BaseModel):
    """A new instruction for a finished task: a new task from one of its attempts' diff."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    instruction: Text = Field(min_length=1, max_length=100_000)
    attempt: int | None = Field(default=None, ge=1)
    """Start from this attempt (its number); None: the kept attempt, else the best one left."""


class ContinuedFrom(BaseModel):
    """The finished task and attempt a continuation started from."""

    task: str
    attempt: int


class TaskSpec(TaskRequest):
    """A request for work with where it came from: what the orchestrator stores."""

    origin: OriginSpec = Field(default_factory=OriginSpec)


class ResultView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempt_id: str
    summary: str
    diff: str
    diff_lines: int
    verified: bool | None
    tests_outcome: str | None
    tests: dict[str, Any] | None = None
    """The verdict against the baseline: tests fixed, broken, vanished, flaky; harness files."""
    tokens_in: int
    tokens_out: int
    cost_usd: float
    partial: bool = False
    """The attempt ended early (a budget, a cancel, a timeout, the model): its work so far."""


class AttemptView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    number: int
    state: AttemptState
    reason: str | None
    commit: str | None = None
    """The full hash of the base the attempt worked on."""
    runs: int
    worker: str | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    result: ResultView | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def verdict(self) -> Literal["verified", "unverified", "failed"] | None:
        """What the attempt's work is worth: `verified` against the baseline, `unverified`
        (it finished but its tests do not show a fix), `failed` (it ended early); None while
        it runs."""
        if self.state == AttemptState.SUCCEEDED and self.result is not None:
            return "verified" if self.result.verified else "unverified"
        return "failed" if self.state.terminal else None


class OriginView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str
    external_id: str | None
    data: dict[str, Any]


class ReportStepView(BaseModel):
    """One side effect of a report: `done` (with what it left) or `failed` (with why)."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    state: Literal["done", "failed"]
    detail: str
    at: datetime


class ReportView(BaseModel):
    """A task's report back to its origin.

    `pending` or `retrying` (a service failed in a way that may pass; `next_at` says when),
    then `reported` (every side effect done) or `incomplete` (one could not be done, or the
    deadline passed: `last_error` and the steps say which and why)."""

    model_config = ConfigDict(from_attributes=True)

    state: Literal["pending", "retrying", "reported", "incomplete"]
    tries: int
    last_error: str | None
    started_at: datetime
    next_at: datetime | None
    ended_at: datetime | None
    steps: list[ReportStepView]


class TaskView(BaseModel):
    """A task as the API, the CLI and the reporters see it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    state: TaskState
    reason: str | None
    repo: str
    ref: str | None
    commit: str | None = None
    """The full hash `ref` named when the first attempt started; all attempts work on it."""
    instruction: str
    attempts_requested: int
    idempotency_key: str | None
    origin: OriginView
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: list[AttemptView]
    result: ResultView | None
    report: ReportView | None = None
    """None until the task has ended and its report has started."""
    retry_of: str | None = None
    """The task this one runs again."""
    retried_as: list[str] = Field(default_factory=list)
    continued_from: ContinuedFrom | None = None
    continued_as: list[str] = Field(default_factory=list)
    """The tasks that run this one again, or continue it, oldest first."""
    start_patch: str | None = None
    """A continuation's starting patch (the earlier attempt's diff), applied before the agent
    starts; its attempts' diffs are against the base commit, so they hold this patch too."""
    conversation: str | None = None
    """A continuation's earlier instruction and conversation, as the agent is given them."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cost_usd(self) -> float:
        """What every attempt of the task cost, kept or not."""
        return sum(a.result.cost_usd for a in self.attempts if a.result)


TITLE_LENGTH = 120


class TaskSummary(BaseModel):
    """A task as lists show it: the instruction's first line, counts and cost, no diffs."""

    id: str
    state: TaskState
    reason: str | None
    repo: str
    ref: str | None
    commit: str | None = None
    title: str
    origin: OriginView
    attempts_requested: int
    attempts_ended: int
    cost_usd: float
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, task: Any) -> TaskSummary:
        """From a stored task (its attempts and results loaded, their diffs left unread)."""
        first_line = task.instruction.strip().split("\n", 1)[0]
        return cls(
            id=task.id,
            state=task.state,
            reason=task.reason,
            repo=task.repo,
            ref=task.ref,
            commit=task.commit,
            title=first_line[:TITLE_LENGTH],
            origin=OriginView.model_validate(task.origin),
            attempts_requested=task.attempts_requested,
            attempts_ended=sum(AttemptState(a.state).terminal for a in task.attempts),
            cost_usd=sum(a.result.cost_usd for a in task.attempts if a.result),
            created_at=task.created_at,
            started_at=task.started_at,
            finished_at=task.finished_at,
        )


class EventView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    seq: int
    task_id: str
    attempt_id: str | None
    kind: str
    data: dict[str, Any]
    created_at: datetime


class TokenCreate(BaseModel):
    """A token asked for over the API."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=255)
    user: str | None = Field(default=None, max_length=255)
    """Whose token (a user's name): only admins name another user; unset: the caller's."""
    scopes: list[str] | None = Field(default=None, max_length=8)
    """Unset: every scope the user's role allows, within the caller's own."""
    expires_at: AwareDatetime | None = None


class TokenView(BaseModel):
    """A token as lists show it: never its secret."""

    id: str
    name: str
    user: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, token: Any) -> TokenView:
        """From a stored token, its user loaded."""
        return cls(
            id=token.id, name=token.name, user=token.user.name, scopes=token.scopes,
            created_at=token.created_at, expires_at=token.expires_at,
            last_used_at=token.last_used_at, revoked_at=token.revoked_at,
        )  # fmt: skip


class TokenCreated(TokenView):
    token: str
    """The secret: shown this once, never stored."""
