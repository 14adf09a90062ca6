"""Migration 0012 on SQLite and PostgreSQL: each workspace stored before it belongs to the user
of the token that registered it, so every token of that user reaches it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, text

from orchestrator.access import Caller
from orchestrator.db import make_engine, make_sessionmaker, migrate
from orchestrator.models import Workspace, utcnow
from orchestrator.workspace_store import list_all, register
from tests.orchestrator.test_users_migration import _upgrade_to


def _caller(user_id: str, token_id: str, role: str = "member") -> Caller:
    return Caller(token_id=token_id, token_name=token_id, user_id=user_id, user_name=user_id,
                  role=role, team=None, scopes=frozenset({"workspaces"}))  # fmt: skip


def test_old_workspaces_belong_to_their_tokens_user(database_url: str) -> None:
    engine = make_engine(database_url)
    _upgrade_to(engine, "0011")
    made = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with engine.begin() as c:
        for user_id in ("u-alice", "u-carol"):
            c.execute(
                text("INSERT INTO users (id, name, role, service, created_at) "
                     "VALUES (:id, :id, 'member', false, :m)"),
                {"id": user_id, "m": made},
            )  # fmt: skip
        for token_id, user_id in (("t1", "u-alice"), ("t2", "u-alice"), ("t3", "u-carol")):
            c.execute(
                text("INSERT INTO api_tokens (id, name, token_hash, user_id, scopes, created_at) "
                     "VALUES (:id, :id, :h, :u, '[]', :m)"),
                {"id": token_id, "h": token_id * 20, "u": user_id, "m": made},
            )  # fmt: skip
        for workspace_id, token_id, key in (
            ("w1", "t1", "laptop:/a"), ("w2", "t2", "desk:/b"), ("w3", "t3", "laptop:/a"),
            ("w4", "gone", "laptop:/c"),
        ):  # fmt: skip
            c.execute(
                text("INSERT INTO workspaces (id, key, name, root, created_by, head, created_at, "
                     "updated_at) VALUES (:id, :k, 'n', '/r', :t, 0, :m, :m)"),
                {"id": workspace_id, "k": key, "t": token_id, "m": made},
            )  # fmt: skip
    migrate(engine)

    sessions = make_sessionmaker(engine)
    with sessions() as s:
        owners = {w.id: (w.owner_id, w.created_by) for w in s.scalars(select(Workspace))}
        assert owners == {"w1": ("u-alice", "t1"), "w2": ("u-alice", "t2"),
                          "w3": ("u-carol", "t3"), "w4": (None, "gone")}  # fmt: skip
        # Either of alice's tokens finds her checkout again; carol's is carol's.
        found, created = register(s, key="laptop:/a", name="n", root="/r",
                                  caller=_caller("u-alice", "t2"), now=utcnow())  # fmt: skip
        assert (found.id, created) == ("w1", False)
        assert {w.id for w in list_all(s, caller=_caller("u-alice", "t1"))} == {"w1", "w2"}
        assert {w.id for w in list_all(s, caller=_caller("u-x", "t9", "admin"))} == {
            "w1", "w2", "w3", "w4"
        }  # fmt: skip
        s.rollback()
    migrate(engine)  # again: nothing to do
    engine.dispose()
