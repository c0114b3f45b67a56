"""`concurrency-bot doctor`: check the whole setup (settings, Slack, Prefect, model, store) at once and say
what to fix. `serve` runs the same checks at start. This package sits beside the front ends: it may
use the Slack and OpenAI clients; nothing below it imports it (tests/test_layers.py)."""

from bot.doctor.report import Report, Row, Status
from bot.doctor.run import diagnose

__all__ = ["Report", "Row", "Status", "diagnose"]
