"""The eval harness: run questions through the answering pipeline and score the answers.

Scores are plain checks anyone can read in questions.yaml: the facts an answer must include,
the wrong facts it must not include, whether the verifier passed it, latency and tokens.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field

__all__ = [
    "EvalQuestion",
    "EvalResult",
    "EvalSummary",
    "load_questions",
    "run_eval",
    "score_answer",
    "summarize",
    "DEFAULT_QUESTIONS",
]

DEFAULT_QUESTIONS = Path(__file__).resolve().parents[2] / "tests" / "eval" / "questions.yaml"
Fact = str | list[str]


class EvalQuestion(BaseModel):
    """One question with the facts a right answer includes and the wrong ones it avoids."""

    id: str
    question: str
    topic: str = ""
    must_include: list[Fact] = Field(default_factory=list)
    must_not_include: list[str] = Field(default_factory=list)


class EvalResult(BaseModel):
    id: str
    essentials_hit: int
    essentials_total: int
    missing: list[str]
    wrong_facts: list[str]
    verifier_ok: bool
    verifier_errors: int
    model_rounds: int
    latency_seconds: float
    prompt_tokens: int
    completion_tokens: int
    failed: bool = False
    answer: str = ""

    @property
    def essentials_ratio(self) -> float:
        return self.essentials_hit / self.essentials_total if self.essentials_total else 1.0


class EvalSummary(BaseModel):
    questions: int
    essentials_ratio: float
    wrong_facts: int
    verifier_pass_rate: float
    failed: int
    latency_p50: float
    latency_max: float
    prompt_tokens: int
    completion_tokens: int


def load_questions(path: Path | None = None) -> list[EvalQuestion]:
    data = yaml.safe_load(Path(path or DEFAULT_QUESTIONS).read_text(encoding="utf-8")) or []
    return [EvalQuestion.model_validate(item) for item in data]


def _matches(pattern: str, text: str) -> bool:
    """Case-insensitive substring, or a regex when the pattern starts with 're:'."""
    if pattern.startswith("re:"):
        return re.search(pattern[3:], text, re.IGNORECASE | re.MULTILINE) is not None
    return pattern.lower() in text.lower()


def score_answer(question: EvalQuestion, reply: Any, latency: float, verify=None) -> EvalResult:
    """Score one reply (a `bot.turns.Reply`); runs the verifier if the pipeline did not."""
    text = reply.text or ""
    missing = []
    for fact in question.must_include:
        options = fact if isinstance(fact, list) else [fact]
        if not any(_matches(option, text) for option in options):
            missing.append(" | ".join(options))
    wrong = [pattern for pattern in question.must_not_include if _matches(pattern, text)]
    report = reply.verifier
    if report is None:
        if verify is None:
            from bot.knowledge.verifier import verify_markdown as verify
        report = verify(text)
    return EvalResult(
        id=question.id,
        essentials_hit=len(question.must_include) - len(missing),
        essentials_total=len(question.must_include),
        missing=missing,
        wrong_facts=wrong,
        verifier_ok=report.ok,
        verifier_errors=len(report.errors),
        model_rounds=reply.model_rounds,
        latency_seconds=round(latency, 3),
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
        failed=bool(getattr(reply, "failed", False)),
        answer=text,
    )


async def run_eval(pipeline: Any, questions: list[EvalQuestion], concurrency: int = 2) -> list[EvalResult]:
    """Ask every question (a few at a time); results come back in question order."""
    from bot.turns import Turn

    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(question: EvalQuestion) -> EvalResult:
        async with gate:
            started = time.perf_counter()
            reply = await pipeline.answer(Turn(text=question.question, user_id="eval", source="eval"))
            latency = time.perf_counter() - started
        return await asyncio.to_thread(score_answer, question, reply, latency)

    return list(await asyncio.gather(*(one(q) for q in questions)))


def summarize(results: list[EvalResult]) -> EvalSummary:
    latencies = [r.latency_seconds for r in results] or [0.0]
    total_essentials = sum(r.essentials_total for r in results)
    return EvalSummary(
        questions=len(results),
        essentials_ratio=round(sum(r.essentials_hit for r in results) / total_essentials, 3)
        if total_essentials
        else 1.0,
        wrong_facts=sum(len(r.wrong_facts) for r in results),
        verifier_pass_rate=round(sum(r.verifier_ok for r in results) / len(results), 3) if results else 1.0,
        failed=sum(r.failed for r in results),
        latency_p50=round(statistics.median(latencies), 3),
        latency_max=round(max(latencies), 3),
        prompt_tokens=sum(r.prompt_tokens for r in results),
        completion_tokens=sum(r.completion_tokens for r in results),
    )


def render_table(results: list[EvalResult], summary: EvalSummary):
    """A rich Table: one row per question, totals in the footer."""
    from rich.table import Table

    table = Table(title="concurrency-bot eval", show_footer=True)
    table.add_column("question", footer=f"{summary.questions} questions")
    table.add_column("essentials", justify="right", footer=f"{summary.essentials_ratio:.0%}")
    table.add_column("wrong facts", justify="right", footer=str(summary.wrong_facts))
    table.add_column("verifier", justify="center", footer=f"{summary.verifier_pass_rate:.0%} pass")
    table.add_column("rounds", justify="right")
    table.add_column(
        "latency s", justify="right", footer=f"p50 {summary.latency_p50:.1f} / max {summary.latency_max:.1f}"
    )
    table.add_column("tokens in/out", justify="right", footer=f"{summary.prompt_tokens}/{summary.completion_tokens}")
    for r in results:
        wrong = f"[red]{len(r.wrong_facts)}[/red]" if r.wrong_facts else "0"
        essentials = f"{r.essentials_hit}/{r.essentials_total}"
        if r.missing:
            essentials = f"[yellow]{essentials}[/yellow]"
        table.add_row(
            r.id + (" [red](failed)[/red]" if r.failed else ""),
            essentials,
            wrong,
            "✓" if r.verifier_ok else "[red]✗[/red]",
            str(r.model_rounds),
            f"{r.latency_seconds:.2f}",
            f"{r.prompt_tokens}/{r.completion_tokens}",
        )
    return table
