"""Secrets never reach the model, a log line or a Slack message: scrub them everywhere.

Two nets: the exact values the process holds (Slack and OpenAI secrets, Prefect's key and auth
string from the environment or the active profile, the database password; see
`Settings.secret_values`), and the shapes of secrets we do not hold (Slack, OpenAI and Prefect
keys pasted by someone, passwords inside any database URL). The values are registered once per
process with `remember`, so layers that have no settings at hand (approvals, audit, logging) scrub
the same way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

__all__ = ["redact", "remember", "RedactingFilter", "RedactingFormatter", "REDACTED"]

TOKEN_PATTERNS = re.compile(
    r"(xox[abposre]-[A-Za-z0-9-]{6,}|xapp-[A-Za-z0-9-]{6,}|sk-[A-Za-z0-9_-]{12,}|pn[ub]_[A-Za-z0-9]{12,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{12,})"
)
# scheme://user:PASSWORD@host: the password goes, the rest stays useful for debugging.
URL_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)([^@\s]+)(@)")
REDACTED = "[redacted]"
_REMEMBERED: set[str] = set()


def remember(secrets: Iterable[str]) -> None:
    """Register secret values for every later `redact` call in this process (short values are ignored)."""
    _REMEMBERED.update(s for s in secrets if s and len(s) >= 6)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace known secret values and anything shaped like a Slack/OpenAI/Prefect key or URL password."""
    if not text:
        return text
    for secret in sorted({*(s for s in secrets if s), *_REMEMBERED}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)
    return TOKEN_PATTERNS.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """Scrubs a record's message, its exception text (the traceback) and its stack."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
            record.exc_info = None  # formatters that re-render exc_info would bring the secret back
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


class RedactingFormatter(logging.Formatter):
    """Wraps any formatter (plain or JSON) and scrubs what it produced: the last net before stderr."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = [s for s in secrets if s]

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record), self.secrets)
