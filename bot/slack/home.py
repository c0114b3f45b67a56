"""The App Home tab: a live table of limits and occupancy, a refresh button, pending proposals.

Any member of the workspace can open it, so it shows only what anyone may see: proposals from
public channels plus the viewer's own, names escaped (bot.safe_text), never raw exception text.
The Prefect read behind it is cached for a few seconds, so opening the tab repeatedly is cheap.
"""

from __future__ import annotations

import asyncio
import logging
import time
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

from bot.prefect_ops.capabilities import UnsupportedServer
from bot.redact import redact
from bot.safe_text import channel_ref, clean, code, mention
from bot.slack.limits import fit_view

log = logging.getLogger(__name__)

REFRESH_ACTION = "home_refresh"
MAX_ROWS = 40
MAP_CACHE_SECONDS = 15.0  # one Prefect scan serves every Home tab opened within this window
CHANNEL_CACHE_SECONDS = 300.0
PREFECT_DOWN = ("Could not read Prefect right now ({kind}). The table comes back when Prefect answers; "
                "the bot's logs have the details.")
KIND_LABELS = {"global": "Global limit", "tag": "Tag", "deployment": "Deployment", "work_pool": "Work pool",
               "work_queue": "Work queue"}

Notice = str | Callable[[], str | None] | None  # a fixed line, or one read at each open (a model problem)
MapReader = Callable[[], Awaitable[Any]]  # returns bot.prefect_ops.models.ConcurrencyMap
PendingReader = Callable[[], Awaitable[list[Any]]]  # returns pending ProposalViews
IncidentReader = Callable[[], Awaitable[list[Any]]]  # returns open bot.watch.incidents.Incident
SetupReader = Callable[[str], Awaitable[list[str]]]  # the doctor's ✗/⚠ lines this viewer may see


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
    return f"{'🔴' if limit.full else '🟢'} *{clean(label)}* {code(limit.name)}: {cap}{clean(suffix)}"


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


def setup_blocks(lines: list[str]) -> list[Block]:
    """The doctor's current ✗/⚠ rows (approvers only); the text names settings and services' answers."""
    shown = [clean(line)[:400] for line in lines[:15]]
    if len(lines) > 15:
        shown.append(f"…and {len(lines) - 15} more: run `concurrency-bot doctor`")
    blocks: list[Block] = [HeaderBlock(text="Setup problems")]
    for start in range(0, len(shown), 5):
        blocks.append(SectionBlock(text="\n".join(shown[start:start + 5])[:2900]))
    blocks.append(ContextBlock(elements=[MarkdownTextObject(
        text="Shown to approvers only, from the checks `serve` runs at start (`concurrency-bot doctor`).")]))
    blocks.append(DividerBlock())
    return blocks


def home_view(limits_map: Any | None, pending: list[Any], error: str | None = None,
              notice: str | None = None, incidents: list[Any] | None = None,
              setup: list[str] | None = None) -> View:
    blocks: list[Block] = [HeaderBlock(text="Prefect concurrency"),
                           ActionsBlock(elements=[ButtonElement(text="Refresh", action_id=REFRESH_ACTION,
                                                                value="refresh")])]
    if notice:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f":information_source: {notice}")]))
    if setup:
        blocks += setup_blocks(setup)
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
            text=f"Read from {clean(redact(str(limits_map.api_url)))} at {limits_map.read_at:%H:%M:%S} UTC{more}")]))
    blocks.append(DividerBlock())
    blocks.append(HeaderBlock(text="Pending proposals"))
    if not pending:
        blocks.append(SectionBlock(text="Nothing waiting for approval."))
    for proposal in pending[:20]:
        where = f" in {channel_ref(proposal.channel)}" if proposal.channel else ""
        blocks.append(SectionBlock(text=f"{clean(redact(proposal.diff))}\nasked by {mention(proposal.requester)}"
                                        f"{where}, expires {proposal.expires_at:%Y-%m-%d %H:%M} UTC"))
    return fit_view(View(type="home", blocks=blocks))


class CachedMap:
    """`read_map` behind a short cache; concurrent opens share one read in flight. A failed read is
    remembered too (for a third of the window), so an outage is not probed on every open."""

    def __init__(self, read_map: MapReader, seconds: float = MAP_CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.read_map, self.seconds, self.clock = read_map, seconds, clock
        self._value: Any = None
        self._error: Exception | None = None
        self._at = float("-inf")
        self._lock = asyncio.Lock()
        self.reads = 0

    async def __call__(self) -> Any:
        async with self._lock:
            age = self.clock() - self._at
            fresh = age < (self.seconds / 3 if self._error is not None else self.seconds)
            if not fresh:
                self.reads += 1
                try:
                    self._value, self._error = await asyncio.wait_for(self.read_map(), timeout=20), None
                except Exception as exc:
                    self._value, self._error = None, exc
                self._at = self.clock()
            if self._error is not None:
                raise self._error
            return self._value


class ChannelVisibility:
    """Whether a channel is public, from `conversations.info`, cached; unknown or failing means private."""

    def __init__(self, seconds: float = CHANNEL_CACHE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.clock = seconds, clock
        self._known: dict[str, tuple[bool, float]] = {}

    async def is_public(self, client: AsyncWebClient, channel: str | None) -> bool:
        if not channel:
            return False
        known = self._known.get(channel)
        if known is not None and self.clock() - known[1] < self.seconds:
            return known[0]
        try:
            info = (await client.conversations_info(channel=channel)).get("channel") or {}
            public = bool(info) and not (info.get("is_private") or info.get("is_im") or info.get("is_mpim"))
        except Exception as exc:  # not found, not in channel, Slack down: fail closed
            log.info("could not tell whether %s is public: %s", channel, type(exc).__name__)
            return False
        self._known[channel] = (public, self.clock())
        return public


async def visible_to(viewer: str, pending: list[Any], client: AsyncWebClient,
                     channels: ChannelVisibility) -> list[Any]:
    """The viewer's own proposals, and those made in public channels."""
    return [p for p in pending if p.requester == viewer or await channels.is_public(client, p.channel)]


async def publish_home(client: AsyncWebClient, user_id: str, read_map: MapReader, read_pending: PendingReader,
                       channels: ChannelVisibility | None = None, notice: Notice = None,
                       read_incidents: IncidentReader | None = None, read_setup: SetupReader | None = None) -> None:
    error = None
    limits_map = None
    if callable(notice):
        notice = notice()
    try:
        limits_map = await read_map()
    except Exception as exc:  # the Home tab must render even when Prefect is down; the text stays in the log
        log.warning("Home tab: could not read Prefect: %s", exc)
        error = (clean(redact(str(exc))) if isinstance(exc, UnsupportedServer)
                 else PREFECT_DOWN.format(kind=type(exc).__name__))
    try:
        pending = await visible_to(user_id, await read_pending(), client, channels or ChannelVisibility())
    except Exception:
        log.exception("could not read pending proposals")
        pending = []
    incidents = None
    if read_incidents is not None:
        try:
            incidents = await read_incidents()
        except Exception:
            log.exception("could not read open incidents")
    setup = None
    if read_setup is not None:
        try:
            setup = await read_setup(user_id)
        except Exception:
            log.exception("could not read the setup checks")
    try:
        await client.views_publish(user_id=user_id, view=home_view(limits_map, pending, error, notice, incidents,
                                                                   setup))
    except SlackApiError as exc:  # never leave the tab blank: say what went wrong instead
        log.error("Slack refused the Home tab (%s); publishing a short one", exc.response.get("error"))
        await client.views_publish(user_id=user_id, view=home_view(
            None, [], f"The full view could not be shown ({exc.response.get('error')}).", notice))


def register_home(app: AsyncApp, read_pending: PendingReader, read_map: MapReader = read_live_map,
                  notice: Notice = None, cache_seconds: float = MAP_CACHE_SECONDS,
                  read_incidents: IncidentReader | None = None, read_setup: SetupReader | None = None) -> CachedMap:
    """Wire the Home tab; returns the cached reader (its `reads` counts real Prefect scans).
    `notice` is a line shown at the top of every Home tab (e.g. that nobody can approve yet);
    `read_incidents` lists the watcher's open incidents above the limits table; `read_setup` gives the
    doctor's problem lines a viewer may see (approvers)."""
    cached = CachedMap(read_map, cache_seconds)
    channels = ChannelVisibility()

    @app.event("app_home_opened")
    async def on_home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab", "home") == "home":
            await publish_home(client, event["user"], cached, read_pending, channels, notice, read_incidents,
                               read_setup)

    @app.action(REFRESH_ACTION)
    async def on_refresh(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await publish_home(client, body["user"]["id"], cached, read_pending, channels, notice, read_incidents,
                           read_setup)

    return cached
