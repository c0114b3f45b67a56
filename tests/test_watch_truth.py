"""The watcher tells the truth (issue 25, problems 1 and 2): waiting and leaked mean what they say.

Real Prefect server, objects made through its API: a waiting task counts only inside a live flow run;
a slot counted with no lease is not leaked while a live Running task carries the tag; a reset is never
proposed while it would release a live holder, and Approve re-checks the holders the card named.
"""

from __future__ import annotations

import uuid

from prefect import get_client
from prefect.client.schemas.actions import FlowRunCreate, TaskRunCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.states import Completed, Crashed, Pending, Running

from bot.prefect_ops.changes import GlobalLimitChange, TagLimitChange, nothing_to_do
from bot.prefect_ops.whatif import what_if
from bot.watch import detect, read_snapshot


def uid() -> str:
    return uuid.uuid4().hex[:8]


def _mine(incidents, kind: str, name: str):
    return [i for i in incidents if i.kind == kind and i.object_name == name]


async def _flow_run(client, state=None) -> uuid.UUID:
    flow_id = await client.create_flow_from_name(f"truth-flow-{uid()}")
    made = await client.request("POST", "/flow_runs/", json=FlowRunCreate(flow_id=flow_id).model_dump(mode="json"))
    run_id = uuid.UUID(made.json()["id"])
    if state is not None:
        await client.set_flow_run_state(run_id, state, force=True)
    return run_id


async def _task(client, flow_run_id: uuid.UUID, tag: str, state) -> uuid.UUID:
    made = await client.request("POST", "/task_runs/", json=TaskRunCreate(
        name=f"t-{uid()}", task_key="t", dynamic_key=uid(), flow_run_id=flow_run_id,
        tags=[tag]).model_dump(mode="json"))
    task_id = uuid.UUID(made.json()["id"])
    await client.set_task_run_state(task_id, state, force=True)
    return task_id


async def _hold(client, tag: str, task_id: uuid.UUID) -> str:
    """Take a tag slot for the task as the engine does; returns the lease id."""
    response = await client.increment_concurrency_slots_with_lease(
        names=[f"tag:{tag}"], slots=1, mode="concurrency", lease_duration=600,
        holder=ConcurrencyLeaseHolder(type="task_run", id=task_id))
    return response.json()["lease_id"]


async def test_pending_tasks_of_dead_flows_are_not_waiting(prefect_server):
    """Problem 1: a killed flow's queued task stays Pending for good; it must not make a healthy holder an
    incident, nor a what-if that promises a start."""
    tag = f"truth-wait-{uid()}"
    async with get_client() as client:
        await client.create_concurrency_limit(tag=tag, concurrency_limit=1)
        live_flow = await _flow_run(client, Running())
        holder = await _task(client, live_flow, tag, Running())
        await _hold(client, tag, holder)
        dead_flow = await _flow_run(client, Running())
        await _task(client, dead_flow, tag, Pending())
        await client.set_flow_run_state(dead_flow, Crashed(), force=True)  # its worker saw the kill -9
        await _task(client, await _flow_run(client), tag, Pending())  # a flow run that never started

        snap = await read_snapshot(client)
        assert snap.tasks_waiting.get(tag) == 0
        assert _mine(detect(snap, 0), "waiting_on_limit", tag) == []
        line = await what_if(client, TagLimitChange(action="set", tag=tag, limit=2))
        assert "nothing waits now" in line and "start now" not in line

        waiter = await _task(client, live_flow, tag, Pending())  # a real waiter in the live flow
        snap = await read_snapshot(client)
        [incident] = _mine(detect(snap, 0), "waiting_on_limit", tag)
        assert [w.id for w in incident.waiting_runs] == [waiter] and "1 task run(s) waiting" in incident.summary
        assert "approving lets 1 queued task start now" in await what_if(
            client, TagLimitChange(action="set", tag=tag, limit=2))


async def test_since_is_the_oldest_waiters_wait_while_holders_turn_over(prefect_server):
    """Problem 4a: holders changing every few seconds must not restart the clock of a long wait."""
    tag = f"truth-since-{uid()}"
    async with get_client() as client:
        await client.create_concurrency_limit(tag=tag, concurrency_limit=1)
        flow = await _flow_run(client, Running())
        old_waiter = await _task(client, flow, tag, Pending())
        waited_from = (await client.read_task_run(old_waiter)).state.timestamp
        holder = await _task(client, flow, tag, Running())
        await _hold(client, tag, holder)  # the newest holder's change is after the waiter started
        snap = await read_snapshot(client)
        [incident] = _mine(detect(snap, 3600), "waiting_on_limit", tag)
        assert incident.since == waited_from


async def test_unleased_slot_is_not_leaked_while_its_holder_runs(prefect_server):
    """Problem 2: with the leases gone (a server restart with in-memory leases; here Prefect's v1 reset,
    which also drops leases and keeps the count), a Running holder is alive: no leak, no reset proposal;
    once it finishes, the slot is leaked and a reset that releases nobody alive is proposed."""
    tag = f"truth-nolease-{uid()}"
    async with get_client() as client:
        await client.create_concurrency_limit(tag=tag, concurrency_limit=1)
        flow = await _flow_run(client, Running())
        task = await _task(client, flow, tag, Running())
        await _hold(client, tag, task)
        await client.reset_concurrency_limit_by_tag(tag)  # leases gone, count kept
        assert (await client.read_global_concurrency_limit_by_name(f"tag:{tag}")).active_slots == 1

        snap = await read_snapshot(client)
        assert [h.id for h in snap.tag_unleased_live[tag]] == [task]
        assert _mine(detect(snap, 0), "leaked_slots", tag) == []
        reset = TagLimitChange(action="reset", tag=tag)
        before = await reset.read(client)
        assert before["release"][0]["alive"] and "live holder" in nothing_to_do(reset, before)

        await client.set_task_run_state(task, Completed(), force=True)
        snap = await read_snapshot(client)
        [leak] = _mine(detect(snap, 0), "leaked_slots", tag)
        assert "1 slot(s) nobody alive holds" in leak.summary and leak.fix == reset
        before = await reset.read(client)
        assert before["release"] == [] and nothing_to_do(reset, before) is None


async def test_a_running_task_of_a_crashed_flow_holds_nothing_alive(prefect_server):
    """kill -9: the worker marks the flow Crashed, the task run stays Running with its lease; that slot is
    leaked, and the card names the holder the reset releases."""
    tag = f"truth-crash-{uid()}"
    async with get_client() as client:
        await client.create_concurrency_limit(tag=tag, concurrency_limit=2)
        flow = await _flow_run(client, Running())
        task = await _task(client, flow, tag, Running())
        await _hold(client, tag, task)
        live_flow = await _flow_run(client, Running())
        live_task = await _task(client, live_flow, tag, Running())
        lease = await _hold(client, tag, live_task)
        snap = await read_snapshot(client)
        assert _mine(detect(snap, 0), "leaked_slots", tag) == []
        await client.set_flow_run_state(flow, Crashed(), force=True)

        snap = await read_snapshot(client)
        [leak] = _mine(detect(snap, 0), "leaked_slots", tag)
        assert [h.id for h in leak.holders] == [task] and "its flow run is crashed" in " ".join(leak.evidence)
        assert leak.fix is None and "live holder" in leak.hint  # the other holder still runs: no reset
        reset = TagLimitChange(action="reset", tag=tag)
        assert "would release 1 live holder" in nothing_to_do(reset, await reset.read(client))

        await client.set_task_run_state(live_task, Completed(), force=True)
        await client.request("POST", "/v2/concurrency_limits/decrement-with-lease", json={"lease_id": lease})
        snap = await read_snapshot(client)
        [leak] = _mine(detect(snap, 0), "leaked_slots", tag)
        assert leak.fix == reset
        before = await reset.read(client)
        assert [h["id"] for h in before["release"]] == [str(task)] and nothing_to_do(reset, before) is None
        for change in (reset, GlobalLimitChange(action="reset", name=f"tag:{tag}")):  # either spelling: a line
            assert (await what_if(client, change)).startswith("resetting frees 1 counted slot(s)")
        assert str(task) not in reset.diff(before) and "releases `" in reset.diff(before)


async def test_approve_rechecks_the_holders_the_card_named(prefect_server, tmp_path):
    """A reset proposed while nobody alive held the slot is refused at Approve once a live holder appears."""
    from tests.approvals_support import make_service

    tag = f"truth-recheck-{uid()}"
    async with get_client() as client:
        await client.create_concurrency_limit(tag=tag, concurrency_limit=2)
        flow = await _flow_run(client, Running())
        dead = await _task(client, flow, tag, Running())
        await _hold(client, tag, dead)
        await client.set_flow_run_state(flow, Crashed(), force=True)  # killed: its task holds on
    service = make_service(f"sqlite:///{tmp_path / 'bot.db'}")
    proposal = await service.create_proposal(TagLimitChange(action="reset", tag=tag), "watcher")
    assert "releases `" in proposal.diff
    async with get_client() as client:
        live = await _task(client, await _flow_run(client, Running()), tag, Running())
        await _hold(client, tag, live)  # a live holder arrives before the click
    decision = await service.approve(proposal.id, "UAPPROVER")
    assert decision.outcome == "stale" and decision.fresh is None
    async with get_client() as client:
        assert (await client.read_global_concurrency_limit_by_name(f"tag:{tag}")).active_slots == 2


async def test_a_slot_released_while_the_read_ran_is_not_counted_for_nobody(prefect_server):
    """A read takes a limit's count and its holders in separate calls, so a release in between made a slot
    look counted for nobody: on a loaded machine every read of the healthy-churn test straddled one, and
    the sightings added up to a leaked-slot post. Such a limit's count and holders are read again; a slot
    whose lease is really gone is still counted for nobody."""
    from bot.watch.reads import slots_in_flight
    from tests.test_watch_detectors import _deployment_with_a_waiting_run

    tag, pool = f"truth-flight-{uid()}", f"truth-flight-{uid()}"
    async with get_client() as client:
        await client.create_concurrency_limit(tag=tag, concurrency_limit=2)
        flow = await _flow_run(client, Running())
        task = await _task(client, flow, tag, Running())
        lease = await _hold(client, tag, task)
        _, dep_name, first, _ = await _deployment_with_a_waiting_run(client, pool)
        snap = await read_snapshot(client)
        read = {(lim.kind, lim.name): lim for lim in snap.limits}
        # as a read saw them when both holders ended after their counts were read and before their holders were
        stale = [read["tag", tag].model_copy(update={"holders": []}),
                 read["deployment", dep_name].model_copy(update={"holders": []})]
        assert [lim.active_slots for lim in stale] == [1, 1]
        await client.set_task_run_state(task, Completed(), force=True)
        await client.request("POST", "/v2/concurrency_limits/decrement-with-lease", json={"lease_id": lease})
        await client.set_flow_run_state(first.id, Running())
        await client.set_flow_run_state(first.id, Completed())

        in_flight = await slots_in_flight(client, stale)
        assert in_flight == {f"tag:{tag}": 1, f"deployment:{dep_name}": 1}
        skewed = snap.model_copy(update={"limits": stale})
        assert _mine(detect(skewed.model_copy(update={"slots_in_flight": in_flight}), 0), "leaked_slots", tag) == []
        assert _mine(detect(skewed, 0), "leaked_slots", tag)  # what the watcher saw before this check

        task = await _task(client, flow, tag, Running())  # a slot whose lease is really gone stays leaked
        await _hold(client, tag, task)
        await client.reset_concurrency_limit_by_tag(tag)  # leases gone, count kept
        await client.set_task_run_state(task, Completed(), force=True)
        snap = await read_snapshot(client)
        assert f"tag:{tag}" not in snap.slots_in_flight
        [leak] = _mine(detect(snap, 0), "leaked_slots", tag)
        assert "1 slot(s) nobody alive holds" in leak.summary
