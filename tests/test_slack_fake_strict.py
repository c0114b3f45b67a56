"""The test Slack refuses what Slack refuses: bad tokens, invalid or oversized Block Kit, long text,
channels the bot is not in; and it pages thread replies oldest first as Slack does.

Driven through slack_sdk's own AsyncWebClient, the client the bot uses.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.harness import APP_TOKEN, BOT_TOKEN


def client(slack, token: str | None = BOT_TOKEN) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=f"{slack.url}/api/")


async def error_of(call) -> str:
    with pytest.raises(SlackApiError) as caught:
        await call
    return caught.value.response["error"]


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(text: str = "Go", value: str = "v") -> dict:
    return {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": text},
                                             "action_id": "a", "value": value}]}


async def test_tokens_are_checked(fresh_slack):
    assert await error_of(client(fresh_slack, None).chat_postMessage(channel="C1", text="x")) == "not_authed"
    bad = client(fresh_slack, "xoxb-not-a-real-token")
    assert await error_of(bad.chat_postMessage(channel="C1", text="x")) == "invalid_auth"
    app_token = client(fresh_slack, APP_TOKEN)
    assert await error_of(app_token.chat_postMessage(channel="C1", text="x")) == "not_allowed_token_type"
    assert await error_of(client(fresh_slack).apps_connections_open(app_token=BOT_TOKEN)) == "not_allowed_token_type"
    assert (await client(fresh_slack).chat_postMessage(channel="C1", text="fine"))["ok"]


@pytest.mark.parametrize("blocks, why", [
    ([section("x" * 3001)], "section text longer than 3000"),
    ([section("x")] * 51, "51 blocks"),
    ([button(text="b" * 76)], "button text longer than 75"),
    ([button(value="v" * 2001)], "button value longer than 2000"),
    ([{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}], "header text longer than 150"),
    ([{"type": "no_such_block"}], "unknown type"),
    ([{"type": "section"}], "section needs text or fields"),
])
async def test_invalid_message_blocks_are_refused(fresh_slack, blocks, why):
    web = client(fresh_slack)
    assert await error_of(web.chat_postMessage(channel="C1", text="x", blocks=blocks)) == "invalid_blocks"
    assert await error_of(web.chat_update(channel="C1", ts="1.0", text="x", blocks=blocks)) == "invalid_blocks"
    assert await error_of(web.chat_postEphemeral(channel="C1", user="U1", text="x", blocks=blocks)) == "invalid_blocks"
    assert any(why in reason for _, _, reasons in fresh_slack.refused for reason in reasons)
    assert fresh_slack.messages == {}, "nothing refused is stored"


@pytest.mark.parametrize("view, why", [
    ({"type": "home", "blocks": [section("x")] * 101}, "101 blocks"),
    ({"type": "home", "blocks": [section("x" * 3001)]}, "section text longer than 3000"),
    ({"type": "modal", "title": {"type": "plain_text", "text": "t" * 25}, "blocks": []}, "title longer than 24"),
    ({"type": "modal", "title": {"type": "plain_text", "text": "t"}, "blocks": [],
      "private_metadata": "m" * 3001}, "private_metadata longer than 3000"),
])
async def test_invalid_views_are_refused(fresh_slack, view, why):
    web = client(fresh_slack)
    method = web.views_publish(user_id="U1", view=view) if view["type"] == "home" else web.views_open(
        trigger_id="t", view=view)
    assert await error_of(method) == "invalid_blocks"
    assert any(why in reason for _, _, reasons in fresh_slack.refused for reason in reasons)


async def test_slack_error_vocabulary(fresh_slack):
    web = client(fresh_slack)
    assert await error_of(web.chat_postMessage(channel="C1", text="x" * 40_001)) == "msg_too_long"
    assert await error_of(web.chat_postMessage(channel="C1")) == "no_text"
    fresh_slack.not_in_channels.add("CSECRET")
    assert await error_of(web.chat_postMessage(channel="CSECRET", text="hi")) == "not_in_channel"
    fresh_slack.fail_next("chat.postMessage", status=429, retry_after=0)
    plain = AsyncWebClient(token=BOT_TOKEN, base_url=f"{fresh_slack.url}/api/", retry_handlers=[])
    assert await error_of(plain.chat_postMessage(channel="C1", text="x")) == "ratelimited"
    assert await error_of(web.usergroups_users_list(usergroup="SNOPE")) == "no_such_subteam"
    assert await error_of(web.conversations_replies(channel="C1", ts="404.0")) == "thread_not_found"


async def test_replies_come_oldest_first_a_page_at_a_time(fresh_slack):
    thread = "1700000000.000000"
    fresh_slack.seed_thread("C1", thread, [{"ts": f"17000000{i:02d}.000000", "user": "U1", "text": f"m{i}"}
                                           for i in range(60)][::-1])  # stored out of order on purpose
    web = client(fresh_slack)
    seen, cursor, pages = [], None, 0
    while True:
        page = await web.conversations_replies(channel="C1", ts=thread, limit=25, cursor=cursor)
        pages += 1
        seen += [m["text"] for m in page["messages"]]
        cursor = page["response_metadata"]["next_cursor"]
        if not page["has_more"]:
            assert cursor == ""
            break
    assert pages == 3 and seen == [f"m{i}" for i in range(60)]
    first = await web.conversations_replies(channel="C1", ts=thread)
    assert len(first["messages"]) == 60 and not first["has_more"]
    assert json.dumps(first["messages"][0]).count("m0") == 1


# --- the manifest asks for what the code uses, and the README says the same ------------------------

ROOT = Path(__file__).resolve().parents[1]
# scope -> something in bot/ that needs it
SCOPE_USES = {
    "app_mentions:read": '"app_mention"', "channels:history": "conversations_replies",
    "groups:history": "conversations_replies", "im:history": "is_direct_message",
    "mpim:history": "conversations_replies", "chat:write": "chat_postMessage", "reactions:write": "reactions_add",
    "commands": "app.command", "usergroups:read": "usergroups_list", "users:read": "users_info",
    "assistant:write": "set_status", "channels:read": "conversations_info", "groups:read": "conversations_info",
}


def test_manifest_scopes_are_used_and_documented():
    manifest = yaml.safe_load((ROOT / "manifest.yaml").read_text())
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    code = "\n".join(p.read_text() for p in (ROOT / "bot").rglob("*.py"))
    assert set(scopes) == set(SCOPE_USES), "every scope needs a known use (or drop it from the manifest)"
    for scope in scopes:
        assert SCOPE_USES[scope] in code, f"{scope} is asked for but nothing uses it"
    readme = (ROOT / "README.md").read_text()
    scope_row = next(line for line in readme.splitlines() if line.startswith("| Bot scopes"))
    assert set(re.findall(r"`([a-z_]+:[a-z_.]+|commands)`", scope_row)) == set(scopes)
    header = (ROOT / "manifest.yaml").read_text().split("display_information:")[0]
    for place in ("event_subscriptions", "interactivity", "slash command"):
        assert place in header
    assert manifest["settings"]["socket_mode_enabled"] is True and "Socket Mode is on" in header
