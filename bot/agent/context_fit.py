"""Trim a conversation the model refused as too long: tool results first, then the oldest history.

Providers say how far over the window a request was ("maximum context length is N tokens ...
resulted in M tokens"); we aim a tenth under N/M of today's size. The system prompt, the question
being answered and everything after it stay; tool messages are shortened, never removed, so every
tool call keeps its answer (the protocol requires it). Returns what was left out, in plain words,
for the answer's note.
"""

from __future__ import annotations

import json
import re
from typing import Any

WINDOW = re.compile(r"maximum context length is (\d[\d,]*) tokens.*?resulted in (\d[\d,]*) tokens", re.S)
KEEP_OF_TOOL_RESULT = 600
SHORTENED = "\n…[left out: this result was too long for the model's context window]"


def _size(messages: list[dict[str, Any]]) -> int:
    return sum(len(json.dumps(m, ensure_ascii=False)) for m in messages)


def target_share(provider_message: str) -> float:
    """The share of today's size to aim for; half when the provider did not say."""
    found = WINDOW.search(provider_message)
    if not found:
        return 0.5
    window, used = (int(x.replace(",", "")) for x in found.groups())
    return max(0.05, min(0.9, window / max(used, 1) * 0.9))


def fit_to_window(messages: list[dict[str, Any]], protect_from: int, provider_message: str) -> list[str]:
    """Trim `messages` in place; `protect_from` is the index of the question being answered."""
    target = int(_size(messages) * target_share(provider_message))
    left_out: list[str] = []
    shortened = 0
    for message in messages:
        content = message.get("content")
        if message.get("role") == "tool" and isinstance(content, str) and len(content) > KEEP_OF_TOOL_RESULT:
            message["content"] = content[:KEEP_OF_TOOL_RESULT] + SHORTENED
            shortened += 1
    if shortened:
        left_out.append(f"part of {shortened} tool result{'s' if shortened != 1 else ''}")
    first = next((i for i, m in enumerate(messages) if m.get("role") != "system"), len(messages))
    dropped = 0
    while _size(messages) > target and first < protect_from - dropped:
        unit = 1  # an assistant message with tool calls goes together with its tool answers
        if messages[first].get("tool_calls"):
            while first + unit < len(messages) and messages[first + unit].get("role") == "tool":
                unit += 1
        if first + unit > protect_from - dropped:
            break
        del messages[first:first + unit]
        dropped += unit
    if dropped:
        left_out.append(f"the {dropped} oldest message{'s' if dropped != 1 else ''} of this conversation")
    return left_out
