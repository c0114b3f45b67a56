"""Imports every table module so `create_schema` sees them all."""

from bot.store import events, feedback, threads  # noqa: F401

try:  # tables owned by later layers register themselves when present
    from bot.store import proposals  # noqa: F401
except ImportError:  # pragma: no cover
    pass
