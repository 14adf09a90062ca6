"""Jira's intake and the worker job that stores its task, fuzzed on PostgreSQL too (the rest
of these tests run on SQLite): what SQLite takes and PostgreSQL refuses must be a 4xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.integrations.conftest import Wired
from tests.integrations.test_fuzz import FUZZ, jira_case
from tests.services import PostgresDatabases


@pytest.fixture
def database_url(postgres: PostgresDatabases) -> Iterator[str]:
    url = postgres.create()
    yield url
    postgres.drop(url)


@FUZZ
@given(data=st.data(), kind=st.sampled_from(["jira:issue_created", "jira:issue_updated"]))
def test_signed_jira_deliveries_never_get_500_on_postgresql(
    wired: Wired, data: Any, kind: str
) -> None:
    jira_case(wired, data, kind)
