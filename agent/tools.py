"""The agent's tools: bash, read_file, write_file, edit_file, search, list_files, finish."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.base import Observation, Tool, ToolEnv
from agent.context import prompt
from agent.errors import Finished, ToolFailed
from agent.repo import walk
from sandbox.errors import SandboxError
from serving.base import ToolSpec

A = TypeVar("A", bound=BaseModel)


def description(name: str) -> str:
    return prompt(name)


def truncate(text: str, limit: int) -> str:
    """Keep the head and tail of `text` within `limit` characters, saying what was cut."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    head = text[: limit * 2 // 3]
    tail = text[len(text) - (limit - len(head)) :]
    lines = text[len(head) : len(text) - len(tail)].count("\n")
    return f"{head}\n[... {cut} characters ({lines} lines) cut from the middle ...]\n{tail}"


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FunctionTool(Generic[A]):
    """A tool from an arguments model, a function, and `prompts/<name>.md`."""

    def __init__(self, name: str, args: type[A], run: Callable[[A, ToolEnv], Observation]) -> None:
        self.name = name
        self._args = args
        self._run = run

    def spec(self) -> ToolSpec:
        schema = self._args.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        return ToolSpec(self.name, description(self.name), schema)

    def run(self, arguments: dict[str, Any], env: ToolEnv) -> Observation:
        try:
            args = self._args.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ToolFailed(f"bad arguments for {self.name}: {problems}") from exc
        return self._run(args, env)


def _read_text(env: ToolEnv, path: str) -> str:
    try:
        return env.sandbox.read_file(path).decode()
    except UnicodeDecodeError as exc:
        raise ToolFailed(f"{path} is not UTF-8 text") from exc
    except (OSError, SandboxError) as exc:
        raise ToolFailed(f"cannot read {path}: {exc}") from exc


def _write_text(env: ToolEnv, path: str, text: str, mode: int | None = None) -> None:
    """Write `path`; with no `mode`, an existing file keeps its own and a new one is 0644."""
    try:
        env.sandbox.write_file(path, text.encode(), mode)
    except (OSError, SandboxError) as exc:
        raise ToolFailed(f"cannot write {path}: {exc}") from exc


class BashArgs(Args):
    command: str = Field(description="The shell command (run with sh -c in the repository).")
    timeout_s: float | None = Field(default=None, gt=0, description="Seconds before it is killed.")


def bash(args: BashArgs, env: ToolEnv) -> Observation:
    timeout = min(args.timeout_s or env.command_timeout_s, env.command_timeout_s)
    result = env.sandbox.exec(
        args.command, timeout=timeout, env=env.env, output_limit=env.output_bytes, stop=env.stop
    )
    parts = [f"exit code: {result.exit_code}"]
    if result.limit:
        parts.append(f"the command was stopped: {result.limit.replace('_', ' ')}")
    if result.truncated:
        parts.append(f"(output beyond {env.output_bytes} bytes per stream was dropped)")
    if result.stdout:
        parts.append(result.stdout.rstrip("\n"))
    if result.stderr:
        parts.append("[stderr]\n" + result.stderr.rstrip("\n"))
    data = {"exit_code": result.exit_code, "limit": result.limit}
    return Observation("\n".join(parts), data=data)


class ReadArgs(Args):
    path: str = Field(description="File path, relative to the repository root.")
    start_line: int = Field(default=1, ge=1, description="First line to show (1-based).")
    end_line: int | None = Field(default=None, ge=1, description="Last line to show; none: end.")


def read_file(args: ReadArgs, env: ToolEnv) -> Observation:
    lines = _read_text(env, args.path).splitlines()
    end = min(args.end_line or len(lines), len(lines))
    if args.start_line > max(len(lines), 1):
        raise ToolFailed(
            f"{args.path} has {len(lines)} lines; start_line {args.start_line} is past the end"
        )
    shown = [f"{n:>6}\t{lines[n - 1]}" for n in range(args.start_line, end + 1)]
    head = f"{args.path}: lines {args.start_line}-{end} of {len(lines)}"
    return Observation("\n".join([head, *shown]))


class WriteArgs(Args):
    path: str = Field(description="File path, relative to the repository root.")
    content: str = Field(description="The whole new content of the file.")
    executable: bool | None = Field(
        default=None,
        description="true: 0755, false: 0644; unset: keep the mode.",
    )


def write_file(args: WriteArgs, env: ToolEnv) -> Observation:
    try:
        env.sandbox.read_file(args.path)
        status = "modified"
    except (OSError, SandboxError):
        status = "added"
    mode = None if args.executable is None else 0o755 if args.executable else 0o644
    _write_text(env, args.path, args.content, mode)
    text = f"wrote {args.path} ({len(args.content.splitlines())} lines)"
    return Observation(text, changes=((args.path, status),))


class EditArgs(Args):
    path: str = Field(description="File path, relative to the repository root.")
    old: str = Field(min_length=1, description="Exact text to replace; must occur exactly once.")
    new: str = Field(description="The text to put in its place.")


def edit_file(args: EditArgs, env: ToolEnv) -> Observation:
    text = _read_text(env, args.path)
    found = text.count(args.old)
    if found == 0:
        raise ToolFailed(
            f"`old` was not found in {args.path}; nothing changed. "
            "Read the file and copy the text exactly, whitespace included."
        )
    if found > 1:
        raise ToolFailed(
            f"`old` occurs {found} times in {args.path}; nothing changed. "
            "Include more surrounding lines so it occurs once."
        )
    at = text.index(args.old)
    _write_text(env, args.path, text.replace(args.old, args.new, 1))
    line = text.count("\n", 0, at) + 1
    return Observation(f"edited {args.path} at line {line}", changes=((args.path, "modified"),))


class SearchArgs(Args):
    pattern: str = Field(min_length=1, description="A regular expression.")
    path: str = Field(default=".", description="Directory or file to search in.")
    glob: str | None = Field(default=None, description="Only files matching this glob (`*.py`).")


def search(args: SearchArgs, env: ToolEnv) -> Observation:
    pattern, path = shlex.quote(args.pattern), shlex.quote(args.path)
    rg_glob = f" -g {shlex.quote(args.glob)}" if args.glob else ""
    grep_glob = f" --include={shlex.quote(args.glob)}" if args.glob else ""
    command = (
        f"if command -v rg >/dev/null 2>&1; then rg -n --no-heading --color never{rg_glob} "
        f"-e {pattern} -- {path}; else grep -rnE --exclude-dir=.git{grep_glob} -e {pattern} "
        f"-- {path}; fi"
    )
    result = env.sandbox.exec(
        command, timeout=env.command_timeout_s, env=env.env, output_limit=env.output_bytes,
        stop=env.stop,
    )  # fmt: skip
    if result.exit_code == 1 and not result.stdout:
        return Observation(f"no matches for {args.pattern!r} in {args.path}")
    if result.exit_code not in (0, 1):
        raise ToolFailed(f"search failed: {result.stderr.strip() or result.stdout.strip()}")
    return Observation(result.stdout.rstrip("\n"))


class ListArgs(Args):
    path: str = Field(default=".", description="Directory to list, relative to the root.")
    limit: int = Field(default=200, ge=1, le=2000, description="Most paths to show.")


def list_files(args: ListArgs, env: ToolEnv) -> Observation:
    files, more = walk(env.sandbox, args.limit, args.path)
    if not files:
        raise ToolFailed(f"no files under {args.path} (is it a directory?)")
    more_note = f"[... more files; list a subdirectory or raise limit above {args.limit}]"
    tail = [more_note] if more else []
    return Observation("\n".join([*files, *tail]))


class FinishArgs(Args):
    summary: str = Field(description="What you changed and why, for the person who asked.")


def finish(args: FinishArgs, env: ToolEnv) -> Observation:
    raise Finished(args.summary)


TOOLS: dict[str, Callable[[], Tool]] = {
    "bash": lambda: FunctionTool("bash", BashArgs, bash),
    "read_file": lambda: FunctionTool("read_file", ReadArgs, read_file),
    "write_file": lambda: FunctionTool("write_file", WriteArgs, write_file),
    "edit_file": lambda: FunctionTool("edit_file", EditArgs, edit_file),
    "search": lambda: FunctionTool("search", SearchArgs, search),
    "list_files": lambda: FunctionTool("list_files", ListArgs, list_files),
    "finish": lambda: FunctionTool("finish", FinishArgs, finish),
}


def make_tools(names: list[str] | None = None) -> dict[str, Tool]:
    """The tools named (all by default); raises ValueError naming the valid ones."""
    chosen = list(TOOLS) if names is None else names
    unknown = [n for n in chosen if n not in TOOLS]
    if unknown:
        raise ValueError(f"unknown tools {unknown}; valid: {', '.join(sorted(TOOLS))}")
    return {name: TOOLS[name]() for name in chosen}
