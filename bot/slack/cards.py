"""Block Kit for proposals: the approval card, its decided form, and the Edit / Reject modals.

Button values carry only the proposal id; everything else is looked up server-side on a click.
Text that came from the model or a person (the reason, a reject note) is escaped so it cannot
ping `@channel` or forge links.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    NumberInputElement,
    PlainTextInputElement,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.approvals.service import ProposalView

APPROVE = "proposal_approve"
EDIT = "proposal_edit"
REJECT = "proposal_reject"
REVERT = "proposal_revert"
EDIT_VIEW = "proposal_edit_submit"
REJECT_VIEW = "proposal_reject_submit"
VALUE_BLOCK, VALUE_ACTION = "proposal_value", "value"
REASON_BLOCK, REASON_ACTION = "reject_reason", "reason"

_OUTCOME = {
    "applied": ":white_check_mark: *Applied*",
    "failed": ":x: *Approved, but applying failed*",
    "stale": ":warning: *Not applied: stale*",
    "rejected": ":no_entry_sign: *Rejected*",
    "expired": ":hourglass: *Expired*",
    "approved": ":hourglass_flowing_sand: *Approved, applying…*",
}


def escape(text: str) -> str:
    """Slack's three control characters, so untrusted text renders as text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_time(moment: datetime) -> str:
    """A time each reader sees in their own time zone, with a UTC fallback."""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _summary(p: ProposalView) -> list[Block]:
    warn = "  :warning: _destructive_" if p.destructive else ""
    head = SectionBlock(text=MarkdownTextObject(text=f"*Proposed limit change*{warn}\n{p.diff}"))
    lines = ["Proposed by the on-call watcher" if p.requester == "watcher" else f"Asked by <@{p.requester}>"]
    if p.edited_by:
        lines.append(f"value edited by <@{p.edited_by}>")
    if p.status == "pending":
        lines.append(f"expires {slack_time(p.expires_at)}")
    context = [MarkdownTextObject(text=" · ".join(lines))]
    if p.reason:
        context.append(MarkdownTextObject(text=f"Reason: {escape(p.reason[:500])}"))
    return [head, ContextBlock(elements=context)]


def _buttons(p: ProposalView) -> ActionsBlock:
    approve = ButtonElement(
        text="Approve", action_id=APPROVE, value=p.id, style="primary",
        confirm=ConfirmObject(title="Apply this change?", text=f"{p.diff[:250]}\nThis changes Prefect now.",
                              confirm="Apply", deny="Cancel"),
    )
    elements = [approve]
    if p.change.editable:
        elements.append(ButtonElement(text="Edit value", action_id=EDIT, value=p.id))
    elements.append(ButtonElement(text="Reject", action_id=REJECT, value=p.id, style="danger"))
    return ActionsBlock(block_id=f"proposal:{p.id[:12]}", elements=elements)


def _outcome(p: ProposalView) -> Block:
    head = _OUTCOME.get(p.status, f"*{p.status}*")
    who = f" by <@{p.decided_by}>" if p.decided_by else ""
    when = f" at {slack_time(p.decided_at)}" if p.decided_at else ""
    text = f"{head}{who}{when}"
    if p.status == "applied":
        text += f". Was: {_before(p)}."
    elif p.status == "failed" and p.error:
        text += f"\n`{escape(p.error[:300])}`"
    elif p.status in ("stale", "rejected") and p.decision_note:
        text += f"\n{escape(p.decision_note[:500])}"
    if p.status == "stale" and p.superseded_by:
        text += "\nA fresh proposal with the current value is posted below."
    return SectionBlock(text=MarkdownTextObject(text=text))


def _before(p: ProposalView) -> str:
    shown = {k: v for k, v in p.before.items() if k != "exists"}
    if p.before.get("exists") is False:
        return "did not exist"
    return ", ".join(f"{k.replace('_', ' ')} {'none' if v is None else v}" for k, v in shown.items()) or "—"


def proposal_card_blocks(proposal: ProposalView, what_if: str | None = None) -> list[Block]:
    """The card for any status: buttons while pending; who, when and the result once decided.

    `what_if` is the live effect line (bot.prefect_ops.whatif), read when the card is built or approved."""
    blocks = _summary(proposal)
    if what_if:
        label = "What if" if proposal.status == "pending" else "When approved"
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"*{label}:* {what_if[:1500]}")]))
    blocks.append(_buttons(proposal) if proposal.status == "pending" else _outcome(proposal))
    if proposal.status == "applied" and _revertible(proposal):
        blocks.append(ActionsBlock(block_id=f"revert:{proposal.id[:12]}", elements=[ButtonElement(
            text="Revert", action_id=REVERT, value=proposal.id,
            confirm=ConfirmObject(title="Propose the revert?", text="This proposes the inverse change; it "
                                  "applies only when an approver approves it.", confirm="Propose", deny="Cancel"))]))
    return blocks


def _revertible(proposal: ProposalView) -> bool:
    from bot.approvals.revert import inverse_change

    return inverse_change(proposal.change, proposal.before) is not None


def proposal_card_text(proposal: ProposalView) -> str:
    """Notification fallback for the card."""
    return f"Proposed limit change ({proposal.status}): {proposal.diff}"


def edit_modal(proposal: ProposalView) -> View:
    """The Edit value modal, prefilled; `private_metadata` carries the id and the minimum."""
    limit = getattr(proposal.change, "limit", None)
    minimum = proposal.change.min_limit
    return View(
        type="modal", callback_id=EDIT_VIEW, title="Edit proposed limit", submit="Save", close="Cancel",
        private_metadata=json.dumps({"id": proposal.id, "min": minimum}),
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=proposal.diff)),
            InputBlock(block_id=VALUE_BLOCK, label="New limit",
                       hint="A whole number. The proposal stays pending until someone approves it.",
                       element=NumberInputElement(action_id=VALUE_ACTION, is_decimal_allowed=False,
                                                  initial_value=str(limit), min_value=str(minimum))),
        ],
    )


def reject_modal(proposal: ProposalView) -> View:
    return View(
        type="modal", callback_id=REJECT_VIEW, title="Reject proposal", submit="Reject", close="Cancel",
        private_metadata=json.dumps({"id": proposal.id}),
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=proposal.diff)),
            InputBlock(block_id=REASON_BLOCK, label="Reason (optional)", optional=True,
                       element=PlainTextInputElement(action_id=REASON_ACTION, multiline=True,
                                                     max_length=500)),
        ],
    )


def edit_value_error(metadata: dict[str, Any], raw: str | None) -> str | None:
    """Validate the typed value without touching the store (the modal must be acked in 3 s)."""
    text = (raw or "").strip()
    if not text.isdigit():
        return "Enter a whole number, like 3."
    minimum = int(metadata.get("min", 0))
    if int(text) < minimum:
        return f"The limit must be at least {minimum}."
    if int(text) > 1_000_000:
        return "That limit is unreasonably large."
    return None
