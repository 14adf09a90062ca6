"""The dashboard in a real browser, against the real app, a real worker and the scripted runner."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from orchestrator.services import Services
from tests.live import LiveApi
from tests.web.conftest import screenshot
from tests.workers import WorkerPool

DIFF = "--- a/app.py\n+++ b/app.py\n@@ -1,2 +1,2 @@\n def main():\n-    return 1\n+    return 2\n"


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    # One store is enough in a browser: the routes' own tests cover both databases.
    yield f"sqlite:///{tmp_path / 'autan.db'}"


def submit(live: LiveApi, instruction: str, **fields: object) -> str:
    r = httpx.post(
        f"{live.url}/api/tasks",
        json={"repo": "/srv/demo.git", "instruction": instruction, **fields},
        headers={"Authorization": f"Bearer {live.token}"},
    )
    assert r.status_code == 201, r.text
    task_id: str = r.json()["id"]
    return task_id


def sign_in(page: Page, live: LiveApi, then: str = "/tasks") -> None:
    page.goto(live.url + then)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("API token").fill(live.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(live.url + then)


def test_a_stranger_is_refused_and_sent_to_sign_in(page: Page, live_api: LiveApi) -> None:
    for path in ("/", "/tasks", "/new", "/fleet", "/workspaces"):
        page.goto(live_api.url + path)
        expect(page).to_have_url(re.compile(r"/login"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "login")
    page.get_by_label("API token").fill("autan_not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That token is not valid, or it was revoked.")
    api = page.request.get(live_api.url + "/api/tasks")
    assert api.status == 401
    assert page.context.cookies() == [] or all(
        c["name"] != "autan_session" for c in page.context.cookies()
    )


def test_start_a_task_from_the_form_and_watch_it_to_the_end(
    page: Page, live_api: LiveApi, workers: WorkerPool
) -> None:
    workers.start()
    sign_in(page, live_api, "/new")
    screenshot(page, "new")
    page.get_by_label("Repository").fill("/srv/demo.git")
    script = {
        "steps": 3,
        "diff": DIFF,
        "verified": True,
        "tests_outcome": "4 passed",
        "tokens": 120,
    }
    page.get_by_label("Instruction").fill(json.dumps(script))
    page.get_by_label("Attempts", exact=True).fill("1")
    page.get_by_role("button", name="Start task").click()
    expect(page).to_have_url(re.compile(r"/tasks/[0-9a-f]{32}$"))
    attempt = page.locator(".attempt").first
    # Live: the three model messages arrive, then the page redraws with the result.
    expect(attempt.locator('li[data-kind="model.message"]')).to_have_count(3, timeout=60_000)
    expect(page.locator("#task-state")).to_have_text("succeeded", timeout=60_000)
    expect(page.locator('#task-events li[data-kind="task.finished"]')).to_have_count(1)
    expect(attempt.locator('[data-role="state"]')).to_have_text("succeeded")
    expect(attempt).to_contain_text("4 passed")
    expect(attempt).to_contain_text("120 in · 120 out")
    # The redrawn page replays the trajectory from its stream a moment after it loads: wait
    # for the steps there, a snapshot taken at once may find none yet.
    steps = attempt.locator('li[data-kind="model.message"] pre')
    expect(steps).to_have_text(["step 1", "step 2", "step 3"])
    screenshot(page, "task")

    # Open the diff from the attempt: lines coloured by kind, exactly the attempt's diff.
    attempt.get_by_role("link", name=re.compile(r"6 lines")).click()
    expect(page).to_have_url(re.compile(r"\?attempt=1#diff$"))
    diff = page.locator("pre.diff")
    expect(diff.locator(".d-add")).to_have_text(["+    return 2"])
    expect(diff.locator(".d-del")).to_have_text(["-    return 1"])
    expect(diff.locator(".d-hunk")).to_have_text(["@@ -1,2 +1,2 @@"])
    assert diff.inner_text().rstrip("\n") == DIFF.rstrip("\n")
    screenshot(page, "diff")

    page.goto(live_api.url + "/tasks")
    row = page.locator("table.tasks tbody tr").first
    expect(row).to_contain_text("succeeded")
    expect(row).to_contain_text("1/1")
    expect(row).to_contain_text("web")


def test_cancel_a_running_task(
    page: Page, live_api: LiveApi, workers: WorkerPool, services: Services
) -> None:
    task_id = submit(live_api, json.dumps({"steps": 1, "wait_for": "/nonexistent"}))
    workers.start()
    sign_in(page, live_api, f"/tasks/{task_id}")
    expect(page.locator('.attempt li[data-kind="model.message"]')).to_have_count(1, timeout=60_000)
    expect(page.locator("#task-state")).to_have_text("running")
    page.get_by_role("button", name="Cancel task").click()
    expect(page.locator("#task-state")).to_have_text("cancelled")
    expect(page.locator(".attempt [data-role='state']")).to_have_text("cancelled", timeout=60_000)
    expect(page.get_by_role("button", name="Cancel task")).to_have_count(0)
    screenshot(page, "cancelled")
    view = services.lifecycle.get(task_id)
    assert view.state == "cancelled"
    assert view.reason == "cancelled by admin (dashboard)"
    assert [a.state for a in view.attempts] == ["cancelled"]


def test_forged_markup_is_rendered_as_text(
    page: Page, live_api: LiveApi, services: Services
) -> None:
    forged = '<script>window.pwned = 1</script><b id="bold">bold</b>'
    task_id = submit(live_api, forged + "\nsecond line")
    lifecycle = services.lifecycle
    claim = lifecycle.claims.claim(lifecycle.get(task_id).attempts[0].id, worker="test")
    assert claim is not None
    model_says = '<img id="img" src="x" onerror="window.pwned = 2">'
    lifecycle.claims.emit(claim, "model.message", {"text": model_says, "tool_calls": []})
    sign_in(page, live_api, f"/tasks/{task_id}")
    expect(page.locator("#instruction")).to_have_text(forged + "\nsecond line")
    expect(page.locator('li[data-kind="model.message"] pre')).to_have_text(model_says)
    assert page.locator("#bold, #img, main script").count() == 0
    assert page.evaluate("window.pwned") is None
    page.goto(live_api.url + "/tasks")
    expect(page.locator("a.task-link").first).to_have_text(forged)
    # The live refresh redraws the rows from JSON: still text after it.
    page.wait_for_function(
        "document.querySelector('a.task-link') && !document.querySelector('#bold')"
    )
    assert page.evaluate("window.pwned") is None
    screenshot(page, "forged-markup")


def test_network_connections_show_allowed_and_refused(
    page: Page, live_api: LiveApi, services: Services
) -> None:
    task_id = submit(live_api, "install the dependencies")
    lifecycle = services.lifecycle
    claim = lifecycle.claims.claim(lifecycle.get(task_id).attempts[0].id, worker="test")
    assert claim is not None
    allowed = {"host": "pypi.org", "port": 443, "allowed": True, "reason": "in the allowlist"}
    refused = {"host": "127.0.0.1", "port": 6379, "allowed": False,
               "reason": "address 127.0.0.1 is not in the allowlist"}  # fmt: skip
    lifecycle.claims.emit(claim, "network.connection", allowed)
    lifecycle.claims.emit(claim, "network.connection", refused)
    sign_in(page, live_api, f"/tasks/{task_id}")
    rows = page.locator('li[data-kind="network.connection"]')
    expect(rows.locator("code")).to_have_text(["allowed pypi.org:443", "refused 127.0.0.1:6379"])
    expect(rows.nth(1)).to_contain_text("address 127.0.0.1 is not in the allowlist")


def test_the_task_list_by_keyboard(page: Page, live_api: LiveApi) -> None:
    ids = [submit(live_api, f"task number {n}") for n in range(3)]
    sign_in(page, live_api)
    links = page.locator("a.task-link")
    expect(links).to_have_count(3)
    page.keyboard.press("j")
    expect(links.nth(0)).to_be_focused()
    page.keyboard.press("j")
    page.keyboard.press("ArrowDown")
    expect(links.nth(2)).to_be_focused()
    page.keyboard.press("k")
    expect(links.nth(1)).to_be_focused()
    # Focus is visible: the outline the stylesheet gives :focus-visible.
    outline = links.nth(1).evaluate("e => getComputedStyle(e).outlineStyle")
    assert outline == "solid"
    screenshot(page, "tasks")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{live_api.url}/tasks/{ids[1]}")
    expect(page.locator("#instruction")).to_have_text("task number 1")
    # The filter fields are labelled and filter the list.
    page.goto(live_api.url + "/tasks")
    page.get_by_label("State").select_option("queued")
    page.get_by_label("Origin").select_option("api")
    page.get_by_label("Repository").fill("/srv/other.git")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tr.empty")).to_contain_text("No tasks match these filters")


def test_fleet_and_workspaces_pages(page: Page, live_api: LiveApi) -> None:
    sign_in(page, live_api, "/fleet")
    expect(page.locator("#queue-depth")).to_have_text("0")
    expect(page.locator("#sandboxes")).to_have_text("0")
    screenshot(page, "fleet")
    page.get_by_role("link", name="Workspaces").click()
    expect(page.get_by_role("heading", name="Workspaces")).to_be_visible()
    expect(page.locator("main")).to_contain_text("sync daemon")
    screenshot(page, "workspaces")
