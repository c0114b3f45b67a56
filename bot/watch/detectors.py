"""The detectors: plain functions from a `WatchSnapshot` to incidents. No Slack, no store, no clock.

Each detector returns every matching condition with `since` (when it started, from Prefect's own
timestamps where it has them) and `threshold_seconds`; `Incident.ripe(now)` says whether it has
lasted long enough to report. Where Prefect keeps no start time (a GCL full with no holder we can
name, a deployment counting slots nobody holds) the caller passes `seen`, the first time it saw
the condition.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from bot.prefect_ops.changes import (
    Change,
    DeploymentLimitChange,
    GlobalLimitChange,
    TagLimitChange,
    WorkPoolLimitChange,
    WorkQueueLimitChange,
)
from bot.prefect_ops.leaks import leaks_in
from bot.prefect_ops.limits import DEPLOYMENT_PREFIX, TAG_PREFIX
from bot.prefect_ops.models import Holder, LimitStatus
from bot.watch.incidents import Incident, IncidentKind, incident_key
from bot.watch.reads import WatchSnapshot, has_late
from bot.watch.render import duration, holders_text, name, runs_text

LEAK_THRESHOLD_CAP = 60.0  # a slot whose holder ended this long ago is not a release in flight
LABEL = {"global": "global limit", "tag": "tag limit", "deployment": "deployment", "work_pool": "work pool",
         "work_queue": "work queue"}

Detector = Callable[[WatchSnapshot, float, Mapping[str, datetime]], list[Incident]]


def set_limit_change(limit: LimitStatus, value: int) -> Change | None:
    """The change that sets this limit's value; None for kinds a value change cannot express."""
    if limit.kind == "work_pool":
        return WorkPoolLimitChange(action="set", pool=limit.name, limit=value)
    if limit.kind == "work_queue":
        pool, queue = limit.name.split("/", 1)
        return WorkQueueLimitChange(action="set", pool=pool, queue=queue, limit=value)
    if limit.kind == "deployment" and value >= 1 and "(deployment deleted)" not in limit.name:
        return DeploymentLimitChange(action="set", deployment=limit.name, limit=value)
    if limit.kind == "tag":
        return TagLimitChange(action="set", tag=limit.name, limit=value)
    if limit.kind == "global":
        return GlobalLimitChange(action="update", name=limit.name, limit=value)
    return None


def _gcl_name(limit: LimitStatus) -> str:
    if limit.kind == "tag":
        return limit.gcl_name or f"{TAG_PREFIX}{limit.name}"
    if limit.kind == "deployment":
        return limit.gcl_name or limit.name
    return limit.name


def _oldest_wait(limit: LimitStatus, now: datetime) -> datetime:
    starts = [w.due_since or w.expected_start for w in limit.waiting_runs]
    return min((s for s in starts if s is not None), default=now)


def _full_since(limit: LimitStatus, now: datetime, seen: Mapping[str, datetime], key: str) -> datetime:
    """When a slot-counted limit filled up: the newest holder's state change, else first seen."""
    ages = [h.seconds_in_state for h in limit.holders if h.seconds_in_state is not None and not h.terminal]
    if ages:
        return now - timedelta(seconds=min(ages))
    return seen.get(key, now)


def _incident(kind: IncidentKind, limit: LimitStatus, now: datetime, **values: object) -> Incident:
    base = dict(kind=kind, object_kind=limit.kind, object_name=limit.name, seen_at=now, limit=limit.limit,
                active_slots=limit.active_slots, holders=limit.holders, waiting=limit.waiting,
                waiting_runs=limit.waiting_runs)
    base.update(values)
    return Incident(**base)  # type: ignore[arg-type]


def waiting_on_full_limit(snap: WatchSnapshot, wait_seconds: float,
                          seen: Mapping[str, datetime]) -> list[Incident]:
    """Runs waiting on a full deployment, pool, queue or tag limit for longer than the threshold."""
    now, found = snap.read_at, []
    for limit in snap.limits:
        if not limit.enabled or limit.limit is None or limit.limit == 0 or limit.paused:
            continue
        if limit.kind in ("deployment", "work_pool", "work_queue"):
            if not limit.waiting or not (limit.full or limit.kind == "deployment"):
                continue
            since = _oldest_wait(limit, now)
            what = f"{limit.waiting} run(s)"
        elif limit.kind == "tag":
            waiting_tasks = snap.tasks_waiting.get(limit.name, 0)
            if not (limit.full and waiting_tasks):
                continue
            since = _full_since(limit, now, seen, incident_key("waiting_on_limit", "tag", limit.name))
            what = f"{waiting_tasks} task run(s)"
        else:
            continue
        summary = (f"{what} waiting on {LABEL[limit.kind]} {name(limit.name)}: limit {limit.limit}, "
                   f"held by {holders_text(limit.holders)}")
        found.append(_incident("waiting_on_limit", limit, now, since=since, threshold_seconds=wait_seconds,
                               summary=summary, fix=set_limit_change(limit, limit.limit + 1),
                               evidence=[f"limit {limit.limit}, active slots {limit.active_slots}",
                                         f"waiting: {runs_text(limit.waiting_runs, limit.waiting)}"]))
    return found


def gcl_at_limit(snap: WatchSnapshot, wait_seconds: float, seen: Mapping[str, datetime]) -> list[Incident]:
    """A plain global limit at its limit for longer than the threshold."""
    now, found = snap.read_at, []
    for limit in snap.limits:
        if limit.kind != "global" or not limit.full or not limit.limit or limit.is_rate_limit:
            continue
        key = incident_key("gcl_full", "global", limit.name)
        holders = holders_text(limit.holders) if limit.holders_known else "runs Prefect cannot name"
        found.append(_incident(
            "gcl_full", limit, now, since=_full_since(limit, now, seen, key), threshold_seconds=wait_seconds,
            summary=f"global limit {name(limit.name)} is at its limit ({limit.active_slots}/{limit.limit}), "
                    f"held by {holders}",
            fix=set_limit_change(limit, limit.limit + 1),
            evidence=[f"limit {limit.limit}, active slots {limit.active_slots}"]))
    return found


def leaked_slots(snap: WatchSnapshot, wait_seconds: float, seen: Mapping[str, datetime]) -> list[Incident]:
    """Slots held by ended or missing runs, or counted by a deployment with no run holding them."""
    now, found = snap.read_at, []
    threshold = min(wait_seconds, LEAK_THRESHOLD_CAP)
    by_limit: dict[tuple[str, str], list] = {}
    for leak in leaks_in([lim for lim in snap.limits if lim.kind in ("tag", "global", "deployment")],
                         float("inf")):
        by_limit.setdefault((leak.kind, leak.limit_name), []).append(leak)
    for limit in snap.limits:  # tag slots counted with no lease behind them (e.g. after a v1 reset in 3.9.1)
        if limit.kind == "tag" and limit.active_slots > len(limit.holders) and (limit.kind, limit.name) not in by_limit:
            by_limit[(limit.kind, limit.name)] = []
    limits = {(lim.kind, lim.name): lim for lim in snap.limits}
    for (kind, limit_name), leaks in by_limit.items():
        limit = limits[(kind, limit_name)]
        key = incident_key("leaked_slots", kind, limit_name)
        dead: list[Holder] = [leak.holder for leak in leaks if leak.holder is not None]
        ended = [h.seconds_in_state for h in dead if h.seconds_in_state is not None]
        since = now - timedelta(seconds=min(ended)) if ended and len(ended) == len(dead) else seen.get(key, now)
        count = len(dead) if dead else limit.active_slots - len(limit.holders)
        found.append(_incident(
            "leaked_slots", limit, now, since=since, threshold_seconds=threshold, holders=dead or limit.holders,
            summary=f"{LABEL[kind]} {name(limit_name)} counts {count} slot(s) nobody alive holds "
                    f"({limit.active_slots}/{_show(limit.limit)} in use)",
            evidence=[leak.reason for leak in leaks][:5] or [
                f"{limit.active_slots} slot(s) counted, {len(limit.holders)} held under a lease"],
            fix=GlobalLimitChange(action="reset", name=_gcl_name(limit)) if kind != "deployment" or
            limit.gcl_name or limit.name.startswith(DEPLOYMENT_PREFIX) else None))
    return found


def late_without_worker(snap: WatchSnapshot, wait_seconds: float,
                        seen: Mapping[str, datetime]) -> list[Incident]:
    """A pool with Late runs and no online worker (push and managed pools need none)."""
    now, found = snap.read_at, []
    for limit in snap.limits:
        if limit.kind != "work_pool" or limit.paused or not has_late(limit):
            continue
        if limit.name in snap.pools_without_workers or snap.online_workers.get(limit.name, 1) > 0:
            continue
        late = [w for w in limit.waiting_runs if w.state == "Late"]
        found.append(_incident(
            "no_worker", limit, now, since=_oldest_wait(limit, now), threshold_seconds=0.0,
            summary=f"work pool {name(limit.name)} has Late runs and no online worker",
            evidence=[f"Late: {runs_text(late, len(late))}", f"{limit.waiting} run(s) due in the pool"],
            hint=f"start a worker: `prefect worker start --pool {limit.name}`"))
    return found


def late_in_unpolled_queue(snap: WatchSnapshot, wait_seconds: float,
                           seen: Mapping[str, datetime]) -> list[Incident]:
    """A queue with Late runs that no online worker of its pool polls (workers bound to other queues)."""
    now, found = snap.read_at, []
    for limit in snap.limits:
        if limit.kind != "work_queue" or limit.name not in snap.unpolled_queues:
            continue
        pool, queue = limit.name.split("/", 1)
        late = [w for w in limit.waiting_runs if w.state == "Late"]
        found.append(_incident(
            "no_worker", limit, now, since=_oldest_wait(limit, now), threshold_seconds=0.0,
            summary=f"work queue {name(limit.name)} has Late runs and no online worker polls it",
            evidence=[f"Late: {runs_text(late, len(late))}", f"the pool {name(pool)} has online workers, "
                      "none of them polling this queue"],
            hint=f"start a worker for it: `prefect worker start --pool {pool} --work-queue {queue}`"))
    return found


def paused_with_backlog(snap: WatchSnapshot, wait_seconds: float,
                        seen: Mapping[str, datetime]) -> list[Incident]:
    """A paused pool or queue that has runs due."""
    now, found = snap.read_at, []
    for limit in snap.limits:
        if limit.kind not in ("work_pool", "work_queue") or not limit.paused or not limit.waiting:
            continue
        if limit.kind == "work_pool":
            hint = f"resume it: `prefect work-pool resume {limit.name}`"
        else:
            pool, queue = limit.name.split("/", 1)
            hint = f"resume it: `prefect work-queue resume {queue} --pool {pool}`"
        found.append(_incident(
            "paused_backlog", limit, now, since=_oldest_wait(limit, now), threshold_seconds=0.0,
            summary=f"{LABEL[limit.kind]} {name(limit.name)} is paused with {limit.waiting} run(s) due",
            evidence=[f"waiting: {runs_text(limit.waiting_runs, limit.waiting)}"], hint=hint))
    return found


def zero_limit_with_waiters(snap: WatchSnapshot, wait_seconds: float,
                            seen: Mapping[str, datetime]) -> list[Incident]:
    """A limit of 0 on something that has waiting runs: nothing will ever start."""
    now, found = snap.read_at, []
    for limit in snap.limits:
        if limit.limit != 0 or not limit.enabled or limit.paused:
            continue
        waiting = snap.tasks_waiting.get(limit.name, 0) if limit.kind == "tag" else limit.waiting
        if not waiting:
            continue
        found.append(_incident(
            "zero_limit", limit, now, since=_oldest_wait(limit, now), threshold_seconds=0.0,
            summary=f"{LABEL[limit.kind]} {name(limit.name)} has limit 0, so its {waiting} waiting run(s) "
                    "can never start",
            evidence=[f"waiting: {runs_text(limit.waiting_runs, waiting)}"],
            fix=set_limit_change(limit, 1)))
    return found


def _show(value: int | None) -> str:
    return "none" if value is None else str(value)


DETECTORS: tuple[Detector, ...] = (waiting_on_full_limit, gcl_at_limit, leaked_slots, late_without_worker,
                                   late_in_unpolled_queue, paused_with_backlog, zero_limit_with_waiters)


def detect(snap: WatchSnapshot, wait_seconds: float, seen: Mapping[str, datetime] | None = None) -> list[Incident]:
    """Every condition every detector sees now, ripe or not (see `Incident.ripe`)."""
    seen = seen or {}
    return [incident for detector in DETECTORS for incident in detector(snap, wait_seconds, seen)]


def ripe(incidents: list[Incident], now: datetime) -> list[Incident]:
    return [i for i in incidents if i.ripe(now)]


__all__ = ["DETECTORS", "detect", "duration", "ripe"]
