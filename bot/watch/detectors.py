"""The detectors: plain functions from a `WatchSnapshot` to incidents. No Slack, no store, no clock.

Each detector returns every matching condition with `since` (when it started, from Prefect's own
timestamps where it has them) and `threshold_seconds`; `Incident.ripe(now)` says whether it has
lasted long enough to report. Where Prefect keeps no start time (a GCL full with no holder we can
name, a deployment counting slots nobody holds) the caller passes `seen`, the first time it saw
the condition.
"""

from __future__ import annotations

import logging
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
from bot.prefect_ops.leaks import ended_reason
from bot.prefect_ops.limits import DEPLOYMENT_PREFIX, TAG_PREFIX
from bot.prefect_ops.models import LimitStatus, WaitingRun
from bot.safe_text import escape
from bot.shell_text import command_or_note
from bot.watch.incidents import Incident, IncidentKind, incident_key
from bot.watch.reads import WatchSnapshot, flight_key, has_late
from bot.watch.render import duration, holders_text, name, runs_text

INVISIBLE_ACQUIRERS = ("code waiting inside `concurrency()` cannot be seen: Prefect records no event or state for "
                       "a blocked acquire, so there may be waiters")
log = logging.getLogger(__name__)
LEAK_THRESHOLD_CAP = 60.0  # a slot whose holder ended this long ago is not a release in flight
LABEL = {"global": "global limit", "tag": "tag limit", "deployment": "deployment", "work_pool": "work pool",
         "work_queue": "work queue"}

Detector = Callable[[WatchSnapshot, float, Mapping[str, datetime]], list[Incident]]


def set_limit_change(limit: LimitStatus, value: int) -> Change | None:
    """The change that sets this limit's value; None for kinds a value change cannot express, and
    for a name the bot may not send to Prefect (see `fix_or_by_hand`)."""
    try:
        return _set_limit_change(limit, value)
    except ValueError:  # ChangeError and pydantic's ValidationError: an odd name, refused before any request
        return None


def set_limit_argv(limit: LimitStatus, value: int) -> tuple[str, ...] | None:
    """The Prefect CLI command that sets this limit by hand, as argv (None: no CLI command does)."""
    if limit.kind == "work_pool":
        return ("prefect", "work-pool", "set-concurrency-limit", limit.name, str(value))
    if limit.kind == "work_queue" and "/" in limit.name:
        pool, queue = limit.name.split("/", 1)
        return ("prefect", "work-queue", "set-concurrency-limit", queue, str(value), "--pool", pool)
    if limit.kind == "tag":
        return ("prefect", "concurrency-limit", "create", limit.name, str(value))
    if limit.kind == "global":
        return ("prefect", "global-concurrency-limit", "update", limit.name, "--limit", str(value))
    return None


def by_hand(reason: str, argv: tuple[str, ...] | None) -> str:
    """The hint for an object the bot will not change itself: why, and the command to do it by hand."""
    how = command_or_note(*argv) if argv else "in the Prefect UI"
    return f"the bot cannot change this one: {escape(reason)}; change it by hand: {how}"


def fix_or_by_hand(limit: LimitStatus, value: int) -> tuple[Change | None, str | None]:
    """A change for a card, or (None, a by-hand hint) when the name may not reach a request."""
    try:
        return _set_limit_change(limit, value), None
    except ValueError as exc:
        reason = str(exc).split(";", 1)[0].removeprefix("1 validation error for ").strip()
        for error in getattr(exc, "errors", lambda: [])():
            reason = str(error.get("msg", reason)).removeprefix("Value error, ").split(";", 1)[0]
        return None, by_hand(reason, set_limit_argv(limit, value))


def _set_limit_change(limit: LimitStatus, value: int) -> Change | None:
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


def _oldest_wait(waiting: list[WaitingRun], now: datetime) -> datetime:
    starts = [w.due_since or w.expected_start for w in waiting]
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
            if not limit.waiting or not limit.full:  # a free slot: the next poll starts the run; never "full"
                continue
            since = _oldest_wait(limit.waiting_runs, now)
            what = f"{limit.waiting} run(s)"
        elif limit.kind == "tag":
            waiters = snap.tag_waiters.get(limit.name, [])
            if not (limit.full and waiters):
                continue
            since = _oldest_wait(waiters, now)  # the oldest waiter's wait, not the newest holder's change
            limit = limit.model_copy(update={"waiting": len(waiters), "waiting_runs": waiters[:5]})
            what = f"{len(waiters)} task run(s)"
        else:
            continue
        backlog = limit.waiting
        summary = (f"{what} waiting on {LABEL[limit.kind]} {name(limit.name)}: limit {limit.limit}, "
                   f"{limit.active_slots} in use, held by {holders_text(limit.holders)}")
        clearing = max(limit.limit + 1, limit.active_slots + backlog)
        evidence = [f"limit {limit.limit}, active slots {limit.active_slots}",
                    f"waiting: {runs_text(limit.waiting_runs, limit.waiting)}"]
        if backlog > 1:
            evidence.append(f"+1 lets one start and {backlog - 1} still wait; a limit of {clearing} clears the "
                            "backlog now")
        fix, hint = fix_or_by_hand(limit, limit.limit + 1)
        found.append(_incident("waiting_on_limit", limit, now, since=since, threshold_seconds=wait_seconds,
                               summary=summary, fix=fix, hint=hint, evidence=evidence))
    return found


def gcl_at_limit(snap: WatchSnapshot, wait_seconds: float, seen: Mapping[str, datetime]) -> list[Incident]:
    """A plain global limit at its limit for longer than the threshold."""
    now, found = snap.read_at, []
    for limit in snap.limits:
        if limit.kind != "global" or not limit.full or not limit.limit or limit.is_rate_limit:
            continue
        key = incident_key("gcl_full", "global", limit.name)
        holders = holders_text(limit.holders) if limit.holders_known else "runs Prefect cannot name"
        fix, hint = fix_or_by_hand(limit, limit.limit + 1)
        found.append(_incident(
            "gcl_full", limit, now, since=_full_since(limit, now, seen, key), threshold_seconds=wait_seconds,
            summary=f"global limit {name(limit.name)} is at its limit ({limit.active_slots}/{limit.limit}), "
                    f"held by {holders}",
            fix=fix, hint=hint,
            evidence=[f"limit {limit.limit}, active slots {limit.active_slots}", INVISIBLE_ACQUIRERS]))
    return found


def leaked_slots(snap: WatchSnapshot, wait_seconds: float, seen: Mapping[str, datetime]) -> list[Incident]:
    """Slots counted for nobody alive: held by ended runs (or runs of ended flows), or counted with no
    holder at all. A slot with no lease is not leaked while a live Running task carries the tag (after a
    server restart the leases are gone but the holders run on); a reset is proposed only when it would
    release no live holder, and the card names the holders it would release."""
    now, found = snap.read_at, []
    threshold = min(wait_seconds, LEAK_THRESHOLD_CAP)
    for limit in snap.limits:
        if limit.kind not in ("tag", "global", "deployment") or limit.active_slots <= 0:
            continue
        if limit.kind == "global" and not limit.holders_known:
            continue  # nobody named: gcl_full reports a full one; a leak needs a holder we know has ended
        dead = [h for h in limit.holders if not h.alive]
        extra_live = snap.tag_unleased_live.get(limit.name, []) if limit.kind == "tag" else []
        live = [h for h in limit.holders if h.alive] + extra_live
        # slots counted with no holder at all (a global limit's anonymous holders are unknown, not missing)
        unheld = 0 if limit.kind == "global" else (limit.active_slots - len(limit.holders) - len(extra_live)
                                                   - snap.slots_in_flight.get(flight_key(limit), 0))
        count = len(dead) + max(0, unheld)
        if count <= 0:
            continue
        key = incident_key("leaked_slots", limit.kind, limit.name)
        ended = [h.seconds_in_state for h in dead if h.seconds_in_state is not None]
        since = now - timedelta(seconds=min(ended)) if ended and len(ended) == len(dead) and unheld <= 0 \
            else seen.get(key, now)
        evidence = [r for r in (ended_reason(h) for h in dead) if r][:5]
        if unheld > 0:
            evidence.append(f"{limit.active_slots} slot(s) counted, {len(limit.holders)} held under a lease, "
                            f"{len(live)} live holder(s) in all")
        fix: Change | None = None
        hint = None
        if limit.kind == "global" and limit.active_slots > len(limit.holders):
            hint = ("no reset proposed: some slots are held by code Prefect cannot name, and a reset would "
                    "release those too")
        elif live:  # a reset zeroes the count: every live holder would run on uncounted
            hint = (f"no reset proposed: it would also release {len(live)} live holder(s) "
                    f"({holders_text(live)}); it is safe once they finish")
        elif limit.kind == "tag":
            fix, hint = _or_by_hand(lambda limit=limit: TagLimitChange(action="reset", tag=limit.name),
                                    ("prefect", "concurrency-limit", "reset", limit.name))
        elif limit.kind == "global" or limit.gcl_name or limit.name.startswith(DEPLOYMENT_PREFIX):
            fix, hint = _or_by_hand(lambda limit=limit: GlobalLimitChange(action="reset", name=_gcl_name(limit)),
                                    ("prefect", "global-concurrency-limit", "update", _gcl_name(limit),
                                     "--active-slots", "0"))
        if fix is not None:
            evidence.append(f"a reset releases: {holders_text(dead) if dead else 'no run (slots with no holder)'}")
        found.append(_incident(
            "leaked_slots", limit, now, since=since, threshold_seconds=threshold, holders=dead or limit.holders,
            summary=f"{LABEL[limit.kind]} {name(limit.name)} counts {count} slot(s) nobody alive holds "
                    f"({limit.active_slots}/{_show(limit.limit)} in use)",
            evidence=evidence, fix=fix, hint=hint))
    return found


def _or_by_hand(build: Callable[[], Change], argv: tuple[str, ...]) -> tuple[Change | None, str | None]:
    """`build()`, or (None, a by-hand hint) when the change refuses the object's name."""
    try:
        return build(), None
    except ValueError as exc:
        reason = str(exc).split(";", 1)[0]
        for error in getattr(exc, "errors", lambda: [])():
            reason = str(error.get("msg", reason)).removeprefix("Value error, ").split(";", 1)[0]
        return None, by_hand(reason, argv)


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
            "no_worker", limit, now, since=_oldest_wait(limit.waiting_runs, now), threshold_seconds=0.0,
            summary=f"work pool {name(limit.name)} has Late runs and no online worker",
            evidence=[f"Late: {runs_text(late, len(late))}", f"{limit.waiting} run(s) due in the pool"],
            hint=f"start a worker: {command_or_note('prefect', 'worker', 'start', '--pool', limit.name)}"))
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
            "no_worker", limit, now, since=_oldest_wait(limit.waiting_runs, now), threshold_seconds=0.0,
            summary=f"work queue {name(limit.name)} has Late runs and no online worker polls it",
            evidence=[f"Late: {runs_text(late, len(late))}", f"the pool {name(pool)} has online workers, "
                      "none of them polling this queue"],
            hint="start a worker for it: "
                 + command_or_note("prefect", "worker", "start", "--pool", pool, "--work-queue", queue)))
    return found


def paused_with_backlog(snap: WatchSnapshot, wait_seconds: float,
                        seen: Mapping[str, datetime]) -> list[Incident]:
    """A paused pool or queue that has runs due."""
    now, found = snap.read_at, []
    for limit in snap.limits:
        if limit.kind not in ("work_pool", "work_queue") or not limit.paused or not limit.waiting:
            continue
        if limit.kind == "work_pool":
            hint = f"resume it: {command_or_note('prefect', 'work-pool', 'resume', limit.name)}"
        else:
            pool, queue = limit.name.split("/", 1)
            hint = f"resume it: {command_or_note('prefect', 'work-queue', 'resume', queue, '--pool', pool)}"
        found.append(_incident(
            "paused_backlog", limit, now, since=_oldest_wait(limit.waiting_runs, now), threshold_seconds=0.0,
            summary=f"{LABEL[limit.kind]} {name(limit.name)} is paused with {limit.waiting} run(s) due",
            evidence=[f"waiting: {runs_text(limit.waiting_runs, limit.waiting)}"], hint=hint))
    return found


def zero_limit_with_waiters(snap: WatchSnapshot, wait_seconds: float,
                            seen: Mapping[str, datetime]) -> list[Incident]:
    """A limit of 0 on something that has waiting runs: nothing will ever start."""
    now, found = snap.read_at, []
    for limit in snap.limits:
        if limit.limit != 0 or not limit.enabled or limit.paused or limit.name in snap.deployment_due:
            continue
        waiting = snap.tasks_waiting.get(limit.name, 0) if limit.kind == "tag" else limit.waiting
        if not waiting:
            continue
        fix, hint = fix_or_by_hand(limit, 1)
        found.append(_incident(
            "zero_limit", limit, now, since=_oldest_wait(limit.waiting_runs, now), threshold_seconds=0.0,
            summary=f"{LABEL[limit.kind]} {name(limit.name)} has limit 0, so its {waiting} waiting run(s) "
                    "can never start",
            evidence=[f"waiting: {runs_text(limit.waiting_runs, waiting)}"], fix=fix, hint=hint))
    return found


def blocked_deployment(snap: WatchSnapshot, wait_seconds: float,
                       seen: Mapping[str, datetime]) -> list[Incident]:
    """A deployment whose own limit is disabled (every run waits in AwaitingConcurrencySlot) or 0 (runs go
    Late, the worker aborts them every poll) while it has runs due: nothing of it will ever start."""
    now, found = snap.read_at, []
    for limit in snap.limits:
        if limit.kind != "deployment":
            continue
        due = list(snap.deployment_due.get(limit.name, []))  # due Scheduled/Late runs
        seen = {w.id for w in due}
        due += [w for w in limit.waiting_runs if w.id not in seen]  # AwaitingConcurrencySlot, rescheduled ahead
        if not due:
            continue
        if not limit.enabled:
            kind: IncidentKind = "disabled_limit"
            summary = (f"deployment {name(limit.name)} has its concurrency limit disabled, so its {len(due)} "
                       "due run(s) can never start (a disabled deployment limit blocks; it does not lift)")
            fix, hint = _or_by_hand(lambda limit=limit: GlobalLimitChange(action="enable", name=_gcl_name(limit)),
                                    ("prefect", "global-concurrency-limit", "enable", _gcl_name(limit)))
        elif limit.limit == 0:
            kind = "zero_limit"
            fix, hint = fix_or_by_hand(limit, 1)
            summary = (f"deployment {name(limit.name)} has limit 0, so its {len(due)} due run(s) can never start")
        else:
            continue
        found.append(_incident(kind, limit, now, since=_oldest_wait(due, now), threshold_seconds=0.0,
                               summary=summary, waiting=len(due), waiting_runs=due[:5],
                               evidence=[f"waiting: {runs_text(due, len(due))}"], fix=fix, hint=hint))
    return found


def _show(value: int | None) -> str:
    return "none" if value is None else str(value)


DETECTORS: tuple[Detector, ...] = (waiting_on_full_limit, gcl_at_limit, leaked_slots, late_without_worker,
                                   late_in_unpolled_queue, paused_with_backlog, zero_limit_with_waiters,
                                   blocked_deployment)


def detect(snap: WatchSnapshot, wait_seconds: float, seen: Mapping[str, datetime] | None = None) -> list[Incident]:
    """Every condition every detector sees now, ripe or not (see `Incident.ripe`).

    Each detector runs on the whole snapshot; one that raises runs again object by object, so an odd
    object (a name no change may carry, a value no model expected) costs its own incident at most,
    never the tick: the other objects' incidents are still found.
    """
    seen = seen or {}
    found: list[Incident] = []
    for detector in DETECTORS:
        try:
            found += detector(snap, wait_seconds, seen)
        except Exception:
            log.exception("detector %s failed on the whole snapshot; running it per object", detector.__name__)
            found += _per_object(detector, snap, wait_seconds, seen)
    return found


def _per_object(detector: Detector, snap: WatchSnapshot, wait_seconds: float,
                seen: Mapping[str, datetime]) -> list[Incident]:
    found: list[Incident] = []
    for limit in snap.limits:
        try:
            found += detector(snap.model_copy(update={"limits": [limit]}), wait_seconds, seen)
        except Exception:
            log.exception("detector %s skipped one %s it could not read", detector.__name__, limit.kind)
    return found


def ripe(incidents: list[Incident], now: datetime) -> list[Incident]:
    return [i for i in incidents if i.ripe(now)]


__all__ = ["DETECTORS", "detect", "duration", "ripe"]
