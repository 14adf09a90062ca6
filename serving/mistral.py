"""Mistral's sharp edges, smoothed before a request leaves: tool-call ids and message order.

Mistral-served models (their API, and vLLM with `--tokenizer-mode mistral`) refuse:
- a tool-call id that is not exactly 9 letters and digits;
- a user message directly after a tool message.
`normalize` rewrites a conversation so neither can happen and returns the map that turns the
rewritten ids back into the caller's own. It is pure: same input, same output.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from serving.base import Message, ToolCall

VALID_ID = re.compile(r"[a-zA-Z0-9]{9}")
ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
BRIDGE = Message(role="assistant", content="OK.")
"""Put between a tool message and a user message; short, so it costs a token or two."""


def short_id(original: str, salt: int = 0) -> str:
    """A 9-character id made from `original`: the same original always gives the same id."""
    number = int.from_bytes(hashlib.sha256(f"{salt}:{original}".encode()).digest()[:8], "big")
    chars = []
    for _ in range(9):
        number, digit = divmod(number, len(ALPHABET))
        chars.append(ALPHABET[digit])
    return "".join(chars)


@dataclass(frozen=True)
class Normalized:
    messages: list[Message]
    restore: dict[str, str]
    """Rewritten id -> the caller's id; apply to ids in the reply with `restore_ids`."""


def _id_map(messages: Sequence[Message]) -> dict[str, str]:
    originals: list[str] = []
    for m in messages:
        originals += [c.id for c in m.tool_calls]
        if m.tool_call_id is not None:
            originals.append(m.tool_call_id)
    taken = {i for i in originals if VALID_ID.fullmatch(i)}
    mapping: dict[str, str] = {}
    for original in originals:
        if original in taken or original in mapping:
            continue
        salt = 0
        while (new := short_id(original, salt)) in taken:
            salt += 1
        taken.add(new)
        mapping[original] = new
    return mapping


def normalize(messages: Sequence[Message]) -> Normalized:
    """Rewrite ids that do not fit, in calls and tool messages alike; bridge tool -> user."""
    mapping = _id_map(messages)
    out: list[Message] = []
    for m in messages:
        if out and out[-1].role == "tool" and m.role == "user":
            out.append(BRIDGE)
        if m.tool_calls:
            calls = tuple(replace(c, id=mapping.get(c.id, c.id)) for c in m.tool_calls)
            m = replace(m, tool_calls=calls)
        if m.tool_call_id is not None and m.tool_call_id in mapping:
            m = replace(m, tool_call_id=mapping[m.tool_call_id])
        out.append(m)
    return Normalized(out, {new: old for old, new in mapping.items()})


def restore_ids(message: Message, restore: dict[str, str]) -> Message:
    """The reply with rewritten ids turned back into the caller's; new ids stay as they are."""
    if not message.tool_calls or not restore:
        return message
    calls = tuple(
        ToolCall(restore.get(c.id, c.id), c.name, c.arguments) for c in message.tool_calls
    )
    return replace(message, tool_calls=calls)
