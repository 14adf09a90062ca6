"""What the agent is told for a GitHub issue: its title and body, the people's comments (never
Autan's own), and the comment that asked, marked as the request and always kept whole."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

LIMIT = 100_000
"""The most characters of an instruction (the store refuses longer ones)."""

OWN_MARKERS = ("<!-- autan:task:", "<!-- autan:issue:")
"""Hidden in everything Autan posts on GitHub (see `text.marker`, `publish.issue_marker`)."""

CUT = "\n\n[... cut: too long]"


@dataclass(frozen=True)
class Comment:
    author: str
    body: str


def ours(comment: Comment, bot_login: str | None) -> bool:
    """Posted by Autan: by its login, or carrying its marker (a token shared with a person)."""
    if bot_login and comment.author.lower() == bot_login.lower():
        return True
    return any(mark in comment.body for mark in OWN_MARKERS)


def instruction(
    title: str,
    body: str,
    comments: Sequence[Comment],
    *,
    asked: str = "",
    sender: str = "",
    bot_login: str | None = None,
    limit: int = LIMIT,
) -> str:
    """Oldest comments go first when it must be cut, then the end of the issue's body; the
    request (`asked`, by `sender`) is cut only if it alone is over the limit."""
    said = [c for c in comments if not ours(c, bot_login)]
    if asked:
        # The comment that asked is among the comments: it is said once, as the request.
        for i in range(len(said) - 1, -1, -1):
            if said[i].author == sender and said[i].body.strip() == asked.strip():
                del said[i]
                break
    request = f"## The request, from @{sender}\n\n{asked}" if asked else ""
    if len(request) > limit:
        return request[: limit - len(CUT)] + CUT
    head = f"# {title}\n\n{body}".rstrip()
    room = limit - len(request) - (2 if request else 0)
    if len(head) > room:
        return _join(head[: max(room - len(CUT), 0)] + CUT, request)
    room -= len(head)
    kept: list[str] = []
    for comment in reversed(said):
        part = f"## @{comment.author} wrote\n\n{comment.body}"
        note = _left_out(len(said) - len(kept) - 1)
        if len(part) + 2 + len(note) + 2 > room:
            break
        kept.insert(0, part)
        room -= len(part) + 2
    left = len(said) - len(kept)
    if left:
        kept.insert(0, _left_out(left))
    return _join(head, *kept, request)


def _left_out(count: int) -> str:
    return f"[{count} earlier comment{'s' if count != 1 else ''} left out: too long]"


def _join(*parts: str) -> str:
    return "\n\n".join(p for p in parts if p)
