"""`concurrency-bot limits`: every concurrency limit with its live occupancy, as a table (or JSON).

Names are never cut: in a terminal the long cells wrap; piped into another program (grep, less)
the table is as wide as its content, so each name stays whole on its line.
"""

from __future__ import annotations

import argparse
import json

HELP = "Print every concurrency limit with its live occupancy."
KINDS = ("global", "tag", "deployment", "work_pool", "work_queue")
PIPED_WIDTH = 10_000  # a table only takes the width its content needs
NAME_SHARE = 3  # in a narrow terminal the Name column gets the most room; what does not fit wraps, never cut


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=KINDS, action="append", help="only this kind (repeatable)")
    parser.add_argument("--busy", action="store_true", help="only limits in use, with waiters or paused")
    parser.add_argument("--json", action="store_true", help="print the limits as JSON, for scripts")


def _notes(limit) -> str:
    notes = limit.flags()
    if limit.active_slots and not limit.holders and not limit.holders_known:
        notes.append("holders not recorded")
    return ", ".join(notes)


def _shown(cmap, busy_only: bool) -> list:
    return [limit for limit in cmap.limits
            if not busy_only or limit.active_slots or limit.waiting or limit.paused]


def as_json(cmap, busy_only: bool = False) -> str:
    """The same rows as the table, every field, for scripts."""
    limits = [limit.model_dump(mode="json") for limit in _shown(cmap, busy_only)]
    return json.dumps({"api_url": cmap.api_url, "limits": limits}, indent=2)


def render(cmap, busy_only: bool = False, piped: bool = False):
    """The map as a rich Table (no I/O, so tests can look at it); `piped`: cells never wrap."""
    from rich.table import Table

    table = Table(title=f"Concurrency limits at {cmap.api_url}", title_justify="left")
    for column in ("Kind", "Name", "Limit", "Active", "Holders", "Waiting", "Notes"):
        table.add_column(column, justify="right" if column in ("Limit", "Active", "Waiting") else "left",
                         overflow="fold", no_wrap=piped, ratio=NAME_SHARE if column == "Name" else None)
    for limit in _shown(cmap, busy_only):
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
    if getattr(args, "json", False):
        console.print(as_json(cmap, busy_only=args.busy), markup=False, highlight=False, soft_wrap=True)
        return 0
    if console.is_terminal:
        console.print(render(cmap, busy_only=args.busy))
    else:  # piped: as wide as the content, so every name stays whole on its line (`limits | grep NAME`)
        wide = Console(file=console.file, width=PIPED_WIDTH, color_system=None, highlight=False)
        wide.print(render(cmap, busy_only=args.busy, piped=True))
    counts = ", ".join(f"{n} {k}" for k, n in cmap.counts().items() if n)
    console.print(f"{len(cmap.limits)} limits ({counts or 'none'})", highlight=False)
    return 0
