"""A healthy server with runs coming and going gives no incident posts (false alarms = 0).

Time is compressed 60×: the watcher reads every 0.5 s (30 s in production) with a 10 s wait threshold
(600 s); simulated time is counted in watcher reads (12 reads = 6 minutes), with runs moving all
along. Runs go through a deployment limit (some wait in
AwaitingConcurrencySlot and then start), a pool and queue with limits, a tag limit and a GCL taken
and released through leases, as workers and the engine do. The server is shared with other tests,
so only posts and incident rows about this test's objects count.
"""

from __future__ import annotations

import uuid

from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, TaskRunCreate, WorkPoolCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.states import Completed, Pending, Running

from bot.store import watch as db
from tests.harness import wait_until as _wait_until
from tests.test_watch_e2e import start_bot, stop_bot


def wait_until(check, timeout: float = 120.0, what: str = "condition"):
    """The harness's wait with room for a loaded machine (the shared Prefect server is busy)."""
    return _wait_until(check, timeout, what)

SIMULATED_MINUTES = 6
READS_PER_MINUTE = 2  # one read per 30 simulated seconds


async def test_runs_coming_and_going_give_no_incident(fresh_slack, prefect_api_url, tmp_path):
    prefix = f"healthy-{uuid.uuid4().hex[:8]}"
    pool, queue, tag, gcl = f"{prefix}-pool", f"{prefix}-q", f"{prefix}-tag", f"{prefix}-gcl"
    channel = f"CW{uuid.uuid4().hex[:8]}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process", concurrency_limit=3))
        await client.create_work_queue(name=queue, work_pool_name=pool, concurrency_limit=3)
        await client.create_concurrency_limit(tag=tag, concurrency_limit=2)
        await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=gcl, limit=2))
        flow_id = await client.create_flow_from_name(f"{prefix}-flow")
        dep_id = await client.create_deployment(flow_id=flow_id, name=f"{prefix}-dep", work_pool_name=pool,
                                                work_queue_name=queue, concurrency_limit=2)

        bot = start_bot(fresh_slack, f"sqlite:///{tmp_path / 'bot.db'}", channel,
                        bot_watch_interval_seconds=0.5, bot_watch_wait_seconds=10.0,
                        # time runs ~60x faster here (a read per 0.5 s stands for one per 30 s), so the
                        # call budget does too; at serve's 100 a minute the 12 reads took two minutes
                        bot_watch_max_calls_per_minute=1000)
        try:
            started_ticks = bot.runtime.watcher.ticks
            runs_done = rounds = 0
            while bot.runtime.watcher.ticks < started_ticks + SIMULATED_MINUTES * READS_PER_MINUTE or rounds < 3:
                runs_done += await _one_round(client, dep_id, flow_id, tag, gcl)
                rounds += 1
            reads = bot.runtime.watcher.ticks
            wait_until(lambda: bot.runtime.watcher.ticks >= reads + 2, what="two more reads after the activity")
            rows = [r for r in bot.call(lambda: _rows(bot)) if prefix in r.key]
            posts = [c for c in fresh_slack.calls_to("chat.postMessage") if prefix in str(c.args)]
            print(f"\nhealthy run: {runs_done} runs over {SIMULATED_MINUTES} simulated minutes, "
                  f"{bot.runtime.watcher.ticks - started_ticks} watcher reads, {len(posts)} posts")
            assert runs_done >= 3 * rounds - 1
            assert [r.key for r in rows if r.status != db.WATCHING] == []
            assert posts == []
        finally:
            stop_bot(bot)


async def _rows(bot):
    return db.incident_rows(bot.runtime.store.sessions, (db.WATCHING, db.OPEN, db.RESOLVED))


async def _one_round(client, dep_id, flow_id, tag: str, gcl: str) -> int:
    """Three runs of a deployment limited to 2: two start, one waits for a slot, then all finish."""
    runs = [await client.create_flow_run_from_deployment(dep_id) for _ in range(3)]
    for run in runs:
        await client.set_flow_run_state(run.id, Pending())
    lease = await client.increment_concurrency_slots_with_lease(names=[gcl], slots=1, mode="concurrency",
                                                                lease_duration=60)
    created = await client.request("POST", "/task_runs/", json=TaskRunCreate(
        name="t", task_key="t", dynamic_key=uuid.uuid4().hex, flow_run_id=str(runs[0].id),
        tags=[tag]).model_dump(mode="json"))
    task_id = uuid.UUID(created.json()["id"])
    await client.set_task_run_state(task_id, Running(), force=True)
    task_lease = await client.increment_concurrency_slots_with_lease(
        names=[f"tag:{tag}"], slots=1, mode="concurrency", lease_duration=60,
        holder=ConcurrencyLeaseHolder(type="task_run", id=task_id))
    task_done = False

    async def end_task() -> None:  # as the engine does: the task gives its tag slot back, then ends
        nonlocal task_done
        if not task_done:
            await client.release_concurrency_slots_with_lease(task_lease.json()["lease_id"])
            await client.set_task_run_state(task_id, Completed(), force=True)
            task_done = True

    done = 0
    for _ in range(2):  # the first two hold the slots; the third starts when one finishes
        for run in runs:
            current = await client.read_flow_run(run.id)
            if current.state.type.value == "PENDING":
                await client.set_flow_run_state(run.id, Running())
                if run is runs[0]:
                    await end_task()  # a flow run ends after its tasks, never while one still holds a slot
                await client.set_flow_run_state(run.id, Completed())
                done += 1
            elif current.state.name == "AwaitingConcurrencySlot":
                await client.set_flow_run_state(run.id, Pending())
    await end_task()
    await client.release_concurrency_slots_with_lease(lease.json()["lease_id"])
    return done
