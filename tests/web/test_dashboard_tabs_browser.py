"""Twenty task tabs in one browser: one live connection between them, every tab live, the
buttons and the list still answering."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from orchestrator.models import utcnow
from orchestrator.services import Services
from orchestrator.tokens import create_token, revoke_token
from tests.live import LiveApi, serve
from tests.waiting import wait_until
from tests.web.dashboard import running, streams_open, tasks_followed
from tests.web.test_connections import QUICK
from tests.web.test_dashboard_browser import sign_in, submit

TABS = 20


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'autan.db'}"


def test_twenty_task_tabs_share_one_connection_and_stay_live(
    page: Page, live_api: LiveApi, services: Services
) -> None:
    tasks = [running(services, f"tab task {n}") for n in range(TABS)]
    sign_in(page, live_api, f"/tasks/{tasks[0][0]}")
    tabs = [page] + [page.context.new_page() for _ in range(TABS - 1)]
    for tab, (task_id, _) in zip(tabs[1:], tasks[1:], strict=True):
        tab.goto(f"{live_api.url}/tasks/{task_id}")
    for tab in tabs:  # each tab drew its task's backlog
        expect(tab.locator('.attempt li[data-kind="attempt.state"]')).to_have_count(1)
    # One stream for the whole browser, not one per tab (a browser allows six per host).
    wait_until(
        lambda: streams_open(live_api.url) == {"live": 1.0, "task": 0.0, "long-poll": 0.0},
        timeout=60,
        what="one live stream for twenty tabs",
    )
    wait_until(lambda: tasks_followed(live_api.url) == TABS, timeout=60, what="twenty tasks")

    # Events added to the store reach every tab.
    for n, (_, claim) in enumerate(tasks):
        services.lifecycle.claims.emit(claim, "model.message", {"text": f"live in tab {n}"})
    for n, tab in enumerate(tabs):
        expect(tab.locator('li[data-kind="model.message"] pre')).to_have_text(f"live in tab {n}")

    # The last tab's Cancel answers, and the tab shows it.
    last = tabs[-1]
    last.get_by_role("button", name="Cancel task").click()
    expect(last.locator("#task-state")).to_have_text("cancelled")
    assert services.lifecycle.get(tasks[-1][0]).state == "cancelled"

    # The list page still refreshes beside them: a task submitted now appears in it.
    listing = page.context.new_page()
    listing.goto(f"{live_api.url}/tasks")
    expect(listing.locator("a.task-link")).to_have_count(TABS)
    submit(live_api, "submitted while twenty tabs are open")
    expect(listing.locator("a.task-link").first).to_have_text(
        "submitted while twenty tabs are open"
    )

    # A tab closing unsubscribes (its task ended: dropped already); the rest stay live.
    for tab in tabs[10:]:
        tab.close()
    wait_until(lambda: tasks_followed(live_api.url) == 10, timeout=60, what="ten tasks followed")
    services.lifecycle.claims.emit(tasks[0][1], "model.message", {"text": "still live"})
    expect(page.locator('li[data-kind="model.message"] pre')).to_have_text(
        ["live in tab 0", "still live"]
    )
    wait_until(
        lambda: streams_open(live_api.url)["live"] == 1.0, timeout=60, what="one live stream"
    )


def test_without_shared_worker_a_page_holds_its_own_live_stream(
    page: Page, live_api: LiveApi, services: Services
) -> None:
    task_id, claim = running(services, "a browser without SharedWorker")
    page.add_init_script("delete window.SharedWorker")
    sign_in(page, live_api, f"/tasks/{task_id}")
    assert page.evaluate("typeof SharedWorker") == "undefined"
    expect(page.locator('.attempt li[data-kind="attempt.state"]')).to_have_count(1)
    services.lifecycle.claims.emit(claim, "model.message", {"text": "live without a worker"})
    expect(page.locator('li[data-kind="model.message"] pre')).to_have_text("live without a worker")
    assert streams_open(live_api.url)["live"] == 1.0
    assert tasks_followed(live_api.url) == 1.0
    # The task's end ends the page's stream: the page closes it, and the server lets it go.
    page.get_by_role("button", name="Cancel task").click()
    expect(page.locator("#task-state")).to_have_text("cancelled")
    wait_until(lambda: tasks_followed(live_api.url) == 0.0, timeout=60, what="the task dropped")


def test_a_revoked_token_closes_the_shared_stream_in_every_tab(
    page: Page, services: Services
) -> None:
    with services.sessions.begin() as session:
        token = create_token(session, name="watcher", is_admin=True, now=utcnow())
    live = serve(services, token, **QUICK)
    try:
        tasks = [running(services, f"watched {n}") for n in range(2)]
        sign_in(page, live, f"/tasks/{tasks[0][0]}")
        second = page.context.new_page()
        second.goto(f"{live.url}/tasks/{tasks[1][0]}")
        for tab in (page, second):
            expect(tab.locator('.attempt li[data-kind="attempt.state"]')).to_have_count(1)
        wait_until(lambda: tasks_followed(live.url) == 2.0, what="both tasks on the stream")
        with services.sessions.begin() as session:
            revoke_token(session, name="watcher", now=utcnow())
        for tab in (page, second):
            expect(tab.locator("#task-events li").last).to_have_text("stream closed")
        wait_until(lambda: streams_open(live.url)["live"] == 0.0, what="the stream let go")
    finally:
        live.stop()
