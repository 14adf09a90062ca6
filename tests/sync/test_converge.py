"""Random edit sequences with daemon restarts between them: the server converges on the disk."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.services import Services
from sync.blobs import BlobStore
from sync.hashing import hash_bytes
from sync.scan import Scanner
from tests.sync.conftest import Daemons

NAMES = ["a", "b", "d/c", "d/e/f", "x.log"]
Op = tuple[str, str, str]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.sampled_from(NAMES), st.text("xy\n", max_size=6)),
        st.tuples(st.just("delete"), st.sampled_from([*NAMES, "d", "d/e"]), st.just("")),
        st.tuples(st.just("rename"), st.sampled_from(NAMES), st.sampled_from(NAMES)),
        st.tuples(st.just("chmod"), st.sampled_from(NAMES), st.just("")),
        st.tuples(st.just("mkdir"), st.sampled_from(["d", "d/e", "g/h"]), st.just("")),
        st.tuples(st.just("ignore"), st.sampled_from(["*.log", "d/", "!x.log", ""]), st.just("")),
        st.tuples(st.just("sync"), st.just(""), st.just("")),
        st.tuples(st.just("restart"), st.just(""), st.just("")),
    ),
    max_size=25,
)


def apply(root: Path, op: Op) -> None:
    kind, name, arg = op
    path = root / name
    with contextlib.suppress(OSError):  # an edit the tree's shape does not allow is skipped
        if kind == "write":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(arg)
        elif kind == "delete":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        elif kind == "rename":
            (root / arg).parent.mkdir(parents=True, exist_ok=True)
            path.rename(root / arg)
        elif kind == "chmod":
            path.chmod(path.stat().st_mode ^ 0o100)
        elif kind == "mkdir":
            path.mkdir(parents=True, exist_ok=True)
        elif kind == "ignore":
            (root / ".gitignore").write_text(name + "\n")


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(edits=ops)
def test_random_edits_and_restarts_converge(
    edits: list[Op], daemons: Daemons, services: Services
) -> None:
    blobs = BlobStore(services.settings.data_dir / "blobs")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        daemon = daemons.make(root)
        for op in edits:
            if op[0] == "sync":
                daemon.sync()
            elif op[0] == "restart":
                daemon = daemons.make(root)  # a new process would read the same state file
            else:
                apply(root, op)
        daemon.sync()

        workspace_id = daemon.state.workspace_id or ""
        _, tree = daemons.make(root).remote.manifest(workspace_id)
        local = {p: found.entry for p, found in Scanner(root).scan({}).entries.items()}
        assert tree == local
        for entry in tree.values():
            if entry.kind == "file":
                data = (root / entry.path).read_bytes()
                assert blobs.path(entry.hash or "").read_bytes() == data
                assert hash_bytes(data) == entry.hash
