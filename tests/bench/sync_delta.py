"""Bytes a small edit to a big file costs: `autan sync` (chunks) beside `rsync --no-whole-file`.

A file of random bytes is synced whole (the daemon in this process, with a transport that
counts each request body's bytes as they go out), and copied with `rsync -a` to a second
directory; then `edit` bytes in its middle are overwritten and both send the change again:
the daemon's request bodies against rsync's "Total bytes sent" (--stats, a local pair of
directories, --no-whole-file so that rsync sends a delta as it would over a network, and
--ignore-times: two edits within a second keep the size and the mtime to the second).
The first edit is sent by a daemon started again, a second by that daemon still running.

    python -m tests.bench.sync_delta [--databases sqlite,postgresql] [--size-mb 200] [--edit 100]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from sync.daemon import SyncDaemon
from tests.bench.env import api_process, bench_env
from tests.bench.sync import counted_daemon, timed_sync
from tests.sync.conftest import CountingTransport

MIB = 1 << 20


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as file:
        for start in range(0, size, MIB):
            file.write(os.urandom(min(MIB, size - start)))


def rsync_sent(source: Path, dest: Path, *flags: str) -> int:
    """`rsync -a FLAGS --stats source/ dest/`: its "Total bytes sent"."""
    if shutil.which("rsync") is None:
        raise RuntimeError("rsync is not installed (apt-get install rsync): the baseline needs it")
    ran = subprocess.run(
        ["rsync", "-a", *flags, "--stats", f"{source}/", f"{dest}/"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    found = re.search(r"Total bytes sent: ([\d,]+)", ran.stdout)
    if found is None:
        raise RuntimeError(f"rsync --stats printed no total:\n{ran.stdout}")
    return int(found.group(1).replace(",", ""))


def overwrite(path: Path, at: int, size: int) -> None:
    with open(path, "r+b") as file:
        file.seek(at)
        file.write(os.urandom(size))


def measured(daemon: SyncDaemon, transport: CountingTransport) -> dict[str, Any]:
    """One sync of the changed big file by the daemon: bytes sent, requests, seconds."""
    transport.clear()
    report, wall = timed_sync(daemon)
    if report.changed != ["big.bin"] or report.uploaded != 1:
        raise RuntimeError(f"the daemon sent {report}, not the one big file")
    return {
        "request_body_bytes": sum(transport.body_bytes),
        "content_bytes": report.uploaded_bytes,
        "requests": len(transport.sent),
        "s": round(wall, 3),
    }


def bench_delta(database: str, *, size_mb: int, edit: int) -> dict[str, Any]:
    """The file synced; `edit` bytes overwritten in its middle and synced by a daemon started
    again (it sends the chunk list to ask, and again to store); `edit` more bytes a quarter
    in, synced by that daemon still running (the new chunks first, the list once)."""
    with bench_env(database, "none") as bench, api_process(bench) as base:
        tree, copy = bench.workdir / "tree", bench.workdir / "rsync-copy"
        tree.mkdir()
        big = tree / "big.bin"
        write_random(big, size_mb * MIB)
        first_rsync = rsync_sent(tree, copy)
        with counted_daemon(bench, base, tree) as (daemon, transport):
            first = measured(daemon, transport)
        overwrite(big, size_mb * MIB // 2, edit)
        rsync_edit = rsync_sent(tree, copy, "--no-whole-file", "--ignore-times")
        with counted_daemon(bench, base, tree) as (daemon, transport):
            restarted = measured(daemon, transport)
            overwrite(big, size_mb * MIB // 4, edit)
            rsync_second = rsync_sent(tree, copy, "--no-whole-file", "--ignore-times")
            running = measured(daemon, transport)
    return {
        "figure": "sync bytes for a small edit to a big file vs rsync --no-whole-file",
        "database": database,
        "file_bytes": size_mb * MIB,
        "edit_bytes": edit,
        "first_sync": first,
        "rsync_first_bytes_sent": first_rsync,
        "edit_sync_restarted_daemon": restarted,
        "rsync_no_whole_file_bytes_sent": rsync_edit,
        "second_edit_sync_running_daemon": running,
        "rsync_second_edit_bytes_sent": rsync_second,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--edit", type=int, default=100)
    args = parser.parse_args()
    for database in args.databases.split(","):
        print(json.dumps(bench_delta(database, size_mb=args.size_mb, edit=args.edit)), flush=True)


if __name__ == "__main__":
    main()
