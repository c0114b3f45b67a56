"""Reads that scale and survive outages (issue 25, problems 6 and 8).

Calls are counted by the watcher's own metered client (an httpx event hook), faults come from the
forwarding proxy in front of the real Prefect server (tests/faults_support.py); nothing is patched.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.events.schemas.events import ReceivedEvent, RelatedResource, Resource
from prefect.states import Running
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.watch_poster import SlackPoster
from bot.store import Store
from bot.watch.budget import CallMeter, few_retries, metered_client_factory
from bot.watch.reads import read_snapshot
from bot.watch.targets import targets_of
from bot.watch.watcher import Watcher
from tests.test_watch_detectors import _deployment


def uid() -> str:
    return uuid.uuid4().hex[:8]


def _watcher(slack, tmp_path, **options) -> Watcher:
    store = Store.open(f"sqlite:///{tmp_path / 'bot.db'}")
    poster = SlackPoster(AsyncWebClient(token="xoxb-test", base_url=f"{slack.url}/api/"), f"CR{uid()}", store)
    values = dict(interval=1.0, wait_seconds=0.0, max_posts_per_hour=1000, follow_events=False)
    values.update(options)
    return Watcher(store, poster, **values)


async def _calls_of_a_full_read(meter: CallMeter) -> int:
    before = meter.total
    async with metered_client_factory(meter, 30.0)() as client:
        await read_snapshot(client)
    return meter.total - before


class _PathMeter(CallMeter):
    """A call meter that also keeps each request's path, to see which objects a read asked about."""

    def __init__(self) -> None:
        super().__init__(10_000)
        self.paths: list[str] = []

    async def on_request(self, request) -> None:
        await super().on_request(request)
        self.paths.append(request.url.path)


async def test_a_full_read_costs_the_same_however_many_pools_there_are(prefect_server):
    """Occupancy comes from one paged read of active runs, not one concurrency_status call per pool.

    The worker's Prefect server is shared with other modules, so between the two reads a listing may
    grow past a page or another module's run may turn Late (one more pool-list call): the cost may move
    by a call or two, never by one call per added pool, and no call names an added pool."""
    meter = _PathMeter()
    await _calls_of_a_full_read(meter)  # warm: capabilities and the like are read once
    before = await _calls_of_a_full_read(meter)
    added: list[str] = []
    async with get_client() as client:
        for _ in range(6):
            pool = f"reads-pool-{uid()}"
            created = await client.create_work_pool(WorkPoolCreate(name=pool, type="process", concurrency_limit=3))
            added += [pool, str(created.id)]
            dep_id, _ = await _deployment(client, pool)
            run = await client.create_flow_run_from_deployment(dep_id)
            await client.set_flow_run_state(run.id, Running(), force=True)
    first_path = len(meter.paths)
    after = await _calls_of_a_full_read(meter)
    asked = meter.paths[first_path:]
    assert [path for path in asked if any(key in path for key in added)] == []
    assert after <= before + 2 < before + len(added) // 2, (before, after, asked)


def _event(name: str, resource: str, related: list[tuple[str, str]]) -> ReceivedEvent:
    now = datetime.now(UTC)
    return ReceivedEvent(occurred=now, received=now, event=name, resource=Resource({"prefect.resource.id": resource}),
                         related=[RelatedResource({"prefect.resource.id": rid, "prefect.resource.role": role})
                                  for rid, role in related], id=uuid.uuid4())


def test_heartbeats_and_worker_chatter_name_nothing_and_events_name_their_objects():
    run = f"prefect.flow-run.{uuid.uuid4()}"
    pool = ("prefect.work-pool.abc", "work-pool")
    dep_id = uuid.uuid4()
    assert targets_of(_event("prefect.flow-run.heartbeat", run, [pool])) is None
    assert targets_of(_event("prefect.worker.submitted-flow-run", "prefect.worker.process.w", [pool])) is None
    assert targets_of(_event("prefect.task-run.Running", f"prefect.task-run.{uuid.uuid4()}", [])) is None  # untagged
    found = targets_of(_event("prefect.flow-run.Running", run, [pool, (f"prefect.deployment.{dep_id}", "deployment")]))
    assert found.pools and found.deployments == {dep_id} and not found.full
    tagged = targets_of(_event("prefect.task-run.Pending", f"prefect.task-run.{uuid.uuid4()}",
                               [("prefect.tag.db", "tag"), (run, "flow-run")]))
    assert tagged.tags == {"db"} and not tagged.pools


async def test_a_429_pauses_the_watcher_for_its_retry_after(prefect_server, proxy, fresh_slack, tmp_path):
    watcher = _watcher(fresh_slack, tmp_path, api_url=proxy.url)
    proxy.add("POST", r"/flow_runs/filter", "fail", status=429, headers={"Retry-After": "7"}, times=1)
    next_in = await watcher.step()
    assert watcher.reads["throttled"] == 1 and next_in >= 7
    seen = len(proxy.seen)
    assert await watcher.step() > 0 and len(proxy.seen) == seen  # still inside Retry-After: no call at all


async def test_a_hung_server_costs_one_retry_not_the_clients_default_five(prefect_server, proxy):
    meter = CallMeter(10_000)
    proxy.add("POST", r"/work_pools/filter", "hold_before", seconds=30)  # sent once per read
    with pytest.raises(Exception):  # noqa: B017 - the read fails (a timeout); what matters is how often it tried
        async with metered_client_factory(meter, 1.0, proxy.url)() as client:
            with few_retries(1):
                await read_snapshot(client)
    assert proxy.count("POST", r"/work_pools/filter", forwarded=False) == 2


async def test_the_lease_is_renewed_during_a_long_read_and_a_lost_lease_stops_the_work(prefect_server,
                                                                                       fresh_slack, tmp_path):
    leader = _watcher(fresh_slack, tmp_path)
    assert await leader.step() is not None and leader.leading
    standby = _watcher(fresh_slack, tmp_path)

    async def standby_never_leads() -> None:
        for _ in range(8):  # across more than a whole lease
            await standby.step()
            assert not standby.leading
            await asyncio.sleep(leader.lease_seconds / 6)

    long_read = asyncio.ensure_future(leader._leading(asyncio.sleep(leader.lease_seconds * 1.4)))
    await standby_never_leads()
    await long_read

    future = _watcher(fresh_slack, tmp_path, clock=lambda: datetime.now(UTC) + timedelta(hours=1))
    work_done = []

    async def work() -> None:
        await asyncio.sleep(leader.lease_seconds)
        work_done.append(1)  # would post: must not happen once another replica leads

    running = asyncio.ensure_future(leader._leading(work()))
    await future.step()  # a replica whose clock says the lease expired takes over
    assert future.leading
    with pytest.raises(RuntimeError, match="lost the watcher lease"):
        await running
    assert work_done == []
