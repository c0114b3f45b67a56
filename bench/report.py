"""Targets against measurements: one rich table for the terminal and one JSON file for the record."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from bench.scenarios import AnswerCost, BurstResult, LoadResult
from bench.stats import Quantile

RESULTS = Path(__file__).resolve().parent / "results"


class MapResult(BaseModel):
    limits: int
    deployments: int
    seconds: list[float]  # one per repeat
    counts: dict[str, int] = {}
    seed_seconds: float = 0.0


class BotResults(BaseModel):
    load: LoadResult
    burst: BurstResult
    answers: list[AnswerCost]

    def rounds(self, kind: str) -> int | None:
        return next((a.model_rounds for a in self.answers if a.kind == kind), None)


class Target(BaseModel):
    name: str
    goal: str
    measured: str
    met: bool | None  # None: not measured


class BenchReport(BaseModel):
    started_at: str
    command: str
    settings: dict[str, Any]
    ours: BotResults
    naive: BotResults | None = None
    concurrency_map: MapResult | None = None
    targets: list[Target] = []


def _seconds(q: Quantile | None) -> float | None:
    return None if q is None or q.censored else q.seconds


def _under(q: Quantile | None, limit: float) -> bool | None:
    if q is None:
        return None
    return (not q.censored) and q.seconds < limit


def _show(q: Quantile | None, unit: str = "ms") -> str:
    return "–" if q is None else q.show(unit)


def targets(report: BenchReport) -> list[Target]:
    load, burst = report.ours.load, report.ours.burst
    knowledge, lookup = report.ours.rounds("knowledge"), report.ours.rounds("lookup")
    out = [
        Target(name="Ack latency p99", goal="< 25 ms", measured=_show(load.ack_p99), met=_under(load.ack_p99, 0.025)),
        Target(name="First visible feedback p99", goal="< 300 ms", measured=_show(load.feedback_p99),
               met=_under(load.feedback_p99, 0.300)),
        Target(name="Bot overhead p50", goal="< 40 ms", measured=_show(load.overhead_p50),
               met=_under(load.overhead_p50, 0.040)),
        Target(name=f"{burst.questions} questions at once, model {burst.model_latency:g} s", goal="< 3 s",
               measured=f"{'> ' if burst.wall_censored else ''}{burst.wall_seconds:.2f} s",
               met=not burst.wall_censored and burst.wall_seconds < 3.0),
        Target(name="Round trips, knowledge question", goal="1", measured=str(knowledge),
               met=None if knowledge is None else knowledge <= 1),
        Target(name="Round trips, one-lookup question", goal="≤ 2", measured=str(lookup),
               met=None if lookup is None else lookup <= 2),
    ]
    cmap = report.concurrency_map
    if cmap is not None and cmap.seconds:
        best = min(cmap.seconds)
        out.append(Target(name=f"Concurrency map, {cmap.limits} limits + {cmap.deployments} deployments",
                          goal="< 2 s", measured=f"{best:.2f} s (best of {len(cmap.seconds)})", met=best < 2.0))
    return out


def _ratio(ours: float | None, naive: float | None, censored: bool = False) -> str:
    if ours is None or naive is None or ours <= 0:
        return "–"
    ratio = naive / ours
    return f"{'> ' if censored else ''}{ratio:,.1f}×" if ratio >= 1 else f"{ratio:.2f}×"


def comparison_rows(report: BenchReport) -> list[tuple[str, str, str, str]]:
    ours, naive = report.ours, report.naive
    assert naive is not None
    rows = []
    for label, attr in (("Ack p99", "ack_p99"), ("First feedback p50", "feedback_p50"),
                        ("First feedback p99", "feedback_p99"), ("Overhead p50", "overhead_p50"),
                        ("Overhead p99", "overhead_p99")):
        a, b = getattr(ours.load, attr), getattr(naive.load, attr)
        rows.append((label, _show(a), _show(b), _ratio(_seconds(a), b.seconds if b else None,
                                                      bool(b and b.censored))))
    rows.append(("Answered during the load window",
                 f"{ours.load.answered}/{ours.load.sent} in {ours.load.seconds:g} s + drain",
                 f"{naive.load.answered}/{naive.load.sent} in {naive.load.seconds:g} s + drain", "–"))
    per_q_ours = ours.burst.wall_seconds / ours.burst.questions
    per_q_naive = naive.burst.wall_seconds / naive.burst.questions
    rows.append((f"Burst wall time ({ours.burst.questions} vs {naive.burst.questions} questions)",
                 f"{ours.burst.wall_seconds:.2f} s", f"{'> ' if naive.burst.wall_censored else ''}"
                 f"{naive.burst.wall_seconds:.2f} s", "–"))
    rows.append(("Burst time per question", f"{per_q_ours * 1000:,.0f} ms", f"{per_q_naive * 1000:,.0f} ms",
                 _ratio(per_q_ours, per_q_naive, naive.burst.wall_censored)))
    for a in ours.answers:
        b = next((x for x in naive.answers if x.kind == a.kind), None)
        if b is None:
            continue
        rows.append((f"{a.kind}: round trips", str(a.model_rounds), str(b.model_rounds),
                     _ratio(a.model_rounds, b.model_rounds)))
        rows.append((f"{a.kind}: prompt + completion tokens", f"{a.prompt_tokens:,} + {a.completion_tokens:,}",
                     f"{b.prompt_tokens:,} + {b.completion_tokens:,}",
                     _ratio(a.prompt_tokens + a.completion_tokens, b.prompt_tokens + b.completion_tokens)))
        rows.append((f"{a.kind}: cached share of prompt tokens", _share(a.cached_tokens, a.prompt_tokens),
                     _share(b.cached_tokens, b.prompt_tokens), "–"))
    rows.append(("Bot CPU per answer", f"{ours.load.cpu_ms_per_answer:.1f} ms",
                 f"{naive.load.cpu_ms_per_answer:.1f} ms", "–"))
    rows.append(("RSS peak under load", f"{ours.load.rss_peak_mib:.0f} MiB", f"{naive.load.rss_peak_mib:.0f} MiB",
                 "–"))
    return rows


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%} ({part:,})" if whole else "–"


def print_report(report: BenchReport, console: Console | None = None) -> None:
    console = console or Console()
    load = report.ours.load
    table = Table(title="Targets (issue 8)")
    for column in ("Measure", "Target", "Measured", "Met"):
        table.add_column(column)
    for t in report.targets:
        table.add_row(t.name, t.goal, t.measured, "–" if t.met is None else ("✅ met" if t.met else "❌ missed"))
    console.print(table)

    detail = Table(title=f"Our bot at {load.rate:g} events/s for {load.seconds:g} s "
                         f"(model {report.settings['model_latency']:g} s + tokens at "
                         f"{report.settings['token_rate']:g}/s)")
    for column in ("Measure", "p50", "p99"):
        detail.add_column(column)
    detail.add_row("Ack", _show(load.ack_p50), _show(load.ack_p99))
    detail.add_row("First feedback (👀)", _show(load.feedback_p50), _show(load.feedback_p99))
    detail.add_row("Answer, end to end", _show(load.answer_p50), "")
    detail.add_row("Model time (at the fake)", _show(load.model_p50), "")
    detail.add_row("Bot overhead", _show(load.overhead_p50), _show(load.overhead_p99))
    detail.add_row("Answered", f"{load.answered}/{load.sent}", "")
    detail.add_row("Bot CPU per answer", f"{load.cpu_ms_per_answer:.1f} ms "
                   f"(budget at {load.rate:g}/s on one core: {1000 / load.rate:.0f} ms)", "")
    detail.add_row("RSS idle → peak", f"{load.rss_idle_mib:.0f} → {load.rss_peak_mib:.0f} MiB", "")
    console.print(detail)

    answers = Table(title="Per answer (each question alone)")
    for column in ("Question", "Round trips", "Prompt tokens", "Cached", "Completion tokens", "Tools called",
                   "Answer", "Model", "Prefect + bot"):
        answers.add_column(column)
    for a in report.ours.answers:
        answers.add_row(a.kind, str(a.model_rounds), f"{a.prompt_tokens:,}", _share(a.cached_tokens, a.prompt_tokens),
                        f"{a.completion_tokens:,}",
                        ", ".join(a.tools) or "–",
                        "–" if a.answer_seconds is None else f"{a.answer_seconds * 1000:,.0f} ms",
                        f"{a.model_seconds * 1000:,.0f} ms",
                        "–" if a.other_seconds is None else f"{a.other_seconds * 1000:,.0f} ms")
    console.print(answers)

    if report.naive is not None:
        versus = Table(title="Against the naive baseline (one answer at a time; recipes only by tool call)")
        for column in ("Measure", "Ours", "Naive", "Naive ÷ ours"):
            versus.add_column(column)
        for row in comparison_rows(report):
            versus.add_row(*row)
        console.print(versus)


def write_json(report: BenchReport, directory: Path = RESULTS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{stamp}.json"
    path.write_text(json.dumps(report.model_dump(mode="json"), indent=2))
    return path
