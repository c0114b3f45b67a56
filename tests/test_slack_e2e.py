"""End to end: signed Slack events → the running HTTP app → scripted model → real Prefect → thread."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

from tests.fakes.model_api import error, text, tool_calls
from tests.harness import BotHarness, mention, message


@pytest.fixture
def bot(fresh_slack, fresh_model, prefect_api_url, tmp_path):
    harness = BotHarness(fresh_slack, fresh_model, f"sqlite:///{tmp_path / 'bot.db'}", bot_streaming=False).start()
    yield harness
    harness.stop()


def answer_posts(slack_api, thread_ts: str):
    return [c for c in slack_api.calls_to("chat.postMessage") if c.args.get("thread_ts") == thread_ts]


async def test_mention_is_acked_fast_and_answered_in_thread_with_live_data(bot, fresh_slack, fresh_model):
    name = f"e2e-gcl-{uuid.uuid4().hex[:8]}"
    async with get_client() as client:
        await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=4))

    def answer_from_tool_result(request):
        tool_text = "\n".join(m["content"] for m in request["messages"] if m["role"] == "tool")
        assert name in tool_text, "the model must receive the GCL created on the real server"
        return text(f"You have a GCL **{name}** with limit 4.\n\n```bash\nprefect gcl inspect {name}\n```")

    fresh_model.script(tool_calls(("list_global_concurrency_limits", {})), answer_from_tool_result)
    event = mention("what global limits do we have?", ts="1700000000.000100")
    posted = bot.post_event(event)
    assert posted.status == 200
    fresh_slack.wait_for("reactions.add")
    bot.wait_idle()
    posts = answer_posts(fresh_slack, "1700000000.000100")
    assert len(posts) == 1
    assert f"*{name}*" in posts[0].args["text"]  # Markdown bold became mrkdwn bold
    assert f"```bash\nprefect gcl inspect {name}\n```" in posts[0].args["text"]
    assert fresh_slack.calls_to("reactions.add")[0].args["name"] == "eyes"


def test_unsigned_and_stale_requests_get_401_and_nothing_is_posted(bot, fresh_slack):
    assert bot.post_event(mention("hi"), signed=False).status == 401
    assert bot.post_event(mention("hi"), timestamp=int(time.time()) - 6 * 60).status == 401
    time.sleep(0.3)
    assert fresh_slack.calls_to("chat.postMessage") == []


def test_the_same_event_delivered_three_times_is_answered_once(bot, fresh_slack, fresh_model):
    fresh_model.script(text("only once"))
    event = mention("hello", ts="1700000000.000200")
    for retry in (None, 1, 2):
        assert bot.post_event(event, event_id="EvSAME", retry_num=retry).status == 200
    bot.wait_idle()
    time.sleep(0.2)
    bot.wait_idle()
    assert len(answer_posts(fresh_slack, "1700000000.000200")) == 1
    assert len(fresh_model.requests) == 1


def test_model_429_then_success_answers_and_500s_end_in_apology(bot, fresh_slack, fresh_model):
    fresh_model.script(error(429, retry_after=0.1), text("answer after a 429"))
    bot.post_event(mention("q1", ts="1700000000.000300"))
    bot.wait_idle()
    assert answer_posts(fresh_slack, "1700000000.000300")[0].args["text"] == "answer after a 429"

    fresh_model.script(*[error(500)] * 5)
    bot.post_event(mention("q2", ts="1700000000.000400"))
    bot.wait_idle()
    apology = answer_posts(fresh_slack, "1700000000.000400")[0].args["text"]
    assert apology.startswith("Sorry") and "Traceback" not in apology


def test_dm_and_thread_follow_up_without_mention(bot, fresh_slack, fresh_model):
    fresh_model.script(text("dm answer"))
    bot.post_event(message("hi in a DM", channel="D1", channel_type="im", ts="1700000000.000500"))
    bot.wait_idle()
    assert answer_posts(fresh_slack, "1700000000.000500")[0].args["text"] == "dm answer"

    fresh_model.script(text("first answer"), text("follow-up answer"))
    bot.post_event(mention("first question", channel="C9", ts="1700000000.000600"))
    bot.wait_idle()
    fresh_slack.seed_thread("C9", "1700000000.000600", [
        {"ts": "1700000000.000600", "user": "U1", "text": "<@UBOT> first question"}])
    bot.post_event(message("and the follow-up?", channel="C9", ts="1700000000.000700",
                           thread_ts="1700000000.000600"))
    bot.wait_idle()
    texts = [c.args["text"] for c in answer_posts(fresh_slack, "1700000000.000600")]
    assert texts == ["first answer", "follow-up answer"]
    sent = fresh_model.requests[-1]["messages"]
    roles = [(m["role"], m["content"]) for m in sent if m["role"] in ("user", "assistant")]
    assert ("assistant", "first answer") in roles and roles[-1] == ("user", "and the follow-up?")


def test_ignores_own_bots_edits_deletions_joins_and_unknown_threads(bot, fresh_slack, fresh_model):
    events = [
        message("from me", user="UBOT", channel="D1", channel_type="im"),
        message("another bot", channel="D1", channel_type="im", bot_id="B999"),
        message("edited", channel="D1", channel_type="im", subtype="message_changed"),
        message("", channel="D1", channel_type="im", subtype="message_deleted"),
        message("joined", channel="C1", subtype="channel_join"),
        message("thread the bot never answered", channel="C1", thread_ts="1600000000.000001"),
        message("plain channel chatter", channel="C1"),
    ]
    for event in events:
        assert bot.post_event(event).status == 200
    bot.wait_idle()
    time.sleep(0.2)
    bot.wait_idle()
    assert fresh_slack.calls_to("chat.postMessage") == []
    assert fresh_model.requests == []


def test_empty_mention_gets_a_prompt_without_calling_the_model(bot, fresh_slack, fresh_model):
    bot.post_event(mention("", ts="1700000000.000800"))
    bot.wait_idle()
    posted = answer_posts(fresh_slack, "1700000000.000800")[0].args["text"]
    assert "Ask me about Prefect concurrency" in posted
    assert fresh_model.requests == []


def test_healthz_and_metrics(bot):
    import urllib.request

    with urllib.request.urlopen(f"{bot.url}/healthz") as response:
        assert json.load(response) == {"ok": True}
    with urllib.request.urlopen(f"{bot.url}/metrics") as response:
        assert b"bot_answers_total" in response.read()
