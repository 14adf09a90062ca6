"""`autan audit`: the audit log for admins, filtered; refused to others."""

from __future__ import annotations

from orchestrator.services import Services
from tests.cli.conftest import Autan
from tests.people import person


def test_an_admin_reads_who_did_what_and_others_are_refused(
    autan: Autan, services: Services
) -> None:
    alice = person(services, "alice", "member")
    submitted = autan("run", "x", "--repo", "https://example.com/r.git", AUTAN_TOKEN=alice)
    assert submitted.returncode == 0, submitted.stderr
    assert autan("token", "create", "laptop", AUTAN_TOKEN=alice).returncode == 0

    shown = autan("audit", "--actor", "alice")
    assert shown.returncode == 0, shown.stderr
    rows = [line.split() for line in shown.stdout.splitlines()[1:]]
    assert [(r[2], r[3], r[4]) for r in rows] == [
        ("alice", "(alice-token)", "token.create"),
        ("alice", "(alice-token)", "task.submit"),
    ]
    assert all(r[-2:] in (["ok", "201"],) for r in rows)
    assert autan("audit", "--action", "signin").stdout == "no entries\n"

    refused = autan("audit", AUTAN_TOKEN=alice)
    assert refused.returncode == 1
    assert "needs the 'admin' scope" in refused.stderr
    bad = autan("audit", "--outcome", "maybe")
    assert bad.returncode == 1 and "the API rejected the request" in bad.stderr
