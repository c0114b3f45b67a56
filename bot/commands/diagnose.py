"""`concurrency-bot diagnose RUN_OR_DEPLOYMENT`: why a run is not running, without the model."""

from __future__ import annotations

import argparse
import json

HELP = "Explain why a flow run (or a deployment's runs) is not running."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target",
        metavar="RUN_OR_DEPLOYMENT",
        help="a flow run name or id, or a deployment ('flow/deployment' or what you call it)",
    )
    parser.add_argument("--json", action="store_true", help="print the diagnosis as JSON, for scripts")


async def _diagnose(target: str):
    from prefect import get_client

    from bot.prefect_ops import diagnose_run

    async with get_client() as client:
        return await diagnose_run(client, target)


def render(diagnosis) -> list[str]:
    """Plain lines: the answer first, then every check with its evidence and any fix candidate."""
    lines = [diagnosis.summary, ""]
    if diagnosis.run_name:
        lines.insert(0, f"run {diagnosis.run_name} ({diagnosis.run_state})")
    for finding in diagnosis.findings:
        mark = "BLOCKING" if finding.blocking else "ok"
        lines.append(f"[{mark}] {finding.check}: {finding.summary}")
        lines += [f"    {item}" for item in finding.evidence]
        if finding.fix is not None:
            fix = finding.fix
            change = f"{fix.current} -> {fix.proposed}" if fix.current else (fix.proposed or "")
            lines.append(
                f"    suggested ({fix.action}, not applied): {fix.target_kind} {fix.target_name}: "
                f"{change}; {fix.reason}"
            )
    return lines


def run(args: argparse.Namespace, console=None) -> int:
    from rich.console import Console

    from bot.commands.prefect_reads import read_or_explain

    console = console or Console()
    diagnosis = read_or_explain("diagnose", _diagnose(args.target), console)
    if diagnosis is None:
        return 1
    if getattr(args, "json", False):
        console.print(json.dumps(diagnosis.model_dump(mode="json"), indent=2), markup=False, highlight=False,
                      soft_wrap=True)
        return 0
    for line in render(diagnosis):  # soft_wrap: long names are never cut or split by the console
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    return 0
