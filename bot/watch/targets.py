"""What an event names, so the watcher re-reads only those objects (and ignores chatter).

Flow-run events name their pool, queue and deployment; task-run events their tags; limit events the
limit; pool, queue, worker and deployment events themselves. Heartbeats and a worker's
submitted/executed notices repeat what flow-run state events already say: they wake nothing.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

IGNORED = frozenset({"prefect.flow-run.heartbeat", "prefect.task-run.heartbeat", "prefect.worker.submitted-flow-run",
                     "prefect.worker.executed-flow-run"})
MAX_NAMED = 500  # objects remembered between reads; beyond it, the next read is a full one


class Targets(BaseModel):
    """Objects to re-read before the next full read. `full`: something we cannot target; read everything."""

    full: bool = False
    pools: bool = False  # pools and queues are read together: a few paged calls for all of them
    deployments: set[UUID] = Field(default_factory=set)
    tags: set[str] = Field(default_factory=set)
    limits: set[UUID] = Field(default_factory=set)  # plain global limits by id
    urgent: bool = False  # a change of configuration (pause, limit, worker), not run churn: read at once
    urgent_at: float | None = None  # monotonic time the first urgent change was noted (the read's trace)

    def __bool__(self) -> bool:
        return self.full or self.pools or bool(self.deployments or self.tags or self.limits)

    def add(self, other: Targets) -> None:
        self.full |= other.full
        self.urgent |= other.urgent
        if other.urgent_at is not None:
            self.urgent_at = other.urgent_at if self.urgent_at is None else min(self.urgent_at, other.urgent_at)
        self.pools |= other.pools
        self.deployments |= other.deployments
        self.tags |= other.tags
        self.limits |= other.limits
        if len(self.deployments) + len(self.tags) + len(self.limits) > MAX_NAMED:
            self.full = True
            self.deployments.clear(), self.tags.clear(), self.limits.clear()

    def clear(self) -> None:
        self.full = self.pools = self.urgent = False
        self.urgent_at = None
        self.deployments.clear(), self.tags.clear(), self.limits.clear()


def _resources(event: Any) -> list[dict[str, str]]:
    related = [dict(r) for r in (getattr(event, "related", None) or [])]
    return [dict(event.resource), *related]


def _tail_uuid(resource_id: str) -> UUID | None:
    try:
        return UUID(resource_id.rsplit(".", 1)[-1])
    except ValueError:
        return None


def targets_of(event: Any) -> Targets | None:
    """The objects `event` names, or None when it names nothing the watcher looks at."""
    name = str(getattr(event, "event", ""))
    if name in IGNORED:
        return None
    found = Targets()
    for res in _resources(event):
        rid = res.get("prefect.resource.id", "")
        if rid.startswith(("prefect.work-pool.", "prefect.work-queue.", "prefect.worker.")):
            found.pools = True
        elif rid.startswith("prefect.deployment.") and (dep := _tail_uuid(rid)):
            found.deployments.add(dep)
        elif rid.startswith("prefect.tag.") and name.startswith("prefect.task-run."):
            found.tags.add(rid.removeprefix("prefect.tag."))
        elif rid.startswith("prefect.concurrency-limit."):
            limit_name = res.get("prefect.resource.name", "")
            if limit_name.startswith("tag:"):
                found.tags.add(limit_name.removeprefix("tag:"))
            elif limit_name.startswith("deployment:") and (dep := _tail_uuid(limit_name.replace(":", "."))):
                found.deployments.add(dep)
            elif (limit_id := _tail_uuid(rid)) and not rid.startswith("prefect.concurrency-limit.v1."):
                found.limits.add(limit_id)
            else:
                found.full = True
    found.urgent = not name.startswith(("prefect.flow-run.", "prefect.task-run."))
    if name.startswith("prefect.flow-run.") and not found.pools and not found.deployments:
        return None  # a run outside pools and deployments (a served or nested flow) touches no limit here
    if name.startswith("prefect.task-run.") and not found.tags:
        return None  # an untagged task counts against no limit
    return found if found else None


def targets_for(incident: Any, snapshot: Any) -> Targets:
    """The objects to re-read to see whether `incident` (a detector's output) still holds."""
    found = Targets()
    kind, name = incident.object_kind, incident.object_name
    if kind in ("work_pool", "work_queue"):
        found.pools = True
    elif kind == "tag":
        found.tags.add(name)
    else:
        ids = [lim.id for lim in snapshot.limits if lim.kind == kind and lim.name == name and lim.id is not None]
        if kind == "deployment":
            found.deployments.update(ids)
        else:
            found.limits.update(ids)
        if not ids:
            found.full = True
    return found
