"""Telling threads whose answer a crash cut off (rows in `answers_in_flight`, see bot/store/inflight.py)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.store import Store
from bot.store.inflight import finish_answer, stale_answers

log = logging.getLogger(__name__)

INTERRUPTED_NOTE = ("Sorry, I was restarted while answering this, so my answer was lost. Nothing was "
                    "changed. Please ask again (mention me).")


async def recover_unfinished_answers(store: Store, client: Any, older_than_seconds: float) -> int:
    """Tell each thread whose answer a crash cut off; returns how many threads were told."""
    if client is None:
        return 0
    told = 0
    for channel, thread_ts, message_ts in await asyncio.to_thread(stale_answers, store.engine, older_than_seconds):
        if not await asyncio.to_thread(finish_answer, store.engine, channel, message_ts):
            continue  # another replica took it
        try:
            await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=INTERRUPTED_NOTE)
            told += 1
        except SlackApiError as exc:
            log.warning("could not post the interrupted-answer note: %s", exc.response.get("error"))
    return told
