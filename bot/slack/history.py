"""Thread memory comes from the Slack thread itself (`conversations.replies`)."""

from __future__ import annotations

import logging
import re
from collections import deque
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.turns import HistoryMessage

log = logging.getLogger(__name__)

PAGE_SIZE = 200  # conversations.replies page; Slack allows up to 1000, recommends at most 200
MAX_PAGES = 50  # a 10,000-message thread is read to its end; longer ones keep the newest pages read


def strip_mention(text: str, bot_user_id: str | None) -> str:
    if bot_user_id:
        text = text.replace(f"<@{bot_user_id}>", "")
    return re.sub(r"\s+", " ", text).strip() if "\n" not in text else text.strip()


async def thread_history(client: AsyncWebClient, channel: str, thread_ts: str, current_ts: str,
                         bot_user_id: str | None, bot_id: str | None,
                         max_messages: int) -> list[HistoryMessage]:
    """Earlier messages of the thread, oldest first; the bot's own become assistant turns."""
    if max_messages <= 0:
        return []
    messages = [m for m in await newest_replies(client, channel, thread_ts, max_messages + 1)
                if m.get("ts") != current_ts]
    if len(messages) > max_messages:  # the bound: the opening message and the newest after it
        opening = messages[:1] if messages[0].get("ts") == thread_ts else []
        messages = [*opening, *messages[len(messages) - max_messages + len(opening):]]
    history: list[HistoryMessage] = []
    for message in messages:
        if message.get("subtype") in ("message_deleted",):
            continue
        text = message.get("text") or ""
        is_bot = (bot_id and message.get("bot_id") == bot_id) or (
            bot_user_id and message.get("user") == bot_user_id)
        if is_bot:
            history.append(HistoryMessage("assistant", text))
        elif text:
            history.append(HistoryMessage("user", strip_mention(text, bot_user_id), message.get("user")))
    return history


async def newest_replies(client: AsyncWebClient, channel: str, thread_ts: str, keep: int) -> list[dict[str, Any]]:
    """The thread's first message and its newest replies, `keep` in all, oldest first.

    Slack returns replies oldest first, a page at a time, so the newest are on the last page:
    page through and keep a window of the latest. The first message stays: it holds the question."""
    window: deque[dict[str, Any]] = deque(maxlen=max(keep - 1, 1))
    root: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        try:
            response = await client.conversations_replies(channel=channel, ts=thread_ts, limit=PAGE_SIZE,
                                                          cursor=cursor)
        except SlackApiError as exc:
            log.warning("could not read thread history: %s", exc.response.get("error"))
            break
        for message in response.get("messages") or []:
            if message.get("ts") == thread_ts:
                root = [message]
            else:
                window.append(message)
        cursor = ((response.get("response_metadata") or {}).get("next_cursor")) or None
        if not response.get("has_more") or not cursor:
            break
    return [*root, *window]
