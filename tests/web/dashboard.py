"""Helpers for the dashboard tests: a signed-in TestClient, and the CSRF token of a page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient

from orchestrator.services import Services
from web.app import create_app
from web.config import WebSettings

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


@contextmanager
def browser_client(services: Services, settings: WebSettings | None = None) -> Iterator[TestClient]:
    """The app in-process, with no Authorization header: it must sign in like a browser."""
    with TestClient(create_app(services, settings or WebSettings())) as client:
        yield client


def sign_in(client: TestClient, token: str) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    page = client.get("/login")
    r = client.post(
        "/login",
        data={"csrf": csrf_of(page.text), "token": token, "next": "/tasks"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/tasks").text)
