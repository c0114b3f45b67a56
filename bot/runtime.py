"""The composition root: settings → store → approvals → pipeline → Slack app. Built once per process."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.doctor.state import DoctorState
from bot.pipeline import Pipeline, build_pipeline
from bot.redact import remember
from bot.settings import Settings
from bot.slack.app import build_app, web_client
from bot.slack.assistant import register_assistant
from bot.slack.gate import Gate
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
    doctor: DoctorState = field(default_factory=DoctorState)  # `serve` fills it at start (bot.doctor)

    def start_background(self, sweep_every: float = 60.0) -> list[asyncio.Task]:
        """Periodic work: expire stale proposals and update their cards."""
        tasks = [asyncio.ensure_future(self.watcher.run())] if self.watcher is not None else []
        if self.doctor.refresh is not None:
            tasks.append(asyncio.ensure_future(self.doctor.run()))
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

    async def prepare(self) -> None:
        """Startup checks that need Slack: resolve the approver group (a wrong handle raises
        ApproverGroupError naming it) and say who can approve."""
        if self.approvals is None:
            return
        from bot.approvals.policy import NOBODY

        policy = self.approvals.policy
        await policy.resolve_group()
        if policy.configured:
            log.info("%s", policy.describe())
        else:
            log.warning("%s", NOBODY)

    async def run(self, socket_mode: bool, host: str, port: int, ready: asyncio.Event | None = None,
                  stop: asyncio.Event | None = None) -> None:
        """What `serve` runs: startup checks, the maintenance sweep, then Slack (HTTP or Socket Mode)
        with /healthz and /metrics on `port` either way; closes everything on the way out."""
        from bot.slack.server import serve_http, serve_socket_mode

        background: list[asyncio.Task] = []
        try:
            await self.prepare()
            background = self.start_background(self.settings.bot_sweep_interval_seconds)
            if socket_mode:
                assert self.settings.slack_app_token is not None
                await serve_socket_mode(self.app, self.settings.slack_app_token.get_secret_value(), stop,
                                        host=host, port=port, extra_metrics=self.metrics_registry(), ready=ready,
                                        metrics_token=self.metrics_token, health_detail=self.health_detail)
            else:
                await serve_http(self.app, host, port, ready, stop, self.metrics_registry(), self.metrics_token,
                                 self.health_detail)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await self.close()

    @property
    def metrics_token(self) -> str | None:
        """BOT_METRICS_TOKEN: when set, /metrics wants `Authorization: Bearer <token>`."""
        token = self.settings.bot_metrics_token
        return token.get_secret_value() if token is not None and token.get_secret_value() else None

    def health_detail(self) -> dict[str, Any]:
        """/healthz?detail=1 (behind BOT_METRICS_TOKEN): the model's state (bot.agent.model_health), or that
        none is configured, the doctor's current ✗/⚠ rows, and the Prefect server as last read (version,
        capabilities, or the one line refusing it)."""
        from bot.prefect_ops.capabilities import known_state

        return {"model": model_report(self.pipeline, self.settings), "doctor": self.doctor.detail(),
                "prefect": known_state(self.settings.prefect_api_url) or {"state": "not read yet"}}

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
    remember(settings.secret_values())  # every redact() in this process scrubs these too
    store = Store.open(settings.database_url)
    gate = Gate(settings, store)
    client = web_client(settings)
    approvals = build_approvals(settings, store, client)
    pipeline = build_pipeline(settings, approvals)
    from bot.slack.approval_handlers import post_proposal_cards, register_approval_handlers

    responder = Responder(settings, store, pipeline, post_cards=lambda c, ch, ts, ids: post_proposal_cards(
        approvals, c, ch, ts, ids), worker=WorkerLoop(), gate=gate)
    app = build_app(settings, responder, socket_mode=socket_mode, client=client)
    register_approval_handlers(app, approvals, settings, gate)
    register_assistant(app, responder)
    from bot.approvals.policy import NOBODY

    doctor = DoctorState()
    register_home(app, approvals.pending, notice=home_notice(pipeline, None if approvals.policy.configured else NOBODY),
                  read_incidents=open_incidents_reader(settings, store), read_setup=setup_reader(doctor, approvals))
    register_slash_command(app, pipeline.offline, gate=gate, link_hosts=settings.link_hosts)
    return Runtime(settings, store, pipeline, responder, app, approvals,
                   build_watcher(settings, store, app, approvals, gate),
                   doctor)


def setup_reader(doctor: DoctorState, approvals: Any) -> Any:
    """The doctor's ✗/⚠ rows for the Home tab, shown to approvers only (they name people and channels)."""
    async def read(user: str) -> list[str]:
        lines = doctor.problem_lines()
        if not lines or not await approvals.policy.is_approver(user):
            return []
        return lines

    return read


def model_report(pipeline: Pipeline, settings: Settings) -> dict[str, Any]:
    if pipeline.model is None:
        return {"state": "not configured", "problem": None, "forms": {}}
    return pipeline.model.health.report(settings.openai_model)


def home_notice(pipeline: Pipeline, fixed: str | None) -> Any:
    """The Home tab's top line, read at each open: a standing model problem, and `fixed` (who can approve)."""
    def notice() -> str | None:
        model = pipeline.model.health.notice() if pipeline.model is not None else None
        return " ".join(part for part in (model, fixed) if part) or None
    return notice


def open_incidents_reader(settings: Settings, store: Store) -> Any | None:
    """What the Home tab lists above the limits table, when the watcher is on."""
    if not settings.bot_watch_channel:
        return None
    from bot.watch.watcher import open_incidents

    async def read() -> list[Any]:
        return await open_incidents(store)

    return read


def build_watcher(settings: Settings, store: Store, app: AsyncApp, approvals: Any,
                  gate: Gate | None = None) -> Any | None:
    """The on-call watcher and its Snooze / Mute buttons, only when BOT_WATCH_CHANNEL is set."""
    if not settings.bot_watch_channel:
        return None
    from bot.slack.watch_poster import SlackPoster, register_watch_handlers
    from bot.watch.watcher import Watcher

    poster = SlackPoster(app.client, settings.bot_watch_channel, store, approvals)
    register_watch_handlers(app, store, poster, gate)
    return Watcher(store, poster, interval=settings.bot_watch_interval_seconds,
                   wait_seconds=settings.bot_watch_wait_seconds,
                   max_posts_per_hour=settings.bot_watch_max_posts_per_hour,
                   max_calls_per_minute=settings.bot_watch_max_calls_per_minute)
