"""Small Python repositories, each with a real bug, a failing test and a known fix."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Bug:
    name: str
    code: str
    """lib.py: the buggy function, plus `version()` which a passing test covers."""
    test: str
    """The test of the buggy function (fails until fixed)."""
    old: str
    new: str
    """The known fix: replace `old` (once) by `new` in lib.py."""

    @property
    def task(self) -> str:
        return f"[{self.name}] The test in tests/test_lib.py fails. Fix the bug in lib.py."


VERSION = '\n\ndef version() -> str:\n    return "1.0"\n'
VERSION_TEST = 'def test_version():\n    assert lib.version() == "1.0"\n'
BREAK = ('return "1.0"', 'return "1.1"')
"""An edit that breaks the passing test of every repository."""

BUGS = [
    Bug("add", "def add(a, b):\n    return a - b\n", "assert lib.add(2, 3) == 5", "a - b", "a + b"),
    Bug(
        "total",
        "def total(n):\n    return sum(range(1, n))\n",
        "assert lib.total(4) == 10",
        "range(1, n)",
        "range(1, n + 1)",
    ),
    Bug(
        "reverse",
        "def reverse(s):\n    return s[::1]\n",
        'assert lib.reverse("abc") == "cba"',
        "s[::1]",
        "s[::-1]",
    ),
    Bug(
        "largest",
        "def largest(xs):\n    best = xs[0]\n    for x in xs:\n        if x < best:\n"
        "            best = x\n    return best\n",
        "assert lib.largest([3, 9, 2]) == 9",
        "x < best",
        "x > best",
    ),
    Bug(
        "even",
        "def is_even(n):\n    return n % 2 == 1\n",
        "assert lib.is_even(4) and not lib.is_even(3)",
        "n % 2 == 1",
        "n % 2 == 0",
    ),
    Bug(
        "fahrenheit",
        "def fahrenheit(c):\n    return c * 9 / 5 - 32\n",
        "assert lib.fahrenheit(100) == 212",
        "c * 9 / 5 - 32",
        "c * 9 / 5 + 32",
    ),
    Bug(
        "words",
        'def words(text):\n    return len(text.split(" "))\n',
        'assert lib.words("a  b") == 2',
        'text.split(" ")',
        "text.split()",
    ),
    Bug(
        "clamp",
        "def clamp(x, lo, hi):\n    return min(lo, max(x, hi))\n",
        "assert lib.clamp(5, 0, 3) == 3 and lib.clamp(-1, 0, 3) == 0",
        "min(lo, max(x, hi))",
        "max(lo, min(x, hi))",
    ),
    Bug(
        "mean",
        "def mean(xs):\n    return sum(xs) / len(xs)\n",
        "assert lib.mean([]) == 0.0 and lib.mean([1, 3]) == 2",
        "sum(xs) / len(xs)",
        "sum(xs) / len(xs) if xs else 0.0",
    ),
    Bug(
        "merge",
        "def merge(a, b):\n    merged = a\n    merged.update(b)\n    return merged\n",
        "a = {1: 1}\n    assert lib.merge(a, {2: 2}) == {1: 1, 2: 2} and a == {1: 1}",
        "merged = a\n",
        "merged = dict(a)\n",
    ),
    Bug(
        "factorial",
        "def factorial(n):\n    if n == 1:\n        return 1\n    return n * factorial(n - 1)\n",
        "assert lib.factorial(0) == 1 and lib.factorial(4) == 24",
        "n == 1",
        "n <= 1",
    ),
]


def git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin", "HOME": str(repo),
    }  # fmt: skip
    done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def make_repo(root: Path, bug: Bug, extra: dict[str, str] | None = None) -> Path:
    """A real git repository of `bug` at `root/<name>`, committed on branch main."""
    repo = root / bug.name
    (repo / "tests").mkdir(parents=True)
    (repo / "lib.py").write_text(bug.code + VERSION)
    test = f"import lib\n\n\ndef test_{bug.name}():\n    {bug.test}\n\n\n{VERSION_TEST}"
    (repo / "tests" / "test_lib.py").write_text(test)
    (repo / "conftest.py").write_text("")  # puts the root on sys.path for `import lib`
    for path, text in (extra or {}).items():
        (repo / path).write_text(text)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"{bug.name}: with a bug")
    return repo
