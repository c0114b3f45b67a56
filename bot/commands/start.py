"""`concurrency-bot start` (what `make run` calls): Slack when a bot token is set, else the terminal chat."""

from __future__ import annotations

import argparse
import os

HELP = "Start what fits the settings: Slack when tokens are set, else the terminal chat."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")))
    parser.add_argument("--host", default="0.0.0.0")


def run(args: argparse.Namespace) -> int:
    from bot.settings import Settings

    if Settings().slack_bot_token is not None:
        from bot.commands import serve

        return serve.run(args)
    from bot.commands import chat, doctor

    print("Checking the setup (`concurrency-bot doctor`)…", flush=True)
    print(doctor.check().table(), end="\n\n")  # type: ignore[attr-defined]
    print("No SLACK_BOT_TOKEN set: starting the terminal chat (set it to run the Slack bot).")

    return chat.run(argparse.Namespace())
