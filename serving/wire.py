"""The OpenAI chat-completions wire format: records to JSON and back, and stream assembly."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from serving.base import Message, Role, ToolCall, ToolChoice, ToolSpec, Usage
from serving.errors import BadResponse

ROLES: tuple[Role, ...] = ("system", "user", "assistant", "tool")


def message_to_wire(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        out["name"] = message.name
    return out


def tool_to_wire(tool: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }


def tool_choice_to_wire(choice: ToolChoice) -> str | dict[str, Any]:
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def request_body(
    model: str,
    messages: Sequence[Message],
    *,
    tools: Sequence[ToolSpec],
    tool_choice: ToolChoice,
    max_tokens: int | None,
    stream: bool,
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [message_to_wire(m) for m in messages]}
    if tools:
        body["tools"] = [tool_to_wire(t) for t in tools]
        body["tool_choice"] = tool_choice_to_wire(tool_choice)
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _field(data: Any, key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(data, dict) or not isinstance(data.get(key), kind):
        raise BadResponse(f"the endpoint's {what} has no valid `{key}`: {str(data)[:200]}")
    return data[key]


def message_from_wire(data: Any) -> Message:
    role = data.get("role", "assistant") if isinstance(data, dict) else None
    if role not in ROLES:
        raise BadResponse(f"the endpoint's message has an unknown role: {str(data)[:200]}")
    calls = []
    for raw in data.get("tool_calls") or ():
        function = _field(raw, "function", dict, "tool call")
        calls.append(
            ToolCall(
                id=str(raw.get("id") or ""),
                name=_field(function, "name", str, "tool call"),
                arguments=function.get("arguments") or "",
            )
        )
    content = data.get("content")
    return Message(
        role=role,
        content=content if isinstance(content, str) else None,
        tool_calls=tuple(calls),
        tool_call_id=data.get("tool_call_id"),
        name=data.get("name"),
    )


def usage_from_wire(data: Any) -> Usage:
    if not isinstance(data, dict):
        return Usage()
    return Usage(int(data.get("prompt_tokens") or 0), int(data.get("completion_tokens") or 0))


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass
class StreamAssembler:
    """Builds one reply from streamed chunks; tool-call fragments are joined by their index."""

    content: list[str] = field(default_factory=list)
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    finish_reason: str = ""
    usage: Usage = field(default_factory=Usage)
    model: str = ""

    def add(self, chunk: Any) -> str:
        """Take one parsed `data:` chunk; return the text it adds (may be empty)."""
        if not isinstance(chunk, dict):
            raise BadResponse(f"the endpoint streamed a chunk that is not an object: {chunk!r}")
        self.model = chunk.get("model") or self.model
        if chunk.get("usage"):
            self.usage = usage_from_wire(chunk["usage"])
        text = ""
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                text += delta["content"]
            for raw in delta.get("tool_calls") or ():
                partial = self.calls.setdefault(int(raw.get("index", 0)), _PartialCall())
                partial.id = raw.get("id") or partial.id
                function = raw.get("function") or {}
                partial.name += function.get("name") or ""
                partial.arguments.append(function.get("arguments") or "")
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        if text:
            self.content.append(text)
        return text

    def message(self) -> Message:
        calls = tuple(
            ToolCall(id=p.id, name=p.name, arguments="".join(p.arguments))
            for _, p in sorted(self.calls.items())
        )
        return Message(role="assistant", content="".join(self.content) or None, tool_calls=calls)
