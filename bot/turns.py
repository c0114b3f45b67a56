"""What flows through the pipeline: a Turn in, a Reply out. No Slack, no Prefect here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Source = Literal["slack", "terminal", "cli", "slash", "eval"]


@dataclass(frozen=True)
class HistoryMessage:
    role: Literal["user", "assistant"]
    text: str
    user_id: str | None = None


@dataclass
class Turn:
    text: str
    user_id: str
    channel: str | None = None
    thread_ts: str | None = None
    history: list[HistoryMessage] = field(default_factory=list)
    source: Source = "slack"
    may_propose: bool = True  # False for Slack Connect guests: answered read-only, no proposals


@dataclass
class Reply:
    text: str  # Markdown; front ends convert it (Slack mrkdwn, rich)
    proposals: list[str] = field(default_factory=list)
    model_rounds: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens, served from the provider's prompt cache
    reasoning_tokens: int = 0  # of completion_tokens, hidden reasoning
    tool_calls: list[str] = field(default_factory=list)
    verifier: Any | None = None  # bot.knowledge.verifier.VerifyReport
    offline: bool = False
    failed: bool = False
    live_facts: str | None = None  # the kind of live block added beside the model's text, if any
    timings: dict[str, float] = field(default_factory=dict)
