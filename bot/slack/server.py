"""HTTP mode: an aiohttp server with /slack/events (signed), /healthz and Prometheus /metrics."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

log = logging.getLogger(__name__)


def metrics_body(extra_metrics: CollectorRegistry | None) -> bytes:
    """Both registries rendered; the store-backed one queries the database, so run this in a thread."""
    return generate_latest() + (generate_latest(extra_metrics) if extra_metrics is not None else b"")


def bearer_ok(request: web.Request, token: str | None) -> bool:
    """No token configured: open (bind to a private network). Else `Authorization: Bearer <token>`."""
    if not token:
        return True
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


HealthDetail = Callable[[], dict[str, Any]]


def web_application(app: AsyncApp, path: str | None = "/slack/events",
                    extra_metrics: CollectorRegistry | None = None,
                    metrics_token: str | None = None, health_detail: HealthDetail | None = None) -> web.Application:
    """`path=None`: only /healthz and /metrics (Socket Mode gets its events over the WebSocket).

    `/healthz?detail=1` adds `health_detail()` (the model's state, the doctor's current ✗/⚠ rows); they name
    channels, people and hosts, so they need BOT_METRICS_TOKEN, and are refused when no token is configured."""
    async def slack_events(request: web.Request) -> web.Response:
        bolt_request = await to_bolt_request(request)
        bolt_response = await app.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_response)

    async def healthz(request: web.Request) -> web.Response:
        body: dict[str, Any] = {"ok": True}
        if request.query.get("detail") and health_detail is not None:
            if not metrics_token:
                return web.json_response({"ok": True, "error": "set BOT_METRICS_TOKEN to read the detail"},
                                         status=403)
            if not bearer_ok(request, metrics_token):
                return web.Response(status=401, text="detail needs Authorization: Bearer <BOT_METRICS_TOKEN>\n",
                                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
            body.update(health_detail())
        return web.json_response(body)

    async def metrics(request: web.Request) -> web.Response:
        if not bearer_ok(request, metrics_token):
            return web.Response(status=401, text="metrics need Authorization: Bearer <BOT_METRICS_TOKEN>\n",
                                headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        body = await asyncio.to_thread(metrics_body, extra_metrics)  # no database query on the event loop
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    web_app = web.Application(client_max_size=2 * 1024 * 1024)
    if path is not None:
        web_app.router.add_post(path, slack_events)
    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/metrics", metrics)
    return web_app


async def serve_http(app: AsyncApp, host: str, port: int, ready: asyncio.Event | None = None,
                     stop: asyncio.Event | None = None, extra_metrics: CollectorRegistry | None = None,
                     metrics_token: str | None = None, health_detail: HealthDetail | None = None) -> None:
    runner = web.AppRunner(web_application(app, extra_metrics=extra_metrics, metrics_token=metrics_token,
                                           health_detail=health_detail), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("listening on http://%s:%s/slack/events", host, port)
    if ready is not None:
        ready.set()
    try:
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        await runner.cleanup()


async def serve_socket_mode(app: AsyncApp, app_token: str, stop: asyncio.Event | None = None,
                            host: str | None = None, port: int | None = None,
                            extra_metrics: CollectorRegistry | None = None,
                            ready: asyncio.Event | None = None, metrics_token: str | None = None,
                            health_detail: HealthDetail | None = None) -> None:
    """Connect to Slack over a WebSocket (no public URL); Bolt copies Slack's retry_attempt into headers.

    With a `port`, /healthz and /metrics are served there too, so health checks work in both modes."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    runner = None
    if port is not None:
        runner = web.AppRunner(web_application(app, path=None, extra_metrics=extra_metrics,
                                                 metrics_token=metrics_token, health_detail=health_detail),
                               access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host or "0.0.0.0", port).start()
        log.info("health and metrics on http://%s:%s/healthz", host or "0.0.0.0", port)
    handler = AsyncSocketModeHandler(app, app_token)
    try:
        await handler.connect_async()
        log.info("connected to Slack in Socket Mode")
        if ready is not None:
            ready.set()
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        await handler.close_async()
        if runner is not None:
            await runner.cleanup()
