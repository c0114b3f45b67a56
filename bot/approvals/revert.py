"""The inverse of an applied change, built from the value the proposal saw before it applied.

A revert is an ordinary proposal: it goes through the same approval rules and staleness check, so
reverting a change someone already moved on from is refused as stale, never forced.
"""

from __future__ import annotations

from bot.prefect_ops.changes import (
    Change,
    DeploymentLimitChange,
    GlobalLimitChange,
    Snapshot,
    TagLimitChange,
    WorkPoolLimitChange,
    WorkQueueLimitChange,
)


def _set_or_clear(limit: object) -> dict[str, object]:
    return {"action": "clear"} if limit is None else {"action": "set", "limit": int(limit)}  # type: ignore[arg-type]


def inverse_change(change: Change, before: Snapshot) -> Change | None:
    """The change that puts back `before`; None when there is no inverse (slot resets, or a `before`
    that no change can express, such as a deployment limit of 0)."""
    try:
        return _inverse(change, before)
    except (KeyError, TypeError, ValueError):
        return None


def _inverse(change: Change, before: Snapshot) -> Change | None:
    if isinstance(change, WorkPoolLimitChange):
        return WorkPoolLimitChange(pool=change.pool, **_set_or_clear(before.get("limit")))  # type: ignore[arg-type]
    if isinstance(change, WorkQueueLimitChange):
        return WorkQueueLimitChange(pool=change.pool, queue=change.queue,
                                    **_set_or_clear(before.get("limit")))  # type: ignore[arg-type]
    if isinstance(change, DeploymentLimitChange):
        limit = before.get("limit")
        if limit is None:
            return DeploymentLimitChange(action="clear", deployment=change.deployment)
        return DeploymentLimitChange(action="set", deployment=change.deployment, limit=int(limit),
                                     collision_strategy=before.get("collision_strategy") if change.collision_strategy
                                     else None,
                                     grace_period_seconds=before.get("grace_period_seconds")
                                     if change.grace_period_seconds else None)
    if isinstance(change, GlobalLimitChange):
        return _inverse_global(change, before)
    if isinstance(change, TagLimitChange):
        if change.action == "reset":
            return None
        if before.get("exists") is False:
            return TagLimitChange(action="delete", tag=change.tag)
        return TagLimitChange(action="set", tag=change.tag, limit=int(before["limit"]))
    return None


def _inverse_global(change: GlobalLimitChange, before: Snapshot) -> GlobalLimitChange | None:
    if change.action == "reset":
        return None
    if change.action == "create":
        return GlobalLimitChange(action="delete", name=change.name)
    if change.action == "delete":
        return GlobalLimitChange(action="create", name=change.name, limit=int(before["limit"]),
                                 slot_decay_per_second=before.get("slot_decay_per_second") or None)
    if change.action in ("enable", "disable"):
        return GlobalLimitChange(action="enable" if before.get("active") else "disable", name=change.name)
    return GlobalLimitChange(
        action="update", name=change.name,
        limit=int(before["limit"]) if change.limit is not None else None,
        slot_decay_per_second=before.get("slot_decay_per_second") if change.slot_decay_per_second is not None
        else None)
