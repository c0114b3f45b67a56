"""Read every kind of limit with its real occupancy, holders and waiting runs.

Each `list_*` function pages through everything the server has (never stopping at 10, 50 or 100)
and batches its lookups, so the whole map costs a handful of requests per kind, not one per limit.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterNextScheduledStartTime,
    FlowRunFilterState,
    FlowRunFilterStateName,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.responses import DeploymentResponse, GlobalConcurrencyLimitResponse
from prefect.client.schemas.sorting import FlowRunSort

from bot.prefect_ops import by_name
from bot.prefect_ops.errors import NotFound, at_boundary
from bot.prefect_ops.holder_events import gcl_holders
from bot.prefect_ops.models import LimitKind, LimitStatus, WaitingRun
from bot.prefect_ops.occupancy import pool_and_queue_occupancy
from bot.prefect_ops.runs import (
    PAGE,
    chunks,
    flow_run_holder,
    holders_for,
    paged,
    read_flow_runs,
    read_flows_by_id,
    utcnow,
    waiting_run,
)
from bot.prefect_ops.together import gather_reads

TAG_PREFIX = "tag:"
DEPLOYMENT_PREFIX = "deployment:"
AWAITING_SLOT = "AwaitingConcurrencySlot"
WAITING_SAMPLE = 5  # waiting runs listed per limit; `waiting` always holds the full count
PARALLEL_READS = 8


def isolated_note(exc: BaseException) -> str:
    """Why one object's detail is missing, in words (the error itself stays in the log)."""
    response = getattr(exc, "response", None) or getattr(getattr(exc, "http_exc", None), "response", None)
    status = getattr(response, "status_code", None)
    what = f"HTTP {status}" if status else type(exc).__name__
    return f"slot counts not shown: Prefect's API cannot address this name ({what})"


def kind_of_gcl(name: str) -> LimitKind:
    if name.startswith(TAG_PREFIX):
        return "tag"
    if name.startswith(DEPLOYMENT_PREFIX):
        return "deployment"
    return "global"


async def read_all_gcls(client: PrefectClient) -> list[GlobalConcurrencyLimitResponse]:
    """Every GCL row, tag- and deployment-backed ones included (the client's default page is 10)."""
    return await paged(lambda limit, offset: client.read_global_concurrency_limits(limit=limit, offset=offset))


def _gcl_status(gcl: GlobalConcurrencyLimitResponse, kind: LimitKind, name: str) -> LimitStatus:
    return LimitStatus(
        kind=kind,
        name=name,
        id=gcl.id,
        limit=gcl.limit,
        active_slots=gcl.active_slots,
        enabled=gcl.active,
        slot_decay_per_second=gcl.slot_decay_per_second or 0.0,
        gcl_name=gcl.name if kind != "global" else None,
    )


@at_boundary
async def list_global_limits(
    client: PrefectClient, gcls: list[GlobalConcurrencyLimitResponse] | None = None
) -> list[LimitStatus]:
    """Plain GCLs and rate limits; holders come from acquired/released events."""
    gcls = await read_all_gcls(client) if gcls is None else gcls
    plain = [g for g in gcls if kind_of_gcl(g.name) == "global"]
    holders = await gcl_holders(client, [g.id for g in plain if g.active_slots > 0])
    statuses = []
    for gcl in plain:
        status = _gcl_status(gcl, "global", gcl.name)
        status.holders = holders.get(gcl.id, [])
        status.holders_known = gcl.active_slots == 0 or len(status.holders) >= 1
        statuses.append(status)
    return statuses


@at_boundary
async def list_tag_limits(
    client: PrefectClient, gcls: list[GlobalConcurrencyLimitResponse] | None = None
) -> list[LimitStatus]:
    """Tag limits with the task runs holding them.

    The list comes from the `tag:` GCLs: Prefect 3.9.1's v1 list endpoint only looks at the first
    `limit + offset` GCL rows of every kind, so with many GCLs it silently drops tag limits. Holders
    come from the per-tag v1 read (it names the task runs), only for tags with slots in use.
    """
    gcls, v1_page = await gather_reads(
        read_all_gcls(client) if gcls is None else _given(gcls),
        client.read_concurrency_limits(limit=PAGE, offset=0),  # pre-migration v1-only rows, if any
    )
    tag_gcls = [g for g in gcls if kind_of_gcl(g.name) == "tag"]
    gate = asyncio.Semaphore(PARALLEL_READS)
    notes: dict[str, str] = {}

    async def slots_of(tag: str) -> list[UUID] | None:
        async with gate:
            try:
                return list((await by_name.read_concurrency_limit_by_tag(client, tag)).active_slots)
            except Exception as exc:  # one tag Prefect cannot read by name blinds no other tag
                notes[tag] = isolated_note(exc)
                return None

    busy = [g for g in tag_gcls if g.active_slots > 0]
    slot_lists = await gather_reads(*(slots_of(g.name.removeprefix(TAG_PREFIX)) for g in busy))
    slots_by_tag = {g.name: ids for g, ids in zip(busy, slot_lists, strict=True) if ids is not None}
    holders = await holders_for(client, [("task_run", rid) for ids in slots_by_tag.values() for rid in ids])
    statuses = []
    for gcl in tag_gcls:
        status = _gcl_status(gcl, "tag", gcl.name.removeprefix(TAG_PREFIX))
        status.holders = [holders[rid] for rid in slots_by_tag.get(gcl.name, [])]
        status.read_note = notes.get(status.name)
        status.holders_known = status.read_note is None
        statuses.append(status)
    known = {s.name for s in statuses}
    for v1 in v1_page:
        if v1.tag not in known:
            statuses.append(
                LimitStatus(
                    kind="tag",
                    name=v1.tag,
                    id=v1.id,
                    limit=v1.concurrency_limit,
                    active_slots=len(v1.active_slots),
                    holders=[
                        h for h in (await holders_for(client, [("task_run", r) for r in v1.active_slots])).values()
                    ],
                )
            )
    return statuses


async def _given(value):
    return value


def deployment_display_name(deployment: DeploymentResponse, flow_names: dict[UUID, str]) -> str:
    return f"{flow_names.get(deployment.flow_id, '?')}/{deployment.name}"


async def read_all_deployments(client: PrefectClient) -> list[DeploymentResponse]:
    return await paged(lambda limit, offset: client.read_deployments(limit=limit, offset=offset))


async def _runs_of_deployments(client: PrefectClient, ids: list[UUID], state: FlowRunFilterState):
    runs = []
    for chunk in chunks(ids):
        runs += await paged(
            lambda limit, offset, chunk=chunk: read_flow_runs(
                client,
                flow_run_filter=FlowRunFilter(state=state),
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=chunk)),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=limit,
                offset=offset,
            )
        )
    return runs


async def holder_ids(client: PrefectClient, limit: LimitStatus) -> set[UUID]:
    """The runs holding a tag or deployment limit now, by id, in one call (a tag's leased task runs; a
    deployment's Pending, Running and Cancelling runs): what `list_tag_limits` and
    `list_deployment_limits` name as holders, without the details."""
    if limit.kind == "tag":
        return set((await by_name.read_concurrency_limit_by_tag(client, limit.name)).active_slots)
    if limit.kind == "deployment" and limit.id is not None:
        runs = await _runs_of_deployments(client, [limit.id], FlowRunFilterState(type=FlowRunFilterStateType(
            any_=[StateType.PENDING, StateType.RUNNING, StateType.CANCELLING])))
        return {run.id for run in runs}
    raise ValueError(f"no holders to read for a {limit.kind} limit")


@at_boundary
async def list_deployment_limits(
    client: PrefectClient,
    gcls: list[GlobalConcurrencyLimitResponse] | None = None,
    deployments: list[DeploymentResponse] | None = None,
) -> list[LimitStatus]:
    """Deployment limits: holders are the PENDING/RUNNING/CANCELLING runs, waiters are AwaitingConcurrencySlot."""
    gcls, deployments = await gather_reads(
        read_all_gcls(client) if gcls is None else _given(gcls),
        read_all_deployments(client) if deployments is None else _given(deployments),
    )
    limited = [d for d in deployments if d.global_concurrency_limit is not None]
    ids = [d.id for d in limited]
    flows, holding, waiting = await gather_reads(
        read_flows_by_id(client, {d.flow_id for d in limited}),
        _runs_of_deployments(
            client,
            ids,
            # CANCELLING runs still hold their deployment slot (it comes back at Cancelled)
            FlowRunFilterState(type=FlowRunFilterStateType(
                any_=[StateType.PENDING, StateType.RUNNING, StateType.CANCELLING])),
        ),
        _runs_of_deployments(client, ids, FlowRunFilterState(name=FlowRunFilterStateName(any_=[AWAITING_SLOT]))),
    )
    flow_names = {fid: flow.name for fid, flow in flows.items()}
    holders_by_dep, waiting_by_dep = defaultdict(list), defaultdict(list)
    for run in holding:
        holders_by_dep[run.deployment_id].append(flow_run_holder(run))
    for run in waiting:
        waiting_by_dep[run.deployment_id].append(waiting_run(run))
    statuses = []
    for dep in limited:
        gcl = dep.global_concurrency_limit
        assert gcl is not None
        options = dep.concurrency_options
        status = _gcl_status(gcl, "deployment", deployment_display_name(dep, flow_names))
        status.id = dep.id
        status.collision_strategy = options.collision_strategy.value if options else "ENQUEUE"
        status.grace_period_seconds = options.grace_period_seconds if options else None
        status.holders = holders_by_dep[dep.id]
        status.waiting = len(waiting_by_dep[dep.id])
        status.waiting_runs = waiting_by_dep[dep.id][:WAITING_SAMPLE]
        statuses.append(status)
    known = {d.global_concurrency_limit.name for d in limited if d.global_concurrency_limit}
    for gcl in gcls:  # a deployment-backed GCL whose deployment is gone still counts slots
        if kind_of_gcl(gcl.name) == "deployment" and gcl.name not in known:
            statuses.append(_gcl_status(gcl, "deployment", f"{gcl.name} (deployment deleted)"))
    return statuses


async def _due_runs(client: PrefectClient) -> list:
    """Scheduled runs (Scheduled, Late, AwaitingConcurrencySlot) whose start time has passed."""
    return await paged(
        lambda limit, offset: read_flow_runs(
            client,
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
                next_scheduled_start_time=FlowRunFilterNextScheduledStartTime(before_=utcnow()),
            ),
            sort=FlowRunSort.NEXT_SCHEDULED_START_TIME_ASC,
            limit=limit,
            offset=offset,
        )
    )


@at_boundary
async def list_pool_and_queue_limits(client: PrefectClient) -> tuple[list[LimitStatus], list[LimitStatus]]:
    """Work pools and their queues: holders from one read of active runs (bot.prefect_ops.occupancy), due
    runs waiting. A handful of paged reads however many pools there are."""
    pools, queues, due, occupancy = await gather_reads(
        paged(lambda limit, offset: client.read_work_pools(limit=limit, offset=offset)),
        paged(lambda limit, offset: client.read_work_queues(limit=limit, offset=offset)),
        _due_runs(client),
        pool_and_queue_occupancy(client),
    )
    waiting_by_pool: dict[str, list[WaitingRun]] = defaultdict(list)
    waiting_by_queue: dict[UUID, list[WaitingRun]] = defaultdict(list)
    for run in due:
        if run.work_pool_name:
            waiting_by_pool[run.work_pool_name].append(waiting_run(run))
        if run.work_queue_id:
            waiting_by_queue[run.work_queue_id].append(waiting_run(run))
    queues_by_pool: dict[str, list] = defaultdict(list)
    for queue in sorted(queues, key=lambda q: (q.priority or 0, q.name)):
        if queue.work_pool_name:
            queues_by_pool[queue.work_pool_name].append(queue)
    pool_rows, queue_rows = [], []
    for pool in pools:
        holders = occupancy.pools.get(pool.name, [])
        waits = waiting_by_pool[pool.name]
        pool_rows.append(LimitStatus(
            kind="work_pool", name=pool.name, id=pool.id, limit=pool.concurrency_limit, active_slots=len(holders),
            paused=pool.is_paused, holders=holders, waiting=len(waits), waiting_runs=waits[:WAITING_SAMPLE]))
        for queue in queues_by_pool[pool.name]:
            holders = occupancy.queues.get(queue.id, [])
            waits = waiting_by_queue[queue.id]
            queue_rows.append(LimitStatus(
                kind="work_queue", name=f"{pool.name}/{queue.name}", id=queue.id, limit=queue.concurrency_limit,
                active_slots=len(holders), paused=bool(queue.is_paused), holders=holders, waiting=len(waits),
                waiting_runs=waits[:WAITING_SAMPLE]))
    return pool_rows, queue_rows


@at_boundary
async def list_limits(client: PrefectClient, kind: LimitKind) -> list[LimitStatus]:
    """Every limit of one kind with occupancy."""
    if kind == "global":
        return await list_global_limits(client)
    if kind == "tag":
        return await list_tag_limits(client)
    if kind == "deployment":
        return await list_deployment_limits(client)
    pools, queues = await list_pool_and_queue_limits(client)
    return pools if kind == "work_pool" else queues


@at_boundary
async def read_limit(client: PrefectClient, kind: LimitKind, name: str) -> LimitStatus:
    """One limit by its exact display name (see resolve.py for what people type)."""
    rows = await list_limits(client, kind)
    for row in rows:
        if (
            row.name == name
            or (kind == "work_queue" and row.name.split("/", 1)[-1] == name)
            or (kind == "deployment" and row.name.split("/", 1)[-1] == name)
        ):
            return row
    raise NotFound(
        kind.replace("_", " ") + " limit",
        name,
        sorted(r.name for r in rows),
        noun=f"{kind.replace('_', ' ')} limits",
    )
