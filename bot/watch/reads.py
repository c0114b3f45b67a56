"""One read of everything the detectors look at: the concurrency map plus workers and waiting tasks.

Extra reads are made only where a detector needs them (workers for pools with Late runs, pending
task runs for full tag limits), so a quiet server costs the map and little more.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    TaskRunFilter,
    TaskRunFilterState,
    TaskRunFilterStateType,
    TaskRunFilterTags,
)
from prefect.client.schemas.objects import StateType, WorkerStatus
from pydantic import BaseModel, Field

from bot.prefect_ops import by_name
from bot.prefect_ops.concurrency_map import concurrency_map
from bot.prefect_ops.models import LimitStatus
from bot.prefect_ops.runs import read_task_runs

PARALLEL = 6


class WatchSnapshot(BaseModel):
    """Live state for the detectors; plain data, so detectors can be tested on hand-made values too."""

    read_at: datetime
    limits: list[LimitStatus] = Field(default_factory=list)
    online_workers: dict[str, int] = Field(default_factory=dict)  # pool → online workers (pools with Late runs)
    pools_without_workers: set[str] = Field(default_factory=set)  # push / managed pools need no worker
    tasks_waiting: dict[str, int] = Field(default_factory=dict)  # tag → pending task runs (full tags only)
    unpolled_queues: set[str] = Field(default_factory=set)  # "pool/queue" with Late runs nobody polls


def has_late(limit: LimitStatus) -> bool:
    return any(run.state == "Late" for run in limit.waiting_runs)


async def read_snapshot(client: PrefectClient) -> WatchSnapshot:
    """Read the map once, then the workers and pending tagged tasks the detectors will ask about."""
    cmap = await concurrency_map(client)
    gate = asyncio.Semaphore(PARALLEL)
    late_pools = [lim.name for lim in cmap.of_kind("work_pool") if has_late(lim)]
    full_tags = [lim.name for lim in cmap.of_kind("tag") if lim.full]

    async def workers(pool: str) -> tuple[str, int, bool]:
        async with gate:
            info = await by_name.read_work_pool(client, pool)
            if info.type.endswith((":push", ":managed")):
                return pool, 0, True
            found = await by_name.read_workers_for_work_pool(client, pool)
            return pool, sum(1 for w in found if w.status == WorkerStatus.ONLINE), False

    async def pending_tasks(tag: str) -> tuple[str, int]:
        async with gate:
            runs = await read_task_runs(client, task_run_filter=TaskRunFilter(
                tags=TaskRunFilterTags(all_=[tag]),
                state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.PENDING, StateType.SCHEDULED]))),
                limit=200)
            return tag, len(runs)

    async def unpolled(queue: LimitStatus) -> str | None:
        async with gate:
            info = await client.read_work_queue(queue.id)
            return queue.name if getattr(info.status, "value", info.status) == "NOT_READY" else None

    pools = await asyncio.gather(*(workers(p) for p in late_pools))
    tags = await asyncio.gather(*(pending_tasks(t) for t in full_tags))
    online = {name for name, count, _ in pools if count > 0}
    late_queues = [q for q in cmap.of_kind("work_queue")
                   if has_late(q) and not q.paused and q.id and q.name.split("/", 1)[0] in online]
    queues = await asyncio.gather(*(unpolled(q) for q in late_queues))
    return WatchSnapshot(
        read_at=cmap.read_at, limits=cmap.limits,
        online_workers={name: online for name, online, _ in pools},
        pools_without_workers={name for name, _, workerless in pools if workerless},
        tasks_waiting=dict(tags), unpolled_queues={q for q in queues if q},
    )
