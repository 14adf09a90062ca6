"""Names the workspace API refuses (control characters, bytes not UTF-8) are left out of a
scan, saying so, instead of making every commit a 422."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sync.scan import Scanner


def test_names_the_server_would_refuse_are_left_out_saying_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "checkout"
    root.mkdir()
    (root / "ok.txt").write_text("x")
    (root / "new\nline.txt").write_text("x")
    (root / "tab\tdir").mkdir()
    (root / "tab\tdir" / "inside.txt").write_text("x")
    with open(os.path.join(os.fsencode(root), b"latin1-\xe9.txt"), "w") as f:  # not UTF-8
        f.write("x")

    (root / "odd-link").symlink_to("ok\x01.txt")

    with caplog.at_level("WARNING", logger="sync.scan"):
        found = Scanner(root).scan({})

    assert sorted(found.entries) == ["ok.txt"]
    assert found.refused == ["odd-link"]
    again = Scanner(root).rescan(found.entries, {"tab\tdir/inside.txt", "new\nline.txt"}, [])
    assert sorted(again.entries) == ["ok.txt"]
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 6  # four in the scan, two in the rescan
    assert all(
        line.endswith(("in the path, not synced", "in its target, not synced")) for line in said
    )
