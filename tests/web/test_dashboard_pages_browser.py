"""Every page in Chromium: no sideways scrolling at 390 px, screenshots at 390 and 1366 px,
nothing from another origin, a readable trajectory, and a sign-in forged from another port."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from orchestrator.base import AttemptOutcome
from orchestrator.models import Workspace
from orchestrator.services import Services
from orchestrator.states import AttemptState
from tests.live import LiveApi, free_port, serve
from tests.web.conftest import screenshot
from tests.web.test_dashboard_browser import sign_in, submit

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}
LONG = "refactor_" * 30  # one word longer than a phone is wide


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'autan.db'}"


@pytest.fixture
def live(services: Services, admin_token: str) -> Iterator[LiveApi]:
    served = serve(services, admin_token, api_docs=True)
    yield served
    served.stop()


def two_attempts_calling_alike(live: LiveApi, services: Services) -> str:
    """A task whose two attempts both number their first tool call `call_1`."""
    task_id = submit(live, f"Make the build faster\n{LONG}", attempts=2)
    lifecycle = services.lifecycle
    for attempt in lifecycle.get(task_id).attempts:
        claim = lifecycle.claims.claim(attempt.id, worker=f"worker-{attempt.number}")
        assert claim is not None
        command = {"command": f"echo attempt {attempt.number} {LONG}"}
        lifecycle.claims.emit(claim, "model.message", {"text": "Let me look.", "tool_calls": []})
        lifecycle.claims.emit(
            claim, "tool.call", {"id": "call_1", "name": "bash", "arguments": command}
        )
        output = {"id": "call_1", "name": "bash", "ok": True, "output": f"out of {attempt.number}"}
        lifecycle.claims.emit(claim, "tool.output", output)
    return task_id


def test_tool_calls_stay_in_their_attempt_and_events_read_as_words(
    page: Page, live: LiveApi, services: Services
) -> None:
    task_id = two_attempts_calling_alike(live, services)
    sign_in(page, live, f"/tasks/{task_id}")
    expect(page.locator("#task-heading")).to_contain_text("Make the build faster")
    expect(page).to_have_title("Make the build faster · Autan")
    for number in (1, 2):
        column = page.locator(".attempt").nth(number - 1)
        call = column.locator('li[data-kind="tool.call"] details')
        expect(call.locator("pre").nth(1)).to_have_text(f"out of {number}")
        expect(call.locator("summary")).to_have_text("bash ✓")
        expect(column.locator('li[data-kind="tool.output"]')).to_have_count(0)  # folded in
        kinds = column.locator("li > .kind").all_inner_texts()
        assert kinds == ["Attempt", "Model", "Tool call"], kinds
    assert "." not in "".join(page.locator(".trajectory .kind").all_inner_texts())


def test_every_page_fits_a_phone_and_loads_only_from_this_origin(
    page: Page, live: LiveApi, services: Services
) -> None:
    task_id = two_attempts_calling_alike(live, services)
    with services.sessions.begin() as session:
        session.add(Workspace(key="laptop:/src/" + LONG, name=LONG, root="/src", created_by="x"))
    page.set_viewport_size(PHONE)
    page.goto(live.url + "/login")
    pages = {
        "login": None,
        "tasks": "/tasks",
        "task": f"/tasks/{task_id}",
        "new": "/new",
        "fleet": "/fleet",
        "workspaces": "/workspaces",
        "api-docs": "/docs",
        "not-found": "/tasks/" + "0" * 32,
    }
    widths = {}
    for name, path in pages.items():
        if path is None:
            expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        else:
            if name == "tasks":
                sign_in(page, live, path)
            page.goto(live.url + path)
        page.set_viewport_size(PHONE)
        expect(page.locator("main h1")).to_be_visible()
        widths[name] = page.evaluate("document.documentElement.scrollWidth")
        screenshot(page, f"{name}-390")
        page.set_viewport_size(DESKTOP)
        screenshot(page, f"{name}-1366")
    assert widths == {name: PHONE["width"] for name in pages}, widths


class Forger(BaseHTTPRequestHandler):
    """A page on another port of the same host: it plants its own sign-in CSRF cookie (cookies
    do not tell ports apart) and posts the sign-in form with the attacker's token."""

    target = ""
    token = ""

    def do_GET(self) -> None:
        body = (
            f'<form id="f" method="post" action="{self.target}/login">'
            '<input name="csrf" value="forged">'
            f'<input name="token" value="{self.token}"><input name="next" value="/tasks"></form>'
            "<script>document.getElementById('f').submit()</script>"
        ).encode()
        self.send_response(200)
        self.send_header("Set-Cookie", "autan_login_csrf=forged; Path=/login")
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_sign_in_forged_from_another_port_is_refused(
    browser: Browser, live: LiveApi, services: Services
) -> None:
    Forger.target, Forger.token = live.url, live.token  # the attacker's own valid token
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Forger)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    context = browser.new_context()
    try:
        victim = context.new_page()
        with victim.expect_response(live.url + "/login") as answer:
            victim.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        assert answer.value.status == 403
        expect(victim.locator("#error-detail")).to_contain_text("sent from another site")
        names = [c["name"] for c in context.cookies()]
        assert "autan_session" not in names, json.dumps(context.cookies())
    finally:
        context.close()
        server.shutdown()
        server.server_close()


def test_a_message_from_the_page_shows_in_its_attempt_and_when_it_was_read(
    page: Page, live: LiveApi, services: Services
) -> None:
    task_id = submit(live, "Make the build faster", attempts=2)
    [second_id] = [a.id for a in services.lifecycle.get(task_id).attempts if a.number == 2]
    claim = services.lifecycle.claims.claim(second_id, worker="worker-2")
    assert claim is not None
    sign_in(page, live, f"/tasks/{task_id}")
    page.fill("#message-text", "Use the cache in build.py")
    page.select_option("#message-attempt", "2")
    page.click("#message button[type=submit]")
    first, second = page.locator(".attempt").nth(0), page.locator(".attempt").nth(1)
    said = second.locator('li[data-kind="person.message"]')
    expect(said).to_contain_text("to attempt 2:")
    expect(said.locator("pre")).to_have_text("Use the cache in build.py")
    expect(first.locator('li[data-kind="person.message"]')).to_have_count(0)
    seq = int(said.get_attribute("data-seq") or 0)
    services.lifecycle.claims.emit(claim, "person.delivered", {"seq": seq, "step": 2})
    expect(second.locator('li[data-kind="person.delivered"]')).to_have_text(
        f"Read by the agentmessage {seq} before step 2"
    )


def test_continue_from_the_page_opens_the_new_task_linked_both_ways(
    page: Page, live: LiveApi, services: Services
) -> None:
    task_id = submit(live, "Make the build faster", attempts=1)
    lifecycle = services.lifecycle
    claim = lifecycle.claims.claim(lifecycle.get(task_id).attempts[0].id, worker="worker-1")
    assert claim is not None
    outcome = AttemptOutcome(summary="cached", diff="+cache\n", verified=True)
    lifecycle.claims.finish(claim, AttemptState.SUCCEEDED, outcome=outcome)
    sign_in(page, live, f"/tasks/{task_id}")
    page.fill("#continue-instruction", "Now cache the tests too")
    page.click("#continue button[type=submit]")
    expect(page.locator("#task-heading")).to_contain_text("Now cache the tests too")
    expect(page.locator("#continued-from")).to_have_text(f"{task_id}, attempt 1")
    later_id = page.url.rsplit("/", 1)[1]
    assert lifecycle.get(later_id).start_patch == "+cache\n"
    page.click("#continued-from")
    expect(page.locator("#continued-as a")).to_have_attribute("href", f"/tasks/{later_id}")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
