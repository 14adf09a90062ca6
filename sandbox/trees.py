"""Base trees: bare mirrors per remote, one shared checkout per commit, local snapshots."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import git
from pydantic import BaseModel, Field

from sandbox.config import default_root
from sandbox.errors import RefNotFound, TreeError, TreeNotFound
from sandbox.gitauth import Credentials, GitCredentials

_HASH = re.compile(r"[0-9a-f]{7,64}")
# What git says when the remote answered but has no such ref (or the name is no ref at all).
_MISSING = ("couldn't find remote ref", "not our ref", "invalid refspec", "not a valid ref")


class TreesConfig(BaseModel):
    """Where base trees are cached and how much disk they may take."""

    root: Path = Field(default_factory=lambda: default_root().parent / "trees")
    """Directory of mirrors, checkouts and snapshots."""

    budget: int = 20 << 30
    """Bytes of checkouts and snapshots kept; `prune()` removes the least recently used above it."""

    fresh_s: float = Field(default=0.0, ge=0)
    """`resolve()` reuses a fetch of the same ref that ended at most this long before it was
    called. Whatever this is, a fetch that ends while a resolve waits for the mirror's lock is
    reused: attempts of a task that start together fetch once."""


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@contextlib.contextmanager
def _locked(path: Path, mode: int = fcntl.LOCK_EX) -> Iterator[None]:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


class TreeStore:
    """Makes each tree once, even when many workers ask at once (a file lock, an atomic rename)."""

    def __init__(
        self, config: TreesConfig | None = None, credentials: Credentials | None = None
    ) -> None:
        self.config = config or TreesConfig()
        self.root = self.config.root
        self._credentials = credentials
        """Who fetches from a private remote, per URL: used for that one command."""
        for part in ("mirrors", "trees", "tmp"):
            (self.root / part).mkdir(parents=True, exist_ok=True)

    def mirror(self, url: str) -> Path:
        """A bare mirror of `url`, cloned once, then fetched incrementally."""
        path = self.root / "mirrors" / f"{_key(url)}.git"
        with _locked(path.with_suffix(".lock")):
            self._fetch(url, path)
        return path

    def _auth(self, url: str) -> tuple[dict[str, str], GitCredentials]:
        """git's environment for a command against `url`, and what to redact from its errors."""
        found = self._credentials(url) if self._credentials is not None else None
        found = found or GitCredentials()
        return {"GIT_TERMINAL_PROMPT": "0", **found.env()}, found

    def _fetch(self, url: str, path: Path) -> None:
        env, creds = self._auth(url)
        try:
            if path.exists():
                git.Repo(path).git.fetch("--prune", "origin", env=env)
                return
            tmp = self.root / "tmp" / f"mirror-{uuid.uuid4().hex[:8]}.git"
            git.Repo.clone_from(url, tmp, mirror=True, env=env)
            tmp.rename(path)
        except git.GitCommandError as exc:
            raise TreeError(f"could not fetch {url}: {creds.redact(exc.stderr.strip())}") from exc

    def resolve(self, url: str, ref: str | None) -> str:
        """The full hash `ref` names on the remote now (its default branch when None).

        Fetches only that ref into the mirror (cloning it the first time); a full hash
        already in the mirror needs no fetch, and an abbreviated one a full fetch when the
        mirror lacks it. Raises RefNotFound when the remote has no such ref."""
        wanted, called = ref or "HEAD", time.time()
        mirror = self.root / "mirrors" / f"{_key(url)}.git"
        with _locked(mirror.with_suffix(".lock")):
            sha = (
                self._resolve(mirror, wanted)
                if _HASH.fullmatch(wanted) and mirror.exists()
                else None
            )
            if sha is not None and sha.startswith(wanted):
                return sha  # a commit never changes: nothing to fetch
            if not mirror.exists():
                self._fetch(url, mirror)  # a fresh clone has every ref as the remote has it now
                sha = self._resolve(mirror, wanted)
            else:
                sha = self._fetched_since(mirror, wanted, called - self.config.fresh_s)
                sha = sha or self._fetch_ref(url, mirror, wanted)
        if sha is None:
            raise RefNotFound(f"ref {wanted!r} not found in {url}")
        return sha

    def _fetched_since(self, mirror: Path, ref: str, since: float) -> str | None:
        stamp = mirror / "autan-fetched" / _key(ref)
        if stamp.exists() and stamp.stat().st_mtime >= since:
            return self._resolve(mirror, f"refs/autan/{_key(ref)}")
        return None

    def _fetch_ref(self, url: str, mirror: Path, ref: str) -> str | None:
        # Its own ref in the mirror, so that the commit stays reachable until it is checked out.
        dest = f"refs/autan/{_key(ref)}"
        env, creds = self._auth(url)
        try:
            git.Repo(mirror).git.fetch("--no-tags", "origin", f"+{ref}:{dest}", env=env)
            stamp = mirror / "autan-fetched" / _key(ref)  # when, for _fetched_since
            stamp.parent.mkdir(exist_ok=True)
            stamp.touch()
            return self._resolve(mirror, dest)
        except git.GitCommandError as exc:
            if not any(marker in exc.stderr for marker in _MISSING):
                raise TreeError(
                    f"could not fetch {ref!r} from {url}: {creds.redact(exc.stderr.strip())}"
                ) from exc
        if _HASH.fullmatch(ref):  # a hash the remote does not advertise: fetch everything
            self._fetch(url, mirror)
            return self._resolve(mirror, ref)
        return None

    def checkout(self, url: str, commit: str) -> Path:
        """The tree of `commit` (with its .git), made once and shared by every sandbox."""
        mirror = self.root / "mirrors" / f"{_key(url)}.git"
        with _locked(mirror.with_suffix(".lock")):
            sha = self._resolve(mirror, commit) if mirror.exists() else None
            if sha is None:  # not here yet: fetch, then it must be
                self._fetch(url, mirror)
                sha = self._resolve(mirror, commit)
        if sha is None:
            raise TreeNotFound(f"{commit!r} is not a commit of {url}")
        return self._once(f"{_key(url)}-{sha}", lambda tmp: self._clone(mirror, sha, tmp))

    def snapshot(self, path: Path) -> Path:
        """A copy of a local directory, made once per content (paths, sizes, mtimes)."""
        path = path.resolve()
        if not path.is_dir():
            raise TreeNotFound(f"{path} is not a directory")
        digest = hashlib.sha256(str(path).encode())
        for dirpath, dirnames, files in os.walk(path):
            dirnames.sort()
            for name in sorted(files):
                st = os.lstat(os.path.join(dirpath, name))
                digest.update(f"{dirpath}/{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        copy = ["cp", "-a", "--reflink=auto", f"{path}/.", "{dst}"]
        return self._once(
            f"local-{digest.hexdigest()[:20]}",
            lambda tmp: subprocess.run([*copy[:-1], str(tmp)], check=True, capture_output=True),
        )

    @staticmethod
    def _resolve(mirror: Path, commit: str) -> str | None:
        try:
            return str(
                git.Repo(mirror).git.rev_parse("--verify", "--quiet", f"{commit}^{{commit}}")
            )
        except git.GitCommandError:
            return None

    def _clone(self, mirror: Path, sha: str, tmp: Path) -> None:
        try:
            repo = git.Repo.clone_from(str(mirror), tmp, no_checkout=True)
            repo.git.checkout("--detach", sha)
        except git.GitCommandError as exc:
            raise TreeError(f"could not check out {sha}: {exc.stderr.strip()}") from exc

    def _once(self, name: str, make: Callable[[Path], object]) -> Path:
        final = self.root / "trees" / name
        with _locked(self.root / "trees" / f"{name}.lock"):
            if not final.exists():
                tmp = self.root / "tmp" / f"{name}-{uuid.uuid4().hex[:8]}"
                tmp.mkdir()
                try:
                    make(tmp)
                    size = sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file())
                    (self.root / "trees" / f"{name}.size").write_text(str(size))
                    tmp.rename(final)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
        os.utime(self.root / "trees" / f"{name}.size")  # last use, for prune()
        return final

    @contextlib.contextmanager
    def using(self, tree: Path) -> Iterator[None]:
        """Hold `tree` while a sandbox runs over it: `prune()` in any process leaves it alone.
        A tree this store did not make (a workspace snapshot) is not its to hold."""
        if tree.parent != self.root / "trees":
            yield
            return
        with _locked(tree.parent / f"{tree.name}.lock", fcntl.LOCK_SH):
            yield

    def prune(self, in_use: set[Path] | None = None) -> list[Path]:
        """Remove least recently used trees until their total fits the budget; never `in_use`
        nor one a sandbox holds (`using`), in this process or another."""
        trees = self.root / "trees"
        entries = []
        for size_file in trees.glob("*.size"):
            tree = size_file.with_suffix("")
            entries.append((size_file.stat().st_mtime, int(size_file.read_text()), tree))
        total = sum(size for _, size, _ in entries)
        removed: list[Path] = []
        busy = {p.resolve() for p in in_use or set()}
        for _, size, tree in sorted(entries):
            if total <= self.config.budget:
                break
            if tree.resolve() in busy:
                continue
            try:
                with _locked(trees / f"{tree.name}.lock", fcntl.LOCK_EX | fcntl.LOCK_NB):
                    shutil.rmtree(tree, ignore_errors=True)
                    tree.with_suffix(".size").unlink()
            except BlockingIOError:
                continue  # a sandbox runs over it, or it is being made
            removed.append(tree)
            total -= size
        return removed
