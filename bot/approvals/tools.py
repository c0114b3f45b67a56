"""The model's one write-shaped tool: `propose_change`. It only creates a pending proposal.

There is deliberately no tool that applies: a change reaches Prefect only when a person with the
right to approve clicks Approve on the card (see `ApprovalService.approve`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from bot.approvals.service import ApprovalService, ProposalRefused
from bot.prefect_ops.changes import ChangeError, ChangeTargetMissing, parse_change

Kind = Literal["work_pool_limit", "work_queue_limit", "deployment_limit", "global_limit", "tag_limit"]
Action = Literal["set", "clear", "create", "update", "enable", "disable", "delete", "reset"]
Strategy = Literal["ENQUEUE", "CANCEL_NEW"]

_NAME_FIELD = {"work_pool_limit": "pool", "work_queue_limit": "queue", "deployment_limit": "deployment",
               "global_limit": "name", "tag_limit": "tag"}


def build_change_data(kind: str, action: str, name: str, limit: int | None = None, pool: str | None = None,
                      collision_strategy: str | None = None, grace_period_seconds: int | None = None,
                      slot_decay_per_second: float | None = None) -> dict[str, Any]:
    """Map the tool's flat arguments onto the typed change's fields (validation happens there)."""
    data: dict[str, Any] = {"kind": kind, "action": action, _NAME_FIELD[kind]: name}
    optional = {"limit": limit, "collision_strategy": collision_strategy,
                "grace_period_seconds": grace_period_seconds, "slot_decay_per_second": slot_decay_per_second}
    if kind == "work_queue_limit":
        optional["pool"] = pool
    elif kind == "work_pool_limit" and pool and pool != name:
        raise ChangeError("for a work pool limit, pass the pool's name as `name`")
    data.update({k: v for k, v in optional.items() if v is not None})
    return data


def proposal_tools(service: ApprovalService, requester: str, channel: str | None,
                   thread_ts: str | None) -> list[Callable[..., Any]]:
    """Tools bound to one conversation turn: who asked, and where the card will be posted.

    One turn is one answer, so the count of proposals made here bounds what a single answer (or a
    prompt injection inside it) can put in front of approvers."""
    made: list[str] = []

    async def propose_change(
        kind: Kind,
        action: Action,
        name: str,
        reason: str,
        limit: int | None = None,
        pool: str | None = None,
        collision_strategy: Strategy | None = None,
        grace_period_seconds: int | None = None,
        slot_decay_per_second: float | None = None,
    ) -> dict[str, Any]:
        """Propose a concurrency limit change for a person to approve; this never changes Prefect itself.

        It reads the current value, stores a pending proposal and returns its id and a one-line diff;
        an approval card with Approve / Edit / Reject buttons is then posted in the thread. Tell the
        user the change waits for an approver. Kinds and actions:
        work_pool_limit (name = pool): set | clear. work_queue_limit (name = queue, pool required):
        set | clear. deployment_limit (name = 'flow-name/deployment-name'): set (limit >= 1, optional
        collision_strategy ENQUEUE|CANCEL_NEW, grace_period_seconds 60-86400) | clear.
        global_limit (name = the GCL's name): create (limit, optional slot_decay_per_second) | update
        (limit and/or slot_decay_per_second) | enable | disable | delete | reset (active slots to 0).
        tag_limit (name = the task tag): set (create or update, limit; holders keep their slots) | reset
        (active slots to 0 and leases revoked: frees leaked slots) | delete.
        `reason` is one sentence in the user's terms, shown on the card. At most a few proposals per
        answer (BOT_MAX_PROPOSALS_PER_ANSWER); names with '/', '?', '#', '%' or '..' are refused.
        """
        cap = service.max_proposals_per_answer
        if len(made) >= cap:  # tool calls of one round run concurrently: a slot is taken before awaiting
            return {"ok": False, "error": f"refused: at most {cap} proposals per answer "
                                          f"(BOT_MAX_PROPOSALS_PER_ANSWER), and this answer already made "
                                          f"{len(made)}. Tell the user which further changes you would "
                                          "propose and let them ask for them in a new message."}
        made.append("")
        try:
            change = parse_change(build_change_data(kind, action, name, limit, pool, collision_strategy,
                                                    grace_period_seconds, slot_decay_per_second))
            proposal = await service.create_proposal(change, requester, reason, channel, thread_ts,
                                                     origin="model")
        except (ChangeError, ChangeTargetMissing, ProposalRefused) as exc:
            made.remove("")
            return {"ok": False, "error": str(exc)}
        except BaseException:
            made.remove("")
            raise
        made[made.index("")] = proposal.id
        return {"ok": True, "proposal_id": proposal.id, "status": "pending approval", "diff": proposal.diff,
                "expires_at": proposal.expires_at.isoformat(timespec="minutes"),
                "note": "Nothing has changed yet; an approver must click Approve on the card."}

    return [propose_change]
