"""Three-way merge and its application to real files: no version is ever lost."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.blobs import BlobStore
from sync.errors import UnsafePath
from sync.follow import entry_at
from sync.hashing import hash_bytes
from sync.manifests import Entry
from sync.merge import Applier, merge

LABEL = "t1"


def f(path: str, data: bytes, mode: int = 0o644) -> Entry:
    return Entry(path=path, kind="file", hash=hash_bytes(data), mode=mode, size=len(data))


def lay_out(root: Path, tree: dict[str, Entry], blobs: BlobStore) -> None:
    for path in sorted(tree):
        entry, target = tree[path], root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == "dir":
            target.mkdir(exist_ok=True)
        else:
            target.write_bytes(blobs.read(entry.hash or ""))
            target.chmod(entry.mode)


def on_disk(root: Path) -> dict[str, Entry]:
    """Everything under `root`, conflict copies included (the scanner leaves those out)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.relpath(os.path.join(folder, name), root)
            entry = entry_at(root, path)
            if entry is not None:
                found[path] = entry
    return found


def test_each_rule(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    for data in (b"base", b"ours", b"theirs", b"same"):
        blobs.put_bytes(data)
    base = {p: f(p, b"base") for p in ("a", "b", "c", "d", "e", "g")}
    ours = {**base, "b": f("b", b"ours"), "c": f("c", b"ours"), "e": f("e", b"same")}
    del ours["g"]
    ours["new-ours"] = f("new-ours", b"ours")
    theirs = {**base, "a": f("a", b"theirs"), "c": f("c", b"theirs"), "e": f("e", b"same")}
    theirs["g"] = f("g", b"theirs")
    theirs["x"] = f("x", b"theirs", 0o755)
    del theirs["d"]
    root = tmp_path / "tree"
    lay_out(root, ours, blobs)

    plan = merge(base, ours, theirs)
    conflicts = Applier(root, blobs.path, LABEL).apply(plan, ours)

    assert (root / "a").read_bytes() == b"theirs"  # only they changed it: theirs
    assert (root / "b").read_bytes() == b"ours"  # only we changed it: ours
    assert (root / "c").read_bytes() == b"ours"  # both: ours stays, theirs beside it
    assert (root / "c.autan-t1").read_bytes() == b"theirs"
    assert not (root / "d").exists()  # they deleted what we left alone
    assert (root / "e").read_bytes() == b"same"  # the same edit: no conflict
    assert not (root / "g").exists() and (root / "g.autan-t1").read_bytes() == b"theirs"
    assert (root / "x").stat().st_mode & 0o777 == 0o755
    assert sorted(c.path for c in conflicts) == ["c", "g"]
    assert not [p for p in root.iterdir() if p.name.endswith(".tmp")]


def test_a_local_edit_after_the_plan_is_never_overwritten(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    for data in (b"base", b"theirs"):
        blobs.put_bytes(data)
    base = {"a": f("a", b"base"), "b": f("b", b"base")}
    theirs = {"a": f("a", b"theirs")}  # changed a, deleted b
    root = tmp_path / "tree"
    lay_out(root, base, blobs)
    plan = merge(base, base, theirs)
    (root / "a").write_bytes(b"edited meanwhile")
    (root / "b").write_bytes(b"edited too")

    conflicts = Applier(root, blobs.path, LABEL).apply(plan, base)

    assert (root / "a").read_bytes() == b"edited meanwhile"
    assert (root / "a.autan-t1").read_bytes() == b"theirs"
    assert (root / "b").read_bytes() == b"edited too"
    assert sorted(c.path for c in conflicts) == ["a", "b"]


CONTENTS = [b"0", b"1", b"2", b"3"]
PATHS = ["a", "b", "d/c"]
trees = st.dictionaries(st.sampled_from(PATHS), st.sampled_from(CONTENTS), max_size=3)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=trees, ours=trees, theirs=trees)
def test_merging_loses_no_version(
    base: dict[str, bytes], ours: dict[str, bytes], theirs: dict[str, bytes]
) -> None:
    def entries(files: dict[str, bytes]) -> dict[str, Entry]:
        tree = {p: f(p, data) for p, data in files.items()}
        if any(p.startswith("d/") for p in tree):
            tree["d"] = Entry(path="d", kind="dir")
        return tree

    b, o, t = entries(base), entries(ours), entries(theirs)
    with tempfile.TemporaryDirectory() as tmp:
        blobs = BlobStore(Path(tmp) / "blobs")
        for data in CONTENTS:
            blobs.put_bytes(data)
        root = Path(tmp) / "tree"
        root.mkdir()
        lay_out(root, o, blobs)

        Applier(root, blobs.path, LABEL).apply(merge(b, o, t), o)

        result = on_disk(root)
        for path in PATHS:
            mine, other, was = o.get(path), t.get(path), b.get(path)
            here = result.get(path)
            if mine == was:  # only they may have changed it: theirs
                assert here == other
            else:  # we changed it: ours stays, whatever they did
                assert here == mine
            if other is not None and other not in (mine, was):
                # theirs is here, or beside ours as a conflict copy
                copy = result.get(f"{path}.autan-{LABEL}")
                assert here == other or (copy is not None and copy.hash == other.hash)


def test_theirs_cannot_write_through_a_local_symlink_out_of_the_tree(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    blobs.put_bytes(b"evil")
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "tree"
    root.mkdir()
    (root / "out").symlink_to(outside)
    plan = merge({}, {}, {"out/evil": f("out/evil", b"evil")})

    with pytest.raises(UnsafePath, match="outside"):
        Applier(root, blobs.path, LABEL).apply(plan, {})
    assert list(outside.iterdir()) == []
    forged = Entry.model_construct(  # past validation, as a hostile server could send it
        path="../x", kind="file", hash=hash_bytes(b"evil"), mode=0o644, target=None, size=4
    )
    with pytest.raises(UnsafePath):
        Applier(root, blobs.path, LABEL).apply(merge({}, {}, {"../x": forged}), {})
    assert not (tmp_path / "x").exists()
