"""Persistence: seen events, proposals, audit rows, feedback. SQLite by default, Postgres by URL."""

from bot.store.store import Store

__all__ = ["Store"]
