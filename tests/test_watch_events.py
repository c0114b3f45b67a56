"""The event follower on the real Prefect server: events wake the watcher; a dropped stream reconnects
with backoff, and the gap is read back through /api/events/filter."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from prefect.events.clients import get_events_subscriber

from bot.watch.events import EventFollower
from tests.test_prefect_ops_live import poll


async def _pause_a_pool() -> None:
    pool = f"watch-events-{uuid.uuid4().hex[:8]}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        await client.update_work_pool(pool, WorkPoolUpdate(is_paused=True))


async def test_a_dropped_stream_reconnects_and_events_wake_the_watcher(prefect_server):
    woken = []
    attempts = []

    def flaky(event_filter):
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("stream refused")  # the first connection fails, as after a server restart
        return get_events_subscriber(filter=event_filter, reconnection_attempts=1)

    follower = EventFollower(lambda: woken.append(1), subscriber_factory=flaky)
    task = asyncio.ensure_future(follower.run())
    try:
        async def reconnected():
            return len(attempts) >= 2

        await poll(reconnected, timeout=30, every=0.1)
        assert follower.reconnects == 1
        before = len(woken)
        await _pause_a_pool()

        async def woke():
            return len(woken) > before

        await poll(woke, timeout=30, every=0.1)
        assert follower.events >= 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_backfill_reads_the_gap_from_the_events_api(prefect_server):
    woken = []
    follower = EventFollower(lambda: woken.append(1))
    since = datetime.now(UTC) - timedelta(seconds=1)
    await _pause_a_pool()

    async def backfilled():  # events reach /events/filter a moment after they happen
        await follower._backfill(since)
        return woken

    await poll(backfilled, timeout=30)
    assert follower.events >= 1  # counted from the page /events/filter returned
