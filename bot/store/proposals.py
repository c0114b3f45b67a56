"""Proposals and their audit trail, with compare-and-set status changes.

Every status change is one `UPDATE … WHERE id = ? AND status IN (…)`; its row count says whether
this caller won. That is atomic on SQLite and Postgres alike, so a double click, a Slack retry or
two replicas deciding at once change a proposal exactly once. Times are stored as naive UTC so
SQLite and Postgres compare them the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from bot.store.db import Base

PENDING = "pending"
APPROVED = "approved"  # won the compare-and-set; applying is under way
APPLIED = "applied"
FAILED = "failed"
STALE = "stale"
REJECTED = "rejected"
EXPIRED = "expired"
FINAL_STATUSES = (APPLIED, FAILED, STALE, REJECTED, EXPIRED)


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_db_time(value: datetime) -> datetime:
    """Naive UTC for storage and comparisons."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def from_db_time(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class Proposal(Base):
    __tablename__ = "proposals"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), index=True, default=PENDING)
    version: Mapped[int] = mapped_column(Integer, default=1)
    change_json: Mapped[str] = mapped_column(Text)
    before_json: Mapped[str] = mapped_column(Text)
    diff: Mapped[str] = mapped_column(Text)
    destructive: Mapped[int] = mapped_column(Integer, default=0)
    requester: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    channel: Mapped[str | None] = mapped_column(String(64), nullable=True)
    thread_ts: Mapped[str | None] = mapped_column(String(32), nullable=True)
    message_channel: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message_ts: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    edited_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    decision_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    superseded_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    origin: Mapped[str | None] = mapped_column(String(16), nullable=True)  # "model" | "person"


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    proposal_id: Mapped[str | None] = mapped_column(String(40), index=True, nullable=True)
    action: Mapped[str] = mapped_column(String(20), index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    requester: Mapped[str | None] = mapped_column(String(64), nullable=True)
    diff: Mapped[str | None] = mapped_column(Text, nullable=True)
    before_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    after_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[str | None] = mapped_column(String(20), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


def insert_proposal(sessions: sessionmaker, row: Proposal) -> Proposal:
    with sessions() as session:
        session.add(row)
        session.commit()
    return row


def get_proposal(sessions: sessionmaker, proposal_id: str) -> Proposal | None:
    with sessions() as session:
        return session.get(Proposal, proposal_id)


def transition(sessions: sessionmaker, proposal_id: str, from_statuses: Iterable[str], to_status: str,
               *, not_expired_at: datetime | None = None, version: int | None = None,
               **values: Any) -> bool:
    """Move a proposal to `to_status` only if it is still in one of `from_statuses`; True if we won.

    `not_expired_at` adds `expires_at > now` to the condition and `version` pins the exact version
    the caller looked at, so the check and the write are one statement.
    """
    stmt = update(Proposal).where(Proposal.id == proposal_id, Proposal.status.in_(list(from_statuses)))
    if not_expired_at is not None:
        stmt = stmt.where(Proposal.expires_at > to_db_time(not_expired_at))
    if version is not None:
        stmt = stmt.where(Proposal.version == version)
    values = {k: to_db_time(v) if isinstance(v, datetime) else v for k, v in values.items()}
    stmt = stmt.values(status=to_status, **values).execution_options(synchronize_session=False)
    with sessions() as session:
        result = session.execute(stmt)
        session.commit()
        return result.rowcount == 1


def replace_pending_change(sessions: sessionmaker, proposal_id: str, version: int, change_json: str,
                           diff: str, edited_by: str, destructive: int | None = None) -> bool:
    """Swap a pending proposal's change for an edited one; fails if it was decided or edited meanwhile."""
    extra = {} if destructive is None else {"destructive": destructive}
    stmt = (update(Proposal)
            .where(Proposal.id == proposal_id, Proposal.status == PENDING, Proposal.version == version)
            .values(change_json=change_json, diff=diff, edited_by=edited_by, version=version + 1, **extra)
            .execution_options(synchronize_session=False))
    with sessions() as session:
        result = session.execute(stmt)
        session.commit()
        return result.rowcount == 1


def set_message(sessions: sessionmaker, proposal_id: str, channel: str, ts: str) -> None:
    stmt = update(Proposal).where(Proposal.id == proposal_id).values(message_channel=channel, message_ts=ts)
    with sessions() as session:
        session.execute(stmt)
        session.commit()


def due_for_expiry(sessions: sessionmaker, now: datetime) -> list[str]:
    stmt = select(Proposal.id).where(Proposal.status == PENDING, Proposal.expires_at <= to_db_time(now))
    with sessions() as session:
        return list(session.scalars(stmt))


def stuck_approved(sessions: sessionmaker, decided_before: datetime) -> list[str]:
    """Proposals that won pending → approved before `decided_before` and never recorded a result."""
    stmt = select(Proposal.id).where(Proposal.status == APPROVED,
                                     Proposal.decided_at <= to_db_time(decided_before))
    with sessions() as session:
        return list(session.scalars(stmt))


def pending_rows(sessions: sessionmaker, now: datetime, limit: int = 20) -> list[Proposal]:
    """Pending, unexpired proposals, newest first."""
    with sessions() as session:
        return list(session.scalars(select(Proposal).where(
            Proposal.status == PENDING, Proposal.expires_at > to_db_time(now),
        ).order_by(Proposal.created_at.desc()).limit(limit)))


def unposted_in_thread(sessions: sessionmaker, channel: str | None, thread_ts: str | None) -> list[Proposal]:
    stmt = (select(Proposal)
            .where(Proposal.status == PENDING, Proposal.message_ts.is_(None),
                   Proposal.channel == channel, Proposal.thread_ts == thread_ts)
            .order_by(Proposal.created_at))
    with sessions() as session:
        return list(session.scalars(stmt))


def add_audit(sessions: sessionmaker, entry: AuditEntry) -> None:
    with sessions() as session:
        session.add(entry)
        session.commit()


def list_audit(sessions: sessionmaker, *, proposal_id: str | None = None, actor: str | None = None,
               action: str | None = None, since: datetime | None = None,
               limit: int = 100) -> list[AuditEntry]:
    """Newest first, filtered by any of proposal, actor (or requester), action and time."""
    stmt = select(AuditEntry)
    if proposal_id:
        stmt = stmt.where(AuditEntry.proposal_id == proposal_id)
    if actor:
        stmt = stmt.where((AuditEntry.actor == actor) | (AuditEntry.requester == actor))
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= to_db_time(since))
    stmt = stmt.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    with sessions() as session:
        return list(session.scalars(stmt))
