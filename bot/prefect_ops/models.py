"""Typed results of prefect_ops: tolerant snapshots of what the Prefect server showed us.

They are the shapes tools hand to the model and commands print, so they stay small: names,
numbers, holders and waiting runs, not whole Prefect objects.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from bot.prefect_ops.names import unsafe_name_reason

LimitKind = Literal["global", "tag", "deployment", "work_pool", "work_queue"]
LIMIT_KINDS: tuple[LimitKind, ...] = ("global", "tag", "deployment", "work_pool", "work_queue")
TERMINAL_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})


class Holder(BaseModel):
    """A run that occupies a slot (a flow run, or a task run for tag limits)."""

    run_type: Literal["flow_run", "task_run"]
    id: UUID
    name: str | None = None
    state: str | None = None  # state name, e.g. "Running", "AwaitingConcurrencySlot"
    state_type: str | None = None  # COMPLETED, RUNNING, ...
    seconds_in_state: float | None = None
    exists: bool = True
    # A task run's flow run state type ("MISSING" when gone): a Running task of a Crashed flow is dead.
    parent_state_type: str | None = None

    @property
    def terminal(self) -> bool:
        return self.state_type in TERMINAL_STATES

    @property
    def alive(self) -> bool:
        """The run exists, has not ended, and neither has the flow run it runs in."""
        return self.exists and not self.terminal and self.parent_state_type not in TERMINAL_STATES | {"MISSING"}


class WaitingRun(BaseModel):
    """A flow run that wants a slot: AwaitingConcurrencySlot, or Scheduled/Late and due."""

    id: UUID
    name: str
    state: str | None = None
    expected_start: datetime | None = None
    due_since: datetime | None = None  # when it first became due (its original expected start)


class LimitStatus(BaseModel):
    """One limit of any kind with its live occupancy."""

    kind: LimitKind
    name: str  # what people call it: GCL name, tag, "flow/deployment", pool, "pool/queue"
    id: UUID | None = None
    limit: int | None = None  # None: no limit set
    active_slots: int = 0
    enabled: bool = True  # GCL `active`; False means it limits nothing
    paused: bool = False  # pools and queues
    slot_decay_per_second: float = 0.0  # > 0: a rate limit
    collision_strategy: str | None = None  # deployments: ENQUEUE (default) or CANCEL_NEW
    grace_period_seconds: int | None = None
    gcl_name: str | None = None  # the GCL backing a tag or deployment limit
    holders: list[Holder] = Field(default_factory=list)
    holders_known: bool = True  # False when Prefect cannot name them (GCL without events)
    waiting: int = 0
    waiting_runs: list[WaitingRun] = Field(default_factory=list)
    # Set when part of this one object could not be read (e.g. Prefect cannot route its name): the
    # object is still listed, with what is known, and the rest of the map is unaffected.
    read_note: str | None = None

    @property
    def full(self) -> bool:
        return self.enabled and self.limit is not None and self.active_slots >= self.limit

    @property
    def is_rate_limit(self) -> bool:
        return self.slot_decay_per_second > 0

    def flags(self) -> list[str]:
        """What changes the meaning of the numbers: disabled, paused, a rate limit, the collision strategy."""
        flags = []
        if not self.enabled:
            flags.append("disabled")
        if self.paused:
            flags.append("paused")
        if self.is_rate_limit:
            flags.append(f"rate limit, decay {self.slot_decay_per_second:g}/s")
        if self.collision_strategy:
            flags.append(self.collision_strategy)
        if self.read_note:
            flags.append(self.read_note)
        reason = self.unchangeable_reason()
        if reason:
            flags.append(f"the bot cannot change this one: {reason}; change it by hand")
        return flags

    def unchangeable_reason(self) -> str | None:
        """Why the bot will not send this name to Prefect in a change (see names.unsafe_name_reason)."""
        if self.kind in ("work_queue", "deployment") and "/" in self.name:
            parts = self.name.split("/", 1)
        else:
            parts = [self.name.removesuffix(" (deployment deleted)")]
        for part in parts:
            reason = unsafe_name_reason(part)
            if reason:
                return reason.replace("the name ", "its name ", 1)
        return None


class ConcurrencyMap(BaseModel):
    """Every limit of every kind, read in one pass."""

    read_at: datetime
    api_url: str
    limits: list[LimitStatus] = Field(default_factory=list)

    def of_kind(self, kind: LimitKind) -> list[LimitStatus]:
        return [limit for limit in self.limits if limit.kind == kind]

    def counts(self) -> dict[str, int]:
        return {kind: len(self.of_kind(kind)) for kind in LIMIT_KINDS}


class ChangeCandidate(BaseModel):
    """A change that would unblock something. A suggestion only: nothing here applies it."""

    action: Literal["set_limit", "resume", "start_worker", "reset_slots", "cancel_run", "none"]
    target_kind: LimitKind | Literal["flow_run"]
    target_name: str
    current: str | None = None
    proposed: str | None = None
    reason: str
    # The exact `propose_change` arguments that make this fix a proposal (kind, action, name, limit).
    propose: dict[str, Any] | None = None


class Finding(BaseModel):
    """One check of a diagnosis, in the order they were made."""

    check: Literal["run_state", "deployment_limit", "work_queue", "work_pool", "tag_limit", "late_backlog"]
    blocking: bool
    object_kind: LimitKind | Literal["flow_run"] | None = None
    object_name: str | None = None
    summary: str
    evidence: list[str] = Field(default_factory=list)
    fix: ChangeCandidate | None = None


class Diagnosis(BaseModel):
    """Why a run is not running: the first blocking finding, its evidence and a fix candidate."""

    subject: str
    run_id: UUID | None = None
    run_name: str | None = None
    run_state: str | None = None
    findings: list[Finding] = Field(default_factory=list)

    @property
    def blocker(self) -> Finding | None:
        return next((f for f in self.findings if f.blocking), None)

    @property
    def summary(self) -> str:
        blocker = self.blocker
        if blocker is not None:
            return blocker.summary
        return self.findings[0].summary if self.findings else f"nothing found for {self.subject}"


class LeakCandidate(BaseModel):
    """A slot that looks held by nobody alive, or by a run stuck too long: a reset candidate."""

    kind: LimitKind
    limit_name: str
    reason: str
    holder: Holder | None = None
    reset: ChangeCandidate
