"""The parts of GitHub's webhook payloads Autan reads, as GitHub documents them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Repository(_Part):
    full_name: str


class User(_Part):
    login: str
    type: str = "User"


class Label(_Part):
    name: str


class Issue(_Part):
    number: int
    title: str
    body: str | None = None
    pull_request: dict[str, Any] | None = None


class Comment(_Part):
    body: str = ""
    user: User
    path: str | None = None
    diff_hunk: str | None = None


class Head(_Part):
    ref: str
    repo: Repository | None = None


class PullRequest(_Part):
    number: int
    title: str
    head: Head


class Review(_Part):
    body: str | None = None
    user: User


class Event(_Part):
    action: str = ""
    repository: Repository
    sender: User


class IssuesEvent(Event):
    issue: Issue
    label: Label | None = None


class IssueCommentEvent(Event):
    issue: Issue
    comment: Comment


class ReviewEvent(Event):
    pull_request: PullRequest
    review: Review


class ReviewCommentEvent(Event):
    pull_request: PullRequest
    comment: Comment


EVENTS: dict[str, type[Event]] = {
    "issues": IssuesEvent,
    "issue_comment": IssueCommentEvent,
    "pull_request_review": ReviewEvent,
    "pull_request_review_comment": ReviewCommentEvent,
}


class Work(BaseModel):
    """What a delivery asks for, once it is known to be for Autan."""

    kind: str
    """`issue` (labelled), `issue-comment`, `pr-comment` or `review`."""
    repo: str
    number: int
    sender: str
    asked: str = ""
    """The comment or review that asked, for follow-ups."""
    branch: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
