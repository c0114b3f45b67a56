"""What-if lines against what really happens after Approve (issue 25, Deliver 4).

Each kind is set up on the real Prefect server with real `prefect worker start --type process` workers
and flows deployed from a source folder. The card is posted and approved through the running bot
(signed Bolt clicks, ApprovalService), and then the server is read: the runs (or tasks) that start,
fail or still wait must be the ones the line promised. Holders run until the test opens their gate (a
file), so only the limit under test decides who runs. One worker set serves the whole module.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, WorkPoolCreate
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterTags
from prefect.client.schemas.objects import FlowRun, StateType, TaskRun
from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError, concurrency

from bot.prefect_ops.changes import (
    DeploymentLimitChange,
    GlobalLimitChange,
    TagLimitChange,
    WorkPoolLimitChange,
    WorkQueueLimitChange,
)
from bot.slack import cards
from tests.harness import BotHarness, wait_until
from tests.process_workers import QUERY_SECONDS, deploy_from_source, start_process_workers, stop_process_workers
from tests.test_approvals_e2e import click, propose
from tests.waiting import until

APPROVER = "UAPPROVER"
pytestmark = pytest.mark.timeout(900)  # a step may take minutes under load; each waits on a condition
SOURCE = "whatif_flows.py"
SLOW = 240.0  # seconds a step may take on this loaded 2-core machine (a flow run starts a Python process)
FLOWS = '''
import time
from pathlib import Path

from prefect import flow, task
from prefect.futures import as_completed
from prefect.concurrency.sync import concurrency
from prefect.runtime import flow_run

MAX_HOLD = 600.0


def _hold(gate: str) -> None:
    """Run until the test opens the gate (a file), so only the limit under test decides who runs."""
    deadline = time.monotonic() + MAX_HOLD
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.5)


@flow
def hold(gate: str) -> None:
    _hold(gate)


@task
def hold_task(gate: str) -> None:
    _hold(gate)


@flow
def tagged(tag: str, gate: str, count: int = 1) -> None:
    futures = [hold_task.with_options(tags=[tag]).submit(gate) for _ in range(count)]
    for future in as_completed(futures):  # a task that fails fails the flow at once, holders or not
        future.result()


@flow
def gcl_hold(name: str, gate: str) -> None:
    Path(f"{gate}.asking.{flow_run.id}").touch()  # the test sees who asked; the server, who holds
    with concurrency(name, occupy=1):
        _hold(gate)
'''


@dataclass
class World:
    """The module's Prefect objects and process workers; names carry a uuid suffix (shared server)."""

    work: Path
    uid: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    gates: list[Path] = field(default_factory=list)
    runs: list[UUID] = field(default_factory=list)

    def n(self, what: str) -> str:
        return f"whatif-{what}-{self.uid}"

    @property
    def misc(self) -> str:  # no pool limit: deployment, queue, tag and global limits live here
        return self.n("misc")

    @property
    def limited(self) -> str:  # the pool kind: a limit of 1
        return self.n("limited")

    def gate(self) -> str:
        gate = self.work / f"gate-{len(self.gates)}"
        self.gates.append(gate)
        return str(gate)

    async def deploy(self, client: Any, flow: str, pool: str, parameters: dict, **kwargs: Any) -> tuple[UUID, str]:
        name = self.n(f"{flow}-{uuid.uuid4().hex[:4]}")
        dep_id = await deploy_from_source(client, self.work, SOURCE, flow, name, pool, parameters, **kwargs)
        return dep_id, f"{flow}/{name}"

    async def run(self, client: Any, dep_id: UUID, **kwargs: Any) -> FlowRun:
        run = await client.create_flow_run_from_deployment(dep_id, **kwargs)
        self.runs.append(run.id)
        return run


@pytest.fixture(scope="module")
async def world(prefect_server, tmp_path_factory):
    world = World(tmp_path_factory.mktemp("whatif"))
    (world.work / SOURCE).write_text(FLOWS)
    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=world.misc, type="process"))
        await client.create_work_pool(WorkPoolCreate(name=world.limited, type="process", concurrency_limit=1))
    workers = start_process_workers(prefect_server.url, [world.misc, world.limited], world.work)
    yield world
    async with get_client() as client:  # runs still waiting would start (a process each) once gates open
        for run in await _flow_runs(client, world.runs):
            if run.state and run.state.type == StateType.SCHEDULED:
                await client.delete_flow_run(run.id)
    for gate in world.gates:
        gate.touch()
    async with get_client() as client:
        await until(lambda: _all_final(client, world.runs), SLOW, "every flow run of the module to end")
    stop_process_workers(workers)


@pytest.fixture(scope="module")
def bot(slack_api, prefect_api_url, tmp_path_factory):
    db = tmp_path_factory.mktemp("whatif-bot") / "bot.db"
    harness = BotHarness(slack_api, None, f"sqlite:///{db}", bot_approver_ids=[APPROVER]).start()
    yield harness
    harness.stop()


# --- reading the server ---------------------------------------------------------------------------
async def _flow_runs(client: Any, ids: list[UUID]) -> list[FlowRun]:
    return await client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids))) if ids else []


async def _all_final(client: Any, ids: list[UUID]) -> bool:
    return all(r.state is not None and r.state.is_final() for r in await _flow_runs(client, ids))


def _of(runs: list[FlowRun], *types: StateType) -> list[FlowRun]:
    return [r for r in runs if r.state is not None and r.state.type in types]


async def _tagged_tasks(client: Any, tag: str) -> list[TaskRun]:
    return await client.read_task_runs(task_run_filter=TaskRunFilter(tags=TaskRunFilterTags(all_=[tag])))


async def _gcl(client: Any, name: str) -> dict:
    return (await client.request("GET", f"/v2/concurrency_limits/{name}")).json()


async def _polled_since(client: Any, pool: str, queue: str, moment: datetime) -> bool:
    """The pool's worker asked this queue for runs again after `moment` (and after one more poll: a poll
    in flight at `moment` may still be submitting what it got)."""
    found = await client.read_work_queue_by_name(queue, work_pool_name=pool)
    return bool(found.last_polled and found.last_polled > moment + timedelta(seconds=2 * float(QUERY_SECONDS)))


# --- the card, the click --------------------------------------------------------------------------
@dataclass
class Promise:
    """What a what-if line promised, in numbers."""

    line: str
    starts: int | None  # "approving lets N ... start now"
    left: int | None  # "N still wait"
    clears: int | None  # "a limit of X would clear the backlog now"


def promise_of(line: str) -> Promise:
    def number(pattern: str) -> int | None:
        found = re.search(pattern, line)
        return int(found.group(1)) if found else None

    return Promise(
        line,
        number(r"approving lets (\d+) (?:of the \d+ )?(?:waiting runs?|queued tasks?) start"),
        number(r"(\d+) (?:waiting runs?|queued tasks?)? ?still wait"),
        number(r"a limit of (\d+) would clear the backlog now"),
    )


def _line(args: dict, label: str) -> str:
    for block in args.get("blocks") or []:
        for element in block.get("elements") or []:
            text = element.get("text") or ""
            if isinstance(text, str) and text.startswith(f"*{label}:* "):
                return text.removeprefix(f"*{label}:* ")
    raise AssertionError(f"no {label!r} line on the card: {json.dumps(args.get('blocks'))[:800]}")


def card_line(bot: BotHarness, slack: Any, change: Any) -> tuple[str, str]:
    """Post the proposal card as the bot does after a model turn; its id and its what-if line."""
    pid = propose(bot, change)
    posted = [c.args for c in slack.calls_to("chat.postMessage") if pid in json.dumps(c.args.get("blocks"))]
    return pid, _line(posted[-1], "What if")


def approve(bot: BotHarness, slack: Any, pid: str, button: str | None = None) -> tuple[str, datetime]:
    """An authorised Approve click on the card; the line shown on the applied card and when it applied."""
    ts = bot.call(lambda: bot.runtime.approvals.get(pid)).message_ts
    assert click(bot, cards.APPROVE, button or pid, APPROVER, ts).status == 200
    applied = wait_until(
        lambda: [
            c.args
            for c in slack.calls_to("chat.update")
            if c.args.get("ts") == ts and "Applied" in json.dumps(c.args.get("blocks"))
        ],
        timeout=SLOW,
        what="the applied card",
    )[-1]
    decided = bot.call(lambda: bot.runtime.approvals.get(pid)).decided_at
    return _line(applied, "When approved"), decided.replace(tzinfo=decided.tzinfo or UTC)


# --- the kinds ------------------------------------------------------------------------------------
@pytest.mark.soak  # `make soak`: ~40 s, most of it Prefect's fixed 30 s retry of a refused deployment run
async def test_a_deployment_raise_starts_the_promised_run_and_the_rest_still_wait(world, bot, slack_api):
    gate = world.gate()
    async with get_client() as client:
        dep_id, dep = await world.deploy(client, "hold", world.misc, {"gate": gate}, limit=1)
        holder = await world.run(client, dep_id)
        await until(lambda: _running(client, [holder.id], 1), SLOW, "the holder running")
        waiting = [await world.run(client, dep_id) for _ in range(2)]
        await until(lambda: _awaiting(client, [w.id for w in waiting], None), SLOW, "both runs refused a slot")

    pid, line = card_line(bot, slack_api, DeploymentLimitChange(action="set", deployment=dep, limit=2))
    promise = promise_of(line)
    assert (promise.starts, promise.left, promise.clears) == (1, 1, 3), line
    shown, applied_at = approve(bot, slack_api, pid)
    assert promise_of(shown).starts == 1 and promise_of(shown).left == 1, shown

    ids = [w.id for w in waiting]
    async with get_client() as client:
        started = await until(lambda: _running(client, ids, promise.starts), SLOW, "the promised run running")
        # every other waiter was tried again after the raise and refused: it had its chance
        await until(
            lambda: _awaiting(client, ids, applied_at, but=[r.id for r in started]),
            SLOW,
            "the rest refused again after the raise",
        )
        runs = await _flow_runs(client, ids)
    assert len(_of(runs, StateType.PENDING, StateType.RUNNING)) == promise.starts
    assert len([r for r in runs if r.state.name == "AwaitingConcurrencySlot"]) == promise.left
    # which refused run Prefect retries first is a race: the line names every candidate, no winner
    assert all(f"`{r.name}`" in line for r in waiting) and "cannot tell" in line, line


async def test_a_pool_raise_that_leaves_a_backlog_says_how_many_still_wait_and_the_suggested_value_clears_it(
    world, bot, slack_api
):
    """Pool limit 1, held by a run of a deployment whose own limit is 1. Waiting: that deployment's next run
    (the oldest: a worker takes it first and Prefect refuses it) and two runs of an unlimited deployment."""
    gate = world.gate()
    async with get_client() as client:
        capped_id, _ = await world.deploy(client, "hold", world.limited, {"gate": gate}, limit=1)
        free_id, _ = await world.deploy(client, "hold", world.limited, {"gate": gate})
        holder = await world.run(client, capped_id)
        await until(lambda: _running(client, [holder.id], 1), SLOW, "the holder running")
        capped = await world.run(client, capped_id)
        waiting = [await world.run(client, free_id) for _ in range(2)]
    ids = [w.id for w in waiting]

    pid, line = card_line(bot, slack_api, WorkPoolLimitChange(action="set", pool=world.limited, limit=2))
    promise = promise_of(line)  # a +1 on a backlog of two: one starts, one still waits, 3 clears it
    assert (promise.starts, promise.left, promise.clears) == (1, 1, 3), line
    assert f"1 more waits on its deployment's full limit, which this change does not free: `{capped.name}`" in line
    shown, _ = approve(bot, slack_api, pid)
    assert (promise_of(shown).starts, promise_of(shown).left) == (1, 1), shown
    async with get_client() as client:
        started = await until(lambda: _running(client, ids, promise.starts), SLOW, "the promised run running")
        moment = datetime.now(UTC)
        await until(lambda: _polled_since(client, world.limited, "default", moment), SLOW, "the next poll")
        runs = await _flow_runs(client, ids)
        refused = await client.read_flow_run(capped.id)
    assert len(_of(runs, StateType.PENDING, StateType.RUNNING)) == promise.starts
    assert len(_of(runs, StateType.SCHEDULED)) == promise.left
    assert f"`{started[0].name}`" in line.split("; ")[0], "the run the line named is the one that started"
    assert refused.state.name == "AwaitingConcurrencySlot", "taken first by the worker, refused by its deployment"

    pid, line = card_line(bot, slack_api, WorkPoolLimitChange(action="set", pool=world.limited, limit=promise.clears))
    cleared = promise_of(line)
    assert (cleared.starts, cleared.left) == (promise.left, None), line
    approve(bot, slack_api, pid)
    async with get_client() as client:
        await until(lambda: _running(client, ids, len(ids)), SLOW, "the whole backlog running")
        moment = datetime.now(UTC)
        await until(lambda: _polled_since(client, world.limited, "default", moment), SLOW, "the next poll")
        assert not _of(await _flow_runs(client, ids), StateType.SCHEDULED)
        assert (await client.read_flow_run(capped.id)).state.type == StateType.SCHEDULED  # still held back


@pytest.mark.soak  # `make soak`: the suite keeps pool backlog, revert to 0 and global 0
async def test_a_work_queue_raise_starts_the_promised_run(world, bot, slack_api):
    gate, queue = world.gate(), world.n("queue")
    async with get_client() as client:
        await client.create_work_queue(name=queue, work_pool_name=world.misc, concurrency_limit=1)
        dep_id, _ = await world.deploy(client, "hold", world.misc, {"gate": gate}, queue=queue)
        holder = await world.run(client, dep_id)
        await until(lambda: _running(client, [holder.id], 1), SLOW, "the holder running")
        waiting = [await world.run(client, dep_id) for _ in range(2)]
    ids = [w.id for w in waiting]

    pid, line = card_line(bot, slack_api, WorkQueueLimitChange(action="set", pool=world.misc, queue=queue, limit=2))
    promise = promise_of(line)
    assert (promise.starts, promise.left, promise.clears) == (1, 1, 3), line
    approve(bot, slack_api, pid)
    async with get_client() as client:
        started = await until(lambda: _running(client, ids, promise.starts), SLOW, "the promised run running")
        moment = datetime.now(UTC)
        await until(lambda: _polled_since(client, world.misc, queue, moment), SLOW, "the next poll")
        runs = await _flow_runs(client, ids)
    assert len(_of(runs, StateType.PENDING, StateType.RUNNING)) == promise.starts
    assert len(_of(runs, StateType.SCHEDULED)) == promise.left
    assert f"`{started[0].name}`" in line


@pytest.mark.soak  # `make soak`: the suite keeps pool backlog, revert to 0 and global 0
async def test_a_tag_raise_starts_the_promised_tasks(world, bot, slack_api):
    gate, tag = world.gate(), world.n("tag")
    async with get_client() as client:
        await client.create_concurrency_limit(tag=tag, concurrency_limit=1)
        dep_id, _ = await world.deploy(client, "tagged", world.misc, {"tag": tag, "gate": gate, "count": 4})
        await world.run(client, dep_id)
        await until(lambda: _tasks(client, tag, running=1, pending=3), SLOW, "one tagged task running, three queued")

    pid, line = card_line(bot, slack_api, TagLimitChange(action="set", tag=tag, limit=2))
    promise = promise_of(line)
    assert (promise.starts, promise.left, promise.clears) == (1, 2, 4), line
    approve(bot, slack_api, pid)
    async with get_client() as client:
        await until(
            lambda: _tasks(client, tag, running=1 + promise.starts, pending=promise.left),
            SLOW,
            "the promised task running, the rest queued",
        )
        assert (await _gcl(client, f"tag:{tag}"))["active_slots"] == 2  # full: nothing more can start


@pytest.mark.soak  # `make soak`: the suite keeps pool backlog, revert to 0 and global 0
async def test_a_global_limit_line_says_it_cannot_see_the_blocked_acquirer_that_then_takes_the_slot(
    world, bot, slack_api
):
    gate, name = world.gate(), world.n("gcl")
    async with get_client() as client:
        await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        dep_id, _ = await world.deploy(client, "gcl_hold", world.misc, {"name": name, "gate": gate})
        runs = [await world.run(client, dep_id) for _ in range(2)]

        async def one_holds_one_is_blocked() -> bool:
            asked = list(Path(gate).parent.glob(f"{Path(gate).name}.asking.*"))
            return len(asked) == 2 and (await _gcl(client, name))["active_slots"] == 1

        await until(one_holds_one_is_blocked, SLOW, "both runs inside concurrency(), one holding the slot")
        assert len(_of(await _flow_runs(client, [r.id for r in runs]), StateType.RUNNING)) == 2

    pid, line = card_line(bot, slack_api, GlobalLimitChange(action="update", name=name, limit=2))
    assert "nothing waits" not in line and "cannot say who is blocked" in line, line
    assert "1 slot(s) would be free (1 of 2 in use)" in line, line
    approve(bot, slack_api, pid)
    async with get_client() as client:  # the waiter the line could not see takes the free slot
        await until(lambda: _gcl_active(client, name, 2), SLOW, "the blocked acquirer holding the new slot")


async def test_a_revert_of_a_tag_limit_to_zero_fails_new_and_queued_tasks_and_keeps_the_running_slots(
    world, bot, slack_api
):
    gate, tag = world.gate(), world.n("zero")
    async with get_client() as client:
        await client.create_concurrency_limit(tag=tag, concurrency_limit=0)
    pid, _ = card_line(bot, slack_api, TagLimitChange(action="set", tag=tag, limit=1))
    approve(bot, slack_api, pid)
    async with get_client() as client:
        dep_id, _ = await world.deploy(client, "tagged", world.misc, {"tag": tag, "gate": gate, "count": 3})
        first = await world.run(client, dep_id)
        await until(lambda: _tasks(client, tag, running=1, pending=2), SLOW, "one tagged task running, two queued")

    ts = bot.call(lambda: bot.runtime.approvals.get(pid)).message_ts
    assert click(bot, cards.REVERT, pid, APPROVER, ts).status == 200
    revert = wait_until(
        lambda: [
            c.args
            for c in slack_api.calls_to("chat.postMessage")
            if f"tag limit `{tag}`: limit 1 → 0" in c.args.get("text", "")
        ],
        timeout=SLOW,
        what="the revert card",
    )[-1]
    line = _line(revert, "What if")
    assert "every new task with this tag fails at once" in line and "still wait" not in line, line
    assert "the 2 queued fail too" in line, line
    assert "the 1 running go on" in line and "stay counted" in line, line
    button = next(
        e["value"]
        for b in revert["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == cards.APPROVE
    )
    approve(bot, slack_api, cards.parse_approve_value(button)[0], button)

    async with get_client() as client:
        late = await world.run(client, dep_id, parameters={"tag": tag, "gate": gate, "count": 1})
        for run in (late, first):  # the new task fails at once, the queued ones at their next try for a slot
            ended = await until(lambda run=run: _final(client, run.id), SLOW, "the tagged run to fail")
            assert ended.state.type == StateType.FAILED and "ConcurrencySlotAcquisitionError" in ended.state.message
        # The new task never ran; the queued never ran; the running goes on. Task runs reach the server as
        # events, written after the flow run's own state, so read until they are there.
        expected = ([StateType.PENDING], [StateType.PENDING, StateType.PENDING, StateType.RUNNING])
        seen: list[tuple[list, list]] = []

        async def task_states() -> bool:
            tasks = await _tagged_tasks(client, tag)
            seen.append(([t.state.type for t in tasks if t.flow_run_id == late.id],
                         sorted(t.state.type for t in tasks if t.flow_run_id == first.id)))
            return seen[-1] == expected

        try:
            await until(task_states, SLOW, "the tagged task runs' states")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last read: {seen[-1] if seen else None}") from None
        assert (await _gcl(client, f"tag:{tag}"))["active_slots"] == 1  # and keeps its slot


async def test_a_global_limit_of_zero_refuses_new_acquirers_at_once_and_keeps_the_held_slot(
    bot, slack_api, prefect_api_url
):
    name = f"whatif-gcl0-{uuid.uuid4().hex[:6]}"
    async with get_client() as client:
        await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        held = await client.increment_concurrency_slots_with_lease(
            names=[name], slots=1, mode="concurrency", lease_duration=600
        )
    pid, line = card_line(bot, slack_api, GlobalLimitChange(action="update", name=name, limit=0))
    assert "fails at once" in line and "waits" not in line, line
    assert "the 1 holding go on" in line and "stay counted" in line, line
    approve(bot, slack_api, pid)
    with pytest.raises(ConcurrencySlotAcquisitionError):  # Prefect's own client code, as a flow would call it
        async with concurrency(name, occupy=1, timeout_seconds=60):
            pass
    async with httpx.AsyncClient(base_url=prefect_api_url) as http:  # the holder ends: Prefect fails its release
        released = await http.post(
            "/v2/concurrency_limits/decrement-with-lease", json={"lease_id": str(held.json()["lease_id"])}
        )
    assert released.status_code >= 500
    async with get_client() as client:
        assert (await _gcl(client, name))["active_slots"] == 1


# --- conditions -----------------------------------------------------------------------------------
async def _running(client: Any, ids: list[UUID], count: int) -> list[FlowRun]:
    """The runs among `ids` that are Running, once there are at least `count` of them."""
    running = _of(await _flow_runs(client, ids), StateType.RUNNING)
    return running if len(running) >= count else []


async def _awaiting(client: Any, ids: list[UUID], since: datetime | None, but: list[UUID] = ()) -> bool:
    """Every run of `ids` (except `but`) is AwaitingConcurrencySlot, refused at `since` or later."""
    runs = [r for r in await _flow_runs(client, ids) if r.id not in but]
    return len(runs) == len(ids) - len(but) and all(
        r.state.name == "AwaitingConcurrencySlot" and (since is None or r.state.timestamp >= since) for r in runs
    )


async def _tasks(client: Any, tag: str, running: int, pending: int) -> bool:
    tasks = await _tagged_tasks(client, tag)
    return (
        len([t for t in tasks if t.state.type == StateType.RUNNING]) == running
        and len([t for t in tasks if t.state.type == StateType.PENDING]) == pending
    )


async def _gcl_active(client: Any, name: str, count: int) -> bool:
    return (await _gcl(client, name))["active_slots"] == count


async def _final(client: Any, run_id: UUID) -> FlowRun | None:
    run = await client.read_flow_run(run_id)
    return run if run.state and run.state.is_final() else None
