"""Real users' questions (issue 24): load a half, answer each the way `concurrency-bot ask` does with no
model key, and score the answers against the essentials written for them.

The data lives in tests/data/real_questions/ (see its README for how it was collected and split).
A question counts as answered when the offline answer contains every one of its essentials; an
essential is a list of equivalent spellings (case-insensitive substrings, or a regex after "re:").
Used by tests/test_real_questions.py (the held-out floor) and bench/real_questions.py (the table).
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "real_questions"
HALVES = ("tuning", "heldout")


@dataclass(frozen=True)
class RealQuestion:
    id: str
    question: str
    url: str
    essentials: list[list[str]]
    batch: int = 1


@dataclass
class Scored:
    id: str
    answer: str
    missing: list[str] = field(default_factory=list)
    route: str = ""
    batch: int = 1

    @property
    def passed(self) -> bool:
        return not self.missing


def _rows(half: str) -> list[dict]:
    if half not in HALVES:
        raise ValueError(f"unknown half {half!r}; one of {HALVES}")
    return [json.loads(line) for line in (DATA / f"{half}.jsonl").read_text(encoding="utf-8").splitlines() if line]


def load(half: str) -> list[RealQuestion]:
    """The questions of a half that have essentials.

    A new batch is split and committed before anyone writes its essentials, so for a while its rows
    have none; they are left out (not scored as vacuous passes) until their essentials land.
    """
    return [RealQuestion(r["id"], r["question"], r["url"], r["essentials"], r.get("batch", 1))
            for r in _rows(half) if "essentials" in r]


def awaiting_essentials(half: str) -> list[tuple[str, int]]:
    """(id, batch) of the rows `load` leaves out because their essentials are not written yet."""
    return [(r["id"], r.get("batch", 1)) for r in _rows(half) if "essentials" not in r]


def _matches(option: str, text: str) -> bool:
    if option.startswith("re:"):
        return re.search(option[3:], text, re.IGNORECASE | re.MULTILINE) is not None
    return option.lower() in text.lower()


def missing_essentials(essentials: list[list[str]], text: str) -> list[str]:
    """The essentials `text` lacks, each shown as its spellings joined by " | "."""
    return [" | ".join(options) for options in essentials if not any(_matches(o, text) for o in options)]


def offline_pipeline():
    """The pipeline `ask` builds, with no model key: every answer comes from the offline engine."""
    from bot.pipeline import build_pipeline
    from bot.settings import Settings

    settings = Settings(openai_api_key=None)
    pipeline = build_pipeline(settings)
    assert pipeline.model is None, "a model key leaked into the real-questions run"
    return pipeline


async def answer_and_score(questions: list[RealQuestion], pipeline=None) -> list[Scored]:
    """Each question through the offline `ask` path (live reads from PREFECT_API_URL), scored."""
    from bot.turns import Turn

    pipeline = pipeline or offline_pipeline()
    results = []
    for item in questions:
        reply = await pipeline.answer(Turn(text=item.question, user_id="real-questions", channel="terminal",
                                           thread_ts="real-questions", source="cli"))
        text = reply.text or ""
        offered = re.search(r"`more (?P<slug>[a-z][a-z0-9-]+)`", text)
        route = ",".join(reply.tool_calls) + (f":{offered.group('slug')}" if offered else "")
        results.append(Scored(item.id, text, missing_essentials(item.essentials, text), route, item.batch))
    return results


def score(results: list[Scored]) -> float:
    return sum(r.passed for r in results) / len(results) if results else 0.0


def median_length(results: list[Scored]) -> float:
    return statistics.median(len(r.answer) for r in results) if results else 0.0
