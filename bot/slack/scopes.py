"""The bot token scopes the app needs: the same list as manifest.yaml (tests/test_doctor_slack.py pins it).

Kept in code because the manifest is not part of the installed package, and `doctor` compares the
scopes Slack says it granted (`x-oauth-scopes`) with this list.
"""

from __future__ import annotations

__all__ = ["BOT_SCOPES", "SCOPE_USES"]

SCOPE_USES: dict[str, str] = {
    "app_mentions:read": "hear @mentions in channels",
    "assistant:write": "answer in the assistant pane",
    "channels:history": "read questions and thread follow-ups in public channels",
    "channels:read": "tell public channels from private ones (Home tab) and check channel membership",
    "groups:history": "read questions and follow-ups in private channels",
    "groups:read": "check membership of private channels",
    "im:history": "read direct messages",
    "mpim:history": "read group direct messages",
    "chat:write": "post answers, cards and incidents",
    "reactions:write": "mark a question as being worked on",
    "commands": "the /concurrency slash command",
    "usergroups:read": "resolve and read BOT_APPROVER_GROUP",
    "users:read": "tell a colleague of the same Grid org from a Slack Connect guest; check approvers",
}
BOT_SCOPES = frozenset(SCOPE_USES)
