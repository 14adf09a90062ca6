"""Network figures: a 10 MB download through the allowlist proxy against direct, and the bridge's cost."""

from __future__ import annotations

import argparse
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sandbox.bwrap import BwrapSandbox
from sandbox.config import LimitsConfig, SandboxConfig
from sandbox.network import NetworkConfig
from tests.bench.stats import summary_ms

# The same client inside and outside: it times the transfer alone, after its own start-up.
CLIENT = (
    "import os, sys, time, urllib.request as u\n"
    "os.environ.pop('no_proxy', None); os.environ.pop('NO_PROXY', None)\n"
    "t = time.perf_counter()\n"
    "n = len(u.urlopen(sys.argv[1]).read())\n"
    "print(n, time.perf_counter() - t)\n"
)


def _serve(root: Path) -> http.server.ThreadingHTTPServer:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _timed(run: Any) -> tuple[float, float]:
    """(transfer seconds as the client saw them, whole command seconds)."""
    t = time.perf_counter()
    out = run()
    whole = time.perf_counter() - t
    size, transfer = out.split()
    assert int(size) == _SIZE, out
    return float(transfer), whole


_SIZE = 10 << 20


def bench_network(*, runs: int = 20) -> list[dict[str, Any]]:
    """Direct (the host's python3 to the host's server) against the same client in a sandbox
    through the allowlist proxy; and `true` under none against allowlist (the bridge's start)."""
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="autan-bench-net-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "site").mkdir()
        (tmp / "site" / "10mb.bin").write_bytes(os.urandom(_SIZE))
        (tmp / "tree").mkdir()
        server = _serve(tmp / "site")
        port = server.server_address[1]
        url = f"http://localhost:{port}/10mb.bin"
        policy = NetworkConfig(
            mode="allowlist", allow=["localhost"], allow_addresses=["127.0.0.1"], ports=[port]
        )
        config = SandboxConfig(root=tmp / "sandboxes", limits=LimitsConfig(disk="64M"))
        figures: dict[str, tuple[list[float], list[float]]] = {
            "direct": ([], []),
            "proxy": ([], []),
        }
        host = ["/usr/bin/python3", "-I", "-S", "-c", CLIENT, url]
        with BwrapSandbox(tmp / "tree", config) as sbx:
            for _ in range(runs):  # interleaved, so that both see the same machine
                direct = _timed(
                    lambda: subprocess.run(host, capture_output=True, text=True, check=True).stdout
                )
                proxied = _timed(lambda: sbx.exec(host, network=policy).stdout)
                for name, (transfer, whole) in (("direct", direct), ("proxy", proxied)):
                    figures[name][0].append(transfer)
                    figures[name][1].append(whole)
            starts: dict[str, list[float]] = {"none": [], "allowlist": []}
            for _ in range(runs):
                for name, net in (("none", NetworkConfig()), ("allowlist", policy)):
                    t = time.perf_counter()
                    assert sbx.exec(["true"], network=net).exit_code == 0
                    starts[name].append(time.perf_counter() - t)
        server.shutdown()
        server.server_close()
    direct_p50 = summary_ms(figures["direct"][0])["p50_ms"]
    for name, (transfer, whole) in figures.items():
        t = summary_ms(transfer)
        results.append(
            {
                "bench": f"download_10mb_{name}",
                **t,
                "mb_per_s_p50": round(10 / (t["p50_ms"] / 1000), 1),
                "x_of_direct": round(t["p50_ms"] / direct_p50, 2),
                "whole_command_p50_ms": summary_ms(whole)["p50_ms"],
            }
        )
    for name, values in starts.items():
        results.append({"bench": f"exec_true_network_{name}", **summary_ms(values)})
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.network")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    for result in bench_network(runs=args.runs):
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
