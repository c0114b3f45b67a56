"""Prometheus metrics: answers, latency, model tokens, tool calls, proposals, verifier outcomes."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

ANSWERS = Counter("bot_answers_total", "Answers given", ["mode"])  # model | offline | failed
ANSWER_SECONDS = Histogram("bot_answer_seconds", "End-to-end answer time",
                           buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128))
FIRST_FEEDBACK = Histogram("bot_first_feedback_seconds", "Time until the first visible reaction",
                           buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2))
MODEL_TOKENS = Counter("bot_model_tokens_total", "Model tokens", ["kind"])  # prompt | completion
MODEL_ROUNDS = Counter("bot_model_rounds_total", "Model round trips")
TOOL_CALLS = Counter("bot_tool_calls_total", "Tool calls made by the model", ["tool"])
PROPOSALS = Counter("bot_proposals_total", "Proposals created by answers in this process", ["status"])
VERIFIER = Counter("bot_verifier_outcomes_total", "Verifier outcomes on answers (passed, corrected, caveat)",
                   ["outcome"])
EVENTS_DEDUPED = Counter("bot_events_deduplicated_total", "Slack deliveries dropped as already handled")


MAX_TOOL_LABELS = 64  # the registry has ~30 tools; anything beyond is a model inventing names
_TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_tool_labels: set[str] = set()


def tool_label(name: str) -> str:
    """A bounded label: a tool name the loop recognised, else `unknown` (the model may invent any name)."""
    if name in _tool_labels:
        return name
    if not _TOOL_NAME.match(name) or len(_tool_labels) >= MAX_TOOL_LABELS:
        return "unknown"
    _tool_labels.add(name)
    return name


def observe_reply(reply, seconds: float) -> None:  # reply: bot.turns.Reply
    mode = "failed" if reply.failed else ("offline" if reply.offline else "model")
    ANSWERS.labels(mode).inc()
    ANSWER_SECONDS.observe(seconds)
    MODEL_TOKENS.labels("prompt").inc(reply.prompt_tokens)
    MODEL_TOKENS.labels("completion").inc(reply.completion_tokens)
    MODEL_ROUNDS.inc(reply.model_rounds)
    for tool in reply.tool_calls:
        TOOL_CALLS.labels(tool_label(tool)).inc()
    for _ in reply.proposals:
        PROPOSALS.labels("created").inc()


class ProposalStatusCollector(Collector):
    """Proposals by status, read from the store at scrape time, so every replica reports the same."""

    def __init__(self, count_by_status: Callable[[], dict[str, int]]) -> None:
        self.count_by_status = count_by_status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("bot_proposals", "Proposals in the store by status", labels=["status"])
        try:
            counts = self.count_by_status()
        except Exception:  # a scrape must not fail because the database blinked
            counts = {}
        for status, count in sorted(counts.items()):
            family.add_metric([status], count)
        yield family


def store_registry(count_by_status: Callable[[], dict[str, int]]) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ProposalStatusCollector(count_by_status))
    return registry
