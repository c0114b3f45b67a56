"""Secrets never reach the model, a log line or a Slack message: scrub them everywhere."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

TOKEN_PATTERNS = re.compile(
    r"(xox[abposr]-[A-Za-z0-9-]{6,}|xapp-[A-Za-z0-9-]{6,}|sk-[A-Za-z0-9_-]{12,}|pnu_[A-Za-z0-9]{12,})"
)
REDACTED = "[redacted]"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace known secret values and anything shaped like a Slack/OpenAI/Prefect token."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return TOKEN_PATTERNS.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs the formatted message of every record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
