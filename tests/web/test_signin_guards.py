"""Sign-in's guards: the Origin of every dashboard change, rate limits on sign-in and on the
API's changes, and where a form posted after the session ended lands."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import anyio
import pytest
import redis.asyncio as aioredis
from fastapi.testclient import TestClient

from orchestrator.services import Services
from tests.web.dashboard import browser_client, csrf_of, sign_in
from web.app import create_app
from web.config import WebSettings
from web.rate_limits import Rate, RateLimiter

OTHER_PORT = "http://testserver:29200"


def test_a_sign_in_or_a_change_from_another_origin_is_refused(
    services: Services, admin_token: str
) -> None:
    with browser_client(services) as client:
        # The forgery from another port of the same host: its own double-submit cookie
        # and form, and a valid token (the attacker's), posted with the victim's browser.
        client.cookies.set("autan_login_csrf", "forged", path="/login")
        for origin in (OTHER_PORT, "null", "https://testserver"):
            r = client.post(
                "/login",
                data={"csrf": "forged", "token": admin_token},
                headers={"Origin": origin},
                follow_redirects=False,
            )
            assert r.status_code == 403, origin
            assert "sent from another site" in r.text and "autan_session" not in client.cookies
        # A Referer stands in for a missing Origin, and is held to the same rule.
        r = client.post(
            "/login",
            data={"csrf": "forged", "token": admin_token},
            headers={"Referer": OTHER_PORT + "/evil"},
            follow_redirects=False,
        )
        assert r.status_code == 403
        ok = client.post(
            "/login",
            data={"csrf": "forged", "token": admin_token},
            headers={"Origin": "http://testserver"},
            follow_redirects=False,
        )
        assert ok.status_code == 303 and "autan_session" in client.cookies
        csrf = csrf_of(client.get("/tasks").text)
        # The dashboard's own forms are checked the same way.
        made = client.post(
            "/new",
            data={"csrf": csrf, "repo": "r", "instruction": "i"},
            headers={"Origin": OTHER_PORT},
            follow_redirects=False,
        )
        assert made.status_code == 403
        out = client.post("/logout", data={"csrf": csrf}, headers={"Origin": OTHER_PORT})
        assert out.status_code == 403 and "autan_session" in client.cookies
        mine = client.post(
            "/new",
            data={"csrf": csrf, "repo": "r", "instruction": "i"},
            headers={"Origin": "http://testserver"},
            follow_redirects=False,
        )
        assert mine.status_code == 303


def test_sign_in_attempts_are_limited_with_retry_after(
    services: Services, admin_token: str
) -> None:
    with browser_client(services, WebSettings(signin_rate="3/60")) as client:
        page = client.get("/login")
        for _ in range(3):
            r = client.post("/login", data={"csrf": csrf_of(page.text), "token": "autan_guess"})
            assert r.status_code == 401
        r = client.post("/login", data={"csrf": csrf_of(page.text), "token": admin_token})
        assert r.status_code == 429
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert "Too many sign-in attempts" in r.text
        assert "autan_session" not in client.cookies


def test_the_limiter_counts_each_key_and_says_how_long_to_wait(redis_url: str) -> None:
    # A loop of its own on a thread of its own: the browser tests' session-wide Playwright keeps
    # an event loop running in this thread once they have run.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(anyio.run, limits, redis_url).result(timeout=60)


async def limits(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    limiter = RateLimiter(client, "t", Rate(2, 30))
    assert await limiter.hit("address:a", "token:x") is None
    assert await limiter.hit("address:a", "token:y") is None
    wait = await limiter.hit("address:a", "token:z")  # the address is over, the token is not
    assert wait is not None and 1 <= wait <= 30
    assert await limiter.hit("address:b", "token:z") is None
    assert await limiter.hit("address:c", "token:z") is not None  # token z: its third
    keys = [k.decode() async for k in client.scan_iter("autan:rate:t:*")]
    assert len(keys) == 6 and not any("address" in k or "token" in k for k in keys)
    await client.aclose()


@pytest.mark.parametrize("text", ["10", "0/60", "10/0", "ten/60", "-1/60", ""])
def test_a_bad_rate_is_refused_with_the_form_it_takes(text: str) -> None:
    with pytest.raises(ValueError, match=r"COUNT/SECONDS|at least 1"):
        WebSettings(signin_rate=text)


def test_api_changes_are_limited_per_token_and_reads_are_not(
    services: Services, admin_token: str
) -> None:
    app = create_app(services, WebSettings(write_rate="2/60"))
    with TestClient(app, headers={"Authorization": f"Bearer {admin_token}"}) as api:
        for _ in range(2):
            assert api.post("/api/tasks", json={"repo": "r", "instruction": "i"}).status_code == 201
        r = api.post("/api/tasks", json={"repo": "r", "instruction": "i"})
        assert r.status_code == 429
        assert r.json()["detail"].startswith("too many changes from this address or token")
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert len(api.get("/api/tasks").json()["items"]) == 2  # reads go on; nothing made


def test_a_form_posted_after_the_session_ended_comes_back_to_its_page(
    services: Services, admin_token: str
) -> None:
    with browser_client(services) as client:
        csrf = sign_in(client, admin_token)
        made = client.post(
            "/new", data={"csrf": csrf, "repo": "r", "instruction": "i"}, follow_redirects=False
        )
        page = made.headers["location"]
        client.cookies.delete("autan_session")
        stale = client.post(
            page + "/cancel",
            data={"csrf": csrf},
            headers={"Referer": "http://testserver" + page},
            follow_redirects=False,
        )
        assert stale.status_code == 303
        assert stale.headers["location"] == "/login?next=" + page.replace("/", "%2F")
        page_html = client.get("/login?next=" + page).text
        back = client.post(
            "/login",
            data={"csrf": csrf_of(page_html), "token": admin_token, "next": page},
            follow_redirects=False,
        )
        assert back.headers["location"] == page
        assert client.get(page).status_code == 200  # a page, not a 405 of the POST route
        # No Referer (or one from elsewhere): the task list, never the POST route.
        client.cookies.delete("autan_session")
        for headers in ({}, {"Referer": OTHER_PORT + page}):
            r = client.post(page + "/cancel", data={}, headers=headers, follow_redirects=False)
            assert r.headers["location"] == "/login?next=%2Ftasks"
