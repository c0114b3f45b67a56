"""The work behind one Slack message, run off the request path after Bolt has acked.

Dedupe (a unique key in the store), policy checks, the 👀 reaction, thread history, the
pipeline, then the answer and any proposal cards in the thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.pipeline import Pipeline
from bot.settings import Settings
from bot.slack.delivery import AnswerDelivery, Recipient
from bot.slack.filters import message_key
from bot.slack.gate import RATE_LIMITED, Gate
from bot.slack.history import strip_mention, thread_history
from bot.slack.membership import Membership
from bot.slack.worker_loop import WorkerLoop
from bot.store import Store
from bot.store.inflight import finish_answer, start_answer
from bot.turns import Reply, Turn

log = logging.getLogger(__name__)

FILES_ONLY = ("I can only read text for now. Paste the error or the run name as text and I'll look "
              "into it.")
INTERNAL_ERROR = "Sorry, something went wrong on my side while answering. Nothing was changed; please try again."
CardPoster = Callable[[AsyncWebClient, str, str, list[str]], Awaitable[None]]


@dataclass
class Responder:
    settings: Settings
    store: Store
    pipeline: Pipeline
    post_cards: CardPoster | None = None
    gate: Gate | None = None  # channels, guests and the per-user rate limit (shared with the slash command)
    delivery: AnswerDelivery | None = None
    worker: WorkerLoop | None = None  # None: answer on the caller's loop (terminal, tests of parts)
    tasks: set[asyncio.Task] = field(default_factory=set)
    membership: Membership = field(default_factory=Membership)
    _worker_client: AsyncWebClient | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.gate is None:
            self.gate = Gate(self.settings, self.store)
        if self.delivery is None:
            self.delivery = AnswerDelivery(streaming=self.settings.bot_streaming, link_hosts=self.settings.link_hosts)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run the work off the ack path: on the worker loop when there is one, else as a task here."""
        if self.worker is not None:
            self.worker.submit(coro)
            return
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)  # keep a reference so the task is not garbage collected
        task.add_done_callback(self.tasks.discard)

    async def idle(self) -> None:
        """Wait until every answer in progress has finished (shutdown, tests)."""
        if self.worker is not None:
            await self.worker.idle()
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    def channel_allowed(self, event: dict[str, Any]) -> bool:
        assert self.gate is not None
        return self.gate.channel_allowed(event.get("channel"), event.get("channel_type"))

    def _client_on_worker(self, client: AsyncWebClient) -> AsyncWebClient:
        """On the worker loop, a clone of the app's client with one aiohttp session, so Slack calls reuse
        their connections (no TCP/TLS handshake per call); the session must belong to this loop."""
        if self.worker is None:
            return client
        if self._worker_client is None:
            self._worker_client = AsyncWebClient(
                token=client.token, base_url=client.base_url, timeout=client.timeout, logger=client.logger,
                retry_handlers=client.retry_handlers, session=aiohttp.ClientSession())
        return self._worker_client

    async def close(self) -> None:
        """Close the worker loop's Slack session (on that loop)."""
        client, self._worker_client = self._worker_client, None
        if client is not None and client.session is not None and self.worker is not None:
            await asyncio.wrap_future(self.worker.submit(client.session.close()))

    async def handle(self, client: AsyncWebClient, event: dict[str, Any], context: dict[str, Any]) -> None:
        client = self._client_on_worker(client)
        try:
            await self._handle(client, event, context)
        except Exception:
            log.exception("handling a message failed")

    async def _handle(self, client: AsyncWebClient, event: dict[str, Any], context: dict[str, Any]) -> None:
        if not await asyncio.to_thread(self.store.claim_event, message_key(event)):
            metrics.EVENTS_DEDUPED.inc()
            return
        if not self.channel_allowed(event):
            log.info("ignoring a message in channel %s (not in BOT_ALLOWED_CHANNELS)", event.get("channel"))
            return
        channel, ts = event["channel"], event["ts"]
        thread_ts = event.get("thread_ts") or ts
        started = time.perf_counter()
        await self._react(client, channel, ts)  # first visible feedback comes before any other work
        metrics.FIRST_FEEDBACK.observe(time.perf_counter() - started)
        await asyncio.to_thread(start_answer, self.store.engine, channel, thread_ts, ts)  # a crash now leaves a trace
        try:
            await self._answer(client, event, context, channel, ts, thread_ts)
        except Exception:
            log.exception("answering a message failed")
            await self._post(client, channel, thread_ts, INTERNAL_ERROR)
        finally:
            await asyncio.to_thread(finish_answer, self.store.engine, channel, ts)

    async def _answer(self, client: AsyncWebClient, event: dict[str, Any], context: dict[str, Any],
                      channel: str, ts: str, thread_ts: str) -> None:
        user = event.get("user", "")
        started = time.perf_counter()
        team = event.get("user_team") or event.get("team")
        home_team = context.get("team_id")
        bot_user_id = context.get("bot_user_id")
        text = strip_mention(event.get("text") or "", bot_user_id)
        if not await self.gate.allow(user):  # type: ignore[union-attr]
            await self._post(client, channel, thread_ts, RATE_LIMITED)
            return
        if not text and event.get("files"):
            await self._post(client, channel, thread_ts, FILES_ONLY)
            return
        history = []
        if event.get("thread_ts"):
            history = await thread_history(client, channel, thread_ts, ts, bot_user_id, context.get("bot_id"),
                                           self.settings.bot_history_max_messages)
        guest = await self.membership.is_guest(client, user, team, context)
        if guest:  # Slack Connect: answered, but read-only; their clicks are refused by the policy
            log.info("message from Slack Connect user %s of team %s: answering read-only", user, team)
        turn = Turn(text=text, user_id=user, channel=channel, thread_ts=thread_ts, history=history,
                    may_propose=not guest)
        reply = await self.pipeline.answer(turn)
        metrics.observe_reply(reply, time.perf_counter() - started)
        await self.deliver(client, channel, thread_ts, reply, Recipient(user, home_team or team))

    async def deliver(self, client: AsyncWebClient, channel: str, thread_ts: str, reply: Reply,
                      recipient: Recipient) -> None:
        assert self.delivery is not None
        await self.delivery.deliver(client, channel, thread_ts, reply.text, recipient, feedback=not reply.failed)
        await asyncio.to_thread(self.store.mark_thread, channel, thread_ts)
        if reply.proposals and self.post_cards is not None:
            await self.post_cards(client, channel, thread_ts, reply.proposals)

    async def _react(self, client: AsyncWebClient, channel: str, ts: str) -> None:
        try:
            await client.reactions_add(channel=channel, timestamp=ts, name="eyes")
        except SlackApiError as exc:
            log.debug("reaction failed: %s", exc.response.get("error"))

    async def _post(self, client: AsyncWebClient, channel: str, thread_ts: str, markdown: str) -> None:
        assert self.delivery is not None
        try:
            await self.delivery.post(client, channel, thread_ts, markdown)
        except Exception:  # Slack unreachable: nothing more we can tell the user
            log.exception("could not post in the thread")
