"""What a proposed change would do right now, read from live data: the card's what-if line.

"approving lets 3 waiting runs start now: `brave-otter`, `calm-fox`, `eager-owl`"; "lowering to 1
while 3 run: running runs finish; new runs wait"; "deleting this tag limit lets 12 queued tasks start
at once". Computed when a card is built and again when someone clicks Approve. A line is either right
or says what the bot cannot see: tasks count as queued only inside a live flow run, code waiting
inside `concurrency()` is invisible to the API, and a limit of 0 fails tasks and `concurrency()` calls
instead of queueing them (and keeps the slots already held counted: Prefect cannot release under 0).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterNextScheduledStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.sorting import FlowRunSort

from bot.prefect_ops.errors import PrefectOpsError
from bot.prefect_ops.limits import DEPLOYMENT_PREFIX, TAG_PREFIX, WAITING_SAMPLE, list_deployment_limits, read_limit
from bot.prefect_ops.liveness import live_waiting_tasks
from bot.prefect_ops.models import LimitKind, LimitStatus
from bot.prefect_ops.runs import read_flow_runs, waiting_run
from bot.safe_text import code

SHOWN = 3
_KIND: dict[str, LimitKind] = {"work_pool_limit": "work_pool", "work_queue_limit": "work_queue",
                               "deployment_limit": "deployment", "tag_limit": "tag", "global_limit": "global"}
INVISIBLE = ("Prefect shows no code waiting inside `concurrency()`, so the bot cannot say who is blocked on "
             "this limit")


def _target(change: Any) -> tuple[LimitKind, str]:
    kind = _KIND[change.kind]
    if kind == "work_queue":
        return kind, f"{change.pool}/{change.queue}"
    name = {"work_pool": "pool", "deployment": "deployment", "tag": "tag", "global": "name"}[kind]
    value = getattr(change, name)
    if kind == "global" and value.startswith(TAG_PREFIX):  # the V2 row behind a tag limit
        return "tag", value.removeprefix(TAG_PREFIX)
    if kind == "global" and value.startswith(DEPLOYMENT_PREFIX):
        return "deployment", value
    return kind, value


async def _read(client: Any, kind: LimitKind, name: str) -> LimitStatus:
    if kind == "deployment" and name.startswith(DEPLOYMENT_PREFIX):  # by its backing limit's name
        for row in await list_deployment_limits(client):
            if row.gcl_name == name:
                return row
        raise PrefectOpsError(f"no deployment limit {name}")
    return await read_limit(client, kind, name)


def _names(status: LimitStatus, count: int) -> str:
    names = [code(run.name) for run in status.waiting_runs[:min(count, SHOWN)]]
    return f": {', '.join(names)}" + (" …" if count > len(names) else "") if names else ""


def _s(count: int) -> str:
    return "s" if count != 1 else ""


async def what_if(client: Any, change: Any) -> str | None:
    """One line on the effect of `change` now; None when the target cannot be read."""
    kind, name = _target(change)
    try:
        status = await _read(client, kind, name)
    except PrefectOpsError:
        return None
    tasks = kind == "tag"
    if tasks:
        waiters = await live_waiting_tasks(client, name)
        status = status.model_copy(update={"waiting": len(waiters), "waiting_runs": waiters})
    held_back: list[str] = []
    if kind in ("work_pool", "work_queue") and status.waiting and change.action == "set":
        status, held_back = await _without_deployment_blocked(client, status)
    waiting = status.waiting
    noun = "queued task" if tasks else "waiting run"
    action, active = change.action, status.active_slots
    if kind == "global" and action not in ("reset",):
        return _global_line(change, status)
    if action in ("clear", "delete"):
        if not waiting:
            return f"nothing waits on this limit now; {active} slot(s) in use stop being counted"
        what = "deleting this tag limit" if tasks else "removing this limit"
        return f"{what} lets {waiting} {noun}{_s(waiting)} start at once" + ("" if tasks else _names(status, waiting))
    if action == "reset":
        free = min(waiting, status.limit or 0)
        return (f"resetting frees {active} counted slot(s); " +
                (f"up to {free} {noun}{_s(free)} can start" if waiting else "nothing waits on it now"))
    if action in ("enable", "disable"):
        return ("disabling stops this limit from counting: code that waits on it runs at once" if action == "disable"
                else "enabling makes code that calls concurrency() on it wait for slots again")
    new = getattr(change, "limit", None)
    if new is None:
        return None
    if tasks and new == 0:
        return ("with a limit of 0 every new task with this tag fails at once (aborted, not queued)"
                + (f"; the {waiting} queued fail too, at their next try for a slot" if waiting else "")
                + _zero_holders(active, "running"))
    if new < active:
        return f"lowering to {new} while {active} run: running runs finish; new runs wait"
    free = new - active
    if waiting and free > 0:
        starts = min(free, waiting)
        left = waiting - starts
        if kind == "deployment":
            line = _deployment_starts(status, starts, waiting)
        else:
            line = (f"approving lets {starts} {noun}{_s(starts)} start now"
                    + ("" if tasks else _names(status, starts)))
        if left:
            line += f"; {left} still wait, a limit of {active + waiting} would clear the backlog now"
        if kind in ("work_pool", "work_queue"):
            line += " (a worker starts them at its next poll)"
        return line + _held_back(held_back)
    if waiting:
        return (f"{waiting} {noun}{_s(waiting)} still wait: {active} of {new} slots are in use; "
                f"a limit of {active + waiting} would clear the backlog now") + _held_back(held_back)
    if held_back:
        return f"nothing this limit holds back waits now ({active} of {_show(status.limit)} in use)" + \
            _held_back(held_back)
    return f"nothing waits now ({active} of {_show(status.limit)} in use); this changes what happens to the next runs"


async def _without_deployment_blocked(client: Any, status: LimitStatus) -> tuple[LimitStatus, list[str]]:
    """A pool's or queue's due runs whose own deployment limit is full cannot start when the pool or queue is
    raised: a worker takes them, Prefect refuses them (AwaitingConcurrencySlot), and the next run gets the slot.
    Returns the status counting only the runs that can start, and the names of those held back."""
    pool = status.name.split("/", 1)[0] if status.kind == "work_queue" else status.name
    due = await read_flow_runs(client, flow_run_filter=FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
        next_scheduled_start_time=FlowRunFilterNextScheduledStartTime(before_=datetime.now(UTC))),
        work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[pool])),
        sort=FlowRunSort.NEXT_SCHEDULED_START_TIME_ASC, limit=200)
    if status.kind == "work_queue":
        due = [run for run in due if run.work_queue_id == status.id]
    dep_ids = sorted({str(run.deployment_id) for run in due if run.deployment_id})
    if not dep_ids:
        return status, []
    response = await client._client.post("/deployments/filter", json={"deployments": {"id": {"any_": dep_ids}},
                                                                       "limit": len(dep_ids)})
    free: dict[Any, int] = {}
    for dep in (DeploymentResponse.model_validate(item) for item in response.json()):
        gcl = dep.global_concurrency_limit
        if gcl is not None and gcl.active:
            free[dep.id] = max(0, gcl.limit - gcl.active_slots)
    startable, held = [], []
    for run in due:
        slots = free.get(run.deployment_id)
        if slots == 0:
            held.append(run)
            continue
        if slots is not None:
            free[run.deployment_id] = slots - 1
        startable.append(run)
    if not held:
        return status, []
    beyond = max(0, status.waiting - len(due))  # past the 200 read: counted as startable, as before
    return status.model_copy(update={"waiting": len(startable) + beyond,
                                     "waiting_runs": [waiting_run(r) for r in startable[:WAITING_SAMPLE]]}), \
        [run.name for run in held]


def _held_back(names: list[str]) -> str:
    if not names:
        return ""
    shown = ", ".join(code(name) for name in names[:SHOWN]) + (" …" if len(names) > SHOWN else "")
    return (f"; {len(names)} more wait{'s' if len(names) == 1 else ''} on {'its' if len(names) == 1 else 'their'} "
            f"deployment's full limit, which this change does not free: {shown}")


def _deployment_starts(status: LimitStatus, starts: int, waiting: int) -> str:
    """Prefect retries each refused run on its own clock (30 s later by default) and a worker may retry several
    in one poll, so when fewer can start than wait, which ones get the slots is a race: name them all as
    candidates, never as the winners."""
    if starts >= waiting:
        return f"approving lets {starts} waiting run{_s(starts)} start at Prefect's next retry" + _names(status, starts)
    return (f"approving lets {starts} of the {waiting} waiting runs start at Prefect's next retry (whichever is "
            f"retried first, which the bot cannot tell){_names(status, waiting)}")


def _global_line(change: Any, status: LimitStatus) -> str | None:
    """A plain global limit: its slots are known, its waiters are not."""
    active, new = status.active_slots, getattr(change, "limit", None)
    if change.action in ("enable", "disable", "delete"):
        return {"disable": "disabling stops this limit from counting: code that waits on it runs at once",
                "enable": "enabling makes code that calls concurrency() on it wait for slots again",
                "delete": "deleting it lets every concurrency() call on it run at once"}[change.action] + \
            f". {INVISIBLE}"
    if new is None:
        return None
    if new == 0:
        return ("with a limit of 0 every concurrency() call on it fails at once (refused, it does not wait), and so "
                "does code blocked in one now, at its next try" + _zero_holders(active, "holding"))
    if new < active:
        return f"lowering to {new} while {active} slot(s) are held: holders finish; new acquires wait"
    return f"{new - active} slot(s) would be free ({active} of {new} in use). {INVISIBLE}"


def _zero_holders(active: int, verb: str) -> str:
    """Prefect (3.9) cannot release a slot while its limit is 0 (the release fails), so the slots held when a
    limit goes to 0 stay counted after their holders end."""
    if not active:
        return ""
    return (f"; the {active} {verb} go on, but Prefect cannot release a slot while the limit is 0, so their "
            f"{active} slot(s) stay counted while it is 0")


def _show(value: int | None) -> str:
    return "no limit" if value is None else str(value)
