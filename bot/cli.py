"""`concurrency-bot`: the one entry point. Each subcommand lives in `bot/commands/<name>.py`.

A command module exposes `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`.
Modules are imported only when their command runs, so `--help` stays fast (Prefect's import
alone takes seconds).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from bot.knowledge.prompt_files import PromptsError
from bot.version import version_line

COMMANDS: dict[str, str] = {
    "start": "Start what fits the settings: Slack when tokens are set, else the terminal chat.",
    "serve": "Run the Slack bot (Socket Mode with SLACK_APP_TOKEN, else HTTP on --port).",
    "chat": "Talk to the bot in the terminal, with the same tools and proposals.",
    "ask": "Ask one question and print the answer.",
    "limits": "Print every concurrency limit with its live occupancy.",
    "diagnose": "Explain why a flow run (or a deployment's runs) is not running.",
    "verify": "Check the commands and snippets of a Markdown answer against the installed Prefect.",
    "audit": "Print the audit log of proposals and decisions.",
    "eval": "Run the eval questions through the configured model and print a score table.",
    "feedback": "Summarise the thumbs-up/down votes on answers.",
    "demo": "Seed the Prefect server with a realistic concurrency situation to try (--clean removes it).",
    "watch": "Print the concurrency incidents the watcher sees now (`watch --once [--json]`).",
    "doctor": "Check the setup (settings, Slack, Prefect, model, store) and say what to fix.",
}


def _load(name: str):
    try:
        return importlib.import_module(f"bot.commands.{name.replace('-', '_')}")
    except ModuleNotFoundError as exc:
        if exc.name == f"bot.commands.{name.replace('-', '_')}":
            return None
        raise


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="concurrency-bot", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=version_line(),
                        help="print the bot's version and the Prefect version it was checked against")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    args = sys.argv[1:] if argv is None else argv
    wanted = args[0] if args else None
    for name, help_text in COMMANDS.items():
        cmd_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:  # only the chosen command's module is imported
            module = _load(name)
            if module is not None and hasattr(module, "add_arguments"):
                module.add_arguments(cmd_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    if extra:
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    module = _load(args.command)
    if module is None:
        print(f"concurrency-bot {args.command}: not available in this build yet.", file=sys.stderr)
        return 2
    try:
        return int(module.run(args) or 0)
    except PromptsError as exc:  # BOT_PROMPTS_DIR names a folder that is missing or incomplete
        print(f"concurrency-bot {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
