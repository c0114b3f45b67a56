"""Typed limit changes: each reads its own current value and applies itself through the Prefect client.

A change is data (a pydantic model, one per limit kind, discriminated by `kind`) so a proposal can
store it as JSON and rebuild it after a restart. Reading returns a small JSON-able snapshot of only
the fields the change touches; approvals compare that snapshot before applying (staleness).
Nothing here knows about Slack, the model or who is allowed to apply.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from prefect.client.schemas.actions import (
    DeploymentUpdate,
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
    WorkPoolUpdate,
)
from prefect.client.schemas.objects import ConcurrencyOptions
from prefect.exceptions import ObjectNotFound
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from bot.safe_text import tick

Snapshot = dict[str, Any]
Strategy = Literal["ENQUEUE", "CANCEL_NEW"]

__all__ = [
    "Change", "ChangeError", "ChangeTargetMissing", "DeploymentLimitChange", "GlobalLimitChange",
    "TagLimitChange", "WorkPoolLimitChange", "WorkQueueLimitChange", "change_from_json", "nothing_to_do",
    "change_to_json", "parse_change",
]


class ChangeError(ValueError):
    """A change that cannot be built or applied as asked (bad value, wrong action)."""


class ChangeTargetMissing(ChangeError):
    """The pool, queue, deployment or limit the change names does not exist."""


def _show(value: Any) -> str:
    return "none" if value is None else str(value)


class _BaseChange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def target(self) -> str:
        raise NotImplementedError

    @property
    def destructive(self) -> bool:
        """Delete, reset and clear lose state an operator may want back."""
        return getattr(self, "action", "") in ("clear", "delete", "reset")

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

    async def read(self, client: Any) -> Snapshot:
        raise NotImplementedError

    async def apply(self, client: Any) -> None:
        raise NotImplementedError


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

    @model_validator(mode="after")
    def _valid(self) -> WorkPoolLimitChange:
        _check_set_clear(self.action, self.limit)
        return self

    def target(self) -> str:
        return f"work pool {tick(self.pool)}"

    async def read(self, client: Any) -> Snapshot:
        try:
            pool = await client.read_work_pool(self.pool)
        except ObjectNotFound as exc:
            raise ChangeTargetMissing(f"no work pool named {self.pool!r}") from exc
        return {"limit": pool.concurrency_limit}

    async def apply(self, client: Any) -> None:
        await client.update_work_pool(self.pool, WorkPoolUpdate(concurrency_limit=self.limit))

    def diff(self, before: Snapshot) -> str:
        return f"{self.target()}: limit {_show(before.get('limit'))} → {_show(self.limit)}"


class WorkQueueLimitChange(_BaseChange):
    """Set or clear a work queue's concurrency limit; a queue is named together with its pool."""

    kind: Literal["work_queue_limit"] = "work_queue_limit"
    action: Literal["set", "clear"]
    pool: str = Field(min_length=1)
    queue: str = Field(min_length=1)
    limit: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _valid(self) -> WorkQueueLimitChange:
        _check_set_clear(self.action, self.limit)
        return self

    def target(self) -> str:
        return f"work queue {tick(self.queue)} in pool {tick(self.pool)}"

    async def _queue(self, client: Any) -> Any:
        try:
            return await client.read_work_queue_by_name(self.queue, work_pool_name=self.pool)
        except ObjectNotFound as exc:
            raise ChangeTargetMissing(f"no work queue {self.queue!r} in pool {self.pool!r}") from exc

    async def read(self, client: Any) -> Snapshot:
        return {"limit": (await self._queue(client)).concurrency_limit}

    async def apply(self, client: Any) -> None:
        queue = await self._queue(client)
        await client.update_work_queue(queue.id, concurrency_limit=self.limit)

    def diff(self, before: Snapshot) -> str:
        return f"{self.target()}: limit {_show(before.get('limit'))} → {_show(self.limit)}"


class DeploymentLimitChange(_BaseChange):
    """Set or clear a deployment's limit, optionally with collision strategy and grace period."""

    kind: Literal["deployment_limit"] = "deployment_limit"
    action: Literal["set", "clear"]
    deployment: str = Field(min_length=3, description="'flow-name/deployment-name'")
    limit: int | None = Field(default=None, ge=1)
    collision_strategy: Strategy | None = None
    grace_period_seconds: int | None = Field(default=None, ge=60, le=86400)

    @model_validator(mode="after")
    def _valid(self) -> DeploymentLimitChange:
        _check_set_clear(self.action, self.limit)
        if "/" not in self.deployment:
            raise ValueError("name the deployment as 'flow-name/deployment-name'")
        if self.action == "clear" and (self.collision_strategy or self.grace_period_seconds):
            raise ValueError("clearing a deployment limit takes no strategy or grace period")
        return self

    @property
    def min_limit(self) -> int:
        return 1  # a deployment limit of 0 makes every run's transition abort

    def target(self) -> str:
        return f"deployment {tick(self.deployment)}"

    async def _read(self, client: Any) -> Any:
        try:
            return await client.read_deployment_by_name(self.deployment)
        except ObjectNotFound as exc:
            raise ChangeTargetMissing(f"no deployment named {self.deployment!r}") from exc

    async def read(self, client: Any) -> Snapshot:
        dep = await self._read(client)
        gcl = dep.global_concurrency_limit
        options = dep.concurrency_options
        strategy = getattr(options, "collision_strategy", None)
        return {
            "limit": gcl.limit if gcl is not None else None,
            "collision_strategy": getattr(strategy, "value", strategy),
            "grace_period_seconds": getattr(options, "grace_period_seconds", None),
        }

    async def apply(self, client: Any) -> None:
        dep = await self._read(client)
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
        await client.update_deployment(dep.id, update)

    def diff(self, before: Snapshot) -> str:
        parts = [f"limit {_show(before.get('limit'))} → {_show(self.limit)}"]
        if self.collision_strategy:
            was = _show(before.get("collision_strategy"))
            parts.append(f"collision strategy {was} → {self.collision_strategy}")
        if self.grace_period_seconds:
            was = before.get("grace_period_seconds")
            parts.append(f"grace period {_show(was)}{'s' if was else ''} → {self.grace_period_seconds}s")
        return f"{self.target()}: " + ", ".join(parts)


class GlobalLimitChange(_BaseChange):
    """Create, update, enable, disable, delete or reset the active slots of a global limit."""

    kind: Literal["global_limit"] = "global_limit"
    action: Literal["create", "update", "enable", "disable", "delete", "reset"]
    name: str = Field(min_length=1)
    limit: int | None = Field(default=None, ge=0)
    slot_decay_per_second: float | None = Field(default=None, ge=0)

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

    async def read(self, client: Any) -> Snapshot:
        try:
            gcl = await client.read_global_concurrency_limit_by_name(self.name)
        except ObjectNotFound as exc:
            if self.action == "create":
                return {"exists": False}
            raise ChangeTargetMissing(f"no global concurrency limit named {self.name!r}") from exc
        return {"exists": True, "limit": gcl.limit, "active": gcl.active,
                "slot_decay_per_second": gcl.slot_decay_per_second}

    async def apply(self, client: Any) -> None:
        if self.action == "create":
            await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(
                name=self.name, limit=self.limit, slot_decay_per_second=self.slot_decay_per_second or 0.0))
        elif self.action == "delete":
            await client.delete_global_concurrency_limit_by_name(self.name)
        else:
            await client.update_global_concurrency_limit(self.name, self._update())

    def _update(self) -> GlobalConcurrencyLimitUpdate:
        if self.action == "enable":
            return GlobalConcurrencyLimitUpdate(active=True)
        if self.action == "disable":
            return GlobalConcurrencyLimitUpdate(active=False)
        if self.action == "reset":
            return GlobalConcurrencyLimitUpdate(active_slots=0)
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
            return f"{head}: reset active slots to 0 (limit {_show(before.get('limit'))})"
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
    """Create or update (`set`), reset the slots of, or delete a task tag limit."""

    kind: Literal["tag_limit"] = "tag_limit"
    action: Literal["set", "reset", "delete"]
    tag: str = Field(min_length=1)
    limit: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _valid(self) -> TagLimitChange:
        if self.action == "set" and self.limit is None:
            raise ValueError("action 'set' needs a limit")
        if self.action != "set" and self.limit is not None:
            raise ValueError(f"action {self.action!r} takes no limit")
        return self

    def target(self) -> str:
        return f"tag limit {tick(self.tag)}"

    async def read(self, client: Any) -> Snapshot:
        try:
            limit = await client.read_concurrency_limit_by_tag(self.tag)
        except ObjectNotFound as exc:
            if self.action == "set":
                return {"exists": False, "limit": None}
            raise ChangeTargetMissing(f"no tag concurrency limit for tag {self.tag!r}") from exc
        return {"exists": True, "limit": limit.concurrency_limit}

    async def apply(self, client: Any) -> None:
        if self.action == "set":
            await client.create_concurrency_limit(tag=self.tag, concurrency_limit=self.limit)
        elif self.action == "reset":
            await client.reset_concurrency_limit_by_tag(self.tag)
        else:
            await client.delete_concurrency_limit_by_tag(self.tag)

    def diff(self, before: Snapshot) -> str:
        if self.action == "reset":
            return f"{self.target()}: reset active slots (limit {_show(before.get('limit'))})"
        if self.action == "delete":
            return f"{self.target()}: delete (limit {_show(before.get('limit'))})"
        return f"{self.target()}: limit {_show(before.get('limit'))} → {self.limit}"


Change = Annotated[
    WorkPoolLimitChange | WorkQueueLimitChange | DeploymentLimitChange | GlobalLimitChange | TagLimitChange,
    Field(discriminator="kind"),
]
_ADAPTER: TypeAdapter[Change] = TypeAdapter(Change)


def parse_change(data: dict[str, Any]) -> Change:
    """Build a typed change from plain data; raises ChangeError with pydantic's reason."""
    from pydantic import ValidationError

    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or 'change'}: {e['msg']}"
                            for e in exc.errors())
        raise ChangeError(reasons) from exc


def change_to_json(change: Change) -> str:
    return change.model_dump_json(exclude_none=True)


def change_from_json(text: str) -> Change:
    return _ADAPTER.validate_json(text)


def nothing_to_do(change: Change, before: Snapshot) -> str | None:
    """Why applying `change` over `before` would change nothing (or cannot start), else None."""
    action = change.action
    if action == "create" and before.get("exists"):
        return f"{change.target()} already exists; propose an update instead"
    if action in ("enable", "disable") and bool(before.get("active")) == (action == "enable"):
        return f"{change.target()} is already {action}d"
    if action == "clear" and before.get("limit") is None:
        return f"{change.target()} has no limit to clear"
    if action in ("set", "update") and getattr(change, "limit", None) == before.get("limit"):
        extras = [getattr(change, f, None) for f in ("collision_strategy", "grace_period_seconds",
                                                      "slot_decay_per_second")]
        if all(x is None for x in extras):
            return f"{change.target()} already has limit {change.limit}"
    return None
