"""Migration 0011 on SQLite and PostgreSQL: a task stored before it reads back with no
lineage, and a continuation's lineage is stored and read back after it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from orchestrator.db import make_engine, make_sessionmaker, migrate
from orchestrator.schemas import TaskSpec, TaskView
from orchestrator.store import Lineage, create_task, get_task, later_tasks
from tests.orchestrator.test_users_migration import _upgrade_to


def test_tasks_gain_their_lineage_and_old_ones_have_none(database_url: str) -> None:
    engine = make_engine(database_url)
    _upgrade_to(engine, "0010")
    made = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with engine.begin() as c:
        c.execute(
            text("INSERT INTO origins (id, kind, data, created_at) VALUES ('o1', 'cli', '{}', :m)"),
            {"m": made},
        )
        c.execute(
            text(
                "INSERT INTO tasks (id, repo, instruction, attempts_requested, state, "
                "origin_id, cancel_requested, event_seq, created_at) VALUES "
                "('old', 'r', 'i', 1, 'succeeded', 'o1', false, 0, :m)"
            ),
            {"m": made},
        )
    migrate(engine)

    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        old = TaskView.model_validate(get_task(session, task_id="old"))
        assert (old.retry_of, old.continued_from, old.start_patch, old.conversation) == (
            None, None, None, None,
        )  # fmt: skip
        lineage = Lineage(
            continued_from_task="old", continued_from_attempt=1, commit="c" * 40,
            start_patch="+x\n", conversation="earlier",
        )  # fmt: skip
        spec = TaskSpec(repo="r", instruction="next")
        later = create_task(
            session, spec=spec, attempts=1, created_by=None, now=made, lineage=lineage
        )
        again = create_task(
            session, spec=spec, attempts=1, created_by=None, now=made,
            lineage=Lineage(retry_of="old"),
        )  # fmt: skip
        later_id, again_id = later.id, again.id
    with sessions() as session:
        view = TaskView.model_validate(get_task(session, task_id=later_id))
        assert view.continued_from is not None
        assert (view.continued_from.task, view.continued_from.attempt) == ("old", 1)
        assert (view.commit, view.start_patch, view.conversation) == ("c" * 40, "+x\n", "earlier")
        assert later_tasks(session, task_id="old") == ([again_id], [later_id])
    engine.dispose()
