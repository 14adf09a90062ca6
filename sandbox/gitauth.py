"""Credentials for one git command against a remote, handed over through its environment only."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HELPER = (
    '!f() { test "$1" = get && '
    'printf "username=%s\\npassword=%s\\n" "$AUTAN_GIT_USERNAME" "$AUTAN_GIT_PASSWORD"; }; f'
)
"""A credential helper that answers git's `get` from two variables of its environment: the
secret is never on a command line, in a config file, in a URL or in git's output."""


@dataclass(frozen=True)
class GitCredentials:
    """How one remote wants to be reached: a token over HTTPS, or an SSH key file."""

    token: str | None = None
    username: str = "x-access-token"
    """Sent with the token; GitHub wants `x-access-token`, other hosts their user name."""
    ssh_key: Path | None = None

    def env(self) -> dict[str, str]:
        """What to add to git's environment for this one command."""
        if self.ssh_key is not None:
            key = shlex.quote(str(self.ssh_key))
            return {"GIT_SSH_COMMAND": f"ssh -i {key} -o IdentitiesOnly=yes -o BatchMode=yes"}
        if self.token is None:
            return {}
        return {
            # The empty helper first clears any helper the host's git config names.
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "credential.helper",
            "GIT_CONFIG_VALUE_0": "",
            "GIT_CONFIG_KEY_1": "credential.helper",
            "GIT_CONFIG_VALUE_1": HELPER,
            "AUTAN_GIT_USERNAME": self.username,
            "AUTAN_GIT_PASSWORD": self.token,
        }

    def redact(self, text: str) -> str:
        return text.replace(self.token, "[redacted]") if self.token else text


Credentials = Callable[[str], GitCredentials | None]
"""The credentials for a remote URL, or None to go without."""
