"""The `/concurrency` slash command: `list`, `inspect NAME`, `diagnose RUN`, `set …`, on the offline engine.

It needs no model, so it works when the model provider is down. The listener acks at once (Slack
wants an answer within 3 s) and answers through the command's `response_url`. A `set …` creates
a proposal through the approvals service and posts its card in the channel for an approver.
The same rules as a mention apply (bot.slack.gate): BOT_ALLOWED_CHANNELS, the per-user rate limit,
and Slack Connect guests are read-only. Untrusted text in the answer is escaped (bot.safe_text).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.safe_text import PREFECT_DOCS_HOSTS, code
from bot.slack.gate import NOT_HERE, RATE_LIMITED, Gate
from bot.slack.limits import TEXT_LIMIT, clip
from bot.slack.membership import Membership
from bot.slack.mrkdwn import to_mrkdwn
from bot.turns import Turn

log = logging.getLogger(__name__)

__all__ = ["register_slash_command", "COMMAND"]

COMMAND = "/concurrency"
FAILED = "Sorry, `/concurrency` {text} failed ({error}). Nothing was changed."


def register_slash_command(app: AsyncApp, engine: Any, command: str = COMMAND, gate: Gate | None = None,
                           link_hosts: Iterable[str] = PREFECT_DOCS_HOSTS) -> None:
    """Register `command` on `app`; `engine` is an `OfflineEngine` (with approvals, for `set`);
    `gate` applies the channel and rate rules (the composition root always passes one); guests are
    told apart the same way as for mentions and clicks (bot.slack.membership)."""
    membership = Membership()

    @app.command(command)
    async def on_command(ack: Any, body: dict[str, Any], respond: Any, client: Any, context: Any) -> None:
        await ack()
        text = (body.get("text") or "").strip()
        user, channel = body.get("user_id", ""), body.get("channel_id")
        if gate is not None and not gate.channel_allowed(channel):
            log.info("slash command in channel %s refused (not in BOT_ALLOWED_CHANNELS)", channel)
            await respond(text=NOT_HERE, response_type="ephemeral")
            return
        if gate is not None and not await gate.allow(user):
            await respond(text=RATE_LIMITED, response_type="ephemeral")
            return
        user_team = body.get("user_team_id") or body.get("team_id")
        stated_enterprise = body.get("enterprise_id") if user_team == body.get("team_id") else None
        guest = await membership.is_guest(client, user, user_team, context, stated_enterprise)
        turn = Turn(text=text, user_id=user, channel=channel, source="slash", may_propose=not guest)
        try:
            reply = await engine.command(text, turn)
        except Exception as exc:
            log.exception("slash command failed")
            await respond(text=FAILED.format(text=code(text, 100), error=type(exc).__name__),
                          response_type="ephemeral")
            return
        # to_mrkdwn escapes and redacts; clip keeps it within Slack's length limit
        await respond(text=clip(to_mrkdwn(reply.text, link_hosts), TEXT_LIMIT), response_type="ephemeral")
        if reply.proposals and turn.channel and getattr(engine, "approvals", None) is not None:
            await _post_cards(engine.approvals, client, turn.channel, reply.proposals, respond)


async def _post_cards(approvals: Any, client: Any, channel: str, proposal_ids: list[str], respond: Any) -> None:
    from bot.slack.approval_handlers import post_proposal_cards

    try:
        await post_proposal_cards(approvals, client, channel, None, proposal_ids)  # type: ignore[arg-type]
    except Exception as exc:  # e.g. the bot is not in this channel: say so instead of failing silently
        log.warning("could not post proposal card for a slash command: %s", exc)
        await respond(text="I could not post the approval card in this channel (invite me to it); the proposal "
                           "is stored and can be approved where its card is shown.", response_type="ephemeral")
