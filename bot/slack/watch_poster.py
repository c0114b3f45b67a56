"""The watcher's Slack side: post, update and resolve incident messages; Snooze and Mute buttons.

The proposal for a fix goes through the same approvals service as any other, and its card is posted
in the incident's thread. Snooze and Mute write a silence and an audit row; nothing else changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.safe_text import mention
from bot.slack import incident_cards as cards
from bot.slack.cards import slack_time
from bot.slack.membership import Membership
from bot.store import Store
from bot.store import proposals as proposal_db
from bot.store import watch as db
from bot.watch.incidents import Incident

log = logging.getLogger(__name__)

WATCHER = "watcher"  # the requester recorded on proposals the watcher makes
SNOOZE_FOR = timedelta(hours=1)
MUTE_FOR = timedelta(days=7)  # a mute ends by itself; Unmute on the message ends it sooner


class SlackPoster:
    """Posts through the bot's own Web API client into BOT_WATCH_CHANNEL."""

    def __init__(self, client: AsyncWebClient, channel: str, store: Store, approvals: Any | None = None) -> None:
        self.client = client
        self.channel = channel
        self.store = store
        self.approvals = approvals

    async def post(self, incident: Incident, now: datetime) -> tuple[str, str]:
        response = await self.client.chat_postMessage(channel=self.channel, text=cards.incident_text(incident),
                                                      blocks=cards.plain(cards.incident_blocks(incident, now)))
        return response["channel"], response["ts"]

    async def update(self, row: db.WatchIncident, incident: Incident, now: datetime, note: str | None = None,
                     muted: bool = False) -> None:
        await self._update(row, cards.incident_blocks(incident, now, note=note, muted=muted),
                           cards.incident_text(incident))

    async def resolve(self, row: db.WatchIncident, incident: Incident, now: datetime, text: str) -> None:
        await self._update(row, cards.incident_blocks(incident, now, resolved=text),
                           cards.incident_text(incident, resolved=text))

    async def _update(self, row: db.WatchIncident, blocks: list, text: str) -> None:
        if not row.message_ts or not row.channel:
            return
        try:
            await self.client.chat_update(channel=row.channel, ts=row.message_ts, text=text,
                                          blocks=cards.plain(blocks))
        except SlackApiError as exc:
            log.warning("could not update incident %s: %s", row.key[:80], exc.response.get("error"))

    async def propose(self, incident: Incident, channel: str, thread_ts: str) -> str | None:
        """A proposal for the fix, under the usual approval rules, with its card in the thread."""
        if self.approvals is None or incident.fix is None:
            return None
        from bot.approvals.service import ProposalRefused
        from bot.slack.approval_handlers import post_card

        try:
            proposal = await self.approvals.create_proposal(incident.fix, WATCHER, reason=incident.summary,
                                                            channel=channel, thread_ts=thread_ts)
        except ProposalRefused as exc:
            await self.client.chat_postMessage(channel=channel, thread_ts=thread_ts,
                                               text=f"No change proposed: {exc}")
            return None
        await post_card(self.approvals, self.client, proposal, channel, thread_ts)
        return proposal.id

    async def rollup(self, incidents: list[Incident], now: datetime) -> None:
        """One message per hour for incidents beyond the post limit, updated as more arrive."""
        hour = now.astimezone(UTC).strftime("%Y-%m-%d %H:00")
        key = f"rollup:{hour}"
        row = await asyncio.to_thread(db.get_incident, self.store.sessions, key)
        earlier = [Incident.model_validate(i) for i in json.loads(row.incident_json)] if row else []
        listed = earlier + incidents
        blocks = cards.plain(cards.rollup_blocks(listed, hour))
        text = f"{len(listed)} more concurrency incidents this hour"
        if row is None:
            claimed = await asyncio.to_thread(db.start_watching, self.store.engine, dict(
                key=key, kind="rollup", object_key=key, status="rollup", first_seen=now, last_seen=now,
                since=now, incident_json="[]", waited_json="[]", rolled_up=1))
            if not claimed:
                return
            response = await self.client.chat_postMessage(channel=self.channel, text=text, blocks=blocks)
            await asyncio.to_thread(db.set_incident, self.store.sessions, key, ("rollup",), channel=response["channel"],
                                    message_ts=response["ts"], posted_at=now,
                                    incident_json=json.dumps([i.model_dump(mode="json") for i in listed]))
            return
        await asyncio.to_thread(db.set_incident, self.store.sessions, key, ("rollup",), last_seen=now,
                                incident_json=json.dumps([i.model_dump(mode="json") for i in listed]))
        if row.message_ts and row.channel:
            await self.client.chat_update(channel=row.channel, ts=row.message_ts, text=text, blocks=blocks)


def register_watch_handlers(app: AsyncApp, store: Store, poster: SlackPoster, gate: Any | None = None) -> None:
    """Snooze 1 h, Mute this object (7 days) and Unmute: a silence in the store (or its removal), an audit
    row with the reason, a note on the message. Each click passes the same gate as a message."""
    membership = Membership()

    async def silence(body: dict[str, Any], what: str, client: AsyncWebClient, context: Any) -> None:
        from bot.slack.approval_handlers import is_guest, tell

        user = (body.get("user") or {}).get("id") or "unknown"
        channel = (body.get("channel") or {}).get("id")
        if gate is not None:
            refusal = await gate.check_click(user, channel)
            if refusal is not None:
                if refusal:
                    await tell(client, channel, user, refusal)
                return
        key = str(((body.get("actions") or [{}])[0]).get("value") or "")[:300]
        row = await asyncio.to_thread(db.get_incident, store.sessions, key)
        if row is None:
            return
        if await is_guest(membership, client, body, context):  # people from another organisation may not hide incidents
            await asyncio.to_thread(proposal_db.add_audit, store.sessions, proposal_db.AuditEntry(
                at=proposal_db.to_db_time(datetime.now(UTC)), action="refused", actor=user, result="guest",
                detail=f"{what} watcher incident {key}"))
            await tell(client, (body.get("channel") or {}).get("id"), user,
                       "Only people in this workspace can snooze or mute incidents, so nothing changed.")
            return
        incident = Incident.model_validate_json(row.incident_json)
        now = datetime.now(UTC)
        until: datetime | None = None
        if what == "snoozed":
            until = now + SNOOZE_FOR
            target, note = key, f"snoozed by {mention(user)} until {slack_time(until)}"
            reason = "snooze button on the incident message"
        elif what == "muted":
            until, target = now + MUTE_FOR, incident.object_key
            note = (f"{incident.object_kind.replace('_', ' ')} muted by {mention(user)} until {slack_time(until)}"
                    " (Unmute ends it sooner)")
            reason = f"mute button on a {incident.kind} incident message"
        else:
            target = incident.object_key
            note = f"{incident.object_kind.replace('_', ' ')} unmuted by {mention(user)}"
            reason = "unmute button on the incident message"
        if what == "unmuted":
            await asyncio.to_thread(db.unsilence, store.sessions, target)
        else:
            await asyncio.to_thread(db.silence, store.sessions, target, until, user, now)
        await asyncio.to_thread(proposal_db.add_audit, store.sessions, proposal_db.AuditEntry(
            at=proposal_db.to_db_time(now), proposal_id=row.proposal_id, action=what, actor=user,
            detail=f"{what} watcher incident {key}" + (f" until {until:%Y-%m-%d %H:%M} UTC" if until else "")
            + f"; reason: {reason}"))
        if row.status == db.OPEN:
            await poster.update(row, incident, now, note=note, muted=what == "muted")

    @app.action(cards.SNOOZE)
    async def on_snooze(ack: Any, body: dict[str, Any], client: AsyncWebClient, context: Any) -> None:
        await ack()
        await silence(body, "snoozed", client, context)

    @app.action(cards.MUTE)
    async def on_mute(ack: Any, body: dict[str, Any], client: AsyncWebClient, context: Any) -> None:
        await ack()
        await silence(body, "muted", client, context)

    @app.action(cards.UNMUTE)
    async def on_unmute(ack: Any, body: dict[str, Any], client: AsyncWebClient, context: Any) -> None:
        await ack()
        await silence(body, "unmuted", client, context)
