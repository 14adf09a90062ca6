"""`autan say` against the live API: the message is stored for the task's agents; an unknown
task or attempt, bad text and an ended task fail with one line saying why."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from orchestrator.models import Event
from orchestrator.services import Services
from tests.cli.conftest import Autan, task_id_in


def test_say_sends_a_message_and_refuses_what_cannot_be_sent(
    autan: Autan, services: Services, tmp_path: Path
) -> None:
    script = json.dumps({"steps": 1})
    task_id = task_id_in(autan("run", script, "--repo", str(tmp_path), "--attempts", "2").stdout)

    sent = autan("say", task_id, "use the new API")
    assert (sent.returncode, sent.stderr) == (0, ""), sent.stderr
    assert sent.stdout.startswith(f"sent to every running attempt of task {task_id} (event ")
    one = autan("say", task_id, "only you", "--attempt", "2")
    assert one.returncode == 0, one.stderr
    assert f"sent to attempt 2 of task {task_id}" in one.stdout

    missing = autan("say", task_id, "hi", "--attempt", "3")
    assert missing.returncode == 1
    assert missing.stderr.endswith(f"answered 404 Not Found: task {task_id} has no attempt 3\n")
    nobody = autan("say", "nope", "hi")
    assert (nobody.returncode, nobody.stderr) == (1, "error: no task with id nope\n")
    bell = autan("say", task_id, "ring\x07")
    assert bell.returncode == 1 and "U+0007" in bell.stderr

    assert autan("cancel", task_id).returncode == 0
    late = autan("say", task_id, "too late")
    assert late.returncode == 1
    assert late.stderr == (
        f"error: task {task_id} has ended (cancelled): no agent is there to read it; "
        "`autan run` a new task instead\n"
    )
    with services.sessions() as session:
        stored = session.scalars(
            select(Event).where(Event.kind == "person.message").order_by(Event.seq)
        ).all()
    assert [(e.data["text"], e.data["attempt"]) for e in stored] == [
        ("use the new API", None),
        ("only you", 2),
    ]
