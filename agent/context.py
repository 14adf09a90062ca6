"""The conversation: prompts from templates, token counting, and compaction near the window."""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from string import Template

from agent.config import AgentConfig
from agent.repo import RepoInfo
from serving.base import Message, Usage

PROMPTS = Path(__file__).parent / "prompts"
MESSAGE_OVERHEAD = 4
"""Tokens a chat template adds around each message, in the plain estimate."""


@cache
def _template(name: str) -> Template:
    return Template((PROMPTS / f"{name}.md").read_text())


def prompt(template: str, /, **values: object) -> str:
    """`prompts/<template>.md` with `$key` filled in; unknown `$words` stay as they are."""
    return _template(template).safe_substitute({k: str(v) for k, v in values.items()}).strip()


def estimate(message: Message) -> int:
    """A plain estimate: one token per 4 characters of text and calls, plus the overhead."""
    chars = len(message.content or "")
    chars += sum(len(c.name) + len(c.arguments) + len(c.id) for c in message.tool_calls)
    return math.ceil(chars / 4) + MESSAGE_OVERHEAD


def opening(task: str, info: RepoInfo, config: AgentConfig) -> list[Message]:
    """The system prompt (rules, the repository's instructions, its map) and the task."""
    instructions = ""
    for name, text in (("AGENTS.md", info.agents_md), (".autan.toml", info.autan_toml_text)):
        if text.strip():
            cut = text[: config.instructions_chars]
            instructions += prompt("instructions", name=name, text=cut) + "\n\n"
    files = info.files[: config.map_entries]
    more = len(info.files) > len(files) or info.more_files
    repo_map = "\n".join(files) + ("\n[... more files; use list_files]" if more else "")
    system = prompt("system", instructions=instructions, repo_map=repo_map or "(empty)")
    return [Message("system", system), Message("user", prompt("task", task=task))]


class Context:
    """The messages sent to the model, and how many tokens they take."""

    def __init__(self, messages: list[Message], config: AgentConfig) -> None:
        self.messages = messages
        self.config = config
        self._reported = 0
        self._reported_upto = 0
        self.compactions = 0

    def add(self, message: Message) -> None:
        self.messages.append(message)

    def reported(self, usage: Usage) -> None:
        """The server's count after a reply was added: its prompt plus the reply itself."""
        if usage.prompt_tokens:
            self._reported = usage.total_tokens
            self._reported_upto = len(self.messages)

    def tokens(self) -> int:
        """What the conversation takes now: the last reported count plus estimates since."""
        since = self.messages[self._reported_upto :]
        return self._reported + sum(estimate(m) for m in since)

    def compact_if_needed(self) -> int:
        """Drop old steps when the conversation nears the window; returns messages dropped."""
        limit = int(self.config.context_window * self.config.compact_at)
        if self.tokens() < limit:
            return 0
        keep = self.config.keep_steps
        dropped = 0
        while keep >= 1 and self.tokens() >= limit:
            dropped += self._compact(keep)
            keep -= 1
        return dropped

    def _compact(self, keep_steps: int) -> int:
        head, body = self.messages[:2], self.messages[2:]
        starts = [i for i, m in enumerate(body) if m.role == "assistant" and m.tool_calls]
        if len(starts) <= keep_steps:
            return 0
        cut = starts[-keep_steps]
        old, kept = body[:cut], body[cut:]
        calls = [
            f"{c.name}({_short(c.arguments)})" for m in old if m.role == "assistant"
            for c in m.tool_calls
        ]  # fmt: skip
        task = head[1].content or ""
        marker = task.find("\n\n[Earlier steps were removed")
        task = task if marker < 0 else task[:marker]
        note = prompt("note_compacted", dropped=len(old), calls=", ".join(calls) or "none")
        self.messages = [head[0], Message("user", f"{task}\n\n{note}"), *kept]
        self._reported, self._reported_upto = 0, 0
        self.compactions += 1
        return len(old)


def _short(arguments: str, limit: int = 60) -> str:
    try:
        data = json.loads(arguments)
    except ValueError:
        data = arguments
    text = json.dumps(data) if not isinstance(data, str) else data
    return text if len(text) <= limit else text[: limit - 3] + "..."
