"""Every failure the command can explain ends as one red line on stderr and exit status 1."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Autan, base_env
from tests.live import free_port


def test_a_wrong_token_is_refused_plainly(autan: Autan) -> None:
    refused = autan.process("status", AUTAN_TOKEN="autan_not-a-real-token")
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr == (
        "error: the API refused the token (invalid, expired or revoked token): set AUTAN_TOKEN to a "
        "token from `autan token create` or DATA_DIR/admin-token\n"
    )


def test_unknown_ids_and_rejected_requests_say_what_is_wrong(autan: Autan) -> None:
    for args in (["status", "nope"], ["logs", "nope"], ["logs", "-f", "nope"], ["cancel", "nope"]):
        unknown = autan(*args)
        assert (unknown.returncode, unknown.stderr) == (1, "error: no task with id nope\n"), args

    empty = autan("run", "", "--repo", "/srv/repo.git")
    assert empty.returncode == 1
    assert empty.stderr == (
        "error: the API rejected the request: "
        "body.instruction: String should have at least 1 character\n"
    )
    too_many = autan("run", "x", "--repo", "/srv/repo.git", "--attempts", "99")
    assert too_many.returncode == 1
    assert too_many.stderr == (
        "error: the API rejected the request: attempts: at most 8 per task, asked for 99\n"
    )
    usage = autan("run", "x", "--repo", "/srv/repo.git", "--attempts", "0")
    assert usage.returncode == 2  # typer's usage error: the request never left
    assert "--attempts" in usage.stderr
    assert autan("status", "--json").stdout == '{\n  "items": [],\n  "next_cursor": null\n}\n'


def test_a_server_that_is_down_is_named(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    autan = Autan(base_env(AUTAN_URL=url, AUTAN_TOKEN="autan_x", AUTAN_DATA_DIR=str(tmp_path)))
    for args in (["status"], ["run", "x", "--repo", ".", "--follow"], ["logs", "-f", "abc"]):
        down = autan(*args)
        assert down.returncode == 1, args
        assert down.stdout == ""
        assert down.stderr.startswith(f"error: cannot reach the Autan API at {url} (ConnectError")
        assert down.stderr.endswith(
            "is `autan up` running? set AUTAN_URL if it listens elsewhere\n"
        )
    assert "Traceback" not in autan.process("status").stderr


def test_no_token_anywhere_says_where_one_comes_from(tmp_path: Path) -> None:
    autan = Autan(base_env(AUTAN_URL="http://127.0.0.1:9", AUTAN_DATA_DIR=str(tmp_path)))
    missing = autan("status")
    assert missing.returncode == 1
    assert missing.stderr == (
        "error: no API token: set AUTAN_TOKEN to a token from `autan token create`, or run "
        f"`autan up`, which writes {tmp_path / 'admin-token'} (set AUTAN_DATA_DIR if it is "
        "elsewhere)\n"
    )
