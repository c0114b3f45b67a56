"""Who is a guest: a person from another organisation, who may ask but never decide.

In an Enterprise Grid org the workspaces share one enterprise ID, so a colleague from a sister
workspace is a member even though their team differs. Only when the installation has no
enterprise does a different team make someone a guest (Slack Connect). When the enterprise of
a person from another team cannot be learned, they are treated as a guest (fail closed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError

log = logging.getLogger(__name__)

__all__ = ["Membership", "home_of"]

CACHE_SECONDS = 3600.0
CACHE_SIZE = 5000


def home_of(context: Any) -> tuple[str | None, str | None]:
    """The installation's (team, enterprise), from auth.test as Bolt stored it in the context.

    Not the request's own team/enterprise fields: those describe the person who acted."""
    get = context.get if hasattr(context, "get") else (lambda _key: None)
    authorized = get("authorize_result")
    team = getattr(authorized, "team_id", None) or get("team_id")
    enterprise = getattr(authorized, "enterprise_id", None)
    return team, enterprise


def payload_enterprise(body: dict[str, Any]) -> str | None:
    """The clicker's enterprise as a block_actions / view_submission payload states it, if it does."""
    user_team = (body.get("user") or {}).get("team_id")
    team = body.get("team") or {}
    if team.get("id") and team.get("id") == user_team:
        return team.get("enterprise_id") or (body.get("enterprise") or {}).get("id")
    return None


class Membership:
    """Answers "is this person a guest?", looking up a person's enterprise once per hour at most."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._enterprise_of: dict[str, tuple[float, str | None]] = {}

    async def is_guest(self, client: Any, user: str | None, user_team: str | None, context: Any,
                       hint_enterprise: str | None = None) -> bool:
        home_team, home_enterprise = home_of(context)
        if not user_team or not home_team or user_team == home_team:
            return False
        if not home_enterprise:
            return True  # no Grid: another team is another organisation
        enterprise = hint_enterprise or await self._enterprise(client, user)
        return enterprise != home_enterprise

    async def _enterprise(self, client: Any, user: str | None) -> str | None:
        if not user:
            return None
        cached = self._enterprise_of.get(user)
        if cached is not None and self._clock() - cached[0] < CACHE_SECONDS:
            return cached[1]
        try:
            response = await client.users_info(user=user)
        except (SlackApiError, SlackClientError) as exc:
            log.warning("could not read the organisation of user %s (%s): treating them as a guest", user, exc)
            return None
        person = response.get("user") or {}
        enterprise = (person.get("enterprise_user") or {}).get("enterprise_id") or person.get("enterprise_id")
        if len(self._enterprise_of) >= CACHE_SIZE:
            self._enterprise_of.clear()
        self._enterprise_of[user] = (self._clock(), enterprise)
        return enterprise
