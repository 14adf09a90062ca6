"""The scripted model's script: its format, and which reply a conversation gets."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serving.errors import ScriptInvalid
from serving.mistral import short_id


class ScriptedCall(BaseModel):
    """A tool call the scripted model makes."""

    model_config = ConfigDict(extra="forbid")

    name: str
    """Tool name."""

    arguments: dict[str, Any] | str = Field(default_factory=dict)
    """An object (sent as its JSON) or a raw string sent as it is, broken JSON included."""

    id: str | None = None
    """Call id; by default 9 letters and digits derived from the turn and position."""


class Reply(BaseModel):
    """One answer: text and/or tool calls."""

    model_config = ConfigDict(extra="forbid")

    content: str | None = None
    """The assistant's text."""

    tool_calls: list[ScriptedCall] = Field(default_factory=list)
    """Tool calls, in order."""

    finish_reason: str | None = None
    """Default: `tool_calls` when there are calls, else `stop`."""

    delay_ms: int | None = Field(default=None, ge=0)
    """Wait before the first byte of this reply; overrides the script's `delay_ms`."""


class When(BaseModel):
    """Conditions on the conversation; a rule applies when all that are given hold."""

    model_config = ConfigDict(extra="forbid")

    turn: int | None = None
    """Number of assistant messages already in the conversation (0 on the first request)."""

    user_contains: str | None = None
    """Text found in the last user message."""

    tool_result_contains: str | None = None
    """Text found in the last tool message."""

    tool_name: str | None = None
    """Name of the tool whose result is the last tool message."""

    tool_offered: str | None = None
    """A tool of this name is in the request's `tools`."""


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    when: When = Field(default_factory=When)
    """When the rule applies."""

    reply: Reply
    """What the model answers then."""


class Script(BaseModel):
    """A whole script: server behaviour, then replies by rule, by turn, or a fallback."""

    model_config = ConfigDict(extra="forbid")

    model: str = "scripted"
    """The model id `/v1/models` lists; requests naming another get 404."""

    delay_ms: int = Field(default=0, ge=0)
    """Wait before each reply's first byte (time to first token)."""

    mistral_strict: bool = False
    """Refuse what Mistral refuses: odd tool-call ids, a user message right after a tool one."""

    supports_tools: bool = True
    """False answers requests with tools 400, like vLLM without `--enable-auto-tool-choice`."""

    rules: list[Rule] = Field(default_factory=list)
    """Tried first, in order; the first rule that applies answers."""

    turns: list[Reply] = Field(default_factory=list)
    """Else the reply for the conversation's turn (its number of assistant messages)."""

    fallback: Reply | None = None
    """Else this; with none, the request gets 400 `script_exhausted`."""


def load_script(path: Path) -> Script:
    """Read a `.json` or `.toml` script; raises ScriptInvalid saying what is wrong."""
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        return Script.model_validate(data)
    except (OSError, ValueError, ValidationError) as exc:
        raise ScriptInvalid(f"script {path} cannot be used: {exc}") from exc


def _last(messages: list[dict[str, Any]], role: str) -> dict[str, Any] | None:
    return next((m for m in reversed(messages) if m.get("role") == role), None)


def _tool_name(messages: list[dict[str, Any]], tool_message: dict[str, Any]) -> str | None:
    wanted = tool_message.get("tool_call_id")
    for m in reversed(messages):
        for call in m.get("tool_calls") or ():
            if call.get("id") == wanted:
                return str(call.get("function", {}).get("name"))
    return tool_message.get("name")


def _applies(when: When, body: dict[str, Any], turn: int) -> bool:
    messages: list[dict[str, Any]] = body["messages"]
    user = _last(messages, "user")
    tool = _last(messages, "tool")
    offered = {t.get("function", {}).get("name") for t in body.get("tools") or ()}
    checks = [
        when.turn is None or when.turn == turn,
        when.user_contains is None or (user is not None and when.user_contains in _text(user)),
        when.tool_result_contains is None
        or (tool is not None and when.tool_result_contains in _text(tool)),
        when.tool_name is None
        or (tool is not None and _tool_name(messages, tool) == when.tool_name),
        when.tool_offered is None or when.tool_offered in offered,
    ]
    return all(checks)


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else json.dumps(content or "")


def choose(script: Script, body: dict[str, Any]) -> Reply | None:
    """The reply for this request's conversation, or None when the script has none."""
    turn = sum(1 for m in body["messages"] if m.get("role") == "assistant")
    for rule in script.rules:
        if _applies(rule.when, body, turn):
            return rule.reply
    if turn < len(script.turns):
        return script.turns[turn]
    return script.fallback


def estimate_tokens(text: str) -> int:
    """A deterministic estimate: one token per 4 characters, at least 1 for any text."""
    return math.ceil(len(text) / 4)


def wire_calls(reply: Reply, turn: int) -> list[dict[str, Any]]:
    calls = []
    for index, call in enumerate(reply.tool_calls):
        raw = call.arguments
        arguments = raw if isinstance(raw, str) else json.dumps(raw)
        calls.append(
            {
                "id": call.id or short_id(f"{turn}:{index}:{call.name}"),
                "type": "function",
                "function": {"name": call.name, "arguments": arguments},
            }
        )
    return calls
