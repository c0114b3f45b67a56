"""Typed limit changes: each resolves its target, reads its own current value and applies itself.

A change is data (a pydantic model, one per limit kind, discriminated by `kind`) so a proposal can
store it as JSON and rebuild it after a restart. `resolve` pins the change to the live object (its
id and exact name) when it is proposed; `read` and `apply` then go to that id, never to a name
looked up again. Names are checked (`names.unsafe_name_reason`) before any request is built and
percent-encoded where a path needs them, because Prefect's client would format them in raw.
Reading returns a small JSON-able snapshot of only the fields the change touches; approvals
compare that snapshot before applying (staleness). Nothing here knows about Slack, the model or
who is allowed to apply.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from httpx import HTTPStatusError
from prefect.client.schemas.actions import (
    DeploymentUpdate,
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.client.schemas.objects import ConcurrencyOptions
from prefect.exceptions import ObjectNotFound
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from bot.prefect_ops.capabilities import capabilities
from bot.prefect_ops.errors import route_missing
from bot.prefect_ops.names import api_path, unsafe_name_reason
from bot.safe_text import tick

Snapshot = dict[str, Any]
Strategy = Literal["ENQUEUE", "CANCEL_NEW"]

__all__ = [
    "Change", "ChangeError", "ChangeTargetMissing", "DeploymentLimitChange", "GlobalLimitChange",
    "TagLimitChange", "WorkPoolLimitChange", "WorkQueueLimitChange", "WorkQueuePauseChange", "change_from_json",
    "change_to_json", "nothing_to_do", "parse_change",
]


class ChangeError(ValueError):
    """A change that cannot be built or applied as asked (bad value, wrong action)."""


class ChangeTargetMissing(ChangeError):
    """The pool, queue, deployment or limit the change names does not exist."""


def _show(value: Any) -> str:
    return "none" if value is None else str(value)


def _safe(name: str, what: str) -> str:
    """Pydantic validator body: refuse a name that could send a request to another object."""
    reason = unsafe_name_reason(name, what)
    if reason:
        raise ValueError(f"{reason}; refused before anything was sent to Prefect")
    return name


async def _call(client: Any, method: str, path: str, missing: str, **kwargs: Any) -> Any:
    """One request on an already-encoded path; a 404 becomes ChangeTargetMissing(`missing`).

    Unless the server has no such route at all (an older release): that is RouteMissing, never
    "the object does not exist".
    """
    try:
        response = await client.request(method, path, **kwargs)
    except (ObjectNotFound, HTTPStatusError) as exc:
        unknown_route = route_missing(exc)
        if unknown_route is not None:
            raise unknown_route from exc
        if isinstance(exc, ObjectNotFound):
            raise ChangeTargetMissing(missing) from exc
        if exc.response.status_code == 404:
            raise ChangeTargetMissing(missing) from exc
        raise
    return response.json() if response.content else None


def _gcl_path(ident: str) -> str:
    return api_path("v2", "concurrency_limits", ident)


class _BaseChange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The live object's id, pinned by `resolve` when the change is proposed. Set: every read and
    # write goes to this id, and a deleted-and-recreated object of the same name is "missing".
    target_id: str | None = None

    @field_validator("target_id")
    @classmethod
    def _uuid(cls, value: str | None) -> str | None:
        return None if value is None else str(UUID(value))

    def target(self) -> str:
        raise NotImplementedError

    @property
    def destructive(self) -> bool:
        """Delete, reset and clear lose state; a limit of 0 or a disabled GCL stops work outright."""
        action = getattr(self, "action", "")
        return action in ("clear", "delete", "reset", "disable", "pause") or getattr(self, "limit", None) == 0

    def effect(self) -> str | None:
        """One line on what the new value does for this kind, when it is not obvious (0, disable)."""
        if getattr(self, "limit", None) == 0:
            return "A limit of 0 means nothing under it starts until the limit is raised."
        return None

    def follow_up(self) -> str | None:
        """What an operator must do so the change is not undone later (deployment limits only)."""
        return None

    @property
    def editable(self) -> bool:
        """Whether the card offers "Edit value": only changes that carry a limit number."""
        action = getattr(self, "action", "")
        return action in ("set", "create", "update") and getattr(self, "limit", None) is not None

    @property
    def min_limit(self) -> int:
        return 0

    def with_limit(self, text: str) -> _BaseChange:
        """The same change with a new limit typed by a person; raises ChangeError when invalid."""
        if not self.editable:
            raise ChangeError("this change has no value to edit")
        try:
            value = int(str(text).strip())
        except ValueError as exc:
            raise ChangeError("enter a whole number") from exc
        if value < self.min_limit:
            raise ChangeError(f"the limit must be at least {self.min_limit}")
        if value > 1_000_000:
            raise ChangeError("the limit is unreasonably large")
        return self.model_copy(update={"limit": value})

    def diff(self, before: Snapshot) -> str:
        raise NotImplementedError

    async def resolve(self, client: Any) -> _BaseChange:
        """This change pinned to the live object's id and exact name (creates stay unpinned)."""
        found = await self._find(client)
        if found is None:
            return self
        return self.model_copy(update={"target_id": str(found["id"]), **self._exact_names(found)})

    async def _find(self, client: Any) -> dict[str, Any] | None:
        """The live object as JSON: by the pinned id if set, else by the (encoded) name."""
        raise NotImplementedError

    def _exact_names(self, found: dict[str, Any]) -> dict[str, Any]:
        return {}

    async def read(self, client: Any) -> Snapshot:
        raise NotImplementedError

    async def apply(self, client: Any) -> None:
        raise NotImplementedError

    async def unsupported_here(self, client: Any) -> str | None:
        """Why the connected server cannot make this change (an older release), else None.

        Asked before a proposal is stored, so nobody is asked to approve what would fail."""
        return None


def _check_set_clear(action: str, limit: int | None) -> None:
    if action == "set" and limit is None:
        raise ValueError("action 'set' needs a limit")
    if action == "clear" and limit is not None:
        raise ValueError("action 'clear' takes no limit")


class WorkPoolLimitChange(_BaseChange):
    """Set or clear a work pool's concurrency limit (counts its PENDING and RUNNING runs)."""

    kind: Literal["work_pool_limit"] = "work_pool_limit"
    action: Literal["set", "clear"]
    pool: str = Field(min_length=1)
    limit: int | None = Field(default=None, ge=0)

    _pool_name = field_validator("pool")(lambda value: _safe(value, "work pool name"))

    @model_validator(mode="after")
    def _valid(self) -> WorkPoolLimitChange:
        _check_set_clear(self.action, self.limit)
        return self

    def target(self) -> str:
        return f"work pool {tick(self.pool)}"

    def effect(self) -> str | None:
        if self.limit == 0:
            return "A work pool limit of 0 means no flow run in this pool starts (running ones go on)."
        return None

    async def _find(self, client: Any) -> dict[str, Any]:
        # Pools are addressed by name only; the id check below catches a re-created pool.
        pool = await _call(client, "GET", api_path("work_pools", self.pool),
                           f"no work pool named {self.pool!r}")
        if self.target_id is not None and str(pool["id"]) != self.target_id:
            raise ChangeTargetMissing(f"work pool {self.pool!r} was deleted and re-created since the proposal")
        return pool

    def _exact_names(self, found: dict[str, Any]) -> dict[str, Any]:
        return {"pool": found["name"]}

    async def read(self, client: Any) -> Snapshot:
        return {"limit": (await self._find(client))["concurrency_limit"]}

    async def apply(self, client: Any) -> None:
        await self._find(client)
        await _call(client, "PATCH", api_path("work_pools", self.pool),
                    f"no work pool named {self.pool!r}", json={"concurrency_limit": self.limit})

    def diff(self, before: Snapshot) -> str:
        return f"{self.target()}: limit {_show(before.get('limit'))} → {_show(self.limit)}"


class _QueueChange(_BaseChange):
    """A change to one work queue, named together with its pool and pinned to the queue's id."""

    pool: str = Field(min_length=1)
    queue: str = Field(min_length=1)

    _pool_name = field_validator("pool")(lambda value: _safe(value, "work pool name"))
    _queue_name = field_validator("queue")(lambda value: _safe(value, "work queue name"))

    def target(self) -> str:
        return f"work queue {tick(self.queue)} in pool {tick(self.pool)}"

    async def _find(self, client: Any) -> dict[str, Any]:
        missing = f"no work queue {self.queue!r} in pool {self.pool!r}"
        if self.target_id is not None:
            return await _call(client, "GET", api_path("work_queues", self.target_id), missing)
        return await _call(client, "GET",
                           api_path("work_pools", self.pool, "queues", self.queue), missing)

    def _exact_names(self, found: dict[str, Any]) -> dict[str, Any]:
        return {"queue": found["name"], "pool": found.get("work_pool_name") or self.pool}

    async def _patch(self, client: Any, fields: dict[str, Any]) -> None:
        queue = await self._find(client)
        await _call(client, "PATCH", api_path("work_queues", queue["id"]), f"work queue {self.queue!r} is gone",
                    json=fields)


class WorkQueueLimitChange(_QueueChange):
    """Set or clear a work queue's concurrency limit; a queue is named together with its pool."""

    kind: Literal["work_queue_limit"] = "work_queue_limit"
    action: Literal["set", "clear"]
    limit: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _valid(self) -> WorkQueueLimitChange:
        _check_set_clear(self.action, self.limit)
        return self

    def effect(self) -> str | None:
        if self.limit == 0:
            return "A work queue limit of 0 means no flow run from this queue starts (running ones go on)."
        return None

    async def read(self, client: Any) -> Snapshot:
        return {"limit": (await self._find(client))["concurrency_limit"]}

    async def apply(self, client: Any) -> None:
        await self._patch(client, {"concurrency_limit": self.limit})

    def diff(self, before: Snapshot) -> str:
        return f"{self.target()}: limit {_show(before.get('limit'))} → {_show(self.limit)}"


class WorkQueuePauseChange(_QueueChange):
    """Pause or resume a work queue: a paused queue hands no runs to workers (they turn Late)."""

    kind: Literal["work_queue_pause"] = "work_queue_pause"
    action: Literal["pause", "resume"]

    def effect(self) -> str | None:
        if self.action == "pause":
            return "A paused queue hands no runs to workers: its scheduled runs turn Late until it is resumed."
        return None

    async def read(self, client: Any) -> Snapshot:
        return {"paused": bool((await self._find(client)).get("is_paused"))}

    async def apply(self, client: Any) -> None:
        await self._patch(client, {"is_paused": self.action == "pause"})

    def diff(self, before: Snapshot) -> str:
        was = "paused" if before.get("paused") else "running"
        return f"{self.target()}: {was} → {'paused' if self.action == 'pause' else 'running'}"


class DeploymentLimitChange(_BaseChange):
    """Set or clear a deployment's limit, optionally with collision strategy and grace period."""

    kind: Literal["deployment_limit"] = "deployment_limit"
    action: Literal["set", "clear"]
    deployment: str = Field(min_length=3, description="'flow-name/deployment-name'")
    limit: int | None = Field(default=None, ge=1)
    collision_strategy: Strategy | None = None
    grace_period_seconds: int | None = Field(default=None, ge=60, le=86400)

    @field_validator("deployment")
    @classmethod
    def _names(cls, value: str) -> str:
        if "/" not in value:
            raise ValueError("name the deployment as 'flow-name/deployment-name'")
        flow, name = value.split("/", 1)
        _safe(flow, "flow name")
        _safe(name, "deployment name")
        return value

    @model_validator(mode="after")
    def _valid(self) -> DeploymentLimitChange:
        _check_set_clear(self.action, self.limit)
        if self.action == "clear" and (self.collision_strategy or self.grace_period_seconds):
            raise ValueError("clearing a deployment limit takes no strategy or grace period")
        return self

    @property
    def min_limit(self) -> int:
        return 1  # a deployment limit of 0 makes every run's transition abort

    def target(self) -> str:
        return f"deployment {tick(self.deployment)}"

    def follow_up(self) -> str | None:
        if self.action != "set":
            return None
        flow, name = self.deployment.split("/", 1)
        strategy = self.collision_strategy or "ENQUEUE"
        return ("The next `prefect deploy`, `flow.deploy()` or `serve()` of this deployment that leaves out "
                "`concurrency_limit` removes this limit (Prefect sends an explicit null). To keep it, put it "
                f"in prefect.yaml under the deployment `{name}` of flow `{flow}`:\n"
                f"```\nconcurrency_limit:\n  limit: {self.limit}\n  collision_strategy: {strategy}\n```")

    async def unsupported_here(self, client: Any) -> str | None:
        caps = await capabilities(client)
        if not caps.has("deployment_limits"):
            return caps.missing("deployment_limits")
        if self.grace_period_seconds is not None:
            return caps.missing("deployment_grace_period")
        return None

    async def _find(self, client: Any) -> dict[str, Any]:
        missing = f"no deployment named {self.deployment!r}"
        if self.target_id is not None:
            return await _call(client, "GET", api_path("deployments", self.target_id), missing)
        flow, name = self.deployment.split("/", 1)
        return await _call(client, "GET", api_path("deployments", "name", flow, name),
                           missing)

    def _exact_names(self, found: dict[str, Any]) -> dict[str, Any]:
        return {"deployment": f"{self.deployment.split('/', 1)[0]}/{found['name']}"}

    async def read(self, client: Any) -> Snapshot:
        dep = await client.read_deployment(UUID(str((await self._find(client))["id"])))
        gcl = dep.global_concurrency_limit
        options = dep.concurrency_options
        strategy = getattr(options, "collision_strategy", None)
        return {
            "limit": gcl.limit if gcl is not None else None,
            "collision_strategy": getattr(strategy, "value", strategy),
            "grace_period_seconds": getattr(options, "grace_period_seconds", None),
        }

    async def apply(self, client: Any) -> None:
        dep = await client.read_deployment(UUID(str((await self._find(client))["id"])))
        if self.action == "clear":
            update = DeploymentUpdate(concurrency_limit=None)
        elif self.collision_strategy or self.grace_period_seconds:
            current = dep.concurrency_options
            strategy = self.collision_strategy or getattr(current, "collision_strategy", None) or "ENQUEUE"
            grace = self.grace_period_seconds or getattr(current, "grace_period_seconds", None)
            options = ConcurrencyOptions(collision_strategy=strategy, grace_period_seconds=grace)
            update = DeploymentUpdate(concurrency_limit=self.limit, concurrency_options=options)
        else:
            update = DeploymentUpdate(concurrency_limit=self.limit)
        await client.update_deployment(dep.id, update)  # by id: nothing of the name reaches the path

    def diff(self, before: Snapshot) -> str:
        parts = [f"limit {_show(before.get('limit'))} → {_show(self.limit)}"]
        if self.collision_strategy:
            was = _show(before.get("collision_strategy"))
            parts.append(f"collision strategy {was} → {self.collision_strategy}")
        if self.grace_period_seconds:
            was = before.get("grace_period_seconds")
            parts.append(f"grace period {_show(was)}{'s' if was else ''} → {self.grace_period_seconds}s")
        return f"{self.target()}: " + ", ".join(parts)


async def _find_gcl(client: Any, change: _BaseChange, name: str, missing: str) -> dict[str, Any]:
    """A V2 limit by pinned id, else by encoded name; the name it answers to must be exactly `name`."""
    found = await _call(client, "GET", _gcl_path(change.target_id or name), missing)
    if found.get("name") != name:  # e.g. a name that is another limit's uuid
        raise ChangeTargetMissing(f"{missing} (the server answered with limit {found.get('name')!r})")
    return found


async def _release_snapshot(client: Any, gcl: dict[str, Any]) -> Snapshot:
    """What a reset would release, as compared again at Approve: the count and every holder with its state.
    A live holder here means the reset would orphan a running run (two runs under a limit of 1)."""
    from bot.prefect_ops.liveness import reset_holders

    holders = await reset_holders(client, gcl)
    active = gcl.get("active_slots", 0)
    return {"active_slots": len(active) if isinstance(active, list) else active,  # a v1 row lists its slots
            "release": sorted(({"id": str(h.id), "name": h.name or str(h.id), "state": h.state or "gone",
                                "alive": h.alive} for h in holders), key=lambda h: h["id"])}


def _releases(before: Snapshot) -> str:
    holders = before.get("release")
    if holders is None:
        return ""
    if not holders:
        return f"; releases {before.get('active_slots', 0)} slot(s) no run holds"
    shown = ", ".join(f"{tick(h['name'])} ({h['state']}{', alive' if h['alive'] else ''})" for h in holders[:5])
    more = f" and {len(holders) - 5} more" if len(holders) > 5 else ""
    return f"; releases {shown}{more}"


async def _zero_slots(client: Any, gcl: dict[str, Any], missing: str) -> None:
    await _call(client, "PATCH", _gcl_path(str(gcl["id"])), missing, json={"active_slots": 0})


class GlobalLimitChange(_BaseChange):
    """Create, update, enable, disable, delete or reset the active slots of a global limit."""

    kind: Literal["global_limit"] = "global_limit"
    action: Literal["create", "update", "enable", "disable", "delete", "reset"]
    name: str = Field(min_length=1)
    limit: int | None = Field(default=None, ge=0)
    slot_decay_per_second: float | None = Field(default=None, ge=0)

    @field_validator("name")
    @classmethod
    def _gcl_name(cls, value: str) -> str:
        # Deployment limits are named `deployment:<id>`: ':' is fine, the rest is checked.
        return _safe(value, "global limit name")

    @model_validator(mode="after")
    def _valid(self) -> GlobalLimitChange:
        if self.action == "create" and self.limit is None:
            raise ValueError("creating a global limit needs a limit")
        if self.action == "update" and self.limit is None and self.slot_decay_per_second is None:
            raise ValueError("an update needs a limit and/or slot_decay_per_second")
        if self.action in ("enable", "disable", "delete", "reset") and (
                self.limit is not None or self.slot_decay_per_second is not None):
            raise ValueError(f"action {self.action!r} takes no limit or decay")
        return self

    @property
    def editable(self) -> bool:
        return self.action in ("create", "update") and self.limit is not None

    def target(self) -> str:
        return f"global limit {tick(self.name)}"

    def effect(self) -> str | None:
        if self.action == "disable" and self.name.startswith("deployment:"):
            return ("This is a deployment's own limit: disabling it blocks every run of that deployment "
                    "(it does not lift the limit).")
        if self.action == "disable":
            return "Disabling stops this limit from being enforced; a deployment's own limit would block instead."
        if self.limit == 0:
            return "A global limit of 0 means every acquire of it waits: nothing under it runs."
        if self.action == "reset":
            return "Reset sets active slots to 0, so holders that are still running no longer count."
        return None

    def _missing(self) -> str:
        return f"no global concurrency limit named {self.name!r}"

    async def _find(self, client: Any) -> dict[str, Any] | None:
        if self.action == "create" and self.target_id is None:
            try:
                await _find_gcl(client, self, self.name, self._missing())
            except ChangeTargetMissing:
                return None
            return None  # exists: `read` reports it and the proposal is refused
        return await _find_gcl(client, self, self.name, self._missing())

    async def read(self, client: Any) -> Snapshot:
        try:
            gcl = await _find_gcl(client, self, self.name, self._missing())
        except ChangeTargetMissing:
            if self.action == "create":
                return {"exists": False}
            raise
        snapshot = {"exists": True, "limit": gcl["limit"], "active": gcl["active"],
                    "slot_decay_per_second": gcl["slot_decay_per_second"]}
        if self.action == "reset":
            snapshot.update(await _release_snapshot(client, gcl))
        return snapshot

    async def apply(self, client: Any) -> None:
        if self.action == "create":
            await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(
                name=self.name, limit=self.limit, slot_decay_per_second=self.slot_decay_per_second or 0.0))
            return
        gcl = await _find_gcl(client, self, self.name, self._missing())
        path = _gcl_path(str(gcl["id"]))
        if self.action == "delete":
            await _call(client, "DELETE", path, self._missing())
        elif self.action == "reset":
            # No API revokes a plain GCL's leases in 3.9.1; zeroing the count is what frees the slots.
            await _zero_slots(client, gcl, self._missing())
        else:
            await _call(client, "PATCH", path, self._missing(),
                        json=self._update().model_dump(mode="json", exclude_unset=True))

    def _update(self) -> GlobalConcurrencyLimitUpdate:
        if self.action == "enable":
            return GlobalConcurrencyLimitUpdate(active=True)
        if self.action == "disable":
            return GlobalConcurrencyLimitUpdate(active=False)
        fields: dict[str, Any] = {}
        if self.limit is not None:
            fields["limit"] = self.limit
        if self.slot_decay_per_second is not None:
            fields["slot_decay_per_second"] = self.slot_decay_per_second
        return GlobalConcurrencyLimitUpdate(**fields)

    def diff(self, before: Snapshot) -> str:
        head = self.target()
        if self.action == "create":
            decay = f", slot decay {self.slot_decay_per_second}/s" if self.slot_decay_per_second else ""
            return f"{head}: create with limit {self.limit}{decay}"
        if self.action == "delete":
            return f"{head}: delete (limit {_show(before.get('limit'))})"
        if self.action == "reset":
            return f"{head}: reset active slots to 0 (limit {_show(before.get('limit'))}){_releases(before)}"
        if self.action in ("enable", "disable"):
            was = "enabled" if before.get("active") else "disabled"
            return f"{head}: {was} → {self.action}d"
        parts = []
        if self.limit is not None:
            parts.append(f"limit {_show(before.get('limit'))} → {self.limit}")
        if self.slot_decay_per_second is not None:
            parts.append(f"slot decay {_show(before.get('slot_decay_per_second'))}/s → "
                         f"{self.slot_decay_per_second}/s")
        return f"{head}: " + ", ".join(parts)


class TagLimitChange(_BaseChange):
    """Create or update (`set`), reset the slots of, or delete a task tag limit (the V2 `tag:TAG` limit)."""

    kind: Literal["tag_limit"] = "tag_limit"
    action: Literal["set", "reset", "delete"]
    tag: str = Field(min_length=1)
    limit: int | None = Field(default=None, ge=0)

    _tag_name = field_validator("tag")(lambda value: _safe(value, "tag"))

    @model_validator(mode="after")
    def _valid(self) -> TagLimitChange:
        if self.action == "set" and self.limit is None:
            raise ValueError("action 'set' needs a limit")
        if self.action != "set" and self.limit is not None:
            raise ValueError(f"action {self.action!r} takes no limit")
        return self

    def target(self) -> str:
        return f"tag limit {tick(self.tag)}"

    def effect(self) -> str | None:
        if self.limit == 0:
            return "A tag limit of 0 means every task with this tag fails at once (it is aborted, not queued)."
        if self.action == "reset":
            return ("Reset revokes the slots' leases and sets active slots to 0, so new tasks with this tag "
                    "can start at once.")
        return None

    def _missing(self) -> str:
        return f"no tag concurrency limit for tag {self.tag!r}"

    async def _v1_only(self, client: Any) -> bool:
        """Before Prefect 3.4.19 a tag limit is only a v1 concurrency limit (no `tag:` global limit)."""
        return not (await capabilities(client)).has("tag_limits_as_global")

    async def _find_v1(self, client: Any) -> dict[str, Any]:
        if self.target_id is not None:
            found = await _call(client, "GET", api_path("concurrency_limits", self.target_id), self._missing())
        else:
            found = await _call(client, "GET", api_path("concurrency_limits", "tag", self.tag), self._missing())
        if found.get("tag") != self.tag:
            raise ChangeTargetMissing(f"{self._missing()} (the server answered with tag {found.get('tag')!r})")
        return found

    async def _find_any(self, client: Any) -> dict[str, Any]:
        if await self._v1_only(client):
            return await self._find_v1(client)
        return await _find_gcl(client, self, f"tag:{self.tag}", self._missing())

    async def _find(self, client: Any) -> dict[str, Any] | None:
        if self.action == "set" and self.target_id is None:
            try:
                return await self._find_any(client)
            except ChangeTargetMissing:
                return None  # a new tag limit: nothing to pin yet
        return await self._find_any(client)

    async def read(self, client: Any) -> Snapshot:
        try:
            found = await self._find_any(client)
        except ChangeTargetMissing:
            if self.action == "set" and self.target_id is None:
                return {"exists": False, "limit": None}
            raise
        snapshot = {"exists": True, "limit": found["limit"] if "limit" in found else found["concurrency_limit"]}
        if self.action == "reset":
            snapshot.update(await _release_snapshot(client, found))
        return snapshot

    async def apply(self, client: Any) -> None:
        if self.action == "set" and self.target_id is None:
            existing = await self._find(client)
            if existing is None:  # the tag travels in the body, never in the path
                await client.create_concurrency_limit(tag=self.tag, concurrency_limit=self.limit)
                return
        if await self._v1_only(client):
            await self._apply_v1(client)
            return
        gcl = await _find_gcl(client, self, f"tag:{self.tag}", self._missing())
        if self.action == "set":  # only the limit: holders keep their slots
            await _call(client, "PATCH", _gcl_path(str(gcl["id"])), self._missing(), json={"limit": self.limit})
        elif self.action == "reset":
            # Prefect's tag reset revokes the leases but leaves the count; zeroing it frees the slots.
            await _call(client, "POST", api_path("concurrency_limits", "tag", self.tag, "reset"),
                        self._missing(), json={})
            await _zero_slots(client, gcl, self._missing())
        else:  # the v1 delete by id also revokes the limit's leases
            await _call(client, "DELETE", api_path("concurrency_limits", gcl["id"]), self._missing())

    async def _apply_v1(self, client: Any) -> None:
        """The same change on a server that keeps tag limits only as v1 concurrency limits."""
        found = await self._find_v1(client)
        if self.action == "set":  # the v1 create is an upsert: it keeps the slot list
            await client.create_concurrency_limit(tag=found["tag"], concurrency_limit=self.limit)
        elif self.action == "reset":  # there the reset empties the slot list itself
            await _call(client, "POST", api_path("concurrency_limits", "tag", self.tag, "reset"),
                        self._missing(), json={})
        else:
            await _call(client, "DELETE", api_path("concurrency_limits", found["id"]), self._missing())

    def diff(self, before: Snapshot) -> str:
        if self.action == "reset":
            return f"{self.target()}: reset active slots to 0 and revoke their leases " \
                   f"(limit {_show(before.get('limit'))}){_releases(before)}"
        if self.action == "delete":
            return f"{self.target()}: delete (limit {_show(before.get('limit'))})"
        return f"{self.target()}: limit {_show(before.get('limit'))} → {self.limit}"


Change = Annotated[
    WorkPoolLimitChange | WorkQueueLimitChange | DeploymentLimitChange | GlobalLimitChange | TagLimitChange
    | WorkQueuePauseChange,
    Field(discriminator="kind"),
]
_ADAPTER: TypeAdapter[Change] = TypeAdapter(Change)


def parse_change(data: dict[str, Any]) -> Change:
    """Build a typed change from plain data; raises ChangeError with pydantic's reason."""
    from pydantic import ValidationError

    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or 'change'}: {e['msg'].removeprefix('Value error, ')}"
                            for e in exc.errors())
        raise ChangeError(reasons) from exc


def change_to_json(change: Change) -> str:
    return change.model_dump_json(exclude_none=True)


def change_from_json(text: str) -> Change:
    return _ADAPTER.validate_json(text)


def nothing_to_do(change: Change, before: Snapshot) -> str | None:
    """Why applying `change` over `before` would change nothing (or cannot start), else None."""
    action = change.action
    live = [h for h in before.get("release") or [] if h.get("alive")]
    if action == "reset" and live:
        names = ", ".join(tick(h["name"]) for h in live[:5])
        return (f"a reset of {change.target()} now would release {len(live)} live holder(s) ({names}), so they "
                "would run on uncounted; wait until they finish")
    if action == "create" and before.get("exists"):
        return f"{change.target()} already exists; propose an update instead"
    if action in ("pause", "resume") and bool(before.get("paused")) == (action == "pause"):
        return f"{change.target()} is already {'paused' if action == 'pause' else 'running'}"
    if action in ("enable", "disable") and bool(before.get("active")) == (action == "enable"):
        return f"{change.target()} is already {action}d"
    if action == "clear" and before.get("limit") is None:
        return f"{change.target()} has no limit to clear"
    if action in ("set", "update") and getattr(change, "limit", None) == before.get("limit"):
        extras = [(f, getattr(change, f, None)) for f in ("collision_strategy", "grace_period_seconds",
                                                           "slot_decay_per_second")]
        if all(value is None or value == before.get(f) for f, value in extras):
            return f"{change.target()} already has limit {change.limit}"
    return None
