"""Find slots that nobody alive holds, and pool/queue holders stuck too long: reset candidates.

- Tag and GCL slots whose holder run ended (Completed, Failed, Crashed, Cancelled) or is gone.
- Deployment limits counting more slots than they have Pending/Running runs.
- Pool and queue holders sitting in Pending or Running longer than a threshold.
Nothing is reset here; each candidate says what a reset would be.
"""

from __future__ import annotations

from prefect.client.orchestration import PrefectClient

from bot.prefect_ops.concurrency_map import concurrency_map
from bot.prefect_ops.errors import at_boundary
from bot.prefect_ops.models import ChangeCandidate, Holder, LeakCandidate, LimitStatus

DEFAULT_STUCK_AFTER_SECONDS = 6 * 3600


def _reset(limit: LimitStatus, holder: Holder | None, why: str) -> ChangeCandidate:
    if limit.kind in ("tag", "global"):
        # Prefect's own tag reset revokes leases but leaves the count (3.9.1): the slots stay taken and
        # the repossessor can no longer free them. Zeroing the V2 limit's active slots is what frees them.
        kind = "tag_limit" if limit.kind == "tag" else "global_limit"
        return ChangeCandidate(
            action="reset_slots",
            target_kind=limit.kind,
            target_name=limit.name,
            current=str(limit.active_slots),
            proposed="0 (active slots set to 0" + (", leases revoked)" if limit.kind == "tag" else ")"),
            reason=why,
            propose={"kind": kind, "action": "reset", "name": limit.name},
        )
    if limit.kind == "deployment":
        proposed = str(max(0, limit.active_slots - 1))
        return ChangeCandidate(
            action="reset_slots",
            target_kind=limit.kind,
            target_name=limit.name,
            current=str(limit.active_slots),
            proposed=proposed,
            reason=why,
        )
    return ChangeCandidate(
        action="cancel_run",
        target_kind="flow_run",
        target_name=str(holder.name if holder else limit.name),
        current=holder.state if holder else None,
        proposed="Cancelled",
        reason=why,
    )


def ended_reason(holder: Holder) -> str | None:
    """Why this holder holds nothing alive, or None while it is alive."""
    if not holder.exists:
        return f"holder {holder.run_type.replace('_', ' ')} {holder.id} no longer exists"
    if holder.terminal:
        return f"holder `{holder.name}` is already {holder.state}"
    if not holder.alive:
        parent = "gone" if holder.parent_state_type == "MISSING" else (holder.parent_state_type or "").lower()
        return f"holder `{holder.name}` is {holder.state} but its flow run is {parent}"
    return None


def leaks_in(limits: list[LimitStatus], stuck_after_seconds: float) -> list[LeakCandidate]:
    """Pure: the leak candidates among already-read limits."""
    found: list[LeakCandidate] = []
    for limit in limits:
        if limit.kind in ("tag", "global"):
            for holder in limit.holders:
                why = ended_reason(holder)
                if why:
                    found.append(_holder_leak(limit, holder, why))
        if limit.kind == "deployment" and limit.active_slots > len(limit.holders):
            extra = limit.active_slots - len(limit.holders)
            why = f"{limit.active_slots} slots in use but only {len(limit.holders)} Pending/Running run(s)"
            found.append(
                LeakCandidate(
                    kind="deployment",
                    limit_name=limit.name,
                    reason=why,
                    reset=ChangeCandidate(
                        action="reset_slots",
                        target_kind="deployment",
                        target_name=limit.name,
                        current=str(limit.active_slots),
                        proposed=str(limit.active_slots - extra),
                        reason=why,
                    ),
                )
            )
        if limit.kind == "work_queue":  # every pool holder is also a queue holder: report once
            for holder in limit.holders:
                age = holder.seconds_in_state
                if age is not None and age > stuck_after_seconds:
                    why = (
                        f"`{holder.name}` has been {holder.state} for {age / 3600:.1f} h "
                        f"(threshold {stuck_after_seconds / 3600:.1f} h)"
                    )
                    found.append(_holder_leak(limit, holder, why))
    return found


def _holder_leak(limit: LimitStatus, holder: Holder, why: str) -> LeakCandidate:
    return LeakCandidate(kind=limit.kind, limit_name=limit.name, reason=why, holder=holder,
                         reset=_reset(limit, holder, why))


@at_boundary
async def find_leaked_slots(
    client: PrefectClient, stuck_after_seconds: float = DEFAULT_STUCK_AFTER_SECONDS
) -> list[LeakCandidate]:
    """Read the whole map once and return every slot that looks leaked, as reset candidates."""
    cmap = await concurrency_map(client)
    return leaks_in(cmap.limits, stuck_after_seconds)
