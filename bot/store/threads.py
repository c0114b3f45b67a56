"""Threads the bot has answered in, so follow-ups there need no new mention (across restarts)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Engine, String, select
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from bot.store.db import Base, insert_ignore


class BotThread(Base):
    __tablename__ = "bot_threads"

    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    thread_ts: Mapped[str] = mapped_column(String(32), primary_key=True)
    first_answer_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                      default=lambda: datetime.now(UTC))


def mark_thread(engine: Engine, channel: str, thread_ts: str) -> None:
    insert_ignore(engine, BotThread.__table__,
                  {"channel": channel, "thread_ts": thread_ts, "first_answer_at": datetime.now(UTC)})


def is_bot_thread(sessions: sessionmaker, channel: str, thread_ts: str) -> bool:
    with sessions() as session:
        found = session.execute(
            select(BotThread.channel).where(BotThread.channel == channel, BotThread.thread_ts == thread_ts)
        ).first()
    return found is not None
