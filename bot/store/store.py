"""The store object the rest of the bot is handed: an engine plus a session factory."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from bot.store.db import create_schema, make_engine, session_factory
from bot.store.events import claim_event


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
        return claim_event(self.sessions, event_key)

    def close(self) -> None:
        self.engine.dispose()
