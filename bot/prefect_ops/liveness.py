"""Who is really alive under a limit: the truth both the watcher and a reset's Approve rely on.

- A holder is alive while its run exists and has not ended, and (for a task run) its flow run has
  not ended either: a flow killed with `kill -9` is marked Crashed by its worker, but its task runs
  stay Running for good.
- A task waits on a tag only while it is Pending inside a live flow run. Pending tasks of dead flows,
  and tasks aborted by a tag limit of 0, stay Pending forever and must not count.
- Tag slots can be counted with no lease behind them (leases live in server memory by default, so a
  server restart drops them). Such a slot is not leaked while a live Running task carries the tag:
  that task is its holder, and it releases or renews when it finishes.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    TaskRunFilter,
    TaskRunFilterState,
    TaskRunFilterStateType,
    TaskRunFilterTags,
)
from prefect.client.schemas.objects import StateType, TaskRun

from bot.prefect_ops.models import Holder, WaitingRun
from bot.prefect_ops.names import api_path
from bot.prefect_ops.runs import (
    holders_for,
    paged,
    read_flow_runs,
    read_flow_runs_by_id,
    read_task_runs,
    task_run_holder,
)

TAG_PREFIX = "tag:"
DEPLOYMENT_PREFIX = "deployment:"
NOT_READY = "NotReady"  # Pending on an upstream task, not on a slot
MAX_TASKS = 1000  # tasks read per tag and state: a bound on one read, the count says "at least" beyond it
HOLDING_FLOW_STATES = [StateType.PENDING, StateType.RUNNING, StateType.CANCELLING]  # deployment slot holders


def is_alive(holder: Holder) -> bool:
    """Alive: the run exists, has not ended, and neither has the flow run it runs in."""
    return holder.alive


async def _tagged_tasks(client, tag: str, state: StateType) -> list[TaskRun]:
    async def page(limit: int, offset: int) -> list[TaskRun]:
        if offset >= MAX_TASKS:
            return []
        return await read_task_runs(client, task_run_filter=TaskRunFilter(
            tags=TaskRunFilterTags(all_=[tag]),
            state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[state]))), limit=limit, offset=offset)

    return await paged(page)


async def _live_flow_states(client, tasks: Iterable[TaskRun]) -> dict[UUID, str]:
    """State type of each task's flow run ("MISSING" when it is gone), read in one batch."""
    ids = {t.flow_run_id for t in tasks if t.flow_run_id is not None}
    flows = await read_flow_runs_by_id(client, ids) if ids else {}
    return {fid: (flows[fid].state.type.value if fid in flows and flows[fid].state else "MISSING") for fid in ids}


def _in_live_flow(task: TaskRun, flow_states: dict[UUID, str]) -> bool:
    if task.flow_run_id is None:
        return True  # a background task: its own state is all there is
    return flow_states.get(task.flow_run_id, "MISSING") == StateType.RUNNING.value


async def live_waiting_tasks(client, tag: str) -> list[WaitingRun]:
    """Task runs with `tag` waiting for a slot now: Pending (not on an upstream) inside a Running flow run,
    oldest first; `due_since` is when each started waiting."""
    pending = [t for t in await _tagged_tasks(client, tag, StateType.PENDING)
               if not (t.state and t.state.name == NOT_READY)]
    flow_states = await _live_flow_states(client, pending)
    waiting = [WaitingRun(id=t.id, name=t.name, state=t.state.name if t.state else None,
                          due_since=t.state.timestamp if t.state else t.created)
               for t in pending if _in_live_flow(t, flow_states)]
    return sorted(waiting, key=lambda w: (w.due_since is None, w.due_since))


async def live_running_tasks(client, tag: str) -> list[Holder]:
    """Running task runs with `tag` inside a live flow run: each holds a slot, leased or not."""
    running = await _tagged_tasks(client, tag, StateType.RUNNING)
    flow_states = await _live_flow_states(client, running)
    out = []
    for task in running:
        holder = task_run_holder(task)
        holder.parent_state_type = flow_states.get(task.flow_run_id) if task.flow_run_id else None
        if is_alive(holder):
            out.append(holder)
    return out


async def tag_lease_holders(client, tag: str) -> list[Holder]:
    """The task runs holding `tag` slots under a lease (Prefect's v1 read names them), alive or not."""
    response = await client.request("GET", api_path("concurrency_limits", "tag", tag))
    ids = [UUID(str(i)) for i in response.json().get("active_slots") or []]
    found = await holders_for(client, [("task_run", rid) for rid in ids])
    return [found[rid] for rid in ids]


async def reset_holders(client, gcl: dict) -> list[Holder]:
    """Every holder a reset of this V2 limit (a JSON row) would release: lease holders, plus live holders
    Prefect counts without a lease (tags) or as Pending/Running/Cancelling runs (deployments)."""
    name = gcl.get("name") or f"{TAG_PREFIX}{gcl.get('tag', '')}"  # a v1-only tag limit (before 3.4.19)
    if name.startswith(TAG_PREFIX):
        tag = name.removeprefix(TAG_PREFIX)
        leased = await tag_lease_holders(client, tag)
        known = {h.id for h in leased}
        return leased + [h for h in await live_running_tasks(client, tag) if h.id not in known]
    if name.startswith(DEPLOYMENT_PREFIX):
        try:
            dep_id = UUID(name.removeprefix(DEPLOYMENT_PREFIX))
        except ValueError:
            return []
        runs = await read_flow_runs(
            client, flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(
                any_=HOLDING_FLOW_STATES))),
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep_id])), limit=200)
        found = await holders_for(client, [("flow_run", r.id) for r in runs])
        return list(found.values())
    from bot.prefect_ops.holder_events import gcl_holders

    return (await gcl_holders(client, [UUID(str(gcl["id"]))])).get(UUID(str(gcl["id"])), [])
