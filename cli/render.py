"""How tasks, attempts and events look in a terminal: rich tables and one line per event."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from orchestrator.schemas import AttemptView, EventView, ResultView, TaskSummary, TaskView
from orchestrator.states import TaskState

STATE_STYLES = {
    "queued": "blue",
    "provisioning": "cyan",
    "running": "cyan",
    "verifying": "cyan",
    "waiting_model": "yellow",
    "succeeded": "green",
    "verified": "green",
    "unverified": "yellow",
    "failed": "red",
    "cancelled": "yellow",
    "timed_out": "red",
}
VALUE_LIMIT = 200
"""Longest value an event line shows; `autan logs --json` shows everything."""


def console(*, stderr: bool = False) -> Console:
    """A console made when a command runs, so it sees that moment's terminal and environment."""
    return Console(stderr=stderr)


def error(message: str) -> None:
    """An error as one red line on stderr (a library's multi-line message is joined)."""
    console(stderr=True).print(
        "error: " + " ".join(message.split()),
        style="red",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def state(value: str) -> Text:
    return Text(str(value), style=STATE_STYLES.get(str(value), ""))


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def age(since: datetime, now: datetime) -> str:
    seconds = max(0, int((now - _utc(since)).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def task_table(tasks: Iterable[TaskSummary], now: datetime) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("id", no_wrap=True, min_width=32)
    table.add_column("state", no_wrap=True)
    table.add_column("repo", overflow="fold")
    table.add_column("commit", no_wrap=True)
    table.add_column("attempts", justify="right", no_wrap=True)
    table.add_column("cost", justify="right", no_wrap=True)
    table.add_column("age", justify="right", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for task in tasks:
        table.add_row(
            task.id,
            state(task.state),
            task.repo,
            short(task.commit),
            f"{task.attempts_ended}/{task.attempts_requested}",
            f"${task.cost_usd:.2f}",
            age(task.created_at, now),
            task.reason or "",
        )
    return table


def task_details(task: TaskView, now: datetime) -> RenderableType:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    rows: list[tuple[str, str | Text]] = [
        ("id", task.id),
        ("state", state(task.state)),
        ("reason", task.reason or ""),
        ("repo", task.repo + (f" @ {task.ref}" if task.ref else "")),
        ("commit", task.commit or "-"),
        ("cost", f"${task.cost_usd:.4f} (all attempts)"),
        ("origin", task.origin.kind),
        ("created", f"{_local(task.created_at)} ({age(task.created_at, now)} ago)"),
        ("started", _local(task.started_at)),
        ("finished", _local(task.finished_at)),
        ("instruction", task.instruction),
    ]
    if task.report is not None:
        rows.insert(8, ("report", report_text(task)))
    for key, value in rows:
        grid.add_row(key, value)
    parts: list[RenderableType] = [grid, Text(), attempts_table(task.attempts)]
    if task.result is not None:
        parts += [Text(), result_text(task.result)]
    return Group(*parts)


def report_text(task: TaskView) -> str:
    """The report's state, its tries, and each side effect that failed with the reason."""
    report = task.report
    assert report is not None
    said = f"{report.state} ({report.tries} {'try' if report.tries == 1 else 'tries'})"
    if report.state == "retrying" and report.next_at is not None:
        said += f", next at {_local(report.next_at)}: {report.last_error}"
    failed = [f"{s.name} failed: {s.detail}" for s in report.steps if s.state == "failed"]
    if report.state == "incomplete" and not failed and report.last_error:
        failed = [report.last_error]
    return "; ".join([said, *failed])


def attempts_table(attempts: Iterable[AttemptView]) -> Table:
    table = Table(title="attempts", title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("state", no_wrap=True)
    table.add_column("verified", no_wrap=True)
    table.add_column("runs", justify="right")
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("commit", no_wrap=True)
    table.add_column("cost", justify="right", no_wrap=True)
    table.add_column("diff", justify="right", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for attempt in attempts:
        result = attempt.result
        table.add_row(
            str(attempt.number),
            state(attempt.state),
            state(attempt.verdict or "-"),
            str(attempt.runs),
            duration(attempt.duration_s),
            short(attempt.commit),
            f"${result.cost_usd:.4f}" if result else "-",
            diff_size(result),
            attempt.reason or "",
        )
    return table


def short(commit: str | None) -> str:
    """A commit as people read it: its first 12 hex digits."""
    return commit[:12] if commit else "-"


def diff_size(result: ResultView | None) -> str:
    """Lines of an attempt's diff, saying when it is partial work (`autan diff` prints it)."""
    if result is None or not result.diff_lines:
        return "-"
    return f"{result.diff_lines} lines" + (" (partial)" if result.partial else "")


def result_text(result: ResultView) -> Text:
    verified = "yes" if result.verified else "no, unverified"
    text = Text("result: ", style="bold")
    text.append(result.summary)
    text.append(
        f"\n  {result.diff_lines} diff lines, verified: {verified}"
        + (f" (tests {result.tests_outcome})" if result.tests_outcome else "")
        + f", tokens {result.tokens_in} in / {result.tokens_out} out, ${result.cost_usd:.4f}"
    )
    return text


def ending(task: TaskView) -> Text:
    """The last word on a task: its state, why, and its result's summary."""
    text = Text(f"task {task.id} ")
    text.append_text(state(task.state))
    if task.reason:
        text.append(f": {task.reason}")
    if task.result is not None:
        text.append(f"\nresult: {task.result.summary}")
    if task.state == TaskState.UNVERIFIED and task.result is not None:
        text.append(f"\nthe kept diff is unverified; `autan diff {task.id}` prints it")
    return text


def event_line(event: EventView, numbers: dict[str, int]) -> Text:
    """`seq time #attempt kind data`, the attempt's number looked up by its id."""
    number = numbers.get(event.attempt_id or "") or event.data.get("number")
    text = Text(f"{event.seq:>4} {_local(event.created_at, '%H:%M:%S')} ", style="dim")
    text.append(f"#{number} " if number else "   ", style="magenta")
    text.append(event.kind, style="bold")
    if event.data:
        text.append(" " + compact(event.data))
    return text


def compact(data: dict[str, Any]) -> str:
    """`key=value` pairs on one line, empty values left out; strings with spaces are quoted."""
    return " ".join(f"{key}={_value(value)}" for key, value in data.items() if value is not None)


def _value(value: Any) -> str:
    if isinstance(value, str) and value and not any(c.isspace() or c == '"' for c in value):
        shown = value
    else:
        shown = json.dumps(value, ensure_ascii=False, default=str)
    return shown if len(shown) <= VALUE_LIMIT else shown[: VALUE_LIMIT - 1] + "…"


def _local(moment: datetime | None, pattern: str = "%Y-%m-%d %H:%M:%S") -> str:
    return _utc(moment).astimezone().strftime(pattern) if moment else "-"
