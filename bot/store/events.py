"""Seen Slack events: a unique key makes a retried or re-delivered event count once."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Engine, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.db import Base, insert_ignore


class SeenEvent(Base):
    __tablename__ = "seen_events"

    event_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=lambda: datetime.now(UTC))


def claim_event(engine: Engine, event_key: str) -> bool:
    """True for the first claim of a key, False for every later one, across processes and replicas."""
    return insert_ignore(engine, SeenEvent.__table__, {"event_key": event_key, "seen_at": datetime.now(UTC)})
