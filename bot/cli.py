"""`concurrency-bot`: the one entry point. Each subcommand lives in `bot/commands/<name>.py`.

A command module exposes `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`.
Modules are imported only when their command runs, so `--help` stays fast (Prefect's import
alone takes seconds).
"""

from __future__ import annotations

import argparse
import importlib
import os
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
    problem = prefect_url_problem(os.environ.get("PREFECT_API_URL"))
    if problem and args.command != "doctor":  # Prefect itself would print a validation dump on import
        print(f"concurrency-bot {args.command}: {problem}", file=sys.stderr)
        return 2
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
    except Exception as exc:  # the last net: one clear line, never a traceback (the cause is named, not dumped)
        print(f"concurrency-bot {args.command}: {failure_line(exc)}", file=sys.stderr)
        return 1


def prefect_url_problem(url: str | None) -> str | None:
    """Why PREFECT_API_URL cannot be used (checked before Prefect is imported), or None."""
    from urllib.parse import urlsplit

    from bot.redact import shown_url

    if not url or not url.strip():
        return None
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError as exc:
        return f"PREFECT_API_URL is not a valid URL ({exc}): {shown_url(url)}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"PREFECT_API_URL must be an http(s) URL such as http://127.0.0.1:4200/api, not {shown_url(url)}"
    return None


def failure_line(exc: BaseException) -> str:
    """What went wrong, in one line a person can act on, for errors no command turned into words."""
    from bot.redact import error_summary, redact

    kind = type(exc).__name__
    module = type(exc).__module__ or ""
    if kind == "ValidationError" and module.startswith("pydantic"):
        first = next(iter(getattr(exc, "errors", lambda: [])() or []), {})
        where = ".".join(str(part) for part in first.get("loc", ()) if part) or "value"
        message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
        hint = " (check PREFECT_API_URL and the other PREFECT_* settings)" if "prefect" in str(exc).lower() \
            or "URL" in message else ""
        return redact(f"invalid setting {where}: {message}{hint}")[:300]
    if module.startswith("sqlalchemy"):
        first = (str(exc).splitlines() or [""])[0]
        return redact(f"cannot open the bot's database (BOT_DATABASE_URL): {kind}: {first}")[:300]
    if isinstance(exc, UnicodeDecodeError):
        return "a file or value is not UTF-8 text"
    return error_summary(exc)


if __name__ == "__main__":
    sys.exit(main())
