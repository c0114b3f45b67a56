"""Markdown → Slack mrkdwn, and splitting long answers under Slack's limits without breaking code."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from markdown_to_mrkdwn import SlackMarkdownConverter

from bot.safe_text import PREFECT_DOCS_HOSTS, code_pieces, escape, safe_markdown, safe_url

# chat.postMessage truncates `text` at 40k, but blocks of 3k and readable messages argue for less.
MESSAGE_LIMIT = 3500
_MARKER = re.compile("\x00(\\d{1,6})\x00")
_ANGLE = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")


@lru_cache(maxsize=1)
def _converter() -> SlackMarkdownConverter:
    return SlackMarkdownConverter()


def to_mrkdwn(markdown: str, link_hosts: Iterable[str] = PREFECT_DOCS_HOSTS) -> str:
    """Untrusted Markdown (model or offline answers) as mrkdwn: control sequences escaped, links kept
    only for `link_hosts` (bot.safe_text); then the Markdown → mrkdwn conversion.

    The converter rewrites `[label](url)` even inside an inline code span, so those spans are set
    aside while it runs and put back verbatim. `safe_markdown` strips every NUL from its input, so
    the only NULs present are our markers, and any marker the converter mangled is removed.
    """
    spans: list[str] = []

    def set_aside(piece: str) -> str:
        spans.append(piece)
        return f"\x00{len(spans) - 1}\x00"

    safe = "".join(set_aside(piece) if is_code and not piece.startswith("```") else piece
                   for piece, is_code in code_pieces(safe_markdown(markdown, link_hosts)))
    converted = _converter().convert(safe)
    restored = _MARKER.sub(lambda m: spans[int(m.group(1))] if int(m.group(1)) < len(spans) else "", converted)
    return _links_rechecked(restored.replace("\x00", ""), tuple(link_hosts))


def _links_rechecked(mrkdwn: str, hosts: tuple[str, ...]) -> str:
    """The last net: every `<…>` the converter produced is parsed again; one whose URL `safe_url`
    would change (a code span or marker inside it, a character Slack would act on) becomes text."""
    def check(match: re.Match[str]) -> str:
        url, label = match.group(1), match.group(2)
        if safe_url(url, hosts) == url:
            return match.group(0)
        return escape(url) if not label else f"{escape(label)} ({escape(url)})"

    return _ANGLE.sub(check, mrkdwn)


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split on line boundaries; a code fence cut in two is closed and reopened."""
    if len(text) <= limit:
        return [text]
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    fence: str | None = None
    for line in text.split("\n"):
        for piece in _hard_wrap(line, limit - 10):
            if size + len(piece) + 1 > limit - 8 and current:
                chunk = "\n".join(current)
                if fence is not None:
                    chunk += "\n```"
                chunks.append(chunk)
                current = [fence] if fence is not None else []
                size = sum(len(x) + 1 for x in current)
            current.append(piece)
            size += len(piece) + 1
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped
    if current:
        chunks.append("\n".join(current))
    return chunks


def _hard_wrap(line: str, width: int) -> list[str]:
    return [line[i:i + width] for i in range(0, len(line), width)] or [""]
