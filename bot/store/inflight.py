"""Answers in flight: a row per question being answered, so a crash cannot swallow it silently.

Slack does not redeliver an event we acked. A row is written before answering and deleted when the
answer is delivered; rows left behind by a crash are found later and their threads told to ask
again. Deleting a row is the claim, so only one replica acts on each.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, Engine, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.db import Base, insert_ignore


class AnswerInFlight(Base):
    __tablename__ = "answers_in_flight"

    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_ts: Mapped[str] = mapped_column(String(32), primary_key=True)
    thread_ts: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


def start_answer(engine: Engine, channel: str, thread_ts: str, message_ts: str) -> None:
    insert_ignore(engine, AnswerInFlight.__table__, {"channel": channel, "message_ts": message_ts,
                                                     "thread_ts": thread_ts, "started_at": datetime.now(UTC)})


def finish_answer(engine: Engine, channel: str, message_ts: str) -> bool:
    """Remove the row; True if this caller removed it (so it alone acts on it)."""
    with engine.begin() as connection:
        result = connection.execute(delete(AnswerInFlight).where(
            AnswerInFlight.channel == channel, AnswerInFlight.message_ts == message_ts))
        return result.rowcount == 1


def stale_answers(engine: Engine, older_than_seconds: float) -> list[tuple[str, str, str]]:
    """(channel, thread_ts, message_ts) of answers started longer ago than any answer may take."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
    with engine.connect() as connection:
        rows = connection.execute(select(AnswerInFlight.channel, AnswerInFlight.thread_ts,
                                         AnswerInFlight.message_ts, AnswerInFlight.started_at)).all()
    stale = []
    for channel, thread_ts, message_ts, started_at in rows:
        started = started_at.replace(tzinfo=UTC) if started_at.tzinfo is None else started_at
        if started <= cutoff:
            stale.append((channel, thread_ts, message_ts))
    return stale
