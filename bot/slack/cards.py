"""Block Kit for proposals: the approval card, its decided form, and the Edit / Reject modals.

Approve's value carries the proposal id and the version the card shows (`id:version`), so a click
on a card edited since is refused; everything else is looked up server-side on a click.
Every piece of text that came from Prefect, the model or a person (the diff with its names, the
reason, a reject note, an error) goes through `bot.safe_text` and `bot.redact`, so it cannot ping
`@channel`, forge a link or show a secret; only ids the bot read from Slack become mentions.
Everything is clipped to Slack's length limits (`bot.slack.limits`).
"""

from __future__ import annotations

import json
import re
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
from bot.redact import redact
from bot.safe_text import clean, code, mention
from bot.slack.limits import MESSAGE_TEXT, clip, fit_blocks, fit_view

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
    """Untrusted free text (a reason, a note) as Slack text: secrets redacted, control sequences escaped
    (bot.safe_text), and backticks swapped so it cannot open a code span that swallows the card's own text."""
    return clean(redact(text)).replace("`", "\u02cb")


def shown_diff(p: ProposalView, limit: int | None = None) -> str:
    """The proposal's diff (names already in safe code spans, made by `changes`), escaped and redacted."""
    shown = clean(redact(p.diff))
    if limit is None or len(shown) <= limit:
        return shown
    cut = re.sub(r"&[a-z]{0,3}$", "", shown[:limit - 2])  # never cut an entity in half
    return cut + ("…`" if cut.count("`") % 2 else "…")  # nor leave a code span open


def slack_time(moment: datetime) -> str:
    """A time each reader sees in their own time zone, with a UTC fallback."""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _summary(p: ProposalView) -> list[Block]:
    warn = "  :warning: _destructive_" if p.destructive else ""
    head = SectionBlock(text=MarkdownTextObject(text=f"*Proposed limit change*{warn}\n{shown_diff(p)}"))
    by_model = p.origin == "model"  # so nobody takes an injected proposal for the asker's own words
    if p.requester == "watcher":
        lines = ["Proposed by the on-call watcher"]
    else:
        lines = [f"Proposed by the bot for {mention(p.requester)}" if by_model else f"Asked by {mention(p.requester)}"]
    if p.edited_by:
        lines.append(f"value edited by {mention(p.edited_by)}")
    if p.status == "pending":
        lines.append(f"expires {slack_time(p.expires_at)}")
    context = [MarkdownTextObject(text=" · ".join(lines))]
    if p.reason:
        context.append(MarkdownTextObject(text=f"Reason: {escape(p.reason[:500])}"))
    if p.change.target_id:
        context.append(MarkdownTextObject(text=f"Prefect object id `{p.change.target_id}`"))
    blocks: list[Block] = [head, ContextBlock(elements=context)]
    notes = [n for n in (p.change.effect(), p.change.follow_up() if p.status == "pending" else None) if n]
    if notes:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(f":information_source: {clean(n)}"
                                                                          for n in notes))))
    return blocks


def approve_value(p: ProposalView) -> str:
    """The Approve button's value: the id and the version this card shows."""
    return f"{p.id}:{p.version}"


def parse_approve_value(value: str) -> tuple[str, int]:
    """(id, version) from a button value; a bare id is a card from before versions were shown (1)."""
    head, _, tail = value.rpartition(":")
    if head and tail.isdigit():
        return head, int(tail)
    return value, 1


def _buttons(p: ProposalView) -> ActionsBlock:
    approve = ButtonElement(
        text="Approve", action_id=APPROVE, value=approve_value(p), style="primary",
        confirm=ConfirmObject(title="Apply this change?", text=f"{shown_diff(p, 250)}\nThis changes Prefect now.",
                              confirm="Apply", deny="Cancel"),
    )
    elements = [approve]
    if p.change.editable:
        elements.append(ButtonElement(text="Edit value", action_id=EDIT, value=p.id))
    elements.append(ButtonElement(text="Reject", action_id=REJECT, value=p.id, style="danger"))
    return ActionsBlock(block_id=f"proposal:{p.id[:12]}", elements=elements)


def _outcome(p: ProposalView) -> Block:
    head = _OUTCOME.get(p.status, f"*{p.status}*")
    who = f" by {mention(p.decided_by)}" if p.decided_by else ""
    when = f" at {slack_time(p.decided_at)}" if p.decided_at else ""
    text = f"{head}{who}{when}"
    if p.status == "applied":
        text += f". Was: {escape(_before(p))}."
        follow_up = p.change.follow_up()
        if follow_up:
            text += f"\n:information_source: {clean(follow_up)}"
    elif p.status == "failed" and p.error:
        text += f"\n{code(redact(p.error), 300)}"
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
    return fit_blocks(blocks)


def _revertible(proposal: ProposalView) -> bool:
    from bot.approvals.revert import inverse_change

    return inverse_change(proposal.change, proposal.before) is not None


def proposal_card_text(proposal: ProposalView) -> str:
    """Notification fallback for the card."""
    return clip(f"Proposed limit change ({proposal.status}): {shown_diff(proposal)}", MESSAGE_TEXT)


def edit_modal(proposal: ProposalView) -> View:
    """The Edit value modal, prefilled; `private_metadata` carries the id and the minimum."""
    limit = getattr(proposal.change, "limit", None)
    minimum = proposal.change.min_limit
    return fit_view(View(
        type="modal", callback_id=EDIT_VIEW, title="Edit proposed limit", submit="Save", close="Cancel",
        private_metadata=json.dumps({"id": proposal.id, "min": minimum, "version": proposal.version}),
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=shown_diff(proposal))),
            InputBlock(block_id=VALUE_BLOCK, label="New limit",
                       hint="A whole number. The proposal stays pending until someone approves it.",
                       element=NumberInputElement(action_id=VALUE_ACTION, is_decimal_allowed=False,
                                                  initial_value=str(limit), min_value=str(minimum))),
        ],
    ))


def reject_modal(proposal: ProposalView) -> View:
    return fit_view(View(
        type="modal", callback_id=REJECT_VIEW, title="Reject proposal", submit="Reject", close="Cancel",
        private_metadata=json.dumps({"id": proposal.id}),
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=shown_diff(proposal))),
            InputBlock(block_id=REASON_BLOCK, label="Reason (optional)", optional=True,
                       element=PlainTextInputElement(action_id=REASON_ACTION, multiline=True,
                                                     max_length=500)),
        ],
    ))


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
