"""Slack Events API deliveries: the URL check, and a person's reply in a task's thread queued."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from integrations.base import Answer
from integrations.config import IntegrationSettings
from integrations.deliveries import Deliveries
from integrations.errors import InvalidPayload
from integrations.replies import deliver
from integrations.submit import Submitter
from orchestrator import store
from orchestrator.states import ACTIVE_TASK_STATES

log = logging.getLogger(__name__)


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Message(_Part):
    """A `message` event as Slack documents it; only what a thread reply needs."""

    type: str
    subtype: str | None = None
    bot_id: str | None = None
    user: str | None = None
    text: str = ""
    channel: str = ""
    ts: str = ""
    thread_ts: str | None = None


class Envelope(_Part):
    type: str
    challenge: str | None = None
    event_id: str | None = None
    team_id: str | None = None
    event: dict[str, Any] | None = None


def thread_reply(payload: dict[str, Any], submitter: Submitter, deliveries: Deliveries) -> Answer:
    """Answer the URL check; queue a person's reply in a task's thread (once per event id,
    which Slack's retries keep) for a worker to pass on; ignore every other event."""
    try:
        envelope = Envelope.model_validate(payload)
    except ValidationError as exc:
        raise InvalidPayload(f"Slack event: {exc}") from exc
    if envelope.type == "url_verification":
        if not envelope.challenge:
            raise InvalidPayload("url_verification without a challenge")
        return Answer("answered", "url check", body={"challenge": envelope.challenge})
    if envelope.type != "event_callback" or envelope.event is None:
        return Answer("ignored", f"Slack delivery {envelope.type!r} is not one Autan acts on")
    if not envelope.event_id:
        raise InvalidPayload("event_callback without an event_id")
    try:
        event = Message.model_validate(envelope.event)
    except ValidationError as exc:
        raise InvalidPayload(f"Slack event: {exc}") from exc
    why = _not_a_reply(event)
    if why:
        return Answer("ignored", why)
    thread = f"{event.channel}:{event.thread_ts}"
    with submitter.lifecycle.sessions() as session:
        found = store.find_tasks_by_origin(session, kind="slack", external_id=thread)
        if not found:
            return Answer("ignored", "not the thread of a task")
    key = f"slack:event:{envelope.event_id}"
    reply = {
        "team": envelope.team_id,
        "channel": event.channel,
        "thread_ts": event.thread_ts,
        "user": event.user,
        "text": event.text,
    }
    job = {"key": key, "reply": reply}
    if not deliveries.accept(key, partial(submitter.later, "slack", job)):
        return Answer("duplicate", f"event {envelope.event_id} was already received")
    return Answer("accepted", f"reply in the thread of task {found[0].id}", found[0].id)


def _not_a_reply(event: Message) -> str:
    """Why the event is no person's reply in a thread; empty when it is one."""
    if event.type != "message":
        return f"event {event.type!r} is not a message"
    if event.subtype or event.bot_id or not event.user:
        return "not a person's new message (a bot's, Autan's own, an edit or a join)"
    if not event.thread_ts or event.thread_ts == event.ts or not event.channel:
        return "not a reply in a thread"
    if not event.text.strip():
        return "an empty message"
    return ""


def pass_on(
    reply: dict[str, Any],
    key: str,
    submitter: Submitter,
    client: WebClient | None,
    common: IntegrationSettings,
) -> None:
    """In a worker: the reply to the thread's live task as a message from its author, or an
    answer in the thread saying why not (the task ended, or the author may not)."""
    thread = f"{reply['channel']}:{reply['thread_ts']}"
    with submitter.lifecycle.sessions() as session:
        found = store.find_tasks_by_origin(session, kind="slack", external_id=thread)
        live = [t.id for t in found if t.state in ACTIVE_TASK_STATES]
        ids = live or [t.id for t in found]
    if not ids:
        log.info("%s: the thread's task is gone: ignored", key)
        return
    target = ids[0]
    done = deliver(
        submitter, kind="slack", identity=str(reply["user"]), task_id=target,
        text=str(reply["text"]), key=key,
    )  # fmt: skip
    if done.outcome == "sent":
        return
    if done.outcome == "ended":
        answer = (
            f"Task `{target}` has ended, so no agent is reading this thread. To go on from its "
            f"result, continue it from its page: {common.task_url(target)}; for new work, "
            "`/autan REPO INSTRUCTION`."
        )
    else:
        answer = f"Sorry <@{reply['user']}>, I did not pass that on: {done.why}."
    if client is None:
        log.info("%s: %s (no bot token to say so)", key, answer)
        return
    try:
        client.chat_postMessage(channel=reply["channel"], thread_ts=reply["thread_ts"], text=answer)
    except SlackApiError as exc:
        log.warning("Slack refused the answer to %s: %s", key, exc.response.get("error"))
