"""`concurrency-bot audit`: the audit log of proposals and decisions, newest first, with filters."""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime, timedelta

HELP = "Print the audit log of proposals and decisions."
ACTIONS = ("proposed", "edited", "applied", "failed", "stale", "rejected", "expired", "refused", "snoozed", "muted",
           "unmuted")
_DURATION = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--proposal", help="only this proposal id (a prefix of 8+ characters is enough)")
    parser.add_argument("--user", help="only rows where this Slack user acted or asked")
    parser.add_argument("--action", choices=ACTIONS, help="only this kind of row")
    parser.add_argument("--since", type=parse_since, help="a duration such as 30m, 24h, 7d, or an ISO date")
    parser.add_argument("--limit", type=int, default=50, help="at most this many rows (default 50)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    parser.add_argument("--database-url", help="the store's URL (default: BOT_DATABASE_URL or the data folder)")


def parse_since(text: str) -> datetime:
    match = _DURATION.match(text.strip().lower())
    if match:
        try:
            return datetime.now(UTC) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        except (OverflowError, ValueError) as exc:  # 999999999d: before the year 1
            raise argparse.ArgumentTypeError(f"{text!r} reaches back before any date; try 30d or an ISO date") \
                from exc
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a duration (24h, 7d) or ISO date: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def fetch(database_url: str, args: argparse.Namespace) -> list:
    from bot.store import Store
    from bot.store.proposals import list_audit

    store = Store.open(database_url)
    try:
        rows = list_audit(store.sessions, actor=args.user, action=args.action, since=args.since,
                          limit=max(1, args.limit) if not args.proposal else 10_000)
    finally:
        store.close()
    if args.proposal:
        rows = [r for r in rows if (r.proposal_id or "").startswith(args.proposal)][: max(1, args.limit)]
    return rows


def render(rows: list):
    """The rows as a rich Table (no I/O, so tests can inspect it)."""
    from rich.table import Table

    table = Table(title="Audit log (newest first)", title_justify="left")
    for column in ("When (UTC)", "Proposal", "Action", "Actor", "Asked by", "Change", "Result", "Detail"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(r.at.strftime("%Y-%m-%d %H:%M:%S"), (r.proposal_id or "—")[:8], r.action, r.actor,
                      r.requester or "", r.diff or "", r.result or "", (r.detail or "")[:200])
    return table


def as_json(row) -> str:
    return json.dumps({
        "at": row.at.replace(tzinfo=UTC).isoformat(), "proposal_id": row.proposal_id, "action": row.action,
        "actor": row.actor, "requester": row.requester, "diff": row.diff, "before": row.before_json,
        "after": row.after_json, "result": row.result, "detail": row.detail,
    })


def run(args: argparse.Namespace) -> int:
    from bot.settings import load_settings

    url = args.database_url or load_settings().database_url
    rows = fetch(url, args)
    if args.json:
        for row in rows:
            print(as_json(row))
        return 0
    from rich.console import Console

    console = Console()
    if not rows:
        console.print("No audit rows match.", style="dim")
        return 0
    console.print(render(rows))
    return 0
