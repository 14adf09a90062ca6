"""Text and Line: what every input schema (tasks, workspaces) uses for a string from outside."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

# C0 controls (tab, newline and carriage return allowed in text) and lone surrogates: the
# first cannot be stored in PostgreSQL or shown safely, the second cannot be encoded at all.
_TEXT_REFUSED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
_LINE_REFUSED = re.compile("[\x00-\x1f\ud800-\udfff]")


def _refusing(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        found = pattern.search(value)
        if found:
            raise ValueError(
                f"must not contain {what} (found U+{ord(found.group()):04X} "
                f"at character {found.start()})"
            )
        return value

    return AfterValidator(check)


Text = Annotated[
    str,
    _refusing(_TEXT_REFUSED, "control characters other than tab and newline, or lone surrogates"),
]
"""Free text from outside (an instruction): what every input schema uses for such a field."""

Line = Annotated[str, _refusing(_LINE_REFUSED, "control characters or lone surrogates")]
"""One line from outside (a repository, a ref, a key, a path): no control characters at all."""


def is_line(value: str) -> bool:
    """Whether `value` would pass as a Line (what a scan asks before sending a name)."""
    return _LINE_REFUSED.search(value) is None
