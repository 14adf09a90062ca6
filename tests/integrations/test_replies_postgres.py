"""Replies from a Slack thread and a pull request passed on to the running task, on PostgreSQL
too (the rest of these tests run on SQLite): the thread's task is found, the message stored once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integrations.test_github_messages import (  # noqa: F401 (the fixture, collected here)
    running,
    test_on_a_finished_task_s_pull_request_a_follow_up_starts_and_takes_the_next_comments,
)
from tests.integrations.test_slack_replies import (
    test_a_reply_in_the_thread_reaches_the_agent_once,
    test_a_stranger_and_a_viewer_are_refused_politely_in_the_thread,
)
from tests.services import PostgresDatabases

__all__ = [
    "test_a_reply_in_the_thread_reaches_the_agent_once",
    "test_a_stranger_and_a_viewer_are_refused_politely_in_the_thread",
    "test_on_a_finished_task_s_pull_request_a_follow_up_starts_and_takes_the_next_comments",
]


@pytest.fixture
def database_url(postgres: PostgresDatabases) -> Iterator[str]:
    url = postgres.create()
    yield url
    postgres.drop(url)
