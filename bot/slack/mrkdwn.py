"""Markdown → Slack mrkdwn, and splitting long answers under Slack's limits without breaking code."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from markdown_to_mrkdwn import SlackMarkdownConverter

from bot.safe_text import PREFECT_DOCS_HOSTS, safe_markdown

# chat.postMessage truncates `text` at 40k, but blocks of 3k and readable messages argue for less.
MESSAGE_LIMIT = 3500


@lru_cache(maxsize=1)
def _converter() -> SlackMarkdownConverter:
    return SlackMarkdownConverter()


def to_mrkdwn(markdown: str, link_hosts: Iterable[str] = PREFECT_DOCS_HOSTS) -> str:
    """Untrusted Markdown (model or offline answers) as mrkdwn: control sequences escaped, links kept
    only for `link_hosts` (bot.safe_text); then the Markdown → mrkdwn conversion."""
    return _converter().convert(safe_markdown(markdown, link_hosts))


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
