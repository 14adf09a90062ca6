"""`autan token create|list|revoke` through the API: an admin for anyone, a member their own."""

from __future__ import annotations

from orchestrator.services import Services
from tests.cli.conftest import Autan
from tests.people import person


def test_an_admin_makes_lists_and_revokes_a_members_token(autan: Autan, services: Services) -> None:
    person(services, "alice", "member", team="payments")
    made = autan(
        "token", "create", "alice-ci", "--user", "alice", "--scope", "tasks:read",
        "--expires-in-days", "30",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    raw = made.stdout.strip()
    assert raw.startswith("autan_") and len(made.stdout.splitlines()) == 1
    assert made.stderr.startswith("created token 'alice-ci' of alice (tasks:read, until ")
    assert made.stderr.endswith(" UTC): store it now, it is not shown again\n")

    assert autan("status", AUTAN_TOKEN=raw).returncode == 0
    refused = autan("run", "x", "--repo", "https://example.com/r.git", AUTAN_TOKEN=raw)
    assert refused.returncode == 1
    assert "needs the 'tasks:write' scope" in refused.stderr

    listed = autan("token", "list")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[1]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert sorted(rows) == ["admin", "alice-ci", "alice-token"]
    assert rows["alice-ci"][2:5] == ["alice", "tasks:read", "live"]
    assert raw not in listed.stdout

    mine = autan("token", "list", AUTAN_TOKEN=raw)
    assert [line.split()[1] for line in mine.stdout.splitlines()[1:]] == ["alice-ci", "alice-token"]
    others = autan("token", "list", "--user", "admin", AUTAN_TOKEN=raw)
    assert others.returncode == 1
    assert "only an admin manages other users' tokens" in others.stderr

    revoked = autan("token", "revoke", "alice-ci")
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.startswith("revoked 'alice-ci' (")
    gone = autan("status", AUTAN_TOKEN=raw)
    assert gone.returncode == 1 and "invalid, expired or revoked token" in gone.stderr
    again = autan("token", "revoke", "alice-ci")
    assert again.returncode == 1
    assert again.stderr == "error: no live token has the id or name 'alice-ci': nothing revoked\n"


def test_bad_token_commands_say_why_and_make_nothing(autan: Autan, services: Services) -> None:
    member = person(services, "bob", "member")
    cases = [
        (("--user", "nobody"), {}, "no user named 'nobody'"),
        (("--scope", "root"), {}, "scope 'root' is not one of"),
        (("--scope", "admin"), {"AUTAN_TOKEN": member}, "lacks admin"),
        (("--user", "admin"), {"AUTAN_TOKEN": member}, "only an admin manages other users'"),
        (("--admin",), {}, "--admin goes with --on-server"),
        (("--on-server", "--scope", "tasks:read"), {}, "--on-server makes a token of the user"),
    ]
    for options, env, reason in cases:
        r = autan("token", "create", "x", *options, **env)
        assert r.returncode != 0 and r.stdout == "", (options, r.stdout)
        assert reason in r.stderr, (options, r.stderr)
    names = [line.split()[1] for line in autan("token", "list").stdout.splitlines()[1:]]
    assert sorted(names) == ["admin", "bob-token"]
