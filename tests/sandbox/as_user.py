"""Run commands in a sandbox made by this process's (unprivileged) user; print the results."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from sandbox.bwrap import BwrapSandbox
from sandbox.config import LimitsConfig, SandboxConfig


def main(spec: dict[str, object]) -> None:
    limits = LimitsConfig(require_cgroups=False, disk="64M", timeout_s=60)
    config = SandboxConfig(root=Path(str(spec["root"])), limits=limits)
    with BwrapSandbox(Path(str(spec["base"])), config) as sbx:
        results = []
        for command in spec["commands"]:  # type: ignore[attr-defined]
            done = sbx.exec(command)
            results.append({"exit_code": done.exit_code, "stdout": done.stdout,
                            "stderr": done.stderr})  # fmt: skip
        sbx.exec("echo x > owned")
        owner = os.stat(f"{sbx._view}/upper/owned").st_uid
    print(json.dumps({"results": results, "owner": owner, "uid": os.getuid()}))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
