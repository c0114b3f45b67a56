"""`concurrency-bot limits`: every concurrency limit with its live occupancy, as a table."""

from __future__ import annotations

import argparse

HELP = "Print every concurrency limit with its live occupancy."
KINDS = ("global", "tag", "deployment", "work_pool", "work_queue")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=KINDS, action="append", help="only this kind (repeatable)")
    parser.add_argument("--busy", action="store_true", help="only limits in use, with waiters or paused")


def _notes(limit) -> str:
    notes = limit.flags()
    if limit.active_slots and not limit.holders and not limit.holders_known:
        notes.append("holders not recorded")
    return ", ".join(notes)


def render(cmap, busy_only: bool = False):
    """The map as a rich Table (no I/O, so tests can look at it)."""
    from rich.table import Table

    table = Table(title=f"Concurrency limits at {cmap.api_url}", title_justify="left")
    for column in ("Kind", "Name", "Limit", "Active", "Holders", "Waiting", "Notes"):
        table.add_column(column, justify="right" if column in ("Limit", "Active", "Waiting") else "left")
    for limit in cmap.limits:
        if busy_only and not (limit.active_slots or limit.waiting or limit.paused):
            continue
        holders = ", ".join(f"{h.name or h.id} ({h.state or 'gone'})" for h in limit.holders[:3])
        if len(limit.holders) > 3:
            holders += f" +{len(limit.holders) - 3}"
        full = "bold red" if limit.full else ""
        table.add_row(
            limit.kind,
            limit.name,
            "none" if limit.limit is None else str(limit.limit),
            f"[{full}]{limit.active_slots}[/]" if full else str(limit.active_slots),
            holders,
            str(limit.waiting or ""),
            _notes(limit),
        )
    return table


async def _read(kinds):
    from prefect import get_client

    from bot.prefect_ops import concurrency_map

    async with get_client() as client:
        return await concurrency_map(client, kinds)


def run(args: argparse.Namespace, console=None) -> int:
    from rich.console import Console

    from bot.commands.prefect_reads import read_or_explain

    console = console or Console()
    cmap = read_or_explain("limits", _read(args.kind), console)
    if cmap is None:
        return 1
    console.print(render(cmap, busy_only=args.busy))
    counts = ", ".join(f"{n} {k}" for k, n in cmap.counts().items() if n)
    console.print(f"{len(cmap.limits)} limits ({counts or 'none'})", highlight=False)
    return 0
