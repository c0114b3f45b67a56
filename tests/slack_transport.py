"""Deliver what a person does in Slack to a running bot, the way Slack delivers it, in either mode.

HTTP mode: signed POSTs to /slack/events. Socket Mode: envelopes over the fake WebSocket
(`events_api`, `interactive`, `slash_commands`). A message is also stored in the test Slack's
thread first, as Slack stores it before it sends the event. A mention in a channel arrives as
both `app_mention` and `message`; in a DM only as `message` (Slack sends no app_mention there).
Payload shapes follow the fixtures in slackapi/bolt-python's tests (Grid fields included).
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from tests.fakes.socket_mode import FakeSocketMode
from tests.harness import TEAM, BotHarness
from tests.waiting import wait_until

_seq = itertools.count(1)


def next_ts() -> str:
    return f"{time.time():.6f}"


class Transport:
    def __init__(self, bot: BotHarness, socket: FakeSocketMode | None = None) -> None:
        self.bot = bot
        self.socket = socket

    @property
    def mode(self) -> str:
        return "socket" if self.socket else "http"

    def event(self, event: dict[str, Any], enterprise_id: str | None = None) -> None:
        body = self.bot.event_envelope(event)
        if enterprise_id:
            body["enterprise_id"] = enterprise_id
            for auth in body["authorizations"]:
                auth.update(enterprise_id=enterprise_id, is_enterprise_install=False)
        if self.socket:
            self.socket.send_event(body, envelope_id=f"env-{next(_seq)}")
        else:
            posted = self.bot.post(json.dumps(body), "application/json", _sign(json.dumps(body)))
            assert posted.status == 200, posted

    def interaction(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Returns the ack's response payload (view_submission errors), if any."""
        if self.socket:
            envelope_id = f"env-{next(_seq)}"
            self.socket.send_interactive(payload, envelope_id)
            ack = _wait_ack(self.socket, envelope_id)
            return ack.get("payload") or None
        posted = self.bot.post_interaction(payload)
        assert posted.status == 200, posted
        return json.loads(posted.body) if posted.body.strip() else None

    def command(self, command: str, text: str, user_id: str = "U1", channel_id: str = "C1") -> None:
        if not self.socket:
            assert self.bot.post_command(command, text, user_id=user_id, channel_id=channel_id).status == 200
            return
        payload = {"token": "legacy", "team_id": TEAM, "team_domain": "t", "channel_id": channel_id,
                   "channel_name": "ops", "user_id": user_id, "user_name": user_id.lower(), "command": command,
                   "text": text, "api_app_id": "A1", "is_enterprise_install": "false",
                   "response_url": f"{self.bot.slack_api.url}/response", "trigger_id": f"trig-{next(_seq)}"}
        envelope_id = f"env-{next(_seq)}"
        self.socket.send_slash_command(payload, envelope_id)
        _wait_ack(self.socket, envelope_id)


def _sign(body: str) -> dict[str, str]:
    from tests.harness import sign

    return sign(body)


def _wait_ack(socket: FakeSocketMode, envelope_id: str, timeout: float = 20.0) -> dict[str, Any]:
    return wait_until(lambda: next((a for a in list(socket.acks) if a.get("envelope_id") == envelope_id), None),
                      timeout, f"an ack for {envelope_id}")


def say(transport: Transport, text: str, *, channel: str = "C1", user: str = "U1", ts: str | None = None,
        thread_ts: str | None = None, dm: bool = False, mention_bot: bool = False, team: str = TEAM,
        subtype: str | None = None, enterprise_id: str | None = None) -> str:
    """A person posts `text`; returns its ts. Stored in the thread, then delivered as Slack does."""
    ts = ts or next_ts()
    full = f"<@UBOT> {text}" if mention_bot else text
    stored = {"type": "message", "ts": ts, "user": user, "text": full, "team": team}
    if thread_ts:
        stored["thread_ts"] = thread_ts
    transport.bot.slack_api.seed_thread(channel, thread_ts or ts, [stored])
    base = {"user": user, "text": full, "channel": channel, "ts": ts, "event_ts": ts, "team": team,
            "user_team": team, "source_team": team}
    if thread_ts:
        base["thread_ts"] = thread_ts
    if mention_bot and not dm:
        transport.event({"type": "app_mention", **base}, enterprise_id)
    message = {"type": "message", **base, "channel_type": "im" if dm else "channel"}
    if subtype:
        message["subtype"] = subtype
    transport.event(message, enterprise_id)
    return ts


def block_action(action_id: str, value: str, user: str, channel: str = "C1", message_ts: str = "1.0",
                 thread_ts: str | None = None, team: str = TEAM, enterprise: str | None = None) -> dict[str, Any]:
    """A button click, shaped like bolt-python's block_actions fixtures (Grid: team.enterprise_id)."""
    team_obj: dict[str, Any] = {"id": team, "domain": "t"}
    if enterprise:
        team_obj.update(enterprise_id=enterprise, enterprise_name="Org")
    return {
        "type": "block_actions", "token": "legacy", "api_app_id": "A1", "trigger_id": f"trig-{next(_seq)}",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team},
        "team": team_obj, "enterprise": {"id": enterprise, "name": "Org"} if enterprise else None,
        "is_enterprise_install": False,
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "channel": {"id": channel, "name": "ops"},
        "message": {"type": "message", "ts": message_ts, "thread_ts": thread_ts or message_ts,
                    "text": "Proposed limit change"},
        "response_url": "https://hooks.invalid/actions/T1/1/x",
        "actions": [{"type": "button", "action_id": action_id, "block_id": "proposal:x", "value": value,
                     "text": {"type": "plain_text", "text": "Approve", "emoji": True},
                     "action_ts": next_ts()}],
    }


def view_submission(callback_id: str, private_metadata: str, values: dict[str, Any], user: str,
                    team: str = TEAM, enterprise: str | None = None) -> dict[str, Any]:
    team_obj: dict[str, Any] = {"id": team, "domain": "t"}
    if enterprise:
        team_obj.update(enterprise_id=enterprise, enterprise_name="Org")
    return {
        "type": "view_submission", "token": "legacy", "api_app_id": "A1", "team": team_obj,
        "enterprise": {"id": enterprise, "name": "Org"} if enterprise else None, "is_enterprise_install": False,
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team},
        "trigger_id": f"trig-{next(_seq)}",
        "view": {"id": "V1", "type": "modal", "callback_id": callback_id, "team_id": team,
                 "private_metadata": private_metadata, "state": {"values": values}, "hash": "h",
                 "title": {"type": "plain_text", "text": "Edit"}, "blocks": []},
    }
