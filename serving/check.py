"""`autan model check URL`: probe an endpoint and say plainly what works and what does not."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from serving.base import Completion, Message, ToolSpec
from serving.client import ClientConfig, OpenAIClient
from serving.errors import EndpointUnreachable, RequestRejected, ServingError

PROMPT = (Path(__file__).parent / "check_prompt.md").read_text().strip()
ADD = ToolSpec(
    "add",
    "Add two integers and return the sum.",
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)
TOOLS_HINT = (
    "for vLLM, start it with `--enable-auto-tool-choice --tool-call-parser mistral` "
    "(the serve profiles do)"
)


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool | None
    """None: skipped (an earlier step failed, or not applicable)."""
    detail: str


@dataclass
class CheckReport:
    url: str
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok is not False for s in self.steps) and any(s.ok for s in self.steps)

    def lines(self) -> list[str]:
        marks = {True: "[ok]  ", False: "[FAIL]", None: "[skip]"}
        out = [f"{marks[s.ok]} {s.name:<12} {s.detail}" for s in self.steps]
        verdict = "endpoint OK" if self.ok else "endpoint NOT usable: see [FAIL] above"
        return [*out, f"{self.url}: {verdict}"]


def _health(client: OpenAIClient) -> Step:
    status = client.health()
    if status == 200:
        return Step("health", True, "GET /health 200")
    if status == 404:
        return Step("health", None, "no /health route (not vLLM?); relying on /v1/models")
    return Step("health", False, f"GET /health answered {status}: the server is not ready")


def _model(client: OpenAIClient, wanted: str | None) -> tuple[Step, str | None]:
    served = client.models()
    if not served:
        return Step("models", False, "GET /v1/models lists no model"), None
    if wanted is not None and wanted not in served:
        detail = f"model {wanted!r} is not served; this endpoint serves: {', '.join(served)}"
        return Step("models", False, detail), None
    chosen = wanted or served[0]
    return Step("models", True, f"serves {', '.join(served)}; using {chosen}"), chosen


def _tool_call(client: OpenAIClient) -> tuple[Step, Completion | None]:
    try:
        reply = client.stream([Message("user", PROMPT)], tools=[ADD], max_tokens=256)
    except RequestRejected as exc:
        return Step(
            "tool call", False, f"the server refused a request with tools: {exc}; {TOOLS_HINT}"
        ), None
    calls = reply.message.tool_calls
    if not calls:
        said = (reply.message.content or "")[:120]
        detail = f"the model answered in text instead of calling the tool ({said!r}); {TOOLS_HINT}"
        return Step("tool call", False, detail), None
    call = calls[0]
    try:
        arguments = json.loads(call.arguments)
    except ValueError:
        return Step("tool call", False, f"arguments are not JSON: {call.arguments[:120]!r}"), None
    if call.name != "add" or not isinstance(arguments, dict):
        return Step("tool call", False, f"unexpected call {call.name}({call.arguments})"), None
    return Step("tool call", True, f"{call.name}({call.arguments}) id={call.id}"), reply


def _tool_answer(client: OpenAIClient, asked: Completion) -> Step:
    call = asked.message.tool_calls[0]
    conversation = [
        Message("user", PROMPT),
        asked.message,
        Message("tool", "5", tool_call_id=call.id, name=call.name),
    ]
    reply = client.complete(conversation, tools=[ADD], max_tokens=256)
    text = (reply.message.content or "").strip()
    if not text and not reply.message.tool_calls:
        return Step("tool answer", False, "the model sent an empty reply to the tool result")
    return Step("tool answer", True, f"{text[:80]!r} ({reply.usage.total_tokens} tokens)")


def check_endpoint(
    url: str, *, model: str | None = None, api_key: str | None = None, timeout_s: float = 60.0
) -> CheckReport:
    """Health, models, a tool call and its answer, and time to first token; never raises."""
    report = CheckReport(url)
    secret = SecretStr(api_key) if api_key else None
    config = ClientConfig(
        base_url=url, model=model or "", api_key=secret, read_timeout_s=timeout_s,
        connect_timeout_s=min(timeout_s, 5.0), max_retries=1, backoff_base_s=0.2,
    )  # fmt: skip
    names = ["health", "models", "tool call", "tool answer", "first token"]
    with OpenAIClient(config) as client:
        try:
            report.steps.append(_health(client))
            step, chosen = _model(client, model)
            report.steps.append(step)
            if chosen is not None:
                client.config = config.model_copy(update={"model": chosen})
                step, asked = _tool_call(client)
                report.steps.append(step)
                if asked is not None:
                    report.steps.append(_tool_answer(client, asked))
                    ttft = (asked.first_token_s or 0.0) * 1000
                    report.steps.append(Step("first token", True, f"{ttft:.0f} ms (streamed)"))
        except EndpointUnreachable as exc:
            report.steps.append(Step(names[len(report.steps)], False, str(exc)))
        except ServingError as exc:
            report.steps.append(Step(names[len(report.steps)], False, str(exc)))
    done = {s.name for s in report.steps}
    report.steps += [Step(n, None, "not tried") for n in names if n not in done]
    return report
