"""Task lists: filters that combine, "any" meaning none, pages both ways, in the API and on /tasks."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

from orchestrator.services import Services
from tests.web.dashboard import browser_client, many_tasks, sign_in

NEXT = re.compile(r'href="/tasks\?([^"]+)" rel="next"')
PREV = re.compile(r'href="/tasks\?([^"]+)" rel="prev"')
ROW = re.compile(r'<tr data-id="([0-9a-f]{32})">')


def ids(api: TestClient, **params: Any) -> list[str]:
    r = api.get("/api/tasks", params={"limit": 200, **params})
    assert r.status_code == 200, r.text
    return [t["id"] for t in r.json()["items"]]


def test_api_filters_combine_and_any_or_empty_is_no_filter(
    api: TestClient, services: Services
) -> None:
    made = many_tasks(services, 12)  # newest first: task 11 .. task 0
    everything = ids(api)
    assert everything == made
    assert ids(api, state="", origin="", repo="", q="", since="", until="") == made
    assert ids(api, state="any", origin="ANY") == made
    # task n: repo r{n%2}, origin web when n%3 == 0; newest first is made[11 - n].
    web_r0 = [made[11 - n] for n in (6, 0)]
    assert ids(api, origin="web", repo="r0") == web_r0
    assert ids(api, origin="web", repo="r0", state="queued") == web_r0
    assert ids(api, origin="web", repo="r0", state="cancelled") == []
    assert ids(api, q="TASK 1") == [made[11 - n] for n in (11, 10, 1)]
    assert ids(api, q="%") == [] and ids(api, q="_") == []  # LIKE's wildcards are literal
    # A minute apart from 2026-01-01 00:00 UTC; `until` is a moment here, not a day.
    window = ids(api, since="2026-01-01T00:03:00", until="2026-01-01T00:06:00+00:00")
    assert window == [made[11 - n] for n in (5, 4, 3)]
    assert ids(api, since="2026-01-01", until="2026-01-01") == made  # one whole day
    assert ids(api, since="2026-01-02") == []


def test_api_bad_filters_are_422_with_the_reason(api: TestClient) -> None:
    for params, reason in [
        ({"state": "bogus"}, "state: 'bogus' is not one of queued"),
        ({"origin": "mail"}, "origin: 'mail' is not one of cli"),
        ({"since": "yesterday"}, "since: 'yesterday' is not a date (YYYY-MM-DD)"),
        ({"since": "2026-02-01", "until": "2026-01-01"}, "since: must come before until"),
        ({"q": "x" * 201}, "q: at most 200 characters"),
        ({"cursor": "!!"}, "cursor: not one that a list of tasks gave out"),
        ({"before": "bm90IGEgY3Vyc29y"}, "cursor: not one that a list of tasks gave out"),
    ]:
        r = api.get("/api/tasks", params=params)
        assert r.status_code == 422, params
        assert r.json()["detail"].startswith(reason), (params, r.json())


def test_api_pages_both_ways_with_the_filters(api: TestClient, services: Services) -> None:
    made = many_tasks(services, 30)
    r1 = [m for n, m in enumerate(made) if (29 - n) % 2 == 1]  # 15 tasks in repo r1
    pages, page = [], api.get("/api/tasks", params={"repo": "r1", "limit": 4}).json()
    assert page["prev_cursor"] is None
    while True:
        pages.append([t["id"] for t in page["items"]])
        if not page["next_cursor"]:
            break
        page = api.get(
            "/api/tasks", params={"repo": "r1", "limit": 4, "cursor": page["next_cursor"]}
        ).json()
    assert [len(p) for p in pages] == [4, 4, 4, 3]
    assert [task for p in pages for task in p] == r1
    # Back from the last page to the first, each page the same as on the way down.
    back = []
    while page["prev_cursor"]:
        page = api.get(
            "/api/tasks", params={"repo": "r1", "limit": 4, "before": page["prev_cursor"]}
        ).json()
        back.append([t["id"] for t in page["items"]])
    assert back == pages[-2::-1]


def test_the_list_page_filters_pages_and_never_answers_raw_json(
    services: Services, admin_token: str
) -> None:
    made = many_tasks(services, 1000)
    with browser_client(services) as client:
        sign_in(client, admin_token)
        # The form's "any" sends empty fields: the whole list, not a 422.
        first = client.get("/tasks?state=&origin=&repo=&q=&since=&until=")
        assert first.status_code == 200
        assert 'rel="prev"' not in first.text
        # All 1,000 reachable by "Next page", the filters kept in each link.
        seen, html = [], first.text
        while True:
            seen += ROW.findall(html)
            found = NEXT.search(html)
            if not found:
                break
            html = client.get("/tasks?" + found.group(1).replace("&amp;", "&")).text
        assert seen == made
        # And back by "Previous page" to the first.
        pages_back = 0
        while found := PREV.search(html):
            html = client.get("/tasks?" + found.group(1).replace("&amp;", "&")).text
            pages_back += 1
        assert pages_back == 19 and ROW.findall(html) == made[:50]
        # Filters only: origin alone, repository alone, text alone.
        web = client.get("/tasks?state=&origin=web&repo=")
        assert ROW.findall(web.text)[:2] == [made[0], made[3]]  # tasks 999 and 996
        link = NEXT.search(web.text)
        assert link and "origin=web" in link.group(1) and "state" not in link.group(1)
        text = client.get("/tasks", params={"q": "task 99", "repo": "r1"})
        assert ROW.findall(text.text) == [made[0], made[2], made[4], made[6], made[8], made[900]]
        # A wrong filter is a page that says what is wrong, with the form kept.
        bad = client.get("/tasks?state=bogus&repo=r1")
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("text/html")
        assert "state: &#39;bogus&#39; is not one of" in bad.text
        assert 'value="r1"' in bad.text and ROW.findall(bad.text) == []
        broken = client.get("/tasks?cursor=!!")
        assert broken.status_code == 422
        assert "not one that a list of tasks gave out" in broken.text


def test_an_unchanged_page_is_a_304_without_a_body(api: TestClient, services: Services) -> None:
    made = many_tasks(services, 3)
    first = api.get("/api/tasks", params={"repo": "r0"})
    etag = first.headers["etag"]
    again = api.get("/api/tasks", params={"repo": "r0"}, headers={"If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    other = api.get("/api/tasks", params={"repo": "r1"}, headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.json()["items"][0]["id"] == made[1]
    services.lifecycle.cancel(made[0], by="test")  # one task in the page changes
    changed = api.get("/api/tasks", params={"repo": "r0"}, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.json()["items"][0]["state"] == "cancelled"
