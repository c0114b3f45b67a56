"""`concurrency-bot serve`: Socket Mode when SLACK_APP_TOKEN is set, else HTTP on --port."""

from __future__ import annotations

import argparse
import asyncio
import sys

HELP = "Run the Slack bot (Socket Mode with SLACK_APP_TOKEN, else HTTP on --port)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=3000, help="HTTP mode port (default 3000)")
    parser.add_argument("--host", default="0.0.0.0", help="HTTP mode bind address")


def run(args: argparse.Namespace) -> int:
    from bot.logging_setup import configure_logging
    from bot.settings import Settings
    from bot.slack.app import SettingsError

    settings = Settings()
    configure_logging(settings)
    socket_mode = settings.slack_app_token is not None
    try:
        from bot.runtime import build_runtime

        runtime = build_runtime(settings, socket_mode=socket_mode)
    except SettingsError as exc:
        print(f"concurrency-bot serve: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_serve(runtime, socket_mode, args.host, args.port))


async def _serve(runtime, socket_mode: bool, host: str, port: int) -> int:
    from bot.slack.server import serve_http, serve_socket_mode

    background = runtime.start_background()
    try:
        if socket_mode:
            await serve_socket_mode(runtime.app, runtime.settings.slack_app_token.get_secret_value())
        else:
            await serve_http(runtime.app, host, port, extra_metrics=runtime.metrics_registry(),
                             metrics_token=runtime.metrics_token)
    finally:
        for task in background:
            task.cancel()
        await runtime.close()
    return 0
