"""The composition root: settings → store → approvals → pipeline → Slack app. Built once per process."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.pipeline import Pipeline, build_pipeline
from bot.settings import Settings
from bot.slack.app import build_app, web_client
from bot.slack.assistant import register_assistant
from bot.slack.home import register_home
from bot.slack.responder import Responder
from bot.slack.slash import register_slash_command
from bot.slack.worker_loop import WorkerLoop
from bot.store import Store

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    store: Store
    pipeline: Pipeline
    responder: Responder
    app: AsyncApp
    approvals: Any | None = None
    watcher: Any | None = None  # bot.watch.watcher.Watcher when BOT_WATCH_CHANNEL is set

    def start_background(self, sweep_every: float = 60.0) -> list[asyncio.Task]:
        """Periodic work: expire stale proposals and update their cards."""
        tasks = [asyncio.ensure_future(self.watcher.run())] if self.watcher is not None else []
        if self.approvals is None:
            return tasks
        from bot.approvals.sweeper import sweep_expired
        from bot.slack.approval_handlers import update_card
        from bot.slack.inflight import recover_unfinished_answers

        async def recover_answers(client: Any) -> None:
            await recover_unfinished_answers(self.store, client, self.approvals.interrupted_after_seconds)

        async def loop() -> None:
            while True:
                try:
                    await sweep_expired(self.approvals, self.app.client, update_card, recover_answers)
                except Exception:
                    log.exception("proposal expiry sweep failed")
                await asyncio.sleep(sweep_every)

        return [*tasks, asyncio.ensure_future(loop())]

    def metrics_registry(self) -> Any:
        from bot.metrics import store_registry

        return store_registry(self.store.proposal_counts)

    async def close(self) -> None:
        await self.responder.idle()
        await self.responder.close()
        if self.responder.worker is not None:
            self.responder.worker.stop()
        self.store.close()


def build_approvals(settings: Settings, store: Store, client: Any) -> Any:
    from bot.approvals.service import ApprovalService

    return ApprovalService.from_settings(settings, store, client)


def build_runtime(settings: Settings, socket_mode: bool = False) -> Runtime:
    store = Store.open(settings.database_url)
    client = web_client(settings)
    approvals = build_approvals(settings, store, client)
    pipeline = build_pipeline(settings, approvals)
    from bot.slack.approval_handlers import post_proposal_cards, register_approval_handlers

    responder = Responder(settings, store, pipeline, post_cards=lambda c, ch, ts, ids: post_proposal_cards(
        approvals, c, ch, ts, ids), worker=WorkerLoop())
    app = build_app(settings, responder, socket_mode=socket_mode, client=client)
    register_approval_handlers(app, approvals, settings)
    register_assistant(app, responder)
    register_home(app, approvals.pending, read_incidents=open_incidents_reader(settings, store))
    register_slash_command(app, pipeline.offline)
    return Runtime(settings, store, pipeline, responder, app, approvals, build_watcher(settings, store, app, approvals))


def open_incidents_reader(settings: Settings, store: Store) -> Any | None:
    """What the Home tab lists above the limits table, when the watcher is on."""
    if not settings.bot_watch_channel:
        return None
    from bot.watch.watcher import open_incidents

    async def read() -> list[Any]:
        return await open_incidents(store)

    return read


def build_watcher(settings: Settings, store: Store, app: AsyncApp, approvals: Any) -> Any | None:
    """The on-call watcher and its Snooze / Mute buttons, only when BOT_WATCH_CHANNEL is set."""
    if not settings.bot_watch_channel:
        return None
    from bot.slack.watch_poster import SlackPoster, register_watch_handlers
    from bot.watch.watcher import Watcher

    poster = SlackPoster(app.client, settings.bot_watch_channel, store, approvals)
    register_watch_handlers(app, store, poster)
    return Watcher(store, poster, interval=settings.bot_watch_interval_seconds,
                   wait_seconds=settings.bot_watch_wait_seconds,
                   max_posts_per_hour=settings.bot_watch_max_posts_per_hour)
