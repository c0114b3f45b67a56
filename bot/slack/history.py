"""Thread memory comes from the Slack thread itself (`conversations.replies`)."""

from __future__ import annotations

import logging
import re

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.turns import HistoryMessage

log = logging.getLogger(__name__)


def strip_mention(text: str, bot_user_id: str | None) -> str:
    if bot_user_id:
        text = text.replace(f"<@{bot_user_id}>", "")
    return re.sub(r"\s+", " ", text).strip() if "\n" not in text else text.strip()


async def thread_history(client: AsyncWebClient, channel: str, thread_ts: str, current_ts: str,
                         bot_user_id: str | None, bot_id: str | None,
                         max_messages: int) -> list[HistoryMessage]:
    """Earlier messages of the thread, oldest first; the bot's own become assistant turns."""
    try:
        response = await client.conversations_replies(channel=channel, ts=thread_ts, limit=max_messages + 1)
    except SlackApiError as exc:
        log.warning("could not read thread history: %s", exc.response.get("error"))
        return []
    history: list[HistoryMessage] = []
    for message in response.get("messages", []):
        if message.get("ts") == current_ts or message.get("subtype") in ("message_deleted",):
            continue
        text = message.get("text") or ""
        is_bot = (bot_id and message.get("bot_id") == bot_id) or (
            bot_user_id and message.get("user") == bot_user_id)
        if is_bot:
            history.append(HistoryMessage("assistant", text))
        elif text:
            history.append(HistoryMessage("user", strip_mention(text, bot_user_id), message.get("user")))
    return history[-max_messages:]
