"""Errors a person meets are pages, a program's stay JSON; every response carries the security
headers; the API's docs are off unless asked for, and then only for the signed-in."""

from __future__ import annotations

from fastapi.testclient import TestClient

from orchestrator.services import Services
from tests.web.dashboard import browser_client, sign_in
from web.app import create_app
from web.config import WebSettings
from web.security import HEADERS


def assert_secured(r: object, what: str) -> None:
    headers = r.headers  # type: ignore[attr-defined]
    for name, value in HEADERS.items():
        if name == "Cache-Control" and what.endswith("events"):
            continue  # a stream sets its own
        if name == "Cache-Control" and what == "/static/app.css":  # a missing one: no-store
            assert headers.get(name) == "no-cache", what  # kept, revalidated by ETag
            continue
        assert headers.get(name) == value, (what, name, headers.get(name))


def test_dashboard_errors_are_pages_and_api_errors_json(
    services: Services, admin_token: str
) -> None:
    with browser_client(services) as client:
        sign_in(client, admin_token)
        for method, path, status, words in [
            ("GET", "/nowhere", 404, "Not Found"),
            ("GET", "/tasks/" + "0" * 32, 404, "no task with id"),
            ("GET", "/tasks/" + "0" * 32 + "?attempt=0", 422, "attempt: Input should be greater"),
            ("GET", "/tasks/x/cancel", 405, "GET is not how /tasks/x/cancel is used"),
            ("POST", "/tasks/x/cancel", 403, "CSRF token is missing or wrong"),
        ]:
            r = client.request(method, path)
            assert r.status_code == status, (path, r.text)
            assert r.headers["content-type"].startswith("text/html"), path
            assert words in r.text, (path, r.text)
            assert '<a href="/tasks">Go to the tasks</a>' in r.text
            assert_secured(r, path)
        for method, path, status in [
            ("GET", "/api/nowhere", 404),
            ("GET", "/api/tasks/" + "0" * 32, 404),
            ("GET", "/api/tasks?limit=0", 422),
            ("DELETE", "/api/tasks", 405),
            ("POST", "/api/tasks", 401),  # a cookie never authorises a change
            ("POST", "/hooks/github", 503),
        ]:
            r = client.request(method, path)
            assert r.status_code == status, (path, r.text)
            assert r.headers["content-type"] == "application/json", path
            assert r.json()["detail"], path
            assert_secured(r, path)


def test_every_kind_of_response_carries_the_security_headers(
    api: TestClient, services: Services
) -> None:
    task = api.post("/api/tasks", json={"repo": "r", "instruction": "i"}).json()
    services.lifecycle.cancel(task["id"], by="test")
    for path in [
        "/static/app.css",
        "/static/missing.js",
        "/livez",
        "/readyz",
        "/metrics",
        "/login",
        "/tasks",
        "/api/tasks",
        f"/api/tasks/{task['id']}/events",
    ]:
        r = api.get(path, follow_redirects=False)
        assert r.status_code in (200, 303, 404, 503), (path, r.status_code)
        assert_secured(r, path)
    css = api.get("/static/app.css")
    again = api.get("/static/app.css", headers={"If-None-Match": css.headers["etag"]})
    assert again.status_code == 304
    assert_secured(again, "/static/app.css")


def test_api_docs_are_off_by_default(services: Services, admin_token: str) -> None:
    with browser_client(services) as client:
        sign_in(client, admin_token)
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            assert client.get(path).status_code == 404, path
        bearer = {"Authorization": f"Bearer {admin_token}"}
        assert client.get("/openapi.json", headers=bearer).status_code == 404


def test_api_docs_when_on_need_sign_in_and_load_nothing_from_elsewhere(
    services: Services, admin_token: str
) -> None:
    with browser_client(services, WebSettings(api_docs=True)) as client:
        for path in ("/docs", "/redoc"):
            r = client.get(path, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
        assert client.get("/openapi.json").status_code == 401
        sign_in(client, admin_token)
        docs = client.get("/docs")
        assert docs.status_code == 200
        assert '<code class="method">POST</code> <code class="repo">/api/tasks</code>' in docs.text
        assert (
            "http://" not in docs.text and "https://" not in docs.text and "//cdn" not in docs.text
        )
        assert client.get("/redoc", follow_redirects=False).headers["location"] == "/docs"
        schema = client.get("/openapi.json").json()  # the session cookie reads it
        assert "/api/tasks" in schema["paths"]


def test_a_fault_of_ours_is_a_500_with_the_headers_and_no_traceback(services: Services) -> None:
    app = create_app(services, WebSettings())

    def broken() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", broken)
    app.add_api_route("/api/boom", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        page, api = client.get("/boom"), client.get("/api/boom")
    assert page.status_code == api.status_code == 500
    assert page.headers["content-type"].startswith("text/html") and "went wrong" in page.text
    assert api.json()["detail"].startswith("Something went wrong on the server")
    for r in (page, api):
        assert "secret internals" not in r.text
        assert_secured(r, "500")
