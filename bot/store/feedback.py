"""👍/👎 votes on answers: one vote per person per answer, the latest one counts."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from bot.store.db import Base, count_by


class AnswerFeedback(Base):
    __tablename__ = "answer_feedback"

    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_ts: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    vote: Mapped[str] = mapped_column(String(8))
    voted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=lambda: datetime.now(UTC))


def record_vote(sessions: sessionmaker, channel: str, message_ts: str, user_id: str, vote: str) -> None:
    if vote not in ("up", "down"):
        raise ValueError(f"unknown vote {vote!r}")
    with sessions() as session:
        row = session.get(AnswerFeedback, (channel, message_ts, user_id))
        if row is None:
            session.add(AnswerFeedback(channel=channel, message_ts=message_ts, user_id=user_id, vote=vote))
        else:
            row.vote, row.voted_at = vote, datetime.now(UTC)
        session.commit()


def vote_counts(sessions: sessionmaker) -> dict[str, int]:
    return {"up": 0, "down": 0} | count_by(sessions, AnswerFeedback.vote)
