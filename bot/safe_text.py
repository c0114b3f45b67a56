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
from urllib.parse import quote, urlsplit

from bot.redact import redact

__all__ = ["escape", "clean", "code", "tick", "mention", "channel_ref", "safe_markdown", "link_allowed", "safe_url",
           "code_pieces", "PREFECT_DOCS_HOSTS", "NAME_SHOWN_CHARS", "BLANK_NAME"]

PREFECT_DOCS_HOSTS = frozenset({"docs.prefect.io", "docs-3.prefect.io", "prefect.io", "www.prefect.io"})
NAME_SHOWN_CHARS = 120  # a name is shown, not archived: 10,000 characters of it help no reader
BLANK_NAME = "(blank name)"

# Bidi embeddings/overrides/isolates, zero-width characters and the BOM: invisible, and able to make
# `evil` read as `live`. They are removed from what is shown.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad]")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{1,30}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{1,30}$")
# Markdown links and autolinks in model output: [label](url), <url>, <url|label>; found in one pass.
_ANY_LINK = re.compile(
    r"\[(?P<md_label>[^\]\n]{0,300})\]\((?P<md_url>\S{1,2000}?)\)"
    r"|<(?P<angle_url>(?:https?|mailto):[^>|\s]{1,2000})(?:\|(?P<angle_label>[^>\n]{0,300}))?>"
)
_CODE = re.compile(r"```.*?```|`[^`\n]+`", re.DOTALL)
# C0/C1 control characters except tab and newline: no renderer needs them, and NUL was our old marker.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Kept as-is inside a link; everything else is percent-encoded (`%` too, unless already an escape).
_URL_SAFE = "/:?#=&;,+@!$*-._~%"
_URL_BREAKERS = re.compile(r"[<>|\s\[\]()`\"'\\]")
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
        host = (parts.hostname or "").lower()
        userinfo = parts.username or parts.password
    except ValueError:
        return False
    if parts.scheme not in ("https", "http") or not host or userinfo or "@" in parts.netloc:
        return False
    return any(host == h or host.endswith("." + h) for h in (x.lower().strip() for x in hosts) if h)


def safe_url(url: str, hosts: Iterable[str]) -> str | None:
    """`url` ready to sit inside a link, or None when it may not be a link at all.

    Parsed, not pattern-matched: the scheme and host must be allowed, and every character that could
    end Slack's `<url|label>` or Markdown's `(url)` early (`<`, `>`, `|`, brackets, parentheses,
    quotes, backticks, whitespace, control and non-ASCII characters) is percent-encoded. The result
    is parsed again and must still name an allowed host.
    """
    if not link_allowed(url, hosts):
        return None
    encoded = quote(url, safe=_URL_SAFE)
    return encoded if link_allowed(encoded, hosts) and not _URL_BREAKERS.search(encoded) else None


def code_pieces(text: str) -> list[tuple[str, bool]]:
    """`text` cut into (piece, is_code): fenced blocks and closed inline code spans are code."""
    pieces: list[tuple[str, bool]] = []
    last = 0
    for match in _CODE.finditer(text):
        if match.start() > last:
            pieces.append((text[last:match.start()], False))
        pieces.append((match.group(0), True))
        last = match.end()
    if last < len(text):
        pieces.append((text[last:], False))
    return pieces


def _label(text: str) -> str:
    return clean(text.strip()).replace("[", "(").replace("]", ")")


def _prose(text: str, hosts: tuple[str, ...]) -> str:
    """Prose outside code: each link rendered once, left to right, with no placeholder; the rest escaped."""
    out: list[str] = []
    last = 0
    for match in _ANY_LINK.finditer(text):
        out.append(_not_a_link(text[last:match.start()]))
        last = match.end()
        if match.group("md_url") is not None:
            label, url = match.group("md_label"), match.group("md_url")
        else:
            label, url = match.group("angle_label") or "", match.group("angle_url")
        kept = safe_url(url, hosts)
        if kept is not None:
            out.append(f"[{_label(label) or clean(kept)}]({kept})")
        else:
            plain = clean(url)
            out.append(plain if not label.strip() or label.strip() == url else f"{_label(label)} ({plain})")
    out.append(_not_a_link(text[last:]))
    return "".join(out)


def _not_a_link(text: str) -> str:
    """Escaped prose that no Markdown reader can join with a later piece into a link (`](` split)."""
    return escape(text).replace("](", "] (")


def safe_markdown(markdown: str, hosts: Iterable[str]) -> str:
    """Model or offline Markdown made safe for Slack: secrets redacted (bot.redact), control sequences
    escaped everywhere, links kept only when `safe_url` passes them, any other link shown as its plain
    URL next to its label. Code (fenced or inline) is escaped and never holds a link.

    The result is still Markdown (the mrkdwn converter and Slack's own `markdown_text` read it);
    kept links come out as Markdown links, which the converter turns into `<url|label>`.
    """
    allowed = tuple(hosts)
    text = _CONTROL.sub("", _INVISIBLE.sub("", redact(markdown)))
    shown = "".join(escape(piece) if is_code else _prose(piece, allowed) for piece, is_code in code_pieces(text))
    # A Markdown quote (`> `) at the start of a line is formatting, not a control sequence.
    return re.sub(r"(?m)^(\s*)&gt;(?= )", r"\1>", shown)
