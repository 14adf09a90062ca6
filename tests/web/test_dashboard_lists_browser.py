"""The task list in Chromium: filters and pages through the form, live rows that keep a selection."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from orchestrator.services import Services
from tests.live import LiveApi
from tests.web.dashboard import many_tasks
from tests.web.test_dashboard_browser import sign_in


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    # The routes' own tests cover both databases; one is enough in a browser.
    yield f"sqlite:///{tmp_path / 'autan.db'}"


def refreshes(page: Page) -> int:
    return int(page.locator("#tasks").get_attribute("data-refreshes") or 0)


def after_a_refresh(page: Page) -> None:
    """Wait until the list has fetched and drawn (or skipped) once more."""
    seen = refreshes(page)
    later = "|".join(str(n) for n in range(seen + 1, seen + 100))
    expect(page.locator("#tasks")).to_have_attribute("data-refreshes", re.compile(f"^({later})$"))


def test_filters_and_pages_through_the_form(
    page: Page, live_api: LiveApi, services: Services
) -> None:
    made = many_tasks(services, 120)  # 40 from the web (n % 3 == 0), the rest from the CLI
    sign_in(page, live_api)
    rows = page.locator("table.tasks tbody tr")
    expect(rows).to_have_count(50)
    page.get_by_label("Origin").select_option("web")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"/tasks\?state=&origin=web&repo=&q=&since=&until=$"))
    expect(rows).to_have_count(40)
    page.get_by_label("Origin").select_option("")
    page.get_by_label("Instruction contains").fill("task 1")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(31)  # task 1, 10-19, 100-119
    expect(rows.first).to_have_attribute("data-id", made[0])
    page.get_by_role("link", name="Clear").click()
    page.get_by_role("link", name="Next page").click()
    expect(page).to_have_url(re.compile(r"\?cursor="))
    expect(rows.first).to_have_attribute("data-id", made[50])
    page.get_by_role("link", name="Next page").click()
    expect(rows).to_have_count(20)
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)
    page.get_by_role("link", name="Previous page").click()
    expect(rows.first).to_have_attribute("data-id", made[50])
    page.get_by_role("link", name="Previous page").click()
    expect(rows.first).to_have_attribute("data-id", made[0])
    expect(page.get_by_role("link", name="Previous page")).to_have_count(0)


def test_live_rows_change_alone_and_a_selection_stays(
    page: Page, live_api: LiveApi, services: Services
) -> None:
    made = many_tasks(services, 5)
    sign_in(page, live_api)
    row = {task_id: page.locator(f'tr[data-id="{task_id}"]') for task_id in made}
    expect(page.locator("table.tasks tbody tr")).to_have_count(5)
    # Tag every cell node: a redraw would replace them and lose the tags.
    page.evaluate("document.querySelectorAll('#tasks td').forEach(td => td.tagged = true)")
    services.lifecycle.cancel(made[1], by="test")
    expect(row[made[1]].locator(".state")).to_have_text("cancelled")
    untouched = page.evaluate(
        "Array.from(document.querySelectorAll('#tasks td')).every(td => td.tagged)"
    )
    assert untouched
    # A selection in the list holds the rows still; once it is gone, they catch up.
    page.evaluate(
        """() => {
        const cell = document.querySelector('#tasks tbody tr:nth-child(3) td.repo');
        const range = document.createRange();
        range.selectNodeContents(cell);
        getSelection().removeAllRanges();
        getSelection().addRange(range);
    }"""
    )
    services.lifecycle.cancel(made[3], by="test")
    after_a_refresh(page)
    after_a_refresh(page)
    expect(row[made[3]].locator(".state")).to_have_text("queued")
    assert page.evaluate("getSelection().toString()") == "r0"
    page.evaluate("getSelection().removeAllRanges()")
    expect(row[made[3]].locator(".state")).to_have_text("cancelled")
    # A task that arrives takes its place at the top, the others keep their nodes.
    newest = many_tasks(services, 1, start=datetime(2027, 1, 1, tzinfo=UTC))[0]
    expect(page.locator("table.tasks tbody tr").first).to_have_attribute("data-id", newest)
    expect(page.locator("table.tasks tbody tr")).to_have_count(6)
