"""What-if lines per kind are right or say what the bot cannot see (issue 25, problem 5)."""

from __future__ import annotations

import uuid

from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, WorkPoolCreate
from prefect.states import Running

from bot.prefect_ops.changes import GlobalLimitChange, TagLimitChange, WorkPoolLimitChange
from bot.prefect_ops.whatif import what_if
from bot.watch import detect, read_snapshot
from tests.test_watch_detectors import _deployment


def uid() -> str:
    return uuid.uuid4().hex[:8]


async def test_a_plus_one_that_leaves_a_backlog_says_how_many_still_wait_and_what_clears_it(prefect_server):
    pool = f"whatif-backlog-{uid()}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process", concurrency_limit=1))
        dep_id, _ = await _deployment(client, pool)
        holder = await client.create_flow_run_from_deployment(dep_id)
        await client.set_flow_run_state(holder.id, Running(), force=True)
        for _ in range(3):
            await client.create_flow_run_from_deployment(dep_id)
        line = await what_if(client, WorkPoolLimitChange(action="set", pool=pool, limit=2))
        assert "approving lets 1 waiting run start now" in line
        assert "2 still wait, a limit of 4 would clear the backlog now" in line
        [incident] = [i for i in detect(await read_snapshot(client), 0) if i.object_name == pool
                      and i.kind == "waiting_on_limit"]
        assert "+1 lets one start and 2 still wait; a limit of 4 clears the backlog now" in incident.evidence


async def test_a_global_limit_line_says_waiters_inside_concurrency_cannot_be_seen(prefect_server):
    name = f"whatif-gcl-{uid()}"
    async with get_client() as client:
        await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        await client.increment_concurrency_slots_with_lease(names=[name], slots=1, mode="concurrency",
                                                            lease_duration=600)
        line = await what_if(client, GlobalLimitChange(action="update", name=name, limit=2))
        assert "nothing waits" not in line and "cannot say who is blocked" in line
        [incident] = [i for i in detect(await read_snapshot(client), 0) if i.object_name == name]
        assert any("inside `concurrency()` cannot be seen" in e for e in incident.evidence)


async def test_a_tag_limit_of_zero_fails_new_tasks_instead_of_queueing_them(prefect_server):
    tag = f"whatif-zero-{uid()}"
    async with get_client() as client:
        await client.create_concurrency_limit(tag=tag, concurrency_limit=2)
        line = await what_if(client, TagLimitChange(action="set", tag=tag, limit=0))
        assert "fails at once" in line and "still wait" not in line
