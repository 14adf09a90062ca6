"""`python -m tests.bench`: run every benchmark, print a table, save JSON to bench-results/."""

from __future__ import annotations

import argparse
import json
import platform
import signal
import sys
import time
from pathlib import Path
from typing import Any

from tests.bench.api import bench_submit
from tests.bench.lifecycle import bench_drain, bench_overhead


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--overhead-tasks", type=int, default=200)
    parser.add_argument("--drain-tasks", type=int, default=1000)
    parser.add_argument("--drain-workers", type=int, default=4)
    parser.add_argument("--only", choices=["api", "overhead", "drain"], action="append")
    args = parser.parse_args()
    # A stopped benchmark still runs its teardown: no worker, API or Redis left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    only = set(args.only or ["api", "overhead", "drain"])

    results: list[dict[str, Any]] = []
    for database in args.databases.split(","):
        if "api" in only:
            results.append(
                bench_submit(database, total=args.requests, concurrency=args.concurrency)
            )
            print(json.dumps(results[-1]), flush=True)
        if "overhead" in only:
            results.append(bench_overhead(database, tasks=args.overhead_tasks))
            print(json.dumps(results[-1]), flush=True)
        if "drain" in only:
            results.append(
                bench_drain(database, tasks=args.drain_tasks, workers=args.drain_workers)
            )
            print(json.dumps(results[-1]), flush=True)

    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    report = {"machine": platform.platform(), "python": sys.version.split()[0], "results": results}
    (out / f"bench-{stamp}.json").write_text(json.dumps(report, indent=2))
    bad = [r for r in results if r.get("lost") or r.get("run_twice")]
    if bad:
        print(f"FAILED: tasks lost or run twice: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
