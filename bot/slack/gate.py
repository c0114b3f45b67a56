"""Who may use the bot where, and how often: one set of rules for mentions, DMs, `/concurrency`
and card clicks.

- `BOT_ALLOWED_CHANNELS` (empty: everywhere); DMs are always allowed.
- Guests (another organisation: bot.slack.membership) are answered read-only and never decide.
- The per-user rate limit lives in the store, so every replica shares one window. Refused clicks
  have a window of their own: a person hammering a button they may not press is throttled.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bot.settings import Settings
from bot.store import Store

log = logging.getLogger(__name__)

__all__ = ["Gate", "NOT_HERE", "RATE_LIMITED"]

RATE_LIMITED = "You're asking faster than I can answer well. Give me a minute and ask again."
NOT_HERE = "I'm not enabled in this channel. Ask me in one of the channels I'm set up for, or in a DM."


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
