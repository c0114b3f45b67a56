"""The one escaping rule for untrusted text on its way to Slack.

Names, run names, tags, thread messages, tool results and model output are untrusted: they may
carry Slack's control sequences (`<!channel>`, `<@U…>`, `<#C…>`, `<url|label>`), a backtick that
closes the code span they are shown in, bidi overrides or zero-width characters that make one name
look like another. Everything here is a pure function with no vendor import, so the offline
renderers, the approvals layer and the Slack front end all use the same rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from bot.redact import redact

__all__ = ["escape", "clean", "code", "tick", "mention", "channel_ref", "safe_markdown", "link_allowed",
           "PREFECT_DOCS_HOSTS", "NAME_SHOWN_CHARS", "BLANK_NAME"]

PREFECT_DOCS_HOSTS = frozenset({"docs.prefect.io", "docs-3.prefect.io", "prefect.io", "www.prefect.io"})
NAME_SHOWN_CHARS = 120  # a name is shown, not archived: 10,000 characters of it help no reader
BLANK_NAME = "(blank name)"

# Bidi embeddings/overrides/isolates, zero-width characters and the BOM: invisible, and able to make
# `evil` read as `live`. They are removed from what is shown.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad]")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{1,30}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{1,30}$")
# Markdown links and autolinks in model output: [label](url), <url>, <url|label>.
_MD_LINK = re.compile(r"\[([^\]\n]{0,300})\]\((\S{1,2000}?)\)")
_ANGLE_LINK = re.compile(r"<((?:https?|mailto):[^>|\s]{1,2000})(?:\|([^>\n]{0,300}))?>")
_BACKTICK = "\u02cb"  # MODIFIER LETTER GRAVE ACCENT: looks like a backtick, closes no code span


def escape(text: str) -> str:
    """Slack's rule: `&`, `<` and `>` as entities, so a control sequence renders as text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clean(text: str) -> str:
    """Untrusted text for a Slack message: invisible characters dropped, control characters escaped."""
    return escape(_INVISIBLE.sub("", text))


def _shown_name(name: object, limit: int) -> str | None:
    text = _INVISIBLE.sub("", str(name)).replace("`", _BACKTICK).replace("\n", " ").replace("\r", " ")
    if not text.strip():
        return None
    return text[:limit - 1] + "…" if len(text) > limit else text


def tick(name: object, limit: int = NAME_SHOWN_CHARS) -> str:
    """An untrusted name in a Markdown code span it cannot leave (backticks swapped for a look-alike,
    invisible characters dropped, long names shortened), for text escaped later as a whole."""
    text = _shown_name(name, limit)
    return f"_{BLANK_NAME}_" if text is None else f"`{text}`"


def code(name: object, limit: int = NAME_SHOWN_CHARS) -> str:
    """`tick` with Slack's control characters escaped too: for mrkdwn built directly."""
    text = _shown_name(name, limit)
    return f"_{BLANK_NAME}_" if text is None else f"`{escape(text)}`"


def mention(user_id: object) -> str:
    """`<@U…>` for a real Slack user id (one the bot read from an event), plain escaped text otherwise."""
    text = str(user_id or "")
    return f"<@{text}>" if _USER_ID.match(text) else clean(text) or "someone"


def channel_ref(channel_id: object) -> str:
    """`<#C…>` for a real channel id, plain escaped text otherwise."""
    text = str(channel_id or "")
    return f"<#{text}>" if _CHANNEL_ID.match(text) else clean(text)


def link_allowed(url: str, hosts: Iterable[str]) -> bool:
    """An https/http link whose host is one of `hosts` or a subdomain of one."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host or parts.username or parts.password:
        return False
    return any(host == h or host.endswith("." + h) for h in (x.lower().strip() for x in hosts) if h)


def safe_markdown(markdown: str, hosts: Iterable[str]) -> str:
    """Model or offline Markdown made safe for Slack: secrets redacted (bot.redact), control sequences
    escaped everywhere, links kept only for allowed hosts, any other link shown as its plain URL next
    to its label.

    The result is still Markdown (the mrkdwn converter and Slack's own `markdown_text` read it);
    allowed links come out as Markdown links, which the converter turns into `<url|label>`.
    """
    allowed = tuple(hosts)
    kept: list[str] = []

    def keep(label: str, url: str) -> str:
        label = label.strip()
        if link_allowed(url, allowed):
            shown = f"[{clean(label) or clean(url)}]({url.replace(')', '%29')})"
        else:
            plain = clean(url)
            shown = plain if not label or label == url else f"{clean(label)} ({plain})"
        kept.append(shown)
        return f"\x00{len(kept) - 1}\x00"

    text = _INVISIBLE.sub("", redact(markdown)).replace("\x00", "")
    text = _ANGLE_LINK.sub(lambda m: keep(m.group(2) or "", m.group(1)), text)
    text = _MD_LINK.sub(lambda m: keep(m.group(1), m.group(2)), text)
    text = escape(text)
    # A Markdown quote (`> `) at the start of a line is formatting, not a control sequence.
    text = re.sub(r"(?m)^(\s*)&gt;(?= )", r"\1>", text)
    return re.sub("\x00(\\d+)\x00", lambda m: kept[int(m.group(1))], text)
