"""Migration 0009 on SQLite and PostgreSQL: tokens made by the old schema keep working, as
admin users' tokens, and tasks record their maker's user."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, select, text

from orchestrator.db import MIGRATIONS, make_engine, make_sessionmaker, migrate
from orchestrator.models import ApiToken, Task, User, utcnow
from orchestrator.tokens import authenticate, hash_token

OLD_RAW = "autan_made-by-the-old-schema-0123456789abcdefghijklmnopqrstu"
NOT_ADMIN_RAW = "autan_old-but-never-admin-0123456789abcdefghijklmnopqrstuvw"


def _upgrade_to(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _old_rows(engine: Engine) -> None:
    """What an installation at 0008 holds: two tokens of one name, one of another, a task."""
    made = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with engine.begin() as c:
        for token_id, name, raw, admin in (
            ("t1", "admin", OLD_RAW, True),
            ("t2", "admin", "autan_second-admin-token", True),
            ("t3", "ci-bot", NOT_ADMIN_RAW, False),
        ):
            c.execute(
                text(
                    "INSERT INTO api_tokens (id, name, token_hash, is_admin, created_at) "
                    "VALUES (:id, :name, :hash, :admin, :made)"
                ),
                {"id": token_id, "name": name, "hash": hash_token(raw), "admin": admin,
                 "made": made},
            )  # fmt: skip
        c.execute(
            text("INSERT INTO origins (id, kind, data, created_at) VALUES ('o1', 'cli', '{}', :m)"),
            {"m": made},
        )
        for task_id, maker in (("k1", "t3"), ("k2", None), ("k3", "gone")):
            c.execute(
                text(
                    "INSERT INTO tasks (id, repo, instruction, attempts_requested, state, "
                    "origin_id, created_by, cancel_requested, event_seq, created_at) VALUES "
                    "(:id, 'r', 'i', 1, 'queued', 'o1', :maker, false, 0, :m)"
                ),
                {"id": task_id, "maker": maker, "m": made},
            )


def test_an_old_token_keeps_working_as_an_admin_users_token(database_url: str) -> None:
    engine = make_engine(database_url)
    _upgrade_to(engine, "0008")
    _old_rows(engine)
    migrate(engine)

    sessions = make_sessionmaker(engine)
    with sessions() as s:
        users = {u.name: u for u in s.scalars(select(User))}
        assert sorted(users) == ["admin", "ci-bot"]
        assert {u.role for u in users.values()} == {"admin"}
        assert not any(u.service or u.team or u.email for u in users.values())
        tokens = {t.id: t for t in s.scalars(select(ApiToken))}
        assert tokens["t1"].user_id == tokens["t2"].user_id == users["admin"].id
        assert tokens["t3"].user_id == users["ci-bot"].id
        assert all(
            t.scopes == ["tasks:read", "tasks:write", "workspaces", "admin"]
            for t in tokens.values()
        )
        assert all(t.expires_at is None for t in tokens.values())
        for raw, name in ((OLD_RAW, "admin"), (NOT_ADMIN_RAW, "ci-bot")):
            caller = authenticate(s, raw=raw, now=utcnow())
            assert caller is not None and caller.is_admin and caller.user_name == name
        makers = {row[0]: row[1] for row in s.execute(select(Task.id, Task.created_by))}
        assert makers == {"k1": users["ci-bot"].id, "k2": None, "k3": None}
    migrate(engine)  # again: nothing to do
    engine.dispose()
