"""`autan sync` and `autan run` as two people on one machine: each syncs the checkout into a
workspace of their own, and neither can start a task from, or sync into, the other's."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from sqlalchemy import select

from orchestrator.config import OrchestratorSettings
from orchestrator.models import Task, Workspace
from orchestrator.services import Services
from sync.state import load, state_file
from tests.cli.conftest import Autan
from tests.live import LiveApi
from tests.people import bearer, person
from tests.workers import settings_env


def _as(settings: OrchestratorSettings, live_api: LiveApi, token: str, state: Path) -> Autan:
    env = settings_env(settings)
    env.update(AUTAN_URL=live_api.url, AUTAN_TOKEN=token, COLUMNS="200",
               AUTAN_SYNC_STATE_DIR=str(state))  # fmt: skip
    return Autan(env)


def _heads(services: Services) -> dict[str, tuple[str | None, int]]:
    with services.sessions() as s:
        return {w.id: (w.owner_id, w.head) for w in s.scalars(select(Workspace))}


def test_two_people_sync_one_checkout_into_workspaces_of_their_own(
    settings: OrchestratorSettings, services: Services, live_api: LiveApi, checkout: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    alice_token = person(services, "alice", "member", team="payments")
    carol_token = person(services, "carol", "member", team="web")
    alice = _as(settings, live_api, alice_token, tmp_path / "alice-state")
    carol = _as(settings, live_api, carol_token, tmp_path / "carol-state")
    (checkout / "main.py").write_text("print('alice')\n")

    assert alice("sync", str(checkout), "--once").returncode == 0
    mine = load(state_file(tmp_path / "alice-state", checkout))
    assert mine is not None and mine.workspace_id is not None
    assert carol("sync", str(checkout), "--once").returncode == 0
    theirs = load(state_file(tmp_path / "carol-state", checkout))
    assert theirs is not None and theirs.workspace_id not in (None, mine.workspace_id)
    heads = _heads(services)
    assert {h for _, h in heads.values()} == {1} and len(heads) == 2

    manifest = httpx.post(
        f"{live_api.url}/api/workspaces/{mine.workspace_id}/versions/1/snapshot",
        headers=bearer(alice_token),
    ).json()["manifest_hash"]
    repo = f"workspace:{mine.workspace_id}@1"
    refused = carol("run", json.dumps({"steps": 1}), "--repo", repo, "--ref", manifest)
    assert refused.returncode != 0
    assert f"no workspace with id '{mine.workspace_id}'" in refused.stderr
    with services.sessions() as s:
        assert s.scalars(select(Task)).all() == []

    # Carol's daemon handed alice's state (her token swapped in) commits nothing there.
    (checkout / "main.py").write_text("print('carol')\n")
    swapped = _as(settings, live_api, carol_token, tmp_path / "alice-state")
    failed = swapped("sync", str(checkout), "--once")
    assert failed.returncode != 0 and "another user's" in failed.stderr
    assert _heads(services) == heads

    ran = alice("run", json.dumps({"steps": 1}), "--repo", repo, "--ref", manifest)
    assert ran.returncode == 0, ran.stderr
