"""prefect_ops against the real Prefect server, with real occupancy.

A subprocess flow really holds a GCL slot through `concurrency()` and runs two tasks under a tag
limit of 1 (one holds, one waits); deployment, pool and queue states are driven through the
client as the engine does; a leaked tag slot is made by leaving a lease behind a Completed task.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.actions import (
    FlowRunCreate,
    GlobalConcurrencyLimitCreate,
    TaskRunCreate,
    WorkPoolCreate,
)
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.states import Completed, Pending, Running

from bot.prefect_ops import (
    NotFound,
    concurrency_map,
    diagnose_run,
    find_leaked_slots,
    list_global_limits,
    read_limit,
    resolve_name,
)

HOLDER_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from prefect import flow, task
    from prefect.concurrency.sync import concurrency

    gcl, tag, stop = sys.argv[1], sys.argv[2], Path(sys.argv[3])

    @task(tags=[tag])
    def tagged(i: int) -> int:
        deadline = time.monotonic() + 120
        while not stop.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        return i

    @flow(name="ops-slot-holder")
    def hold() -> None:
        with concurrency(gcl, occupy=1, strict=True):
            futures = [tagged.submit(i) for i in range(2)]
            for future in futures:
                future.result()

    hold()
""")


def uid() -> str:
    return uuid.uuid4().hex[:8]


async def poll(check, timeout: float = 90.0, every: float = 0.5):
    """Await `check()` until it returns something truthy; fail loudly at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s (last value {value!r})")
        await asyncio.sleep(every)


@pytest.fixture
def holder_process(prefect_api_url, tmp_path: Path):
    """Start the holder flow in a subprocess; it ends when the stop file appears."""
    started: list[tuple[subprocess.Popen, Path]] = []

    def start(gcl: str, tag: str) -> subprocess.Popen:
        script, stop = tmp_path / "hold.py", tmp_path / "stop"
        script.write_text(HOLDER_SCRIPT)
        env = dict(os.environ, PREFECT_API_URL=prefect_api_url)
        proc = subprocess.Popen(
            [sys.executable, str(script), gcl, tag, str(stop)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append((proc, stop))
        return proc

    yield start
    for proc, stop in started:
        stop.touch()
        try:
            proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_real_gcl_and_tag_holders_are_named_and_diagnosed(prefect_server, holder_process):
    gcl, tag = f"ops-gcl-{uid()}", f"ops-tag-{uid()}"
    async with get_client() as client:
        await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=gcl, limit=1))
        await client.create_concurrency_limit(tag=tag, concurrency_limit=1)
        holder_process(gcl, tag)

        async def both_held():
            g = await client.read_global_concurrency_limit_by_name(gcl)
            t = await client.read_concurrency_limit_by_tag(tag)
            return g.active_slots == 1 and len(t.active_slots) == 1

        await poll(both_held)

        async def gcl_row_with_holder():  # events arrive a few seconds after the acquisition
            rows = [r for r in await list_global_limits(client) if r.name == gcl]
            return rows[0] if rows and rows[0].holders else None

        gcl_row = await poll(gcl_row_with_holder, timeout=30)
        server_gcl = await client.read_global_concurrency_limit_by_name(gcl)
        assert (gcl_row.limit, gcl_row.active_slots) == (server_gcl.limit, server_gcl.active_slots) == (1, 1)
        [flow_holder] = gcl_row.holders
        assert flow_holder.run_type == "flow_run" and flow_holder.state == "Running"
        flow_run = await client.read_flow_run(flow_holder.id)

        cmap = await concurrency_map(client)
        tag_row = next(r for r in cmap.of_kind("tag") if r.name == tag)
        server_tag = await client.read_concurrency_limit_by_tag(tag)
        assert tag_row.limit == 1 and tag_row.active_slots == len(server_tag.active_slots) == 1
        [task_holder] = tag_row.holders
        assert task_holder.run_type == "task_run" and task_holder.id == server_tag.active_slots[0]
        assert task_holder.state == "Running"
        assert tag_row.full

        async def tag_blocks():  # the second task run exists and waits for the tag
            diagnosis = await diagnose_run(client, flow_run.name)
            return diagnosis if diagnosis.blocker else None

        diagnosis = await poll(tag_blocks, timeout=30)
        assert diagnosis.run_state == "Running"
        assert diagnosis.blocker.check == "tag_limit" and diagnosis.blocker.object_name == tag
        assert task_holder.name in diagnosis.blocker.summary
        assert diagnosis.blocker.fix.proposed == "2"


async def _deployment(client, pool: str, concurrency_limit: int | None = None, queue: str | None = None):
    flow_id = await client.create_flow_from_name(f"ops-flow-{uid()}")
    name = f"ops-dep-{uid()}"
    dep_id = await client.create_deployment(
        flow_id=flow_id, name=name, work_pool_name=pool, work_queue_name=queue, concurrency_limit=concurrency_limit
    )
    flow = await client.read_flow(flow_id)
    return dep_id, f"{flow.name}/{name}"


async def test_deployment_limit_holder_and_waiting_run(prefect_server):
    pool = f"ops-pool-{uid()}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        dep_id, dep_name = await _deployment(client, pool, concurrency_limit=1)
        first = await client.create_flow_run_from_deployment(dep_id)
        second = await client.create_flow_run_from_deployment(dep_id)
        accepted = await client.set_flow_run_state(first.id, Pending())  # as a worker does
        rejected = await client.set_flow_run_state(second.id, Pending())
        assert accepted.status.value == "ACCEPT" and rejected.status.value != "ACCEPT"
        second = await client.read_flow_run(second.id)
        assert second.state.name == "AwaitingConcurrencySlot"

        cmap = await concurrency_map(client, ["deployment", "work_pool"])
        row = next(r for r in cmap.of_kind("deployment") if r.name == dep_name)
        server = (await client.read_deployment(dep_id)).global_concurrency_limit
        assert (row.limit, row.active_slots) == (server.limit, server.active_slots) == (1, 1)
        assert [h.id for h in row.holders] == [first.id] and row.holders[0].state == "Pending"
        assert row.waiting == 1 and row.waiting_runs[0].id == second.id
        assert row.collision_strategy == "ENQUEUE"
        pool_row = next(r for r in cmap.of_kind("work_pool") if r.name == pool)
        pool_status = await client.read_work_pool_concurrency_status(pool)
        assert pool_row.active_slots == pool_status.active_slots == 1

        by_run = await diagnose_run(client, second.name)
        assert by_run.blocker.check == "deployment_limit" and by_run.blocker.object_name == dep_name
        assert first.name in by_run.blocker.summary and "ENQUEUE" in by_run.blocker.summary
        by_deployment = await diagnose_run(client, dep_name.split("/", 1)[1])
        assert by_deployment.run_id == second.id and by_deployment.blocker.check == "deployment_limit"

        await client.set_flow_run_state(first.id, Running())
        await client.set_flow_run_state(first.id, Completed())
        freed = await read_limit(client, "deployment", dep_name)
        assert freed.active_slots == 0 and freed.holders == []


async def test_pool_with_limit_and_no_worker(prefect_server):
    pool = f"ops-noworker-{uid()}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process", concurrency_limit=1))
        dep_id, _ = await _deployment(client, pool)
        run = await client.create_flow_run_from_deployment(dep_id)

        diagnosis = await diagnose_run(client, str(run.id))
        assert diagnosis.blocker.check == "work_pool" and diagnosis.blocker.object_name == pool
        assert "no online worker" in diagnosis.blocker.summary
        assert diagnosis.blocker.fix.action == "start_worker"
        [deployment_check] = [f for f in diagnosis.findings if f.check == "deployment_limit"]
        assert not deployment_check.blocking

        row = await read_limit(client, "work_pool", pool)
        server = await client.read_work_pool(pool)
        assert (row.limit, row.active_slots) == (server.concurrency_limit, server.active_slots or 0) == (1, 0)
        assert row.waiting == 1 and row.waiting_runs[0].id == run.id


async def test_paused_queue_is_the_blocker(prefect_server):
    pool, queue = f"ops-qpool-{uid()}", f"ops-q-{uid()}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        created = await client.create_work_queue(name=queue, work_pool_name=pool, concurrency_limit=2)
        await client.update_work_queue(created.id, is_paused=True)
        dep_id, _ = await _deployment(client, pool, queue=queue)
        run = await client.create_flow_run_from_deployment(dep_id)

        diagnosis = await diagnose_run(client, run.name)
        assert diagnosis.blocker.check == "work_queue"
        assert diagnosis.blocker.object_name == f"{pool}/{queue}" and "paused" in diagnosis.blocker.summary
        row = await read_limit(client, "work_queue", f"{pool}/{queue}")
        assert row.paused and row.limit == 2 and row.active_slots == 0 and row.waiting == 1


async def test_leaked_tag_slot_held_by_completed_task_run(prefect_server):
    tag = f"ops-leak-{uid()}"
    async with get_client() as client:
        await client.create_concurrency_limit(tag=tag, concurrency_limit=2)
        flow_id = await client.create_flow_from_name(f"ops-leak-flow-{uid()}")

        flow_run = await client.request(
            "POST", "/flow_runs/", json=FlowRunCreate(flow_id=flow_id).model_dump(mode="json")
        )
        flow_run_id = flow_run.json()["id"]
        task_run = await client.request(
            "POST",
            "/task_runs/",
            json=TaskRunCreate(
                name="leaky", task_key="leaky", dynamic_key="0", flow_run_id=flow_run_id, tags=[tag]
            ).model_dump(mode="json"),
        )
        task_run_id = uuid.UUID(task_run.json()["id"])
        # The server releases a task run's tag slots when it moves to a terminal state, so a leak
        # (a lease outliving its holder, e.g. a release lost in a crash or race) is made by taking
        # the lease for a task run that has already completed.
        await client.set_task_run_state(task_run_id, Completed(), force=True)
        await client.increment_concurrency_slots_with_lease(
            names=[f"tag:{tag}"],
            slots=1,
            mode="concurrency",
            lease_duration=600,
            holder=ConcurrencyLeaseHolder(type="task_run", id=task_run_id),
        )

        leaks = [leak for leak in await find_leaked_slots(client) if leak.limit_name == tag]
        assert len(leaks) == 1
        assert leaks[0].holder.id == task_run_id and leaks[0].holder.state == "Completed"
        assert leaks[0].reset.action == "reset_slots" and leaks[0].reset.target_kind == "tag"


async def test_map_pages_past_the_default_page_and_resolves_names(prefect_server):
    prefix = f"ops-many-{uid()}"
    async with get_client() as client:
        for i in range(13):
            await client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=f"{prefix}-{i}", limit=i + 1)
            )
        cmap = await concurrency_map(client, ["global"])
        mine = {r.name: r.limit for r in cmap.limits if r.name.startswith(prefix)}
        assert mine == {f"{prefix}-{i}": i + 1 for i in range(13)}

        resolution = await resolve_name(client, f"{prefix}-7".upper().replace("-", " "))
        assert resolution.match is not None and resolution.match.name == f"{prefix}-7"
        ambiguous = await resolve_name(client, f"{prefix}-1", "global")
        assert ambiguous.match is not None and ambiguous.match.stage == "exact"
        several = await resolve_name(client, prefix, "global")
        assert several.match is None and len(several.candidates) == 13


async def test_not_found_names_the_missing_object_and_the_known_ones(prefect_server):
    pool = f"ops-known-{uid()}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        with pytest.raises(NotFound) as caught:
            await read_limit(client, "work_pool", f"no-such-pool-{uid()}")
    assert "no work pool limit named `no-such-pool-" in str(caught.value) and pool in str(caught.value)


async def test_tag_limits_past_the_first_200_gcls_are_listed(prefect_server):
    """Prefect's v1 tag list drops tags behind the first `limit + offset` GCL rows; the map must not."""
    prefix, tag = f"ops-bulk-{uid()}", f"ops-late-tag-{uid()}"
    gate = asyncio.Semaphore(8)

    async with get_client() as client:

        async def create(i: int) -> None:
            async with gate:
                await client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=f"{prefix}-{i}", limit=1)
                )

        await asyncio.gather(*(create(i) for i in range(205)))
        await client.create_concurrency_limit(tag=tag, concurrency_limit=3)
        cmap = await concurrency_map(client, ["global", "tag"])
    assert sum(1 for r in cmap.of_kind("global") if r.name.startswith(prefix)) == 205
    [row] = [r for r in cmap.of_kind("tag") if r.name == tag]
    assert row.limit == 3 and row.active_slots == 0
