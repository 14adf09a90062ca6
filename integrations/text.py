"""How a task's result reads in a pull request, a comment or a message, and its hidden marker."""

from __future__ import annotations

import re
from typing import Literal

from orchestrator.schemas import TaskView
from orchestrator.states import TaskState

MENTION = "@autan"

_MENTION = re.compile(r"(?<![\w.+@-])@autan(?![\w/-]|\.\w)", re.IGNORECASE)
"""`@autan` alone: not in an address (`ops@autan.dev`) nor a longer name (`@autanomous`)
or a team (`@autan/ops`)."""
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_QUOTE = re.compile(r"^ {0,3}>")
_CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)


def mentions(body: str | None) -> bool:
    """Whether `body` (Markdown) asks Autan by name: `@autan` as a word of its own, outside
    quoted blocks and code, which cite someone else's words rather than ask."""
    kept: list[str] = []
    fence = ""
    for line in (body or "").splitlines():
        opened = _FENCE.match(line)
        if fence:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = ""
            continue
        if opened:
            fence = opened.group(1)
        elif not _QUOTE.match(line):
            kept.append(line)
    return _MENTION.search(_CODE_SPAN.sub(" ", "\n".join(kept))) is not None


def marker(task_id: str) -> str:
    """Hidden in what Autan posts, so a retried report finds its earlier post."""
    return f"<!-- autan:task:{task_id} -->"


def title(task: TaskView) -> str:
    first = task.instruction.strip().split("\n", 1)[0].lstrip("# ").strip()
    name = f"Autan: {first[:80]}" if first else f"Autan task {task.id}"
    return f"[unverified] {name}" if task.state == TaskState.UNVERIFIED else name


def tests_line(task: TaskView) -> str:
    result = task.result
    if result is None:
        return "not run"
    if result.tests_outcome:
        return result.tests_outcome
    return "verified" if result.verified else "unverified"


Verdict = Literal["verified", "unverified", "empty"]

VERDICTS: dict[Verdict, str] = {
    "verified": "verified: the repository's tests pass with this change, and it fixes what "
    "failed before",
    "unverified": "unverified: the repository's tests did not prove this change; review it "
    "before you use it",
    "empty": "empty: no file was changed",
}


def verdict(task: TaskView) -> Verdict | None:
    """What a result is worth: verified, unverified, or empty (it changed nothing); None when
    the task left no result (it failed or was cancelled before one)."""
    if task.result is None:
        return None
    if not task.result.diff.strip():
        return "empty"
    return "verified" if task.state == TaskState.SUCCEEDED else "unverified"


def outcome(
    task: TaskView, link: str, pull_url: str | None = None, *, full_commit: bool = False
) -> list[str]:
    """The lines every report carries: what happened, whether the result is verified,
    unverified or empty, the commit tested, tests, cost, where to look. `full_commit` for
    places that link a full hash (GitHub); a short one elsewhere."""
    lines: list[str] = []
    found = verdict(task)
    if task.state == TaskState.SUCCEEDED and task.result is not None:
        lines.append(task.result.summary or ("Done." if found != "empty" else "Nothing to do."))
    else:
        lines.append(f"Task {task.state}: {task.reason or 'no reason given'}")
    if found is not None:
        lines.append(f"Result: {VERDICTS[found]}")
    if found == "unverified":
        lines.append(
            f"`autan diff {task.id}` prints the diff, "
            f"`autan apply {task.id}` applies it to a checkout."
        )
    if pull_url:
        lines.append(f"Pull request: {pull_url}")
    if task.commit:
        lines.append(f"Commit: {task.commit if full_commit else task.commit[:12]}")
    lines.append(f"Tests: {tests_line(task)}")
    lines.append(f"Cost: ${task.cost_usd:.2f}")
    lines.append(f"Details: {link}")
    return lines


def has_changes(task: TaskView, *, unverified: bool = False) -> bool:
    """A diff worth a pull request: a verified one; an unverified one only when asked."""
    states = {TaskState.SUCCEEDED, TaskState.UNVERIFIED} if unverified else {TaskState.SUCCEEDED}
    return task.state in states and bool(task.result and task.result.diff.strip())
