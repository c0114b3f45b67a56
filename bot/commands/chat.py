"""`concurrency-bot chat`: a terminal conversation on the same pipeline, tools and proposals as Slack."""

from __future__ import annotations

import argparse
import asyncio
import sys

HELP = "Talk to the bot in the terminal, with the same tools and proposals."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", help="who you are in proposals and the audit log (default terminal:<login>)")


def _empty_server() -> bool:
    """Whether to offer the demo; a failed read just means no offer (the chat explains errors itself)."""
    from bot.commands.demo import server_is_empty

    try:
        return asyncio.run(server_is_empty())
    except Exception:  # the offer is a bonus: never stop the chat over it
        return False


def run(args: argparse.Namespace) -> int:
    from bot.commands.demo import DEMO_OFFER
    from bot.embedded_prefect import PrefectStartError
    from bot.settings import Settings
    from bot.terminal import ChatSession, TerminalRenderer, stdin_reader
    from bot.terminal.setup import quiet_logging
    from bot.terminal.startup import terminal_runtime

    settings = Settings()
    quiet_logging(settings)
    renderer = TerminalRenderer()
    try:
        with terminal_runtime(settings, renderer) as runtime:
            user = getattr(args, "user", None) or runtime.user_id
            mode = (f"model {settings.openai_model}" if settings.model_configured
                    else "offline: no OPENAI_API_KEY, so answers come from live Prefect reads and the recipe book")
            session = ChatSession(runtime.pipeline, renderer, stdin_reader(renderer.console), user,
                                  runtime.approvals, runtime.session_id)
            banner = f"Prefect concurrency copilot ({mode}). Type /help for examples, /quit to leave."
            if _empty_server():
                banner += "\n\n" + DEMO_OFFER
            return asyncio.run(session.run(banner))
    except PrefectStartError as exc:
        print(f"concurrency-bot chat: {exc}", file=sys.stderr)
        return 1
