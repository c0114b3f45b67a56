"""`python -m bench.watch_latency`: time from a Prefect event to the watcher's Slack post.

Each sample pauses a work pool that has a run due (a `prefect.work-pool.paused` event) and waits for
the incident message in the test Slack. Samples start at a random moment relative to the watcher's
reads, as real events do. Two modes, the same watcher code as `serve`:
- event stream: the watcher follows /api/events/out (interval 30 s, so the poll cannot be what posts);
- polling only: no event stream, `--poll-interval` seconds between reads (target: under one interval).

    python -m bench.watch_latency [--samples 3] [--poll-interval 10] [--prefect-api-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid

from bench.watch_setup import prefect_and_slack

EVENT_INTERVAL = 30.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.watch_latency", description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=3, help="incidents per mode (default 3)")
    p.add_argument("--poll-interval", type=float, default=10.0, help="interval for the polling-only mode")
    p.add_argument("--prefect-api-url", help="use this Prefect server instead of starting one")
    return p.parse_args(argv)


async def _trouble(client, pool: str) -> float:
    """A pool with a run due, then paused: returns the moment of the pause."""
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate

    await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    flow_id = await client.create_flow_from_name(f"{pool}-flow")
    dep_id = await client.create_deployment(flow_id=flow_id, name=f"{pool}-dep", work_pool_name=pool)
    await client.create_flow_run_from_deployment(dep_id)
    started = time.monotonic()
    await client.update_work_pool(pool, WorkPoolUpdate(is_paused=True))
    return started


async def _mode(slack, store_url: str, interval: float, follow_events: bool, samples: int) -> list[float]:
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolUpdate
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.slack.watch_poster import SlackPoster
    from bot.store import Store
    from bot.watch.watcher import Watcher

    store = Store.open(store_url)
    channel = f"CBENCH{uuid.uuid4().hex[:6]}"
    poster = SlackPoster(AsyncWebClient(token="xoxb-bench", base_url=f"{slack.url}/api/"), channel, store)
    watcher = Watcher(store, poster, interval=interval, wait_seconds=0.0, max_posts_per_hour=1000,
                      follow_events=follow_events)
    task = asyncio.ensure_future(watcher.run())
    latencies = []
    try:
        deadline = time.monotonic() + 120
        while not watcher.leading or watcher.ticks < 1:
            if time.monotonic() > deadline:
                raise RuntimeError("the watcher never completed a read (is Prefect up?)")
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)  # let the event stream connect
        async with get_client() as client:
            for _ in range(samples):
                await asyncio.sleep(random.uniform(0, interval if not follow_events else 2.0))  # a random phase
                pool = f"bench-watch-{uuid.uuid4().hex[:8]}"
                started = await _trouble(client, pool)
                while not any(pool in str(c.args) and c.args.get("channel") == channel
                              for c in slack.calls_to("chat.postMessage")):
                    if time.monotonic() - started > 3 * interval + 30:
                        raise RuntimeError(f"no post for {pool} after {time.monotonic() - started:.0f} s")
                    await asyncio.sleep(0.02)
                latencies.append(time.monotonic() - started)
                print(f"{'events' if follow_events else 'polling'}: {latencies[-1]:.2f} s", file=sys.stderr)
                await client.update_work_pool(pool, WorkPoolUpdate(is_paused=False))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        store.close()
    return latencies


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    with prefect_and_slack(args.prefect_api_url, "cbot-watch-bench-") as (slack, work):
        streamed = asyncio.run(_mode(slack, f"sqlite:///{work / 'events.db'}", EVENT_INTERVAL, True, args.samples))
        polled = asyncio.run(_mode(slack, f"sqlite:///{work / 'poll.db'}", args.poll_interval, False,
                                   args.samples))
    print("| Measure | Target | Median | Max |")
    print("|---|---|---|---|")
    print(f"| Prefect event → Slack post, event stream (interval {EVENT_INTERVAL:g} s) | < 10 s | "
          f"{statistics.median(streamed):.2f} s | {max(streamed):.2f} s |")
    print(f"| Prefect event → Slack post, polling only (interval {args.poll_interval:g} s) | "
          f"< {args.poll_interval:g} s | {statistics.median(polled):.2f} s | {max(polled):.2f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
