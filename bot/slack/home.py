"""The App Home tab: a live table of limits and occupancy, a refresh button, pending proposals."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
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

from bot.slack.limits import fit_view

log = logging.getLogger(__name__)

REFRESH_ACTION = "home_refresh"
MAX_ROWS = 40
KIND_LABELS = {"global": "Global limit", "tag": "Tag", "deployment": "Deployment", "work_pool": "Work pool",
               "work_queue": "Work queue"}

MapReader = Callable[[], Awaitable[Any]]  # returns bot.prefect_ops.models.ConcurrencyMap
PendingReader = Callable[[], Awaitable[list[Any]]]  # returns pending ProposalViews


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


def home_view(limits_map: Any | None, pending: list[Any], error: str | None = None,
              notice: str | None = None) -> View:
    blocks: list[Block] = [HeaderBlock(text="Prefect concurrency"),
                           ActionsBlock(elements=[ButtonElement(text="Refresh", action_id=REFRESH_ACTION,
                                                                value="refresh")])]
    if notice:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f":information_source: {notice}")]))
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
    return fit_view(View(type="home", blocks=blocks))


async def publish_home(client: AsyncWebClient, user_id: str, read_map: MapReader, read_pending: PendingReader,
                       notice: str | None = None) -> None:
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
    try:
        await client.views_publish(user_id=user_id, view=home_view(limits_map, pending, error, notice))
    except SlackApiError as exc:  # never leave the tab blank: say what went wrong instead
        log.error("Slack refused the Home tab (%s); publishing a short one", exc.response.get("error"))
        await client.views_publish(user_id=user_id, view=home_view(
            None, [], f"The full view could not be shown ({exc.response.get('error')}).", notice))


def register_home(app: AsyncApp, read_pending: PendingReader, read_map: MapReader = read_live_map,
                  notice: str | None = None) -> None:
    """`notice` is a line shown at the top of every Home tab (e.g. that nobody can approve yet)."""

    @app.event("app_home_opened")
    async def on_home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab", "home") == "home":
            await publish_home(client, event["user"], read_map, read_pending, notice)

    @app.action(REFRESH_ACTION)
    async def on_refresh(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await publish_home(client, body["user"]["id"], read_map, read_pending, notice)
