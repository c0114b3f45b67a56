"""Alembic environment: run by `bot.store.migrate.upgrade` with a connection already open."""

from __future__ import annotations

from alembic import context

from bot.store import models  # noqa: F401  (registers every table on Base.metadata)
from bot.store.db import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
