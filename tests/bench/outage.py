"""After a database outage: time from its end to every stranded attempt moving again.

The worker reaches PostgreSQL through a proxy that is cut for `outage_s`. Meanwhile
`running` attempts keep going (their events kept in memory, their ends retried) and
`stranded` attempts are submitted, whose claims fail. The figure is the time from the
restore to every running attempt's end being stored and every stranded one claimed, with
the default reconcile interval (10 s) and requeue grace (30 s).
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from orchestrator.schemas import TaskSpec
from tests.bench.env import bench_env
from tests.conftest import TEST_RUNNER
from tests.e2e.proxy import CuttableProxy
from tests.waiting import wait_until


def bench_outage(*, running: int, stranded: int, outage_s: float) -> dict[str, Any]:
    with bench_env("postgresql", TEST_RUNNER) as bench:
        proxy, through = CuttableProxy.before(bench.settings.database_url)
        bench.workers.settings = bench.settings.model_copy(update={"database_url": through})
        worker = bench.workers.start(concurrency=running + 2)
        lifecycle = bench.services.lifecycle
        release, record = bench.workdir / "release", bench.workdir / "runs"

        def submit(script: dict[str, Any]) -> str:
            spec = TaskSpec(repo="/srv/bench.git", instruction=json.dumps(script))
            return lifecycle.submit(spec)[0].id

        busy = [
            submit({"record": str(record), "wait_for": str(release), "then_steps": 5})
            for _ in range(running)
        ]
        wait_until(
            lambda: record.exists() and len(record.read_text().splitlines()) == running,
            timeout=120,
            what="the running attempts to start",
        )
        proxy.cut()
        release.touch()  # they go on without the store
        waiting = [submit({"steps": 1}) for _ in range(stranded)]
        # The outage lasts its length, unless the worker dies in it: what would follow is a
        # restart, not a recovery, so the bench stops there and says so.
        try:
            worker.wait(timeout=outage_s)
        except subprocess.TimeoutExpired:
            pass  # it lasted its length, the worker up through it
        else:
            raise RuntimeError(
                f"the worker exited ({worker.returncode}) during the outage:\n"
                + bench.workers.output()
            )
        proxy.restore()
        restored = time.perf_counter()
        ended: dict[str, float] = {}
        claimed: dict[str, float] = {}

        def moved() -> bool:
            now = time.perf_counter() - restored
            for task_id in busy:
                if task_id not in ended and lifecycle.get(task_id).state.terminal:
                    ended[task_id] = now
            for task_id in waiting:
                if task_id not in claimed and lifecycle.get(task_id).attempts[0].runs > 0:
                    claimed[task_id] = now
            return len(ended) == running and len(claimed) == stranded

        wait_until(moved, timeout=300, interval=0.05, what="every attempt to move")
        runs = [lifecycle.get(t).attempts[0].runs for t in busy]
        proxy.close()
    return {
        "figure": "database outage end to every stranded attempt moving",
        "database": "postgresql",
        "outage_s": outage_s,
        "running": running,
        "stranded": stranded,
        "running_ended_max_s": round(max(ended.values()), 2),
        "stranded_claimed_max_s": round(max(claimed.values()), 2),
        "running_rerun": sum(r > 1 for r in runs),
    }


if __name__ == "__main__":
    print(json.dumps(bench_outage(running=4, stranded=8, outage_s=20.0)))
