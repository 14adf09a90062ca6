"""Which repository URLs a task may name: none that makes git run a command or read an option."""

from __future__ import annotations

import re

_HELPER = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
"""git's `<transport>::<address>`: runs the program git-remote-<transport> (`ext::` runs any
command, `fd::` talks over file descriptors); no hosted repository needs it."""

_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://")

REMOTE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://|[\w.-]+@[\w.-]+:)")
"""A repository that is a URL (`https://`, `ssh://`, `file://`) or scp-like (`git@host:path`)."""


def is_local(repo: str) -> bool:
    """Whether `repo` names a repository on the server's own disk: a path or a file:// URL
    (a workspace snapshot, `workspace:<id>@<version>`, is the sync daemon's upload, not one)."""
    if repo.startswith("workspace:"):
        return False
    return repo.lower().startswith("file://") or not REMOTE.match(repo)


def refusal(repo: str) -> str | None:
    """Why `repo` may not be cloned (the message a task fails with), or None when it may.

    Allowed: URLs of the schemes above, scp-like `user@host:path`, paths on this machine,
    and workspace snapshots (`workspace:<id>@<version>`).
    """
    why = None
    if repo.startswith("-"):
        why = "it would be read as an option of git"
    elif _HELPER.match(repo):
        why = "git's transport::address form runs a remote helper program"
    elif "://" in repo and not repo.lower().startswith(_SCHEMES):
        why = f"use one of {', '.join(s.removesuffix('://') for s in _SCHEMES)}"
    if why is None:
        return None
    return f"repository URL not allowed: {repo[:200]!r} ({why})"
