"""`make bench`: our bot and a naive baseline against local Slack, model and Prefect servers.

    python -m bench.run [--duration 60] [--rate 50] [--model-latency 0.8] [--token-rate 100] ...
    python -m bench.run --smoke      # a few seconds of load: checks the benchmark runs (CI)

Prints a table of targets (issue 8) and writes bench/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from bench.botproc import BotProcess, bot_environment
from bench.fakes import BenchModelAPI, TimedSlackAPI
from bench.report import RESULTS, BenchReport, BotResults, MapResult, print_report, targets, write_json
from bench.scenarios import Bench, burst, plans, single_answers, steady_load, warm_up

SMOKE = dict(duration=3.0, rate=10.0, burst=20, naive_duration=2.0, naive_burst=3, drain=20.0, naive_drain=5.0,
             token_rate=1000.0,  # the smoke checks the run works, not the figures: answers stream 10x faster
             model_latency=0.2, burst_latency=0.5, map_limits=20, map_deployments=10, map_repeat=1)
err = Console(stderr=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="a few seconds of everything (CI)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of steady load (default 60)")
    p.add_argument("--rate", type=float, default=50.0, help="events per second (default 50)")
    p.add_argument("--drain", type=float, default=60.0, help="seconds to wait for answers after the load")
    p.add_argument("--model-latency", type=float, default=0.8, help="model time to first token (default 0.8 s)")
    p.add_argument("--token-rate", type=float, default=100.0, help="completion tokens per second (0 = instant)")
    p.add_argument("--burst", type=int, default=200, help="questions sent at once (default 200)")
    p.add_argument("--burst-latency", type=float, default=1.0, help="model latency during the burst (default 1 s)")
    p.add_argument("--naive-duration", type=float, default=10.0, help="seconds of load on the naive baseline")
    p.add_argument("--naive-burst", type=int, default=20, help="burst size for the naive baseline")
    p.add_argument("--naive-drain", type=float, default=20.0, help="seconds to wait for the naive bot's answers")
    p.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    p.add_argument("--map-limits", type=int, default=500)
    p.add_argument("--map-deployments", type=int, default=200)
    p.add_argument("--map-repeat", type=int, default=3)
    p.add_argument("--no-map", action="store_true", help="skip the concurrency map timing")
    p.add_argument("--streaming", choices=["true", "false"], default="true", help="BOT_STREAMING for both bots")
    p.add_argument("--bot-module", default="bot.cli",
                   help="entry point for our bot (e.g. bench.cached_tools_bot to measure that fix)")
    p.add_argument("--prefect-api-url", help="use this Prefect server instead of starting one")
    p.add_argument("--results-dir", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    if args.smoke:
        explicit = {a.split("=")[0].lstrip("-").replace("-", "_") for a in (argv or sys.argv[1:])}
        for key, value in SMOKE.items():
            if key not in explicit:
                setattr(args, key, value)
    return args


def time_concurrency_map(args: argparse.Namespace) -> MapResult | None:
    """The other half of issue 8's figures: reuse bench/concurrency_map.py's seeding and timing."""
    from bench import concurrency_map

    started = time.perf_counter()
    try:
        asyncio.run(concurrency_map.seed(args.map_limits, args.map_deployments))
        seeded = time.perf_counter() - started
        runs = asyncio.run(concurrency_map.measure(args.map_repeat))
    except Exception as exc:  # a seeding clash must not hide the other figures
        err.print(f"[yellow]concurrency map skipped: {type(exc).__name__}: {exc}[/]")
        return None
    return MapResult(limits=args.map_limits, deployments=args.map_deployments, seconds=[s for s, _ in runs],
                     counts=runs[-1][1] if runs else {}, seed_seconds=seeded)


def measure_bot(bench: Bench, module: str, env: dict[str, str], logs: Path, tag: str, duration: float,
                rate: float, drain: float, burst_size: int, burst_latency: float) -> BotResults:
    bot = BotProcess(module, env, logs).start()
    try:
        err.print(f"{tag}: warming up ({bot.url})")
        warm_up(bench, bot, f"CWARM{tag}")
        err.print(f"{tag}: one question of each kind")
        answers = single_answers(bench, bot, f"CONE{tag}")
        err.print(f"{tag}: {rate:g} events/s for {duration:g} s")
        load = steady_load(bench, bot, rate, duration, drain, f"CLOAD{tag}")
        bench.wait_answered([], 0)
        err.print(f"{tag}: {burst_size} questions at once, model {burst_latency:g} s")
        shot = burst(bench, bot, burst_size, burst_latency, max(drain, 10 * burst_latency), f"CBURST{tag}")
        return BotResults(load=load, burst=shot, answers=answers)
    finally:
        bot.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    work = Path(tempfile.mkdtemp(prefix="cbot-bench-"))
    prefect_server = None
    if args.prefect_api_url:
        prefect_url = args.prefect_api_url
    else:
        from tests.fakes.prefect_server import PrefectServer

        prefect_server = PrefectServer()
        prefect_url = prefect_server.url
        err.print(f"starting a Prefect server at {prefect_url} …")
        prefect_server.start()
    os.environ["PREFECT_API_URL"] = prefect_url  # before prefect is first imported
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    slack = model = None
    try:
        from bench.seed import seed_lookup_targets

        cmap = None
        if not args.no_map:
            err.print(f"concurrency map: seeding {args.map_limits} limits and {args.map_deployments} deployments")
            cmap = time_concurrency_map(args)
        seeded = asyncio.run(seed_lookup_targets(prefect_url))
        slack = TimedSlackAPI().start()
        model = BenchModelAPI(plans(seeded), latency=args.model_latency, token_rate=args.token_rate).start()
        bench = Bench(slack=slack, model=model, seeded=seeded)

        def env(name: str) -> dict[str, str]:
            return bot_environment(slack.url, model.base_url, prefect_url, f"sqlite:///{work / name}.db",
                                   streaming=args.streaming == "true")

        ours = measure_bot(bench, args.bot_module, env("ours"), work, "OURS", args.duration, args.rate, args.drain,
                           args.burst, args.burst_latency)
        naive = None
        if not args.no_naive:
            naive = measure_bot(bench, "bench.naive_bot", env("naive"), work, "NAIVE", args.naive_duration,
                                args.rate, args.naive_drain, args.naive_burst, args.burst_latency)
        report = BenchReport(
            started_at=started_at, command=shlex.join(["python", "-m", "bench.run", *(argv or sys.argv[1:])]),
            settings={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            ours=ours, naive=naive, concurrency_map=cmap,
        )
        report.targets = targets(report)
        print_report(report)
        path = write_json(report, args.results_dir)
        Console().print(f"results: {path}   bot logs: {work}")
        return 0
    finally:
        for server in (slack, model):
            if server is not None:
                server.stop()
        if prefect_server is not None:
            prefect_server.stop()


if __name__ == "__main__":
    sys.exit(main())
