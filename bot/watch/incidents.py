"""What the watcher reports: one incident per (kind, object), with the evidence a reader needs.

An incident is data, so the store can keep it as JSON and a later poll can tell whether it is the
same trouble (same key) and whether it changed (different fingerprint).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from bot.prefect_ops.changes import Change
from bot.prefect_ops.models import Holder, LimitKind, WaitingRun

IncidentKind = Literal["waiting_on_limit", "leaked_slots", "no_worker", "paused_backlog", "gcl_full",
                       "zero_limit", "disabled_limit"]
INCIDENT_KINDS: tuple[IncidentKind, ...] = ("waiting_on_limit", "leaked_slots", "no_worker", "paused_backlog",
                                            "gcl_full", "zero_limit", "disabled_limit")
KIND_TITLES: dict[str, str] = {
    "waiting_on_limit": "Runs waiting on a full limit",
    "leaked_slots": "Leaked concurrency slots",
    "no_worker": "Late runs and no online worker",
    "paused_backlog": "Paused, with a backlog",
    "gcl_full": "Global concurrency limit at its limit",
    "zero_limit": "Limit of 0 with waiting runs",
    "disabled_limit": "Disabled deployment limit with waiting runs",
}


class Incident(BaseModel):
    """One kind of trouble on one object, as seen at `seen_at`."""

    kind: IncidentKind
    object_kind: LimitKind
    object_name: str
    summary: str  # one line: what is blocked and by what (names in code spans)
    since: datetime  # when the trouble started, as far as Prefect's data tells
    threshold_seconds: float = 0.0  # how long it must last before it is reported
    seen_at: datetime
    limit: int | None = None
    active_slots: int = 0
    holders: list[Holder] = Field(default_factory=list)
    waiting: int = 0
    waiting_runs: list[WaitingRun] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list)
    fix: Change | None = None  # a change that would clear it; proposed, never applied here
    hint: str | None = None  # what to do when no limit change fixes it (start a worker, resume)
    applied: str | None = None  # the approved fix, once applied ("limit raised to 2 by @x; …")
    absent_since: datetime | None = None  # first read that no longer saw it (the settling window runs from here)

    @property
    def key(self) -> str:
        return incident_key(self.kind, self.object_kind, self.object_name)

    @property
    def object_key(self) -> str:
        return f"{self.object_kind}:{self.object_name}"

    @property
    def needs_confirmation(self) -> bool:
        """Conditions read across several requests (slots vs runs) can be a moment's mismatch; the watcher
        sees them twice before posting. A pause, a limit of 0 or a Late run with no worker is a plain fact."""
        return self.kind in ("waiting_on_limit", "leaked_slots", "gcl_full")

    def ripe(self, now: datetime) -> bool:
        """Lasted at least its threshold: worth a post."""
        return self.since + timedelta(seconds=self.threshold_seconds) <= now

    def fingerprint(self) -> str:
        """Changes when what a reader sees changes (slots, holders, waiting runs), not with time."""
        parts = [self.key, str(self.limit), str(self.active_slots), str(self.waiting), self.applied or "",
                 ",".join(sorted(str(h.id) for h in self.holders)),
                 ",".join(sorted(str(w.id) for w in self.waiting_runs))]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def incident_key(kind: str, object_kind: str, object_name: str) -> str:
    """The identity of an incident: posted once per key, across polls, restarts and replicas."""
    return f"{kind}:{object_kind}:{object_name}"[:300]
