"""Which Slack messages the bot answers. Pure functions: fast enough for the ack path."""

from __future__ import annotations

from typing import Any

# Written by a person and worth reading: a file with a comment, a thread reply also sent to the channel.
HUMAN_SUBTYPES = {"file_share", "thread_broadcast"}
IGNORED_SUBTYPES = {
    "message_changed", "message_deleted", "channel_join", "channel_leave", "group_join",
    "group_leave", "bot_message", "me_message", "channel_topic",
    "channel_purpose", "channel_name", "pinned_item", "unpinned_item", "message_replied",
}


def is_from_a_bot(event: dict[str, Any], bot_user_id: str | None) -> bool:
    return bool(event.get("bot_id") or event.get("bot_profile")) or (
        bot_user_id is not None and event.get("user") == bot_user_id)


def is_human_message(event: dict[str, Any], bot_user_id: str | None) -> bool:
    """A new message written by a person: not an edit, deletion, join, or any bot's post."""
    subtype = event.get("subtype")
    if subtype in IGNORED_SUBTYPES or (subtype and subtype not in HUMAN_SUBTYPES):
        return False
    return bool(event.get("user")) and not is_from_a_bot(event, bot_user_id)


def mentions(event: dict[str, Any], bot_user_id: str | None) -> bool:
    return bool(bot_user_id) and f"<@{bot_user_id}>" in (event.get("text") or "")


def is_direct_message(event: dict[str, Any]) -> bool:
    return event.get("channel_type") == "im"


def message_key(event: dict[str, Any]) -> str:
    """One key per user message, shared by `app_mention` and `message` deliveries and retries."""
    return f"msg:{event.get('channel')}:{event.get('ts')}"
