"""Each watcher detector on the real Prefect server: make the trouble happen, see it detected.

Thresholds are small (0-2 s) so a test waits on Prefect's own timestamps, never on a fixed sleep.
The server is shared, so every test looks only at its own uniquely named objects.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta

from prefect import get_client
from prefect.client.schemas.actions import (
    FlowRunCreate,
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
    TaskRunCreate,
    WorkPoolCreate,
    WorkPoolUpdate,
)
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.states import Completed, Late, Pending, Running

from bot.prefect_ops.runs import utcnow
from bot.watch import detect, read_snapshot
from tests.test_prefect_ops_live import poll


def uid() -> str:
    return uuid.uuid4().hex[:8]


async def _deployment(client, pool: str, limit: int | None = None, queue: str | None = None):
    flow_id = await client.create_flow_from_name(f"watch-flow-{uid()}")
    name = f"watch-dep-{uid()}"
    dep_id = await client.create_deployment(flow_id=flow_id, name=name, work_pool_name=pool,
                                            work_queue_name=queue, concurrency_limit=limit)
    flow = await client.read_flow(flow_id)
    return dep_id, f"{flow.name}/{name}"


async def _deployment_with_a_waiting_run(client, pool: str):
    """Pool `pool` and a deployment limited to 1: the first run holds the slot (Pending) and the second
    is refused into AwaitingConcurrencySlot. Returns (deployment id, flow/deployment, first, second)."""
    await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    dep_id, dep_name = await _deployment(client, pool, limit=1)
    first = await client.create_flow_run_from_deployment(dep_id)
    second = await client.create_flow_run_from_deployment(dep_id)
    await client.set_flow_run_state(first.id, Pending())
    await client.set_flow_run_state(second.id, Pending())  # the limit is full: AwaitingConcurrencySlot
    return dep_id, dep_name, first, second


async def _paused_pool_with_a_due_run(client, pool: str):
    """Pool `pool`, paused, with one due run of a deployment in it: the paused-pool incident's scene.
    Returns the run."""
    await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    await client.update_work_pool(pool, WorkPoolUpdate(is_paused=True))
    dep_id, _ = await _deployment(client, pool)
    return await client.create_flow_run_from_deployment(dep_id)


def _mine(incidents, kind: str, object_name: str):
    return [i for i in incidents if i.kind == kind and i.object_name == object_name]


async def _ripe_incident(client, kind: str, object_name: str, wait_seconds: float = 1.0, seen=None):
    """Poll the detectors until the incident is there and has lasted its threshold."""

    async def check():
        snap = await read_snapshot(client)
        found = _mine(detect(snap, wait_seconds, seen or {}), kind, object_name)
        return found[0] if found and found[0].ripe(snap.read_at) else None

    return await poll(check, timeout=60)


async def test_run_waiting_on_a_full_deployment_limit(prefect_server):
    pool = f"watch-pool-{uid()}"
    async with get_client() as client:
        dep_id, dep_name, first, second = await _deployment_with_a_waiting_run(client, pool)

        snap = await read_snapshot(client)
        [fresh] = _mine(detect(snap, 3600), "waiting_on_limit", dep_name)
        assert not fresh.ripe(snap.read_at)  # under the threshold: not reported yet

        incident = await _ripe_incident(client, "waiting_on_limit", dep_name)
        assert incident.object_kind == "deployment" and incident.limit == 1
        assert [h.id for h in incident.holders] == [first.id]
        assert [w.id for w in incident.waiting_runs] == [second.id]
        assert first.name in incident.summary
        assert incident.fix is not None and incident.fix.limit == 2


async def test_a_deployment_whose_limit_is_disabled_blocks_its_due_runs(prefect_server):
    """A disabled `deployment:<id>` limit blocks every run instead of lifting the limit (recipe claim
    disabled-backing-gcl-blocks): the watcher must say so at once, with enabling it as the fix. The
    watcher soak (`make soak`) sees the same scene through real workers."""
    pool = f"watch-disabled-{uid()}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        dep_id, dep_name = await _deployment(client, pool, limit=1)
        await client.update_global_concurrency_limit(f"deployment:{dep_id}",
                                                     GlobalConcurrencyLimitUpdate(active=False))
        run = await client.create_flow_run_from_deployment(dep_id)

        incident = await _ripe_incident(client, "disabled_limit", dep_name)
        assert incident.object_kind == "deployment" and [w.id for w in incident.waiting_runs] == [run.id]
        assert "concurrency limit disabled" in incident.summary
        assert incident.fix.action == "enable" and incident.fix.name == f"deployment:{dep_id}"


async def test_runs_waiting_on_full_pool_and_queue_limits(prefect_server):
    pool, queue = f"watch-full-{uid()}", f"watch-q-{uid()}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process", concurrency_limit=1))
        await client.create_work_queue(name=queue, work_pool_name=pool, concurrency_limit=1)
        dep_id, _ = await _deployment(client, pool, queue=queue)
        holder = await client.create_flow_run_from_deployment(dep_id)
        waiter = await client.create_flow_run_from_deployment(dep_id)
        await client.set_flow_run_state(holder.id, Pending())

        for kind_name in (pool, f"{pool}/{queue}"):
            incident = await _ripe_incident(client, "waiting_on_limit", kind_name)
            assert [h.id for h in incident.holders] == [holder.id]
            assert waiter.id in [w.id for w in incident.waiting_runs]
        assert incident.fix.queue == queue and incident.fix.limit == 2

        await client.set_flow_run_state(holder.id, Running())
        await client.set_flow_run_state(holder.id, Completed())
        snap = await read_snapshot(client)
        assert _mine(detect(snap, 0), "waiting_on_limit", pool) == []  # the slot is free again


async def test_task_runs_waiting_on_a_full_tag_limit(prefect_server):
    tag = f"watch-tag-{uid()}"
    async with get_client() as client:
        await client.create_concurrency_limit(tag=tag, concurrency_limit=1)
        flow_id = await client.create_flow_from_name(f"watch-tag-flow-{uid()}")
        flow_run = await client.request("POST", "/flow_runs/",
                                        json=FlowRunCreate(flow_id=flow_id).model_dump(mode="json"))
        flow_run_id = flow_run.json()["id"]
        await client.set_flow_run_state(uuid.UUID(flow_run_id), Running(), force=True)  # waiters live in it
        ids = []
        for i in range(2):
            created = await client.request("POST", "/task_runs/", json=TaskRunCreate(
                name=f"tagged-{i}", task_key="tagged", dynamic_key=str(i), flow_run_id=flow_run_id,
                tags=[tag]).model_dump(mode="json"))
            ids.append(uuid.UUID(created.json()["id"]))
        await client.set_task_run_state(ids[0], Running(), force=True)
        await client.increment_concurrency_slots_with_lease(
            names=[f"tag:{tag}"], slots=1, mode="concurrency", lease_duration=600,
            holder=ConcurrencyLeaseHolder(type="task_run", id=ids[0]))
        await client.set_task_run_state(ids[1], Pending(), force=True)

        incident = await _ripe_incident(client, "waiting_on_limit", tag)
        assert incident.object_kind == "tag" and [h.id for h in incident.holders] == [ids[0]]
        assert "1 task run(s) waiting" in incident.summary


async def test_leaked_tag_slot_and_gcl_slot_without_lease_holder(prefect_server):
    tag = f"watch-leak-{uid()}"
    async with get_client() as client:
        await client.create_concurrency_limit(tag=tag, concurrency_limit=2)
        flow_id = await client.create_flow_from_name(f"watch-leak-flow-{uid()}")
        flow_run = await client.request("POST", "/flow_runs/",
                                        json=FlowRunCreate(flow_id=flow_id).model_dump(mode="json"))
        task_run = await client.request("POST", "/task_runs/", json=TaskRunCreate(
            name="leaky", task_key="leaky", dynamic_key="0", flow_run_id=flow_run.json()["id"],
            tags=[tag]).model_dump(mode="json"))
        task_run_id = uuid.UUID(task_run.json()["id"])
        await client.set_task_run_state(task_run_id, Completed(), force=True)
        await client.increment_concurrency_slots_with_lease(
            names=[f"tag:{tag}"], slots=1, mode="concurrency", lease_duration=600,
            holder=ConcurrencyLeaseHolder(type="task_run", id=task_run_id))

        incident = await _ripe_incident(client, "leaked_slots", tag, wait_seconds=1)
        assert [h.id for h in incident.holders] == [task_run_id] and incident.holders[0].state == "Completed"
        assert incident.fix.action == "reset" and incident.fix.tag == tag


async def test_gcl_at_its_limit_longer_than_the_threshold(prefect_server):
    gcl = f"watch-gcl-{uid()}"
    async with get_client() as client:
        await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=gcl, limit=1))
        await client.increment_concurrency_slots_with_lease(names=[gcl], slots=1, mode="concurrency",
                                                            lease_duration=600)
        snap = await read_snapshot(client)
        [first] = _mine(detect(snap, 2), "gcl_full", gcl)
        assert not first.ripe(snap.read_at)  # nobody named holds it: the clock starts when first seen
        seen = {first.key: first.since}
        incident = await _ripe_incident(client, "gcl_full", gcl, wait_seconds=2, seen=seen)
        assert incident.since == first.since and incident.active_slots == 1
        assert incident.fix.limit == 2


async def test_late_runs_and_no_online_worker(prefect_server):
    pool = f"watch-noworker-{uid()}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        dep_id, _ = await _deployment(client, pool)
        run = await client.create_flow_run_from_deployment(dep_id)
        await client.set_flow_run_state(run.id, Late(scheduled_time=utcnow() - timedelta(minutes=5)), force=True)

        incident = await _ripe_incident(client, "no_worker", pool)
        assert run.id in [w.id for w in incident.waiting_runs]
        assert f"prefect worker start --pool {pool}" in incident.hint and incident.fix is None


async def test_paused_pool_with_backlog_and_zero_limit_with_waiters(prefect_server):
    paused, zero = f"watch-paused-{uid()}", f"watch-zero-{uid()}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=paused, type="process"))
        await client.update_work_pool(paused, WorkPoolUpdate(is_paused=True))
        await client.create_work_pool(WorkPoolCreate(name=zero, type="process", concurrency_limit=0))
        for pool in (paused, zero):
            dep_id, _ = await _deployment(client, pool)
            await client.create_flow_run_from_deployment(dep_id)

        incident = await _ripe_incident(client, "paused_backlog", paused)
        assert incident.waiting == 1 and f"prefect work-pool resume {paused}" in incident.hint
        incident = await _ripe_incident(client, "zero_limit", zero)
        assert incident.limit == 0 and incident.fix.limit == 1

        env = dict(os.environ)
        out = subprocess.run([sys.executable, "-m", "bot.cli", "watch", "--once", "--json", "--wait-seconds", "1"],
                             env=env, capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stderr
        keys = {row["key"] for row in json.loads(out.stdout)}
        assert f"paused_backlog:work_pool:{paused}" in keys and f"zero_limit:work_pool:{zero}" in keys


async def test_late_runs_in_a_queue_no_online_worker_polls(prefect_server):
    pool, queue = f"watch-unpolled-{uid()}", f"watch-uq-{uid()}"
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        await client.create_work_queue(name=queue, work_pool_name=pool)
        await client.send_worker_heartbeat(pool, f"worker-{uid()}")  # online, bound to other queues
        dep_id, _ = await _deployment(client, pool, queue=queue)
        run = await client.create_flow_run_from_deployment(dep_id)
        await client.set_flow_run_state(run.id, Late(scheduled_time=utcnow() - timedelta(minutes=5)), force=True)

        incident = await _ripe_incident(client, "no_worker", f"{pool}/{queue}")
        assert incident.object_kind == "work_queue" and run.id in [w.id for w in incident.waiting_runs]
        assert f"--work-queue {queue}" in incident.hint
        snap = await read_snapshot(client)
        assert _mine(detect(snap, 1), "no_worker", pool) == []  # the pool itself has a worker online
