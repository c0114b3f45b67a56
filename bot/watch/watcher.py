"""The watcher loop in `serve`: lead (one replica at a time), read, detect, post once, update, resolve.

Every `interval` it reads live state; Prefect's event stream wakes it sooner, so a change shows up in
seconds without depending on any one event. Only the replica holding the lease in the store acts,
and every incident moves watching → open → resolved by compare-and-set on its key, so it is posted
once across replicas and restarts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.safe_text import mention
from bot.store import Store
from bot.store import watch as db
from bot.store.proposals import from_db_time
from bot.watch.detectors import detect
from bot.watch.events import EventFollower
from bot.watch.incidents import Incident
from bot.watch.reads import read_snapshot
from bot.watch.render import duration

log = logging.getLogger(__name__)

LOCK = "watcher"
CONFIRM_SECONDS = 2.0  # slot/run mismatches must be seen twice this far apart: a moment's skew is no incident
WAKE_DEBOUNCE = 0.3
REPOST_AFTER = timedelta(minutes=2)  # a post claimed but never recorded (a crash mid-post) is retried

ClientFactory = Callable[[], AbstractAsyncContextManager[Any]]


def _now() -> datetime:
    return datetime.now(UTC)


def _prefect_client() -> AbstractAsyncContextManager[Any]:
    from prefect import get_client

    return get_client()


async def open_incidents(store: Store) -> list[Incident]:
    """Open incidents, oldest first (the Home tab)."""
    rows = await asyncio.to_thread(db.incident_rows, store.sessions, (db.OPEN,))
    return [Incident.model_validate_json(row.incident_json) for row in rows]


class Watcher:
    """Owns the loop; Slack posting is delegated to `poster` (bot.slack.watch_poster.SlackPoster)."""

    def __init__(self, store: Store, poster: Any, *, interval: float = 30.0, wait_seconds: float = 600.0,
                 max_posts_per_hour: int = 10, client_factory: ClientFactory = _prefect_client,
                 clock: Callable[[], datetime] = _now, replica_id: str | None = None,
                 follow_events: bool = True, confirm_seconds: float | None = None,
                 settle_seconds: float | None = None) -> None:
        self.store = store
        self.poster = poster
        self.interval = interval
        self.wait_seconds = wait_seconds
        self.max_posts_per_hour = max_posts_per_hour
        self.client_factory = client_factory
        self.clock = clock
        self.replica_id = replica_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.follow_events = follow_events
        self.confirm = min(interval, CONFIRM_SECONDS) if confirm_seconds is None else confirm_seconds
        # hysteresis: an open incident must stay away this long before it is resolved; back sooner, it is
        # the same episode and the same message
        self.settle = max(3 * interval, 5.0) if settle_seconds is None else settle_seconds
        self.lease_seconds = 1.25 * interval
        self.leading = False
        self.wake = asyncio.Event()
        self.ticks = 0

    async def _db(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(func, *args, **kwargs)

    # --- the loop --------------------------------------------------------------------------------
    async def run(self) -> None:
        follower = EventFollower(self.wake.set) if self.follow_events else None
        follow_task = asyncio.ensure_future(follower.run()) if follower else None
        try:
            while True:
                next_in = await self.step()
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=next_in)
                    await asyncio.sleep(WAKE_DEBOUNCE)  # let a burst of events settle into one read
                except TimeoutError:
                    pass
                self.wake.clear()
        finally:
            if follow_task is not None:
                follow_task.cancel()
                await asyncio.gather(follow_task, return_exceptions=True)
            await self._db(db.release_lead, self.store.engine, LOCK, self.replica_id)

    async def step(self) -> float:
        """One turn: renew or take the lease; if leading, tick. Returns seconds until the next turn."""
        try:
            self.leading = await self._db(db.try_lead, self.store.engine, LOCK, self.replica_id,
                                          self.lease_seconds, self.clock())
        except Exception:
            log.exception("watcher could not reach the store")
            self.leading = False
            return self.interval / 2
        if not self.leading:
            return self.interval / 2  # standby: check the lease often enough to take over in time
        started = time.monotonic()
        try:
            pending = await self.tick()
        except Exception as exc:
            log.warning("watcher tick failed: %s: %s", type(exc).__name__, str(exc)[:300])
            return self.interval
        spent = time.monotonic() - started  # keep a steady cadence: reads start every `interval`
        return max(0.05, (min(self.interval, self.confirm) if pending else self.interval) - spent)

    # --- one read ----------------------------------------------------------------------------------
    async def tick(self) -> bool:
        """Read, detect, reconcile with the store; True when a condition waits for confirmation."""
        async with self.client_factory() as client:
            snap = await read_snapshot(client)
        now = self.clock()
        rows = {row.key: row for row in await self._db(db.incident_rows, self.store.sessions)}
        seen = {key: from_db_time(row.first_seen) for key, row in rows.items()}
        found = {incident.key: incident for incident in detect(snap, self.wait_seconds, seen)}
        silenced = await self._db(db.silenced_targets, self.store.sessions, now)
        pending = False
        self.ticks += 1
        applied = await self._applied_notes(rows)
        for key, incident in found.items():
            if key in applied:
                incident.applied = applied[key]
            row = rows.get(key) or await self._start(incident, now)
            if row is None:
                continue
            waited = sorted(set(json.loads(row.waited_json or "[]")) | {str(w.id) for w in incident.waiting_runs})
            first_seen = from_db_time(row.first_seen)
            if row.status == db.WATCHING:
                confirmed = (not incident.needs_confirmation
                             or first_seen <= now - timedelta(seconds=self.confirm))
                if incident.ripe(now) and confirmed:
                    await self._db(db.set_incident, self.store.sessions, key, (db.WATCHING,), status=db.OPEN,
                                   opened_at=now, last_seen=now, incident_json=incident.model_dump_json(),
                                   waited_json=json.dumps(waited), fingerprint=incident.fingerprint())
                else:
                    pending = True
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
        last_seen = from_db_time(row.last_seen) or now
        if now - last_seen < timedelta(seconds=self.settle):
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
