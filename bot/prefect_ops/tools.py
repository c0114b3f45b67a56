"""The read-only Prefect tools offered to the model.

Each tool opens its own Prefect client (the model never sees one), takes plain JSON-able
parameters and returns compact results: names, numbers, holders and waiting counts. Errors are
`PrefectOpsError`s with messages meant for the model to relay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import get_client

from bot.prefect_ops import diagnose as _diagnose
from bot.prefect_ops import leaks as _leaks
from bot.prefect_ops import limits as _limits
from bot.prefect_ops import resolve as _resolve
from bot.prefect_ops.concurrency_map import concurrency_map as read_concurrency_map
from bot.prefect_ops.errors import NotFound, at_boundary
from bot.prefect_ops.models import Holder, LimitKind, LimitStatus

HOLDERS_IN_RESULT = 5


def _holder(h: Holder) -> str:
    age = f", {int(h.seconds_in_state // 60)} min" if h.seconds_in_state is not None else ""
    return f"{h.name or h.id} ({h.state or 'gone'}{age})"


def compact(limit: LimitStatus) -> dict[str, Any]:
    """One limit as the model should see it: no ids, at most a few holders."""
    row: dict[str, Any] = {
        "kind": limit.kind,
        "name": limit.name,
        "limit": limit.limit,
        "active_slots": limit.active_slots,
    }
    if not limit.enabled:
        row["enabled"] = False
    if limit.paused:
        row["paused"] = True
    if limit.is_rate_limit:
        row["slot_decay_per_second"] = limit.slot_decay_per_second
    if limit.collision_strategy:
        row["collision_strategy"] = limit.collision_strategy
    if limit.holders:
        row["holders"] = [_holder(h) for h in limit.holders[:HOLDERS_IN_RESULT]]
        if len(limit.holders) > HOLDERS_IN_RESULT:
            row["more_holders"] = len(limit.holders) - HOLDERS_IN_RESULT
    elif limit.active_slots and not limit.holders_known:
        row["holders"] = "not recorded (slots taken outside a flow or task run)"
    if limit.waiting:
        row["waiting"] = limit.waiting
        row["waiting_runs"] = [w.name for w in limit.waiting_runs]
    notes = [n for n in (limit.read_note, limit.unchangeable_reason()) if n]
    if notes:  # an odd object is listed like any other, with why the bot cannot touch it
        row["note"] = "; ".join(notes) + ("; the bot cannot change it, a person must" if limit.unchangeable_reason()
                                          else "")
    return row


async def list_concurrency_limits(
    kind: LimitKind | None = None, only_busy: bool = False
) -> list[dict[str, Any]]:
    """Every concurrency limit of every kind with live occupancy, holders and waiting runs.

    Use it for "what limits do we have?", "what is full right now?" or before proposing a limit.
    Kinds: global (GCLs and rate limits), tag, deployment, work_pool, work_queue. `only_busy`
    keeps limits with slots in use, waiting runs or a pause.
    """
    async with get_client() as client:
        cmap = await read_concurrency_map(client, [kind] if kind else None)
    rows = cmap.limits
    if only_busy:
        rows = [r for r in rows if r.active_slots or r.waiting or r.paused]
    return [compact(r) for r in rows]


async def inspect_limit(kind: LimitKind, name: str) -> dict[str, Any]:
    """One limit in detail: its setting, active slots, who holds them and who waits.

    Use it when the user names a specific deployment, pool, queue, tag or global limit. `name`
    may be what the user typed; it is resolved to the closest object of that kind.
    """
    async with get_client() as client:
        target = await _resolve_one(client, name, kind)
        status = await _limits.read_limit(client, kind, target)
    row = compact(status)
    row["holders"] = [_holder(h) for h in status.holders]
    return row


async def diagnose_run(run_or_deployment: str) -> dict[str, Any]:
    """Explain why a flow run (name or id), or a deployment's waiting run, is not running.

    Use it for "why is my run stuck / waiting / Late?". Checks, in order: the run's state, the
    deployment limit, the work queue, the work pool (paused, full, no worker), tag limits and the
    Late backlog. Returns the blocking object with evidence and a suggested change (not applied).
    """
    async with get_client() as client:
        diagnosis = await _diagnose.diagnose_run(client, run_or_deployment)
    blocker = diagnosis.blocker
    return {
        "run": diagnosis.run_name,
        "state": diagnosis.run_state,
        "answer": diagnosis.summary,
        "blocking": blocker.model_dump(mode="json", exclude_none=True) if blocker else None,
        "checks": [f"{f.check}: {f.summary}" for f in diagnosis.findings],
    }


async def find_leaked_slots(stuck_after_hours: float = 6.0) -> list[dict[str, Any]]:
    """Slots that look leaked: held by runs that ended or no longer exist, or stuck too long.

    Use it when limits look full but nothing seems to run. Pool and queue holders count as stuck
    after `stuck_after_hours` in Pending or Running. Returns reset candidates; nothing is reset.
    A candidate with `suggested.propose` gives the exact `propose_change` arguments for its fix
    (for tag and global limits: reset, which sets active slots to 0 and frees them).
    """
    async with get_client() as client:
        leaks = await _leaks.find_leaked_slots(client, stuck_after_hours * 3600)
    return [
        {
            "kind": leak.kind,
            "limit": leak.limit_name,
            "reason": leak.reason,
            "suggested": leak.reset.model_dump(mode="json", exclude_none=True),
        }
        for leak in leaks
    ]


async def resolve_name(text: str, kind: LimitKind | None = None) -> dict[str, Any]:
    """Find which deployment, work pool, work queue, tag limit or global limit a name refers to.

    Use it when the user's wording ("nightly etl", "the etl pool") may not be an exact name. If
    several objects fit, all candidates come back so you can ask the user which one.
    """
    async with get_client() as client:
        resolution = await _resolve.resolve_name(client, text, kind)
    return resolution.model_dump(mode="json", exclude_none=True)


async def list_global_concurrency_limits() -> list[dict[str, Any]]:
    """All global concurrency limits (GCLs) and rate limits, paged through completely.

    Use it for questions about limits used with `concurrency()` / `rate_limit()` in code. Tag and
    deployment limits are listed by their own tools.
    """
    async with get_client() as client:
        rows = await _limits.list_global_limits(client)
    return [compact(r) for r in rows]


async def list_tag_limits() -> list[dict[str, Any]]:
    """All task-run tag limits with the task runs holding their slots.

    Use it for questions about limiting tasks by tag (`prefect concurrency-limit`).
    """
    async with get_client() as client:
        rows = await _limits.list_tag_limits(client)
    return [compact(r) for r in rows]


async def list_work_pools() -> list[dict[str, Any]]:
    """All work pools and their queues, with limits, slots in use, holders, pauses and due runs.

    Use it for questions about work pool or work queue concurrency.
    """
    async with get_client() as client:
        pools, queues = await _limits.list_pool_and_queue_limits(client)
    return [compact(r) for r in [*pools, *queues]]


async def read_deployment_limit(deployment: str) -> dict[str, Any]:
    """A deployment's concurrency limit, collision strategy (ENQUEUE or CANCEL_NEW), holders and waiters.

    Use it for "is this deployment serial?" or before proposing a deployment limit. `deployment`
    may be "flow/deployment", the deployment name alone or what the user typed.
    """
    async with get_client() as client:
        return await _deployment_limit(client, deployment)


@at_boundary
async def _deployment_limit(client: Any, deployment: str) -> dict[str, Any]:
    name = await _resolve_one(client, deployment, "deployment")
    try:
        return compact(await _limits.read_limit(client, "deployment", name))
    except NotFound:
        return {
            "kind": "deployment",
            "name": name,
            "limit": None,
            "note": "no concurrency limit: runs of this deployment are not limited",
        }


async def _resolve_one(client: Any, text: str, kind: LimitKind) -> str:
    names = await _resolve.known_names(client, [kind])
    return _resolve.require_match(
        _resolve.resolve_among(text, names, kind), names, kind.replace("_", " ")
    ).name


PREFECT_READ_TOOLS: list[Callable[..., Any]] = [
    list_concurrency_limits,
    inspect_limit,
    diagnose_run,
    find_leaked_slots,
    resolve_name,
    list_global_concurrency_limits,
    list_tag_limits,
    list_work_pools,
    read_deployment_limit,
]
