"""`autan` start-up figures: `autan --help` and `autan sandbox run -- true`, and start-up alone."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench.stats import percentile

# What `autan sandbox run` does once it has started: create, exec, close, timed from inside;
# prints its wall and CPU seconds (its own and its children's, bwrap's included).
WORK = """
import resource, sys, time
from pathlib import Path
import sandbox.bwrap
from sandbox import create_sandbox
from sandbox.config import SandboxConfig
config = SandboxConfig(root=Path(sys.argv[2]))
def cpu():
    own, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
t, c = time.perf_counter(), cpu()
sbx = create_sandbox(Path(sys.argv[1]), config)
assert sbx.exec(["true"]).exit_code == 0
sbx.close()
print(time.perf_counter() - t, cpu() - c)
"""


def autan() -> list[str]:
    """The installed `autan` script beside this Python, as a user runs it; else `python -m cli`."""
    script = Path(sys.executable).parent / "autan"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli"]


def _wall(
    argv: list[str], env: dict[str, str], cpu: list[float] | None = None
) -> tuple[float, str]:
    """Seconds `argv` took, and its stdout; its CPU seconds (user + system) go into `cpu`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return wall, done.stdout


def _figure(
    name: str, values_s: list[float], cpu_s: list[float] | None = None, **extra: Any
) -> dict[str, Any]:
    ms = [v * 1000 for v in values_s]
    figure: dict[str, Any] = {
        "bench": name,
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 1),
        "p90_ms": round(percentile(ms, 90), 1),
    }
    if cpu_s:
        # CPU time moves less than wall time when other work shares the machine.
        figure["cpu_p50_ms"] = round(percentile([v * 1000 for v in cpu_s], 50), 1)
    return {**figure, **extra}


def bench_cli(*, runs: int = 20, bytecode: bool = True) -> list[dict[str, Any]]:
    """Each command's wall and CPU time, interleaved run by run so that drift hits all alike.

    With `bytecode`, the commands start as an installed `autan` does, from compiled bytecode
    (kept in a private cache that an untimed first run fills, whatever
    PYTHONDONTWRITEBYTECODE says); without it, as this environment starts them, compiling
    every source of ours that has no bytecode beside it at each start.
    """
    walls: dict[str, list[float]] = {"floor": [], "help": [], "run": [], "work": []}
    cpus: dict[str, list[float]] = {"floor": [], "help": [], "run": [], "work": []}
    startup: list[float] = []
    startup_cpu: list[float] = []
    with tempfile.TemporaryDirectory(prefix="autan-bench-cli-") as tmp_name:
        tmp = Path(tmp_name)
        base = tmp / "base"
        base.mkdir()
        (base / "README").write_text("a tree to start from\n")
        root = str(tmp / "sandboxes")
        run = [*autan(), "sandbox", "run", "--base", str(base), "--root", root, "--", "true"]
        work = [sys.executable, "-c", WORK, str(base), root]
        env = dict(os.environ)
        if bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
            for argv in ([*autan(), "--help"], run, work):
                _wall(argv, env)
        for _ in range(runs):
            walls["floor"].append(_wall([sys.executable, "-c", "pass"], env, cpus["floor"])[0])
            walls["help"].append(_wall([*autan(), "--help"], env, cpus["help"])[0])
            run_s = _wall(run, env, cpus["run"])[0]
            walls["run"].append(run_s)
            work_s, work_cpu_s = map(float, _wall(work, env)[1].split())
            walls["work"].append(work_s)
            cpus["work"].append(work_cpu_s)
            startup.append(run_s - work_s)
            startup_cpu.append(cpus["run"][-1] - work_cpu_s)
    return [
        _figure("cli_python_floor", walls["floor"], cpus["floor"], command="python -c pass"),
        _figure("cli_help", walls["help"], cpus["help"], command="autan --help"),
        _figure(
            "cli_sandbox_run",
            walls["run"],
            cpus["run"],
            command="autan sandbox run --base DIR -- true",
        ),
        _figure(
            "cli_sandbox_work",
            walls["work"],
            cpus["work"],
            command="create + exec true + close, in-process",
        ),
        _figure(
            "cli_sandbox_run_startup",
            startup,
            startup_cpu,
            command="sandbox run minus its in-process work",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.cli")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--no-bytecode",
        action="store_true",
        help="start as this environment does, compiling our sources at each start",
    )
    args = parser.parse_args()
    for result in bench_cli(runs=args.runs, bytecode=not args.no_bytecode):
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
