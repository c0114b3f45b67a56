"""Bolt listeners for the approval card: ack first, decide server-side, then update the card.

Who clicked is checked by `ApprovalService` on every click (Slack has no click authorisation);
a refused person gets an ephemeral message and the card stays as it was. The card is updated
with `chat.update` because `response_url` expires and a card may be clicked a day later.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.approvals.service import ApprovalService, Decision, ProposalView
from bot.redact import redact
from bot.safe_text import clean
from bot.settings import Settings
from bot.slack import cards
from bot.slack.gate import Gate
from bot.slack.limits import MESSAGE_TEXT, clip
from bot.slack.membership import Membership, payload_enterprise

log = logging.getLogger(__name__)

_EPHEMERAL_OUTCOMES = {"refused", "not_found", "invalid", "already_decided", "expired"}


async def post_proposal_cards(service: ApprovalService, client: AsyncWebClient, channel: str,
                              thread_ts: str, proposal_ids: list[str]) -> None:
    """Post one card per proposal in the thread and remember where, for later updates."""
    for proposal_id in proposal_ids:
        proposal = await service.get(proposal_id)
        if proposal is None or proposal.message_ts:
            continue
        await post_card(service, client, proposal, channel, thread_ts)


async def live_what_if(service: ApprovalService, proposal: ProposalView | None) -> str | None:
    """The card's what-if line from live Prefect data; None when Prefect cannot say in time."""
    if proposal is None:
        return None
    from bot.prefect_ops.whatif import what_if

    try:
        async with service.client_factory() as client:
            return await asyncio.wait_for(what_if(client, proposal.change), timeout=10)
    except Exception as exc:  # the card must go out even when Prefect is slow
        log.info("no what-if line for %s: %s", proposal.id, type(exc).__name__)
        return None


async def post_card(service: ApprovalService, client: AsyncWebClient, proposal: ProposalView,
                    channel: str, thread_ts: str | None) -> None:
    what_if = await live_what_if(service, proposal)
    response = await client.chat_postMessage(channel=channel, thread_ts=thread_ts,
                                             blocks=cards.proposal_card_blocks(proposal, what_if),
                                             text=cards.proposal_card_text(proposal))
    await service.attach_message(proposal.id, response["channel"], response["ts"])
    # Decided (or expired by the sweep) while the card was being built: the sweep found no message to
    # update then, so bring the card in line now instead of leaving live buttons on a dead proposal.
    current = await service.get(proposal.id)
    if current is not None and current.status != proposal.status:
        await update_card(client, current)


async def update_card(client: AsyncWebClient, proposal: ProposalView, what_if: str | None = None) -> None:
    if not proposal.message_ts or not proposal.message_channel:
        return
    try:
        await client.chat_update(channel=proposal.message_channel, ts=proposal.message_ts,
                                 blocks=cards.proposal_card_blocks(proposal, what_if),
                                 text=cards.proposal_card_text(proposal))
    except SlackApiError as exc:
        log.warning("could not update proposal card %s: %s", proposal.id, exc.response.get("error"))


async def tell(client: AsyncWebClient, channel: str | None, user: str, text: str,
               thread_ts: str | None = None) -> None:
    """A private note to the person who clicked; its text (decisions quote diffs and Prefect errors) is
    redacted and escaped (bot.safe_text); names in it already sit in safe code spans."""
    if not channel:
        return
    try:
        await client.chat_postEphemeral(channel=channel, user=user, text=clip(clean(redact(text)), MESSAGE_TEXT),
                                        thread_ts=thread_ts)
    except SlackApiError as exc:
        log.warning("could not post ephemeral message: %s", exc.response.get("error"))


def _where(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """Channel and thread of the clicked card, from the payload (used only for replies)."""
    channel = (body.get("channel") or {}).get("id")
    message = body.get("message") or {}
    return channel, message.get("thread_ts") or message.get("ts")


async def show_decision(service: ApprovalService, client: AsyncWebClient, decision: Decision, user: str,
                        channel: str | None, thread_ts: str | None, what_if: str | None = None) -> None:
    """Update the card for any decision that changed it; tell the clicker privately otherwise."""
    proposal = decision.proposal
    if proposal is not None:
        channel = proposal.message_channel or channel
        thread_ts = proposal.thread_ts or thread_ts
    if decision.outcome in _EPHEMERAL_OUTCOMES:
        await tell(client, channel, user, decision.message, thread_ts)
    if proposal is not None and decision.outcome not in ("refused", "not_found", "invalid", "revert_proposed"):
        if what_if is None and proposal.status == "pending":  # an edited value: what it would do now
            what_if = await live_what_if(service, proposal)
        await update_card(client, proposal, what_if)
    if decision.fresh is not None and channel:
        await post_card(service, client, decision.fresh, channel, decision.fresh.thread_ts or thread_ts)


def _metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _state_value(view: dict[str, Any], block: str, action: str) -> str | None:
    return (((view.get("state") or {}).get("values") or {}).get(block) or {}).get(action, {}).get("value")


async def is_guest(membership: Membership, client: AsyncWebClient, body: dict[str, Any], context: Any) -> bool:
    """Someone from another organisation (Slack Connect); a sister workspace of the same Grid org is not."""
    user = body.get("user") or {}
    return await membership.is_guest(client, user.get("id"), user.get("team_id"), context, payload_enterprise(body))


def register_approval_handlers(app: AsyncApp, service: ApprovalService, settings: Settings,
                               gate: Gate | None = None) -> None:
    """Wire the card's buttons and modals to the service. With a `gate`, refused clicks are rate-limited:
    past BOT_USER_RATE_LIMIT_PER_MINUTE refusals a minute, further clicks are dropped without a reply."""

    async def throttled(user: str, client: AsyncWebClient | None = None, channel: str | None = None,
                        thread_ts: str | None = None) -> bool:
        """True when the gate stops this click (allowed channels, the shared rate limit, refused-click
        throttle); the clicker is told why, unless their refusals are being dropped."""
        if gate is None:
            return False
        refusal = await gate.check_click(user, channel)
        if refusal is None:
            return False
        if refusal and client is not None:
            await tell(client, channel, user, refusal, thread_ts)
        return True

    async def card_channel(proposal_id: str) -> str | None:
        proposal = await service.get(proposal_id)
        return proposal.message_channel or proposal.channel if proposal is not None else None

    async def answer(client: AsyncWebClient, decision: Decision, user: str, channel: str | None,
                     thread_ts: str | None, what_if: str | None = None) -> None:
        if decision.outcome == "refused" and gate is not None and not await gate.count_refusal(user):
            return
        await show_decision(service, client, decision, user, channel, thread_ts, what_if)

    membership = Membership()

    async def guest(body: dict[str, Any], client: AsyncWebClient, context: Any) -> bool:
        return await is_guest(membership, client, body, context)

    @app.action(cards.APPROVE)
    async def on_approve(ack: Any, body: dict[str, Any], client: AsyncWebClient, context: Any) -> None:
        await ack()
        user = body["user"]["id"]
        channel, thread_ts = _where(body)
        if await throttled(user, client, channel, thread_ts):
            return
        proposal_id, version = cards.parse_approve_value(str(body["actions"][0].get("value") or ""))
        what_if = await live_what_if(service, await service.get(proposal_id))  # refreshed at the click
        decision = await service.approve(proposal_id, user, guest=await guest(body, client, context), version=version)
        await answer(client, decision, user, channel, thread_ts, what_if)

    @app.action(cards.REVERT)
    async def on_revert(ack: Any, body: dict[str, Any], client: AsyncWebClient, context: Any) -> None:
        await ack()
        user = body["user"]["id"]
        channel, thread_ts = _where(body)
        if await throttled(user, client, channel, thread_ts):
            return
        decision = await service.propose_revert(str(body["actions"][0].get("value") or ""), user,
                                                guest=await guest(body, client, context))
        await answer(client, decision, user, channel, thread_ts)

    async def _open_modal(body: dict[str, Any], client: AsyncWebClient, what: str, context: Any) -> None:
        user = body["user"]["id"]
        channel, thread_ts = _where(body)
        if await throttled(user, client, channel, thread_ts):
            return
        proposal, refused = await service.may_decide(str(body["actions"][0].get("value") or ""), user, what,
                                                     guest=await guest(body, client, context))
        if refused is not None:
            await answer(client, refused, user, channel, thread_ts)
            return
        assert proposal is not None
        if what == "edit" and not proposal.change.editable:
            await tell(client, channel, user, "This change has no value to edit.", thread_ts)
            return
        view = cards.edit_modal(proposal) if what == "edit" else cards.reject_modal(proposal)
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.action(cards.EDIT)
    async def on_edit(ack: Any, body: dict[str, Any], client: AsyncWebClient, context: Any) -> None:
        await ack()
        await _open_modal(body, client, "edit", context)

    @app.action(cards.REJECT)
    async def on_reject(ack: Any, body: dict[str, Any], client: AsyncWebClient, context: Any) -> None:
        await ack()
        await _open_modal(body, client, "reject", context)

    @app.view(cards.EDIT_VIEW)
    async def on_edit_submit(ack: Any, body: dict[str, Any], view: dict[str, Any],
                             client: AsyncWebClient, context: Any) -> None:
        metadata = _metadata(view)
        raw = _state_value(view, cards.VALUE_BLOCK, cards.VALUE_ACTION)
        problem = cards.edit_value_error(metadata, raw)
        if problem:
            await ack(response_action="errors", errors={cards.VALUE_BLOCK: problem})
            return
        await ack()
        user = body["user"]["id"]
        if await throttled(user, client, await card_channel(str(metadata.get("id") or ""))):
            return
        version = metadata.get("version")
        decision = await service.edit(str(metadata.get("id") or ""), user, raw or "",
                                      guest=await guest(body, client, context),
                                      version=version if isinstance(version, int) else None)
        await show_decision(service, client, decision, user, None, None)

    @app.view(cards.REJECT_VIEW)
    async def on_reject_submit(ack: Any, body: dict[str, Any], view: dict[str, Any],
                               client: AsyncWebClient, context: Any) -> None:
        await ack()
        user = body["user"]["id"]
        if await throttled(user, client, await card_channel(str(_metadata(view).get("id") or ""))):
            return
        note = _state_value(view, cards.REASON_BLOCK, cards.REASON_ACTION)
        decision = await service.reject(str(_metadata(view).get("id") or ""), user, note,
                                        guest=await guest(body, client, context))
        await show_decision(service, client, decision, user, None, None)
