"""The scripted model server on the wire, read with a bare HTTP client: what any client sees."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.errors import ScriptInvalid
from serving.script import load_script
from serving.scripted import ScriptedServer

USER = {"role": "user", "content": "fix the failing test"}


def post(server: ScriptedServer, **body: Any) -> httpx.Response:
    payload = {"model": "scripted", "messages": [USER], **body}
    return httpx.post(f"{server.url}/chat/completions", json=payload, timeout=10)


def sse(response: httpx.Response) -> list[Any]:
    lines = [line for line in response.text.split("\n\n") if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line[6:]) for line in lines[:-1]]


def test_stream_splits_tool_call_arguments_and_ends_with_usage(
    scripted: Callable[..., ScriptedServer],
) -> None:
    server = scripted()
    response = post(server, stream=True, stream_options={"include_usage": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = sse(response)

    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    fragments = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    first_call = [f for f in fragments if f["index"] == 0]
    assert first_call[0]["function"] == {"name": "bash", "arguments": ""}
    assert len(first_call[0]["id"]) == 9
    assert len(first_call) >= 3  # name, then the arguments in pieces
    assert "".join(f["function"]["arguments"] for f in first_call) == '{"command": "ls -la src/"}'
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    usage = chunks[-1]["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_rules_come_before_turns_and_see_the_last_tool_result(
    scripted: Callable[..., ScriptedServer],
) -> None:
    server = scripted()
    tools = [{"type": "function", "function": {"name": "add", "parameters": {}}}]
    first = post(server, tools=tools).json()["choices"][0]
    call = first["message"]["tool_calls"][0]
    assert call["function"] == {"name": "add", "arguments": '{"a": 2, "b": 3}'}
    assert first["finish_reason"] == "tool_calls"

    messages = [
        USER,
        first["message"],
        {"role": "tool", "tool_call_id": call["id"], "content": "5"},
    ]
    second = post(server, tools=tools, messages=messages).json()
    assert second["choices"][0]["message"] == {"role": "assistant", "content": "2 + 3 = 5."}
    assert second["choices"][0]["finish_reason"] == "stop"


def test_strict_mode_refuses_what_mistral_refuses(scripted: Callable[..., ScriptedServer]) -> None:
    server = scripted(mistral_strict=True)
    call = {"id": "call_1", "type": "function", "function": {"name": "bash", "arguments": "{}"}}
    bad_id = [
        USER,
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "x"},
    ]
    ok_call = {**call, "id": "abcDEF123"}
    user_after_tool = [
        USER,
        {"role": "assistant", "tool_calls": [ok_call]},
        {"role": "tool", "tool_call_id": "abcDEF123", "content": "x"},
        {"role": "user", "content": "more"},
    ]

    refused_id = post(server, messages=bad_id)
    refused_order = post(server, messages=user_after_tool)
    accepted = post(server, messages=user_after_tool[:3])

    assert refused_id.status_code == 400
    assert "must be a-z, A-Z, 0-9, with a length of 9" in refused_id.json()["message"]
    assert refused_order.status_code == 400
    assert refused_order.json()["message"] == "Unexpected role 'user' after role 'tool'"
    assert accepted.status_code == 200
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("script", "body", "status", "message"),
    [
        ({}, {"model": "other"}, 404, "The model `other` does not exist."),
        (
            {"supports_tools": False},
            {"tools": [{"type": "function", "function": {"name": "x"}}]},
            400,
            '"auto" tool choice requires --enable-auto-tool-choice',
        ),
        ({"fallback": None}, {}, 400, "script_exhausted: the script has no reply for turn 0"),
        ({}, {"messages": []}, 400, "`messages` must be a non-empty list"),
        (
            {},
            {"messages": [USER, {"role": "tool", "tool_call_id": "abcDEF123", "content": "x"}]},
            400,
            "which was never made",
        ),
    ],
)
def test_bad_requests_get_a_clear_error(
    scripted: Callable[..., ScriptedServer],
    script: dict[str, Any],
    body: dict[str, Any],
    status: int,
    message: str,
) -> None:
    server = scripted({"fallback": {"content": "hi"}, **script})
    response = post(server, **body)
    assert response.status_code == status
    assert message in response.json()["message"]
    assert response.json()["object"] == "error"
    assert server.requests == []


def test_health_and_models(scripted: Callable[..., ScriptedServer]) -> None:
    server = scripted(model="devstral-scripted")
    root = server.url.removesuffix("/v1")
    assert httpx.get(f"{root}/health").status_code == 200
    models = httpx.get(f"{server.url}/models").json()
    assert [m["id"] for m in models["data"]] == ["devstral-scripted"]


def test_scripts_load_from_json_and_toml(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps({"turns": [{"content": "hi"}], "delay_ms": 300}))
    (tmp_path / "s.toml").write_text(
        'model = "m"\n[[rules]]\nwhen = { user_contains = "test" }\n'
        'reply = { tool_calls = [{ name = "bash", arguments = { command = "pytest" } }] }\n'
    )
    from_json = load_script(tmp_path / "s.json")
    from_toml = load_script(tmp_path / "s.toml")
    assert from_json.delay_ms == 300 and from_json.turns[0].content == "hi"
    assert from_toml.model == "m"
    assert from_toml.rules[0].reply.tool_calls[0].arguments == {"command": "pytest"}


def test_a_bad_script_says_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"turns": [{"content": "hi", "tool_cals": []}]}))
    with pytest.raises(ScriptInvalid, match="tool_cals"):
        load_script(path)
    with pytest.raises(ScriptInvalid, match=r"missing\.json"):
        load_script(tmp_path / "missing.json")
