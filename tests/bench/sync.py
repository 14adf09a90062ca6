"""Sync figures: a first sync against `rsync -a`, bytes after a restart, a folder renamed (and
the store alone renaming and deleting 100,000 files), memory at 100,000 files.

The API runs under uvicorn in its own process (api_process), on the store named. The
daemon runs as `autan sync` does: `python -m cli sync PATH [--once]` in a child process,
timed, its peak RSS the kernel's (wait4 in a small reaper: tests/sync/child.py); the
restart runs the same daemon in this process with a transport that counts each request
body's bytes as they go out. Trees hold random bytes (nothing dedups, so every file is
its own upload) under the benchmark's temporary directory, which is removed with every
process it started. The first sync of the 100,000 files takes many minutes.

    python -m tests.bench.sync [--files 20000] [--total-mb 200] [--many 100000] [--renamed 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event

from orchestrator import workspace_commits as commits
from orchestrator import workspace_store
from orchestrator.models import utcnow
from sync.blobs import BlobStore
from sync.daemon import Report, SyncDaemon
from sync.manifests import Entry
from sync.remote import HttpRemote
from sync.state import load, state_file
from tests.bench.env import Bench, api_process, bench_env
from tests.sync.child import SyncProcess
from tests.sync.conftest import CountingTransport
from tests.waiting import wait_until
from tests.workers import settings_env

MIB = 1 << 20
SEED = 5  # the same tree shapes every run; the bytes are random


def make_tree(root: Path, files: int, total: int, rng: random.Random) -> dict[str, int]:
    """`files` files of varied sizes (log-normal, a few MiB at most) summing to about `total`
    bytes, in nested folders; returns each relative path's size."""
    weights = [rng.lognormvariate(0, 1.5) for _ in range(files)]
    scale = total / sum(weights)
    sizes: dict[str, int] = {}
    for i, weight in enumerate(weights):
        folder = f"pkg{i % 10}/mod{i % 7}" + ("/deep/er" if i % 5 == 0 else "")
        sizes[f"{folder}/f{i:06d}.bin"] = max(1, min(int(weight * scale), 8 * MIB))
    for path, size in sizes.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(os.urandom(size))
    return sizes


def make_small_tree(root: Path, files: int) -> int:
    """`files` files of 64 to 512 random bytes in 100 folders; returns their total bytes."""
    total = 0
    for i in range(files):
        path = root / f"p{i % 10}" / f"q{i // 10 % 10}" / f"f{i:06d}.txt"
        if i < 100:
            path.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(64 + i % 449)
        path.write_bytes(data)
        total += len(data)
    return total


def cli_env(bench: Bench, base: str) -> dict[str, str]:
    return settings_env(bench.settings) | {
        "AUTAN_URL": base,
        "AUTAN_TOKEN": bench.token,
        "AUTAN_SYNC_STATE_DIR": str(bench.workdir / "sync-state"),
    }


def sync_once(env: dict[str, str], root: Path, log: Path, timeout: float = 600) -> dict[str, Any]:
    """`autan sync ROOT --once` in a child: its wall seconds and peak RSS; fails unless it
    exited 0 having committed a version."""
    child = SyncProcess(env, root, "--once", log=log)
    try:
        ended = child.wait(timeout)
    finally:
        child.kill()
    if ended.returncode != 0 or "at version" not in child.output():
        raise RuntimeError(
            f"autan sync --once exited {ended.returncode}:\n{child.output()[-2000:]}"
        )
    return {"s": round(ended.wall_s, 3), "peak_rss_mib": round(ended.peak_rss_mib, 1)}


def rsync(source: Path, targets: Path, runs: int = 3) -> list[float]:
    """Seconds of each `rsync -a` of `source` to a fresh directory under `targets`, each run
    starting with nothing dirty in the page cache (as the daemon's run does)."""
    if shutil.which("rsync") is None:
        raise RuntimeError("rsync is not installed (apt-get install rsync): the baseline needs it")
    targets.mkdir()
    times = []
    for run in range(runs):
        os.sync()
        started = time.perf_counter()
        subprocess.run(["rsync", "-a", f"{source}/", f"{targets}/{run}/"], check=True)
        times.append(time.perf_counter() - started)
    return times


def bench_first_sync_and_restart(
    database: str, *, files: int, total_mb: int, changed: int = 10
) -> list[dict[str, Any]]:
    """A first `autan sync --once` of `files` files against `rsync -a` of the same tree; then
    `changed` files rewritten and the daemon restarted: what it sends."""
    rng = random.Random(SEED)
    with bench_env(database, "none") as bench, api_process(bench) as base:
        tree = bench.workdir / "tree"
        sizes = make_tree(tree, files, total_mb * MIB, rng)
        rsync_runs = rsync(tree, bench.workdir / "rsync-copies")
        rsync_s = statistics.median(rsync_runs)
        env = cli_env(bench, base)
        os.sync()  # the copies' writes are not the daemon's to wait for
        first = sync_once(env, tree, bench.workdir / "sync-once.log")
        total = sum(sizes.values())
        shape = {"database": database, "files": files, "bytes": total}
        figures = [
            {
                "figure": "sync first sync vs rsync -a",
                **shape,
                "sync_s": first["s"],
                "rsync_s": round(rsync_s, 3),  # the median of three
                "rsync_runs_s": [round(t, 3) for t in rsync_runs],
                "ratio_sync_to_rsync": round(first["s"] / rsync_s, 2),
                "sync_mib_per_s": round(total / MIB / first["s"], 2),
                "daemon_peak_rss_mib": first["peak_rss_mib"],
            }
        ]

        picked = rng.sample(sorted(sizes), changed)
        for path in picked:
            (tree / path).write_bytes(os.urandom(sizes[path]))
        again = restart(bench, base, tree, picked, sizes)
        figures.append({"figure": "sync restart after files changed", **shape, **again})
    return figures


@contextmanager
def counted_daemon(
    bench: Bench, base: str, tree: Path
) -> Iterator[tuple[SyncDaemon, CountingTransport]]:
    """A daemon in this process on `tree`, started from its state file, with a transport
    that counts each request body's bytes."""
    transport = CountingTransport()
    remote = HttpRemote(base, bench.token, transport=transport)
    daemon = SyncDaemon(
        tree, remote, server=base,
        state_path=state_file(bench.workdir / "sync-state", tree.resolve()),
    )  # fmt: skip
    try:
        daemon.acquire()
        yield daemon, transport
    finally:
        daemon.release()
        remote.close()


def timed_sync(daemon: SyncDaemon) -> tuple[Report, float]:
    started = time.perf_counter()
    report = daemon.sync()
    return report, time.perf_counter() - started


def restart(
    bench: Bench, base: str, tree: Path, picked: list[str], sizes: dict[str, int]
) -> dict[str, Any]:
    """The daemon started again (from the state file the CLI wrote) after `picked` changed:
    the request bodies it sends, counted at the transport, against the changed files' size."""
    with counted_daemon(bench, base, tree) as (daemon, transport):
        report, wall = timed_sync(daemon)
    if sorted(report.changed) != sorted(picked) or report.uploaded != len(picked):
        raise RuntimeError(f"the restart sent {report}, not the {len(picked)} changed files")
    changed_bytes = sum(sizes[p] for p in picked)
    sent = sum(transport.body_bytes)
    return {
        "changed_files": len(picked),
        "changed_bytes": changed_bytes,
        "request_body_bytes": sent,
        "ratio_sent_to_changed": round(sent / changed_bytes, 4),
        "requests": len(transport.sent),
        "requests_by_kind": {
            "missing": transport.count("POST", "/api/blobs/missing"),
            "upload": transport.count("PUT", "/api/blobs/"),
            "commit": transport.count("POST", "/api/workspaces/"),
        },
        "s": round(wall, 3),
    }


def bench_memory(database: str, *, files: int) -> list[dict[str, Any]]:
    """Peak RSS of `autan sync --once` over `files` small files; then the same files under a new
    path (a new workspace, its content already on the server) synced in watch mode: RSS once
    the first sync is done and after one change, and the peak."""
    with bench_env(database, "none") as bench, api_process(bench) as base:
        tree = bench.workdir / "small"
        total = make_small_tree(tree, files)
        env = cli_env(bench, base)
        once = sync_once(env, tree, bench.workdir / "small-once.log", timeout=3600)
        again = sync_once(env, tree, bench.workdir / "small-again.log")
        shape = {"database": database, "files": files, "bytes": total}
        figures = [
            {"figure": "sync --once memory", **shape, "first": once, "restart_unchanged": again}
        ]
        watched = tree.rename(bench.workdir / "small-watched")
        figures.append({"figure": "sync watch memory", **shape, **watch(env, watched, bench)})
    return figures


def watch(env: dict[str, str], tree: Path, bench: Bench) -> dict[str, Any]:
    """`autan sync TREE` (watching): its RSS once the first sync is done (it logs the version)
    and after one change, and its peak over the whole run."""
    child = SyncProcess(env, tree, log=bench.workdir / "watch.log")
    try:
        started = time.perf_counter()
        synced(child, "version 1:", timeout=1800)
        first_s = time.perf_counter() - started
        after_first = child.status_mib("VmRSS")
        (tree / "p0" / "q0" / "f000000.txt").write_bytes(b"changed while watched\n")
        synced(child, "version 2:", timeout=120)
        after_change, peak = child.status_mib("VmRSS"), child.status_mib("VmHWM")
        ended = child.stop()
    finally:
        child.kill()
    state = load(state_file(bench.workdir / "sync-state", tree.resolve()))
    if ended.returncode != 0 or state is None or state.version != 2 or state.pending.paths:
        raise RuntimeError(f"the watching daemon did not sync cleanly:\n{child.output()[-2000:]}")
    return {
        "first_sync_s": round(first_s, 3),
        "rss_after_first_sync_mib": round(after_first, 1),
        "rss_after_one_change_mib": round(after_change, 1),
        "peak_rss_mib": round(max(peak, ended.peak_rss_mib), 1),  # they differ by a page or so
    }


def synced(child: SyncProcess, line: str, timeout: float) -> None:
    """Wait for the daemon to log `line` (it does once that version is committed and saved)."""
    wait_until(
        lambda: line in child.output() or not child.running(),
        timeout=timeout, interval=0.05, what=f"the watching daemon to log {line!r}",
    )  # fmt: skip
    if not child.running():
        raise RuntimeError(f"the watching daemon exited:\n{child.output()[-2000:]}")


def bench_rename(database: str, *, files: int) -> list[dict[str, Any]]:
    """`autan sync --once` after a folder of `files` small files is renamed (sent as one
    rename), and after it is renamed back with one file inside edited (no longer the same
    folder: sent path by path, the server deleting the old folder by prefix)."""
    with bench_env(database, "none") as bench, api_process(bench) as base:
        tree = bench.workdir / "renamed"
        make_small_tree(tree / "big", files)
        env = cli_env(bench, base)
        sync_once(env, tree, bench.workdir / "rename-first.log", timeout=1800)
        (tree / "big").rename(tree / "moved")
        whole = sync_once(env, tree, bench.workdir / "rename-whole.log")
        (tree / "moved").rename(tree / "big")
        (tree / "big" / "p0" / "q0" / "f000000.txt").write_bytes(b"edited on the way\n")
        by_path = sync_once(env, tree, bench.workdir / "rename-paths.log")
    return [
        {
            "figure": "sync rename of a folder",
            "database": database,
            "files": files,
            "as_rename_s": whole["s"],
            "path_by_path_s": by_path["s"],
        }
    ]


def bench_store_rename(database: str, *, files: int = 100_000) -> list[dict[str, Any]]:
    """The store's side alone: a folder of `files` files renamed in one commit, then deleted
    by naming every path (as a daemon before issue 13 sent it); seconds and statements."""
    with bench_env(database, "none") as bench:
        services = bench.services
        blobs = BlobStore(bench.settings.data_dir / "blobs")
        digest = blobs.put_bytes(b"x\n")
        entries = [Entry(path="big", kind="dir"), Entry(path="lib", kind="dir")]
        entries += [Entry(path=f"big/d{i}", kind="dir") for i in range(100)]
        entries += [Entry(path=f"big/d{i % 100}/f{i}.txt", kind="file", hash=digest, size=2)
                    for i in range(files)]  # fmt: skip
        with services.sessions.begin() as session:
            made, _ = workspace_store.register(
                session, key="bench", name="bench", root="/bench", created_by="bench", now=utcnow()
            )
            workspace_id = made.id
        with services.sessions.begin() as session:
            commits.commit(session, workspace_id=workspace_id, parent=0, changes=entries,
                           deleted=[], blobs=blobs, now=utcnow())  # fmt: skip
        moved = [
            p.replace("big", "lib/big", 1)
            for p in sorted(e.path for e in entries[:1] + entries[2:])
        ]
        figures: dict[str, Any] = {"figure": "store rename and delete of a folder",
                                   "database": database, "files": files}  # fmt: skip
        statements: list[str] = []
        event.listen(services.engine, "before_cursor_execute", lambda *_: statements.append(""))
        steps: list[tuple[str, int, list[tuple[str, str]], list[str]]] = [
            ("rename", 1, [("big", "lib/big")], []),
            ("delete_every_path", 2, [], moved),
        ]
        for name, parent, renamed, deleted in steps:
            statements.clear()
            started = time.perf_counter()
            with services.sessions.begin() as session:
                commits.commit(session, workspace_id=workspace_id, parent=parent, changes=[],
                               deleted=deleted, renamed=renamed, blobs=blobs, now=utcnow())  # fmt: skip
            figures[f"{name}_s"] = round(time.perf_counter() - started, 3)
            figures[f"{name}_statements"] = len(statements)
    return [figures]


def bench_sync(
    databases: list[str],
    *,
    files: int = 20_000,
    total_mb: int = 200,
    many: int = 100_000,
    renamed: int = 10_000,
) -> Iterator[dict[str, Any]]:
    """Every figure of the sync issue: the first two and the rename on each store, memory on
    the first (`many` 0: left out)."""
    for database in databases:
        yield from bench_first_sync_and_restart(database, files=files, total_mb=total_mb)
        yield from bench_rename(database, files=renamed)
        yield from bench_store_rename(database)
    if many:
        yield from bench_memory(databases[0], files=many)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--total-mb", type=int, default=200)
    parser.add_argument("--many", type=int, default=100_000)
    parser.add_argument("--renamed", type=int, default=10_000)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped, it still cleans up
    for figure in bench_sync(
        args.databases.split(","), files=args.files, total_mb=args.total_mb, many=args.many,
        renamed=args.renamed,
    ):  # fmt: skip
        print(json.dumps(figure), flush=True)


if __name__ == "__main__":
    main()
