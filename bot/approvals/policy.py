"""Who may approve what: approver IDs and/or a Slack user group, second-person rules, read-only mode.

Slack has no server-side click authorisation, so every decision asks this policy. With no
approvers configured nobody can approve (fail closed). The user group's members are cached for
`cache_seconds`; if Slack cannot be reached the last known members (or none) are used.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel

from bot.settings import Settings

log = logging.getLogger(__name__)

GROUP_ID = re.compile(r"^S[A-Z0-9]+$")  # handles are lower case
NOBODY = "nobody can approve changes until BOT_APPROVER_IDS or BOT_APPROVER_GROUP is set"


class ApproverGroupError(RuntimeError):
    """BOT_APPROVER_GROUP names no user group Slack knows; the message says what to fix."""


class Refusal(BaseModel):
    """Why a person may not take a decision; `message` is safe to show them."""

    code: str  # read_only | guest | not_approver | second_person
    message: str


class ApprovalPolicy:
    """Answers "may this user approve this proposal?" from settings plus Slack's group members."""

    def __init__(self, settings: Settings, slack_client: Any | None = None, cache_seconds: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.slack_client = slack_client
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._group_members: set[str] = set()
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self._group_id: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.settings.bot_approver_ids or self.settings.bot_approver_group)

    async def resolve_group(self) -> str | None:
        """The approver group's ID; a handle (`@ops` or `ops`) is looked up in usergroups.list.

        Run at startup so a wrong handle stops the bot with a clear message instead of silently
        leaving nobody able to approve."""
        group = (self.settings.bot_approver_group or "").strip()
        if not group or self._group_id:
            return self._group_id
        if GROUP_ID.match(group):
            self._group_id = group
            return group
        handle = group.lstrip("@")
        if self.slack_client is None:
            raise ApproverGroupError(f"BOT_APPROVER_GROUP @{handle} can only be looked up through Slack.")
        try:
            response = await self.slack_client.usergroups_list()
        except Exception as exc:
            error = getattr(getattr(exc, "response", None), "get", lambda _k: None)("error") or type(exc).__name__
            raise ApproverGroupError(f"BOT_APPROVER_GROUP @{handle}: could not list user groups ({error}); "
                                     "the app needs the usergroups:read scope.") from exc
        for found in response.get("usergroups") or []:
            if found.get("handle") == handle:
                self._group_id = str(found["id"])
                return self._group_id
        raise ApproverGroupError(f"BOT_APPROVER_GROUP @{handle}: there is no user group with this handle in "
                                 "the workspace. Use the handle shown in Slack (without @) or the group ID (S…).")

    def describe(self) -> str:
        """Who can approve, in one line for the startup log."""
        if not self.configured:
            return NOBODY
        parts = []
        if self.settings.bot_approver_ids:
            parts.append(f"users {', '.join(self.settings.bot_approver_ids)}")
        if self.settings.bot_approver_group:
            parts.append(f"members of user group {self.settings.bot_approver_group} ({self._group_id or '?'})")
        return "approvers: " + " and ".join(parts)

    @property
    def read_only(self) -> bool:
        return self.settings.bot_read_only

    async def approvers(self) -> set[str]:
        return set(self.settings.bot_approver_ids) | await self._group()

    async def is_approver(self, user_id: str) -> bool:
        return user_id in await self.approvers()

    async def _group(self) -> set[str]:
        if not self.settings.bot_approver_group or self.slack_client is None:
            return set()
        try:
            group = await self.resolve_group()
        except ApproverGroupError as exc:
            log.warning("%s", exc)
            return set()
        fresh = self._fetched_at is not None and self._clock() - self._fetched_at < self.cache_seconds
        if fresh:
            return self._group_members
        async with self._lock:
            if self._fetched_at is not None and self._clock() - self._fetched_at < self.cache_seconds:
                return self._group_members
            try:
                response = await self.slack_client.usergroups_users_list(usergroup=group)
                self._group_members = set(response.get("users") or [])
                self._fetched_at = self._clock()
            except Exception as exc:  # Slack down or scope missing: keep what we had
                log.warning("could not read approver group %s: %s", group, type(exc).__name__)
        return self._group_members

    async def refusal(self, user_id: str, requester: str, destructive: bool,
                      guest: bool = False, editors: Iterable[str] = ()) -> Refusal | None:
        """None when `user_id` may approve (or edit); otherwise the reason they may not.

        `guest` marks a Slack Connect user from another workspace: they may ask, never decide.
        `editors` are everyone who changed the value: under a second-person rule they count as
        requesters too, or one person could edit a colleague's proposal and approve their own value."""
        if self.read_only:
            return Refusal(code="read_only",
                           message="The bot is in read-only mode: no limit changes are applied.")
        if guest:
            return Refusal(code="guest",
                           message="Only people in this workspace can decide on limit changes, so nothing "
                                   "changed.")
        if not await self.is_approver(user_id):
            return Refusal(code="not_approver",
                           message="You are not an approver for concurrency limit changes, "
                                   "so nothing changed.")
        second = self.settings.bot_approval_require_second_person or (
            destructive and self.settings.bot_destructive_require_second_person)
        if second and user_id == requester:
            return Refusal(code="second_person",
                           message="This change needs a second person: someone other than "
                                   "the requester must approve.")
        if second and user_id in set(editors):
            return Refusal(code="second_person",
                           message="This change needs a second person: you edited its value, so "
                                   "someone who neither asked for it nor edited it must approve.")
        return None
