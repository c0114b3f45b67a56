"""Imports every table module so migrations and `create_schema` see them all."""

from bot.store import events, feedback, inflight, proposals, rate, threads, watch  # noqa: F401
