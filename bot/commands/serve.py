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
    from bot.approvals.policy import ApproverGroupError

    try:
        asyncio.run(runtime.run(socket_mode, args.host, args.port))
    except ApproverGroupError as exc:
        print(f"concurrency-bot serve: {exc}", file=sys.stderr)
        return 2
    return 0
