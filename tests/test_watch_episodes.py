"""One incident per episode, and messages that match the numbers (issue 25, problems 3 and 7).

The watcher is driven turn by turn (`tick`) against the real Prefect server, a real store and the
Slack fake through the same SlackPoster `serve` uses, so each step is a condition, not a race.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from slack_sdk.web.async_client import AsyncWebClient

from bot.prefect_ops.changes import DeploymentLimitChange
from bot.slack.watch_poster import SlackPoster
from bot.store import Store
from bot.store import watch as db
from bot.watch.watcher import Watcher
from tests.approvals_support import make_service
from tests.test_watch_detectors import _deployment, _deployment_with_a_waiting_run


def uid() -> str:
    return uuid.uuid4().hex[:8]


def _watcher(slack, tmp_path, channel: str, approvals=None, **options) -> Watcher:
    db_url = f"sqlite:///{tmp_path / 'bot.db'}"
    store = Store.open(db_url)
    poster = SlackPoster(AsyncWebClient(token="xoxb-test", base_url=f"{slack.url}/api/"), channel, store, approvals)
    values = dict(interval=30.0, wait_seconds=0.0, max_posts_per_hour=1000, follow_events=False,
                  confirm_seconds=0.0)
    values.update(options)
    return Watcher(store, poster, **values)


def _top_posts(slack, channel: str, needle: str) -> list[dict]:
    return [c.args for c in slack.calls_to("chat.postMessage")
            if c.args.get("channel") == channel and not c.args.get("thread_ts") and needle in json.dumps(c.args)]


def _updates(slack, channel: str) -> list[dict]:
    return [c.args for c in slack.calls_to("chat.update") if c.args.get("channel") == channel]


async def _paused_pool_with_a_run(client) -> str:
    pool = f"episode-{uid()}"
    await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    dep_id, _ = await _deployment(client, pool)
    await client.create_flow_run_from_deployment(dep_id)
    await client.update_work_pool(pool, WorkPoolUpdate(is_paused=True))
    return pool


async def test_an_incident_that_clears_and_returns_within_the_window_is_one_message(prefect_server, fresh_slack,
                                                                                    tmp_path):
    channel = f"CEP{uid()}"
    watcher = _watcher(fresh_slack, tmp_path, channel, settle_seconds=3600)
    async with get_client() as client:
        pool = await _paused_pool_with_a_run(client)
        await watcher.tick()
        assert len(_top_posts(fresh_slack, channel, pool)) == 1
        for _ in range(2):  # it flaps: resumed (seen so by two reads), then paused again
            await client.update_work_pool(pool, WorkPoolUpdate(is_paused=False))
            await watcher.tick()
            await watcher.tick()
            await client.update_work_pool(pool, WorkPoolUpdate(is_paused=True))
            await watcher.tick()
        assert len(_top_posts(fresh_slack, channel, pool)) == 1
        assert not any("Resolved" in u["text"] for u in _updates(fresh_slack, channel))
        await client.update_work_pool(pool, WorkPoolUpdate(is_paused=False))


async def test_every_post_counts_against_the_hourly_cap_reopened_ones_included(prefect_server, fresh_slack,
                                                                                tmp_path):
    channel = f"CEP{uid()}"
    watcher = _watcher(fresh_slack, tmp_path, channel, settle_seconds=0)
    async with get_client() as client:
        pool = await _paused_pool_with_a_run(client)
        await watcher.tick()
        await client.update_work_pool(pool, WorkPoolUpdate(is_paused=False))
        await watcher.tick()  # no settling window here: resolved
        assert any("Resolved" in u["text"] and pool in json.dumps(u) for u in _updates(fresh_slack, channel))
        # the shared server carries other tests' trouble: spend exactly this hour's posts so far
        watcher.max_posts_per_hour = db.posts_since(watcher.store.sessions, datetime.now(UTC) - timedelta(hours=1))
        await client.update_work_pool(pool, WorkPoolUpdate(is_paused=True))
        await watcher.tick()  # a new episode, but its first post still counts: the hour is spent, rolled up
        assert len(_top_posts(fresh_slack, channel, pool)) == 2
        assert "more concurrency incident" in _top_posts(fresh_slack, channel, pool)[-1]["text"]
        await client.update_work_pool(pool, WorkPoolUpdate(is_paused=False))


async def test_an_applied_fix_shows_at_once_and_a_free_slot_is_never_called_full(prefect_server, fresh_slack,
                                                                                 tmp_path):
    channel = f"CEP{uid()}"
    service = make_service(f"sqlite:///{tmp_path / 'bot.db'}")  # one store, as in `serve`
    watcher = _watcher(fresh_slack, tmp_path, channel, approvals=service, settle_seconds=3600)
    pool = f"episode-dep-{uid()}"
    async with get_client() as client:
        dep_id, dep_name, first, second = await _deployment_with_a_waiting_run(client, pool)
        await watcher.tick()
        [post] = _top_posts(fresh_slack, channel, dep_name)
        assert "limit 1, 1 in use" in post["text"]
        proposal = await service.create_proposal(DeploymentLimitChange(action="set", deployment=dep_name, limit=2),
                                                 "watcher")
        key = f"waiting_on_limit:deployment:{dep_name}"
        db.set_incident(watcher.store.sessions, key, (db.OPEN,), proposal_id=proposal.id)
        assert (await service.approve(proposal.id, "UAPPROVER")).outcome == "applied"
        await watcher.tick()
        [update] = [u for u in _updates(fresh_slack, channel) if dep_name in json.dumps(u)][-1:]
        text = json.dumps(update["blocks"], ensure_ascii=False)
        assert "fix applied" in text and "limit 1 → 2" in text and "<@UAPPROVER>" in text
        assert "waiting for a worker to start" in text
        await watcher.tick()
        later = [u for u in _updates(fresh_slack, channel) if dep_name in json.dumps(u)]
        assert not any("limit 2, 1 in use" in json.dumps(u) for u in later)  # never "full" at 1 of 2


class _Clock:
    """The watcher's clock, moved by hand: each read is a step, never a race against wall time."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def step(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def _set_gcl(client, name: str, **values) -> None:
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    await client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(**values))


async def test_a_waiter_seen_through_a_blink_is_still_confirmed(prefect_server, fresh_slack, tmp_path):
    """Budget-spaced reads can land in the moment a slot passes from one waiter to the next: the
    sighting before that moment still confirms the trouble (the soak's busy tag was missed so)."""
    channel = f"CEP{uid()}"
    clock = _Clock()
    watcher = _watcher(fresh_slack, tmp_path, channel, confirm_seconds=5.0, settle_seconds=60.0, clock=clock)
    pool = f"episode-blink-{uid()}"
    async with get_client() as client:
        dep_id, dep_name, first, second = await _deployment_with_a_waiting_run(client, pool)
        await watcher.tick()  # seen once: not yet confirmed
        assert not _top_posts(fresh_slack, channel, dep_name)
        await _set_gcl(client, f"deployment:{dep_id}", limit=2)  # a free slot for a moment
        clock.step(10)
        await watcher.tick()
        await _set_gcl(client, f"deployment:{dep_id}", limit=1)  # full again, the same run still waiting
        clock.step(10)
        await watcher.tick()
        assert len(_top_posts(fresh_slack, channel, dep_name)) == 1


async def test_a_condition_timed_by_its_sightings_starts_again_after_a_blink(prefect_server, fresh_slack, tmp_path):
    """Where Prefect keeps no start time (a global limit full with nobody named), `since` is the
    watcher's own first sighting: after a read without it, the condition has to last its threshold anew."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    channel = f"CEP{uid()}"
    clock = _Clock()
    watcher = _watcher(fresh_slack, tmp_path, channel, wait_seconds=15.0, settle_seconds=60.0, clock=clock)
    name = f"episode-gcl-{uid()}"
    async with get_client() as client:
        await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        await _set_gcl(client, name, active_slots=1)
        await watcher.tick()
        await _set_gcl(client, name, active_slots=0)
        clock.step(10)
        await watcher.tick()
        await _set_gcl(client, name, active_slots=1)
        clock.step(10)  # 20 s after the first sighting, but only just seen again
        await watcher.tick()
        assert not _top_posts(fresh_slack, channel, name)
        clock.step(20)  # now it has lasted its 15 s
        await watcher.tick()
        assert len(_top_posts(fresh_slack, channel, name)) == 1
        await _set_gcl(client, name, active_slots=0)
