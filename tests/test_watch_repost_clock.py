"""The watcher posts an open incident once, also long past the re-post window (issue 23, point 9).

With both "already posted" checks removed (the unposted filter and the claim's `message_ts IS NULL`),
every other watcher test stayed green: their runs end before REPOST_AFTER passes. Here the
watcher's injected clock jumps past the window between reads, against the real Prefect server (a
paused pool with a run due) and the real SlackPoster talking to the strict test Slack.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from prefect import get_client
from prefect.client.schemas.actions import WorkPoolUpdate
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.watch_poster import SlackPoster
from bot.store import Store
from bot.watch.watcher import REPOST_AFTER, Watcher
from tests.harness import BOT_TOKEN
from tests.test_watch_detectors import _paused_pool_with_a_due_run


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_an_open_incident_is_not_posted_again_past_the_repost_window(prefect_api_url, slack_api, tmp_path):
    slack_api.reset()
    pool = f"repost-{uuid.uuid4().hex[:8]}"
    async with get_client() as client:
        await _paused_pool_with_a_due_run(client, pool)
    store = Store.open(f"sqlite:///{tmp_path / 'watch.db'}")
    channel = "CWATCH"
    poster = SlackPoster(AsyncWebClient(token=BOT_TOKEN, base_url=f"{slack_api.url}/api/"), channel, store)
    clock = Clock()
    watcher = Watcher(store, poster, interval=1.0, wait_seconds=0.0, max_posts_per_hour=1000, clock=clock,
                      follow_events=False, confirm_seconds=0.0, settle_seconds=3600.0)

    def posts() -> int:
        return sum(1 for c in slack_api.calls_to("chat.postMessage")
                   if c.args.get("channel") == channel and not c.args.get("thread_ts") and pool in str(c.args))

    try:
        for step in (timedelta(0), REPOST_AFTER + timedelta(seconds=1), 3 * REPOST_AFTER, timedelta(hours=2)):
            clock.now += step
            await watcher.tick()
            assert posts() == 1, f"{posts()} posts after {clock.now}"
    finally:
        async with get_client() as client:
            await client.update_work_pool(pool, WorkPoolUpdate(is_paused=False))
