"""`concurrency-bot doctor [--json]`: check settings, Slack, Prefect, the model and the store; say what to fix."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

HELP = "Check the setup (settings, Slack, Prefect, model, store) and say what to fix."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")


def check() -> object:
    """Run every check on this process's settings, quietly; returns the Report."""
    from bot.cli import prefect_url_problem
    from bot.doctor import diagnose
    from bot.doctor.prefect_checks import PrefectTarget
    from bot.redact import remember
    from bot.settings import Settings

    logging.getLogger("prefect").setLevel(logging.ERROR)
    url = os.environ.get("PREFECT_API_URL")
    target = None
    problem = prefect_url_problem(url)
    if problem:  # Prefect would print a validation dump when imported: report it as a row, check the rest
        target = PrefectTarget(url, invalid=problem)
        os.environ.pop("PREFECT_API_URL")
    try:
        remember(Settings().secret_values())  # nothing the checks print may carry a secret
    except Exception:  # settings that do not parse are exactly what the report is about
        pass
    return asyncio.run(diagnose(prefect=target))


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.CRITICAL)  # the table says what went wrong; no log lines around it
    report = check()
    print(report.as_json() if args.json else report.table())  # type: ignore[attr-defined]
    return report.exit_code()  # type: ignore[attr-defined]
