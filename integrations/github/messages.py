"""A comment mentioning `@autan` on the pull request of a running task, passed on to its agent."""

from __future__ import annotations

import logging
import re

from github.Repository import Repository

from integrations import text
from integrations.github import payloads as p
from integrations.replies import deliver
from integrations.submit import Submitter
from orchestrator import store
from orchestrator.models import Task
from orchestrator.states import ACTIVE_TASK_STATES

log = logging.getLogger(__name__)

_MARKED = re.compile(re.escape(text.marker("@@")).replace("@@", r"(\w+)"))
"""The task ids in Autan's hidden markers."""


def told(repo: Repository, work: p.Work, key: str, submitter: Submitter) -> bool:
    """Whether the comment was for a running task (started on this pull request, or the one
    whose pull request it is, by its marker) and so is settled: passed on to its agent, or
    refused and ignored. False: no task of the pull request runs; a follow-up task is due."""
    with submitter.lifecycle.sessions() as session:
        here = store.find_tasks_by_origin(
            session, kind="github", external_id=f"{work.repo}#{work.number}"
        )
        live = [t.id for t in here if t.state in ACTIVE_TASK_STATES]
    if not live:
        marked = _MARKED.findall(repo.get_pull(work.number).body or "")
        with submitter.lifecycle.sessions() as session:
            for task_id in marked:
                task = session.get(Task, task_id)
                if task is not None and task.state in ACTIVE_TASK_STATES:
                    live.append(task.id)
    if not live:
        return False
    done = deliver(
        submitter, kind="github", identity=work.sender, task_id=live[0], text=work.asked, key=key
    )
    if done.outcome == "refused":
        log.info("%s: %s was not passed on to task %s: %s", key, work.sender, live[0], done.why)
    return done.outcome != "ended"
