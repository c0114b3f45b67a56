"""Who may use the bot where, and how often: one set of rules for mentions, DMs, `/concurrency`
and card clicks.

- `BOT_ALLOWED_CHANNELS` (empty: everywhere); DMs are always allowed.
- Guests (another organisation: bot.slack.membership) are answered read-only and never decide.
- The per-user rate limit lives in the store, so every replica shares one window. Every click
  counts in it like a message (a click that goes through too: twelve Reverts are twelve requests).
  Refused clicks also have a window of their own: past it, refusals are dropped without a reply.
- Every click passes `check_click` first: the card's channel must be allowed, like a message there
  (BOT_WATCH_CHANNEL counts as allowed for clicks: the watcher posts its incidents there).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bot.settings import Settings
from bot.store import Store

log = logging.getLogger(__name__)

__all__ = ["Gate", "NOT_HERE", "NOT_HERE_CLICK", "RATE_LIMITED"]

RATE_LIMITED = "You're asking faster than I can answer well. Give me a minute and ask again."
NOT_HERE = "I'm not enabled in this channel. Ask me in one of the channels I'm set up for, or in a DM."
NOT_HERE_CLICK = ("I'm not enabled in this channel, so buttons here do nothing. Nothing changed; ask for the "
                  "change again in one of the channels I'm set up for.")


@dataclass
class Gate:
    settings: Settings
    store: Store

    def channel_allowed(self, channel: str | None, channel_type: str | None = None) -> bool:
        allowed = self.settings.bot_allowed_channels
        is_dm = channel_type == "im" or (channel or "").startswith("D")
        return not allowed or is_dm or channel in allowed

    async def allow(self, user: str) -> bool:
        """Count one request for `user`; False when they are over BOT_USER_RATE_LIMIT_PER_MINUTE."""
        per_minute = self.settings.bot_user_rate_limit_per_minute
        return await asyncio.to_thread(self.store.allow_request, user, per_minute)

    async def click_allowed(self, user: str) -> bool:
        """False while `user` has had too many clicks refused in the last minute (the click is dropped)."""
        per_minute = self.settings.bot_user_rate_limit_per_minute
        return await asyncio.to_thread(self.store.has_room, f"refused:{user}", per_minute)

    async def count_refusal(self, user: str) -> bool:
        """Count a refused click; False when this one is over the limit (say nothing back)."""
        per_minute = self.settings.bot_user_rate_limit_per_minute
        allowed = await asyncio.to_thread(self.store.allow_request, f"refused:{user}", per_minute)
        if not allowed:
            log.info("refused clicks from %s are being throttled", user)
        return allowed

    async def check_click(self, user: str, channel: str | None) -> str | None:
        """The same gate as a message, for a click: None when it may go on (it has been counted in the
        user's shared window); otherwise what to tell the clicker, "" meaning drop it without a reply."""
        if not await self.click_allowed(user):
            return ""
        if channel and channel != self.settings.bot_watch_channel and not self.channel_allowed(channel):
            return NOT_HERE_CLICK if await self.count_refusal(user) else ""
        if not await self.allow(user):
            return RATE_LIMITED if await self.count_refusal(user) else ""
        return None
