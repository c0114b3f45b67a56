"""`python -m bench.watch_calls`: the watcher's Prefect API calls per minute on a big, busy server.

Seeds about 1,000 objects (deployments, a fifth of them with their own limit, tag limits, pools with
queues), keeps one pool busy (runs created, taken Pending → Running → Completed, as a worker would, so
the event stream is full of flow-run events), then runs the watcher as `serve` builds it (default
interval 30 s, `BOT_WATCH_MAX_CALLS_PER_MINUTE` 100) and counts every request its client sends with an
httpx event hook (the CallMeter), not by patching anything. Meanwhile it pauses pools that have a run
due and times each Prefect event → Slack post. Prints one table row beside the targets, then every
sample split into stages (event received by the watcher → its read started → read done → posted), and
the machine's load average, since the figures depend on it.

    python -m bench.watch_calls [--objects 1000] [--minutes 3] [--prefect-api-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid

from bench.watch_setup import prefect_and_slack

TARGET_CALLS = 100
TARGET_LATENCY = 10.0
BUSY_LIMIT = 2


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.watch_calls", description=__doc__.splitlines()[0])
    p.add_argument("--objects", type=int, default=1000, help="objects to seed (default 1000)")
    p.add_argument("--minutes", type=float, default=3.0, help="steady-state minutes measured (default 3)")
    p.add_argument("--samples", type=int, default=3, help="event → post samples (default 3)")
    p.add_argument("--spacing", type=float, help="seconds between samples (default: spread over --minutes; each "
                                                  "sample is six configuration changes, so 7 s is a storm)")
    p.add_argument("--prefect-api-url", help="use this Prefect server instead of starting one")
    return p.parse_args(argv)


async def _gather_limited(jobs, parallel: int = 8) -> list:
    gate = asyncio.Semaphore(parallel)

    async def one(job):
        async with gate:
            return await job

    return await asyncio.gather(*(one(j) for j in jobs))


async def seed(client, objects: int, tag: str) -> tuple[str, str]:
    """About `objects` objects: 70% deployments (one in five limited), 20% tag limits, 10% pools with a
    queue each. Returns the busy pool and its deployment id."""
    from prefect.client.schemas.actions import WorkPoolCreate

    pools = max(2, objects // 10)
    tags = objects // 5
    deployments = objects - pools - tags
    names = [f"bench-{tag}-pool-{i}" for i in range(pools)]
    await _gather_limited(client.create_work_pool(WorkPoolCreate(name=n, type="process")) for n in names)
    await _gather_limited(client.create_work_queue(name="extra", work_pool_name=n) for n in names)
    await _gather_limited(client.create_concurrency_limit(tag=f"bench-{tag}-tag-{i}", concurrency_limit=5)
                          for i in range(tags))
    flow_id = await client.create_flow_from_name(f"bench-{tag}-flow")
    await _gather_limited(client.create_deployment(
        flow_id=flow_id, name=f"dep-{i}", work_pool_name=names[i % pools],
        concurrency_limit=3 if i % 5 == 0 else None) for i in range(deployments))
    busy = f"bench-{tag}-busy"
    await client.create_work_pool(WorkPoolCreate(name=busy, type="process", concurrency_limit=BUSY_LIMIT))
    busy_dep = await client.create_deployment(flow_id=flow_id, name="busy", work_pool_name=busy)
    return busy, str(busy_dep)


async def churn(busy_dep: str, stop: asyncio.Event) -> int:
    """Keep the busy pool full: runs start, run a few seconds, complete; a backlog of one keeps waiting."""
    from prefect import get_client
    from prefect.states import Completed, Pending, Running

    done = 0
    async with get_client() as client:
        running: list[tuple[uuid.UUID, float]] = []
        while not stop.is_set():
            while len(running) < BUSY_LIMIT:
                run = await client.create_flow_run_from_deployment(uuid.UUID(busy_dep))
                await client.set_flow_run_state(run.id, Pending())
                await client.set_flow_run_state(run.id, Running())
                running.append((run.id, time.monotonic() + 4.0))
            for run_id, until in list(running):
                if time.monotonic() >= until:
                    await client.set_flow_run_state(run_id, Completed())
                    running.remove((run_id, until))
                    done += 1
            await asyncio.sleep(0.5)
        for run_id, _ in running:
            await client.set_flow_run_state(run_id, Completed())
    return done


def timed_watcher(*args, **kwargs):
    """The watcher `serve` builds, also remembering when each event reached it (the first stage)."""
    from bot.watch.watcher import Watcher

    class TimedWatcher(Watcher):
        arrivals: list[tuple[float, str, str]]

        def note_event(self, event):
            if event is not None:
                resources = [dict(event.resource), *(dict(r) for r in event.related or [])]
                names = " ".join(r.get("prefect.resource.name", "") for r in resources)
                self.arrivals.append((time.monotonic(), str(event.event), names))
            return super().note_event(event)

    watcher = TimedWatcher(*args, **kwargs)
    watcher.arrivals = []
    return watcher


def stages(watcher, pool: str, started: float, seen: float) -> dict:
    """One sample split into stages, from the watcher's read trace and the events it noted."""
    arrived = next((t for t, name, names in watcher.arrivals
                    if t >= started and name.startswith("prefect.work-pool.") and pool in names.split()), None)
    read = next((r for r in watcher.trace if pool in r.posted_names and r.done is not None), None)
    row = dict(pool=pool, total=seen - started, arrived=None if arrived is None else arrived - started,
               kind=read.kind if read else "?", read_started=None, read_done=None, posted=None)
    if read is not None:
        row.update(read_started=read.started - started, read_done=(read.read_done or read.done) - started,
                   posted=read.done - started)
    return row


async def latency_samples(slack, channel: str, samples: int, watcher, spacing: float) -> list[dict]:
    """Pause pools that have a run due; time until the incident message is in the test Slack."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate

    out = []
    async with get_client() as client:
        first = time.monotonic() + 7.0  # a random-ish phase against the 30 s full reads
        for i in range(samples):
            await asyncio.sleep(max(0.0, first + i * spacing - time.monotonic()))
            pool = f"bench-lat-{uuid.uuid4().hex[:8]}"
            await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
            flow_id = await client.create_flow_from_name(f"{pool}-flow")
            dep = await client.create_deployment(flow_id=flow_id, name="d", work_pool_name=pool)
            await client.create_flow_run_from_deployment(dep)
            started = time.monotonic()
            await client.update_work_pool(pool, WorkPoolUpdate(is_paused=True))
            while not any(pool in str(c.args) for c in slack.calls_to("chat.postMessage")
                          if c.args.get("channel") == channel):
                if time.monotonic() - started > 120:
                    raise RuntimeError(f"no post for {pool} in 120 s")
                await asyncio.sleep(0.05)
            seen = time.monotonic()
            while not any(pool in r.posted_names for r in watcher.trace) and time.monotonic() - seen < 5:
                await asyncio.sleep(0.05)  # the read's trace is written just after its post
            out.append(stages(watcher, pool, started, seen))
            print(f"event → post: {out[-1]['total']:.2f} s", file=sys.stderr)
            await client.update_work_pool(pool, WorkPoolUpdate(is_paused=False))
    return out


async def measure(slack, store_url: str, objects: int, minutes: float, samples: int,
                  spacing: float | None = None) -> dict:
    from prefect import get_client
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.settings import load_settings
    from bot.slack.watch_poster import SlackPoster
    from bot.store import Store

    tag = uuid.uuid4().hex[:6]
    started = time.monotonic()
    async with get_client() as client:
        busy, busy_dep = await seed(client, objects, tag)
    print(f"seeded {objects} objects in {time.monotonic() - started:.0f} s", file=sys.stderr)

    settings = load_settings()  # the defaults `serve` uses
    store = Store.open(store_url)
    channel = f"CCALLS{tag}"
    poster = SlackPoster(AsyncWebClient(token="xoxb-bench-token-123456", base_url=f"{slack.url}/api/"), channel,
                         store)
    watcher = timed_watcher(store, poster, interval=settings.bot_watch_interval_seconds,
                            wait_seconds=settings.bot_watch_wait_seconds,
                            max_posts_per_hour=1000, max_calls_per_minute=settings.bot_watch_max_calls_per_minute)
    stop = asyncio.Event()
    churner = asyncio.ensure_future(churn(busy_dep, stop))
    task = asyncio.ensure_future(watcher.run())
    try:
        deadline = time.monotonic() + 300
        while watcher.reads["full"] < 1:  # warm-up: the first full read
            if time.monotonic() > deadline:
                raise RuntimeError("the watcher never completed a read")
            await asyncio.sleep(0.1)
        first_cost = watcher.cost["full"]
        await asyncio.sleep(2.0)
        calls0, reads0, t0 = watcher.meter.total, dict(watcher.reads), time.monotonic()
        events0, used0 = watcher.events_seen, watcher.events_used
        load0 = os.getloadavg()[0]
        spacing = max(7.0, (minutes * 60 - 15) / samples) if spacing is None else spacing
        latencies = await latency_samples(slack, channel, samples, watcher, spacing)
        remaining = minutes * 60 - (time.monotonic() - t0)
        if remaining > 0:
            await asyncio.sleep(remaining)
        elapsed = time.monotonic() - t0
        _dump(watcher, t0)
        calls = watcher.meter.total - calls0
        reads = {k: watcher.reads[k] - reads0.get(k, 0) for k in watcher.reads}
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        runs = await churner
        store.close()
    return dict(objects=objects, busy=busy, minutes=elapsed / 60, calls=calls, per_minute=calls / (elapsed / 60),
                full_cost=first_cost, targeted_cost=watcher.cost["targeted"], reads=reads, latencies=latencies,
                runs=runs, full_seconds=statistics.median(watcher.durations["full"] or [0]),
                targeted_seconds=statistics.median(watcher.durations["targeted"] or [0]),
                events=watcher.events_seen - events0, used=watcher.events_used - used0,
                load=(load0, os.getloadavg()[0]), spacing=spacing)


def _dump(watcher, t0: float) -> None:
    """Every read and every event after `t0`, to stderr: where a slow sample's time went."""
    from collections import Counter

    print("reads (s after the first sample's start): kind started read_done done calls window posted urgent_at",
          file=sys.stderr)
    for r in watcher.trace:
        if r.started >= t0:
            print(f"  {r.kind:8} {r.started - t0:7.2f} {_s(r.read_done and r.read_done - t0):>7} "
                  f"{_s(r.done and r.done - t0):>7} {r.calls:3} {r.window:3} {r.posted} "
                  f"{_s(r.urgent_at and r.urgent_at - t0)}", file=sys.stderr)
    counts = Counter(name for t, name, _ in watcher.arrivals if t >= t0)
    print(f"events by name: {dict(counts.most_common())}", file=sys.stderr)


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    with prefect_and_slack(args.prefect_api_url, "cbot-watch-calls-") as (slack, work):
        row = asyncio.run(measure(slack, f"sqlite:///{work / 'calls.db'}", args.objects, args.minutes, args.samples,
                                  args.spacing))
    samples = row["latencies"]
    lat = [s["total"] for s in samples]
    reads = row["reads"]
    print("| Objects | Busy pool runs | Minutes | Full reads | Targeted reads | Deferred | Events (used) "
          "| Calls per full / targeted read | Seconds per full / targeted read | API calls/min | Target "
          "| Event → post median / max | Target |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {row['objects']} | {row['runs']} | {row['minutes']:.1f} | {reads['full']} | {reads['targeted']} | "
          f"{reads['deferred']} | {row['events']} ({row['used']}) | {row['full_cost']} / {row['targeted_cost']} | "
          f"{row['full_seconds']:.1f} / {row['targeted_seconds']:.1f} | "
          f"{row['per_minute']:.0f} | ≤ {TARGET_CALLS} | "
          f"{statistics.median(lat):.1f} s / {max(lat):.1f} s | < {TARGET_LATENCY:g} s |")
    print(f"\nSamples {row['spacing']:.0f} s apart (each: a new pool, queue, deployment and run, a pause, a resume). "
          f"Load average (1 min) at the first sample / at the end: {row['load'][0]:.1f} / {row['load'][1]:.1f} "
          f"on {os.cpu_count()} cores")
    print("\nEvery sample: seconds after the pause call at which the pause event reached the watcher, the read "
          "that posted began and finished reading, and the post was sent (kind: full = a full read, targeted = "
          "after it, urgent = beside a running full read)")
    print("| # | Event → post | Event received | Read started | Read done | Post sent | Read kind |")
    print("|---|---|---|---|---|---|---|")
    for i, s in enumerate(samples, 1):
        print(f"| {i} | {s['total']:.2f} | {_s(s['arrived'])} | {_s(s['read_started'])} | {_s(s['read_done'])} "
              f"| {_s(s['posted'])} | {s['kind']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
