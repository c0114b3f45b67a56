"""A change of configuration is read and posted at once, even while a full read is stuck (issue 25, point 5:
each event-to-post under 10 s at 1,000 objects).

A full read takes seconds on a big or busy server. Here it is made slow for real: a proxy in front of the
real Prefect server holds the reply to the call every full read starts with (the list of all global
concurrency limits), so no full read can finish. The pool is paused on the real server, its event
reaches the watcher through Prefect's real event stream, and the post lands in the Slack fake through
the SlackPoster `serve` uses. Nothing in the watcher is patched.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.watch_poster import SlackPoster
from bot.store import Store
from bot.watch.watcher import Watcher
from tests.test_prefect_ops_live import poll
from tests.test_watch_detectors import _deployment
from tests.test_watch_reads import _event

FULL_READ_FIRST_CALL = r"/v2/concurrency_limits/filter"  # read_all_gcls: a targeted pool read never sends it


def _posts(slack, channel: str, needle: str) -> list[dict]:
    return [c.args for c in slack.calls_to("chat.postMessage")
            if c.args.get("channel") == channel and not c.args.get("thread_ts") and needle in json.dumps(c.args)]


async def test_a_pause_during_a_stuck_full_read_is_posted_without_waiting_for_it(prefect_server, proxy,
                                                                                fresh_slack, tmp_path):
    channel = f"CU{uuid.uuid4().hex[:8]}"
    store = Store.open(f"sqlite:///{tmp_path / 'bot.db'}")
    poster = SlackPoster(AsyncWebClient(token="xoxb-test", base_url=f"{fresh_slack.url}/api/"), channel, store)
    # interval 1 s: a full read is always due, so without the fix every turn is a full read
    watcher = Watcher(store, poster, interval=1.0, wait_seconds=3600.0, max_posts_per_hour=1000,
                      max_calls_per_minute=10_000, api_url=proxy.url)
    running = asyncio.ensure_future(watcher.run())
    try:
        async def first_full_read():
            return watcher.reads["full"] >= 1

        await poll(first_full_read, timeout=120, every=0.1)
        pool = f"urgent-{uuid.uuid4().hex[:8]}"
        async with get_client() as client:  # straight to the real server, not through the proxy
            await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
            dep_id, _ = await _deployment(client, pool)
            await client.create_flow_run_from_deployment(dep_id)

            held_before = proxy.count("POST", FULL_READ_FIRST_CALL, forwarded=False)
            proxy.add("POST", FULL_READ_FIRST_CALL, "hold_after", seconds=300)

            async def a_full_read_is_held():
                return proxy.count("POST", FULL_READ_FIRST_CALL, forwarded=False) > held_before

            await poll(a_full_read_is_held, timeout=60, every=0.05)
            full_reads = watcher.reads["full"]  # full reads start with the held call: none can finish now
            await client.update_work_pool(pool, WorkPoolUpdate(is_paused=True))

            async def posted():
                return _posts(fresh_slack, channel, pool)

            async def read_that_posted():  # its trace is kept a moment after the message is sent
                return [r for r in watcher.trace if pool in r.posted_names]

            await poll(posted, timeout=90, every=0.1)
            assert watcher.reads["full"] == full_reads  # posted while every full read was stuck
            assert [r.kind for r in await poll(read_that_posted, timeout=30, every=0.05)] == ["urgent"]

            proxy.clear()  # the server answers again: full reads finish and keep the same single message

            async def a_full_read_finished():
                return watcher.reads["full"] > full_reads

            await poll(a_full_read_finished, timeout=90, every=0.1)
            assert len(_posts(fresh_slack, channel, pool)) == 1
            await client.update_work_pool(pool, WorkPoolUpdate(is_paused=False))
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        store.close()


async def test_a_change_does_not_wait_for_a_full_read_that_waits_for_budget(prefect_server, fresh_slack, tmp_path):
    """The minute's calls leave no room for the full read that is due, but enough for a targeted read: a pool
    paused now is read and posted at once; the full read waits for budget."""
    channel = f"CB{uuid.uuid4().hex[:8]}"
    store = Store.open(f"sqlite:///{tmp_path / 'bot.db'}")
    poster = SlackPoster(AsyncWebClient(token="xoxb-test", base_url=f"{fresh_slack.url}/api/"), channel, store)
    cap = 400
    watcher = Watcher(store, poster, interval=1.0, wait_seconds=3600.0, max_posts_per_hour=1000,
                      follow_events=False, max_calls_per_minute=cap)
    try:
        await watcher.step()  # the first full read: measures what one costs
        full_cost, full_reads = watcher.cost["full"], watcher.reads["full"]
        async with get_client() as client:
            pool = f"budget-{uuid.uuid4().hex[:8]}"
            created = await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
            dep_id, _ = await _deployment(client, pool)
            await client.create_flow_run_from_deployment(dep_id)
            await client.update_work_pool(pool, WorkPoolUpdate(is_paused=True))
        # the watcher's own client spends the minute's calls, as a burst of its other reads would, until one
        # call fewer than a full read is left (a targeted read of the pools costs less: it is part of one)
        async with watcher.client_factory() as client:
            while watcher.meter.last_minute() < cap - full_cost + 1:
                await client.hello()
        # the event Prefect's stream delivers for the pause (the first test follows the real stream)
        assert watcher.note_event(_event("prefect.work-pool.paused", f"prefect.work-pool.{created.id}", []))
        await watcher.step()
        assert len(_posts(fresh_slack, channel, pool)) == 1
        assert watcher.reads["full"] == full_reads and watcher.reads["targeted"] == 1
    finally:
        store.close()
