"""One read of everything the detectors look at: the concurrency map plus workers and waiting tasks.

Extra reads are made only where a detector needs them (workers for pools with Late runs, pending
task runs for full tag limits), so a quiet server costs the map and little more.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from httpx import HTTPStatusError
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterNextScheduledStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import StateType, WorkerStatus
from prefect.client.schemas.responses import GlobalConcurrencyLimitResponse
from prefect.client.schemas.sorting import FlowRunSort
from pydantic import BaseModel, Field

from bot.prefect_ops import by_name
from bot.prefect_ops.concurrency_map import concurrency_map
from bot.prefect_ops.limits import (
    holder_ids,
    list_deployment_limits,
    list_global_limits,
    list_pool_and_queue_limits,
    list_tag_limits,
)
from bot.prefect_ops.liveness import live_running_tasks, live_waiting_tasks
from bot.prefect_ops.models import Holder, LimitStatus, WaitingRun
from bot.prefect_ops.names import api_path
from bot.prefect_ops.runs import paged, read_flow_runs, utcnow, waiting_run
from bot.prefect_ops.together import gather_reads
from bot.watch.budget import Throttled
from bot.watch.targets import Targets

log = logging.getLogger(__name__)
PARALLEL = 6


class WatchSnapshot(BaseModel):
    """Live state for the detectors; plain data, so detectors can be tested on hand-made values too."""

    read_at: datetime
    limits: list[LimitStatus] = Field(default_factory=list)
    # pool → online workers, pools with Late runs only (1 stands for "at least one" when read from the pool's status)
    online_workers: dict[str, int] = Field(default_factory=dict)
    pools_without_workers: set[str] = Field(default_factory=set)  # push / managed pools need no worker
    tasks_waiting: dict[str, int] = Field(default_factory=dict)  # tag → live waiting task runs (full tags only)
    tag_waiters: dict[str, list[WaitingRun]] = Field(default_factory=dict)  # tag → live waiting tasks, oldest first
    tag_unleased_live: dict[str, list[Holder]] = Field(default_factory=dict)  # tag → live Running tasks, no lease
    deployment_due: dict[str, list[WaitingRun]] = Field(default_factory=dict)  # disabled/0 deployment → due runs
    unpolled_queues: set[str] = Field(default_factory=set)  # "pool/queue" with Late runs nobody polls
    # "tag:<name>" / "deployment:<name>" → slots that looked counted for no holder only because a holder
    # came or went between the reads of the count and of the holders (see `slots_in_flight`)
    slots_in_flight: dict[str, int] = Field(default_factory=dict)


def flight_key(limit: LimitStatus) -> str:
    return f"{limit.kind}:{limit.name}"


def has_late(limit: LimitStatus) -> bool:
    return any(run.state == "Late" for run in limit.waiting_runs)


async def read_snapshot(client: PrefectClient) -> WatchSnapshot:
    """Read the map once, then the workers and pending tagged tasks the detectors will ask about."""
    cmap = await concurrency_map(client)
    return await _complete(client, cmap.read_at, cmap.limits)


async def _complete(client: PrefectClient, read_at: datetime, limits: list[LimitStatus],
                    known: WatchSnapshot | None = None) -> WatchSnapshot:
    """The reads the detectors need beyond the limits themselves, only for the limits that need them.
    With `known` (a targeted read), workers and queue polling already read at the last full read are
    reused: they change with worker start/stop, which the next full read sees."""
    gate = asyncio.Semaphore(PARALLEL)

    def of_kind(kind: str) -> list[LimitStatus]:
        return [lim for lim in limits if lim.kind == kind]

    late_pools = [lim.name for lim in of_kind("work_pool") if has_late(lim)]
    if known is not None:
        seen = set(known.online_workers) | known.pools_without_workers
        reused = [(p, known.online_workers.get(p, 0), p in known.pools_without_workers) for p in late_pools
                  if p in seen]
        late_pools = [p for p in late_pools if p not in seen]
    full_tags = [lim.name for lim in of_kind("tag") if lim.full]

    async def workers(pool: str) -> tuple[str, int, bool] | None:
        async with gate:
            try:
                info = await by_name.read_work_pool(client, pool)
                if info.type.endswith((":push", ":managed")):
                    return pool, 0, True
                found = await by_name.read_workers_for_work_pool(client, pool)
            except Exception as exc:  # one pool Prefect cannot read by name: unknown, the others go on
                log.warning("watcher could not read the workers of one pool: %s", type(exc).__name__)
                return None
            return pool, sum(1 for w in found if w.status == WorkerStatus.ONLINE), False

    async def waiting_tasks(tag: str) -> tuple[str, list[WaitingRun]] | None:
        async with gate:
            try:
                return tag, await live_waiting_tasks(client, tag)
            except Exception as exc:  # isolated like `workers`
                log.warning("watcher could not read the tasks of one tag: %s", type(exc).__name__)
                return None

    async def unleased(limit: LimitStatus) -> tuple[str, list[Holder]] | None:
        async with gate:
            leased = {h.id for h in limit.holders}
            try:
                running = await live_running_tasks(client, limit.name)
            except Exception as exc:  # isolated like `workers`
                log.warning("watcher could not read the running tasks of one tag: %s", type(exc).__name__)
                return None
            return limit.name, [h for h in running if h.id not in leased]

    async def unpolled(queue: LimitStatus) -> str | None:
        async with gate:
            try:
                info = await client.read_work_queue(queue.id)
            except Exception as exc:  # isolated like `workers`
                log.warning("watcher could not read one work queue: %s", type(exc).__name__)
                return None
            return queue.name if getattr(info.status, "value", info.status) == "NOT_READY" else None

    by_status = await _workers_from_status(client, late_pools)
    counted = [p for p in late_pools if p not in by_status]  # paused, or a server without pool status
    pools = list(by_status.values())
    pools += [p for p in await gather_reads(*(workers(p) for p in counted)) if p is not None]
    if known is not None:
        pools += reused
    tags = dict(t for t in await gather_reads(*(waiting_tasks(t) for t in full_tags)) if t is not None)
    unleased_tags = [lim for lim in of_kind("tag") if lim.active_slots > len(lim.holders)]
    live_unleased = dict(u for u in await gather_reads(*(unleased(lim) for lim in unleased_tags)) if u is not None)
    in_flight = await slots_in_flight(client, [lim for lim in limits if lim.active_slots > len(lim.holders)
                                               and (lim.kind == "tag" or (lim.kind == "deployment" and lim.id))])
    blocked = [lim for lim in of_kind("deployment") if lim.id and (not lim.enabled or lim.limit == 0)]
    due = await _due_runs_of(client, blocked)
    online = {name for name, count, _ in pools if count > 0}
    late_queues = [q for q in of_kind("work_queue")
                   if has_late(q) and not q.paused and q.id and q.name.split("/", 1)[0] in online]
    if known is not None:  # queues already found unpolled stay so until the next full read
        queues = [q.name for q in late_queues if q.name in known.unpolled_queues]
    else:
        queues = await gather_reads(*(unpolled(q) for q in late_queues))
    return WatchSnapshot(
        read_at=read_at, limits=limits,
        online_workers={name: online for name, online, _ in pools},
        pools_without_workers={name for name, _, workerless in pools if workerless},
        tasks_waiting={tag: len(runs) for tag, runs in tags.items()}, tag_waiters=tags,
        tag_unleased_live=live_unleased, deployment_due=due, unpolled_queues={q for q in queues if q},
        slots_in_flight=in_flight,
    )


async def slots_in_flight(client: PrefectClient, limits: list[LimitStatus]) -> dict[str, int]:
    """For limits whose count exceeded their named holders: how many of those slots were only a holder
    coming or going while the read ran.

    The count (from the limit) and the holders (leases, or a deployment's active runs) come from
    different calls, so a slot released in between looks counted for nobody. Read the count again,
    then the holders again: a holder seen in either holder read is no unheld slot, and a holder that
    came after the first read is in the second. What is left is counted for nobody across the whole
    read; a lost lease (a server restart) or a reset that kept the count stays, a release does not."""
    gate = asyncio.Semaphore(PARALLEL)

    async def recount(limit: LimitStatus) -> tuple[str, int] | None:
        async with gate:
            try:
                gcl = await _gcl_by_name_or_id(client, limit.gcl_name or f"tag:{limit.name}")
                after = await holder_ids(client, limit)
            except Throttled:  # a 429 ends the read, as everywhere else in it
                raise
            except Exception as exc:  # unread: the first reading stands, as before this check
                log.warning("watcher could not read one %s limit again: %s", limit.kind, type(exc).__name__)
                return None
        if gcl is None:
            return None
        before = {h.id for h in limit.holders}
        seen = limit.active_slots - len(before)
        settled = max(0, gcl.active_slots - len(before | after))
        return flight_key(limit), max(0, seen - settled)

    found = await gather_reads(*(recount(limit) for limit in limits))
    return {key: count for key, count in (f for f in found if f is not None) if count}


async def _workers_from_status(client: PrefectClient, names: list[str]) -> dict[str, tuple[str, int, bool]]:
    """(pool, online workers, needs none) for these pools from one filter call instead of two calls per pool:
    Prefect keeps a pool READY while one of its workers is online and marks it NOT_READY when none is (the
    same pass of its foreman service that marks the workers offline). Paused pools and pools without a
    status (older servers) are left out: their workers are counted one by one."""
    if not names:
        return {}
    try:
        found = await paged(lambda limit, offset: client.read_work_pools(
            work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=names)), limit=limit, offset=offset))
    except Exception as exc:  # counted one by one instead
        log.warning("watcher could not read the status of pools: %s", type(exc).__name__)
        return {}
    out: dict[str, tuple[str, int, bool]] = {}
    for pool in found:
        status = getattr(pool.status, "value", pool.status)
        if pool.type.endswith((":push", ":managed")):
            out[pool.name] = (pool.name, 0, True)
        elif status in ("READY", "NOT_READY"):
            out[pool.name] = (pool.name, 1 if status == "READY" else 0, False)
    return out


async def _due_runs_of(client: PrefectClient, deployments: list[LimitStatus]) -> dict[str, list[WaitingRun]]:
    """Due runs (Scheduled, Late, AwaitingConcurrencySlot) of deployments whose own limit is disabled or 0:
    one paged read for all of them, since Prefect never starts these runs."""
    if not deployments:
        return {}
    names = {lim.id: lim.name for lim in deployments}
    runs = await paged(lambda limit, offset: read_flow_runs(
        client, flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
            next_scheduled_start_time=FlowRunFilterNextScheduledStartTime(before_=utcnow())),
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=list(names))),
        sort=FlowRunSort.NEXT_SCHEDULED_START_TIME_ASC, limit=limit, offset=offset))
    out: dict[str, list[WaitingRun]] = {}
    for run in runs:
        out.setdefault(names[run.deployment_id], []).append(waiting_run(run))
    return out


async def _gcl_by_name_or_id(client: PrefectClient, ident: str) -> GlobalConcurrencyLimitResponse | None:
    try:
        response = await client.request("GET", api_path("v2", "concurrency_limits", ident))
    except HTTPStatusError as exc:
        if exc.response.status_code == 404:
            return None
        raise
    return GlobalConcurrencyLimitResponse.model_validate(response.json())


class TargetedParts(BaseModel):
    """What one targeted read found: the objects `targets` names, freshly read. Kept apart from the
    snapshot it was read against so it can also be laid over a full read that started before it."""

    targets: Targets
    fresh: list[LimitStatus] = Field(default_factory=list)
    partial: WatchSnapshot


async def read_target_parts(client: PrefectClient, previous: WatchSnapshot, targets: Targets) -> TargetedParts:
    """Re-read only the objects `targets` names (`previous` supplies workers and queue polling, which
    only full reads refresh)."""
    read_at = utcnow()
    fresh: list[LimitStatus] = []
    if targets.pools:
        pools, queues = await list_pool_and_queue_limits(client)
        fresh += pools + queues
    if targets.deployments:
        ids = list(targets.deployments)
        deployments = await paged(lambda limit, offset: client.read_deployments(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=ids)), limit=limit, offset=offset))
        fresh += await list_deployment_limits(client, [], deployments)
    if targets.tags:
        found = [await _gcl_by_name_or_id(client, f"tag:{tag}") for tag in sorted(targets.tags)]
        fresh += [row for row in await list_tag_limits(client, [g for g in found if g is not None])
                  if row.name in targets.tags]
    if targets.limits:
        found = [await _gcl_by_name_or_id(client, str(limit_id)) for limit_id in sorted(targets.limits, key=str)]
        fresh += await list_global_limits(client, [g for g in found if g is not None])
    partial = await _complete(client, read_at, fresh, previous)
    return TargetedParts(targets=targets.model_copy(deep=True), fresh=fresh, partial=partial)


def merge_parts(base: WatchSnapshot, parts: TargetedParts) -> WatchSnapshot:
    """`base` with the objects `parts` re-read replaced (or dropped, when they are gone); the rest as in
    `base`."""
    targets, fresh, partial = parts.targets, parts.fresh, parts.partial
    gone: set[tuple[str, str]] = set()  # (kind, name) of base rows replaced or deleted
    if targets.pools:
        gone |= {(lim.kind, lim.name) for lim in base.limits if lim.kind in ("work_pool", "work_queue")}
    if targets.deployments:
        gone |= {(lim.kind, lim.name) for lim in base.limits
                 if lim.kind == "deployment" and lim.id in targets.deployments}
    gone |= {("tag", tag) for tag in targets.tags}
    if targets.limits:
        gone |= {(lim.kind, lim.name) for lim in base.limits if lim.kind == "global" and lim.id in targets.limits}
    gone |= {(lim.kind, lim.name) for lim in fresh}
    limits = [lim for lim in base.limits if (lim.kind, lim.name) not in gone] + fresh

    def names(kind: str) -> set[str]:
        return {name for k, name in gone if k == kind}

    def merged(old: dict, new: dict, kind: str) -> dict:
        return {k: v for k, v in old.items() if k not in names(kind)} | new

    return WatchSnapshot(
        read_at=max(base.read_at, partial.read_at), limits=limits,
        online_workers=merged(base.online_workers, partial.online_workers, "work_pool"),
        pools_without_workers={p for p in base.pools_without_workers if p not in names("work_pool")}
        | partial.pools_without_workers,
        tasks_waiting=merged(base.tasks_waiting, partial.tasks_waiting, "tag"),
        tag_waiters=merged(base.tag_waiters, partial.tag_waiters, "tag"),
        tag_unleased_live=merged(base.tag_unleased_live, partial.tag_unleased_live, "tag"),
        deployment_due=merged(base.deployment_due, partial.deployment_due, "deployment"),
        unpolled_queues={q for q in base.unpolled_queues if q not in names("work_queue")}
        | partial.unpolled_queues,
        slots_in_flight={k: v for k, v in base.slots_in_flight.items() if tuple(k.split(":", 1)) not in gone}
        | partial.slots_in_flight,
    )


async def read_targets(client: PrefectClient, previous: WatchSnapshot, targets: Targets) -> WatchSnapshot:
    """Re-read only the objects `targets` names and merge them into `previous`: a few calls per event burst
    instead of a full read. Objects not named keep their last full read."""
    return merge_parts(previous, await read_target_parts(client, previous, targets))
