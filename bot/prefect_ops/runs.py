"""Reading runs in bulk and turning them into holders and waiting runs.

Every list read pages through the whole result (the server caps a page at 200); ids are looked up
in chunks so one request never carries an unbounded filter.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar
from uuid import UUID

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterId,
    FlowRunFilter,
    FlowRunFilterId,
    TaskRunFilter,
    TaskRunFilterId,
)
from prefect.client.schemas.objects import Flow, FlowRun, TaskRun

from bot.prefect_ops.models import Holder, WaitingRun

PAGE = 200  # the server's maximum page size (PREFECT_SERVER_API_DEFAULT_LIMIT)
T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


async def paged(fetch: Callable[[int, int], Awaitable[list[T]]], page: int = PAGE) -> list[T]:
    """All items of a list endpoint: `fetch(limit, offset)` until a short page."""
    items: list[T] = []
    offset = 0
    while True:
        batch = await fetch(page, offset)
        items.extend(batch)
        if len(batch) < page:
            return items
        offset += page


def chunks(values: Sequence[T], size: int = PAGE) -> Iterable[list[T]]:
    for start in range(0, len(values), size):
        yield list(values[start:start + size])


def _seconds_since(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    return max(0.0, (utcnow() - moment).total_seconds())


def _run_holder(run_type: Literal["flow_run", "task_run"], run: FlowRun | TaskRun) -> Holder:
    state = run.state
    return Holder(
        run_type=run_type, id=run.id, name=run.name,
        state=state.name if state else None, state_type=state.type.value if state else None,
        seconds_in_state=_seconds_since(state.timestamp) if state else None,
    )


def flow_run_holder(run: FlowRun) -> Holder:
    return _run_holder("flow_run", run)


def task_run_holder(run: TaskRun) -> Holder:
    return _run_holder("task_run", run)


def slot_summary_holder(summary: Any) -> Holder:
    """A holder from a pool/queue concurrency-status `FlowRunSlotSummary`."""
    delta: timedelta | None = summary.time_in_current_state
    state_type = summary.state_type
    return Holder(
        run_type="flow_run", id=summary.id, name=summary.name, state=summary.state_name,
        state_type=state_type.value if hasattr(state_type, "value") else state_type,
        seconds_in_state=delta.total_seconds() if delta is not None else None,
    )


def missing_holder(run_type: str, run_id: UUID) -> Holder:
    return Holder(run_type=run_type, id=run_id, exists=False)  # type: ignore[arg-type]


def waiting_run(run: FlowRun) -> WaitingRun:
    return WaitingRun(
        id=run.id, name=run.name, state=run.state.name if run.state else None,
        expected_start=run.next_scheduled_start_time or run.expected_start_time,
        due_since=run.expected_start_time or run.next_scheduled_start_time,
    )


async def _read_by_id(ids: Iterable[UUID], read_chunk: Callable[[list[UUID]], Awaitable[list[T]]]) -> dict[UUID, T]:
    """Read objects by id in server-sized chunks (one request per chunk, not per id)."""
    found: dict[UUID, T] = {}
    for chunk in chunks(sorted(set(ids), key=str)):
        found.update({item.id: item for item in await read_chunk(chunk)})  # type: ignore[attr-defined]
    return found


async def read_flow_runs_by_id(client: PrefectClient, ids: Iterable[UUID]) -> dict[UUID, FlowRun]:
    return await _read_by_id(ids, lambda chunk: read_flow_runs(
        client, flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)), limit=len(chunk)))


def _body(**filters: Any) -> dict[str, Any]:
    """A filter request body with each filter's unset fields left out (see `read_task_runs`)."""
    return {key: (value.model_dump(mode="json", exclude_unset=True) if hasattr(value, "model_dump") else value)
            for key, value in filters.items() if value is not None}


async def read_flow_runs(client: PrefectClient, *, flow_run_filter: Any = None, deployment_filter: Any = None,
                         work_pool_filter: Any = None, sort: Any = None, limit: int = PAGE,
                         offset: int = 0) -> list[FlowRun]:
    """Flow runs, readable on every 3.x server: the pinned client sends `not_any_: null` inside a
    deployment filter, which servers up to 3.3 refuse; unset fields are left out here."""
    body = _body(flow_runs=flow_run_filter, deployments=deployment_filter, work_pools=work_pool_filter,
                 sort=getattr(sort, "value", sort), limit=limit, offset=offset)
    response = await client._client.post("/flow_runs/filter", json=body)
    return [FlowRun.model_validate(item) for item in response.json()]


async def count_flow_runs(client: PrefectClient, *, flow_run_filter: Any = None, work_pool_filter: Any = None) -> int:
    """The number of matching flow runs (same body rules as `read_flow_runs`)."""
    response = await client._client.post("/flow_runs/count",
                                          json=_body(flow_runs=flow_run_filter, work_pools=work_pool_filter))
    return int(response.json())


async def read_task_runs(client: PrefectClient, *, task_run_filter: TaskRunFilter | None = None,
                         flow_run_filter: FlowRunFilter | None = None, limit: int = PAGE,
                         offset: int = 0) -> list[TaskRun]:
    """Task runs, with each filter sent without its unset fields.

    The pinned client sends every TaskRunFilter field, `end_time: null` included, and servers up
    to 3.5 refuse that field (422, extra inputs are not permitted); leaving unset fields out reads
    the same on every 3.x server.
    """
    body = _body(task_runs=task_run_filter, flow_runs=flow_run_filter, limit=limit, offset=offset)
    response = await client._client.post("/task_runs/filter", json=body)
    return [TaskRun.model_validate(item) for item in response.json()]


async def read_task_runs_by_id(client: PrefectClient, ids: Iterable[UUID]) -> dict[UUID, TaskRun]:
    return await _read_by_id(ids, lambda chunk: read_task_runs(
        client, task_run_filter=TaskRunFilter(id=TaskRunFilterId(any_=chunk)), limit=len(chunk)))


async def read_flows_by_id(client: PrefectClient, ids: Iterable[UUID]) -> dict[UUID, Flow]:
    return await _read_by_id(ids, lambda chunk: client.read_flows(
        flow_filter=FlowFilter(id=FlowFilterId(any_=chunk)), limit=len(chunk)))


async def holders_for(client: PrefectClient, refs: Iterable[tuple[str, UUID]]) -> dict[UUID, Holder]:
    """Holders for (run_type, id) pairs; runs that no longer exist come back with exists=False."""
    refs = list(refs)
    flow_ids = [rid for kind, rid in refs if kind == "flow_run"]
    task_ids = [rid for kind, rid in refs if kind == "task_run"]
    tasks = await read_task_runs_by_id(client, task_ids) if task_ids else {}
    parents = {t.flow_run_id for t in tasks.values() if t.flow_run_id is not None}
    flows = await read_flow_runs_by_id(client, set(flow_ids) | parents) if flow_ids or parents else {}
    out: dict[UUID, Holder] = {}
    for kind, rid in refs:
        if kind == "flow_run":
            out[rid] = flow_run_holder(flows[rid]) if rid in flows else missing_holder(kind, rid)
        elif rid in tasks:
            out[rid] = task_run_holder(tasks[rid])
            parent = tasks[rid].flow_run_id
            if parent is not None:  # a task of a crashed or deleted flow run holds nothing alive
                flow = flows.get(parent)
                out[rid].parent_state_type = flow.state.type.value if flow and flow.state else "MISSING"
        else:
            out[rid] = missing_holder(kind, rid)
    return out
