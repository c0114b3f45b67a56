"""Why is this run not running? Checks made in a fixed order; the first blocking one is the answer.

Order: the run's state, the deployment limit, the work queue, the work pool (paused, full, no
online worker), tag limits on its task runs, then a backlog of Late runs. Each finding carries the
evidence and, where a change would help, a `ChangeCandidate`; nothing here applies anything.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from httpx import HTTPStatusError
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterName,
    FlowRunFilterState,
    FlowRunFilterStateName,
    FlowRunFilterStateType,
    TaskRunFilter,
    TaskRunFilterId,
    WorkPoolFilter,
    WorkPoolFilterName,
)
from prefect.client.schemas.objects import FlowRun, StateType, WorkerStatus
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound

from bot.prefect_ops import by_name
from bot.prefect_ops.capabilities import FeatureName, capabilities, forget
from bot.prefect_ops.errors import NotFound, at_boundary, route_missing
from bot.prefect_ops.limits import AWAITING_SLOT, _runs_of_deployments
from bot.prefect_ops.models import ChangeCandidate, Diagnosis, Finding, Holder
from bot.prefect_ops.occupancy import Occupancy, pool_and_queue_occupancy
from bot.prefect_ops.resolve import known_names, resolve_among
from bot.prefect_ops.runs import (
    count_flow_runs,
    flow_run_holder,
    read_flow_runs,
    read_task_runs,
    slot_summary_holder,
    task_run_holder,
    utcnow,
)
from bot.safe_text import tick
from bot.shell_text import shell_line

HOLDERS_SHOWN = 3


def _describe(holders: list[Holder]) -> str:
    parts = []
    for h in holders[:HOLDERS_SHOWN]:
        age = f" {_duration(h.seconds_in_state)}" if h.seconds_in_state is not None else ""
        parts.append(f"{tick(h.name or h.id)} ({h.state or 'gone'}{age})")
    more = f" and {len(holders) - HOLDERS_SHOWN} more" if len(holders) > HOLDERS_SHOWN else ""
    return ", ".join(parts) + more if parts else "no run we can name"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} m" if hours else (f"{minutes} m {secs} s" if minutes else f"{secs} s")


def _is_waiting(run: FlowRun | None) -> bool:
    """A run that wants to start: Scheduled (incl. Late and AwaitingConcurrencySlot), or no run."""
    return run is None or (run.state is not None and run.state.type == StateType.SCHEDULED)


async def _find_run(client: PrefectClient, text: str) -> FlowRun | None:
    try:
        return await client.read_flow_run(UUID(text))
    except (ValueError, ObjectNotFound):
        pass
    runs = await read_flow_runs(
        client,
        flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[text.strip()])),
        sort=FlowRunSort.START_TIME_DESC,
        limit=1,
    )
    return runs[0] if runs else None


async def _stuck_run_of(client: PrefectClient, deployment: DeploymentResponse) -> FlowRun | None:
    """The run of a deployment most worth explaining: awaiting a slot, else due/Late, else Pending."""
    awaiting = await _runs_of_deployments(
        client, [deployment.id], FlowRunFilterState(name=FlowRunFilterStateName(any_=[AWAITING_SLOT]))
    )
    if awaiting:
        return awaiting[0]
    scheduled = await _runs_of_deployments(
        client, [deployment.id], FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
    )
    due = [r for r in scheduled if (r.next_scheduled_start_time or r.expected_start_time or utcnow()) <= utcnow()]
    if due:
        return due[0]
    pending = await _runs_of_deployments(
        client, [deployment.id], FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PENDING]))
    )
    return pending[0] if pending else (scheduled[0] if scheduled else None)


def _check_state(run: FlowRun | None, subject: str) -> Finding:
    if run is None:
        return Finding(
            check="run_state",
            blocking=False,
            object_kind="deployment",
            object_name=subject,
            summary=f"deployment {tick(subject)} has no run waiting to start",
        )
    state = run.state
    name = state.name if state else "unknown"
    evidence = [f"state: {name}" + (f" ({state.type.value})" if state else "")]
    if state and state.message:
        evidence.append(f"message: {state.message}")
    if state and state.timestamp:
        evidence.append(f"in this state for {_duration((utcnow() - state.timestamp).total_seconds())}")
    kind = state.type if state else None
    if kind == StateType.RUNNING:
        summary = f"run {tick(run.name)} is running"
    elif kind in (StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED):
        summary = f"run {tick(run.name)} already ended: {name}" + (f" ({state.message})" if state.message else "")
    elif kind == StateType.PAUSED:
        return Finding(
            check="run_state",
            blocking=True,
            object_kind="flow_run",
            object_name=run.name,
            summary=f"run {tick(run.name)} is paused, waiting to be resumed",
            evidence=evidence,
        )
    elif name == AWAITING_SLOT:
        summary = f"run {tick(run.name)} is waiting for a deployment concurrency slot"
    elif kind == StateType.SCHEDULED and (run.next_scheduled_start_time or utcnow()) > utcnow():
        return Finding(
            check="run_state",
            blocking=True,
            object_kind="flow_run",
            object_name=run.name,
            summary=f"run {tick(run.name)} is scheduled for later "
            f"({run.next_scheduled_start_time:%Y-%m-%d %H:%M} UTC); nothing blocks it yet",
            evidence=evidence,
        )
    else:
        summary = f"run {tick(run.name)} is {name}"
    return Finding(
        check="run_state",
        blocking=False,
        object_kind="flow_run",
        object_name=run.name,
        summary=summary,
        evidence=evidence,
    )


async def _check_deployment(
    client: PrefectClient, run: FlowRun | None, dep: DeploymentResponse | None, dep_name: str
) -> Finding | None:
    if dep is None:
        return None
    gcl = dep.global_concurrency_limit
    if gcl is None:
        return Finding(
            check="deployment_limit",
            blocking=False,
            object_kind="deployment",
            object_name=dep_name,
            summary=f"deployment {tick(dep_name)} has no concurrency limit",
        )
    strategy = dep.concurrency_options.collision_strategy.value if dep.concurrency_options else "ENQUEUE"
    holding = await _runs_of_deployments(
        client,
        [dep.id],
        FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PENDING, StateType.RUNNING])),
    )
    holders = [flow_run_holder(r) for r in holding if run is None or r.id != run.id]
    full = gcl.active and gcl.active_slots >= gcl.limit
    evidence = [
        f"limit {gcl.limit}, active slots {gcl.active_slots}, collision strategy {strategy}",
        f"holders: {_describe(holders)}",
    ]
    awaiting = run is not None and run.state is not None and run.state.name == AWAITING_SLOT
    cancelled_by_limit = (
        run is not None
        and run.state is not None
        and run.state.type == StateType.CANCELLED
        and "concurrency limit" in (run.state.message or "").lower()
    )
    blocking = (full and _is_waiting(run)) or awaiting or cancelled_by_limit
    if not blocking:
        return Finding(
            check="deployment_limit",
            blocking=False,
            object_kind="deployment",
            object_name=dep_name,
            summary=f"deployment {tick(dep_name)} limit {gcl.limit} has room ({gcl.active_slots} in use)",
            evidence=evidence,
        )
    verb = "cancelled new runs (CANCEL_NEW)" if strategy == "CANCEL_NEW" else "queues new runs (ENQUEUE)"
    return Finding(
        check="deployment_limit",
        blocking=True,
        object_kind="deployment",
        object_name=dep_name,
        summary=f"deployment {tick(dep_name)} has limit {gcl.limit} and it is full: "
        f"held by {_describe(holders)}; "
        f"it {verb}",
        evidence=evidence,
        fix=ChangeCandidate(
            action="set_limit",
            target_kind="deployment",
            target_name=dep_name,
            current=str(gcl.limit),
            proposed=str(gcl.limit + 1),
            reason="raise the deployment limit, or wait for the holders to finish",
        ),
    )


PlaceKind = Literal["work_queue", "work_pool"]
PLACE_LABEL = {"work_queue": "queue", "work_pool": "pool", "tag": "tag"}


def _raise_limit(kind: Literal["work_queue", "work_pool", "tag"], name: str, limit: int) -> ChangeCandidate:
    """The fix candidate for a full limit: one more slot (never applied; a person decides)."""
    return ChangeCandidate(action="set_limit", target_kind=kind, target_name=name, current=str(limit),
                           proposed=str(limit + 1),
                           reason=f"raise the {PLACE_LABEL[kind]} limit, or wait for the holders to finish")


def _paused(kind: PlaceKind, name: str) -> Finding:
    """A paused pool or queue: no worker picks up its runs until it is resumed."""
    label = PLACE_LABEL[kind]
    summary = (f"work queue {tick(name)} is paused, so no worker picks up its runs" if kind == "work_queue"
               else f"work pool {tick(name)} is paused")
    return Finding(check=kind, blocking=True, object_kind=kind, object_name=name, summary=summary,
                   evidence=["is_paused: true"],
                   fix=ChangeCandidate(action="resume", target_kind=kind, target_name=name, current="paused",
                                       proposed="ready", reason=f"resume the {label}"))


def _full(kind: PlaceKind, name: str, limit: int, summary: str, evidence: list[str]) -> Finding:
    """A pool or queue whose limit is reached while the run waits; the fix candidate raises it by one."""
    return Finding(check=kind, blocking=True, object_kind=kind, object_name=name, summary=summary,
                   evidence=evidence, fix=_raise_limit(kind, name, limit))


def _not_blocking(kind: PlaceKind, name: str, summary: str, evidence: list[str]) -> Finding:
    return Finding(check=kind, blocking=False, object_kind=kind, object_name=name, summary=summary, evidence=evidence)


async def _native_or_counted(client: PrefectClient, feature: FeatureName, native, counted) -> tuple[int, list[Holder]]:
    """The native status read when the server lists it, else the count from active runs.

    A listed route that answers 404 (the server was swapped for an older one) falls back too,
    and the capabilities are read again next time; it never reads as a missing pool or queue.
    """
    caps = await capabilities(client)
    if caps.has(feature):
        try:
            return await native()
        except Exception as exc:
            if route_missing(exc) is None:
                raise
            forget(caps.api_url)
    return counted(await pool_and_queue_occupancy(client))


async def _queue_slots(client: PrefectClient, queue_id: UUID) -> tuple[int, list[Holder]]:
    async def native() -> tuple[int, list[Holder]]:
        status = await client.read_work_queue_concurrency_status(queue_id, limit=50)
        return status.active_slots, [slot_summary_holder(r) for r in status.flow_runs]

    def counted(occupancy: Occupancy) -> tuple[int, list[Holder]]:
        holders = occupancy.queues.get(queue_id, [])
        return len(holders), holders

    return await _native_or_counted(client, "queue_concurrency_status", native, counted)


async def _pool_slots(client: PrefectClient, pool: str) -> tuple[int, list[Holder]]:
    async def native() -> tuple[int, list[Holder]]:
        status = await by_name.read_work_pool_concurrency_status(client, pool, limit=200, flow_run_limit=10)
        return status.active_slots, [slot_summary_holder(r) for q in status.queues for r in q.flow_runs]

    def counted(occupancy: Occupancy) -> tuple[int, list[Holder]]:
        holders = occupancy.pools.get(pool, [])
        return len(holders), holders

    return await _native_or_counted(client, "pool_concurrency_status", native, counted)


async def _check_queue(client: PrefectClient, run: FlowRun | None) -> Finding | None:
    if run is None or run.work_queue_id is None:
        return None
    queue = await client.read_work_queue(run.work_queue_id)
    name = f"{queue.work_pool_name}/{queue.name}"
    if queue.is_paused and _is_waiting(run):
        return _paused("work_queue", name)
    active_slots, holders = await _queue_slots(client, queue.id)
    evidence = [
        f"limit {queue.concurrency_limit if queue.concurrency_limit is not None else 'none'}, "
        f"active slots {active_slots}",
        f"holders: {_describe(holders)}",
    ]
    if (
        queue.concurrency_limit is not None
        and active_slots >= queue.concurrency_limit
        and _is_waiting(run)
    ):
        return _full("work_queue", name, queue.concurrency_limit,
                     f"work queue {tick(name)} has limit {queue.concurrency_limit} and {_describe(holders)} "
                     f"{'holds' if len(holders) == 1 else 'hold'} it", evidence)
    return _not_blocking("work_queue", name, f"work queue {tick(name)} is not blocking", evidence)


async def _check_pool(client: PrefectClient, run: FlowRun | None) -> Finding | None:
    if run is None or not run.work_pool_name:
        return None
    pool = await by_name.read_work_pool(client, run.work_pool_name)
    name = pool.name
    waiting = _is_waiting(run)
    if pool.is_paused and waiting:
        return _paused("work_pool", name)
    active_slots, holders = await _pool_slots(client, name)
    limit = pool.concurrency_limit
    evidence = [
        f"limit {limit if limit is not None else 'none'}, active slots {active_slots}",
        f"holders: {_describe(holders)}",
    ]
    if limit is not None and active_slots >= limit and waiting:
        return _full("work_pool", name, limit,
                     f"work pool {tick(name)} has limit {limit} and it is full: held by {_describe(holders)}", evidence)
    if pool.type.endswith((":push", ":managed")):
        return _not_blocking("work_pool", name, f"work pool {tick(name)} is not blocking (it needs no worker)",
                             evidence)
    workers = await by_name.read_workers_for_work_pool(client, name)
    online = [w for w in workers if w.status == WorkerStatus.ONLINE]
    last = max((w.last_heartbeat_time for w in workers if w.last_heartbeat_time), default=None)
    evidence.append(
        f"workers: {len(online)} online of {len(workers)}"
        + (f", last heartbeat {_duration((utcnow() - last).total_seconds())} ago" if last else "")
    )
    if not online and waiting:
        return Finding(
            check="work_pool",
            blocking=True,
            object_kind="work_pool",
            object_name=name,
            summary=f"work pool {tick(name)} has no online worker"
            + (
                f" (last heartbeat {_duration((utcnow() - last).total_seconds())} ago)"
                if last
                else " (no worker ever polled it)"
            ),
            evidence=evidence,
            fix=ChangeCandidate(
                action="start_worker",
                target_kind="work_pool",
                target_name=name,
                proposed=shell_line("prefect", "worker", "start", "--pool", name),
                reason="a worker must poll the pool to start its runs",
            ),
        )
    return Finding(
        check="work_pool",
        blocking=False,
        object_kind="work_pool",
        object_name=name,
        summary=f"work pool {tick(name)} is not blocking",
        evidence=evidence,
    )


async def _check_tags(client: PrefectClient, run: FlowRun | None) -> list[Finding]:
    if run is None or run.state is None or run.state.type != StateType.RUNNING:
        return []
    task_runs = await read_task_runs(
        client, flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])), limit=200
    )
    unstarted = [
        t for t in task_runs if t.state is None or t.state.type in (StateType.PENDING, StateType.SCHEDULED)
    ]
    findings = []
    for tag in sorted({tag for t in task_runs for tag in t.tags}):
        try:
            limit = await by_name.read_concurrency_limit_by_tag(client, tag)
        except ObjectNotFound:
            continue
        blocked = [t for t in unstarted if tag in t.tags]
        full = len(limit.active_slots) >= limit.concurrency_limit
        if not (full and blocked):
            continue
        holder_runs = await read_task_runs(
            client, task_run_filter=_task_ids(limit.active_slots), limit=len(limit.active_slots) or 1
        )
        holders = [task_run_holder(t) for t in holder_runs]
        findings.append(
            Finding(
                check="tag_limit",
                blocking=True,
                object_kind="tag",
                object_name=tag,
                summary=f"tag limit {tick(tag)} ({limit.concurrency_limit}) is full: "
                f"held by {_describe(holders)}; "
                f"{len(blocked)} task run(s) of this run wait for it",
                evidence=[
                    f"limit {limit.concurrency_limit}, active {len(limit.active_slots)}",
                    f"waiting task runs: {', '.join(t.name for t in blocked[:HOLDERS_SHOWN])}",
                ],
                fix=_raise_limit("tag", tag, limit.concurrency_limit),
            )
        )
    return findings


def _task_ids(ids: list[UUID]) -> TaskRunFilter:
    return TaskRunFilter(id=TaskRunFilterId(any_=list(ids)))


async def _check_backlog(client: PrefectClient, run: FlowRun | None, blocked: bool) -> Finding | None:
    if run is None or not run.work_pool_name:
        return None
    late = await count_flow_runs(
        client,
        flow_run_filter=FlowRunFilter(state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Late"]))),
        work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=[run.work_pool_name])),
    )
    is_late = run.state is not None and run.state.name == "Late"
    if late == 0 and not is_late:
        return None
    summary = f"work pool {tick(run.work_pool_name)} has a backlog of {late} Late run(s)"
    if is_late and not blocked:
        summary += (
            "; no server-side limit holds this run, so its worker is likely at its own --limit "
            "or not polling this queue"
        )
    return Finding(
        check="late_backlog",
        blocking=is_late and not blocked,
        object_kind="work_pool",
        object_name=run.work_pool_name,
        summary=summary,
        evidence=[f"Late runs: {late}"],
    )


def _unreadable(check: str, run: FlowRun | None, exc: Exception) -> Finding:
    response = getattr(exc, "response", None) or getattr(getattr(exc, "http_exc", None), "response", None)
    status = getattr(response, "status_code", None)
    name = run.work_pool_name if run is not None and check == "work_pool" else None
    return Finding(check=check, blocking=False, object_kind=None, object_name=name,  # type: ignore[arg-type]
                   summary=f"the {check.replace('_', ' ')} of this run could not be checked: Prefect's API "
                           f"cannot address it by name ({f'HTTP {status}' if status else type(exc).__name__})")


@at_boundary
async def diagnose_run(client: PrefectClient, run_or_deployment: str) -> Diagnosis:
    """Explain why a flow run (id or name), or a deployment's waiting run, is not running."""
    run = await _find_run(client, run_or_deployment)
    deployment: DeploymentResponse | None = None
    dep_name = ""
    if run is None:
        names = await known_names(client, ["deployment"])
        resolution = resolve_among(run_or_deployment, names, "deployment")
        if resolution.match is None:
            known = [c.name for c in resolution.candidates] or sorted(n.name for n in names)
            raise NotFound("flow run or deployment", run_or_deployment, known, noun="deployments")
        dep_name = resolution.match.name
        flow_name, dep_short = dep_name.split("/", 1)
        deployment = await by_name.read_deployment_by_name(client, flow_name, dep_short)
        run = await _stuck_run_of(client, deployment)
    elif run.deployment_id is not None:
        deployment = await client.read_deployment(run.deployment_id)
        flow = await client.read_flow(deployment.flow_id)
        dep_name = f"{flow.name}/{deployment.name}"
    diagnosis = Diagnosis(
        subject=run_or_deployment,
        run_id=run.id if run else None,
        run_name=run.name if run else None,
        run_state=run.state.name if run and run.state else None,
    )
    findings = [_check_state(run, dep_name)]
    checks = (  # called one at a time: a coroutine made up front is never awaited if an earlier one fails
        ("deployment_limit", lambda: _check_deployment(client, run, deployment, dep_name)),
        ("work_queue", lambda: _check_queue(client, run)),
        ("work_pool", lambda: _check_pool(client, run)),
    )
    for what, check in checks:
        try:
            finding = await check()
        except (ObjectNotFound, HTTPStatusError) as exc:  # one object Prefect cannot address: say so, go on
            finding = _unreadable(what, run, exc)
        if finding is not None:
            findings.append(finding)
    findings += await _check_tags(client, run)
    backlog = await _check_backlog(client, run, blocked=any(f.blocking for f in findings))
    if backlog is not None:
        findings.append(backlog)
    diagnosis.findings = findings
    return diagnosis
