"""Logging: plain or JSON lines, always with secrets scrubbed."""

from __future__ import annotations

import logging
import sys

from bot.redact import RedactingFilter, RedactingFormatter, remember
from bot.settings import Settings


def configure_logging(settings: Settings) -> None:
    """One stderr handler; the message, the traceback and the formatted line are all scrubbed."""
    secrets = settings.secret_values()
    remember(secrets)
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter
    if settings.bot_log_json:
        from pythonjsonlogger.json import JsonFormatter

        formatter = JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(RedactingFormatter(formatter, secrets))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.bot_log_level.upper())
