"""One try of a task's report: take its lease, do the side effects left, then end it or
schedule the next try (exponential back-off until the deadline, on the database's clock)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from orchestrator import store
from orchestrator.errors import SideEffectRefused, SideEffectUnavailable
from orchestrator.models import Event, Report, ReportStep, Task, new_id
from orchestrator.reporting import Reporters, Steps
from orchestrator.schemas import TaskView
from orchestrator.states import ACTIVE_TASK_STATES

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

    from orchestrator.lifecycle import Lifecycle

log = logging.getLogger(__name__)

OPEN = ("pending", "retrying")
"""Report states that still have a try to come."""

REPORT_STATES = (*OPEN, "reported", "incomplete")


def count_reports_by_state(session: Session) -> dict[str, int]:
    rows = session.execute(select(Report.state, func.count()).group_by(Report.state)).all()
    return {str(state): int(count) for state, count in rows}


def due(now: datetime) -> ColumnElement[bool]:
    """An open report whose next try is due and that no live job holds."""
    return (
        Report.state.in_(OPEN)
        & or_(Report.next_at.is_(None), Report.next_at <= now)
        & or_(Report.lease_until.is_(None), Report.lease_until < now)
    )


def run_report(lifecycle: Lifecycle, task_id: str, reporters: Reporters) -> str:
    """One try of the report of an ended task; what happened, in words."""
    with lifecycle.sessions() as session:
        task = store.get_task(session, task_id=task_id)
        if task.reported_at is not None or task.state in ACTIVE_TASK_STATES:
            return "nothing to report"
        view = TaskView.model_validate(task)
    reporter = reporters.get(view.origin.kind)
    if reporter is None:
        _mark_reported(lifecycle, view, None)
        return f"no reporter for origin {view.origin.kind}"
    lease = _claim(lifecycle, task_id)
    if lease is None:
        return "not due, or another job holds it"
    with lifecycle.sessions() as session:
        known = {
            s.name: (s.state, s.detail)
            for s in session.scalars(select(ReportStep).where(ReportStep.task_id == task_id))
        }
    steps = Steps(known, record=lambda *step: _record(lifecycle, task_id, *step))
    try:
        reporter.report(view, steps)
    except SideEffectUnavailable as exc:
        return _later(lifecycle, view, lease, str(exc), exc.retry_after)
    except SideEffectRefused as exc:
        return _end(lifecycle, view, lease, steps, str(exc))
    except Exception as exc:
        # Not classified (a bug, an error a reporter does not translate): retried like a
        # failure that may pass, so it is bounded by the deadline all the same.
        log.exception("report of %s failed", task_id)
        return _later(lifecycle, view, lease, f"{type(exc).__name__}: {exc}", None)
    return _end(lifecycle, view, lease, steps, None)


def _claim(lifecycle: Lifecycle, task_id: str) -> str | None:
    """Take the report's lease (making its row on the first try); None if not ours now."""
    try:
        with lifecycle.write() as (session, _):
            if session.get(Report, task_id) is None:
                session.add(
                    Report(
                        task_id=task_id, state="pending", started_at=lifecycle.lease_clock(session)
                    )
                )
    except IntegrityError:
        pass  # another job made it first; the guarded UPDATE below decides
    lease = new_id()
    with lifecycle.write() as (session, _):
        now = lifecycle.lease_clock(session)
        until = now + timedelta(seconds=lifecycle.settings.report_lease_s)
        taken = store.changed(
            session,
            update(Report)
            .where(Report.task_id == task_id, due(now))
            .values(lease=lease, lease_until=until, tries=Report.tries + 1),
        )
    return lease if taken else None


def _record(lifecycle: Lifecycle, task_id: str, name: str, state: str, detail: str) -> None:
    with lifecycle.write() as (session, _):
        ended = session.scalar(select(func.count()).where(ReportStep.task_id == task_id))
        session.merge(
            ReportStep(
                task_id=task_id,
                name=name,
                seq=int(ended or 0) + 1,
                state=state,
                detail=detail,
                at=lifecycle.lease_clock(session),
            )
        )


def _later(
    lifecycle: Lifecycle, view: TaskView, lease: str, error: str, retry_after: float | None
) -> str:
    settings = lifecycle.settings
    with lifecycle.write() as (session, _):
        report = session.get_one(Report, view.id)
        now = lifecycle.lease_clock(session)
        wait = min(
            settings.report_backoff_s * 2 ** max(report.tries - 1, 0),
            settings.report_backoff_max_s,
        )
        wait = max(wait, retry_after or 0.0)
        deadline = report.started_at + timedelta(seconds=settings.report_deadline_s)
        if now + timedelta(seconds=wait) <= deadline:
            store.changed(
                session,
                update(Report)
                .where(Report.task_id == view.id, Report.lease == lease)
                .values(
                    state="retrying",
                    next_at=now + timedelta(seconds=wait),
                    lease=None,
                    lease_until=None,
                    last_error=error,
                ),
            )
            log.warning("report of %s: %s; trying again in %.0f s", view.id, error, wait)
            return f"retrying in {wait:.0f} s: {error}"
    log.warning("report of %s: %s; the deadline has passed, giving up", view.id, error)
    return _end(lifecycle, view, lease, None, f"gave up at the deadline: {error}")


def _end(
    lifecycle: Lifecycle, view: TaskView, lease: str, steps: Steps | None, error: str | None
) -> str:
    failed = steps.failed() if steps is not None else []
    if error is None and failed:
        error = f"not done: {', '.join(failed)}"
    state = "incomplete" if error else "reported"
    with lifecycle.write() as (session, events):
        now = lifecycle.lease_clock(session)
        ended = store.changed(
            session,
            update(Report)
            .where(Report.task_id == view.id, Report.lease == lease)
            .values(
                state=state,
                ended_at=now,
                next_at=None,
                lease=None,
                lease_until=None,
                last_error=error,
            ),
        )
        if ended:
            _stamp(lifecycle, session, events, view, {"state": state, "error": error})
    return "reported" if state == "reported" else f"incomplete: {error}"


def _mark_reported(lifecycle: Lifecycle, view: TaskView, data: dict[str, object] | None) -> None:
    with lifecycle.write() as (session, events):
        _stamp(lifecycle, session, events, view, data)


def _stamp(
    lifecycle: Lifecycle,
    session: Session,
    events: list[Event],
    view: TaskView,
    data: dict[str, object] | None,
) -> None:
    marked = store.changed(
        session,
        update(Task)
        .where(Task.id == view.id, Task.reported_at.is_(None))
        .values(reported_at=lifecycle.lease_clock(session)),
    )
    if marked:
        lifecycle.event(
            session,
            events,
            view.id,
            "task.reported",
            {"origin": view.origin.kind, "reporter": data is not None, **(data or {})},
        )
