"""Slack-native features: streamed answers, feedback votes, the Assistant pane and the App Home tab."""

from __future__ import annotations

import time
import uuid

import pytest
from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

from tests.fakes.model_api import text
from tests.harness import TEAM, BotHarness, mention, message


@pytest.fixture
def streaming_bot(fresh_slack, fresh_model, prefect_api_url, tmp_path):
    harness = BotHarness(fresh_slack, fresh_model, f"sqlite:///{tmp_path / 'bot.db'}", bot_streaming=True).start()
    yield harness
    harness.stop()


def test_answer_is_streamed_with_feedback_buttons(streaming_bot, fresh_slack, fresh_model):
    long_answer = "Use a deployment limit.\n\n" + "\n".join(f"- point {i}" for i in range(120))
    fresh_model.script(text(long_answer))
    streaming_bot.post_event(mention("one at a time?", ts="1710000000.000100"))
    streaming_bot.wait_idle()
    start = fresh_slack.calls_to("chat.startStream")
    assert len(start) == 1
    assert start[0].args["thread_ts"] == "1710000000.000100"
    assert start[0].args["recipient_user_id"] == "U1" and start[0].args["recipient_team_id"] == TEAM
    assert fresh_slack.calls_to("chat.appendStream"), "a long answer arrives in several pieces"
    stop = fresh_slack.calls_to("chat.stopStream")[0]
    assert stop.args["blocks"][0]["type"] == "context_actions"
    assert fresh_slack.bot_texts("C1", "1710000000.000100") == [long_answer]
    assert fresh_slack.calls_to("chat.postMessage") == []


def test_a_failed_stream_falls_back_to_a_plain_post(streaming_bot, fresh_slack, fresh_model):
    fresh_model.script(text("fallback answer"))
    fresh_slack.fail_next("chat.startStream", status=200, retry_after=None,
                          body={"ok": False, "error": "not_allowed_token_type"})
    streaming_bot.post_event(mention("q", ts="1710000000.000200"))
    streaming_bot.wait_idle()
    posts = [c for c in fresh_slack.calls_to("chat.postMessage") if c.args.get("thread_ts") == "1710000000.000200"]
    assert [p.args["text"] for p in posts] == ["fallback answer"]


def test_a_stream_that_breaks_midway_is_replaced_by_an_update(streaming_bot, fresh_slack, fresh_model):
    answer = "A" * 700 + "\n" + "B" * 700
    fresh_model.script(text(answer))
    fresh_slack.fail_next("chat.appendStream", status=200, retry_after=None,
                          body={"ok": False, "error": "message_not_in_streaming_state"})
    streaming_bot.post_event(mention("q", ts="1710000000.000300"))
    streaming_bot.wait_idle()
    updates = fresh_slack.calls_to("chat.update")
    assert len(updates) == 1 and updates[0].args["text"] == answer
    assert fresh_slack.bot_texts("C1", "1710000000.000300") == [answer]


def test_feedback_votes_are_stored_and_acknowledged(streaming_bot, fresh_slack):
    def vote(user: str, value: str):
        return streaming_bot.post_interaction({
            "type": "block_actions", "user": {"id": user}, "team": {"id": TEAM},
            "channel": {"id": "C1"}, "message": {"ts": "1710000000.000999"},
            "actions": [{"action_id": "answer_feedback", "type": "feedback_buttons", "value": value}],
            "trigger_id": "t", "container": {"type": "message"},
        })

    assert vote("U1", "up").status == 200
    assert vote("U2", "down").status == 200
    assert vote("U2", "up").status == 200  # a changed mind counts once
    fresh_slack.wait_for("chat.postEphemeral", 3)
    store = streaming_bot.runtime.store
    deadline = time.monotonic() + 5
    while store.vote_counts() != {"up": 2, "down": 0} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.vote_counts() == {"up": 2, "down": 0}


def test_assistant_thread_gets_suggested_prompts_and_status(streaming_bot, fresh_slack, fresh_model):
    started = {"type": "assistant_thread_started", "assistant_thread": {
        "user_id": "U1", "channel_id": "D1", "thread_ts": "1710000000.000400", "context": {}},
        "event_ts": "1710000000.000401"}
    assert streaming_bot.post_event(started).status == 200
    prompts = fresh_slack.wait_for("assistant.threads.setSuggestedPrompts")[0].args
    titles = [p["title"] for p in (prompts["prompts"] if isinstance(prompts["prompts"], list) else [])]
    assert "Why is my run stuck?" in str(prompts) or "Why is my run stuck?" in titles

    fresh_model.script(text("pane answer"))
    streaming_bot.post_event(message("Show all limits", channel="D1", channel_type="im",
                                     ts="1710000000.000500", thread_ts="1710000000.000400"))
    fresh_slack.wait_for("assistant.threads.setStatus")
    fresh_slack.wait_for("chat.stopStream")
    streaming_bot.wait_idle()
    assert fresh_slack.calls_to("assistant.threads.setTitle")[0].args["title"] == "Show all limits"
    assert "pane answer" in fresh_slack.bot_texts("D1", "1710000000.000400")


async def test_home_tab_shows_live_limits_and_refreshes(streaming_bot, fresh_slack):
    name = f"home-gcl-{uuid.uuid4().hex[:8]}"
    async with get_client() as client:
        await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=3))
    streaming_bot.post_event({"type": "app_home_opened", "user": "U1", "tab": "home", "channel": "D1"})
    published = fresh_slack.wait_for("views.publish", timeout=30)[0].args
    view = published["view"] if isinstance(published["view"], dict) else __import__("json").loads(published["view"])
    assert published["user_id"] == "U1"
    assert name in str(view["blocks"]) and "0/3" in str(view["blocks"])
    streaming_bot.post_interaction({"type": "block_actions", "user": {"id": "U1"}, "team": {"id": TEAM},
                                    "actions": [{"action_id": "home_refresh", "type": "button", "value": "refresh"}],
                                    "trigger_id": "t", "container": {"type": "view"}, "view": {"id": "V1"}})
    fresh_slack.wait_for("views.publish", 2, timeout=30)


def test_feedback_command_summarises_votes(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from bot.store import Store

    url = f"sqlite:///{tmp_path / 'votes.db'}"
    store = Store.open(url)
    for user, vote in (("U1", "up"), ("U2", "up"), ("U3", "down")):
        store.record_vote("C1", "1.0", user, vote)
    store.close()
    env = {**os.environ, "BOT_DATABASE_URL": url, "COLUMNS": "100"}
    result = subprocess.run([str(Path(sys.executable).with_name("concurrency-bot")), "feedback"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if "67%" in line)
    assert [cell.strip() for cell in row.strip("│ ").split("│")] == ["3", "2", "1", "67%"]
