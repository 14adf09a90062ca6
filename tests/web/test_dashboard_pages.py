"""The dashboard's routes in-process: sign-in, sessions, CSRF, escaping and the task buttons."""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from orchestrator import store
from orchestrator.base import AttemptOutcome
from orchestrator.live_link import FROM_CHECKOUT
from orchestrator.models import Task, Workspace, utcnow
from orchestrator.schemas import TaskSpec
from orchestrator.services import Services
from orchestrator.states import AttemptState
from tests.web.dashboard import browser_client, csrf_of, sign_in
from web import sessions

PAGES = ["/tasks", "/new", "/fleet", "/workspaces"]


def new_task(client: TestClient, csrf: str, **fields: str) -> str:
    """The id of a task made with the dashboard's form."""
    made = client.post("/new", data={"csrf": csrf, **fields}, follow_redirects=False)
    assert made.status_code == 303, made.text
    return str(made.headers["location"].rsplit("/", 1)[1])


def finish_all(services: Services, task_id: str, outcome: Callable[[int], AttemptOutcome]) -> None:
    """Every attempt of the task claimed and ended as succeeded, with `outcome(its number)`."""
    lifecycle = services.lifecycle
    for attempt in lifecycle.get(task_id).attempts:
        claim = lifecycle.claims.claim(attempt.id, worker="w1")
        assert claim is not None
        lifecycle.claims.finish(claim, AttemptState.SUCCEEDED, outcome=outcome(attempt.number))


def count_tasks(services: Services) -> int:
    with services.sessions() as session:
        return session.scalar(select(func.count()).select_from(Task)) or 0


def test_pages_send_a_stranger_to_sign_in(services: Services) -> None:
    with browser_client(services) as client:
        root = client.get("/", follow_redirects=False)
        assert (root.status_code, root.headers["location"]) == (303, "/login")
        for page in PAGES:
            r = client.get(page, follow_redirects=False)
            assert r.status_code == 303
            assert r.headers["location"] == "/login?next=" + page.replace("/", "%2F")
        login = client.get("/login")
        assert login.status_code == 200
        assert '<label for="token">API token</label>' in login.text
        assert "default-src 'self'" in login.headers["content-security-policy"]
        # Without a session or a bearer token the JSON API and the stream refuse too.
        assert client.get("/api/tasks").status_code == 401


def test_sign_in_sets_a_safe_cookie_and_sign_out_ends_the_session(
    services: Services, admin_token: str
) -> None:
    with browser_client(services) as client:
        page = client.get("/login?next=%2Ffleet")
        assert 'name="next" value="/fleet"' in page.text
        r = client.post(
            "/login",
            data={"csrf": csrf_of(page.text), "token": admin_token, "next": "/fleet"},
            follow_redirects=False,
        )
        assert (r.status_code, r.headers["location"]) == (303, "/fleet")
        cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("autan_session="))
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert "Secure" not in cookie  # plain http here; https sets it
        session_id = client.cookies["autan_session"]
        assert admin_token not in cookie and session_id != admin_token
        assert services.redis.exists(sessions._key(session_id)) == 1

        tasks = client.get("/tasks")
        assert tasks.status_code == 200
        assert "admin" in tasks.text  # who is signed in
        # The cookie reads the JSON API (so EventSource works) but cannot change anything.
        assert client.get("/api/tasks").status_code == 200
        assert client.post("/api/tasks", json={"repo": "r", "instruction": "i"}).status_code == 401
        assert count_tasks(services) == 0

        out = client.post("/logout", data={"csrf": csrf_of(tasks.text)}, follow_redirects=False)
        assert (out.status_code, out.headers["location"]) == (303, "/login")
        assert services.redis.exists(sessions._key(session_id)) == 0
        client.cookies.set("autan_session", session_id)  # a copied cookie is dead too
        assert client.get("/tasks", follow_redirects=False).status_code == 303


def test_a_bad_token_or_a_forged_sign_in_form_gets_no_session(
    services: Services, admin_token: str
) -> None:
    with browser_client(services) as client:
        page = client.get("/login")
        bad = client.post(
            "/login",
            data={"csrf": csrf_of(page.text), "token": "autan_nope"},
            follow_redirects=False,
        )
        assert bad.status_code == 401
        assert "not valid" in bad.text
        forged = client.post(
            "/login", data={"csrf": "guessed", "token": admin_token}, follow_redirects=False
        )
        assert forged.status_code == 403
        assert "autan_session" not in client.cookies
        outside = client.post(
            "/login",
            data={"csrf": csrf_of(page.text), "token": admin_token, "next": "//evil.example/x"},
            follow_redirects=False,
        )
        assert (outside.status_code, outside.headers["location"]) == (303, "/tasks")


def test_forms_without_the_right_csrf_token_are_refused_and_create_nothing(
    services: Services, admin_token: str
) -> None:
    with browser_client(services) as client:
        csrf = sign_in(client, admin_token)
        form = {"repo": "/srv/repo.git", "instruction": "fix it", "attempts": "1"}
        assert client.post("/new", data=form, follow_redirects=False).status_code == 403
        wrong = client.post("/new", data={**form, "csrf": csrf[:-2] + "xx"}, follow_redirects=False)
        assert wrong.status_code == 403
        assert "CSRF token is missing or wrong" in wrong.text  # a page, not JSON
        assert count_tasks(services) == 0
        made = client.post("/new", data={**form, "csrf": csrf}, follow_redirects=False)
        assert made.status_code == 303
        task_id = made.headers["location"].rsplit("/", 1)[1]
        task = client.get(f"/api/tasks/{task_id}").json()
        assert (task["repo"], task["instruction"], task["attempts_requested"]) == (
            "/srv/repo.git",
            "fix it",
            1,
        )
        assert task["origin"] == {"kind": "web", "external_id": None, "data": {"token": "admin"}}
        # Buttons are forms too: no token, no cancel.
        assert client.post(f"/tasks/{task_id}/cancel", data={}).status_code == 403
        assert client.get(f"/api/tasks/{task_id}").json()["state"] == "queued"
        r = client.post(f"/tasks/{task_id}/cancel", data={"csrf": csrf}, follow_redirects=False)
        assert r.status_code == 303
        assert client.get(f"/api/tasks/{task_id}").json()["state"] == "cancelled"
        # And without a session a form post only leads to the sign-in page.
        client.cookies.clear()
        assert (
            client.post("/new", data={**form, "csrf": csrf}, follow_redirects=False).status_code
            == 303
        )
        assert count_tasks(services) == 1


def test_run_again_with_more_attempts_makes_a_new_task(
    services: Services, admin_token: str
) -> None:
    with browser_client(services) as client:
        csrf = sign_in(client, admin_token)
        made = client.post(
            "/new",
            data={"csrf": csrf, "repo": "r", "instruction": "do", "ref": "main", "attempts": "1"},
            follow_redirects=False,
        )
        first = made.headers["location"].rsplit("/", 1)[1]
        again = client.post(
            f"/tasks/{first}/again", data={"csrf": csrf, "attempts": "3"}, follow_redirects=False
        )
        second = again.headers["location"].rsplit("/", 1)[1]
        retry = client.post(f"/tasks/{first}/again", data={"csrf": csrf}, follow_redirects=False)
        third = retry.headers["location"].rsplit("/", 1)[1]
        views = [client.get(f"/api/tasks/{t}").json() for t in (second, third)]
        assert [len(v["attempts"]) for v in views] == [3, 1]
        assert all(v["ref"] == "main" and v["instruction"] == "do" for v in views)
        assert views[0]["origin"]["data"] == {"token": "admin"}
        assert [v["retry_of"] for v in views] == [first, first]
        assert client.get(f"/api/tasks/{first}").json()["retried_as"] == [second, third]
        original = client.get(f"/tasks/{first}").text
        assert f'href="/tasks/{second}"' in original and f'href="/tasks/{third}"' in original
        assert f'<a id="retry-of" href="/tasks/{first}">' in client.get(f"/tasks/{third}").text
        assert count_tasks(services) == 3


def test_a_bad_new_task_form_is_shown_again_with_the_reason(
    services: Services, admin_token: str
) -> None:
    with browser_client(services) as client:
        csrf = sign_in(client, admin_token)
        r = client.post("/new", data={"csrf": csrf, "repo": "", "instruction": "keep this"})
        assert r.status_code == 422
        assert 'id="repo-error"' in r.text
        assert "keep this</textarea>" in r.text
        assert count_tasks(services) == 0


def test_markup_from_users_and_models_is_shown_as_text(
    services: Services, admin_token: str
) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    with browser_client(services) as client:
        csrf = sign_in(client, admin_token)
        task_id = new_task(client, csrf, repo=evil, instruction=f"{evil}\nsecond line")
        with services.lifecycle.write() as (session, _):
            task = session.get(Task, task_id)
            assert task is not None
            task.origin.data = {
                **task.origin.data,
                "link": "javascript:alert(1)",
                "url": "https://sentry.example/i/1",
            }
        for page in (f"/tasks/{task_id}", "/tasks"):
            html = client.get(page).text
            assert "<script>alert" not in html
            assert "<img src=x" not in html
            assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
        detail = client.get(f"/tasks/{task_id}").text
        assert 'href="javascript:' not in detail
        assert 'href="https://sentry.example/i/1"' in detail


def test_the_task_page_shows_attempts_side_by_side_and_the_chosen_diff(
    services: Services, admin_token: str
) -> None:
    diff = "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-old <b>\n+new </pre>\n"
    with browser_client(services) as client:
        csrf = sign_in(client, admin_token)
        task_id = new_task(
            client, csrf, repo="r", instruction=json.dumps({"diff": diff}), attempts="2"
        )
        finish_all(
            services,
            task_id,
            lambda n: AttemptOutcome(
                summary=f"summary {n}",
                diff=diff if n == 1 else "+only two\n",
                verified=n == 1,
                tests_outcome="3 passed" if n == 1 else None,
                tokens_in=100 * n,
                tokens_out=10,
                cost_usd=0.25,
            ),
        )
        html = client.get(f"/tasks/{task_id}").text
        assert html.count('class="attempt"') == 2
        assert "3 passed" in html and "200 in · 10 out" in html
        assert "$0.50" in html  # the task's cost: both attempts
        assert '<span class="d-hunk">@@ -1 +1 @@</span>' in html
        assert '<span class="d-del">-old &lt;b&gt;</span>' in html
        assert '<span class="d-add">+new &lt;/pre&gt;</span>' in html
        assert "Diff of attempt 1" in html
        assert '<span class="state v-verified" data-role="verdict">verified</span>' in html
        assert '<span class="state v-unverified" data-role="verdict">unverified</span>' in html
        assert 'id="verified-means"' in html and "fresh sandbox over the base commit" in html
        other = client.get(f"/tasks/{task_id}?attempt=2").text
        assert "Diff of attempt 2" in other and '<span class="d-add">+only two</span>' in other


def test_the_task_page_is_headed_by_its_instruction_and_names_a_workspace(
    services: Services, admin_token: str
) -> None:
    with services.sessions.begin() as session:
        workspace = Workspace(key="laptop:/src/shop", name="shop", root="/src/shop", created_by="x")
        session.add(workspace)
        session.flush()
        spec = TaskSpec(
            repo=f"workspace:{workspace.id}@3", ref="a" * 64, instruction="Fix the cart\nmore"
        )
        task = store.create_task(session, spec=spec, attempts=1, created_by=None, now=utcnow())
        task_id, workspace_id = task.id, workspace.id
    with browser_client(services) as client:
        sign_in(client, admin_token)
        page = client.get(f"/tasks/{task_id}").text
        assert '<h1 id="task-heading">Fix the cart' in page
        assert "<title>Fix the cart · Autan</title>" in page
        assert f'<code class="commit">{task_id}</code>' in page
        assert (
            '<dd id="repo" title="workspace:' in page and ">workspace shop, version 3</dd>" in page
        )
        assert "a" * 64 + "</code>" not in page  # the manifest hash is not shown as a ref
        listed = client.get("/tasks").text
        assert f'<td class="repo">workspace {workspace_id[:8]}, version 3</td>' in listed
        long = "x" * 300
        other = client.post(
            "/new",
            data={"csrf": csrf_of(listed), "repo": "r", "instruction": long},
            follow_redirects=True,
        )
        assert f'<h1 id="task-heading">{"x" * 120}…' in other.text


def test_the_task_page_shows_the_changes_from_the_checkout_apart_from_the_agents_diff(
    services: Services, admin_token: str
) -> None:
    saved = "diff --git a/dev.md b/dev.md\nnew file mode 100644\n+saved <i>locally</i>\n"
    with browser_client(services) as client:
        csrf = sign_in(client, admin_token)
        task_id = new_task(client, csrf, repo="r", instruction="edit", attempts="2")
        finish_all(services, task_id, lambda n: AttemptOutcome(summary="s", diff=f"+agent {n}\n"))
        with services.sessions.begin() as session:
            data = {"attempt": 1, "workspace": "w", "paths": ["dev.md"], "diff": saved}
            store.add_event(session, task_id=task_id, kind=FROM_CHECKOUT, data=data, now=utcnow())
        first = client.get(f"/tasks/{task_id}?attempt=1").text
        assert '<span class="d-add">+agent 1</span>' in first
        assert '<h3 id="from-checkout">Changes from the checkout</h3>' in first
        assert '<span class="d-add">+saved &lt;i&gt;locally&lt;/i&gt;</span>' in first
        assert first.index("+agent 1") < first.index("from-checkout")
        second = client.get(f"/tasks/{task_id}?attempt=2").text
        assert '<span class="d-add">+agent 2</span>' in second
        assert "from-checkout" not in second and "saved &lt;i&gt;" not in second
