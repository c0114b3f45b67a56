"""`concurrency-bot demo`: seed the Prefect server with a realistic situation to try the bot on.

It seeds the server the other commands talk to: the embedded one by default (started if needed,
left running for `chat`). A server you configured yourself (PREFECT_API_URL or a profile) is only
touched with `--yes`. What it creates is recorded in BOT_DATA_DIR/demo.json, and `demo --clean`
removes exactly that.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from bot.redact import shown_url

HELP = "Seed the Prefect server with a realistic concurrency situation to try (--clean removes it)."
RECORD = "demo.json"



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clean", action="store_true", help="remove exactly what the demo created")
    parser.add_argument("--yes", action="store_true",
                        help="also seed (or clean) a Prefect server you configured, not only the embedded one")


def _say(message: str) -> None:
    print(message, flush=True)


async def server_is_empty() -> bool:
    """No limits and no deployments: nothing to show, so the chat offers the demo."""
    from prefect import get_client

    from bot.prefect_ops.limits import read_all_deployments, read_all_gcls
    from bot.prefect_ops.runs import paged

    async with get_client() as client:
        if await read_all_gcls(client) or await read_all_deployments(client):
            return False
        pools = await paged(lambda limit, offset: client.read_work_pools(limit=limit, offset=offset))
        queues = await paged(lambda limit, offset: client.read_work_queues(limit=limit, offset=offset))
    return not any(p.concurrency_limit is not None for p in pools) and not any(
        q.concurrency_limit is not None for q in queues)


DEMO_OFFER = ("This Prefect server has no concurrency limits and no deployments yet. To see what I can do, "
              "run `concurrency-bot demo` in another terminal: it seeds a realistic situation "
              "(`demo --clean` removes it).")


async def _seed(record_path: Path) -> int:
    from prefect import get_client

    from bot.prefect_ops.demo_world import DEMO_QUESTIONS, DemoExists, seed
    from bot.prefect_ops.errors import PrefectOpsError

    async with get_client() as client:
        try:
            record = await seed(client)
        except PrefectOpsError as exc:  # a Prefect 2 or non-Prefect server, or the server is down
            _say(f"concurrency-bot demo: {exc}")
            return 1
        except DemoExists as exc:
            _say(f"concurrency-bot demo: the server already has demo objects ({exc}). "
                 "Remove them first (`concurrency-bot demo --clean` removes what a demo created).")
            return 1
        api_url = str(client.api_url)
    record_path.write_text(json.dumps({"api_url": api_url, **record}, indent=2), encoding="utf-8")
    _say(f"Seeded {shown_url(api_url)}:")
    for line in (
        "• deployment demo-etl/nightly, limit 1: demo-nightly-1 runs, demo-nightly-2 is AwaitingConcurrencySlot",
        "• work pool demo-reports, limit 1 and full: demo-report-1 runs, two runs wait",
        "• work queue demo-backfill (pool demo-etl) is paused, with two Late runs",
        "• tag limit demo-db: its one slot is taken by no run (leaked)",
        "• rate limit demo-github-api: 10, refilled at 2 slots/s",
    ):
        _say(line)
    _say("\nTry these in `concurrency-bot chat` (no model key needed), in Slack, or with `concurrency-bot ask`:")
    for question in DEMO_QUESTIONS:
        _say(f"  {question}")
    _say("\n`concurrency-bot demo --clean` removes exactly what was created.")
    return 0


async def _clean(record_path: Path) -> int:
    from prefect import get_client

    from bot.prefect_ops.demo_world import clean

    record = json.loads(record_path.read_text(encoding="utf-8"))
    async with get_client() as client:
        if str(client.api_url) != record.get("api_url"):
            _say(f"concurrency-bot demo --clean: the demo was seeded on {shown_url(str(record.get('api_url')))}, "
                 f"but this is {shown_url(str(client.api_url))}; nothing removed.")
            return 1
        failed = await clean(client, record)
    if failed:
        _say("Removed the demo, except: " + "; ".join(failed))
        return 1
    record_path.unlink()
    _say(f"Removed the demo from {shown_url(str(record['api_url']))}: {len(record['flow_runs'])} runs, "
         f"{len(record['deployments'])} deployments, {len(record['work_pools'])} work pools and "
         f"{len(record['gcls']) + len(record.get('tag_limits', []))} limits.")
    return 0


def run(args: argparse.Namespace) -> int:
    from bot.embedded_prefect import PrefectStartError, configured_api_url, prepare_prefect
    from bot.settings import Settings
    from bot.terminal.progress import ProgressLines

    settings = Settings()
    record_path = Path(settings.bot_data_dir) / RECORD
    settings.bot_data_dir.mkdir(parents=True, exist_ok=True)
    if args.clean and not record_path.exists():
        _say("concurrency-bot demo --clean: no demo was seeded from here (no demo.json); nothing to remove.")
        return 0
    if not args.clean and record_path.exists():
        _say("concurrency-bot demo: a demo is already seeded; `concurrency-bot demo --clean` removes it first.")
        return 1
    configured = configured_api_url()
    if configured is not None and not args.yes:
        _say(f"concurrency-bot demo: Prefect is configured to use {configured}, not the embedded server. "
             "The demo creates pools, deployments, runs and limits there (all named demo-…); "
             "add --yes to do it anyway.")
        return 2
    try:
        prepare_prefect(settings.bot_data_dir, progress=ProgressLines(_say))
    except PrefectStartError as exc:
        print(f"concurrency-bot demo: {exc}", file=sys.stderr)
        return 1
    # The embedded server is left running for `chat`/`ask`; the last of them to leave stops it.
    return asyncio.run(_clean(record_path) if args.clean else _seed(record_path))
