"""What a proposed change would do right now, read from live data: the card's what-if line.

"approving lets 3 waiting runs start now: `brave-otter`, `calm-fox`, `eager-owl`"; "lowering to 1
while 3 run: running runs finish; new runs wait"; "deleting this tag limit lets 12 queued tasks start
at once". Computed when a card is built and again when someone clicks Approve.
"""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.filters import (
    TaskRunFilter,
    TaskRunFilterState,
    TaskRunFilterStateType,
    TaskRunFilterTags,
)
from prefect.client.schemas.objects import StateType

from bot.prefect_ops.errors import PrefectOpsError
from bot.prefect_ops.limits import read_limit
from bot.prefect_ops.models import LimitKind, LimitStatus
from bot.prefect_ops.runs import read_task_runs
from bot.safe_text import code

SHOWN = 3
_KIND: dict[str, LimitKind] = {"work_pool_limit": "work_pool", "work_queue_limit": "work_queue",
                               "deployment_limit": "deployment", "tag_limit": "tag", "global_limit": "global"}


def _target(change: Any) -> tuple[LimitKind, str]:
    kind = _KIND[change.kind]
    if kind == "work_queue":
        return kind, f"{change.pool}/{change.queue}"
    name = {"work_pool": "pool", "deployment": "deployment", "tag": "tag", "global": "name"}[kind]
    return kind, getattr(change, name)


async def _pending_tasks(client: Any, tag: str) -> int:
    runs = await read_task_runs(client, task_run_filter=TaskRunFilter(
        tags=TaskRunFilterTags(all_=[tag]),
        state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.PENDING, StateType.SCHEDULED]))),
        limit=200)
    return len(runs)


def _names(status: LimitStatus, count: int) -> str:
    names = [code(run.name) for run in status.waiting_runs[:min(count, SHOWN)]]
    return f": {', '.join(names)}" + (" …" if count > len(names) else "") if names else ""


async def what_if(client: Any, change: Any) -> str | None:
    """One line on the effect of `change` now; None when the target cannot be read."""
    kind, name = _target(change)
    try:
        status = await read_limit(client, kind, name)
    except PrefectOpsError:
        return None
    tasks = kind == "tag"
    waiting = await _pending_tasks(client, name) if tasks else status.waiting
    noun = "queued task" if tasks else "waiting run"
    plural = "s" if waiting != 1 else ""
    action, active = change.action, status.active_slots
    if action in ("clear", "delete"):
        if not waiting:
            return f"nothing waits on this limit now; {active} slot(s) in use stop being counted"
        what = "deleting this tag limit" if tasks else "removing this limit"
        return f"{what} lets {waiting} {noun}{plural} start at once" + ("" if tasks else _names(status, waiting))
    if action == "reset":
        return f"resetting frees {active} counted slot(s); up to {min(waiting, status.limit or 0)} {noun}(s) can start"
    if action in ("enable", "disable"):
        return ("disabling stops this limit from counting: code that waits on it runs at once" if action == "disable"
                else "enabling makes code that calls concurrency() on it wait for slots again")
    new = getattr(change, "limit", None)
    if new is None:
        return None
    if new < active:
        return f"lowering to {new} while {active} run: running runs finish; new runs wait"
    free = new - active
    if waiting and free > 0:
        starts = min(free, waiting)
        return (f"approving lets {starts} {noun}{'s' if starts != 1 else ''} start now"
                + ("" if tasks else _names(status, starts)))
    if waiting:
        return f"{waiting} {noun}{plural} still wait: {active} of {new} slots are in use"
    return f"nothing waits now ({active} of {_show(status.limit)} in use); this changes what happens to the next runs"


def _show(value: int | None) -> str:
    return "no limit" if value is None else str(value)
