"""The task list's filters as a query string carries them: read leniently, refused with a reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from orchestrator.schemas import ORIGIN_KINDS
from orchestrator.states import TaskState
from orchestrator.task_lists import TaskFilter

ANY = ("", "any")
"""What a select's first choice sends: no filter."""

STATES = tuple(s.value for s in TaskState)
TEXT_LENGTH = 200


@dataclass(frozen=True)
class FilterForm:
    """The filters as the page's form holds them, each a string, empty when unset."""

    state: str = ""
    origin: str = ""
    repo: str = ""
    q: str = ""
    since: str = ""
    until: str = ""

    @classmethod
    def of(cls, **given: str | None) -> FilterForm:
        fields = {name: (value or "").strip() for name, value in given.items()}
        for name in ("state", "origin"):
            if fields.get(name, "").lower() in ANY:
                fields[name] = ""
        return cls(**fields)

    @property
    def active(self) -> bool:
        return any(vars(self).values())

    def query(self, **more: str | None) -> str:
        """This form as a query string (empty fields left out), with `more` added."""
        pairs = {**vars(self), **more}
        return urlencode({name: value for name, value in pairs.items() if value})

    def parse(self) -> TaskFilter:
        """The filter for the store; raises ValueError saying which field is wrong and why."""
        _one_of("state", self.state, STATES)
        _one_of("origin", self.origin, ORIGIN_KINDS)
        if len(self.q) > TEXT_LENGTH:
            raise ValueError(f"q: at most {TEXT_LENGTH} characters")
        if len(self.repo) > 1024:
            raise ValueError("repo: at most 1024 characters")
        since, until = _moment("since", self.since, 0), _moment("until", self.until, 1)
        if since and until and since >= until:
            raise ValueError("since: must come before until")
        return TaskFilter(
            state=self.state or None,
            origin=self.origin or None,
            repo=self.repo or None,
            text=self.q or None,
            since=since,
            until=until,
        )


def _one_of(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value and value not in choices:
        raise ValueError(f"{name}: {value[:40]!r} is not one of {', '.join(choices)}")


def _moment(name: str, value: str, days_after: int) -> datetime | None:
    """A date (YYYY-MM-DD, UTC; `until` takes the whole day) or an ISO 8601 time."""
    if not value:
        return None
    try:
        if len(value) == 10:
            day = date.fromisoformat(value) + timedelta(days=days_after)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        why = f"{name}: {value[:40]!r} is not a date (YYYY-MM-DD) or an ISO 8601 time"
        raise ValueError(why) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
