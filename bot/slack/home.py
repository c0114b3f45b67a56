"""The App Home tab: a live table of limits and occupancy, a refresh button, pending proposals."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

REFRESH_ACTION = "home_refresh"
MAX_ROWS = 40
KIND_LABELS = {"global": "Global limit", "tag": "Tag", "deployment": "Deployment", "work_pool": "Work pool",
               "work_queue": "Work queue"}

MapReader = Callable[[], Awaitable[Any]]  # returns bot.prefect_ops.models.ConcurrencyMap
PendingReader = Callable[[], Awaitable[list[Any]]]  # returns pending ProposalViews
IncidentReader = Callable[[], Awaitable[list[Any]]]  # returns open bot.watch.incidents.Incident


async def read_live_map() -> Any:
    from prefect import get_client

    from bot.prefect_ops.concurrency_map import concurrency_map

    async with get_client() as client:
        return await concurrency_map(client)


def limit_line(limit: Any) -> str:
    cap = "no limit" if limit.limit is None else f"{limit.active_slots}/{limit.limit}"
    flags = limit.flags()
    if limit.waiting:
        flags.append(f"{limit.waiting} waiting")
    label = KIND_LABELS.get(str(limit.kind), str(limit.kind))
    suffix = f" · {', '.join(flags)}" if flags else ""
    return f"{'🔴' if limit.full else '🟢'} *{label}* `{limit.name}`: {cap}{suffix}"


def incident_blocks(incidents: list[Any]) -> list[Block]:
    """Open watcher incidents, listed above the limits table."""
    from bot.watch.incidents import KIND_TITLES

    blocks: list[Block] = [HeaderBlock(text="Open incidents")]
    lines = [f"🚨 *{KIND_TITLES.get(i.kind, i.kind)}*: {i.summary}" for i in incidents[:20]]
    if len(incidents) > 20:
        lines.append(f"…and {len(incidents) - 20} more")
    for start in range(0, len(lines), 5):
        blocks.append(SectionBlock(text="\n".join(lines[start:start + 5])[:2900]))
    if not lines:
        blocks.append(SectionBlock(text="None: the watcher sees nothing stuck."))
    blocks.append(DividerBlock())
    return blocks


def home_view(limits_map: Any | None, pending: list[Any], error: str | None = None,
              incidents: list[Any] | None = None) -> View:
    blocks: list[Block] = [HeaderBlock(text="Prefect concurrency"),
                           ActionsBlock(elements=[ButtonElement(text="Refresh", action_id=REFRESH_ACTION,
                                                                value="refresh")])]
    if incidents is not None:
        blocks += incident_blocks(incidents)
    if error:
        blocks.append(SectionBlock(text=f":warning: {error}"))
    elif limits_map is not None:
        limits = list(limits_map.limits)
        lines = [limit_line(limit) for limit in limits[:MAX_ROWS]] or ["No limits are set on this server."]
        for start in range(0, len(lines), 10):
            blocks.append(SectionBlock(text="\n".join(lines[start:start + 10])))
        more = f" (showing {MAX_ROWS} of {len(limits)})" if len(limits) > MAX_ROWS else ""
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=f"Read from {limits_map.api_url} at {limits_map.read_at:%H:%M:%S} UTC{more}")]))
    blocks.append(DividerBlock())
    blocks.append(HeaderBlock(text="Pending proposals"))
    if not pending:
        blocks.append(SectionBlock(text="Nothing waiting for approval."))
    for proposal in pending[:20]:
        where = f" in <#{proposal.channel}>" if proposal.channel else ""
        blocks.append(SectionBlock(text=f"{proposal.diff}\nasked by <@{proposal.requester}>{where}, "
                                        f"expires {proposal.expires_at:%Y-%m-%d %H:%M} UTC"))
    return View(type="home", blocks=blocks)


async def publish_home(client: AsyncWebClient, user_id: str, read_map: MapReader, read_pending: PendingReader,
                       read_incidents: IncidentReader | None = None) -> None:
    error = None
    limits_map = None
    try:
        limits_map = await asyncio.wait_for(read_map(), timeout=20)
    except Exception as exc:  # the Home tab must render even when Prefect is down
        error = f"Could not read Prefect: {exc}"
    try:
        pending = await read_pending()
    except Exception:
        log.exception("could not read pending proposals")
        pending = []
    incidents = None
    if read_incidents is not None:
        try:
            incidents = await read_incidents()
        except Exception:
            log.exception("could not read open incidents")
    await client.views_publish(user_id=user_id, view=home_view(limits_map, pending, error, incidents))


def register_home(app: AsyncApp, read_pending: PendingReader, read_map: MapReader = read_live_map,
                  read_incidents: IncidentReader | None = None) -> None:
    @app.event("app_home_opened")
    async def on_home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab", "home") == "home":
            await publish_home(client, event["user"], read_map, read_pending, read_incidents)

    @app.action(REFRESH_ACTION)
    async def on_refresh(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await publish_home(client, body["user"]["id"], read_map, read_pending, read_incidents)
