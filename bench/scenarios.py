"""The measurements: steady load, a burst, and single answers of three kinds, against one bot."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from bench.botproc import SIGNING_SECRET, BotProcess
from bench.fakes import BenchModelAPI, Plan, TimedSlackAPI
from bench.loadgen import LoadSpec, Sent
from bench.seed import Seeded
from bench.stats import Quantile, quantile

REPO = Path(__file__).resolve().parent.parent

KNOWLEDGE_QUESTION = "only one run of nightly-etl at a time please, extra runs should be skipped"
KNOWLEDGE_ANSWER = """Use a deployment concurrency limit of 1 with the `CANCEL_NEW` collision strategy: a run that \
would be the second one is cancelled instead of queued.

```bash
prefect deploy flows/etl.py:etl -n nightly -p etl-pool --concurrency-limit 1 --collision-strategy CANCEL_NEW
```

With `ENQUEUE` (the default) extra runs wait for the slot instead of being skipped."""


def plans(seeded: Seeded) -> dict[str, Plan]:
    return {
        "knowledge": Plan(answer=KNOWLEDGE_ANSWER, needs_recipes=True),
        "lookup": Plan(answer=f"`{seeded.deployment}` has a concurrency limit of 1 (collision strategy "
                              "ENQUEUE); no run holds its slot right now.",
                       lookups=(("read_deployment_limit", {"deployment": seeded.deployment}),)),
        "diagnosis": Plan(answer=f"Run `{seeded.late_run}` is Late: no worker is polling its work pool, so "
                                 "nothing picks it up. Start a worker for the pool.",
                          needs_recipes=True,
                          lookups=(("diagnose_run", {"run_or_deployment": seeded.late_run}),)),
    }


def questions(seeded: Seeded) -> dict[str, str]:
    return {
        "knowledge": KNOWLEDGE_QUESTION,
        "lookup": f"does {seeded.deployment} have a concurrency limit right now?",
        "diagnosis": f"why is run {seeded.late_run} still waiting?",
    }


@dataclass
class Bench:
    """The shared servers and a counter that keeps every question's ref unique across phases."""

    slack: TimedSlackAPI
    model: BenchModelAPI
    seeded: Seeded
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    def send(self, bot: BotProcess, kind: str, channel: str, count: int, rate: float = 0.0) -> list[Sent]:
        first = next(self.counter)
        for _ in range(count - 1):
            next(self.counter)
        text = questions(self.seeded)[kind] + f" (ref {kind}-{{n}})"
        spec = LoadSpec(url=f"{bot.url}/slack/events", secret=SIGNING_SECRET, channel=channel, text=text,
                        rate=rate, count=count, first=first)
        done = subprocess.run([sys.executable, "-m", "bench.loadgen"], input=spec.model_dump_json(),
                              capture_output=True, text=True, cwd=REPO, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"load generator failed:\n{done.stderr[-3000:]}")
        return [Sent.model_validate(item) for item in json.loads(done.stdout)]

    def wait_answered(self, sent: list[Sent], timeout: float) -> float:
        """Poll until every sent question has an answer in Slack, or the timeout; returns the give-up time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.slack.lock:
                missing = sum(1 for s in sent if s.ts not in self.slack.answered)
            if not missing:
                break
            time.sleep(0.05)
        return time.monotonic()


class Timeline(BaseModel):
    """Per-question seconds; None where the question had no answer when the bench gave up."""

    ack: list[float | None]
    feedback: list[float | None]
    answer: list[float | None]
    model: list[float]
    overhead: list[float | None]
    gave_up_after: float

    def q(self, name: str, p: float) -> Quantile | None:
        return quantile(getattr(self, name), p, censor_at=self.gave_up_after)

    @property
    def answered(self) -> int:
        return sum(1 for a in self.answer if a is not None)


def timeline(bench: Bench, sent: list[Sent], kind: str, gave_up: float) -> Timeline:
    acks, feedback, answers, models, overhead = [], [], [], [], []
    with bench.slack.lock:
        first, done = dict(bench.slack.first_feedback), dict(bench.slack.answered)
    for s in sent:
        acks.append(s.acked - s.posted if s.acked is not None and s.status == 200 else None)
        feedback.append(first[s.ts] - s.posted if s.ts in first else None)
        answer = done[s.ts] - s.posted if s.ts in done else None
        model = sum(r.seconds for r in bench.model.rounds_for(f"{kind}-{s.n}"))
        answers.append(answer)
        models.append(model)
        overhead.append(answer - model if answer is not None else None)
    return Timeline(ack=acks, feedback=feedback, answer=answers, model=models, overhead=overhead,
                    gave_up_after=gave_up - min(s.posted for s in sent))


class LoadResult(BaseModel):
    rate: float
    seconds: float
    sent: int
    answered: int
    ack_p50: Quantile | None
    ack_p99: Quantile | None
    feedback_p50: Quantile | None
    feedback_p99: Quantile | None
    answer_p50: Quantile | None
    model_p50: Quantile | None
    overhead_p50: Quantile | None
    overhead_p99: Quantile | None
    rss_idle_mib: float
    rss_peak_mib: float
    cpu_ms_per_answer: float  # the bot process's CPU time over the phase, per answered question


def steady_load(bench: Bench, bot: BotProcess, rate: float, seconds: float, drain: float,
                channel: str) -> LoadResult:
    """`rate` knowledge questions per second for `seconds`; answers are awaited up to `drain` more."""
    idle = bot.rss_kib()
    cpu = bot.cpu_seconds()
    bot.sample_rss()
    sent = bench.send(bot, "knowledge", channel, max(1, int(rate * seconds)), rate)
    gave_up = bench.wait_answered(sent, drain)
    bot.stop_sampling()
    cpu = bot.cpu_seconds() - cpu
    line = timeline(bench, sent, "knowledge", gave_up)
    peak = max([kib for _, kib in bot.samples] or [idle])
    return LoadResult(
        rate=rate, seconds=seconds, sent=len(sent), answered=line.answered,
        ack_p50=line.q("ack", 0.5), ack_p99=line.q("ack", 0.99),
        feedback_p50=line.q("feedback", 0.5), feedback_p99=line.q("feedback", 0.99),
        answer_p50=line.q("answer", 0.5), model_p50=quantile(line.model, 0.5),
        overhead_p50=line.q("overhead", 0.5), overhead_p99=line.q("overhead", 0.99),
        rss_idle_mib=idle / 1024, rss_peak_mib=peak / 1024,
        cpu_ms_per_answer=1000 * cpu / max(1, line.answered),
    )


class BurstResult(BaseModel):
    questions: int
    answered: int
    model_latency: float
    wall_seconds: float
    wall_censored: bool
    rss_peak_mib: float


def burst(bench: Bench, bot: BotProcess, count: int, latency: float, timeout: float, channel: str) -> BurstResult:
    """`count` questions at once with the model at `latency` seconds and no token time."""
    saved = bench.model.latency, bench.model.token_rate
    bench.model.latency, bench.model.token_rate = latency, 0.0
    bot.samples.clear()
    bot.sample_rss()
    try:
        sent = bench.send(bot, "knowledge", channel, count)
        gave_up = bench.wait_answered(sent, timeout)
    finally:
        bot.stop_sampling()
        bench.model.latency, bench.model.token_rate = saved
    line = timeline(bench, sent, "knowledge", gave_up)
    done = [a for a in line.answer if a is not None]
    wall = line.gave_up_after if len(done) < len(sent) else max(done)
    return BurstResult(questions=count, answered=len(done), model_latency=latency, wall_seconds=wall,
                       wall_censored=len(done) < len(sent),
                       rss_peak_mib=max([kib for _, kib in bot.samples] or [bot.rss_kib()]) / 1024)


class AnswerCost(BaseModel):
    kind: str
    model_rounds: int
    prompt_tokens: int
    completion_tokens: int
    tools: list[str]
    cached_tokens: int = 0  # of prompt_tokens, from usage.prompt_tokens_details.cached_tokens
    answer_seconds: float | None
    model_seconds: float
    other_seconds: float | None  # Prefect reads + the bot's own work
    bot_counted_rounds: int | None = None  # bot_model_rounds_total moved by this much


ROUNDS_METRIC = re.compile(r"^bot_model_rounds_total (\S+)$", re.MULTILINE)


def metric_rounds(bot: BotProcess) -> float | None:
    match = ROUNDS_METRIC.search(bot.metrics())
    return float(match.group(1)) if match else None


def single_answers(bench: Bench, bot: BotProcess, channel: str, timeout: float = 60.0) -> list[AnswerCost]:
    """One question of each kind, alone, so its rounds, tokens and times are its own."""
    costs = []
    for kind in ("knowledge", "lookup", "diagnosis"):
        before = metric_rounds(bot)
        sent = bench.send(bot, kind, channel, 1)
        bench.wait_answered(sent, timeout)
        time.sleep(0.2)  # the metrics are observed just before delivery; let them settle
        after = metric_rounds(bot)
        rounds = bench.model.rounds_for(f"{kind}-{sent[0].n}")
        with bench.slack.lock:
            done = bench.slack.answered.get(sent[0].ts)
        answer = done - sent[0].posted if done is not None else None
        model = sum(r.seconds for r in rounds)
        costs.append(AnswerCost(
            kind=kind, model_rounds=len(rounds), prompt_tokens=sum(r.prompt_tokens for r in rounds),
            completion_tokens=sum(r.completion_tokens for r in rounds),
            cached_tokens=sum(r.cached_tokens for r in rounds),
            tools=[name for r in rounds for name in r.tool_names], answer_seconds=answer, model_seconds=model,
            other_seconds=answer - model if answer is not None else None,
            bot_counted_rounds=int(after - before) if after is not None and before is not None else None,
        ))
    return costs


def warm_up(bench: Bench, bot: BotProcess, channel: str) -> None:
    """First answers load the verifier's CLI tree and open Prefect clients; keep that out of the figures."""
    for kind in ("knowledge", "lookup"):
        bench.wait_answered(bench.send(bot, kind, channel, 2), 60)
