"""Imports every table module so migrations and `create_schema` see them all."""

from bot.store import events, feedback, inflight, proposals, rate, threads  # noqa: F401
