"""Secrets never reach the model, a log line or a Slack message: scrub them everywhere.

Two nets: the exact values the process holds (Slack and OpenAI secrets, Prefect's key and auth
string from the environment or the active profile, the database password; see
`Settings.secret_values`), in every encoding they travel in (raw, URL-encoded, base64 as in an
`Authorization: Basic …` header, the password half of a `user:password` auth string), and the
shapes of secrets we do not hold (Slack, OpenAI and Prefect keys pasted by someone, `Basic`/
`Bearer` credentials, passwords inside any URL even when they contain `@`, bare `password=…` and
`token=…` pairs). The values are registered once per
process with `remember`, so layers that have no settings at hand (approvals, audit, logging) scrub
the same way.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

__all__ = ["redact", "remember", "encodings", "error_summary", "shown_url", "RedactingFilter",
           "RedactingFormatter", "REDACTED"]

TOKEN_PATTERNS = re.compile(
    r"(?<![A-Za-z0-9])(xox[abposre]-[A-Za-z0-9-]{6,}|xapp-[A-Za-z0-9-]{6,}|sk-[A-Za-z0-9_-]{12,}"
    r"|pn[ub]_[A-Za-z0-9]{12,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{12,})"
)
# scheme://user:PASSWORD@host: the password goes, the rest stays useful for debugging. The password
# runs to the LAST `@` of the authority (a raw `@` in a password is common, and URL parsers agree).
URL_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)([^\s/?#]+)(@)")
# `Authorization: Basic dXNlcjpwYXNz` (or Digest/Token/ApiKey …): the credential goes.
AUTH_HEADER = re.compile(r"(?i)\b(basic|digest|token|apikey|api-key)(\s+)([A-Za-z0-9+/=._~-]{8,})")
# password=…, "token": "…", api_key: … — the value goes, the key stays so the reader knows what was there.
SECRET_PAIR = re.compile(
    r"(?i)(?<![A-Za-z0-9_])(password|passwd|pwd|token|access_token|refresh_token|api_key|apikey|secret"
    r"|client_secret|auth_string|authorization)([\"']?\s*[:=]\s*[\"']?)([^\s\"'&,;}<>]+)")
REDACTED = "[redacted]"
_REMEMBERED: set[str] = set()


def encodings(secret: str) -> set[str]:
    """Every form `secret` can travel in: raw, URL-encoded (path and form style), base64 (standard and
    URL-safe, with and without padding, as in a `Basic` header), and for a `user:password` auth string
    the password alone and `user:password` encoded the same ways."""
    forms = {secret}
    if ":" in secret:
        password = secret.split(":", 1)[1]
        if len(password) >= 6:
            forms.add(password)
    for form in list(forms):
        forms.update({quote(form, safe=""), quote(form), quote_plus(form), json.dumps(form)[1:-1]})
    raw = secret.encode()
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = encoded.decode()
        forms.update({text, text.rstrip("=")})
    return {f for f in forms if len(f) >= 6}


def remember(secrets: Iterable[str]) -> None:
    """Register secret values (in every encoding) for every later `redact` call in this process; short
    values are ignored."""
    for secret in secrets:
        if secret and len(secret) >= 6:
            _REMEMBERED.update(encodings(secret))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace known secret values and anything shaped like a Slack/OpenAI/Prefect key or URL password."""
    if not text:
        return text
    given = {form for s in secrets if s and len(s) >= 6 for form in encodings(s)}
    for secret in sorted(given | _REMEMBERED, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)
    text = AUTH_HEADER.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    text = SECRET_PAIR.sub(lambda m: m.group(1) + m.group(2) + (m.group(3) if m.group(3) == REDACTED
                                                                 else REDACTED), text)
    return TOKEN_PATTERNS.sub(REDACTED, text)


def shown_url(url: str) -> str:
    """A URL fit to print: any password in its userinfo removed (the user name stays)."""
    try:
        parts = urlsplit(str(url))
        if parts.password is None:
            return redact(str(url))
        host = parts.netloc.rsplit("@", 1)[1]
        netloc = f"{parts.username}:{REDACTED}@{host}" if parts.username else host
        return redact(urlunsplit(parts._replace(netloc=netloc)))
    except ValueError:
        return redact(str(url))


_HTTP_REASONS = {400: "bad request", 401: "not authorised", 403: "forbidden", 404: "not found",
                 405: "method not allowed", 409: "conflict", 413: "request too large",
                 422: "the request was not valid", 429: "rate limited", 500: "server error",
                 502: "bad gateway", 503: "unavailable", 504: "gateway timeout"}


def error_summary(exc: BaseException, service: str = "Prefect") -> str:
    """One line about a foreign error, never its body: an HTTP error is its status and a plain reason
    ("HTTP 401 from Prefect: not authorised"); a transport error its type; anything else its type and
    its first line, redacted and shortened. Bodies can echo headers (Authorization) and inputs."""
    response = getattr(exc, "response", None)
    if response is None:
        response = getattr(getattr(exc, "http_exc", None), "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return f"HTTP {status} from {service}: {_HTTP_REASONS.get(status, 'request failed')}"
    name = type(exc).__name__
    if any(base.__name__ in ("TransportError", "TimeoutException", "OSError") for base in type(exc).__mro__):
        return f"cannot reach {service} ({name})"
    first = (str(exc).splitlines() or [""])[0]
    return redact(f"{name}: {first}" if first else name)[:300]


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
