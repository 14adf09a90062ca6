"""`python -m tests.bench`: run the benchmarks, print a JSON line per figure, save them all."""

from __future__ import annotations

import argparse
import json
import platform
import signal
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

Figures = Iterable[dict[str, Any]]


def _foundation(args: argparse.Namespace, part: str) -> Figures:
    from tests.bench.api import bench_submit
    from tests.bench.lifecycle import bench_overhead

    for database in args.databases.split(","):
        if part == "api":
            yield bench_submit(database, total=args.requests, concurrency=args.concurrency)
        else:
            yield bench_overhead(database, tasks=args.overhead_tasks)


def _drain(args: argparse.Namespace) -> Figures:
    from tests.bench.drain import bench_scaling

    workers = [int(n) for n in args.drain_workers.split(",")]
    # PostgreSQL first: it is the cluster's store.
    for database in sorted(args.databases.split(","), key=lambda d: d != "postgresql"):
        yield from bench_scaling(database, tasks=args.drain_tasks, workers=workers)


def _api_load(args: argparse.Namespace) -> Figures:
    from tests.bench.api import bench_load

    for database in args.databases.split(","):
        yield bench_load(database, submissions=1000, clients=50, streams=200)


def _sandbox(args: argparse.Namespace) -> Figures:
    from tests.bench.sandbox import bench_sandbox

    return bench_sandbox()


def _network(args: argparse.Namespace) -> Figures:
    from tests.bench.network import bench_network

    return bench_network()


def _cli(args: argparse.Namespace) -> Figures:
    from tests.bench.cli import bench_cli

    return bench_cli()


def _serving(args: argparse.Namespace) -> Figures:
    from tests.bench.serving import bench_client, bench_failover

    return [*bench_client(500), *bench_failover(10)]


def _agent(args: argparse.Namespace) -> Figures:
    from tests.bench.agent import main_figures

    return main_figures()


def _verification(args: argparse.Namespace) -> Figures:
    from tests.bench.verification import bench_verification

    return bench_verification()


def _webhooks(args: argparse.Namespace) -> Figures:
    from tests.bench.webhooks import bench_webhooks

    return bench_webhooks(deliveries=400, concurrency=16)


def _report_back(args: argparse.Namespace) -> Figures:
    from tests.bench.report_back import bench_report_back

    for database in args.databases.split(","):
        for refuse in (None, "transition"):
            yield bench_report_back(database, tasks=50, refuse=refuse)


def _dashboard(args: argparse.Namespace) -> Figures:
    from tests.bench.dashboard import bench_event_to_browser, bench_tasks_page

    for database in args.databases.split(","):
        yield from bench_tasks_page(database, tasks=10_000, requests=200)
        yield bench_event_to_browser(database, events=200)


def _outage(args: argparse.Namespace) -> Figures:
    from tests.bench.outage import bench_outage

    yield bench_outage(running=4, stranded=8, outage_s=20.0)
    # Past the 60 s lease: the ends wait it out (AUTAN_STORE_OUTAGE_S, 120 s) and stand.
    yield bench_outage(running=4, stranded=8, outage_s=75.0)


def _sync(args: argparse.Namespace) -> Figures:
    from tests.bench.sync import bench_sync
    from tests.bench.sync_delta import bench_delta

    yield from bench_sync(args.databases.split(","))
    for database in args.databases.split(","):
        yield bench_delta(database, size_mb=200, edit=100)


def _sync_live(args: argparse.Namespace) -> Figures:
    from tests.bench.sync_live import bench_live

    for database in args.databases.split(","):
        yield from bench_live(database, saves=200)


def _storage(args: argparse.Namespace) -> Figures:
    from tests.bench.storage import bench_storage

    return bench_storage(files=10_000, runs=3)


# Each area's benchmark; its module also runs alone with its own flags
# (python -m tests.bench.sandbox --help).
AREAS: dict[str, Callable[[argparse.Namespace], Figures]] = {
    "api": lambda a: _foundation(a, "api"),
    "api-load": _api_load,
    "overhead": lambda a: _foundation(a, "overhead"),
    "drain": _drain,
    "sandbox": _sandbox,
    "network": _network,
    "cli": _cli,
    "serving": _serving,
    "agent": _agent,
    "verification": _verification,
    "webhooks": _webhooks,
    "report-back": _report_back,
    "dashboard": _dashboard,
    "outage": _outage,
    "sync": _sync,
    "sync-live": _sync_live,
    "storage": _storage,
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--overhead-tasks", type=int, default=200)
    parser.add_argument("--tasks", "--drain-tasks", dest="drain_tasks", type=int, default=1000)
    parser.add_argument("--drain-workers", default="1,2,4", help="worker processes per drain")
    parser.add_argument("--only", choices=sorted(AREAS), action="append")
    args = parser.parse_args()
    # A stopped benchmark still runs its teardown: no worker, API or Redis left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    results: list[dict[str, Any]] = []
    for area in args.only or list(AREAS):
        for figure in AREAS[area](args):
            results.append({"area": area, **figure})
            print(json.dumps(results[-1]), flush=True)

    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    report = {"machine": platform.platform(), "python": sys.version.split()[0], "results": results}
    (out / f"bench-{stamp}.json").write_text(json.dumps(report, indent=2))
    bad = [r for r in results if r.get("lost") or r.get("run_twice") or r.get("not_succeeded")]
    if bad:
        print(f"FAILED: tasks lost or run twice: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
