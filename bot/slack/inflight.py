"""Answers in flight, remembered in the store so a crash cannot swallow a question silently.

Slack does not redeliver an event we acked, so if the process dies while the model is thinking the
question would go unanswered. Before answering, the responder writes a marker; when the answer is
delivered (or fails with a message) the marker is removed. A maintenance pass finds markers older
than the longest an answer may take, and posts a short note in their threads asking to re-ask.

The markers live in the seen-events table under an `answering:` key prefix, so no migration is
needed; each is claimed by deleting it, so only one replica posts the note.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from sqlalchemy import delete, select

from bot.store import Store
from bot.store.events import SeenEvent

log = logging.getLogger(__name__)

PREFIX = "answering:"
INTERRUPTED_NOTE = ("Sorry, I was restarted while answering this, so my answer was lost. Nothing was "
                    "changed. Please ask again (mention me).")


def marker_key(channel: str, thread_ts: str, ts: str) -> str:
    return f"{PREFIX}{channel}:{thread_ts}:{ts}"


def _parse(key: str) -> tuple[str, str, str]:
    channel, thread_ts, ts = key[len(PREFIX):].split(":", 2)
    return channel, thread_ts, ts


def mark(store: Store, key: str) -> None:
    store.claim_event(key)


def unmark(store: Store, key: str) -> bool:
    """Remove a marker; True if this caller removed it (so it alone acts on it)."""
    with store.engine.begin() as connection:
        return connection.execute(delete(SeenEvent).where(SeenEvent.event_key == key)).rowcount == 1


def stale_markers(store: Store, older_than_seconds: float) -> list[str]:
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
    with store.sessions() as session:
        rows = session.execute(select(SeenEvent.event_key, SeenEvent.seen_at)
                               .where(SeenEvent.event_key.like(f"{PREFIX}%"))).all()
    stale = []
    for key, seen_at in rows:
        seen = seen_at.replace(tzinfo=UTC) if seen_at is not None and seen_at.tzinfo is None else seen_at
        if seen is None or seen <= cutoff:
            stale.append(key)
    return stale


async def recover_unfinished_answers(store: Store, client: Any, older_than_seconds: float) -> int:
    """Tell each thread whose answer a crash cut off; returns how many threads were told."""
    if client is None:
        return 0
    told = 0
    for key in await asyncio.to_thread(stale_markers, store, older_than_seconds):
        if not await asyncio.to_thread(unmark, store, key):
            continue  # another replica took it
        channel, thread_ts, _ts = _parse(key)
        try:
            await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=INTERRUPTED_NOTE)
            told += 1
        except SlackApiError as exc:
            log.warning("could not post the interrupted-answer note: %s", exc.response.get("error"))
    return told
