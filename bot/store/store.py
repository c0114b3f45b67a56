"""The store object the rest of the bot is handed: an engine plus a session factory."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from bot.store.db import count_by, create_schema, make_engine, session_factory
from bot.store.events import claim_event
from bot.store.feedback import record_vote, vote_counts
from bot.store.proposals import Proposal
from bot.store.rate import has_room, take_slot
from bot.store.threads import is_bot_thread, mark_thread


@dataclass
class Store:
    engine: Engine
    sessions: sessionmaker

    @classmethod
    def open(cls, url: str) -> Store:
        engine = make_engine(url)
        create_schema(engine)
        return cls(engine, session_factory(engine))

    def claim_event(self, event_key: str) -> bool:
        return claim_event(self.engine, event_key)

    def mark_thread(self, channel: str, thread_ts: str) -> None:
        mark_thread(self.engine, channel, thread_ts)

    def is_bot_thread(self, channel: str, thread_ts: str) -> bool:
        return is_bot_thread(self.sessions, channel, thread_ts)

    def record_vote(self, channel: str, message_ts: str, user_id: str, vote: str) -> None:
        record_vote(self.sessions, channel, message_ts, user_id, vote)

    def vote_counts(self) -> dict[str, int]:
        return vote_counts(self.sessions)

    def allow_request(self, user_id: str, per_minute: int) -> bool:
        """The per-user rate limit, shared by every replica using this store."""
        return take_slot(self.engine, user_id, per_minute)

    def has_room(self, user_id: str, per_minute: int) -> bool:
        return has_room(self.engine, user_id, per_minute)

    def proposal_counts(self) -> dict[str, int]:
        return count_by(self.sessions, Proposal.status)

    def close(self) -> None:
        self.engine.dispose()
