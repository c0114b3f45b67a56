"""Pool and queue occupancy counted from the active flow runs, in one batched read.

Servers before Prefect 3.6.23 have no concurrency-status endpoints, so this computes the same
figures from older routes: a work pool's slots are its PENDING and RUNNING flow runs (what the
worker poll counts), a work queue's also its CANCELLING ones (what the queue scheduler counts),
exactly as Prefect's own `WORK_POOL_SLOT_OCCUPYING_STATES` / `WORK_QUEUE_SLOT_OCCUPYING_STATES`.
The watcher uses the same read for every pool and queue at once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import FlowRun, StateType

from bot.prefect_ops.models import Holder
from bot.prefect_ops.runs import flow_run_holder, paged, read_flow_runs

__all__ = [
    "POOL_SLOT_STATES", "QUEUE_SLOT_STATES", "Occupancy", "occupancy_of", "pool_and_queue_occupancy",
    "read_active_runs",
]

POOL_SLOT_STATES = frozenset({StateType.PENDING, StateType.RUNNING})
QUEUE_SLOT_STATES = frozenset({StateType.PENDING, StateType.RUNNING, StateType.CANCELLING})


@dataclass
class Occupancy:
    """The runs holding each pool's and each queue's slots (pools by name, queues by id)."""

    pools: dict[str, list[Holder]] = field(default_factory=dict)
    queues: dict[UUID, list[Holder]] = field(default_factory=dict)


def occupancy_of(runs: list[FlowRun]) -> Occupancy:
    """Group active runs by pool (PENDING/RUNNING) and queue (PENDING/RUNNING/CANCELLING)."""
    pools: dict[str, list[Holder]] = defaultdict(list)
    queues: dict[UUID, list[Holder]] = defaultdict(list)
    for run in runs:
        state_type = run.state.type if run.state else None
        if run.work_pool_name and state_type in POOL_SLOT_STATES:
            pools[run.work_pool_name].append(flow_run_holder(run))
        if run.work_queue_id and state_type in QUEUE_SLOT_STATES:
            queues[run.work_queue_id].append(flow_run_holder(run))
    return Occupancy(pools=dict(pools), queues=dict(queues))


async def read_active_runs(client: PrefectClient) -> list[FlowRun]:
    """Every flow run in PENDING, RUNNING or CANCELLING (paged; a handful of requests in all)."""
    states = FlowRunFilterState(type=FlowRunFilterStateType(any_=sorted(QUEUE_SLOT_STATES, key=str)))
    return await paged(lambda limit, offset: read_flow_runs(
        client, flow_run_filter=FlowRunFilter(state=states), limit=limit, offset=offset))


async def pool_and_queue_occupancy(client: PrefectClient) -> Occupancy:
    """Occupancy of every pool and queue from one batched read of the active runs."""
    return occupancy_of(await read_active_runs(client))
