"""`concurrency-bot serve`: Socket Mode when SLACK_APP_TOKEN is set, else HTTP on --port.

It runs `doctor`'s checks first and logs them as one block. A ✗ that makes the bot unsafe (no signing
secret in HTTP mode, a token of the wrong type, settings that do not parse, a store it cannot write)
stops it; the other problems are logged as warnings and shown on the Home tab to approvers.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

HELP = "Run the Slack bot (Socket Mode with SLACK_APP_TOKEN, else HTTP on --port)."
STARTUP_CHECK_SECONDS = 30.0  # per group: a slow provider delays the start this long at most, then is a ✗ row

log = logging.getLogger("bot.serve")



def port_number(text: str) -> int:
    """A TCP port, 1-65535 (argparse reports anything else as one line)."""
    try:
        port = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from exc
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535)")
    return port

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=port_number, default=3000, help="HTTP mode port (default 3000)")
    parser.add_argument("--host", default="0.0.0.0", help="HTTP mode bind address")


def log_report(report) -> None:
    """The checks as one log record: info when all is well, warning when something is not."""
    level = logging.WARNING if report.problems() else logging.INFO
    log.log(level, "setup checks (concurrency-bot doctor): %s\n%s", report.summary(), report.table())


def run(args: argparse.Namespace) -> int:
    from bot.doctor.run import diagnose, diagnose_environment
    from bot.logging_setup import configure_logging
    from bot.slack.app import SettingsError

    settings, report = None, None
    try:
        from bot.doctor.settings_checks import check_settings

        settings, _rows = check_settings()
        configure_logging(settings)
        if settings.slack_bot_token is None:
            raise SettingsError("SLACK_BOT_TOKEN is not set: the bot needs its xoxb- token to talk to Slack.")
        settings, report = asyncio.run(diagnose_environment(timeout=STARTUP_CHECK_SECONDS))
    except SettingsError as exc:
        print(f"concurrency-bot serve: {exc}", file=sys.stderr)
        return 2
    log_report(report)
    if report.unsafe:
        lines = "\n".join(f"  ✗ {r.group} · {r.name}: {r.detail}\n    → {r.fix}" for r in report.unsafe)
        print(f"concurrency-bot serve: not starting, this setup is unsafe:\n{lines}", file=sys.stderr)
        return 2
    socket_mode = settings.slack_app_token is not None
    try:
        from bot.runtime import build_runtime

        runtime = build_runtime(settings, socket_mode=socket_mode)
    except SettingsError as exc:
        print(f"concurrency-bot serve: {exc}", file=sys.stderr)
        return 2
    runtime.doctor.set(report)
    runtime.doctor.refresh = lambda: diagnose(settings, timeout=STARTUP_CHECK_SECONDS)
    from bot.approvals.policy import ApproverGroupError

    try:
        asyncio.run(runtime.run(socket_mode, args.host, args.port))
    except ApproverGroupError as exc:
        print(f"concurrency-bot serve: {exc}", file=sys.stderr)
        return 2
    return 0
