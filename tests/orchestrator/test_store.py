"""The store on SQLite and PostgreSQL: migrations, event order, tokens."""

from __future__ import annotations

import threading

from sqlalchemy import inspect, select

from orchestrator import store
from orchestrator.db import make_engine, migrate
from orchestrator.models import ApiToken, Event, utcnow
from orchestrator.schemas import TaskSpec
from orchestrator.services import Services
from orchestrator.tokens import authenticate, create_token, hash_token, revoke_token


def test_migrations_make_every_table_and_run_again_as_a_no_op(database_url: str) -> None:
    engine = make_engine(database_url)
    threads = [threading.Thread(target=migrate, args=(engine,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    migrate(engine)
    tables = set(inspect(engine).get_table_names())
    assert {
        "tasks",
        "attempts",
        "events",
        "origins",
        "results",
        "api_tokens",
        "alembic_version",
    } <= tables
    engine.dispose()


def test_sqlite_store_runs_in_wal_mode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_events_of_a_task_get_dense_seqs_under_concurrent_writers(services: Services) -> None:
    task, _ = services.lifecycle.submit(TaskSpec(repo="r", instruction="i"))

    def write(n: int) -> None:
        for i in range(20):
            with services.lifecycle.write() as (session, _):
                store.add_event(
                    session, task_id=task.id, kind="k", data={"w": n, "i": i}, now=utcnow()
                )

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with services.sessions() as s:
        seqs = list(
            s.scalars(select(Event.seq).where(Event.task_id == task.id).order_by(Event.seq))
        )
        assert seqs == list(range(1, 82))
        assert [e.seq for e in store.events_after(s, task_id=task.id, seq=79)] == [80, 81]


def test_tokens_are_stored_hashed_and_revocable(services: Services) -> None:
    with services.sessions.begin() as s:
        raw = create_token(s, name="ci", is_admin=False, now=utcnow())
    assert raw.startswith("autan_") and len(raw) > 40
    with services.sessions() as s:
        caller = authenticate(s, raw=raw, now=utcnow())
        assert caller is not None and caller.token_name == "ci"
        assert (caller.user_name, caller.role) == ("ci", "member")
        assert caller.scopes == {"tasks:read", "tasks:write", "workspaces"}
        token = s.scalars(select(ApiToken).where(ApiToken.name == "ci")).one()
        assert token.token_hash == hash_token(raw) and raw not in token.token_hash
        assert authenticate(s, raw=raw + "x", now=utcnow()) is None
        assert authenticate(s, raw="not-a-token", now=utcnow()) is None
    with services.sessions.begin() as s:
        assert revoke_token(s, name="ci", now=utcnow()) == 1
    with services.sessions() as s:
        assert authenticate(s, raw=raw, now=utcnow()) is None
