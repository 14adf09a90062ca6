"""Fail on a dependency in pyproject.toml that no code imports: `make lint` runs it.

Each declared distribution is mapped to the modules it installs (importlib.metadata); it is
used when any of them is imported somewhere in the project, or when it is named below with
how it is used without an import (a command, a plugin, a driver named in a URL).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = {".venv", ".git", "node_modules", "build", "artifacts", "bench-results"}

USED_WITHOUT_IMPORT = {
    "mypy": "run by `make lint`",
    "ruff": "run by `make lint`",
    "pytest-timeout": "a pytest plugin, set by `timeout` in pyproject.toml",
    "httpx2": "starlette's TestClient runs on it, and warns (an error in the suite) without it",
    "moto": "its server is run as `python -m moto.server` by tests/object_storage.py",
    "psycopg": "SQLAlchemy's driver, named in the URL (`postgresql+psycopg`, orchestrator/db.py)",
    "vllm": "run as `vllm serve` by `autan model serve` (the `serving` extra)",
}


def declared(pyproject: dict[str, object]) -> list[str]:
    project = pyproject["project"]
    assert isinstance(project, dict)
    specs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        specs.extend(extra)
    names = []
    for spec in specs:
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec)
        assert match, f"not a requirement: {spec!r}"
        names.append(normal(match.group(0)))
    return names


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported(root: Path) -> set[str]:
    """The top-level module of every import in the project's Python files."""
    found: set[str] = set()
    for path in root.rglob("*.py"):
        if SKIP & set(path.relative_to(root).parts):
            continue
        for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.partition(".")[0])
    return found


def main(root: Path = ROOT) -> int:
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    modules_of: dict[str, set[str]] = {}
    for module, dists in packages_distributions().items():
        for dist in dists:
            modules_of.setdefault(normal(dist), set()).add(module)
    used = imported(root)
    unused, unknown = [], []
    for name in declared(pyproject):
        if name in USED_WITHOUT_IMPORT:
            continue
        modules = modules_of.get(name)
        if modules is None:
            unknown.append(name)
        elif not modules & used:
            unused.append(f"{name} (installs {', '.join(sorted(modules))})")
    for name in unknown:
        print(f"dependency {name} is not installed: run `make install`", file=sys.stderr)
    for line in unused:
        print(f"dependency {line} is imported nowhere: remove it", file=sys.stderr)
    return 1 if unused or unknown else 0


if __name__ == "__main__":
    sys.exit(main())
