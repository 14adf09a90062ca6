"""Sandbox figures: create-to-first-exec (cold, warm pool, bare bwrap, cp -a, git worktree), diff,
100 open."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from sandbox.bwrap import BwrapSandbox
from sandbox.config import LimitsConfig, SandboxConfig
from sandbox.pool import PoolConfig, SandboxPool
from tests.bench.stats import summary_ms
from tests.waiting import wait_until


def make_tree(root: Path, files: int, total_mb: int) -> Path:
    tree = root / "tree"
    size = max(1, total_mb * (1 << 20) // files)
    blob = os.urandom(size)
    for i in range(files):
        d = tree / f"d{i % 100:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.txt").write_bytes(b"line %d\n" % i + blob[: size - 16])
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@b"]
    subprocess.run([*git, "init", "-q"], cwd=tree, check=True)
    subprocess.run([*git, "add", "-A"], cwd=tree, check=True)
    subprocess.run([*git, "commit", "-qm", "tree"], cwd=tree, check=True)
    return tree


# The floor a sandbox is measured against: the same mounts by hand, no cgroups, no holder, no
# filter, no masks (`unshare` + tmpfs + overlay + one bwrap), run as its own process tree.
_BARE = """set -e
mount -t tmpfs -o size=1G tmpfs "$1"; mkdir "$1/u" "$1/w" "$1/m"
mount -t overlay overlay -o "lowerdir=$2,upperdir=$1/u,workdir=$1/w,userxattr" "$1/m"
bwrap --unshare-all --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib \
    --symlink usr/lib64 /lib64 --proc /proc --dev /dev --bind "$1/m" /workspace true"""


def _bare(tree: Path, mnt: Path) -> float:
    t = time.perf_counter()
    argv = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", _BARE, "bare"]
    subprocess.run([*argv, str(mnt), str(tree)], check=True)
    return time.perf_counter() - t


def _bwrap_root() -> float:
    t = time.perf_counter()
    subprocess.run(["bwrap", "--ro-bind", "/", "/", "true"], check=True)
    return time.perf_counter() - t


def _mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def bench_sandbox(
    *, files: int = 10_000, total_mb: int = 100, runs: int = 50, copies: int = 5, open_n: int = 100
) -> list[dict[str, Any]]:
    """Every figure of the sandbox issue, measured in one run on one generated tree."""
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="autan-bench-") as tmp_name:
        tmp = Path(tmp_name)
        tree = make_tree(tmp, files, total_mb)
        config = SandboxConfig(root=tmp / "sandboxes", limits=LimitsConfig(disk="1G"))
        shape = {"files": files, "total_mb": total_mb}

        # Interleaved, so that load on the machine falls on every figure alike.
        cold: list[float] = []
        bare: list[float] = []
        bwrap_root: list[float] = []
        (tmp / "bare").mkdir()
        BwrapSandbox(tree, config).close()  # the first makes the worker's shared namespace
        for _ in range(runs):
            t = time.perf_counter()
            sbx = BwrapSandbox(tree, config)
            assert sbx.exec(["true"]).exit_code == 0
            sbx.close()
            cold.append(time.perf_counter() - t)
            bare.append(_bare(tree, tmp / "bare"))
            bwrap_root.append(_bwrap_root())
        floor = summary_ms(bare)["p50_ms"]
        results.append({"bench": "bare_unshare_overlay_bwrap", **shape, **summary_ms(bare)})
        results.append({"bench": "bwrap_ro_bind_root_true", **summary_ms(bwrap_root)})
        results.append(
            {
                "bench": "sandbox_create_exec_close_cold",
                **shape,
                **summary_ms(cold),
                "x_bare": round(summary_ms(cold)["p50_ms"] / floor, 2),
            }
        )

        pool = SandboxPool(config, PoolConfig(size=2))
        pool.warm(tree)
        warm = []
        for _ in range(runs):
            wait_until(lambda: pool.ready(tree) == 2, what="pool refilled")
            t = time.perf_counter()
            sbx = pool.acquire(tree)
            assert sbx.exec(["true"]).exit_code == 0
            sbx.close()
            warm.append(time.perf_counter() - t)
        pool.close()
        results.append(
            {
                "bench": "sandbox_acquire_exec_close_pool",
                **shape,
                **summary_ms(warm),
                "x_bare": round(summary_ms(warm)["p50_ms"] / floor, 2),
            }
        )

        baselines: dict[str, list[float]] = {"cp_a": [], "git_worktree": []}
        for i in range(copies):
            t = time.perf_counter()
            subprocess.run(["cp", "-a", str(tree), str(tmp / f"cp{i}")], check=True)
            subprocess.run(["true"], cwd=tmp / f"cp{i}", check=True)
            baselines["cp_a"].append(time.perf_counter() - t)
            shutil.rmtree(tmp / f"cp{i}")
            t = time.perf_counter()
            wt = ["git", "worktree", "add", "-q", "--detach", str(tmp / f"wt{i}")]
            subprocess.run(wt, cwd=tree, check=True)
            subprocess.run(["true"], cwd=tmp / f"wt{i}", check=True)
            baselines["git_worktree"].append(time.perf_counter() - t)
            subprocess.run(["git", "worktree", "remove", "--force", str(tmp / f"wt{i}")], cwd=tree)
        cold_p50 = summary_ms(cold)["p50_ms"]
        warm_p50 = summary_ms(warm)["p50_ms"]
        for name, values in baselines.items():
            figures = summary_ms(values)
            results.append(
                {
                    "bench": f"baseline_{name}",
                    **shape,
                    **figures,
                    "x_slower_than_cold": round(figures["p50_ms"] / cold_p50, 1),
                    "x_slower_than_warm": round(figures["p50_ms"] / warm_p50, 1),
                }
            )

        with BwrapSandbox(tree, config) as sbx:
            edit = "i=0; for f in d*/f*.txt; do [ $i -ge 100 ] && break; echo edit >> $f; i=$((i+1)); done"
            assert sbx.exec(edit).exit_code == 0
            changed, diffed = [], []
            for _ in range(20):
                t = time.perf_counter()
                n = len(sbx.changed_paths())
                changed.append(time.perf_counter() - t)
                t = time.perf_counter()
                sbx.diff()
                diffed.append(time.perf_counter() - t)
            results.append(
                {"bench": "changed_paths_100_edits", "changed": n, **summary_ms(changed)}
            )
            results.append({"bench": "diff_100_edits", "changed": n, **summary_ms(diffed)})

        before = _mem_available()
        t = time.perf_counter()
        opened = [BwrapSandbox(tree, config) for _ in range(open_n)]
        open_s = time.perf_counter() - t
        after = _mem_available()
        for sbx in opened:
            sbx.close()
        results.append(
            {
                "bench": "sandboxes_open_at_once",
                "n": open_n,
                "open_all_ms": round(open_s * 1000, 1),
                "extra_kib_per_sandbox": round((before - after) / open_n / 1024, 1),
            }
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.sandbox")
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--total-mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--copies", type=int, default=5)
    parser.add_argument("--open", type=int, default=100, dest="open_n")
    args = parser.parse_args()
    for result in bench_sandbox(
        files=args.files,
        total_mb=args.total_mb,
        runs=args.runs,
        copies=args.copies,
        open_n=args.open_n,
    ):
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
