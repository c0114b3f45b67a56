"""`concurrency-bot feedback`: how many answers got 👍 and 👎."""

from __future__ import annotations

import argparse

HELP = "Summarise the thumbs-up/down votes on answers."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    return None


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from bot.settings import Settings
    from bot.store import Store

    store = Store.open(Settings().database_url)
    counts = store.vote_counts()
    total = counts["up"] + counts["down"]
    table = Table(title="Answer feedback")
    for column in ("votes", "👍", "👎", "👍 share"):
        table.add_column(column, justify="right")
    share = f"{100 * counts['up'] / total:.0f}%" if total else "–"
    table.add_row(str(total), str(counts["up"]), str(counts["down"]), share)
    Console().print(table)
    return 0
