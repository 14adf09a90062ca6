"""The server-side commands: migrate, and tokens made and revoked in the database directly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import Autan, base_env
from tests.workers import ROOT


def test_a_created_token_works_until_it_is_revoked(autan: Autan) -> None:
    created = autan.process("token", "create", "ci-bot", "--on-server")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("autan_") and len(created.stdout.splitlines()) == 1
    assert created.stderr == "created token 'ci-bot': store it now, it is not shown again\n"

    listed = autan("status", AUTAN_TOKEN=token)
    assert (listed.returncode, listed.stdout, listed.stderr) == (0, "no tasks yet\n", "")
    submitted = autan("run", "x", "--repo", "https://example.com/r.git", AUTAN_TOKEN=token)
    assert submitted.returncode == 0, submitted.stderr
    assert "queued" in submitted.stdout

    revoked = autan("token", "revoke", "ci-bot", "--on-server")
    assert (revoked.returncode, revoked.stdout) == (0, "revoked 1 token(s) named 'ci-bot'\n")
    refused = autan("status", AUTAN_TOKEN=token)
    assert refused.returncode == 1
    assert "the API refused the token (invalid, expired or revoked token)" in refused.stderr
    again = autan("token", "revoke", "ci-bot", "--on-server")
    assert again.returncode == 1
    assert again.stderr == "error: no live token is named 'ci-bot': nothing revoked\n"


def test_migrate_makes_a_fresh_database_and_names_bad_settings(tmp_path: Path) -> None:
    autan = Autan(base_env(AUTAN_DATA_DIR=str(tmp_path / "data")))
    migrated = autan("migrate")
    assert migrated.returncode == 0, migrated.stderr
    database = tmp_path / "data" / "autan.db"
    assert migrated.stdout == f"the database at sqlite:///{database} is up to date\n"
    assert database.exists()

    admin = autan("token", "create", "root", "--admin", "--on-server")
    assert admin.returncode == 0 and admin.stdout.startswith("autan_")
    assert admin.stderr == "created admin token 'root': store it now, it is not shown again\n"

    bad = autan("migrate", AUTAN_WORKER_CONCURRENCY="lots")
    assert bad.returncode == 1
    assert bad.stderr == (
        "error: invalid settings: AUTAN_WORKER_CONCURRENCY: "
        "Input should be a valid integer, unable to parse string as an integer\n"
    )
    unreachable = autan("migrate", AUTAN_DATABASE_URL="postgresql://nobody@127.0.0.1:9/none")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("error: cannot ")  # the orchestrator's own words
    assert "nobody@127.0.0.1:9/none" in unreachable.stderr
    assert "AUTAN_DATABASE_URL" in unreachable.stderr
    assert len(unreachable.stderr.splitlines()) == 1


def test_the_worker_command_runs_attempts(autan: Autan, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        worker = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker", "--concurrency", "1"],
            env=autan.env,
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        done = autan.process("run", '{"steps": 1}', "--repo", str(tmp_path), "--follow")
        assert done.returncode == 0, done.stdout + done.stderr + log.read_text()
        assert "concurrency: 1 (prefork)" in log.read_text()
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    assert worker.returncode == 0, log.read_text()
