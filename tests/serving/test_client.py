"""The client against the scripted server and flaky stand-ins: replies, streams, retries, errors."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest
from pydantic import SecretStr

from serving.base import Message, ToolCall, ToolSpec, Usage
from serving.client import OpenAIClient, retry_delay
from serving.errors import (
    EndpointUnreachable,
    ModelTimeout,
    RateLimited,
    RequestRejected,
    ServerFailed,
)
from serving.scripted import ScriptedServer
from tests.live import free_port
from tests.serving.conftest import fast
from tests.serving.flaky import FlakyServer

TOOLS = [
    ToolSpec("bash", "Run a command.", {"type": "object", "properties": {"command": {}}}),
    ToolSpec("read_file", "Read a file.", {"type": "object"}),
]
FIRST_CALLS = (
    ToolCall("", "bash", '{"command": "ls -la src/"}'),
    ToolCall("", "read_file", '{"path": "src/app.py", "start": 1, "end": 40}'),
)


def names_and_arguments(calls: tuple[ToolCall, ...]) -> list[tuple[str, str]]:
    return [(c.name, c.arguments) for c in calls]


def test_complete_returns_tool_calls_usage_and_sends_the_request_as_given(
    scripted: Callable[..., ScriptedServer],
) -> None:
    server = scripted()
    with OpenAIClient(fast(server.url)) as client:
        reply = client.complete([Message("user", "fix it")], tools=TOOLS, tool_choice="required")

    assert reply.message.role == "assistant"
    assert reply.message.content == "Let me look at the files."
    assert names_and_arguments(reply.message.tool_calls) == names_and_arguments(FIRST_CALLS)
    assert all(len(c.id) == 9 for c in reply.message.tool_calls)
    assert reply.finish_reason == "tool_calls"
    assert reply.model == "scripted"
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    assert reply.first_token_s is None
    [sent] = server.requests
    assert sent["model"] == "scripted"
    assert sent["messages"] == [{"role": "user", "content": "fix it"}]
    assert sent["tool_choice"] == "required"
    assert [t["function"]["name"] for t in sent["tools"]] == ["bash", "read_file"]
    assert "stream" not in sent


def test_stream_assembles_split_tool_call_deltas_and_reports_usage(
    scripted: Callable[..., ScriptedServer],
) -> None:
    server = scripted()
    with OpenAIClient(fast(server.url)) as client:
        whole = client.complete([Message("user", "fix it")], tools=TOOLS)
        texts: list[str] = []
        streamed = client.stream([Message("user", "fix it")], tools=TOOLS, on_text=texts.append)

    assert texts == ["Let ", "me ", "look ", "at ", "the ", "files."]
    assert streamed.message == whole.message
    assert streamed.finish_reason == "tool_calls"
    assert streamed.usage == whole.usage != Usage()
    assert streamed.first_token_s is not None and streamed.first_token_s <= streamed.total_s
    sent = server.requests[-1]
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


def test_a_named_tool_choice_goes_out_as_a_function_object(
    scripted: Callable[..., ScriptedServer],
) -> None:
    server = scripted()
    with OpenAIClient(fast(server.url)) as client:
        client.complete([Message("user", "go")], tools=TOOLS, tool_choice="bash")
    assert server.requests[0]["tool_choice"] == {"type": "function", "function": {"name": "bash"}}


def test_strict_server_accepts_what_the_client_normalised(
    scripted: Callable[..., ScriptedServer],
) -> None:
    server = scripted(mistral_strict=True)
    long_id = "call_3f2a9c0e7b1d4e5f"
    conversation = [
        Message("user", "fix it"),
        Message("assistant", None, (ToolCall(long_id, "bash", '{"command": "ls"}'),)),
        Message("tool", "app.py", tool_call_id=long_id),
        Message("user", "also run the tests"),
    ]
    with OpenAIClient(fast(server.url)) as client:
        reply = client.complete(conversation, tools=TOOLS)
    raw = OpenAIClient(fast(server.url, mistral_compat=False))
    with raw, pytest.raises(RequestRejected) as refused:
        raw.complete(conversation, tools=TOOLS)

    assert reply.message.content == "Nothing more to do."  # turn 2: the bridge counts
    sent = server.requests[0]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "user"]
    new_id = sent[1]["tool_calls"][0]["id"]
    assert len(new_id) == 9 and new_id.isalnum() and sent[2]["tool_call_id"] == new_id
    assert refused.value.status == 400
    assert "must be a-z, A-Z, 0-9, with a length of 9" in str(refused.value)
    assert len(server.requests) == 1  # the refused one was not retried


@pytest.mark.parametrize("failure", [503, 429, "reset"])
def test_retries_until_the_endpoint_answers(
    flaky: Callable[..., FlakyServer], failure: int | str
) -> None:
    server = flaky(failure, failure, retry_after="0")
    with OpenAIClient(fast(server.url, model="flaky")) as client:
        reply = client.complete([Message("user", "hi")])
    assert reply.message.content == "ok from flaky"
    assert reply.usage == Usage(7, 3)
    assert len(server.chat_requests) == 3


@pytest.mark.parametrize(
    ("failure", "error"), [(503, ServerFailed), (429, RateLimited), ("reset", EndpointUnreachable)]
)
def test_gives_up_after_max_retries_with_the_right_error(
    flaky: Callable[..., FlakyServer], failure: int | str, error: type[Exception]
) -> None:
    server = flaky(*[failure] * 5)
    client = OpenAIClient(fast(server.url, model="flaky", max_retries=2))
    with client, pytest.raises(error):
        client.complete([Message("user", "hi")])
    assert len(server.chat_requests) == 3


def test_a_400_is_not_retried_and_says_why(flaky: Callable[..., FlakyServer]) -> None:
    server = flaky(400)
    client = OpenAIClient(fast(server.url, model="flaky"))
    with client, pytest.raises(RequestRejected) as refused:
        client.complete([Message("user", "hi")])
    assert refused.value.status == 400
    assert "planned 400" in str(refused.value)
    assert len(server.chat_requests) == 1


def test_api_key_is_sent_and_never_shown_in_errors(flaky: Callable[..., FlakyServer]) -> None:
    server = flaky(401)
    secret = "sk-very-secret-123"
    config = fast(server.url, model="flaky", api_key=SecretStr(secret))
    with OpenAIClient(config) as client, pytest.raises(RequestRejected) as refused:
        client.complete([Message("user", secret)])
    assert server.chat_requests[0].headers["authorization"] == f"Bearer {secret}"
    assert secret not in str(refused.value)
    assert secret not in repr(config)
    assert "Check the API key" in str(refused.value)


def test_a_silent_model_times_out_without_retrying(scripted: Callable[..., ScriptedServer]) -> None:
    server = scripted({"fallback": {"content": "late"}}, delay_ms=1000)
    with OpenAIClient(fast(server.url, read_timeout_s=0.2)) as client:
        with pytest.raises(ModelTimeout, match=r"sent nothing for 0\.2s"):
            client.complete([Message("user", "hi")])
        with pytest.raises(ModelTimeout):
            client.stream([Message("user", "hi")])
    assert len(server.requests) == 2


def test_nobody_listening_is_unreachable_with_a_hint() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    client = OpenAIClient(fast(url, max_retries=1))
    with client, pytest.raises(EndpointUnreachable, match="Is the server up"):
        client.complete([Message("user", "hi")])


def test_models_and_health(scripted: Callable[..., ScriptedServer]) -> None:
    server = scripted()
    with OpenAIClient(fast(server.url)) as client:
        assert client.health() == 200
        assert client.models() == ["scripted"]


def test_retry_delay_honours_retry_after_and_caps_backoff() -> None:
    config = fast("http://x/v1", backoff_base_s=1.0, backoff_max_s=4.0, retry_after_max_s=30)
    rng = random.Random(7)
    assert retry_delay(0, "2", config, rng) == 2.0
    assert retry_delay(0, "120", config, rng) == 30.0
    delays = [retry_delay(n, None, config, rng) for n in range(8)]
    assert all(0 <= d <= min(4.0, 2**n) for n, d in enumerate(delays))
    assert retry_delay(3, "Wed, 21 Oct 2015 07:28:00 GMT", config, rng) <= 4.0


def test_arguments_stay_raw_json_text(scripted: Callable[..., ScriptedServer]) -> None:
    broken = '{"command": "ls'
    server = scripted({"fallback": {"tool_calls": [{"name": "bash", "arguments": broken}]}})
    with OpenAIClient(fast(server.url)) as client:
        streamed = client.stream([Message("user", "hi")], tools=TOOLS)
    assert streamed.message.tool_calls[0].arguments == broken
    with pytest.raises(json.JSONDecodeError):
        json.loads(streamed.message.tool_calls[0].arguments)
