"""The Bolt app: listeners ack at once and hand the work to the Responder (a background task)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings
from bot.slack.delivery import FEEDBACK_ACTION
from bot.slack.filters import is_direct_message, is_human_message, mentions
from bot.slack.responder import Responder

log = logging.getLogger(__name__)


class SettingsError(RuntimeError):
    """A setting the chosen mode needs is missing; the message names it."""


# A 5xx may come after Slack already posted: retrying these would post the same message twice.
NOT_IDEMPOTENT = {"chat.postMessage", "chat.postEphemeral", "chat.startStream", "chat.appendStream",
                  "chat.stopStream", "chat.scheduleMessage"}


class IdempotentServerErrorRetryHandler(AsyncServerErrorRetryHandler):
    """Retries 500/503 only for calls that are safe to repeat; posts are checked by the caller instead."""

    async def _can_retry_async(self, *, state: Any, request: Any, response: Any = None,
                               error: Exception | None = None) -> bool:
        if request.url.rstrip("/").rsplit("/", 1)[-1] in NOT_IDEMPOTENT:
            return False
        return await super()._can_retry_async(state=state, request=request, response=response, error=error)


def web_client(settings: Settings) -> AsyncWebClient:
    """The Slack Web API client: SLACK_API_URL as base, retrying 429s (Retry-After), resets, and 5xx
    for calls that are safe to repeat."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    base_url = settings.slack_api_url.rstrip("/") + "/"
    return AsyncWebClient(token=token, base_url=base_url, retry_handlers=[
        AsyncConnectionErrorRetryHandler(max_retry_count=1),
        AsyncRateLimitErrorRetryHandler(max_retry_count=3),
        IdempotentServerErrorRetryHandler(max_retry_count=2),
    ])


def build_app(settings: Settings, responder: Responder, socket_mode: bool = False,
              client: AsyncWebClient | None = None) -> AsyncApp:
    if settings.slack_bot_token is None:
        raise SettingsError("SLACK_BOT_TOKEN is not set: the bot needs its xoxb- token to talk to Slack.")
    if not socket_mode and settings.slack_signing_secret is None:
        raise SettingsError("SLACK_SIGNING_SECRET is not set: HTTP mode needs it to verify requests "
                            "(or set SLACK_APP_TOKEN to use Socket Mode).")
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    app = AsyncApp(
        client=client or web_client(settings),
        signing_secret=secret,
        request_verification_enabled=not socket_mode,
        process_before_response=False,
    )
    register_message_listeners(app, responder)
    return app


def register_message_listeners(app: AsyncApp, responder: Responder) -> None:
    async def human(event: dict[str, Any], context: dict[str, Any]) -> bool:
        return is_human_message(event, context.get("bot_user_id"))

    @app.event("app_mention", matchers=[human])
    async def on_mention(event: dict[str, Any], context: Any, client: AsyncWebClient) -> None:
        responder.spawn(responder.handle(client, event, dict(context)))

    async def worth_answering(event: dict[str, Any], context: dict[str, Any]) -> bool:
        """DMs (mentions too: Slack sends no app_mention in a DM), and follow-ups in a thread the bot
        answered (a channel mention also comes as app_mention; one key per message answers it once)."""
        bot_user_id = context.get("bot_user_id")
        if not is_human_message(event, bot_user_id):
            return False
        if mentions(event, bot_user_id) and not is_direct_message(event):
            return False
        return is_direct_message(event) or bool(event.get("thread_ts"))

    @app.event("message", matchers=[worth_answering])
    async def on_message(event: dict[str, Any], context: Any, client: AsyncWebClient) -> None:
        responder.spawn(_maybe_follow_up(responder, client, event, dict(context)))

    @app.event("message")
    async def ignore_other_messages() -> None:
        """Acknowledge edits, deletions, joins and other bots' posts without answering."""

    @app.action(FEEDBACK_ACTION)
    async def on_feedback(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        vote = body["actions"][0].get("value", "")
        channel = body.get("channel", {}).get("id", "")
        ts = body.get("message", {}).get("ts", "")
        user = body.get("user", {}).get("id", "")
        try:
            await asyncio.to_thread(responder.store.record_vote, channel, ts, user, vote)
        except ValueError:
            return
        await client.chat_postEphemeral(channel=channel, user=user, thread_ts=ts,
                                        text="Thanks for the feedback!" if vote == "up" else
                                        "Thanks: noted. Reply in the thread with what was wrong and I'll try again.")


async def _maybe_follow_up(responder: Responder, client: AsyncWebClient, event: dict[str, Any],
                           context: dict[str, Any]) -> None:
    if not is_direct_message(event):
        known = await asyncio.to_thread(responder.store.is_bot_thread, event["channel"], event["thread_ts"])
        if not known:
            return
    await responder.handle(client, event, context)
