"""Seen Slack events: a unique key makes a retried or re-delivered event count once."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, String
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from bot.store.db import Base


class SeenEvent(Base):
    __tablename__ = "seen_events"

    event_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=lambda: datetime.now(UTC))


def claim_event(sessions: sessionmaker, event_key: str) -> bool:
    """True for the first claim of a key, False for every later one, across processes."""
    with sessions() as session:
        session.add(SeenEvent(event_key=event_key))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            return False
    return True
