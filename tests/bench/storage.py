"""Storage figures: a workspace task's base tree on a worker that never saw the workspace (cold
cache) and on one that did (warm), for a 10,000-file checkout, the local store against S3.

The checkout (files of 64 B to 4 KiB of random bytes in nested folders) and its manifest are
put in the store first; what is timed is what a worker does before its sandbox starts:
`snapshots.base_tree` through `worker_blobs`, as the agent runner calls it. S3 is moto's
server, started here as the tests start it (tests/object_storage.py), on loopback: it shows
the cost of one request per blob, not a real network's latency. Each figure is the median of
`--runs` runs, each with fresh directories where the case asks for them.

- cold: an empty cache and no snapshot (the local store has no cache: its blobs are on disk);
- warm, new version: the blobs cached, a version with one file changed (a new snapshot);
- warm, same version: the snapshot is on the worker already.

Beside them: the time to store the checkout, and to ask the store which of its 10,000
hashes it lacks (the API's `POST /api/blobs/missing`, before a daemon's first upload).

    python -m tests.bench.storage [--files 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orchestrator.config import OrchestratorSettings
from sync import snapshots
from sync.base import LocalBlobs, Storage
from sync.blobs import BlobStore
from sync.cache import worker_blobs
from sync.hashing import hash_bytes
from sync.manifests import Entry, canonical
from sync.storage import open_storage
from tests.object_storage import S3Server

SEED = 12
REPO = snapshots.repo_of("ab" * 16, 1)


def checkout(store: Storage, files: int) -> tuple[str, str, list[str]]:
    """`files` random files stored as blobs; the manifest of the tree and of the tree with
    one file changed, and the files' hashes."""
    rng = random.Random(SEED)
    entries: dict[str, Entry] = {}
    writers = []
    for i in range(files):
        data = rng.randbytes(rng.randint(64, 4096))
        path = f"pkg{i % 20}/mod{i % 9}/f{i:05d}.py"
        entries[path] = Entry(path=path, kind="file", hash=hash_bytes(data), mode=0o644,
                              size=len(data))  # fmt: skip
        writer = store.writer(hash_bytes(data))
        writer.write(data)
        writers.append(writer)
        if len(writers) == 500:
            store.commit_many(writers)
            writers.clear()
    store.commit_many(writers)
    first = store.put_bytes(canonical(entries.values()))
    changed = b"# changed\n"
    entries["pkg0/mod0/f00000.py"] = Entry(path="pkg0/mod0/f00000.py", kind="file",
        hash=store.put_bytes(changed), mode=0o644, size=len(changed))  # fmt: skip
    second = store.put_bytes(canonical(entries.values()))
    return first, second, [entry.hash or "" for entry in entries.values()]


def _time(manifest: str, blobs: LocalBlobs, trees: Path) -> float:
    started = time.perf_counter()
    tree = snapshots.base_tree(REPO, manifest, blobs, trees)
    took = time.perf_counter() - started
    assert (tree / "pkg0/mod0").is_dir()
    return took


def _cases(store: Storage, work: Path, first: str, second: str, runs: int) -> dict[str, float]:
    times: dict[str, list[float]] = {"cold": [], "warm_new_version": [], "warm_same_version": []}
    for run in range(runs):
        worker = work / f"worker{run}"
        blobs = worker_blobs(store, worker / "cache", 10 << 30)
        trees = worker / "snapshots"
        times["cold"].append(_time(first, blobs, trees))
        times["warm_new_version"].append(_time(second, blobs, trees))
        times["warm_same_version"].append(_time(second, blobs, trees))
        shutil.rmtree(worker)
    return {case: round(statistics.median(values), 3) for case, values in times.items()}


def bench_storage(files: int = 10_000, runs: int = 3) -> Iterator[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="autan-bench-") as tmp:
        work = Path(tmp)
        server = S3Server(work / "moto.log")
        server.start()
        try:
            stores: dict[str, Storage] = {
                "local": BlobStore(work / "blobs"),
                "s3": open_storage(
                    OrchestratorSettings(**server.settings(server.bucket())).storage_config(),
                    work / "unused",
                ),
            }
            for name, store in stores.items():
                started = time.perf_counter()
                first, second, hashes = checkout(store, files)
                stored_s = time.perf_counter() - started
                started = time.perf_counter()
                assert store.missing(hashes) == []
                missing_s = time.perf_counter() - started
                seconds = _cases(store, work, first, second, runs)
                yield {
                    "figure": "workspace base tree on a worker",
                    "store": name,
                    "files": files,
                    "runs": runs,
                    **{f"{case}_s": value for case, value in seconds.items()},
                    "checkout_stored_s": round(stored_s, 1),
                    "missing_all_held_s": round(missing_s, 2),
                    "cpus": os.cpu_count(),
                }
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.storage")
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for figure in bench_storage(args.files, args.runs):
        print(json.dumps(figure), flush=True)


if __name__ == "__main__":
    main()
