"""The watcher loop in `serve`: lead (one replica at a time), read, detect, post once, update, resolve.

Every `interval` it reads all live state once (a full read: a handful of paged calls). Between full
reads, Prefect's event stream names the objects that changed, and the watcher re-reads only those
(a targeted read), debounced, so a change shows up in seconds for a few calls. Heartbeats and worker
chatter wake nothing. Every call goes through a metered client: `max_calls_per_minute` caps the
watcher's share of the account's API budget, a 429 pauses it for the server's Retry-After, and reads
give up in seconds (short timeouts, one retry) so a dead server never outlasts the leader lease, which
is also renewed while a read runs. Only the replica holding the lease acts, and every incident moves
watching → open → resolved by compare-and-set on its key, so it is posted once across replicas and
restarts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.safe_text import mention
from bot.store import Store
from bot.store import watch as db
from bot.store.proposals import from_db_time
from bot.watch.budget import WINDOW, CallMeter, Throttled, few_retries, metered_client_factory
from bot.watch.detectors import detect
from bot.watch.events import EventFollower
from bot.watch.incidents import Incident
from bot.watch.reads import TargetedParts, WatchSnapshot, merge_parts, read_snapshot, read_target_parts, read_targets
from bot.watch.render import duration
from bot.watch.targets import Targets, targets_for, targets_of

log = logging.getLogger(__name__)

LOCK = "watcher"
CONFIRM_SECONDS = 2.0  # slot/run mismatches must be seen twice this far apart: a moment's skew is no incident
WAKE_DEBOUNCE = 1.0  # events arriving within this are one targeted read
URGENT_DEBOUNCE = 0.5  # ... and for a change of configuration, which someone may be waiting to hear about
URGENT_RESERVE_READS = 2  # targeted reads' worth of the minute's calls that only urgent reads may spend
FIRST_FULL_COST = 30  # calls a full read is assumed to cost until one is measured
FIRST_TARGETED_COST = 8
REPOST_AFTER = timedelta(minutes=2)  # a post claimed but never recorded (a crash mid-post) is retried

ClientFactory = Callable[[], AbstractAsyncContextManager[Any]]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ReadTrace:
    """When one read ran (monotonic seconds): what made it, when its reading ended, what it posted.
    `make bench` prints these per event → post sample; the watcher keeps only the last few."""

    kind: str  # full | targeted | urgent (a targeted read run beside a full read)
    started: float
    urgent_at: float | None = None  # the first urgent event this read answers
    read_done: float | None = None
    done: float | None = None
    posted: int = 0
    posted_names: list[str] = field(default_factory=list)  # the objects of the incidents it posted
    calls: int = 0  # API calls this read made
    window: int = 0  # calls already spent in the minute before it started (against the cap)


async def open_incidents(store: Store) -> list[Incident]:
    """Open incidents, oldest first (the Home tab)."""
    rows = await asyncio.to_thread(db.incident_rows, store.sessions, (db.OPEN,))
    return [Incident.model_validate_json(row.incident_json) for row in rows]


def _blinked(row: db.WatchIncident) -> bool:
    """A watching (not yet posted) incident that the last read did not see."""
    return row.status == db.WATCHING and Incident.model_validate_json(row.incident_json).absent_since is not None


class Watcher:
    """Owns the loop; Slack posting is delegated to `poster` (bot.slack.watch_poster.SlackPoster)."""

    def __init__(self, store: Store, poster: Any, *, interval: float = 30.0, wait_seconds: float = 600.0,
                 max_posts_per_hour: int = 10, client_factory: ClientFactory | None = None,
                 clock: Callable[[], datetime] = _now, replica_id: str | None = None,
                 follow_events: bool = True, confirm_seconds: float | None = None,
                 settle_seconds: float | None = None, max_calls_per_minute: int = 100,
                 api_url: str | None = None) -> None:
        self.store = store
        self.poster = poster
        self.interval = interval
        self.wait_seconds = wait_seconds
        self.max_posts_per_hour = max_posts_per_hour
        self.clock = clock
        self.replica_id = replica_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.follow_events = follow_events
        self.confirm = min(interval, CONFIRM_SECONDS) if confirm_seconds is None else confirm_seconds
        # hysteresis: an open incident must stay away this long before it is resolved; back sooner, it is
        # the same episode and the same message
        self.settle = max(3 * interval, 5.0) if settle_seconds is None else settle_seconds
        self.lease_seconds = max(1.25 * interval, 10.0)
        self.meter = CallMeter(max_calls_per_minute)
        # a request may take at most a fifth of the lease; with one retry a dead server fails a read in
        # well under half the lease (Prefect's default retries wait 2+4+8+16+32 s)
        self.request_timeout = max(2.0, min(10.0, self.lease_seconds / 5))
        self.client_factory = client_factory or metered_client_factory(self.meter, self.request_timeout, api_url)
        self.leading = False
        self.wake = asyncio.Event()
        self.ticks = 0
        self.snapshot: WatchSnapshot | None = None
        self.targets = Targets()
        self.last_full = float("-inf")
        self.last_read = float("-inf")
        self.recheck_at = float("inf")  # when a condition seen but not yet ripe should be looked at again
        self.later = Targets()  # ... and which objects that look reads
        self.cost = {"full": FIRST_FULL_COST, "targeted": FIRST_TARGETED_COST}
        self.reads = {"full": 0, "targeted": 0, "deferred": 0, "throttled": 0}
        self.durations: dict[str, deque[float]] = {"full": deque(maxlen=50), "targeted": deque(maxlen=50)}
        self.events_seen = 0
        self.events_used = 0
        self.urgent = asyncio.Event()  # set when an urgent change is noted: a running full read makes room
        self.trace: deque[ReadTrace] = deque(maxlen=200)
        self._tracing = ReadTrace("none", 0.0)  # the read whose posts are being made
        self._beside = 0  # calls made by urgent reads beside the current full read

    def note_event(self, event: Any) -> bool:
        """The event stream's filter: remember what `event` names; True when it is worth a look.
        None stands for events missed while disconnected: read everything."""
        self.events_seen += 1
        found = Targets(full=True) if event is None else targets_of(event)
        if found is not None and self.snapshot is not None and event is not None:
            name = str(getattr(event, "event", ""))
            if name.startswith(("prefect.flow-run.", "prefect.task-run.")):  # runs: only limits we know of
                found.deployments &= {lim.id for lim in self.snapshot.limits if lim.kind == "deployment"}
                found.tags &= {lim.name for lim in self.snapshot.limits if lim.kind == "tag"}
            if not found:
                found = None
        if found is None:
            return False
        self.events_used += 1
        if found.urgent:
            found.urgent_at = time.monotonic()
            self.urgent.set()
        self.targets.add(found)
        return True

    async def _db(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(func, *args, **kwargs)

    # --- the loop --------------------------------------------------------------------------------
    async def run(self) -> None:
        follower = EventFollower(self.wake.set, classify=self.note_event) if self.follow_events else None
        follow_task = asyncio.ensure_future(follower.run()) if follower else None
        try:
            while True:
                next_in = await self.step()
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=next_in)
                    # let a burst of events settle into one read
                    await asyncio.sleep(URGENT_DEBOUNCE if self.targets.urgent else WAKE_DEBOUNCE)
                except TimeoutError:
                    pass
                self.wake.clear()
        finally:
            if follow_task is not None:
                follow_task.cancel()
                await asyncio.gather(follow_task, return_exceptions=True)
            await self._db(db.release_lead, self.store.engine, LOCK, self.replica_id)

    async def _renew(self) -> bool:
        try:
            return await self._db(db.try_lead, self.store.engine, LOCK, self.replica_id, self.lease_seconds,
                                  self.clock())
        except Exception:
            log.exception("watcher could not reach the store")
            return False

    async def step(self) -> float:
        """One turn: renew or take the lease; if leading, read what is due (everything once per interval,
        else what events named) within the call budget. Returns seconds until the next turn."""
        self.leading = await self._renew()
        if not self.leading:
            self.snapshot = None  # a standby's picture goes stale; it reads everything when it takes over
            return self.interval / 2  # standby: check the lease often enough to take over in time
        now = time.monotonic()
        if now >= self.recheck_at:
            self.targets.add(self.later)
            self.later, self.recheck_at = Targets(), float("inf")
        full = self.snapshot is None or self.targets.full or now - self.last_full >= self.interval
        if (full and self.snapshot is not None and not self.targets.full and self.targets.urgent
                and now - self.last_full < self.interval + WINDOW
                and self.meter.wait_for(self.cost["full"] + self.full_reserve(now)) > 0):
            # the full read waits for budget; a change someone just made need not wait with it (for at most
            # one budget window, so a stream of changes cannot hold the full read off for good)
            full = False
        if not full and not self.targets:
            return max(0.05, min(self.last_full + self.interval, self.recheck_at) - now)
        kind = "full" if full else "targeted"
        urgent = not full and self.targets.urgent
        if not full and not urgent:  # pace run churn so the minute's budget lasts the minute
            # half of what full reads leave: the other half stays free for configuration changes
            spare = (self.meter.max_per_minute - self.cost["full"] * 60 / self.interval) / 2
            gap = 60 * self.cost["targeted"] / max(spare, self.cost["targeted"])
            if now - self.last_read < gap:
                return max(0.05, min(self.last_read + gap, self.last_full + self.interval) - now)
        # a read of run churn leaves room for a couple of urgent reads (changes of configuration), so they
        # never wait behind it, and for a full read due soon: the full read is what keeps the truth. A full
        # read leaves that room too where its interval allows (see `full_reserve`).
        reserve = self.full_reserve(now) if full else 0
        if not full and not urgent:
            reserve = self.urgent_reserve()
            if self.last_full + self.interval - now < 15:
                reserve += self.cost["full"]
        wait = self.meter.wait_for(self.cost[kind] + reserve)
        if wait > 0:  # over the call budget or inside a 429's Retry-After: keep what is due for later
            self.reads["deferred"] += 1
            return wait
        try:
            pending = await self._leading(self.tick(full=full))
        except Throttled as exc:
            self.reads["throttled"] += 1
            log.warning("watcher paused: %s", exc)
            return max(exc.retry_after, self.meter.wait_for(1))
        except Exception as exc:
            log.warning("watcher read failed: %s: %s", type(exc).__name__, str(exc)[:300])
            return min(self.interval, max(self.request_timeout, 5.0))
        if pending is not None:
            self.recheck_at = min(self.recheck_at, time.monotonic() + pending)
        now = time.monotonic()
        return max(0.05, min(self.last_full + self.interval, self.recheck_at) - now)

    def urgent_reserve(self) -> int:
        """Calls of the minute's budget kept free for urgent targeted reads (never more than a fifth)."""
        return min(URGENT_RESERVE_READS * self.cost["targeted"], self.meter.max_per_minute // 5)

    def full_reserve(self, now: float) -> int:
        """The urgent reserve a full read leaves free: only where full reads at their interval and the reserve
        fit the cap together (with a short interval full reads fill the budget, and fewer of them is worse),
        and only until the full read is a budget window overdue (a stream of changes cannot starve it)."""
        reserve = self.urgent_reserve()
        if self.cost["full"] * WINDOW / self.interval + reserve > self.meter.max_per_minute:
            return 0
        return reserve if now - self.last_full < self.interval + WINDOW else 0

    async def _leading(self, work: Any) -> Any:
        """Run `work` while renewing the lease every third of it; if the lease is lost, stop the work
        before it posts or updates anything (another replica leads now)."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.lease_seconds / 3)
                if done:
                    return task.result()
                if not await self._renew():
                    self.leading = False
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    raise RuntimeError("lost the watcher lease during a read; another replica leads")
        finally:
            if not task.done():
                task.cancel()

    # --- one read ----------------------------------------------------------------------------------
    async def tick(self, full: bool = True) -> float | None:
        """Read (everything, or what events named), detect, reconcile with the store. Returns seconds
        until a condition seen but not yet reportable should be looked at again, or None."""
        targets, self.targets = self.targets, Targets()
        full = full or self.snapshot is None
        kind = "full" if full else "targeted"
        trace = ReadTrace(kind, time.monotonic(), None if full else targets.urgent_at,
                          window=self.meter.last_minute())
        before = self.meter.total
        self._beside = 0  # calls of urgent reads run beside this one: not this read's cost
        try:
            async with self.client_factory() as client:
                with few_retries(1):
                    if full:
                        snap = await self._full_read(client)
                        self.last_full = time.monotonic()
                    else:
                        snap = await read_targets(client, self.snapshot, targets)
        except BaseException:
            self.targets.add(targets)  # nothing was read: what was due stays due
            raise
        self.last_read = time.monotonic()
        self._record_read(trace, self.last_read, self.meter.total - self._beside - before)
        return await self._reconcile(snap, trace)

    def _record_read(self, trace: ReadTrace, read_done: float, calls: int) -> None:
        """Count a read, keep its duration, and take its calls as the next estimate of its kind's cost
        (an urgent read beside a full read is a targeted read)."""
        kind = "full" if trace.kind == "full" else "targeted"
        self.reads[kind] += 1
        trace.read_done, trace.calls = read_done, calls
        self.durations[kind].append(read_done - trace.started)
        if calls:
            self.cost[kind] = calls

    async def _full_read(self, client: Any) -> WatchSnapshot:
        """Read everything. An urgent change noted meanwhile does not wait for it (a full read takes
        seconds on a big or busy server): it is read and reported beside it. What those reads named is
        read once more after the full read, so every object's picture moves forward in time: the full
        read may have read an object before or after its change, and a slot/run mismatch must be seen in
        two separate reads before it counts (`Incident.needs_confirmation`)."""
        read = asyncio.ensure_future(read_snapshot(client))
        beside = Targets()
        try:
            while not read.done():
                wait = self._urgent_wait()
                if wait == 0:
                    await asyncio.wait({read}, timeout=URGENT_DEBOUNCE)  # let the burst settle
                    parts = await self._urgent_read(client)
                    if parts is not None:
                        beside.add(parts.targets)
                    continue
                self.urgent.clear()
                if self._urgent_wait() == 0:
                    continue  # noted between the check and the clear
                woken = asyncio.ensure_future(self.urgent.wait())
                try:
                    await asyncio.wait({read, woken}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    woken.cancel()
            snap = read.result()
        finally:
            if not read.done():
                read.cancel()
                await asyncio.gather(read, return_exceptions=True)
        if beside:
            before = self.meter.total
            try:
                snap = merge_parts(snap, await read_target_parts(client, snap, beside))
            finally:
                self._beside += self.meter.total - before
        return snap

    def _urgent_wait(self) -> float | None:
        """None: no urgent change to read beside a full read; else seconds until the budget allows it."""
        if self.snapshot is None or not self.targets.urgent:
            return None
        return self.meter.wait_for(self.cost["targeted"])

    async def _urgent_read(self, client: Any) -> TargetedParts | None:
        """Read what urgent events named and report it, while a full read runs."""
        targets, self.targets = self.targets, Targets()
        trace = ReadTrace("urgent", time.monotonic(), targets.urgent_at, window=self.meter.last_minute())
        before = self.meter.total
        try:
            parts = await read_target_parts(client, self.snapshot, targets)
        except Throttled:
            self.targets.add(targets)
            raise
        except Exception as exc:  # the full read under way sees it too; no retry loop beside it
            targets.urgent, targets.urgent_at = False, None
            self.targets.add(targets)
            log.warning("watcher urgent read failed: %s: %s", type(exc).__name__, str(exc)[:300])
            return None
        finally:
            self._beside += self.meter.total - before
        self._record_read(trace, time.monotonic(), self.meter.total - before)
        pending = await self._reconcile(merge_parts(self.snapshot, parts), trace)
        if pending is not None:
            self.recheck_at = min(self.recheck_at, time.monotonic() + pending)
        return parts

    async def _reconcile(self, snap: WatchSnapshot, trace: ReadTrace) -> float | None:
        """Detect on `snap`, move incidents along in the store, post and update Slack."""
        self._tracing = trace
        try:
            return await self._detect_and_store(snap, trace)
        finally:
            trace.done, trace.posted = time.monotonic(), len(trace.posted_names)
            self.trace.append(trace)

    async def _detect_and_store(self, snap: WatchSnapshot, trace: ReadTrace) -> float | None:
        self.snapshot = snap
        now = self.clock()
        rows = {row.key: row for row in await self._db(db.incident_rows, self.store.sessions)}
        # a watching condition that went away for a read starts its own clock again when it returns; the
        # detectors' `since` from Prefect's timestamps (a waiter's wait, a holder's end) does not need one
        blinked = {key for key, row in rows.items() if _blinked(row)}  # parsed once per read
        seen = {key: from_db_time(row.first_seen) for key, row in rows.items() if key not in blinked}
        found = {incident.key: incident for incident in detect(snap, self.wait_seconds, seen)}
        silenced = await self._db(db.silenced_targets, self.store.sessions, now)
        pending: float | None = None
        self.ticks += 1
        applied = await self._applied_notes(rows)
        for key, incident in found.items():
            fresh = incident.since == snap.read_at  # nothing to time it by (no Prefect time, no earlier sighting)
            if fresh:
                incident.since = now  # it starts now, on the watcher's clock like every sighting
            if key in applied:
                incident.applied = applied[key]
            row = rows.get(key) or await self._start(incident, now)
            if row is None:
                continue
            waited = sorted(set(json.loads(row.waited_json or "[]")) | {str(w.id) for w in incident.waiting_runs})
            if key in blinked and fresh:  # timed by our own sightings: its clock starts again
                await self._db(db.set_incident, self.store.sessions, key, (db.WATCHING,), first_seen=now, since=now)
                row.first_seen = now
            first_seen = from_db_time(row.first_seen)
            if row.status == db.WATCHING:
                confirmed = (not incident.needs_confirmation
                             or first_seen <= now - timedelta(seconds=self.confirm))
                if incident.ripe(now) and confirmed:
                    await self._db(db.set_incident, self.store.sessions, key, (db.WATCHING,), status=db.OPEN,
                                   opened_at=now, last_seen=now, incident_json=incident.model_dump_json(),
                                   waited_json=json.dumps(waited), fingerprint=incident.fingerprint())
                else:  # look again (at this object only) when it ripens or can be confirmed
                    due = max(incident.since + timedelta(seconds=incident.threshold_seconds),
                              first_seen + timedelta(seconds=self.confirm if incident.needs_confirmation else 0))
                    wait = max(0.5, (due - now).total_seconds())
                    pending = wait if pending is None else min(pending, wait)
                    self.later.add(targets_for(incident, snap))
                    await self._db(db.set_incident, self.store.sessions, key, (db.WATCHING,), last_seen=now,
                                   incident_json=incident.model_dump_json(), waited_json=json.dumps(waited))
            elif row.status == db.OPEN:
                changed = row.fingerprint != incident.fingerprint()
                await self._db(db.set_incident, self.store.sessions, key, (db.OPEN,), last_seen=now,
                               incident_json=incident.model_dump_json(), waited_json=json.dumps(waited),
                               fingerprint=incident.fingerprint())
                if changed and row.message_ts and not self._silenced(incident, silenced):
                    await self.poster.update(row, incident, now)
        for key, row in rows.items():
            if key not in found:
                await self._clear(row, now, applied.get(key))
        if log.isEnabledFor(logging.DEBUG):  # the decision trail a soak reads back when something is missed
            log.debug("%s read (%d calls): %s; gone: %s", trace.kind, trace.calls,
                      [(k, i.ripe(now), rows[k].status if k in rows else "new") for k, i in found.items()],
                      [k for k in rows if k not in found])
        await self._post_unposted(now, silenced)
        return pending

    async def _start(self, incident: Incident, now: datetime) -> db.WatchIncident | None:
        values = dict(key=incident.key, kind=incident.kind, object_key=incident.object_key, first_seen=now,
                      last_seen=now, since=incident.since, incident_json=incident.model_dump_json(),
                      waited_json=json.dumps([str(w.id) for w in incident.waiting_runs]), rolled_up=0)
        if not await self._db(db.start_watching, self.store.engine, values):
            # the key was seen before and resolved: the trouble is back, a new incident under the same key.
            # Its earlier post still counts against the hourly cap: keep it as a post-log row first.
            old = await self._db(db.get_incident, self.store.sessions, incident.key)
            if old is not None and old.status == db.RESOLVED and old.posted_at is not None:
                await self._db(db.log_post, self.store.engine, incident.key, old.posted_at)
            await self._db(db.set_incident, self.store.sessions, incident.key, (db.RESOLVED,), status=db.WATCHING,
                           first_seen=now, last_seen=now, since=incident.since, opened_at=None, posted_at=None,
                           resolved_at=None, message_ts=None, channel=None, proposal_id=None, rolled_up=0,
                           fingerprint=None, incident_json=incident.model_dump_json(),
                           waited_json=values["waited_json"])
        row = await self._db(db.get_incident, self.store.sessions, incident.key)
        return row if row is not None and row.status in (db.WATCHING, db.OPEN) else None

    async def _clear(self, row: db.WatchIncident, now: datetime, applied: str | None = None) -> None:
        if row.status == db.WATCHING:
            # Trouble that blinks (a slot handed from one waiter to the next, a pool between two runs) is
            # kept through the settling window: a read that lands in the blink must not throw away the
            # sighting that confirms it, or budget-spaced reads can miss a short backlog for good.
            incident = Incident.model_validate_json(row.incident_json)
            if incident.absent_since is None and self.settle > 0:
                incident.absent_since = now
                await self._db(db.set_incident, self.store.sessions, row.key, (db.WATCHING,),
                               incident_json=incident.model_dump_json())
            elif incident.absent_since is None or now - incident.absent_since >= timedelta(seconds=self.settle):
                await self._db(db.forget_watching, self.store.sessions, row.key)
            return
        if applied is not None:  # an approved fix shows on the message at once, before it settles
            incident = Incident.model_validate_json(row.incident_json)
            if incident.applied != applied:
                incident.applied = applied
                if await self._db(db.set_incident, self.store.sessions, row.key, (db.OPEN,),
                                  incident_json=incident.model_dump_json(), fingerprint=incident.fingerprint()):
                    row.incident_json = incident.model_dump_json()
                    if row.message_ts:
                        await self.poster.update(row, incident, now)
        incident = Incident.model_validate_json(row.incident_json)
        if incident.absent_since is None:  # the first read without it: the settling window starts now
            incident.absent_since = now
            await self._db(db.set_incident, self.store.sessions, row.key, (db.OPEN,),
                           incident_json=incident.model_dump_json())
            if self.settle > 0:
                return
        if now - incident.absent_since < timedelta(seconds=self.settle):
            return  # not settled: if it comes back now it is the same episode, the same message
        if not await self._db(db.set_incident, self.store.sessions, row.key, (db.OPEN,), status=db.RESOLVED,
                              resolved_at=now):
            return
        if row.message_ts:
            incident = Incident.model_validate_json(row.incident_json)
            opened = from_db_time(row.opened_at) or from_db_time(row.first_seen)
            waited = json.loads(row.waited_json or "[]")
            started = await self._started(waited)
            text = f"cleared after {duration((now - min(opened, incident.since)).total_seconds())}"
            if started is not None:
                text += f"; {started} of {len(waited)} waiting run{'s' if len(waited) != 1 else ''} started"
                if started < len(waited):
                    text += f", {len(waited) - started} not yet"
            await self.poster.resolve(row, incident, now, text)

    async def _started(self, run_ids: list[str]) -> int | None:
        if not run_ids:
            return None
        from bot.prefect_ops.runs import read_flow_runs_by_id, read_task_runs_by_id

        try:
            ids = [uuid.UUID(r) for r in run_ids]
            async with self.client_factory() as client:
                runs: dict = dict(await read_flow_runs_by_id(client, ids))
                missing = [i for i in ids if i not in runs]  # tag incidents wait with task runs
                if missing:
                    runs.update(await read_task_runs_by_id(client, missing))
        except Exception:
            return None
        return sum(1 for run in runs.values() if run.start_time is not None)

    async def _applied_notes(self, rows: dict[str, db.WatchIncident]) -> dict[str, str]:
        """For open incidents whose proposed fix was applied: what was done and by whom, for the message."""
        from bot.store.proposals import get_proposal

        notes = {}
        for key, row in rows.items():
            if row.status != db.OPEN or not row.proposal_id:
                continue
            proposal = await self._db(get_proposal, self.store.sessions, row.proposal_id)
            if proposal is None or proposal.status != "applied":
                continue
            by = f" by {mention(proposal.decided_by)}" if proposal.decided_by else ""
            incident = Incident.model_validate_json(row.incident_json)
            waiting = " waiting for a worker to start the run(s)" if incident.object_kind in (
                "deployment", "work_pool", "work_queue") and incident.waiting else ""
            notes[key] = f"{proposal.diff}, approved{by};" + (waiting or " waiting for the next read to confirm")
        return notes

    @staticmethod
    def _silenced(incident: Incident, silenced: set[str]) -> bool:
        return incident.key in silenced or incident.object_key in silenced

    async def _post_unposted(self, now: datetime, silenced: set[str]) -> None:
        rows = [r for r in await self._db(db.incident_rows, self.store.sessions, (db.OPEN,))
                if not r.message_ts and not r.rolled_up]
        overflow: list[Incident] = []
        for row in rows:
            incident = Incident.model_validate_json(row.incident_json)
            if self._silenced(incident, silenced):
                continue
            claimed = from_db_time(row.posted_at)
            if claimed is not None and claimed > now - REPOST_AFTER:
                continue  # another turn (or replica) is posting it right now
            posted = await self._db(db.posts_since, self.store.sessions, now - timedelta(hours=1))
            if posted >= self.max_posts_per_hour:
                if await self._db(db.set_incident, self.store.sessions, row.key, (db.OPEN,), rolled_up=1):
                    overflow.append(incident)
                continue
            if not await self._db(db.claim_post, self.store.sessions, row.key, claimed, now):
                continue
            channel, ts = await self.poster.post(incident, now)
            self._tracing.posted_names.append(incident.object_name)
            await self._db(db.set_incident, self.store.sessions, row.key, (db.OPEN, db.RESOLVED), channel=channel,
                           message_ts=ts)
            row = await self._db(db.get_incident, self.store.sessions, row.key)
            if incident.fix is not None and row is not None and row.proposal_id is None:
                proposal_id = await self.poster.propose(incident, channel, ts)
                if proposal_id:
                    await self._db(db.set_incident, self.store.sessions, row.key, (db.OPEN, db.RESOLVED),
                                   proposal_id=proposal_id)
        if overflow:
            await self.poster.rollup(overflow, now)
