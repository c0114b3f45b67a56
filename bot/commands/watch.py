"""`concurrency-bot watch --once [--json]`: print what the watcher's detectors find right now."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

HELP = "Print the concurrency incidents the watcher sees now (stuck runs, leaked slots, no worker…)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="read once, print and exit (the default)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--wait-seconds", type=float, default=None,
                        help="how long a run may wait before it counts (default BOT_WATCH_WAIT_SECONDS)")
    parser.add_argument("--all", action="store_true", help="also list conditions that have not lasted long enough")


async def _find(wait_seconds: float, everything: bool) -> tuple[list, object]:
    from prefect import get_client

    from bot.watch.detectors import detect
    from bot.watch.reads import read_snapshot

    async with get_client() as client:
        snap = await read_snapshot(client)
    found = detect(snap, wait_seconds)
    return (found if everything else [i for i in found if i.ripe(snap.read_at)]), snap.read_at


def run(args: argparse.Namespace) -> int:
    from bot.prefect_ops.errors import PrefectOpsError
    from bot.settings import Settings
    from bot.watch.render import incident_lines

    settings = Settings()
    wait = settings.bot_watch_wait_seconds if args.wait_seconds is None else args.wait_seconds
    if wait < 0:
        print("concurrency-bot watch: --wait-seconds must be 0 or more", file=sys.stderr)
        return 2
    try:
        incidents, now = asyncio.run(_find(wait, args.all))
    except PrefectOpsError as exc:
        print(f"concurrency-bot watch: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([dict(i.model_dump(mode="json"), key=i.key, ripe=i.ripe(now)) for i in incidents],
                         indent=2))
        return 0
    if not incidents:
        print(f"No incidents (runs waiting longer than {wait:g} s, leaks, missing workers, paused backlogs).")
        return 0
    for incident in incidents:
        print("\n".join(incident_lines(incident, now)).replace("*", ""))
        print()
    return 0
