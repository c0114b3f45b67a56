"""The per-user rate limit, kept in the store so every replica shares one sliding window.

A row per allowed request; a request is allowed while the user has fewer than `per_minute` rows in
the last minute. Insert first, then count: two replicas racing may both refuse, never both exceed.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, Float, Integer, String, delete, func, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from bot.store.db import Base

WINDOW_SECONDS = 60.0


class UserRequest(Base):
    __tablename__ = "user_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[float] = mapped_column(Float, index=True)  # epoch seconds: comparable on SQLite and Postgres


def take_slot(engine: Engine, user_id: str, per_minute: int, now: float | None = None) -> bool:
    """True when `user_id` may make one more request now (and it is counted); False when over the limit."""
    if per_minute <= 0:
        return True
    now = time.time() if now is None else now
    since = now - WINDOW_SECONDS
    table = UserRequest.__table__
    with engine.begin() as connection:
        connection.execute(delete(table).where(table.c.user_id == user_id, table.c.at <= since))
        row_id = connection.execute(insert(table).values(user_id=user_id, at=now).returning(table.c.id)).scalar_one()
        used = connection.execute(select(func.count()).select_from(table).where(
            table.c.user_id == user_id, table.c.at > since)).scalar_one()
        if used > per_minute:
            connection.execute(delete(table).where(table.c.id == row_id))
            return False
    return True


def has_room(engine: Engine, user_id: str, per_minute: int, now: float | None = None) -> bool:
    """Whether `take_slot` would allow a request now, without counting one (a cheap pre-check)."""
    if per_minute <= 0:
        return True
    since = (time.time() if now is None else now) - WINDOW_SECONDS
    table = UserRequest.__table__
    with engine.connect() as connection:
        used = connection.execute(select(func.count()).select_from(table).where(
            table.c.user_id == user_id, table.c.at > since)).scalar_one()
    return used < per_minute
