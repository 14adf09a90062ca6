"""Baselines kept in the store, so that every worker host shares them."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from agent.baseline import Baseline
from orchestrator.models import Baseline as BaselineRow
from orchestrator.models import utcnow


class StoreBaselines:
    """Implements agent.baseline.BaselineCache over the `baselines` table."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def get(self, key: str) -> Baseline | None:
        with self.sessions() as session:
            row = session.get(BaselineRow, key)
            return Baseline.from_json(row.data) if row is not None else None

    def put(self, key: str, baseline: Baseline) -> None:
        try:
            with self.sessions.begin() as session:
                session.add(BaselineRow(key=key, data=baseline.to_json(), created_at=utcnow()))
        except IntegrityError:
            pass  # another attempt on the same commit kept one first: theirs stays
