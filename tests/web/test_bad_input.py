"""Bad request bodies: control characters, lone surrogates and huge inputs get a short 422."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def _post_raw(api: TestClient, raw: str) -> Any:
    return api.post(
        "/api/tasks", content=raw.encode(), headers={"Content-Type": "application/json"}
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("instruction", "fix\x00it"),
        ("instruction", "ring\x07the bell"),
        ("instruction", "escape \x1b[31m"),
        ("repo", "r\nx"),
        ("ref", "main\x00"),
        ("idempotency_key", "k\x01"),
    ],
)
def test_a_control_character_gets_422_naming_its_field(
    api: TestClient, field: str, value: str
) -> None:
    body = {"repo": "r", "instruction": "i", field: value}
    r = api.post("/api/tasks", json=body)
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", field]
    assert "control characters" in error["msg"]
    assert f"U+{ord(next(c for c in value if ord(c) < 32)):04X}" in error["msg"]
    assert api.get("/api/tasks").json()["items"] == []


def test_tabs_and_newlines_in_an_instruction_are_kept(api: TestClient) -> None:
    r = api.post("/api/tasks", json={"repo": "r", "instruction": "one\tcolumn\r\ntwo"})
    assert r.status_code == 201
    assert r.json()["instruction"] == "one\tcolumn\r\ntwo"


def test_a_lone_surrogate_gets_422_and_the_answer_is_valid_utf8(api: TestClient) -> None:
    r = _post_raw(api, '{"repo": "r", "instruction": "half \\ud800 a pair"}')
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "instruction"]
    assert error["input"] == "half \\ud800 a pair"
    r.content.decode("utf-8")  # strict: raises on anything not UTF-8
    assert api.get("/api/tasks").json()["items"] == []


def test_a_huge_refused_input_is_echoed_only_as_an_excerpt(api: TestClient) -> None:
    huge = "x" * 10_000_000
    r = api.post("/api/tasks", json={"repo": "r", "instruction": huge})
    assert r.status_code == 422
    assert len(r.content) < 2_000
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "instruction"]
    assert error["input"] == "x" * 200 + "... (10000000 characters)"
    nested = api.post("/api/tasks", json={"repo": ["y" * 5000], "instruction": "i"})
    assert nested.status_code == 422
    assert len(nested.content) < 2_000


def test_a_body_that_is_not_json_gets_422(api: TestClient) -> None:
    r = _post_raw(api, '{"repo": "r", "instruction": ')
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "json_invalid"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
fields = st.sampled_from(
    ["repo", "instruction", "ref", "attempts", "idempotency_key", "origin", "extra"]
)
bodies = st.one_of(
    st.dictionaries(fields, json_values, max_size=6),
    st.fixed_dictionaries(
        {"repo": st.text(max_size=40), "instruction": st.text(max_size=200)},
        optional={
            "ref": st.text(max_size=20) | st.none(),
            "attempts": st.integers(-5, 20) | st.none(),
            "idempotency_key": st.text(max_size=20) | st.none(),
            "origin": st.sampled_from(["api", "cli", "web", "slack", ""]),
        },
    ),
    json_values,
)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies)
def test_no_body_makes_post_tasks_answer_500(api: TestClient, body: Any) -> None:
    # ensure_ascii keeps lone surrogates as escapes, as a client's JSON encoder sends them.
    r = _post_raw(api, json.dumps(body, ensure_ascii=True))
    # 409: an idempotency key that an earlier example used with another body, as it should.
    assert r.status_code in (200, 201, 409, 422), (r.status_code, r.text[:500])
    r.content.decode("utf-8")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_nul_in_a_workspace_gets_422_naming_its_field(api: TestClient) -> None:
    # Workspace schemas (sync/) use the shared Line type: refused before the store sees it.
    r = api.post("/api/workspaces", json={"key": "k\x00", "name": "n", "root": "/r"})
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "key"]
    assert api.get("/api/workspaces").json() == []
