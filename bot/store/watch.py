"""The watcher's state: who leads, which incidents are open and where they were posted, silences.

The leader lease is one row per lock name, taken with a single UPDATE … WHERE (holder = me OR
expired) or an INSERT that only one replica can win, so it works the same on SQLite and Postgres.
Incidents are keyed by kind + object; moving a row between statuses is compare-and-set, so each
incident is posted once across replicas and restarts. Times are naive UTC, as in proposals.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, Engine, Integer, String, Text, delete, func, select, update
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from bot.store.db import Base, insert_ignore
from bot.store.proposals import to_db_time

WATCHING = "watching"  # seen, not yet lasted long enough to post
OPEN = "open"
RESOLVED = "resolved"


class WatchLeader(Base):
    __tablename__ = "watch_leader"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str] = mapped_column(String(80))
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class WatchIncident(Base):
    __tablename__ = "watch_incidents"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    object_key: Mapped[str] = mapped_column(String(300), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    first_seen: Mapped[datetime] = mapped_column(DateTime)
    last_seen: Mapped[datetime] = mapped_column(DateTime)
    since: Mapped[datetime] = mapped_column(DateTime)
    opened_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    posted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True, index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    channel: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message_ts: Mapped[str | None] = mapped_column(String(32), nullable=True)
    fingerprint: Mapped[str | None] = mapped_column(String(32), nullable=True)
    incident_json: Mapped[str] = mapped_column(Text)
    waited_json: Mapped[str] = mapped_column(Text, default="[]")  # ids of runs seen waiting
    proposal_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    rolled_up: Mapped[int] = mapped_column(Integer, default=0)


class WatchSilence(Base):
    __tablename__ = "watch_silences"

    target: Mapped[str] = mapped_column(String(300), primary_key=True)  # an incident key or an object key
    until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # None: muted for good
    by: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime)


# --- leader lease ---------------------------------------------------------------------------------
def try_lead(engine: Engine, name: str, holder: str, ttl_seconds: float, now: datetime) -> bool:
    """Take or renew the lease `name` for `holder`; True while this holder leads."""
    now = to_db_time(now)
    expires = now + timedelta(seconds=ttl_seconds)
    stmt = (update(WatchLeader)
            .where(WatchLeader.name == name, (WatchLeader.holder == holder) | (WatchLeader.expires_at < now))
            .values(holder=holder, expires_at=expires))
    with engine.begin() as connection:
        if connection.execute(stmt).rowcount == 1:
            return True
    return insert_ignore(engine, WatchLeader.__table__, {"name": name, "holder": holder, "expires_at": expires})


def release_lead(engine: Engine, name: str, holder: str) -> None:
    with engine.begin() as connection:
        connection.execute(delete(WatchLeader).where(WatchLeader.name == name, WatchLeader.holder == holder))


def leader_of(sessions: sessionmaker, name: str) -> WatchLeader | None:
    with sessions() as session:
        return session.get(WatchLeader, name)


# --- incidents ------------------------------------------------------------------------------------
def incident_rows(sessions: sessionmaker, statuses: tuple[str, ...] = (WATCHING, OPEN)) -> list[WatchIncident]:
    with sessions() as session:
        return list(session.scalars(select(WatchIncident).where(WatchIncident.status.in_(statuses))
                                    .order_by(WatchIncident.first_seen)))


def get_incident(sessions: sessionmaker, key: str) -> WatchIncident | None:
    with sessions() as session:
        return session.get(WatchIncident, key)


def start_watching(engine: Engine, values: dict[str, Any]) -> bool:
    """Record a newly seen condition; False when a row for the key already exists."""
    values = {k: to_db_time(v) if isinstance(v, datetime) else v for k, v in values.items()}
    return insert_ignore(engine, WatchIncident.__table__, {"status": WATCHING, **values})


def set_incident(sessions: sessionmaker, key: str, from_statuses: tuple[str, ...], **values: Any) -> bool:
    """Compare-and-set on the incident's status; True when this call changed the row."""
    values = {k: to_db_time(v) if isinstance(v, datetime) else v for k, v in values.items()}
    stmt = (update(WatchIncident).where(WatchIncident.key == key, WatchIncident.status.in_(from_statuses))
            .values(**values).execution_options(synchronize_session=False))
    with sessions() as session:
        result = session.execute(stmt)
        session.commit()
        return result.rowcount == 1


def claim_post(sessions: sessionmaker, key: str, claimed_before: datetime | None, now: datetime) -> bool:
    """Claim the right to post an open incident: only one caller moves `posted_at` from what it saw."""
    stmt = update(WatchIncident).where(WatchIncident.key == key, WatchIncident.status == OPEN,
                                       WatchIncident.message_ts.is_(None))
    if claimed_before is None:
        stmt = stmt.where(WatchIncident.posted_at.is_(None))
    else:
        stmt = stmt.where(WatchIncident.posted_at == to_db_time(claimed_before))
    stmt = stmt.values(posted_at=to_db_time(now)).execution_options(synchronize_session=False)
    with sessions() as session:
        result = session.execute(stmt)
        session.commit()
        return result.rowcount == 1


def forget_watching(sessions: sessionmaker, key: str) -> None:
    with sessions() as session:
        session.execute(delete(WatchIncident).where(WatchIncident.key == key, WatchIncident.status == WATCHING))
        session.commit()


POST_LOG = "post_log"


def log_post(engine: Engine, key: str, posted_at: datetime) -> None:
    """Keep an earlier episode's post in the hourly count before its incident row is reused."""
    posted = to_db_time(posted_at)
    insert_ignore(engine, WatchIncident.__table__, {
        "key": f"post:{posted.isoformat()}:{key}"[:300], "kind": POST_LOG, "object_key": key[:300],
        "status": POST_LOG, "first_seen": posted, "last_seen": posted, "since": posted, "posted_at": posted,
        "incident_json": "{}", "waited_json": "[]", "rolled_up": 0})


def posts_since(sessions: sessionmaker, since: datetime) -> int:
    """Incident messages posted since `since`, earlier episodes of reopened incidents included (roll-ups not)."""
    stmt = select(func.count()).select_from(WatchIncident).where(
        WatchIncident.posted_at >= to_db_time(since), WatchIncident.kind != "rollup")
    with sessions() as session:
        return int(session.scalar(stmt) or 0)


# --- silences -------------------------------------------------------------------------------------
def silence(sessions: sessionmaker, target: str, until: datetime | None, by: str, now: datetime) -> None:
    with sessions() as session:
        row = session.get(WatchSilence, target)
        if row is None:
            session.add(WatchSilence(target=target, until=to_db_time(until) if until else None, by=by,
                                     at=to_db_time(now)))
        else:
            row.until, row.by, row.at = (to_db_time(until) if until else None), by, to_db_time(now)
        session.commit()


def unsilence(sessions: sessionmaker, target: str) -> None:
    """End a snooze or mute now (Unmute)."""
    with sessions() as session:
        row = session.get(WatchSilence, target)
        if row is not None:
            session.delete(row)
            session.commit()


def silenced_targets(sessions: sessionmaker, now: datetime) -> set[str]:
    stmt = select(WatchSilence.target).where(
        WatchSilence.until.is_(None) | (WatchSilence.until > to_db_time(now)))
    with sessions() as session:
        return set(session.scalars(stmt))
