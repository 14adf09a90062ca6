"""A reply in a task's Slack thread or on its pull request, as a message to the running agent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from integrations.submit import Submitter
from orchestrator import messages
from orchestrator.errors import TaskEnded
from orchestrator.schemas import MessageRequest
from orchestrator.users import task_owner


@dataclass(frozen=True)
class Delivered:
    """What became of a reply: `sent` to the agent, the task `ended`, or `refused` and why."""

    outcome: Literal["sent", "ended", "refused"]
    why: str = ""


def deliver(
    submitter: Submitter, *, kind: str, identity: str, task_id: str, text: str, key: str
) -> Delivered:
    """Say `text` to the task as the person `identity` is to Autan, under the rules of
    `autan say`: admins to any task, members to their own and their team's, viewers to none.
    `key` (the delivery's) makes a retried job store the message once."""
    person = submitter.person(kind, identity)
    with submitter.lifecycle.sessions() as session:
        owner = task_owner(session, task_id=task_id)
    if not person.may_change(owner):
        return Delivered(
            "refused",
            f"as {person.user_name} ({person.role}) you may not message task {task_id}: "
            "only its owner, their team and admins may",
        )
    try:
        message = MessageRequest.model_validate({"text": text})
    except ValidationError as exc:
        why = "; ".join(e["msg"] for e in exc.errors(include_url=False))
        return Delivered("refused", f"the message cannot be passed on: {why}")
    try:
        messages.say(submitter.lifecycle, task_id, text=message.text, by=person.user_name, key=key)
    except TaskEnded as exc:
        return Delivered("ended", str(exc))
    return Delivered("sent")
