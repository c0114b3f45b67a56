"""Follow Prefect's event stream (/api/events/out) and wake the watcher on anything concurrency-related.

The stream only makes the watcher look sooner; the periodic read stays the source of truth. When
the subscriber gives up, we reconnect with capped exponential backoff and read /api/events/filter
for what happened during the gap, so a missed state change still triggers a look at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

PREFIXES = ["prefect.flow-run.", "prefect.task-run.", "prefect.concurrency-limit.", "prefect.work-pool.",
            "prefect.work-queue.", "prefect.worker.", "prefect.deployment."]
EXCLUDED = ["prefect.flow-run.heartbeat", "prefect.task-run.heartbeat", "prefect.worker.submitted-flow-run",
            "prefect.worker.executed-flow-run"]  # chatter: what flow-run state events already say
MAX_BACKOFF = 60.0
REPLAY_SKEW = timedelta(seconds=5)  # events this much older than the follower's start may still be news


def _event_filter(since: datetime | None = None):
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    occurred = EventOccurredFilter(since=since, until=datetime.now(UTC) + timedelta(minutes=5)) if since else None
    values = {"event": EventNameFilter(prefix=PREFIXES, exclude_name=EXCLUDED)}
    if occurred is not None:
        values["occurred"] = occurred
    return EventFilter(**values)


class EventFollower:
    """Calls `on_event` for every relevant event; survives disconnects. `events` counts what it saw."""

    def __init__(self, on_event: Callable[[], None], subscriber_factory: Callable[..., object] | None = None,
                 classify: Callable[[Any], bool] | None = None) -> None:
        self.on_event = on_event
        self.classify = classify  # False: an event not worth a look (a heartbeat); None: events missed
        self.subscriber_factory = subscriber_factory
        self.events = 0
        self.started = datetime.now(UTC)
        self.reconnects = 0
        self.last_occurred: datetime | None = None

    def _subscriber(self):
        if self.subscriber_factory is not None:
            return self.subscriber_factory(_event_filter())
        from prefect.events.clients import get_events_subscriber

        return get_events_subscriber(filter=_event_filter(), reconnection_attempts=3)

    async def run(self) -> None:
        backoff = 1.0
        while True:
            try:
                async with self._subscriber() as subscriber:
                    if self.last_occurred is not None:
                        await self._backfill(self.last_occurred)
                    backoff = 1.0
                    async for event in subscriber:
                        if event.occurred < self.started - REPLAY_SKEW or (
                                self.last_occurred is not None and event.occurred < self.last_occurred):
                            continue  # the stream replays recent history on connect: already read
                        self.events += 1
                        self.last_occurred = event.occurred
                        if self.classify is None or self.classify(event):
                            self.on_event()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("event stream closed (%s); reconnecting in %.0f s", type(exc).__name__, backoff)
            self.reconnects += 1
            if self.last_occurred is None:
                self.last_occurred = datetime.now(UTC)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _backfill(self, since: datetime) -> None:
        """Events that happened while we were away: one look if there were any."""
        from prefect import get_client

        try:
            async with get_client() as client:
                page = await client.read_events(filter=_event_filter(since), limit=1)
        except Exception as exc:
            log.info("event backfill failed: %s", type(exc).__name__)
            self._missed()  # we do not know what we missed: look now
            return
        if page is not None and page.events:
            self.events += len(page.events)
            self._missed()

    def _missed(self) -> None:
        if self.classify is not None:
            self.classify(None)
        self.on_event()
