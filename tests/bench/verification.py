"""`python -m tests.bench.verification`: what verifying an attempt costs on a real library of a
few hundred pytest tests: the baseline cold (two runs) and cached, the verification run, and the
share of an attempt's wall time spent verifying.

The attempt is the real runner (`local` sandboxes, a SQLite store for the baseline) driven by
the scripted model, which makes the known fix in two steps of `--delay-ms` each.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agent import AgentConfig
from orchestrator.agent_runner import AgentRunner, AgentRunnerSettings
from orchestrator.baselines import StoreBaselines
from orchestrator.db import PoolConfig, make_engine, make_sessionmaker, migrate
from serving.scripted import start_in_thread
from tests.agent import policies
from tests.agent.bugs import Bug, git
from tests.agent.conftest import attempt_context

FUNCTIONS = {
    "add": "a + b",
    "sub": "a - b",
    "mul": "a * b",
    "lo": "min(a, b)",
    "hi": "max(a, b)",
    "mean": "(a + b) / 2",
    "dist": "abs(a - b)",
    "square_sum": "a * a + b * b",
}
BUG = Bug(
    "calc",
    "",
    "",
    "def add(a, b):\n    return a - b\n",
    "def add(a, b):\n    return a + b\n",
)


def make_library(root: Path, tests: int) -> Path:
    """lib.py with eight functions (add broken), and `tests` parametrised pytest cases over
    them in one file per function; only add's fail on the base."""
    repo = root / "calc"
    (repo / "tests").mkdir(parents=True)
    code = "".join(
        f"def {name}(a, b):\n    return {body}\n\n\n" for name, body in FUNCTIONS.items()
    )
    (repo / "lib.py").write_text(code.replace("return a + b", "return a - b", 1).rstrip() + "\n")
    (repo / "conftest.py").write_text("")
    per = tests // len(FUNCTIONS)
    for name, body in FUNCTIONS.items():
        cases = [(i, i % 7 + 1) for i in range(per)]
        expected = [eval(body, {}, {"a": a, "b": b}) for a, b in cases]
        rows = ",\n    ".join(
            f"({a}, {b}, {e!r})" for (a, b), e in zip(cases, expected, strict=True)
        )
        (repo / "tests" / f"test_{name}.py").write_text(
            f"import pytest\n\nimport lib\n\n\n@pytest.mark.parametrize(\n    ('a', 'b', 'want'),\n"
            f"    [\n    {rows},\n    ],\n)\ndef test_{name}(a, b, want):\n"
            f"    assert lib.{name}(a, b) == want\n"
        )
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "calc, with add broken")
    return repo


def _one_run(repo: Path) -> float:
    """One plain run of the suite on the host, for scale."""
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=repo,
        capture_output=True,
        check=False,
    )
    return time.perf_counter() - began


def bench_verification(tests: int = 400, delay_ms: int = 300) -> list[dict[str, Any]]:
    figures: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="autan-bench-verify-") as tmp:
        root = Path(tmp)
        repo = make_library(root, tests)
        engine = make_engine(f"sqlite:///{root / 'autan.db'}", PoolConfig())
        migrate(engine)
        server = start_in_thread(policies.fixing([BUG]).model_copy(update={"delay_ms": delay_ms}))
        settings = AgentRunnerSettings(
            model_url=server.url, model_name="scripted", sandbox_backend="local",
            sandbox_root=root / "sandboxes", trees_dir=root / "trees",
            agent=AgentConfig(path=[str(Path(sys.executable).parent)], test_timeout_s=600),
        )  # fmt: skip
        runner = AgentRunner(settings, baselines=StoreBaselines(make_sessionmaker(engine)))
        try:
            plain_s = _one_run(repo)
            verifying: list[float] = []  # when each attempt began verifying
            for cache in ("cold", "cached"):
                ctx, seen = attempt_context(repo, BUG.task)
                verifying.clear()
                ctx.phase = lambda state: verifying.append(time.perf_counter())
                began = time.perf_counter()
                outcome = runner.run(ctx)
                ended = time.perf_counter()
                assert outcome.verified, outcome.tests_outcome
                baseline = seen.of("tests.baseline")[0]
                assert baseline["cached"] is (cache == "cached")
                figures.append(
                    {
                        "figure": "verification_cost",
                        "baseline": cache,
                        "tests": baseline["passed"] + baseline["failed"],
                        "fixed": len(outcome.tests["fixed"]) if outcome.tests else 0,
                        "one_plain_run_s": round(plain_s, 3),
                        "baseline_s": baseline["duration_s"],
                        "verify_run_s": seen.of("tests.finished")[0]["duration_s"],
                        "attempt_s": round(ended - began, 3),
                        "verifying_s": round(ended - verifying[0], 3),
                        "verifying_share": round((ended - verifying[0]) / (ended - began), 3),
                        "model_delay_ms": delay_ms,
                    }
                )
        finally:
            server.stop()
            engine.dispose()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.verification")
    parser.add_argument("--tests", type=int, default=400)
    parser.add_argument("--delay-ms", type=int, default=300, help="the model's reply time")
    args = parser.parse_args()
    for figure in bench_verification(args.tests, args.delay_ms):
        print(json.dumps(figure), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
