"""Server-Sent Events: lines in, events out (the parts of the format the API sends)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Frame:
    """One dispatched event: its id (if any), type and data."""

    id: str | None
    event: str
    data: str


@dataclass
class SseParser:
    """Turns the lines of a stream into frames; remembers the last id and the retry delay.

    The last id moves only when an event is complete (at its blank line), so a
    stream cut inside an event resumes before it, never after it.
    """

    last_id: str | None = None
    retry_ms: int | None = None

    def frames(self, lines: Iterable[str]) -> Iterator[Frame]:
        pending_id, event, data = self.last_id, "", list[str]()
        for line in lines:
            if not line:
                self.last_id = pending_id
                if data:
                    yield Frame(self.last_id, event or "message", "\n".join(data))
                event, data = "", []
                continue
            if line.startswith(":"):
                continue  # a comment: the keep-alive
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
            elif name == "id" and "\0" not in value:
                pending_id = value
            elif name == "retry" and value.isdigit():
                self.retry_ms = int(value)
