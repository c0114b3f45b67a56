"""The `/concurrency` slash command: `list`, `inspect NAME`, `diagnose RUN`, `set …`, on the offline engine.

It needs no model, so it works when the model provider is down. The listener acks at once (Slack
wants an answer within 3 s) and answers through the command's `response_url`. A `set …` creates
a proposal through the approvals service and posts its card in the channel for an approver.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.slack.limits import TEXT_LIMIT, clip
from bot.slack.mrkdwn import to_mrkdwn
from bot.turns import Turn

log = logging.getLogger(__name__)

__all__ = ["register_slash_command", "COMMAND"]

COMMAND = "/concurrency"
FAILED = "Sorry, `/concurrency {text}` failed ({error}). Nothing was changed."


def register_slash_command(app: AsyncApp, engine: Any, command: str = COMMAND) -> None:
    """Register `command` on `app`; `engine` is an `OfflineEngine` (with approvals, for `set`)."""

    @app.command(command)
    async def on_command(ack: Any, body: dict[str, Any], respond: Any, client: Any) -> None:
        await ack()
        text = (body.get("text") or "").strip()
        turn = Turn(text=text, user_id=body.get("user_id", ""), channel=body.get("channel_id"), source="slash")
        try:
            reply = await engine.command(text, turn)
        except Exception as exc:
            log.exception("slash command failed")
            await respond(text=FAILED.format(text=text[:100], error=type(exc).__name__), response_type="ephemeral")
            return
        await respond(text=clip(to_mrkdwn(reply.text), TEXT_LIMIT), response_type="ephemeral")
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
