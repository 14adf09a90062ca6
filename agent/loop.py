"""The agent loop: ask the model, run the tools it calls, feed back what they saw, until done."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent.base import Emit, Inbox, Observation, Tool, ToolEnv, no_notes
from agent.config import AgentConfig
from agent.context import Context, opening, prompt
from agent.errors import BudgetExceeded, Cancelled, Finished, ModelFailed, RunEnded, ToolFailed
from agent.repo import RepoInfo, inspect
from agent.tools import make_tools, truncate
from sandbox.base import Sandbox
from sandbox.bwrap import BASE_ENV
from sandbox.errors import SandboxError
from serving.base import ChatModel, Completion, Message, ToolCall
from serving.costs import Meter, Reading
from serving.errors import ServingError

log = logging.getLogger(__name__)
MUTATING = {"bash", "write_file", "edit_file"}


@dataclass(frozen=True)
class StepTiming:
    """Where one step's time went; `overhead_s` is the harness's own share."""

    wall_s: float
    model_s: float
    tool_s: float

    @property
    def overhead_s(self) -> float:
        return self.wall_s - self.model_s - self.tool_s


@dataclass
class RunResult:
    """How a run ended (`finished`, `budget:<name>`, `cancelled`) and what it cost."""

    reason: str
    message: str
    summary: str
    steps: int
    reading: Reading
    messages: list[Message]
    timings: list[StepTiming] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.reason == "finished"


def _no_emit(kind: str, data: dict[str, Any]) -> None:
    del kind, data


class Agent:
    """One run over one sandbox; `run()` returns a RunResult or raises ModelFailed."""

    def __init__(
        self,
        model: ChatModel,
        sandbox: Sandbox,
        *,
        config: AgentConfig | None = None,
        emit: Emit = _no_emit,
        stop: threading.Event | None = None,
        meter: Meter | None = None,
        tools: dict[str, Tool] | None = None,
        trajectory: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        inbox: Inbox = no_notes,
    ) -> None:
        self.model = model
        self.sandbox = sandbox
        self.config = config or AgentConfig()
        self.emit = emit
        self.stop = stop or threading.Event()
        self.meter = meter or Meter()
        self.tools = tools if tools is not None else make_tools()
        self.trajectory = trajectory
        self.clock = clock
        self.inbox = inbox
        self.context = Context([], self.config)
        self.steps = 0
        self.timings: list[StepTiming] = []
        self._specs = [t.spec() for t in self.tools.values()]
        path = ":".join([*self.config.path, BASE_ENV["PATH"]])
        self.command_env = {**self.config.env, "PATH": path}
        """The environment of every command the agent runs (verification uses it too)."""
        self._changed: set[tuple[str, str]] = set()
        self._started = 0.0
        self._ended: RunEnded | None = None

    def run(self, task: str, info: RepoInfo | None = None) -> RunResult:
        self._started = self.clock()
        try:
            info = info or inspect(self.sandbox, self.config.map_entries)
            self.context = Context(opening(task, info, self.config), self.config)
            while True:
                self._check_budgets()
                self.step()
        except RunEnded as ended:
            self._ended = ended
            summary = ended.summary if isinstance(ended, Finished) else ""
            return RunResult(
                ended.reason, str(ended), summary, self.steps, self.meter.reading(),
                self.context.messages, self.timings,
            )  # fmt: skip
        finally:
            self._save()

    def _check_budgets(self) -> None:
        c, reading = self.config, self.meter.reading()
        if self.stop.is_set():
            raise Cancelled("the attempt was stopped")
        if self.steps >= c.max_steps:
            raise BudgetExceeded("steps", f"step budget of {c.max_steps} model calls spent")
        if reading.usage.total_tokens >= c.max_tokens:
            raise BudgetExceeded("tokens", f"token budget of {c.max_tokens} spent")
        if reading.cost_usd >= c.max_cost_usd and reading.calls:
            raise BudgetExceeded("cost", f"cost budget of ${c.max_cost_usd:g} spent")
        if self.clock() - self._started >= c.max_wall_s:
            raise BudgetExceeded("wall_time", f"wall-time budget of {c.max_wall_s:g}s spent")

    def step(self) -> None:
        """One model call and the tools it asks for."""
        began = self.clock()
        self._take_notes()
        if dropped := self.context.compact_if_needed():
            self.emit("context.compacted", {"dropped": dropped, "tokens": self.context.tokens()})
        completion, model_s = self._ask()
        tool_s = 0.0
        try:
            tool_s = self._answer(completion)
        finally:
            self.timings.append(StepTiming(self.clock() - began, model_s, tool_s))

    def _take_notes(self) -> None:
        """A person's messages sent since the last call, each once, as a user message."""
        for note in self.inbox():
            text, messages = (
                prompt("note_person", by=note.by, text=note.text),
                self.context.messages,
            )
            if messages and messages[-1].role == "user" and not messages[-1].tool_calls:
                # One user turn, not two in a row: some models' chat templates refuse that.
                messages[-1] = Message("user", f"{messages[-1].content}\n\n{text}")
            else:
                self.context.add(Message("user", text))
            self.emit("person.delivered", {"seq": note.seq, "step": self.steps + 1})

    def _ask(self) -> tuple[Completion, float]:
        """The model's reply, and the seconds the call itself took."""
        began = self.clock()
        try:
            completion = self.model.complete(
                self.context.messages, tools=self._specs, max_tokens=self.config.reply_max_tokens
            )
        except ServingError as exc:
            raise ModelFailed(f"the model failed at step {self.steps + 1}: {exc}") from exc
        model_s = self.clock() - began
        self.steps += 1
        cost = self.meter.record(completion)
        message = completion.message
        self.emit(
            "model.message",
            {
                "step": self.steps,
                "text": message.content or "",
                "tool_calls": [
                    {"name": c.name, "arguments": c.arguments} for c in message.tool_calls
                ],
                "finish_reason": completion.finish_reason,
                "tokens_in": completion.usage.prompt_tokens,
                "tokens_out": completion.usage.completion_tokens,
                "cost_usd": cost.cost_usd,
            },
        )
        return completion, model_s

    def _answer(self, completion: Completion) -> float:
        """Add the reply and its observations; returns the seconds spent in tools."""
        message, context = completion.message, self.context
        content = message.content or ""
        if completion.finish_reason == "length":
            context.add(Message("assistant", content or "(cut off)"))
            context.add(Message("user", prompt("note_cut")))
        elif not message.tool_calls:
            if content.strip():
                context.add(Message("assistant", content))
            note = "note_no_tool" if content.strip() else "note_empty"
            context.add(Message("user", prompt(note)))
        else:
            context.add(Message("assistant", message.content, message.tool_calls))
        context.reported(completion.usage)
        if completion.finish_reason == "length" or not message.tool_calls:
            return 0.0
        return self._run_calls(message.tool_calls)

    def _run_calls(self, calls: tuple[ToolCall, ...]) -> float:
        spent, ending = 0.0, None
        for call in calls:
            if ending is not None:
                self._tool_message(call, f"not run: the run ended ({ending.reason})")
                continue
            began = self.clock()
            try:
                text = self._call(call)
            except RunEnded as ended:
                ending, text = ended, "done" if isinstance(ended, Finished) else str(ended)
            spent += self.clock() - began
            self._tool_message(call, text)
        if ending is not None:
            raise ending
        return spent

    def _tool_message(self, call: ToolCall, text: str) -> None:
        self.context.add(Message("tool", text, tool_call_id=call.id, name=call.name))

    def _call(self, call: ToolCall) -> str:
        self.emit("tool.call", {"id": call.id, "name": call.name, "arguments": call.arguments})
        observation, ok = self._observe(call)
        text = truncate(observation.text, self.config.output_chars)
        shown = truncate(text, self.config.event_chars)
        self.emit("tool.output", {"id": call.id, "name": call.name, "ok": ok, "output": shown,
                                  **observation.data})  # fmt: skip
        if ok and call.name in MUTATING:
            self._file_changes(observation)
        if observation.data.get("limit") == "cancelled" or self.stop.is_set():
            raise Cancelled("the attempt was stopped during a command")
        return text

    def _observe(self, call: ToolCall) -> tuple[Observation, bool]:
        tool = self.tools.get(call.name)
        if tool is None:
            names = ", ".join(self.tools)
            return Observation(prompt("note_unknown_tool", name=call.name, tools=names)), False
        try:
            arguments = json.loads(call.arguments or "{}")
            if not isinstance(arguments, dict):
                raise ValueError(f"a JSON {type(arguments).__name__}, not an object")
        except ValueError as exc:
            return Observation(prompt("note_bad_json", name=call.name, error=exc)), False
        remaining = self.config.max_wall_s - (self.clock() - self._started)
        env = ToolEnv(
            self.sandbox, self.command_env, max(1.0, min(self.config.command_timeout_s, remaining)),
            self.config.output_chars * 4, self.stop,
        )  # fmt: skip
        try:
            return tool.run(arguments, env), True
        except ToolFailed as exc:
            return Observation(f"error: {exc}"), False
        except SandboxError as exc:
            if self.stop.is_set():
                raise Cancelled("the attempt was stopped during a command") from exc
            return Observation(f"error: the sandbox failed: {exc}"), False

    def _file_changes(self, observation: Observation) -> None:
        for path, status in observation.changes:
            self.emit("file.change", {"path": path, "status": status})
        try:
            now: set[tuple[str, str]] = {(c.path, c.status) for c in self.sandbox.changed_paths()}
        except SandboxError:
            return
        reported = set(observation.changes)
        for path, status in sorted(now - self._changed - reported):
            self.emit("file.change", {"path": path, "status": status})
        self._changed = now

    def _save(self) -> None:
        if self.trajectory is None:
            return
        reading = self.meter.reading()
        record = {
            "reason": self._ended.reason if self._ended else "error",
            "message": str(self._ended) if self._ended else "",
            "steps": self.steps,
            "tokens_in": reading.usage.prompt_tokens,
            "tokens_out": reading.usage.completion_tokens,
            "cost_usd": reading.cost_usd,
            "messages": [asdict(m) for m in self.context.messages],
        }
        try:
            self.trajectory.parent.mkdir(parents=True, exist_ok=True)
            self.trajectory.write_text(json.dumps(record, indent=1))
        except OSError:
            log.exception("could not save the trajectory to %s", self.trajectory)
